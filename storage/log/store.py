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
  together with its ack file.
* ``sync`` is group commit: callbacks wait for the next ``fsync``, which runs
  in a helper process (:mod:`storage.log.syncproc`; in threads if that is
  unavailable); every callback that arrives while one fsync is in flight is
  served by the next single one.

Recovery (in the constructor) scans every segment, validates length + CRC of
each record, truncates a torn or corrupt tail (and logs what it dropped to the
``warren.storage`` logger), skips transient and acked records and rebuilds the
counts. Writing always continues in a new segment, so records written before a
restart are exactly those at positions ``<= recovered_position_limit``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import mmap
import os
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zlib import crc32

from sortedcontainers import SortedDict

from .format import (
    CRC_START,
    FLAG_PERSISTENT,
    FLAGS_KNOWN,
    LEN_CRC,
    MAGIC,
    MAX_OFFSET,
    META,
    OFFSET_MASK,
    RECORD,
    RECORD_HEADER,
    SEGMENT_HEADER,
    SEGMENT_SHIFT,
    ack_bytes,
    ack_name,
    load_acks,
    new_ack_array,
    parse_name,
    segment_name,
)
from .fsync_helper import fsync_all as _fsync_all
from .syncproc import SyncProcess, syncer_for

log = logging.getLogger("warren.storage")

#: default segment file size
DEFAULT_SEGMENT_SIZE = 32 * 1024 * 1024
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

_executor_lock = threading.Lock()
_default_executor: concurrent.futures.ThreadPoolExecutor | None = None


def default_executor() -> concurrent.futures.ThreadPoolExecutor:
    """The thread pool fsyncs run in when a store is given no executor.

    Shared by all stores: an fsync mostly waits on the device, so a few threads
    serve many queues; a dedicated pool keeps fsyncs from queueing behind other
    work in the event loop's default executor.
    """
    global _default_executor
    with _executor_lock:
        if _default_executor is None:
            _default_executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="warren-fsync"
            )
        return _default_executor


class _Segment:
    """Bookkeeping for one segment file (no per-record state)."""

    __slots__ = (
        "id",
        "base",
        "path",
        "ack_path",
        "end",
        "start",
        "live",
        "mm",
        "recovered",
        "acks",
        "ack_i",
        "ackbuf",
        "rfd",
    )

    def __init__(self, directory: Path, segment_id: int) -> None:
        self.id = segment_id
        self.base = segment_id << SEGMENT_SHIFT
        self.path = directory / segment_name(segment_id)
        self.ack_path = directory / ack_name(segment_id)
        #: end of valid data (sealed segments; the write segment uses the store's offset)
        self.end = SEGMENT_HEADER
        #: offset where reading starts: the first live record of a recovered segment
        self.start = SEGMENT_HEADER
        #: records neither acked nor dropped: ready + unacked
        self.live = 0
        self.mm: mmap.mmap | None = None
        #: written before the restart: holds transient and acked records to skip
        self.recovered = False
        #: recovered segments: sorted offsets acked before the restart, and how
        #: far the cursor has walked through them
        self.acks: Any = None
        self.ack_i = 0
        #: acks not yet written to the ack file
        self.ackbuf = new_ack_array()
        #: read-only fd for ``LogStore.read`` (``pread``: random reads map no pages)
        self.rfd = -1

    def is_dead(self, offset: int, flags: int) -> bool:
        """True if the recovered record at ``offset`` must be skipped.

        Only called with increasing offsets (the cursor only moves forward),
        so a merge walk through the sorted acks is enough.
        """
        if not flags & FLAG_PERSISTENT:
            return True
        acks = self.acks
        if acks is None:
            return False
        i = self.ack_i
        n = len(acks)
        while i < n and acks[i] < offset:
            i += 1
        self.ack_i = i
        return i < n and acks[i] == offset

    def unmap(self) -> None:
        if self.mm is not None:
            self.mm.close()
            self.mm = None
        if self.rfd >= 0:
            _close_fd(self.rfd)
            self.rfd = -1


