"""``x-delayed-message`` exchange, compatible with RabbitMQ's delayed-message plugin.

Bindings and matching are those of the ``x-delayed-type`` exchange type. A
message with a positive integer ``x-delay`` header (ms) is held and routed
when due; on delivery its ``x-delay`` header is negated, as the plugin does.
Unlike the plugin, ``mandatory`` is checked at publish time against the
bindings present then.

Held messages live on disk, not in RAM: each exchange has its own
:class:`~storage.log.store.LogStore` (durable if the exchange is durable, so
persistent messages are fsynced before their publisher confirm and survive a
restart; a non-durable exchange's store is wiped). A record is::

    u64 due      wall-clock ms
    u32 length   of the extra routing keys (CC/BCC, which BCC removal loses)
    (u16 length + key)*
    encode_message(msg)

RAM holds only the due-time index: a SortedList of ints ``due_ms << 64 |
position`` (about 60 bytes an entry), ordered by due time then publish order.
One timer, armed for the earliest entry, fires what is due in batches: it
reads each record back by position (``LogStore.read``: tail cache or
``pread``), routes it, and acks it. A persistent message routed to durable
queues is acked in the exchange's store only once those queues' stores have
synced, so a crash in between refires it (a duplicate) instead of losing it.

On start the store is recovered and shifted through once to rebuild the index;
what fell due while the broker was down fires at once.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sortedcontainers import SortedList
from warren.protocol.constants import PRECONDITION_FAILED
from warren.server.core.errors import ChannelError
from warren.server.model.exchanges.base import Binding, Exchange
from warren.server.model.exchanges.basic import BASIC_TYPES
from warren.storage.factory import open_store
from warren.storage.log.store import LogStore

log = logging.getLogger("warren.delayed")

#: messages fired per loop turn at most (then the loop serves I/O before the next batch)
FIRE_BATCH = 2000
#: tail cache of an exchange's store: recently held records are read back without a syscall
CACHE_RECORDS = 1024
CACHE_BYTES = 1024 * 1024

_POS_BITS = 64
_POS_MASK = (1 << _POS_BITS) - 1
_REC = struct.Struct(">QI")  # due (wall ms), length of the extra keys
_KEYLEN = struct.Struct(">H")


def delay_of(headers: dict) -> int:
    """The message's x-delay in ms (0 for none, not an integer, or not positive)."""
    d = headers.get("x-delay")
    if isinstance(d, bool) or not isinstance(d, (int, float)):
        return 0
    return int(d) if d > 0 else 0


class _Held:
    """A held message as the store sees it (``size``/``persistent`` drive the log)."""

    __slots__ = ("due", "msg", "extra", "size", "persistent", "raw")

    def __init__(self, due: int, msg: Any, extra: list[str] | None) -> None:
        self.due = due
        self.msg = msg
        self.extra = extra
        self.size = msg.size
        self.persistent = msg.persistent
        self.raw: bytes | None = None

    def message(self) -> tuple[Any, list[str] | None]:
        """The message and its extra routing keys (decoded on first use)."""
        if self.msg is None:
            from warren.server.model.message_codec import decode_message

            raw = self.raw
            assert raw is not None
            _due, elen = _REC.unpack_from(raw, 0)
            p = _REC.size
            end = p + elen
            extra = []
            while p < end:
                (n,) = _KEYLEN.unpack_from(raw, p)
                p += 2
                extra.append(raw[p : p + n].decode())
                p += n
            self.extra = extra or None
            self.msg = decode_message(memoryview(raw)[end:])
            self.raw = None
        return self.msg, self.extra


def _encode(held: _Held) -> bytes:
    from warren.server.model.message_codec import encode_message

    if held.extra:
        keys = b"".join(_KEYLEN.pack(len(b)) + b for b in (k.encode() for k in held.extra))
    else:
        keys = b""
    return b"".join((_REC.pack(held.due, len(keys)), keys, encode_message(held.msg)))


def _decode(data: bytes | memoryview) -> _Held:
    """Lazy: recovery needs only the due time; the message is decoded when it fires."""
    h = _Held.__new__(_Held)
    raw = bytes(data)
    h.due = _REC.unpack_from(raw, 0)[0]
    h.msg = None
    h.extra = None
    h.size = 0
    h.persistent = True
    h.raw = raw
    return h


