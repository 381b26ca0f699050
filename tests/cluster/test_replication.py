"""The replication link in-process: a leader with real LogStores streams to followers on
loopback; what a follower acknowledged is checked by reopening copies of its store files
(what would survive a kill)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import shutil
import time
from pathlib import Path

import pytest
from warren.server.cluster.election import Election
from warren.server.cluster.isr import InSyncReplicas
from warren.server.cluster.replication import follower as follower_mod
from warren.server.cluster.replication import wire
from warren.server.cluster.replication.follower import (
    Follower,
    decode_replica,
    encode_replica,
    store_directory,
)
from warren.server.cluster.replication.leader import Leader, ReplicationError
from warren.server.cluster.replication.source import LogStoreSource
from warren.server.cluster.replication.state import ReplicaState
from warren.storage.log import LogStore

from tests.cluster.waiting import wait_for

SECRET = b"cluster-secret-for-tests"

pytestmark = pytest.mark.timeout(60)


class Rec:
    __slots__ = ("data", "size")
    persistent = True

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)


def _enc(r: Rec) -> bytes:
    return r.data


def _dec(b: bytes) -> Rec:
    return Rec(bytes(b))


class Primary:
    """The leader's side as the broker will have it: local LogStores, each change also
    handed to the replication leader; ``live`` is the model of what must be replicated."""

    def __init__(self, root: Path, leader_kw: dict | None = None) -> None:
        self.root = root
        self.source = LogStoreSource()
        self.removed: list[str] = []
        self.added: list[str] = []
        self.events: list[str] = []
        self.violations: list[tuple] = []
        self.remove_gate: asyncio.Event | None = None
        kw = {"follower_timeout": 3.0, "min_insync": 2, **(leader_kw or {})}
        kw.setdefault("on_remove", self._on_remove)
        kw.setdefault("on_add", self._on_add)
        self.leader = Leader(SECRET, source=self.source, **kw)
        self.live: dict[str, dict[int, bytes]] = {}
        #: the last position appended to each store
        self.top: dict[str, int] = {}
        self._n = 0

    async def _on_remove(self, node: str) -> None:
        self.events.append(f"remove-start {node}")
        if self.remove_gate is not None:
            await self.remove_gate.wait()
        self.removed.append(node)
        self.events.append(f"remove-done {node}")

    async def _on_add(self, node: str) -> None:
        # a member of the in-sync set must hold everything confirmed so far
        if self.leader.acked(node) < self.leader.confirmed:
            self.violations.append((node, self.leader.acked(node), self.leader.confirmed))
        self.added.append(node)
        self.events.append(f"add {node}")

    def store(self, sid: str) -> LogStore:
        store = self.source.stores.get(sid)
        if store is None:
            store = LogStore(self.root / sid, _enc, _dec, segment_size=64 * 1024)
            self.source.register(sid, store)
            self.live[sid] = {}
        return store

    def append(self, sid: str, data: bytes | None = None) -> int:
        if data is None:
            self._n += 1
            data = f"{sid}-{self._n}-".encode() + os.urandom(16)
        pos = self.top[sid] = self.store(sid).push(Rec(data))
        self.live[sid][pos] = data
        return self.leader.append(sid, pos, data)

    def ack(self, sid: str, pos: int) -> int:
        self.store(sid).ack(pos)
        del self.live[sid][pos]
        return self.leader.ack(sid, pos)

    def purge(self, sid: str, keep: list[int]) -> int:
        store = self.store(sid)
        for pos in list(self.live[sid]):
            if pos not in keep:
                store.ack(pos)
                del self.live[sid][pos]
        return self.leader.purge(sid, keep, self.top.get(sid, 0))

    def delete(self, sid: str) -> int:
        store = self.source.stores[sid]
        self.source.unregister(sid)
        store.delete()
        del self.live[sid]
        return self.leader.delete_store(sid)

    def close(self) -> None:
        for store in self.source.stores.values():
            store.close()


def on_disk(data_dir: Path, sid: str, scratch: Path) -> dict[int, bytes]:
    """A follower's store as a fresh LogStore sees it (from a copy of the files)."""
    src = store_directory(data_dir, sid)
    if not src.exists():
        return {}
    copy = scratch / f"copy-{os.urandom(4).hex()}"
    shutil.copytree(src, copy)
    store = LogStore(copy, encode_replica, decode_replica)
    try:
        records = store.drain()
        got = {rec.origin: rec.data for _pos, rec in records}
        assert len(got) == len(records), f"{sid}: a leader position is held twice"
        return got
    finally:
        store.delete()


def copy_of(data_dir: Path, scratch: Path) -> Path:
    """A copy of a follower's store files as they are now (its data dir layout)."""
    copy = scratch / f"snap-{os.urandom(4).hex()}"
    shutil.copytree(data_dir / "stores", copy / "stores")
    return copy


def assert_holds(primary: Primary, data_dir: Path, scratch: Path, live=None) -> None:
    """Every live record of the leader (or of ``live``) is on the follower's disk."""
    for sid, records in (primary.live if live is None else live).items():
        got = on_disk(data_dir, sid, scratch)
        missing = {p for p in records if got.get(p) != records[p]}
        assert not missing, f"{data_dir.name}/{sid}: {len(missing)} records missing"


def assert_equal(primary: Primary, data_dir: Path, scratch: Path) -> None:
    """After a clean close of the follower: exactly the leader's live records."""
    stores = {bytes.fromhex(p.name).decode() for p in (data_dir / "stores").iterdir()}
    assert stores <= set(primary.live)
    for sid, records in primary.live.items():
        assert on_disk(data_dir, sid, scratch) == records, sid