class _SyncJob:
    """One fsync in flight: what it covers and who waits for it."""

    __slots__ = ("future", "waiters", "close_fds", "handled", "syncer")

    def __init__(self, waiters: list[Callable[[bool], None]], close_fds: list[int]) -> None:
        self.future: concurrent.futures.Future[None] | None = None
        self.waiters = waiters
        #: retired segment fds to close once this fsync is done with them
        self.close_fds = close_fds
        #: set by close(), which then finishes the job itself
        self.handled = False
        #: the helper process running it (None: an executor thread)
        self.syncer: SyncProcess | None = None


# The running loop or None, without raising: push() looks for a loop to arm
# the flush timer on, and used without one (tools, tests) must stay cheap.
_get_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio._get_running_loop


class LogStore:
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
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        executor: concurrent.futures.Executor | None = None,
        cache_records: int = DEFAULT_CACHE_RECORDS,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        flush_interval: float = FLUSH_INTERVAL,
        durable: bool = True,
        decode_requeued: Callable[[bytes], Any] | None = None,
    ) -> None:
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_interval = flush_interval
        self._closed = False
        self._durable = durable
        self.last_error: BaseException | None = None
        self.recovered_position_limit = 0

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
        self._cursor = cursor if cursor else self._wbase | SEGMENT_HEADER

    # -- recovery ---------------------------------------------------------
    def _recover(self) -> tuple[int, int]:
        """Scan the directory, fill ``_segments`` and the counts.

        Returns the highest segment id seen and the position of the first live
        record (0 if none).
        """
        wlogs: list[int] = []
        ack_ids: set[int] = set()
        for entry in os.scandir(self.directory):
            parsed = parse_name(entry.name)
            if parsed is None:
                continue
            if parsed[1] == "wlog":
                wlogs.append(parsed[0])
            else:
                ack_ids.add(parsed[0])
        wlogs.sort()
        last_id = max([0, *wlogs, *ack_ids])
        cursor = 0
        for sid in wlogs:
            found = self._recover_segment(sid)
            if found is not None:
                seg, first_live = found
                self._segments[sid] = seg
                if not cursor:
                    cursor = seg.base | first_live
        for sid in ack_ids:
            if sid not in self._segments:
                # acks of a segment that is gone (or was just dropped)
                _unlink(self.directory / ack_name(sid))
        return last_id, cursor

    def _discard(self) -> int:
        """Non-durable store: remove what a previous run left; return the highest id seen."""
        last_id = 0
        for entry in os.scandir(self.directory):
            parsed = parse_name(entry.name)
            if parsed is not None:
                last_id = max(last_id, parsed[0])
                _unlink(Path(entry.path))
        return last_id

    def _recover_segment(self, sid: int) -> tuple[_Segment, int] | None:
        """Validate one segment: its bookkeeping and first live offset, or None if it is dead."""
        seg = _Segment(self.directory, sid)
        path = seg.path
        size = path.stat().st_size
        if size < SEGMENT_HEADER:
            if size:
                log.warning("%s: dropped torn segment header at offset 0 (%d bytes)", path, size)
            _unlink(path)
            return None
        acks = load_acks(seg.ack_path)
        with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as mm:
            if mm[:SEGMENT_HEADER] != MAGIC:
                log.warning(
                    "%s: dropped segment with bad header at offset 0 (%d bytes)", path, size
                )
                good = 0
                live = nbytes = 0
                first_live = last_live = -1
            else:
                good, live, nbytes, first_live, last_live = _scan(mm, size, acks)
        if good == 0:
            _unlink(path)
            _unlink(seg.ack_path)
            return None
        if good < size:
            log.warning(
                "%s: dropped torn/corrupt tail at offset %d (%d bytes)", path, good, size - good
            )
        if live == 0:
            # everything acked or transient: nothing to deliver ever again
            _unlink(path)
            _unlink(seg.ack_path)
            return None
        if good < size:
            # new records go to a new segment, so this only keeps the next
            # recovery from logging the same loss again
            try:
                os.truncate(path, good)
            except OSError as exc:
                log.warning("%s: could not truncate the dropped tail: %s", path, exc)
        seg.end = good
        seg.start = first_live
        seg.live = live
        seg.recovered = True
        if acks:
            # the cursor starts at the first live record: only later acks matter
            cut = bisect_left(acks, first_live)
            seg.acks = acks[cut:] if cut else acks
        self._ready += live
        self._bytes += nbytes
        self.recovered_position_limit = max(self.recovered_position_limit, seg.base | last_live)
        return seg, first_live

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
        else:
            meta = _meta_pack(0, size)
        buf = self._wbuf
        buf += _lencrc_pack(n, crc32(payload, crc32(meta)))
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

    def read(self, position: int, decode: Callable[[bytes], Any] | None = None) -> Any:
        """The record at ``position``, by random access (no cursor move, no count change).

        For a store used as a heap addressed by position (delayed messages: an
        index elsewhere says which position is due, ``read`` then ``ack``).
        Looks in the tail cache, then the write buffer, then the segment file:
        through its mmap if one is open, else with ``pread`` (a random read
        does not map the segment, so a large store adds no resident pages).
        The caller must pass a position ``push`` (or ``shift``) returned and
        not yet acked; raises ``KeyError`` if no segment holds it.
        """
        dec = decode or self._decode
        cache = self._cache
        if cache and position >= cache[0][0]:
            lo, hi = 0, len(cache)
            while lo < hi:
                mid = (lo + hi) >> 1
                if cache[mid][0] < position:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < len(cache) and cache[lo][0] == position:
                return cache[lo][1]
        seg = self._segments.get(position >> SEGMENT_SHIFT)
        if seg is None:
            raise KeyError(position)
        off = position & OFFSET_MASK
        if seg is self._wseg and off >= self._wflushed:
            b = off - self._wflushed
            n = _rec_unpack(self._wbuf, b)[0]
            return dec(bytes(self._wbuf[b + RECORD_HEADER : b + RECORD_HEADER + n]))
        mm = seg.mm
        if mm is not None and off + RECORD_HEADER <= len(mm):
            n = _rec_unpack(mm, off)[0]
            return dec(mm[off + RECORD_HEADER : off + RECORD_HEADER + n])
        fd = seg.rfd
        if fd < 0:
            fd = seg.rfd = os.open(seg.path, os.O_RDONLY)
        data = os.pread(fd, 1024, off)
        if len(data) < RECORD_HEADER:
            raise KeyError(position)
        n = _rec_unpack(data, 0)[0]
        end = RECORD_HEADER + n
        if len(data) < end:
            data += os.pread(fd, end - len(data), off + len(data))
            if len(data) < end:
                raise KeyError(position)
        return dec(data[RECORD_HEADER:end])

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

    def delete(self) -> None:
        """Close and remove everything this store holds on disk."""
        self._shutdown(durable=False)
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return
        for entry in entries:
            if parse_name(entry.name) is not None:
                _unlink(Path(entry.path))
        try:
            self.directory.rmdir()
        except OSError:
            pass  # something else lives there; not ours to remove

    # -- reading ----------------------------------------------------------
    def _read_disk(self) -> tuple[int, Any, int, int] | None:
        """Decode the next live record between the cursor and the cached tail.

        Returns ``(position, record, size, next_cursor)`` without consuming it,
        or None if only the cached tail is left. Dead records of recovered
        segments are skipped (moving the cursor past them is harmless).
        """
        cache = self._cache
        limit = cache[0][0] if cache else self._wbase | self._woff
        cur = self._cursor
        segs = self._segments
        wseg = self._wseg
        while cur < limit:
            seg = segs.get(cur >> SEGMENT_SHIFT)
            if seg is None:
                cur = self._next_segment_start(cur >> SEGMENT_SHIFT)
                self._cursor = cur
                continue
            off = cur & OFFSET_MASK
            if seg is wseg:
                if off >= self._wflushed:
                    src: Any = self._wbuf
                    b = off - self._wflushed
                else:
                    src = seg.mm
                    if src is None or off >= len(src):
                        src = self._map(seg, self._wflushed)
                    b = off
            elif off >= seg.end:
                seg.unmap()
                cur = self._next_segment_start(seg.id)
                self._cursor = cur
                continue
            else:
                src = seg.mm
                if src is None:
                    src = self._map(seg, seg.end)
                b = off
            n, _crc, flags, size = _rec_unpack(src, b)
            end = off + RECORD_HEADER + n
            if seg.recovered and seg.is_dead(off, flags):
                cur = seg.base | end
                self._cursor = cur
                continue
            data = src[b + RECORD_HEADER : b + RECORD_HEADER + n]
            record = self._decode(data if src is not self._wbuf else bytes(data))
            if seg is not wseg and end >= seg.end:
                nxt = self._next_segment_start(seg.id)
            else:
                nxt = seg.base | end
            return seg.base | off, record, size, nxt
        return None

    def _next_segment_start(self, sid: int) -> int:
        """Position where reading the segment after ``sid`` starts."""
        segs = self._segments
        seg = segs.get(sid + 1)
        if seg is None:
            seg = segs[min((s for s in segs if s > sid), default=self._wseg.id)]
        return seg.base | seg.start

    def _map(self, seg: _Segment, length: int) -> mmap.mmap:
        seg.unmap()
        with open(seg.path, "rb") as f:
            seg.mm = mmap.mmap(f.fileno(), length, access=mmap.ACCESS_READ)
        return seg.mm

    def _ack_rest(self, seg: _Segment, off: int) -> None:
        """Ack every live record of sealed ``seg`` from ``off`` on (purge)."""
        mm = seg.mm if seg.mm is not None else self._map(seg, seg.end)
        end = seg.end
        buf = seg.ackbuf
        recovered = seg.recovered
        acked = 0
        while off < end:
            n, _crc, flags, _size = _rec_unpack(mm, off)
            if not recovered or not seg.is_dead(off, flags):
                buf.append(off)
                acked += 1
            off += RECORD_HEADER + n
        if acked:
            self._ack_dirty.add(seg)
        seg.live -= acked
        if seg.live <= 0:
            self._drop_segment(seg)

    # -- writing ----------------------------------------------------------
    def _evict(self, cached: int) -> int:
        """Shrink the tail cache to its bounds (evicted records are read back from disk)."""
        cache = self._cache
        max_n = self._cache_max
        max_b = self._cache_max_bytes
        while cache and (len(cache) > max_n or cached > max_b):
            cached -= cache.popleft()[1].size
        return cached

    def _rotate(self) -> int:
        """Seal the write segment and start the next one; return the new write offset.

        If the buffered tail cannot be written, keep writing the current segment
        (positions already handed out name it) and retry on the next push.
        """
        if not self._flush_write():
            return self._woff
        old = self._wseg
        old.end = self._woff
        fd = self._wfd
        if fd >= 0:
            if self._dirty:
                self._unsynced_fds.append(fd)  # the next fsync covers it, then closes it
            elif self._job is not None:
                self._closing_fds.append(fd)  # the fsync in flight may be using it
            else:
                os.close(fd)
        old.unmap()
        seg = _Segment(self.directory, old.id + 1)
        self._segments[seg.id] = seg
        self._wseg = seg
        self._wbase = seg.base
        self._woff = SEGMENT_HEADER
        self._wfd = -1
        self._wflushed = 0
        self._wbuf += MAGIC
        if self._cursor == old.base | old.end:
            self._cursor = seg.base | SEGMENT_HEADER
        if old.live <= 0:
            self._drop_segment(old)
        return SEGMENT_HEADER

    def _flush_write(self) -> bool:
        """Write the buffer to the write segment; False (and ``last_error``) on failure.

        ``pwrite`` at the known flushed offset makes a retry after a partial
        write overwrite the partial bytes instead of appending after them.
        """
        buf = self._wbuf
        if not buf:
            return True
        try:
            fd = self._wfd
            if fd < 0:
                if not self._dir_made:
                    self._make_dir()
                fd = os.open(self._wseg.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                self._wfd = fd
                if self.directory not in self._sync_dirs:
                    self._sync_dirs.append(self.directory)
            at = self._wflushed
            done = os.pwrite(fd, buf, at)
            total = len(buf)
            while done < total:
                # rare (partial write): copy rather than export a view of buf,
                # which would keep buf from being resized if the error is kept
                done += os.pwrite(fd, bytes(buf[done:]), at + done)
        except OSError as exc:
            self._failed("write", exc)
            return False
        self._wflushed += total
        buf.clear()
        return True

    def _make_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._dir_made = True
        # the new directory's own entry must be durable too, before the first
        # confirm of a record in it
        self._sync_dirs.append(self.directory.parent)

    def _flush_acks_of(self, seg: _Segment) -> None:
        buf = seg.ackbuf
        self._ack_dirty.discard(seg)
        if not buf:
            return
        try:
            if not self._dir_made:
                self._make_dir()
            fd = os.open(seg.ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, ack_bytes(buf))
            finally:
                os.close(fd)
        except OSError as exc:
            # a lost ack only means a redelivery after a restart: no error state
            log.warning("%s: ack write failed: %s", seg.ack_path, exc)
        del buf[:]

    def _flush_acks(self) -> None:
        for seg in list(self._ack_dirty):
            self._flush_acks_of(seg)

    def _drop_segment(self, seg: _Segment) -> None:
        """Delete a segment none of whose records is live any more."""
        self._segments.pop(seg.id, None)
        seg.unmap()
        del seg.ackbuf[:]
        self._ack_dirty.discard(seg)
        # segment first: if only the ack file's removal survived a crash the
        # records would come back (redelivered), never vanish unacked
        _unlink(seg.path)
        _unlink(seg.ack_path)
        if self._cursor >> SEGMENT_SHIFT == seg.id:
            self._cursor = self._next_segment_start(seg.id)

    def _failed(self, what: str, exc: BaseException) -> None:
        # a full or failing disk fails every retry: say so once, not every 200 ms
        if self.last_error is None:
            log.error("%s: %s failed: %s", self.directory, what, exc)
        else:
            log.debug("%s: %s failed again: %s", self.directory, what, exc)
        # without its traceback: kept frames would pin buffers and records
        self.last_error = exc.with_traceback(None)

    # -- group commit -----------------------------------------------------
    def _start_sync(self) -> None:
        self._scheduled = False
        if self._job is not None or self._closed:
            return
        waiters = self._waiters
        self._waiters = []
        loop = self._loop
        assert loop is not None
        if not self._flush_write():
            for cb in waiters:
                loop.call_soon(cb, False)
            return
        fds = self._unsynced_fds
        self._unsynced_fds = []
        close_fds = list(fds)
        if self._wfd >= 0:
            fds = [*fds, self._wfd]
        dirs = self._sync_dirs
        self._sync_dirs = []
        self._dirty = False
        job = _SyncJob(waiters, close_fds)
        self._job = job
        syncer = self._syncer
        if syncer is None or not syncer.alive:
            syncer = None if self._executor is not None else syncer_for(loop, default_executor)
            self._syncer = syncer
        try:
            if syncer is not None:
                fut = syncer.sync(fds, dirs)
                job.syncer = syncer
            else:
                fut = (self._executor or default_executor()).submit(_fsync_all, fds, dirs)
        except RuntimeError as exc:  # executor shut down
            fut = concurrent.futures.Future()
            fut.set_exception(exc)
        job.future = fut

        def done(_f: concurrent.futures.Future[None]) -> None:
            try:
                loop.call_soon_threadsafe(self._sync_done, job, dirs)
            except RuntimeError:
                pass  # loop closed; close() finishes the job

        fut.add_done_callback(done)

    def _sync_done(self, job: _SyncJob, dirs: list[Path]) -> None:
        if job.handled:
            return
        job.handled = True
        self._job = None
        ok = self._finish_job(job, dirs)
        for cb in job.waiters:
            _call(cb, ok)
        if self._waiters and not self._scheduled and not self._closed:
            self._start_sync()

    def _finish_job(self, job: _SyncJob, dirs: list[Path]) -> bool:
        assert job.future is not None
        exc = job.future.exception()
        if exc is not None:
            self._failed("fsync", exc)
            # what this fsync covered is not known durable: let the next sync retry
            self._dirty = True
            self._sync_dirs.extend(d for d in dirs if d not in self._sync_dirs)
        elif self.last_error is not None:
            log.warning("%s: writes and fsyncs succeed again", self.directory)
            self.last_error = None
        for fd in job.close_fds:
            _close_fd(fd)
        for fd in self._closing_fds:
            _close_fd(fd)
        self._closing_fds.clear()
        return exc is None

    def _arm(self) -> None:
        """Schedule a background flush (no loop running: close() flushes instead)."""
        loop = self._loop or _get_loop()
        if loop is None or self._closed:
            return
        self._loop = loop
        self._timer = loop.call_later(self._flush_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        self._flush_acks()
        if self._dirty and self._job is None and not self._scheduled:
            self._start_sync()  # writes the buffer first
        else:
            self._flush_write()
        if self._dirty and self._timer is None:
            self._arm()

    # -- shutdown ---------------------------------------------------------
    def _shutdown(self, durable: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        job = self._job
        results: list[tuple[Callable[[bool], None], bool]] = []
        if job is not None:
            # wait for the fsync in flight: it uses fds we are about to close
            assert job.future is not None
            if job.syncer is not None:
                job.syncer.wait(job.future)
            else:
                concurrent.futures.wait([job.future])
            job.handled = True
            self._job = None
            ok = self._finish_job(job, [])
            results.extend((cb, ok) for cb in job.waiters)
        ok = True
        if self._wfd < 0 and self._wseg.live <= 0:
            # the write segment was never written and holds nothing live: writing
            # it only to delete it below cost a create, a directory fsync and an
            # unlink per idle queue at every clean shutdown
            self._wbuf.clear()
            del self._wseg.ackbuf[:]  # acks of records that were never written
            self._ack_dirty.discard(self._wseg)
        if durable:
            ok = self._flush_write()
            self._flush_acks()
        # after the flush: it may have created the write segment's file
        fds = list(self._unsynced_fds)
        if self._wfd >= 0:
            fds.append(self._wfd)
        if durable:
            if ok and (self._dirty or self._sync_dirs):
                try:
                    _fsync_all(fds if self._dirty else [], self._sync_dirs)
                except OSError as exc:
                    self._failed("fsync", exc)
                    ok = False
        results.extend((cb, ok) for cb in self._waiters)
        self._waiters = []
        for fd in fds + self._closing_fds:
            _close_fd(fd)
        self._unsynced_fds = []
        self._closing_fds = []
        self._wfd = -1
        for seg in self._segments.values():
            seg.unmap()
        wseg = self._wseg
        if wseg.live <= 0:
            # an empty or fully acked write segment holds nothing to recover
            _unlink(wseg.path)
            _unlink(wseg.ack_path)
        self._cache.clear()
        self._requeued.clear()
        self._peeked = None
        self._wbuf = bytearray()
        loop = self._loop
        for cb, cb_ok in results:
            if loop is not None and not loop.is_closed():
                loop.call_soon(cb, cb_ok)
            else:
                _call(cb, cb_ok)


def _call(cb: Callable[[bool], None], ok: bool) -> None:
    try:
        cb(ok)
    except Exception:  # one failing waiter must not starve the others
        log.exception("sync callback failed")


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _scan(mm: mmap.mmap, size: int, acks: Any) -> tuple[int, int, int, int, int]:
    """Validate the records of one segment.

    Returns ``(good_end, live, live_bytes, first_live, last_live)``: where the
    valid prefix ends, how many persistent unacked records it holds and their
    total size, and the offsets of the first and last of them (-1 if none).
    Keeps nothing per record: this runs over millions of them at startup.
    """
    unpack = _rec_unpack
    header = RECORD_HEADER
    off = SEGMENT_HEADER
    live = nbytes = 0
    first_live = last_live = -1
    na = len(acks)
    ai = 0
    next_ack = acks[0] if na else -1
    with memoryview(mm) as mv:
        while off + header <= size:
            n, crc, flags, rsize = unpack(mm, off)
            end = off + header + n
            if end > size or flags & ~FLAGS_KNOWN or crc32(mv[off + CRC_START : end]) != crc:
                break
            if flags & FLAG_PERSISTENT:
                if next_ack >= 0 and next_ack < off:
                    while ai < na and acks[ai] < off:
                        ai += 1
                    next_ack = acks[ai] if ai < na else -1
                if next_ack != off:
                    live += 1
                    nbytes += rsize
                    if first_live < 0:
                        first_live = off
                    last_live = off
            off = end
    return off, live, nbytes, first_live, last_live