class DelayedExchange(Exchange):
    """Holds messages until their x-delay passes, then routes them as ``x-delayed-type``."""

    type_name = "x-delayed-message"

    def __init__(self, vhost: Any, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict | None = None) -> None:
        super().__init__(vhost, name, durable, auto_delete, internal, arguments)
        dtype = self.arguments.get("x-delayed-type")
        if isinstance(dtype, bytes):
            dtype = dtype.decode()
        inner_cls = BASIC_TYPES.get(dtype) if isinstance(dtype, str) else None
        if inner_cls is None or dtype == self.type_name:
            raise ChannelError(
                PRECONDITION_FAILED, "Invalid argument, 'x-delayed-type' must be an existing exchange type"
            )
        self.inner: Exchange = inner_cls(vhost, name, durable, auto_delete, internal, {})
        #: due-time index: ``due_ms << 64 | position``
        self._due: SortedList = SortedList()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0
        self._loop = vhost.clock
        # due times are wall-clock ms (they outlive the process); the timer runs on
        # the loop's monotonic clock, so convert with one offset taken now
        self._offset = time.time() - self._loop.time()
        self._closed = False
        #: fired batches whose acks wait for queue fsyncs: id -> positions
        self._unsynced: dict[int, list[int]] = {}
        #: called with (exchange, routing_key, message, extra_keys) when a message is due;
        #: returns the queues it reached
        self.on_due: Callable[[DelayedExchange, str, Any, list[str] | None], Any] | None = None
        self.fired = 0
        self.recovered = 0
        self.store = self._open_store()

    # -- storage --------------------------------------------------------------
    def _store_dir(self) -> Path:
        persistence = getattr(getattr(self.vhost, "broker", None), "persistence", None)
        if persistence is None:  # a bare exchange (no broker): scratch space
            return Path(tempfile.mkdtemp(prefix="warren-delayed-"))
        return persistence.delayed_dir(self.vhost.name, self.name, self.durable)

    def _open_store(self) -> LogStore:
        t0 = time.monotonic()
        persistence = getattr(getattr(self.vhost, "broker", None), "persistence", None)
        if persistence is None:  # a bare exchange (no broker): scratch space
            store = open_store(self._store_dir(), durable=self.durable, encode=_encode, decode=_decode,
                               cache_records=CACHE_RECORDS, cache_bytes=CACHE_BYTES)
        else:
            store = persistence.delayed_store(self.vhost.name, self.name, self.durable, _encode, _decode,
                                              cache_records=CACHE_RECORDS, cache_bytes=CACHE_BYTES)
        # one lane on disk is a LogStore, whose ``read`` (random access by position) we need
        assert isinstance(store, LogStore)
        keys = []
        while (item := store.shift()) is not None:
            pos, held = item
            keys.append(held.due << _POS_BITS | pos)
        if keys:
            self._due = SortedList(keys)
            self.recovered = len(keys)
            log.info("recovered delayed messages exchange=%s vhost=%s count=%d seconds=%.3f",
                     self.name, getattr(self.vhost, "name", ""), len(keys), time.monotonic() - t0)
            # overdue ones fire at once, once the rest of the start-up has run
            self._timer_due = 0
            self._timer = self._loop.call_soon(self._fire)
        return store

    def _now_ms(self) -> int:
        return int((self._loop.time() + self._offset) * 1000.0)

    # -- bindings -------------------------------------------------------------
    def index_add(self, b: Binding) -> None:
        self.inner.bindings[b.key] = b
        self.inner.index_add(b)

    def index_remove(self, b: Binding) -> None:
        self.inner.bindings.pop(b.key, None)
        self.inner.index_remove(b)

    def validate_binding(self, binding: Binding) -> None:
        self.inner.validate_binding(binding)

    def match(self, routing_key: str, message: Any) -> Any:
        return self.inner.match(routing_key, message)

    # -- delaying -------------------------------------------------------------
    def next_due_ms(self) -> int | None:
        """Wall-clock ms at which the next held message is due, or None."""
        due = self._due
        return due[0] >> _POS_BITS if due else None

    def held(self, limit: int) -> list[tuple[int, Any]]:
        """The first ``limit`` held messages in due order: (due ms, (message, extra keys) or None
        if it fired meanwhile or cannot be read)."""
        out = []
        for key in self._due.islice(0, max(0, limit)):
            try:
                item = self.store.read(key & _POS_MASK).message()
            except Exception:  # fired meanwhile, or unreadable: the due time only
                log.debug("delayed message not readable exchange=%s", self.name, exc_info=True)
                item = None
            out.append((key >> _POS_BITS, item))
        return out

    @property
    def pending_count(self) -> int:
        return len(self._due)

    def hold(self, delay_ms: int, routing_key: str, msg: Any, extra: list[str] | None) -> LogStore | None:
        """Hold ``msg`` for ``delay_ms``; it fires with ``msg.routing_key`` (= ``routing_key``).

        Returns the store to ``sync`` before confirming the publish (a
        persistent message in a durable exchange), else None.
        """
        due = self._now_ms() + delay_ms
        pos = self.store.push(_Held(due, msg, extra))
        self._due.add(due << _POS_BITS | pos)
        if self._timer is None or due < self._timer_due:
            self._arm(due)
        return self.store if msg.persistent and self.durable else None

    def _arm(self, due_ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due_ms
        loop = self._loop
        self._timer = loop.call_at(due_ms / 1000.0 - self._offset, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._closed:
            return
        due = self._due
        store = self.store
        limit = (self._now_ms() + 1) << _POS_BITS
        on_due = self.on_due
        read = store.read
        ack = store.ack
        durable = self.durable
        n = 0
        deferred: list[int] = []
        syncs: set = set()
        while due and n < FIRE_BATCH:
            key = due[0]
            if key >= limit:
                break
            due.pop(0)
            n += 1
            pos = key & _POS_MASK
            try:
                msg, extra = read(pos).message()
            except Exception:  # an unreadable record must not stop the timer
                log.exception("reading a delayed message failed exchange=%s position=%d", self.name, pos)
                ack(pos)
                continue
            self.fired += 1
            result = None
            if on_due is not None:
                try:
                    result = on_due(self, msg.routing_key, msg, extra)
                except Exception:  # a bad message must not stop the timer
                    log.exception("routing a delayed message failed exchange=%s", self.name)
            if durable and result is not None and result.sync:
                # the held record goes only once the queues that took it have synced
                syncs.update(result.sync)
                deferred.append(pos)
                continue
            ack(pos)
        if deferred:
            self._ack_after_sync(deferred, syncs)
        if due:
            if n >= FIRE_BATCH:
                # more is due: let the loop serve I/O first, then go on
                self._timer_due = 0
                self._timer = self._loop.call_soon(self._fire)
            else:
                self._arm(due[0] >> _POS_BITS)

    def _ack_after_sync(self, positions: list[int], stores: set) -> None:
        """Ack ``positions`` once every queue store they were routed to is durable."""
        left = [len(stores), True]
        key = id(positions)
        self._unsynced[key] = positions

        def synced(ok: bool = True) -> None:
            left[0] -= 1
            left[1] = left[1] and ok
            if left[0] == 0 and self._unsynced.pop(key, None) is not None and left[1]:
                ack = self.store.ack
                for pos in positions:
                    ack(pos)

        for s in stores:
            s.sync(synced)

    # -- lifecycle ------------------------------------------------------------
    def _stop(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due = SortedList()

    def close(self) -> None:
        """Broker shutdown: stop the timer, flush and fsync the store (messages stay on disk).

        Called after the queue stores were closed (fsynced): what fired into
        them is durable there now, so the acks still waiting for it are written.
        """
        if not self._closed:
            self._stop()
            ack = self.store.ack
            for positions in self._unsynced.values():
                for pos in positions:
                    ack(pos)
            self._unsynced.clear()
            self.store.close()

    def delete(self) -> None:
        """The exchange is deleted: drop its pending messages and its store."""
        if not self._closed:
            self._stop()
            self._unsynced.clear()
            self.store.delete()