async def _started(primary: Primary, tmp_path: Path, names=("f1", "f2")) -> dict[str, Follower]:
    await primary.leader.start()
    followers = {}
    for name in names:
        f = Follower(name, "127.0.0.1", primary.leader.port, SECRET, tmp_path / name)
        await f.start()
        followers[name] = f
    await wait_for(lambda: primary.leader.insync == set(names), 10, what="followers in sync")
    return followers


async def _stop(primary: Primary, followers) -> None:
    for f in followers.values():
        await f.close()
    await primary.leader.close()
    primary.close()
    assert primary.violations == []


async def test_wait_completes_with_records_on_both_followers_disks(tmp_path):
    primary = Primary(tmp_path / "leader")
    followers = await _started(primary, tmp_path)
    try:
        assert sorted(primary.added) == ["f1", "f2"]
        seq = 0
        for i in range(300):
            seq = primary.append(f"q{i % 3}")
        # the files as they are at the instant the wait completes
        copies: dict[str, Path] = {}

        def done(ok: bool) -> None:
            assert ok
            for name, f in followers.items():
                copies[name] = copy_of(f.data_dir, tmp_path)

        primary.leader.when_replicated(seq, done)
        await primary.leader.replicated(seq)
        assert set(copies) == {"f1", "f2"}
        for name, f in followers.items():
            assert f.durable >= seq
            assert_holds(primary, copies[name], tmp_path)

        # acks, a purge keeping the unacked ones, a store deleted; opaque kinds pass through
        for pos in list(primary.live["q0"])[:50]:
            primary.ack("q0", pos)
        keep = list(primary.live["q1"])[:5]
        primary.purge("q1", keep)
        primary.delete("q2")
        seq = primary.append("q3")
        await primary.leader.replicated(seq)
        for f in followers.values():
            assert_holds(primary, f.data_dir, tmp_path)
            assert not store_directory(f.data_dir, "q2").exists()
    finally:
        await _stop(primary, {})
        for f in followers.values():
            await f.close()
    for f in followers.values():
        assert_equal(primary, f.data_dir, tmp_path)


async def test_callback_form_and_meta_operations(tmp_path):
    metas = []
    primary = Primary(tmp_path / "leader", {"min_insync": 2})
    await primary.leader.start()
    f1 = Follower(
        "f1", "127.0.0.1", primary.leader.port, SECRET, tmp_path / "f1",
        on_meta=lambda kind, sid, payload: metas.append((kind, sid, payload)),
    )
    await f1.start()
    try:
        await wait_for(lambda: primary.leader.insync == {"f1"}, 10)
        done = []
        primary.leader.delayed("q", b"index-entry")
        primary.leader.definitions(b'{"queues": []}')
        seq = primary.append("q")
        primary.leader.when_replicated(seq, done.append)
        assert done == []  # nothing is acknowledged in the same loop turn
        await wait_for(lambda: done, 10)
        assert done == [True]
        assert metas == [(wire.OP_DELAYED, "q", b"index-entry"),
                         (wire.OP_DEFINITIONS, "", b'{"queues": []}')]
    finally:
        await f1.close()
        await _stop(primary, {})


async def test_acks_alone_follow_within_the_ack_delay_and_at_once_when_waited_for(tmp_path):
    """Acks are not flushed on their own turn (a flush of acks alone would cost each
    follower an fsync that publishes queue behind): they ride with the next append, or
    go within ACK_DELAY; a wait that covers an ack sends it at once."""
    from warren.server.cluster.replication import operations

    primary = Primary(tmp_path / "leader", {"min_insync": 2})
    followers = await _started(primary, tmp_path, names=("f1",))
    f1 = followers["f1"]
    try:
        seqs = [primary.append("q") for _ in range(4)]
        await primary.leader.replicated(seqs[-1])
        positions = list(primary.live["q"])
        t0 = time.monotonic()
        ack_seq = primary.ack("q", positions[0])
        await asyncio.sleep(0)  # a loop turn: an append would be flushed now; the ack is not
        assert primary.leader._flushed < ack_seq
        await wait_for(lambda: f1.durable >= ack_seq, 10, what="the ack on the follower")
        assert time.monotonic() - t0 >= operations.ACK_DELAY * 0.9
        ack_seq = primary.ack("q", positions[1])
        waiting = asyncio.ensure_future(primary.leader.replicated(ack_seq))
        for _ in range(3):  # the wait registers, then the flush runs: turns, not the delay
            await asyncio.sleep(0)
        assert primary.leader._flushed >= ack_seq
        await waiting
        assert f1.durable >= ack_seq
        # an append carries the acks before it
        ack_seq = primary.ack("q", positions[2])
        seq = primary.append("q")
        await asyncio.sleep(0)
        assert primary.leader._flushed >= seq > ack_seq
        await primary.leader.replicated(seq)
    finally:
        await _stop(primary, {})
        await f1.close()
    assert_equal(primary, f1.data_dir, tmp_path)


