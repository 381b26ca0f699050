"""A persistent message store: an append-only log of segment files with ack files.

One :class:`LogStore` is one FIFO lane (see :mod:`storage.base`). It keeps a
read *cursor* into the log instead of a per-message index, so a backlog costs
disk, not RAM: RAM holds counts, per-segment bookkeeping, a bounded cache of
the most recently pushed records (so a queue whose consumers keep up never
reads back from disk), and requeued records.

Layout and record format: :mod:`storage.log.format`.

Life of a record:

* ``push`` encodes it, appends it to an in-memory write buffer (written to the
  segment file with ``pwrite`` when the buffer fills, before an fsync, or by a
  background flush) and to the tail cache.
* ``shift`` takes requeued records first, then the record at the cursor: from
  the tail cache if it is there, else from the segment through ``mmap``.
* ``ack`` appends the record's offset to its segment's ack file. A segment all
  of whose records are acked (and that is no longer written to) is deleted
  together with its ack file; a full one's file is kept a while as the next
  segment's (:mod:`storage.log.spare`).
* ``sync`` is group commit (:mod:`storage.log.groupcommit`).

Recovery (in the constructor, :mod:`storage.log.recovery`) scans every
segment, validates length + CRC of each record, truncates a torn or corrupt tail (and logs what it dropped to the
``warren.storage`` logger), skips transient and acked records and rebuilds the
counts. Writing always continues in a new segment, so records written before a
restart are exactly those at positions ``<= recovered_position_limit``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sortedcontainers import SortedDict
from warren.storage.log.crc import crc32
from warren.storage.log.format import (
    FLAG_PERSISTENT,
    LEN_CRC,
    MAGIC,
    MAX_OFFSET,
    META,
    OFFSET_MASK,
    RECORD,
    RECORD_HEADER,
    SEGMENT_HEADER,
    SEGMENT_SHIFT,
    crc_seed,
    parse_name,
)
from warren.storage.log.groupcommit import _GroupCommit, _SyncJob, default_executor
from warren.storage.log.recovery import _Recovery
from warren.storage.log.scan import _Scan
from warren.storage.log.segment import _Segment, _unlink
from warren.storage.log.segment_io import _SegmentIO
from warren.storage.log.spare import SPARE_NAME, _Spares
from warren.storage.log.syncproc import SyncProcess

__all__ = ["LogStore", "default_executor"]

#: default segment file size (``set_default_segment_size`` changes it for the process)
DEFAULT_SEGMENT_SIZE = 32 * 1024 * 1024
_default_segment_size = DEFAULT_SEGMENT_SIZE


def set_default_segment_size(size: int) -> None:
    """The segment size of every store opened from now on without one (the broker's
    ``segment_size`` setting: queues, delayed exchanges and replicas alike)."""
    global _default_segment_size
    if not SEGMENT_HEADER + RECORD_HEADER < size <= 1 << 31:
        raise ValueError("segment_size must be between 22 bytes and 2 GiB")
    _default_segment_size = size

#: tail cache bounds (records, bytes of ``record.size``)
DEFAULT_CACHE_RECORDS = 4096
DEFAULT_CACHE_BYTES = 4 * 1024 * 1024
#: write buffer size that triggers a write to the file
WRITE_BUFFER = 256 * 1024
#: pending acks (entries) of one segment that trigger a write to its ack file
ACK_BUFFER = 16 * 1024
#: seconds between background flushes while there is something to flush
FLUSH_INTERVAL = 0.2

#: stands for a requeued record left on disk (read back, same size, when shifted)
_ON_DISK = object()

_rec_unpack = RECORD.unpack_from
_lencrc_pack = LEN_CRC.pack
_meta_pack = META.pack


class LogStore(_Recovery, _SegmentIO, _Spares, _GroupCommit, _Scan):
    """A persistent FIFO lane of records with per-record ack (see module docstring).

    ``encode(record) -> bytes`` and ``decode(bytes) -> record`` convert records;
    records need ``.size`` (int) and ``.persistent`` (bool). Use from one event
    loop thread; only fsyncs run elsewhere: in ``executor`` (a
    ``concurrent.futures.Executor``) if given, else in the loop's fsync helper
    process (:mod:`storage.log.syncproc`), else in a small shared thread pool.

    ``durable=False`` (a non-durable queue): records still go to disk, so a
    backlog stays out of RAM, but every record is treated as transient (never
    fsynced, ``sync`` answers at once) and opening discards what a previous
    run left in ``directory``.

    Attributes:
        recovered_position_limit: positions ``<=`` this were written before the
            restart (0 if nothing was recovered): such a record may have been
            delivered already, so the broker should mark it redelivered.
        last_error: the write or fsync error the store is failing with, ``None``
            once an fsync succeeds again (a disk-full signal for the broker).
    """

    __slots__ = (
        "directory",
        "_encode",
        "_decode",
        "_segment_size",
        "_executor",
        "_segments",
        "_wseg",
        "_wbase",
        "_woff",
        "_wfd",
        "_wflushed",
        "_wbuf",
        "_wseed",
        "_spare",
        "_spare_timer",
        "_cursor",
        "_cache",
        "_cache_bytes",
        "_cache_max",
        "_cache_max_bytes",
        "_requeued",
        "_decode_requeued",
        "_ready",
        "_bytes",
        "_peeked",
        "_dirty",
        "_unsynced_fds",
        "_closing_fds",
        "_sync_dirs",
        "_waiters",
        "_job",
        "_syncer",
        "_scheduled",
        "_timer",
        "_ack_dirty",
        "_afd",
        "_afd_seg",
        "_loop",
        "_flush_interval",
        "_closed",
        "_durable",
        "_dir_made",
        "last_error",
        "recovered_position_limit",
    )

    def __init__(
        self,
        directory: str | Path,
        encode: Callable[[Any], bytes],
        decode: Callable[[bytes], Any],
        *,
        segment_size: int | None = None,
        executor: concurrent.futures.Executor | None = None,
        cache_records: int = DEFAULT_CACHE_RECORDS,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        flush_interval: float = FLUSH_INTERVAL,
        durable: bool = True,
        decode_requeued: Callable[[bytes], Any] | None = None,
    ) -> None:
        if segment_size is None:
            segment_size = _default_segment_size
        if not SEGMENT_HEADER + RECORD_HEADER < segment_size <= 1 << 31:
            raise ValueError("segment_size must be between 22 bytes and 2 GiB")
        self.directory = Path(directory)
        self._encode = encode
        self._decode = decode
        self._segment_size = segment_size
        self._executor = executor
        self._cache: deque[tuple[int, Any]] = deque()
        self._cache_bytes = 0
        self._cache_max = max(0, cache_records)
        self._cache_max_bytes = max(0, cache_bytes)
        #: position -> requeued record, or _ON_DISK when the record was left on disk
        #: (``requeue(..., unchanged=True)``): it is read back when shifted
        self._requeued: SortedDict = SortedDict()
        #: decodes a requeued record read back from disk (default: ``decode``)
        self._decode_requeued = decode_requeued or decode
        self._peeked: tuple[int, Any, int, int] | None = None
        self._dirty = False
        self._unsynced_fds: list[int] = []
        self._closing_fds: list[int] = []
        self._sync_dirs: list[Path] = []
        self._waiters: list[Callable[[bool], None]] = []
        self._job: _SyncJob | None = None
        self._syncer: SyncProcess | None = None
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._ack_dirty: set[_Segment] = set()
        #: the ack file kept open, and its segment
        self._afd = -1
        self._afd_seg: _Segment | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_interval = flush_interval
        self._closed = False
        self._durable = durable
        self.last_error: BaseException | None = None
        self.recovered_position_limit = 0
        #: a drained segment's file kept for the next segment (storage.log.spare)
        self._spare = False
        self._spare_timer: asyncio.TimerHandle | None = None

        # A new store makes its directory on its first write: declaring 10k queues
        # that stay idle costs no mkdir (nor an fsync of their parent).
        self._dir_made = self.directory.is_dir()
        self._segments: dict[int, _Segment] = {}
        self._ready = 0
        self._bytes = 0
        if not self._dir_made:
            last_id, cursor = 0, 0
        elif durable:
            last_id, cursor = self._recover()
        else:
            last_id, cursor = self._discard(), 0
        # Never append to a recovered segment: a fresh one keeps recovered
        # positions below recovered_position_limit and leaves truncated tails alone.
        self._wseg = _Segment(self.directory, last_id + 1)
        self._segments[self._wseg.id] = self._wseg
        self._wbase = self._wseg.base
        self._woff = SEGMENT_HEADER
        self._wfd = -1  # the file is created on the first write: idle queues cost no fd
        self._wflushed = 0
        self._wbuf = bytearray(MAGIC)
        #: the CRC seed of the write segment's records
        self._wseed = crc_seed(self._wseg.id)
        self._cursor = cursor if cursor else self._wbase | SEGMENT_HEADER

    def skip_positions(self, beyond: int) -> None:
        """Make every position pushed from now on greater than ``beyond`` (call before the
        first push: the empty write segment is renumbered, a gap in segment ids is kept
        across restarts). For a caller that names records by position and must not reuse
        names that records copied from elsewhere carry."""
        wseg = self._wseg
        if beyond < wseg.base:
            return
        if self._wfd >= 0 or self._woff != SEGMENT_HEADER or wseg.live:
            raise RuntimeError("skip_positions after a push")
        new = _Segment(self.directory, (beyond >> SEGMENT_SHIFT) + 1)
        del self._segments[wseg.id]
        self._segments[new.id] = new
        at_tail = self._cursor == wseg.base | SEGMENT_HEADER
        self._wseg = new
        self._wbase = new.base
        self._wseed = crc_seed(new.id)
        if at_tail:
            self._cursor = new.base | SEGMENT_HEADER

    # -- the MessageStore interface ----------------------------------------
    def push(self, record: Any) -> int:
        """Append a record; return its position."""
        payload = self._encode(record)
        n = len(payload)
        off = self._woff
        total = RECORD_HEADER + n
        if off + total > self._segment_size and off > SEGMENT_HEADER:
            off = self._rotate()
            if off + total > MAX_OFFSET:
                raise OSError(f"segment {self._wseg.path} cannot grow: {self.last_error}")
        size = record.size
        if record.persistent and self._durable:
            meta = _meta_pack(FLAG_PERSISTENT, size)
            self._dirty = True
            if not self._scheduled and self._job is None and self._loop is not None:
                # the fsync this push's confirm will wait for starts first thing when
                # the turn ends, before the deliveries the push scheduled (a batch's
                # dispatch held the fsync's start back ~0.7 ms on a cluster leader)
                self._scheduled = True
                self._loop.call_soon(self._start_sync_if_waiting)
        else:
            meta = _meta_pack(0, size)
        buf = self._wbuf
        buf += _lencrc_pack(n, crc32(payload, crc32(meta, self._wseed)))
        buf += meta
        buf += payload
        self._woff = off + total
        pos = self._wbase | off
        self._wseg.live += 1
        self._ready += 1
        self._bytes += size
        cache = self._cache
        cache.append((pos, record))
        cached = self._cache_bytes + size
        if len(cache) > self._cache_max or cached > self._cache_max_bytes:
            cached = self._evict(cached)
        self._cache_bytes = cached
        if len(buf) >= WRITE_BUFFER:
            self._flush_write()
        if self._timer is None:
            self._arm()
        return pos

    def push_many(self, records: list[Any], out: list[int] | None = None) -> list[int]:
        """``push`` each record, in order: the same bytes and positions, with the per-call
        work done once (a replication follower appends hundreds of records at a time).

        The positions are appended to ``out`` (returned) as the records go in: if a push
        fails (OSError, as ``push`` raises it), ``out`` holds those that made it."""
        out = [] if out is None else out
        first = len(out)
        encode = self._encode
        seg_size = self._segment_size
        durable = self._durable
        lencrc = _lencrc_pack
        meta_of = _meta_pack
        buf = self._wbuf
        off = self._woff
        base = self._wbase
        seed = self._wseed
        live = 0
        size_total = 0
        add = out.append
        try:
            for record in records:
                payload = encode(record)
                n = len(payload)
                total = RECORD_HEADER + n
                if off + total > seg_size and off > SEGMENT_HEADER:
                    self._woff = off
                    self._wseg.live += live
                    live = 0
                    off = self._rotate()
                    if off + total > MAX_OFFSET:
                        raise OSError(f"segment {self._wseg.path} cannot grow: {self.last_error}")
                    base = self._wbase
                    buf = self._wbuf
                    seed = self._wseed
                size = record.size
                if record.persistent and durable:
                    meta = meta_of(FLAG_PERSISTENT, size)
                    self._dirty = True
                else:
                    meta = meta_of(0, size)
                buf += lencrc(n, crc32(payload, crc32(meta, seed)))
                buf += meta
                buf += payload
                add(base | off)
                off += total
                live += 1
                size_total += size
                if len(buf) >= WRITE_BUFFER:
                    self._woff = off
                    self._flush_write()
        finally:
            self._woff = off
            self._wseg.live += live
            self._ready += len(out) - first
            self._bytes += size_total
        if self._cache_max > 0:
            cache = self._cache
            cached = self._cache_bytes
            for pos, record in zip(out[first:], records, strict=True):
                cache.append((pos, record))
                cached += record.size
            if len(cache) > self._cache_max or cached > self._cache_max_bytes:
                cached = self._evict(cached)
            self._cache_bytes = cached
        if len(out) > first and self._timer is None:
            self._arm()
        return out

    def encode(self, record: Any) -> bytes:
        """A record's stored bytes (what ``read`` returns raw), made with the store's codec."""
        return self._encode(record)

    def shift(self) -> tuple[int, Any] | None:
        """Take the next ready record (requeued ones first, lowest position first)."""
        if self._requeued:
            pos, record = self._requeued.popitem(0)
            self._ready -= 1
            if record is _ON_DISK:  # left on disk when requeued
                record = self.read(pos, self._decode_requeued)
            self._bytes -= record.size
            return pos, record
        if not self._ready:
            return None
        item = self._peeked
        if item is None:
            cache = self._cache
            if not cache or self._cursor < cache[0][0]:
                item = self._read_disk()
            if item is None:
                # the cursor has reached the cached tail
                entry = cache.popleft()
                record = entry[1]
                size = record.size
                self._cache_bytes -= size
                self._cursor = cache[0][0] if cache else self._wbase | self._woff
                self._ready -= 1
                self._bytes -= size
                return entry
        else:
            self._peeked = None
        pos, record, size, nxt = item
        self._cursor = nxt
        self._ready -= 1
        self._bytes -= size
        return pos, record

    def peek(self) -> tuple[int, Any] | None:
        """The record ``shift`` would return, without taking it."""
        if self._requeued:
            pos, record = self._requeued.peekitem(0)
            if record is _ON_DISK:
                # read it once: the shift that follows takes it from here
                record = self._requeued[pos] = self.read(pos, self._decode_requeued)
            return pos, record
        if not self._ready:
            return None
        item = self._peeked
        if item is not None:
            return item[0], item[1]
        cache = self._cache
        if not cache or self._cursor < cache[0][0]:
            item = self._read_disk()
            if item is not None:
                # keep the decoded record so that the shift that follows does not decode again
                self._peeked = item
                return item[0], item[1]
        return cache[0]

    def requeue(self, position: int, record: Any, unchanged: bool = False) -> None:
        """Return an unacked record to its original place.

        ``unchanged``: the record is still what was pushed (the caller knows), so it
        need not stay in RAM: only its size is kept, and ``shift`` reads it back from
        disk (through ``decode_requeued``). A queue's worth of requeued messages
        then costs RAM for bookkeeping only, as before they were delivered."""
        # a shared marker, not even an int per record: many small objects allocated
        # while the records are freed would pin the allocator's arenas
        self._requeued[position] = _ON_DISK if unchanged else record
        self._ready += 1
        self._bytes += record.size

    def ack(self, position: int) -> None:
        """Forget an unacked record for good (appends to its segment's ack file)."""
        seg = self._segments.get(position >> SEGMENT_SHIFT)
        if seg is None:
            return
        buf = seg.ackbuf
        if not buf:
            self._ack_dirty.add(seg)
        buf.append(position & OFFSET_MASK)
        seg.live -= 1
        if seg.live <= 0 and seg is not self._wseg:
            self._drop_segment(seg)
        elif len(buf) >= ACK_BUFFER:
            self._flush_acks_of(seg)
        if self._timer is None:
            self._arm()

    def flush_acks(self) -> None:
        """Write buffered acks to the ack files now (no fsync) instead of at the next flush."""
        self._flush_acks()

    def purge(self) -> int:
        """Drop every ready record (not the unacked ones); return how many.

        Dropped records are acked on disk so that they stay dropped after a
        restart; segments lying wholly ahead of the cursor are deleted outright.
        """
        n = self._ready
        if not n:
            return 0
        for pos in list(self._requeued):
            self.ack(pos)
        self._requeued.clear()
        self._peeked = None
        self._cache.clear()
        self._cache_bytes = 0
        wend = self._wbase | self._woff
        if self._cursor < wend:
            # seal the write segment so that every ready record is in a sealed,
            # mmap-readable segment and the cursor can jump to a fresh one
            self._rotate()
            cur_id = self._cursor >> SEGMENT_SHIFT
            for sid in [s for s in self._segments if s > cur_id and s != self._wseg.id]:
                self._drop_segment(self._segments[sid])
            seg = self._segments.get(cur_id)
            if seg is not None and seg is not self._wseg:
                self._ack_rest(seg, self._cursor & OFFSET_MASK)
            self._cursor = self._wbase | self._woff
            if self._timer is None:
                self._arm()
        self._ready = 0
        self._bytes = 0
        return n

    def drain(self) -> list[tuple[int, Any]]:
        """Take every ready record at once (for dead-lettering on delete).

        Like ``shift``, the records become unacked: ack them, or delete the store.
        """
        out = []
        shift = self.shift
        while (item := shift()) is not None:
            out.append(item)
        return out

    def __len__(self) -> int:
        return self._ready

    def __bool__(self) -> bool:
        return self._ready > 0

    @property
    def ready_bytes(self) -> int:
        """Sum of ``size`` over ready records."""
        return self._bytes

    def holds_recovered(self) -> bool:
        """True if the store holds records written before the last restart."""
        return self.recovered_position_limit > 0

    def is_recovered(self, position: int) -> bool:
        """True if the record at ``position`` was written before the last restart."""
        return position <= self.recovered_position_limit

    def sync(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(ok)`` on the event loop once everything pushed so far is durable.

        ``ok`` is False if a write or fsync failed (see ``last_error``); the
        records stay in the store, but the broker should nack what it was
        about to confirm. Must be called from a running event loop.
        """
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self._closed:
            loop.call_soon(callback, True)  # close() flushed and fsynced everything
        elif self._dirty:
            self._waiters.append(callback)
            if self._job is None and not self._scheduled:
                # start at the end of this loop turn so that every sync() made
                # by this turn's publishes joins the same fsync
                self._scheduled = True
                loop.call_soon(self._start_sync)
        elif self._job is not None:
            # nothing new since the fsync in flight started: it covers us
            self._job.waiters.append(callback)
        else:
            loop.call_soon(callback, True)

    def close(self) -> None:
        """Write and fsync what is buffered, release files and memory; data stays on disk."""
        self._shutdown(durable=True)

    def abandon(self) -> None:
        """Close without writing or fsyncing anything: the caller removes the files
        (a replica about to be replaced wholesale; its directory goes at once)."""
        self._shutdown(durable=False)

    def delete(self) -> None:
        """Close and remove everything this store holds on disk."""
        self._shutdown(durable=False)
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return
        for entry in entries:
            if parse_name(entry.name) is not None or entry.name == SPARE_NAME:
                _unlink(Path(entry.path))
        try:
            self.directory.rmdir()
        except OSError:
            pass  # something else lives there; not ours to remove
