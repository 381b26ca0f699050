"""The leader's end of the replication link: sequence, stream, track acks, shrink the in-sync set.

Every store operation gets the next sequence number and is encoded once into a
frame; frames produced in one loop turn go to every live follower in one write.
A follower is, in turn:

``catchup``  connected, getting the backlog (or a full resync) and then the live stream;
``joining``  caught up: it counts for waits from now on, ``on_add`` is being called;
``insync``   a member of the in-sync set;
``removing`` dropped (no ack within ``follower_timeout``, connection lost, send buffer
             full): ``on_remove`` is being called; waits it blocks stay blocked until then.

``when_replicated(seq, cb)`` / ``await replicated(seq)`` complete once every
follower that counts has acknowledged ``seq`` (durable on its disk). With fewer
than ``min_insync`` members (the leader included) they fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl as _ssl
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from warren.server.cluster.replication import wire
from warren.server.cluster.replication.operations import Operations, _Batch
from warren.server.cluster.replication.peers import (
    _CHUNK,
    _COUNTED,
    CATCHUP,
    GONE,
    INSYNC,
    JOINING,
    REMOVING,
    AckReader,
    Hook,
    ReplicationError,
    _Peer,
    start_ack_server,
)
from warren.server.cluster.replication.resync import Resyncs
from warren.server.cluster.replication.source import SnapshotSource
from warren.server.cluster.replication.streams import abort, peer_name

log = logging.getLogger("warren.cluster.replication")

class Leader(Operations, Resyncs):
    """Serves followers on ``host:port``; see the module docstring.

    ``on_add(node)`` / ``on_remove(node)``: async hooks that change the in-sync set
    where it is kept (etcd, fenced by the election); they run one at a time. If
    ``on_remove`` raises, the leader can no longer guarantee anything: it fails
    every wait from then on (``failed`` is set).
    """

    def __init__(
        self,
        secret: bytes,
        *,
        source: SnapshotSource | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        min_insync: int = 2,
        follower_timeout: float = 2.0,
        backlog_bytes: int = 64 * 1024 * 1024,
        send_buffer: int = 32 * 1024 * 1024,
        handshake_timeout: float = 5.0,
        on_add: Hook | None = None,
        on_remove: Hook | None = None,
        alive: Callable[[], bool] | None = None,
        ssl: _ssl.SSLContext | None = None,
        parent: tuple[bytes, int] | None = None,
    ) -> None:
        if not secret:
            raise ValueError("the replication link needs a cluster secret")
        self._secret = secret
        #: TLS for the link (cluster_tls_*): followers must present a certificate of the CA
        self._ssl = ssl
        self._source = source
        self._host = host
        self._port = port
        self.min_insync = min_insync
        self.follower_timeout = follower_timeout
        self.backlog_bytes = backlog_bytes
        self.send_buffer = send_buffer
        self.handshake_timeout = handshake_timeout
        self._on_add = on_add
        self._on_remove = on_remove
        #: the leadership still holds (the session lease by its local deadline): checked
        #: before any wait completes, so a leader frozen past its lease confirms nothing
        self._alive = alive
        #: identifies this leader's sequence space: a follower from another log resyncs
        self.log_id = os.urandom(wire.LOG_ID)
        #: ``(log id, seq)`` this log continues (DESIGN §10.8): this node's stores hold
        #: exactly the operations of that log up to that seq, and this log numbers its
        #: own from the next one; a follower whose stores hold exactly the same resumes
        #: here without a full resync
        self.parent = parent
        self.seq = parent[1] if parent is not None else 0
        #: highest seq handed to the live followers' sockets
        self._flushed = self.seq
        self._pending: list[bytes] = []
        #: appends or acks of one store not framed yet (operations.py)
        self._batch: _Batch | None = None
        self._scheduled = False
        self._late: asyncio.TimerHandle | None = None
        #: frames of seq _blog_base .. seq, for catch-up
        self._blog: list[bytes] = []
        self._blog_base = self.seq + 1
        self._blog_size = 0
        #: (last seq of a flush, monotonic time of it): when a follower's oldest unacked op left
        self._marks: deque[tuple[int, float]] = deque()
        self._peers: dict[str, _Peer] = {}
        self._waiters: deque[tuple[int, Callable[[bool], None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._hooks = asyncio.Lock()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.failed: str | None = None
        #: highest seq a wait completed for (confirmed): every in-sync member holds it
        self.confirmed = self.seq
        #: wall-clock time a wait last completed successfully (what confirms wait for), as
        #: of the check that the leadership still held
        self.last_ok_at = 0.0
        self._decided_at = 0.0
        #: the follower whose full resync runs (one at a time: the first follower is in
        #: sync sooner than if all shared the leader and the disk), until it acknowledges
        #: seq ``_resync_until``, and when it last moved
        self._resync_owner: _Peer | None = None
        self._resync_until = -1
        self._resync_moved = 0.0
        self._resync_free = asyncio.Event()
        self._resync_free.set()

    # -- life ---------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await start_ack_server(self._serve, self._host, self._port, ssl=self._ssl)
        self._port = self._server.sockets[0].getsockname()[1]

    @property
    def port(self) -> int:
        return self._port

    async def close(self) -> None:
        """Stop serving; pending waits fail."""
        if self._server is not None:
            self._server.close()
        for peer in list(self._peers.values()):
            peer.state = GONE
            abort(peer.writer)
        self._peers.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._timer is not None:
            self._timer.cancel()
        if self._late is not None:
            self._late.cancel()
        self._fail_all("leader closed")
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    # -- what followers look like -------------------------------------------
    @property
    def insync(self) -> frozenset[str]:
        """Followers in the in-sync set (the leader itself not included)."""
        return frozenset(p.node for p in self._peers.values() if p.state == INSYNC)

    def acked(self, node: str) -> int:
        """Highest seq ``node`` acknowledged on its current link (-1 if not connected)."""
        peer = self._peers.get(node)
        return peer.acked if peer is not None else -1

    def state(self, node: str) -> str:
        peer = self._peers.get(node)
        return peer.state if peer is not None else GONE

    def follower_status(self) -> dict[str, dict[str, float | int | str]]:
        """Per connected follower: state, acknowledged seq, and how far behind it is in
        operations, bytes (of frames not acknowledged, while the backlog holds them)
        and seconds (since the oldest operation it has not acknowledged went out)."""
        now = time.monotonic()
        out: dict[str, dict[str, float | int | str]] = {}
        for p in self._peers.values():
            first = max(p.acked + 1, self._blog_base)
            lag_bytes = sum(len(f) for f in self._blog[first - self._blog_base:])
            sent = self._sent_at(p.acked) if p.acked < self._flushed else None
            out[p.node] = {
                "state": p.state,
                "acked_seq": p.acked,
                "lag_operations": self.seq - p.acked,
                "lag_bytes": lag_bytes,
                "lag_seconds": round(now - sent, 3) if sent is not None else 0.0,
            }
        return out

    def _flush(self) -> None:
        self._scheduled = False
        if self._late is not None:
            self._late.cancel()
            self._late = None
        if self._batch is not None:
            self._finish_batch()
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._flushed = self.seq
        self._marks.append((self.seq, time.monotonic()))
        for peer in list(self._peers.values()):
            if peer.live and peer.state != GONE and peer.state != REMOVING:
                peer.writer.write(data)
                if peer.writer.transport.get_write_buffer_size() > self.send_buffer:
                    self._drop(peer, "send buffer full")
        self._trim_backlog()
        self._trim_marks()
        self._arm_timer()

    # -- waits ------------------------------------------------------------------
    def when_replicated(self, seq: int, callback: Callable[[bool], None]) -> None:
        """Call ``callback(True)`` once every counted follower acknowledged ``seq``,
        ``callback(False)`` if that can no longer be promised (below ``min_insync``,
        leader failed or closed). May call it at once."""
        if self.failed is not None or not self._enough() or not self._still_leading():
            callback(False)
            return
        if seq <= self._committed():
            if seq > self.confirmed:
                self.confirmed = seq
            self.last_ok_at = self._decided_at
            callback(True)
            return
        if seq > self._flushed:
            self.flush_soon()  # a wait for deferred acks (a purge or a delete waits) sends them now
        waiters = self._waiters
        if waiters and seq < waiters[-1][0]:
            # rare: registered out of order; keep the deque sorted
            items = sorted([*waiters, (seq, callback)], key=lambda w: w[0])
            waiters.clear()
            waiters.extend(items)
        else:
            waiters.append((seq, callback))
        self._arm_timer()

    async def replicated(self, seq: int) -> None:
        """Wait until ``seq`` is on every in-sync follower's disk; ReplicationError if it cannot be."""
        fut = asyncio.get_running_loop().create_future()

        def done(ok: bool) -> None:
            if not fut.done():
                fut.set_result(ok)

        self.when_replicated(seq, done)
        if not await fut:
            raise ReplicationError(self.failed or f"fewer than {self.min_insync} in sync")

    def _still_leading(self) -> bool:
        # the time of the decision, taken before the lease is read: what `last_ok_at`
        # reports. A process frozen between this check and the confirm's write still
        # sends that confirm late; only the data it vouches for is safe (every in-sync
        # member had it), which a lease alone cannot fence (DESIGN §10.7).
        self._decided_at = time.time()
        if self._alive is None or self._alive():
            return True
        if self.failed is None:
            self.failed = "leadership lease expired"
        return False

    def _enough(self) -> bool:
        members = sum(1 for p in self._peers.values() if p.state in (INSYNC, REMOVING))
        return 1 + members >= self.min_insync

    def _committed(self) -> int:
        acks = [p.acked for p in self._peers.values() if p.state in _COUNTED]
        return min(acks) if acks else self.seq

    def _advance(self) -> None:
        if not self._waiters:
            return
        if self.failed is not None or not self._enough() or not self._still_leading():
            self._fail_all(self.failed or ("below min_insync" if self._alive is None or self._alive()
                                           else "leadership lease expired"))
            return
        committed = self._committed()
        waiters = self._waiters
        if waiters[0][0] <= committed:
            self.last_ok_at = self._decided_at
        while waiters and waiters[0][0] <= committed:
            seq, cb = waiters.popleft()
            if seq > self.confirmed:
                self.confirmed = seq
            _call(cb, True)

    def _fail_all(self, reason: str) -> None:
        waiters = self._waiters
        if waiters:
            log.warning("replication: failing %d waits: %s", len(waiters), reason)
        while waiters:
            _call(waiters.popleft()[1], False)

    # -- lagging followers --------------------------------------------------------
    def _arm_timer(self) -> None:
        if self._timer is not None or self._loop is None:
            return
        deadline = self._next_deadline()
        if deadline is not None:
            self._timer = self._loop.call_at(
                self._loop.time() + max(0.0, deadline - time.monotonic()), self._on_timer
            )

    def _sent_at(self, acked: int) -> float | None:
        """When the first op after ``acked`` went out (None: none outstanding)."""
        for seq, t in self._marks:
            if seq > acked:
                return t
        return None

    def _next_deadline(self) -> float | None:
        best = None
        for p in self._peers.values():
            if p.state in (JOINING, INSYNC) and p.acked < self._flushed:
                t = self._sent_at(p.acked)
                if t is not None and (best is None or t < best):
                    best = t
        return None if best is None else best + self.follower_timeout

    def _on_timer(self) -> None:
        self._timer = None
        now = time.monotonic()
        for p in list(self._peers.values()):
            if p.state in (JOINING, INSYNC) and p.acked < self._flushed:
                t = self._sent_at(p.acked)
                if t is not None and now - t >= self.follower_timeout:
                    self._drop(p, f"no ack within {self.follower_timeout}s")
        self._trim_marks()
        self._arm_timer()

    def _trim_marks(self) -> None:
        # live followers not yet joined too: their deadlines start when they join
        timed = [
            p.acked
            for p in self._peers.values()
            if p.state in (JOINING, INSYNC) or (p.state == CATCHUP and p.live)
        ]
        low = min(timed) if timed else self._flushed
        marks = self._marks
        while marks and marks[0][0] <= low:
            marks.popleft()

    def _drop(self, peer: _Peer, reason: str) -> None:
        """Close a follower's link; if it counted for waits, take it out of the in-sync set
        (``on_remove``) before the waits it blocks may complete."""
        if peer.state in (GONE, REMOVING):
            return
        log.warning("replication: dropping follower %s: %s", peer.node, reason)
        abort(peer.writer)
        self._release_resync(peer)
        peer.caught.set()  # a join waiting for it gives up
        peer.live = False
        if peer.state in (JOINING, INSYNC):
            peer.state = REMOVING
            self._spawn(self._remove(peer))
        else:
            peer.state = GONE
            peer.gone.set()
            if self._peers.get(peer.node) is peer:
                del self._peers[peer.node]

    async def _remove(self, peer: _Peer) -> None:
        try:
            async with self._hooks:
                if self._on_remove is not None:
                    await self._on_remove(peer.node)
        except Exception as exc:  # noqa: BLE001 - whatever failed, nothing can be confirmed now
            log.error("replication: could not remove %s from the in-sync set: %s", peer.node, exc)
            self.failed = f"in-sync set not updated: {exc}"
        peer.state = GONE
        peer.gone.set()
        if self._peers.get(peer.node) is peer:
            del self._peers[peer.node]
        self._trim_marks()
        self._advance()

    def _start_join(self, peer: _Peer) -> None:
        # It counts for waits from here on (harmless if the join fails: more acks
        # required), so nothing past its acks is confirmed any more. What was confirmed
        # before, it must have acknowledged before it is named in the in-sync set.
        peer.state = JOINING
        peer.need = self.confirmed
        if peer.acked >= peer.need:
            peer.caught.set()
        else:
            peer.caught.clear()
        self._advance()
        self._spawn(self._join(peer))

    async def _join(self, peer: _Peer) -> None:
        await peer.caught.wait()  # set on acks, or when dropped
        try:
            async with self._hooks:
                if peer.state != JOINING:
                    return
                if self._on_add is not None:
                    await self._on_add(peer.node)
        except Exception as exc:  # noqa: BLE001
            log.warning("replication: could not add %s to the in-sync set: %s", peer.node, exc)
            self._drop(peer, "join failed")
            return
        if peer.state == JOINING:
            peer.state = INSYNC
            log.info("replication: %s is in sync at seq %d", peer.node, peer.acked)
            self._advance()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one follower's connection ---------------------------------------------------
    async def _serve(self, reader: AckReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer: _Peer | None = None
        try:
            node, log_id, last, exact = await asyncio.wait_for(
                self._handshake(reader, writer), self.handshake_timeout
            )
            old = self._peers.get(node)
            if old is not None:
                self._drop(old, "reconnected")
                # its removal must be done (in etcd) before it may join again
                await old.gone.wait()
            peer = _Peer(node, writer, -1)
            self._peers[node] = peer
            peer.task = asyncio.ensure_future(self._send(peer, log_id, last, exact))
            self._tasks.add(peer.task)
            peer.task.add_done_callback(self._tasks.discard)
            # acks count as they arrive (AckReader); this task only waits for the end
            reader.take_acks(partial(self._on_ack, peer))
            if await reader.read(1):
                raise wire.WireError("data from a follower outside its acks")
            raise ConnectionError("the follower closed the link")
        except wire.AuthError as exc:
            log.warning("replication: refused %s: %s", peer_name(writer), exc)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, wire.WireError) as exc:
            if peer is not None:
                self._drop(peer, f"connection lost: {exc!r}")
            else:
                log.info("replication: handshake with %s failed: %r", peer_name(writer), exc)
        except TimeoutError:
            log.warning("replication: handshake with %s timed out", peer_name(writer))
        except asyncio.CancelledError:
            pass  # close(): the server's own callback would log a cancelled handler
        finally:
            if peer is not None:
                self._drop(peer, "connection closed")
                if peer.task is not None:
                    peer.task.cancel()
            abort(writer)
            if task is not None:
                self._tasks.discard(task)

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, bytes, int, bool]:
        version, nonce_f, node = wire.parse_hello(await wire.read_frame(reader, wire.MAX_HANDSHAKE))
        if version != wire.VERSION:
            writer.write(wire.frame(wire.error(f"version {version} not supported")))
            raise wire.WireError(f"follower speaks version {version}")
        nonce_l = os.urandom(wire.NONCE)
        writer.write(
            wire.frame(
                wire.challenge(nonce_l, wire.leader_proof(self._secret, nonce_f, nonce_l, node))
            )
        )
        proof, log_id, last, exact = wire.parse_auth(await wire.read_frame(reader, wire.MAX_HANDSHAKE))
        wire.check(wire.follower_proof(self._secret, nonce_f, nonce_l, node), proof)
        return node, log_id, last, exact

    def _on_ack(self, peer: _Peer, seq: int) -> None:
        if seq <= peer.acked:
            return
        if seq > self._flushed:
            seq = self._flushed  # never count more than was sent
        peer.acked = seq
        if peer is self._resync_owner and 0 <= self._resync_until <= seq:
            log.info("replication: %s has its full resync on disk", peer.node)
            self._release_resync(peer)
        if peer.state == JOINING and seq >= peer.need:
            peer.caught.set()
        if peer.state == CATCHUP and peer.live and seq >= peer.join_seq:
            self._start_join(peer)
        elif peer.state in _COUNTED:
            self._advance()
            if self._timer is None:
                self._arm_timer()

    def _resumes(self, log_id: bytes, last: int, exact: bool) -> bool:
        """A follower at ``(log_id, last)`` can take the tail after ``last`` from the backlog:
        it follows this log, or its stores hold exactly what this log started from."""
        if not self._blog_base - 1 <= last <= self.seq:
            return False
        if log_id == self.log_id:
            return True
        # another log: only the one this log continues, at exactly the seq it continues
        # from, and only stores that hold nothing past it (ops of the old log after that
        # seq, which this log does not have, would stay there)
        return exact and self.parent == (log_id, last)

    async def _send(self, peer: _Peer, log_id: bytes, last: int, exact: bool) -> None:
        writer = peer.writer
        try:
            if self._resumes(log_id, last, exact):
                if log_id != self.log_id:
                    log.info("replication: %s continues from the last term's log at seq %d", peer.node, last)
                peer.acked = last  # what it has on disk already
                writer.write(wire.frame(wire.start(wire.MODE_TAIL, self.log_id, last, self._flushed)))
                nxt = last + 1
            else:
                nxt = await self._resync(peer)
            # catch up from the backlog, then hand over to the live stream
            while True:
                if nxt > self._flushed:
                    peer.live = True
                    peer.join_seq = self._flushed
                    if peer.acked >= peer.join_seq:
                        self._start_join(peer)
                    return
                if nxt < self._blog_base:
                    raise ConnectionError("fell out of the backlog while catching up")
                chunk, size = [], 0
                blog, base = self._blog, self._blog_base
                end = self._flushed
                while nxt <= end and size < _CHUNK:
                    fr = blog[nxt - base]
                    chunk.append(fr)
                    size += len(fr)
                    nxt += 1
                writer.write(b"".join(chunk))
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            self._drop(peer, f"catch-up failed: {exc!r}")
        except Exception:
            log.exception("replication: sending to %s failed", peer.node)
            self._drop(peer, "sender failed")


def _call(cb: Callable[[bool], None], ok: bool) -> None:
    try:
        cb(ok)
    except Exception:  # noqa: BLE001 - one waiter's bug must not stop the others
        log.exception("replication: wait callback failed")