async def test_wrong_secret_refused_both_ways(tmp_path):
    primary = Primary(tmp_path / "leader", {"min_insync": 1})
    await primary.leader.start()
    # a follower with the wrong secret: the leader's proof does not check out for it,
    # and it never gets a START
    wrong = Follower("fx", "127.0.0.1", primary.leader.port, b"wrong", tmp_path / "fx")
    await wrong.start()
    try:
        await wait_for(lambda: wrong.auth_failures >= 2, 10, what="follower refusing")
        assert wrong.connects == 0 and primary.leader.state("fx") == "gone"

        # an impostor follower that answers the challenge without the secret
        reader, writer = await asyncio.open_connection("127.0.0.1", primary.leader.port)
        writer.write(wire.frame(wire.hello(os.urandom(32), "impostor")))
        nonce_l, _proof = wire.parse_challenge(await wire.read_frame(reader))
        writer.write(wire.frame(wire.auth(os.urandom(32), bytes(16), 0)))
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing sent
        writer.close()
        assert primary.leader.state("impostor") == "gone"

        # an impostor leader: the follower sends no AUTH to it
        got_auth = []

        async def fake_leader(r, w):
            wire.parse_hello(await wire.read_frame(r))
            w.write(wire.frame(wire.challenge(os.urandom(32), os.urandom(32))))
            got_auth.append(await r.read())
            w.close()

        server = await asyncio.start_server(fake_leader, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        victim = Follower("fv", "127.0.0.1", port, SECRET, tmp_path / "fv")
        await victim.start()
        await wait_for(lambda: victim.auth_failures >= 1 and got_auth, 10)
        await victim.close()
        server.close()
        assert got_auth[0] == b""  # the follower hung up without answering
    finally:
        await wrong.close()
        await _stop(primary, {})


async def test_killed_follower_removed_then_waits_complete_without_it(tmp_path):
    primary = Primary(tmp_path / "leader", {"follower_timeout": 1.0})
    followers = await _started(primary, tmp_path)
    try:
        await followers["f2"].close()
        t0 = time.monotonic()
        await wait_for(lambda: primary.removed == ["f2"], 5, what="f2 removed")
        assert time.monotonic() - t0 < 1.0 + 3.0  # the link drop is seen at once; slack for load
        seq = primary.append("q")
        await primary.leader.replicated(seq)
        assert primary.leader.insync == {"f1"}
        assert_holds(primary, followers["f1"].data_dir, tmp_path)
    finally:
        await _stop(primary, followers)


async def test_stalled_follower_removed_before_the_wait_completes(tmp_path):
    primary = Primary(tmp_path / "leader", {"follower_timeout": 0.5})
    followers = await _started(primary, tmp_path)
    try:
        seq = primary.append("q")
        await primary.leader.replicated(seq)
        primary.remove_gate = asyncio.Event()
        followers["f2"].pause()
        # enough data that f2's socket buffers hold some of it unread
        for _ in range(50):
            seq = primary.append("q", os.urandom(64 * 1024))
        done: list[bool] = []
        t0 = time.monotonic()
        primary.leader.when_replicated(seq, done.append)
        await wait_for(lambda: "remove-start f2" in primary.events, 5, what="removal started")
        took = time.monotonic() - t0
        # within the bound, plus generous slack for a loaded machine (not a speed claim:
        # without the timeout, removal would never start while f2 is paused)
        assert took < 0.5 + 3.0, took
        # f1 has it, but the wait also needs f2 out of the in-sync set first
        await wait_for(lambda: followers["f1"].durable >= seq, 10)
        await asyncio.sleep(0)  # let any completion that might wrongly happen, happen
        assert done == []
        primary.remove_gate.set()
        await wait_for(lambda: done, 5)
        assert done == [True] and primary.events.index("remove-done f2") >= 0
        assert_holds(primary, followers["f1"].data_dir, tmp_path)
        # f2, read again, reconnects, catches up and rejoins
        followers["f2"].resume()
        await wait_for(lambda: primary.leader.insync == {"f1", "f2"}, 15, what="f2 rejoined")
        seq = primary.append("q")
        await primary.leader.replicated(seq)
        assert_holds(primary, followers["f2"].data_dir, tmp_path)
    finally:
        await _stop(primary, followers)


class SlowFsync(concurrent.futures.ThreadPoolExecutor):
    """An fsync executor for a slow follower disk."""

    def submit(self, fn, *args, **kwargs):
        def slow():
            time.sleep(0.2)
            return fn(*args, **kwargs)

        return super().submit(slow)


async def test_joining_follower_acks_what_was_confirmed_before_it_is_named(tmp_path):
    """Confirms go on (through f1) while f2 catches up on a slow disk: f2 is named in
    the in-sync set only once it holds everything confirmed before it counted."""
    primary = Primary(tmp_path / "leader", {"min_insync": 2, "follower_timeout": 5.0})
    followers = await _started(primary, tmp_path, ("f1",))
    stop = asyncio.Event()
    confirmed = 0

    async def produce():
        nonlocal confirmed
        while not stop.is_set():
            seq = primary.append("q")
            await primary.leader.replicated(seq)
            confirmed = seq

    producer = asyncio.ensure_future(produce())
    slow = SlowFsync(max_workers=1)
    try:
        await wait_for(lambda: confirmed > 20, 10)
        f2 = followers["f2"] = Follower(
            "f2", "127.0.0.1", primary.leader.port, SECRET, tmp_path / "f2",
            store_options={"executor": slow},
        )
        await f2.start()
        await wait_for(lambda: "f2" in primary.added, 20, what="f2 added")
        stop.set()
        await producer
    finally:
        stop.set()
        producer.cancel()
        await _stop(primary, followers)  # asserts no follower was named too early
        slow.shutdown()


async def test_follower_not_reading_is_dropped_when_its_send_buffer_fills(tmp_path, caplog):
    primary = Primary(tmp_path / "leader",
                      {"follower_timeout": 30.0, "send_buffer": 256 * 1024, "min_insync": 2})
    followers = await _started(primary, tmp_path)
    try:
        followers["f2"].pause()
        block = os.urandom(256 * 1024)
        for _ in range(200):  # 50 MiB: more than the kernel's socket buffers hold
            primary.append("q", block)
            await asyncio.sleep(0)  # a loop turn per append: one flush each
            if "f2" in primary.removed:
                break
        await wait_for(lambda: "f2" in primary.removed, 10, what="f2 dropped")
        assert "send buffer full" in caplog.text
        await primary.leader.replicated(primary.append("q"))
    finally:
        await _stop(primary, followers)


async def test_below_min_insync_waits_fail(tmp_path):
    primary = Primary(tmp_path / "leader", {"min_insync": 3})
    await primary.leader.start()
    try:
        seq = primary.append("q")
        with pytest.raises(ReplicationError):  # alone: 1 of 3
            await primary.leader.replicated(seq)
        followers = {}
        for name in ("f1", "f2"):
            followers[name] = Follower(name, "127.0.0.1", primary.leader.port, SECRET,
                                       tmp_path / name)
            await followers[name].start()
        await wait_for(lambda: primary.leader.insync == {"f1", "f2"}, 10)
        seq = primary.append("q")
        await primary.leader.replicated(seq)
        # a wait pending when a follower drops fails once it is removed
        followers["f2"].pause()
        seq = primary.append("q")
        with pytest.raises(ReplicationError):
            await asyncio.wait_for(primary.leader.replicated(seq), 10)
        assert primary.removed == ["f2"]
        with pytest.raises(ReplicationError):
            await primary.leader.replicated(primary.append("q"))
    finally:
        await _stop(primary, followers)


async def test_failed_isr_update_fails_every_wait(tmp_path):
    async def on_remove(node):
        raise RuntimeError("etcd unreachable")

    primary = Primary(tmp_path / "leader", {"on_remove": on_remove, "min_insync": 2,
                                            "follower_timeout": 0.5})
    followers = await _started(primary, tmp_path)
    try:
        followers["f2"].pause()
        seq = primary.append("q")
        with pytest.raises(ReplicationError, match="etcd unreachable"):
            await asyncio.wait_for(primary.leader.replicated(seq), 10)
        assert primary.leader.failed
        # f1 is still in sync, but a leader that could not shrink the set confirms nothing
        with pytest.raises(ReplicationError):
            await primary.leader.replicated(primary.append("q"))
    finally:
        await _stop(primary, followers)


async def test_restarted_follower_catches_up_from_backlog_and_rejoins(tmp_path):
    primary = Primary(tmp_path / "leader", {"min_insync": 2})
    followers = await _started(primary, tmp_path)
    try:
        for _ in range(100):
            primary.append("q")
        await primary.leader.replicated(primary.leader.seq)
        await followers["f2"].close()
        await wait_for(lambda: "f2" in primary.removed, 5)
        for i in range(200):
            seq = primary.append(f"q{i % 2}")
        for pos in list(primary.live["q"])[:30]:
            primary.ack("q", pos)
        await primary.leader.replicated(primary.leader.seq)
        f2 = followers["f2"] = Follower("f2", "127.0.0.1", primary.leader.port, SECRET,
                                        tmp_path / "f2")
        await f2.start()
        await wait_for(lambda: primary.leader.insync == {"f1", "f2"}, 15, what="f2 rejoined")
        assert f2.resyncs == 0  # from the backlog, not a full resync
        seq = primary.append("q")
        await primary.leader.replicated(seq)
        assert f2.durable >= seq
        assert_holds(primary, f2.data_dir, tmp_path)
    finally:
        await _stop(primary, followers)
    assert_equal(primary, tmp_path / "f2", tmp_path)


async def test_replayed_operations_are_harmless(tmp_path):
    """A follower's recorded position may lag its disk (it is written with the next batch):
    operations it already applied come again on reconnecting and change nothing."""
    primary = Primary(tmp_path / "leader", {"min_insync": 2})
    followers = await _started(primary, tmp_path)
    try:
        early = primary.leader.seq
        for i in range(60):
            primary.append(f"q{i % 2}")
        for pos in list(primary.live["q0"])[:10]:
            primary.ack("q0", pos)
        primary.purge("q1", list(primary.live["q1"])[:3])
        primary.delete("q1")
        for _ in range(5):
            primary.append("q1")  # the same store id again, positions from the start
        await primary.leader.replicated(primary.leader.seq)
        await followers["f2"].close()
        # as if f2 had crashed with its position written long ago
        state = ReplicaState(tmp_path / "f2" / "replica.state")
        state.write(state.log_id, early)
        state.close()
        f2 = followers["f2"] = Follower("f2", "127.0.0.1", primary.leader.port, SECRET,
                                        tmp_path / "f2")
        await f2.start()
        await wait_for(lambda: primary.leader.insync == {"f1", "f2"}, 15, what="f2 rejoined")
        assert f2.resyncs == 0
        await primary.leader.replicated(primary.append("q0"))
    finally:
        await _stop(primary, followers)
    assert_equal(primary, tmp_path / "f2", tmp_path)


async def test_new_leader_log_means_full_resync(tmp_path, monkeypatch):
    """A follower of one leader's log that meets another log (a new term) resyncs fully:
    nothing of the old log's stores survives (their directory is renamed aside and removed
    in the background), and fsyncs started mid-resync (here after every batch) change
    nothing of what it holds."""
    monkeypatch.setattr(follower_mod, "RESYNC_SYNC_BYTES", 1)
    first = Primary(tmp_path / "leader1", {"min_insync": 2})
    followers = await _started(first, tmp_path, ("f1",))
    for i in range(30):
        first.append(f"old{i % 2}")
    await first.leader.replicated(first.leader.seq)
    port = first.leader.port
    await first.leader.close()
    first.close()

    second = Primary(tmp_path / "leader2", {"min_insync": 2, "port": port})
    for i in range(40):  # several reads' worth: the resync spans batches
        second.append(f"new{i % 2}", os.urandom(64 * 1024))
    try:
        await second.leader.start()
        await wait_for(lambda: second.leader.insync == {"f1"}, 15, what="f1 follows the new log")
        assert followers["f1"].resyncs == 2  # the first connect, and the new log
        await second.leader.replicated(second.append("new0"))
        await wait_for(lambda: not list((tmp_path / "f1").glob("stores.old-*")), 10,
                       what="the old log's stores removed")
    finally:
        await _stop(second, followers)
    assert_equal(second, tmp_path / "f1", tmp_path)
    assert not store_directory(tmp_path / "f1", "old0").exists()


async def test_follower_removes_stores_a_crashed_resync_left(tmp_path):
    """A follower killed between renaming its old stores aside and removing them finds
    them at its next start and removes them (without a leader to follow)."""
    left = tmp_path / "f1" / "stores.old-0badcafe" / "71"
    left.mkdir(parents=True)
    (left / "0000000000000001.seg").write_bytes(b"x" * 4096)
    f1 = Follower("f1", "127.0.0.1", 9, SECRET, tmp_path / "f1")  # port 9: nobody there
    await f1.start()
    try:
        await wait_for(lambda: not left.parent.exists(), 10, what="the leftover removed")
        assert (tmp_path / "f1" / "stores").is_dir()
    finally:
        await f1.close()


def test_frames_are_checked():
    parts = [wire.record_head(4, 42), b"data", wire.record_head(0, 43), b""]
    body = wire.op_records(wire.RESYNC_RECORD, 7, b"q", 2, parts)
    op = wire.parse_op(body)
    assert (op.kind, op.seq, op.store, op.position) == (wire.RESYNC_RECORD, 7, "q", 2)
    appends = wire.parse_op(wire.op_records(wire.OP_APPEND, 9, b"q", 2, parts))
    assert (appends.kind, appends.seq, appends.store) == (wire.OP_APPEND, 9, "q")
    pos42 = (42).to_bytes(8, "little")
    assert wire.records(appends) == [(42, pos42 + b"data"), (43, (43).to_bytes(8, "little"))]
    for bad in (wire.op_records(wire.OP_APPEND, 9, b"q", 3, parts),
                wire.op_records(wire.OP_APPEND, 9, b"q", 1, parts),
                wire.op_records(wire.OP_APPEND, 9, b"q", 2, parts)[:-3]):
        with pytest.raises(wire.WireError):
            wire.records(wire.parse_op(bad))
    purge = wire.parse_op(wire.op_purge(8, b"q", [1, 2], 99))
    assert purge.keep == (1, 2) and purge.position == 99

    async def read(raw: bytes, limit: int = wire.MAX_FRAME) -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await wire.read_frame(reader, limit)

    framed = wire.frame(body)
    assert asyncio.run(read(framed)) == body
    corrupt = framed[:-1] + bytes([framed[-1] ^ 1])
    with pytest.raises(wire.WireError, match="checksum"):
        asyncio.run(read(corrupt))
    with pytest.raises(wire.WireError, match="length"):
        asyncio.run(read(framed, limit=8))
    with pytest.raises(wire.WireError):
        wire.parse_op(body[:5])


async def test_follower_too_far_behind_resyncs_fully(tmp_path):
    primary = Primary(tmp_path / "leader", {"min_insync": 2, "backlog_bytes": 32 * 1024})
    followers = await _started(primary, tmp_path)
    try:
        for _ in range(20):
            primary.append("q")
        await primary.leader.replicated(primary.leader.seq)
        await followers["f2"].close()
        await wait_for(lambda: "f2" in primary.removed, 5)
        for i in range(400):  # far more than the backlog holds
            primary.append(f"q{i % 3}", os.urandom(512))
        for pos in list(primary.live["q"])[:10]:
            primary.ack("q", pos)
        primary.delete("q2")
        await primary.leader.replicated(primary.leader.seq)
        f2 = followers["f2"] = Follower("f2", "127.0.0.1", primary.leader.port, SECRET,
                                        tmp_path / "f2")
        await f2.start()
        # writes go on while it resyncs
        for _ in range(20):
            primary.append("q1")
        await wait_for(lambda: primary.leader.insync == {"f1", "f2"}, 15, what="f2 rejoined")
        assert f2.resyncs == 1
        seq = primary.append("q")
        await primary.leader.replicated(seq)
        assert_holds(primary, f2.data_dir, tmp_path)
    finally:
        await _stop(primary, followers)
    assert_equal(primary, tmp_path / "f2", tmp_path)
    assert not store_directory(tmp_path / "f2", "q2").exists()


@pytest.mark.timeout(180)
async def test_checker_random_operations_with_follower_kills(tmp_path):
    seed = int(os.environ.get("WARREN_CHECKER_SEED") or int.from_bytes(os.urandom(4)))
    print(f"checker seed {seed}")  # shown with a failure: rerun with it
    rnd = random.Random(seed)
    primary = Primary(
        tmp_path / "leader",
        {"min_insync": 1, "follower_timeout": 0.5, "backlog_bytes": 64 * 1024},
    )
    names = ("f1", "f2", "f3")
    followers = await _started(primary, tmp_path, names)
    checked = kills = failed_waits = 0
    try:
        for step in range(400):
            sid = f"q{rnd.randrange(4)}"
            roll = rnd.random()
            if roll < 0.6 or not primary.live.get(sid):
                seq = primary.append(sid, os.urandom(rnd.randrange(1, 2048)))
            elif roll < 0.85:
                seq = primary.ack(sid, rnd.choice(list(primary.live[sid])))
            elif roll < 0.9:
                live = list(primary.live[sid])
                seq = primary.purge(sid, rnd.sample(live, min(len(live), 3)))
            elif roll < 0.92:
                seq = primary.delete(sid)
            else:
                seq = primary.append(sid)
            if rnd.random() < 0.03:
                name = rnd.choice(names)
                if followers[name] is not None:
                    await followers[name].close()
                    followers[name] = None
                    kills += 1
            if rnd.random() < 0.05:
                for name in names:
                    if followers[name] is None:
                        followers[name] = Follower(name, "127.0.0.1", primary.leader.port,
                                                   SECRET, tmp_path / name)
                        await followers[name].start()
            if step % 7 == 0:
                # at the moment the wait completes: who is in sync, and their files
                then: list = []
                fut = asyncio.get_running_loop().create_future()

                def done(ok, fut=fut, then=then):
                    live = {sid: dict(recs) for sid, recs in primary.live.items()}
                    copies = {n: copy_of(tmp_path / n, tmp_path) for n in primary.leader.insync}
                    then.append((live, copies))
                    fut.set_result(ok)

                primary.leader.when_replicated(seq, done)
                if not await asyncio.wait_for(fut, 20):
                    failed_waits += 1
                    continue
                live, copies = then[0]
                for copy in copies.values():
                    assert_holds(primary, copy, tmp_path, live)
                    shutil.rmtree(copy)
                    checked += 1
        for name in names:
            if followers[name] is None:
                followers[name] = Follower(name, "127.0.0.1", primary.leader.port, SECRET,
                                           tmp_path / name)
                await followers[name].start()
        await wait_for(lambda: primary.leader.insync == set(names), 30, what="all rejoined")
        await primary.leader.replicated(primary.append("final"))
        assert checked > 0 and failed_waits == 0
    finally:
        await _stop(primary, {k: v for k, v in followers.items() if v is not None})
    print(f"checker: {checked} follower checks, {kills} kills")
    for name in names:
        assert_equal(primary, tmp_path / name, tmp_path)


async def test_removal_goes_through_the_fenced_isr_in_etcd(make_node, cluster, tmp_path):
    node = await make_node("leader")
    lead = await Election(node.etcd, cluster, "leader").campaign(node.session)
    isr = InSyncReplicas(node.etcd, cluster, min_insync=2)
    await isr.write(lead, [])
    order: list[str] = []

    async def on_add(name):
        await isr.add(lead, name)

    async def on_remove(name):
        await isr.remove(lead, name)
        order.append(f"isr-removed {name}")

    primary = Primary(tmp_path / "leader", {"on_add": on_add, "on_remove": on_remove,
                                            "follower_timeout": 0.5})
    followers = await _started(primary, tmp_path)
    try:
        assert set((await isr.read()).members) == {"leader", "f1", "f2"}
        followers["f2"].pause()
        seq = primary.append("q", os.urandom(1024))

        def done(ok):
            order.append(f"wait {ok}")

        primary.leader.when_replicated(seq, done)
        await wait_for(lambda: len(order) == 2, 10)
        assert order == ["isr-removed f2", "wait True"]
        assert (await isr.read()).members == ("leader", "f1")
    finally:
        await _stop(primary, followers)


async def test_split_frames_reads_what_read_frame_reads():
    """The follower's chunked frame splitter against the plain two-read reader, over
    random frames cut at random places; a bad checksum or length fails both alike."""
    rnd = random.Random(5)
    bodies = [os.urandom(rnd.randrange(1, 3000)) for _ in range(300)]
    stream = b"".join(wire.frame(b) for b in bodies)
    reader = asyncio.StreamReader()
    reader.feed_data(stream)
    reader.feed_eof()
    plain = [await wire.read_frame(reader) for _ in bodies]
    for splitter in (wire.split_frames, wire.split_frame_views):
        buf, split, at = bytearray(), [], 0
        while at < len(stream):
            step = rnd.randrange(1, 5000)
            buf += stream[at:at + step]
            at += step
            split += splitter(buf)
        assert [bytes(b) for b in split] == plain == bodies and not buf
        bad = bytearray(wire.frame(b"hello"))
        bad[-1] ^= 1
        with pytest.raises(wire.WireError):
            splitter(bad)
        with pytest.raises(wire.WireError):
            splitter(bytearray(wire.FRAME.pack(wire.MAX_FRAME + 1, 0)))


def test_parse_op_of_a_view_reads_what_it_reads_of_bytes():
    """The follower parses views (split_frame_views): every kind decodes as from bytes,
    an append's records are the same bytes, and opaque payloads are copies (a hook may
    keep them)."""
    parts = []
    for pos, data in ((7, b"abc"), (9, b""), (12, os.urandom(1500))):
        parts += [wire.record_head(len(data), pos), data]
    bodies = [
        wire.op_records(wire.OP_APPEND, 3, "q/é".encode(), 3, parts),
        wire.op_ack(4, b"q", [7, 12]),
        wire.op_purge(5, b"q", [9], 12),
        wire.op_plain(wire.OP_DELAYED, 6, b"q", b"payload"),
        wire.op_plain(wire.OP_DELETE, 7, b"q"),
    ]
    views = wire.split_frame_views(bytearray(b"".join(wire.frame(b) for b in bodies)))
    for body, view in zip(bodies, views, strict=True):
        a, b = wire.parse_op(body), wire.parse_op(view)
        assert (a.kind, a.seq, a.store, a.position, bytes(a.data), a.keep) == (
            b.kind, b.seq, b.store, b.position, bytes(b.data), b.keep)
        if a.kind == wire.OP_APPEND:
            assert [(p, bytes(r)) for p, r in wire.records(b)] == wire.records(a)
        elif a.kind == wire.OP_DELAYED:
            assert type(b.data) is bytes


def _resync_events(caplog) -> list[str]:
    out = []
    for r in caplog.records:
        msg = r.getMessage()
        for f in ("f1", "f2"):
            if msg.startswith(f"replication: full resync of {f} "):
                out.append(f"resync {f}")
            elif msg.startswith(f"replication: {f} has its full resync on disk"):
                out.append(f"resynced {f}")
    return out


async def test_full_resyncs_run_one_at_a_time(tmp_path, caplog):
    """Two followers that need a full resync at once (a cluster restarted): the second
    waits for the first, which is in sync sooner than if both shared the leader."""
    caplog.set_level("INFO", logger="warren.cluster.replication")
    primary = Primary(tmp_path / "leader", {"min_insync": 1})
    for i in range(64):
        primary.append(f"q{i % 2}", os.urandom(64 * 1024))
    followers: dict[str, Follower] = {}
    try:
        await primary.leader.start()
        for name in ("f1", "f2"):
            followers[name] = Follower(name, "127.0.0.1", primary.leader.port, SECRET, tmp_path / name)
        await asyncio.gather(*(f.start() for f in followers.values()))  # both connect at once
        await wait_for(lambda: primary.leader.insync == {"f1", "f2"}, 20, what="both in sync")
        events = _resync_events(caplog)
        first, second = events[0][-2:], events[2][-2:]
        assert events == [f"resync {first}", f"resynced {first}", f"resync {second}", f"resynced {second}"]
    finally:
        await _stop(primary, followers)
    assert_equal(primary, tmp_path / "f2", tmp_path)


async def test_a_stalled_full_resync_holds_no_other_back(tmp_path, caplog):
    """A follower that stops reading mid-resync: after ``follower_timeout`` without
    progress the next follower resyncs alongside it and joins; the stalled one joins once
    it reads again."""
    caplog.set_level("INFO", logger="warren.cluster.replication")
    primary = Primary(tmp_path / "leader", {"min_insync": 1, "follower_timeout": 0.5})
    for i in range(256):  # more than the socket buffers hold
        primary.append(f"q{i % 2}", os.urandom(64 * 1024))
    followers: dict[str, Follower] = {}
    try:
        await primary.leader.start()
        f1 = followers["f1"] = Follower("f1", "127.0.0.1", primary.leader.port, SECRET, tmp_path / "f1")
        f1.pause()
        await f1.start()
        await wait_for(lambda: "resync f1" in _resync_events(caplog), 10, what="f1 resyncing")
        f2 = followers["f2"] = Follower("f2", "127.0.0.1", primary.leader.port, SECRET, tmp_path / "f2")
        await f2.start()
        await wait_for(lambda: primary.leader.insync == {"f2"}, 20, what="f2 in sync beside the stalled f1")
        assert any("resync of f1 stalled: resyncing f2 alongside" in r.getMessage() for r in caplog.records)
        f1.resume()
        await wait_for(lambda: primary.leader.insync == {"f1", "f2"}, 20, what="f1 in sync too")
    finally:
        await _stop(primary, followers)
    assert_equal(primary, tmp_path / "f1", tmp_path)


async def test_a_new_log_continues_only_for_followers_exactly_at_its_parent(tmp_path):
    """A leader whose log continues ``(X, s)`` resumes a follower without a full resync only
    if the follower's stores hold exactly X's operations up to s (its clean close said
    so): one killed after applying (its state not exact) or at another seq resyncs fully."""
    first = Primary(tmp_path / "leader1", {"min_insync": 2})
    followers = await _started(first, tmp_path, ("f1", "f2", "f3"))
    for i in range(30):
        first.append(f"s{i % 2}")
    await first.leader.replicated(first.leader.seq)
    await wait_for(lambda: all(f.durable == first.leader.seq for f in followers.values()), 10,
                   what="every follower at the last seq")
    s, log_id, port = first.leader.seq, first.leader.log_id, first.leader.port
    for f in followers.values():
        await f.close()
    await first.leader.close()
    first.close()
    for name in ("f1", "f2", "f3"):
        state = ReplicaState(tmp_path / name / "replica.state")
        assert (state.log_id, state.seq, state.exact) == (log_id, s, True)
        if name == "f2":  # as a follower killed with operations applied past its state
            state.write(log_id, s)
        if name == "f3":  # exact, but at another seq than the new log's parent
            state.write(log_id, s - 1, True)
        state.close()

    second = Primary(tmp_path / "leader2", {"min_insync": 2, "port": port, "parent": (log_id, s)})
    assert second.leader.seq == s
    again = {name: Follower(name, "127.0.0.1", port, SECRET, tmp_path / name) for name in followers}
    for f in again.values():
        await f.start()
    # the claim is withdrawn on disk before anything is applied (a crash from here on
    # may leave more in the files than the state says)
    state = ReplicaState(tmp_path / "f1" / "replica.state")
    assert (state.seq, state.exact) == (s, False)
    state.close()
    try:
        await second.leader.start()
        await wait_for(lambda: second.leader.insync == {"f1", "f2", "f3"}, 15, what="all in sync")
        assert (again["f1"].continued, again["f1"].resyncs) == (1, 0)
        assert (again["f2"].continued, again["f2"].resyncs) == (0, 1)
        assert (again["f3"].continued, again["f3"].resyncs) == (0, 1)
        # the one that continued takes the new log's operations from s + 1
        seq = second.append("s0")
        assert seq == s + 1
        await second.leader.replicated(seq)
        assert again["f1"].durable == seq
        # its state names the new log once written (and is not exact while it follows)
        await again["f1"].close()
        state = ReplicaState(tmp_path / "f1" / "replica.state")
        assert (state.log_id, state.seq, state.exact) == (second.leader.log_id, seq, True)
        state.close()
        del again["f1"]
    finally:
        await _stop(second, again)
    # a full resync replaces whatever a crash left: f2 is exact again
    state = ReplicaState(tmp_path / "f2" / "replica.state")
    assert (state.log_id, state.exact) == (second.leader.log_id, True)
    state.close()


async def test_a_follower_that_crashed_claims_exact_stores_only_past_the_leaders_seq(tmp_path):
    """A follower whose position was recorded without the claim (killed) may hold ops past
    it in its files: it claims exact stores again only once it has durably applied the
    leader's seq at the time it reconnected (nothing it held can be later than that), or
    after a full resync."""
    first = Primary(tmp_path / "leader1", {"min_insync": 1})
    followers = await _started(first, tmp_path, ("f1",))
    first.append("s")
    await first.leader.replicated(first.leader.seq)
    await followers["f1"].close()

    def taint() -> None:  # as a follower killed after its start withdrew the claim
        state = ReplicaState(tmp_path / "f1" / "replica.state")
        state.write(state.log_id, state.seq)
        state.close()

    def recorded() -> tuple[int, bool]:
        state = ReplicaState(tmp_path / "f1" / "replica.state")
        try:
            return state.seq, state.exact
        finally:
            state.close()

    taint()
    for _ in range(5):
        first.append("s")  # the leader goes on while f1 is down
    top = first.leader.seq
    f1 = Follower("f1", "127.0.0.1", first.leader.port, SECRET, tmp_path / "f1")
    f1.pause()  # reconnects, reads, applies nothing
    await f1.start()
    await wait_for(lambda: f1.connects == 1, 10, what="f1 reconnected")
    await f1.close()
    assert recorded()[1] is False  # still tainted: not past the leader's seq

    taint()
    f1 = Follower("f1", "127.0.0.1", first.leader.port, SECRET, tmp_path / "f1")
    await f1.start()
    await wait_for(lambda: f1.durable >= top, 10, what="f1 caught up")
    assert f1.resyncs == 0  # same log: it resumed
    await f1.close()
    assert recorded() == (top, True)
    await first.leader.close()
    first.close()


async def test_a_follower_retargeted_to_the_next_leader_keeps_its_stores_open(tmp_path):
    """The node follows a new leader with the same Follower: its stores stay open (no
    second scan), and it continues in the new log from where it was."""
    first = Primary(tmp_path / "leader1", {"min_insync": 2})
    followers = await _started(first, tmp_path, ("f1",))
    f1 = followers["f1"]
    for i in range(20):
        first.append(f"s{i % 2}")
    await first.leader.replicated(first.leader.seq)
    stores = dict(f1._stores)
    await f1.retarget(None)  # the leader is gone, no successor yet
    s, log_id = first.leader.seq, first.leader.log_id
    await first.leader.close()
    first.close()
    second = Primary(tmp_path / "leader2", {"min_insync": 2, "parent": (log_id, s)})
    try:
        await second.leader.start()
        await f1.retarget("127.0.0.1", second.leader.port)
        await wait_for(lambda: second.leader.insync == {"f1"}, 10, what="f1 follows the new log")
        assert (f1.continued, f1.resyncs) == (1, 1)  # the first connect was a resync
        assert all(f1._stores[sid] is replica for sid, replica in stores.items())
        await second.leader.replicated(second.append("s0"))
        assert f1.durable == s + 1
    finally:
        await f1.close()
        await second.leader.close()
        second.close()


async def test_ops_a_deposed_leader_streamed_past_the_new_logs_parent_force_a_full_resync(tmp_path):
    """The old leader keeps streaming after the follower that will lead stopped following
    (a leader paused or cut off from etcd, not dead): the other follower holds ops of the
    old log past the new log's parent, which the new leader does not have. It must not
    continue from there (its stores hold records the new leader never had): it resyncs
    fully and then holds exactly the new leader's records."""
    first = Primary(tmp_path / "leader1", {"min_insync": 1})
    followers = await _started(first, tmp_path, ("f1", "f2"))
    for i in range(10):
        first.append(f"s{i % 2}")
    await first.leader.replicated(first.leader.seq)
    await wait_for(lambda: followers["f1"].durable == first.leader.seq, 10, what="f1 has it all")
    s, log_id = first.leader.seq, first.leader.log_id
    await followers["f1"].retarget(None)  # f1 wins the election here
    for _ in range(3):
        first.append("s0")  # the deposed leader streams on, to f2 only
    await wait_for(lambda: followers["f2"].durable == first.leader.seq, 10, what="f2 took them")
    await followers["f2"].retarget(None)  # f2 sees the new leader
    await first.leader.close()
    first.close()

    # the new leader, continuing (X, s) (its own stores stand in for f1's here)
    second = Primary(tmp_path / "leader2", {"min_insync": 1, "parent": (log_id, s)})
    second.append("n0")
    try:
        await second.leader.start()
        await followers["f2"].retarget("127.0.0.1", second.leader.port)
        await wait_for(lambda: second.leader.insync == {"f2"}, 10, what="f2 follows the new log")
        assert followers["f2"].continued == 0
        assert followers["f2"].resyncs == 2  # its first connect, and this one
    finally:
        await followers["f1"].close()
        await followers["f2"].close()
        await second.leader.close()
        second.close()
    assert_equal(second, tmp_path / "f2", tmp_path)


async def test_a_follower_has_a_batchs_acks_in_its_files_when_it_acknowledges_it(tmp_path):
    """A follower killed right after acknowledging a batch (its buffers lost) comes back
    without the records that batch acked: what its position says is in its files."""
    primary = Primary(tmp_path / "leader", {"min_insync": 2})
    followers = await _started(primary, tmp_path, ("f1",))
    f1 = followers["f1"]
    for _ in range(10):
        primary.append("q")
    positions = sorted(primary.live["q"])
    await primary.leader.replicated(primary.leader.seq)
    for pos in positions[:6]:
        primary.ack("q", pos)
    await primary.leader.replicated(primary.append("q"))  # the acks ride with it
    # a kill -9: nothing buffered in the process reaches the files
    f1._task.cancel()
    for replica in f1._stores.values():
        replica.store.abandon()
    f1._stores.clear()
    try:
        assert set(on_disk(tmp_path / "f1", "q", tmp_path)) == set(primary.live["q"])
    finally:
        await f1.close()
        await primary.leader.close()
        primary.close()
