"""Reading and writing a log store's segment and ack files (the cold side of the hot path).

``push``/``shift``/``ack`` in :mod:`storage.log.store` work on in-memory buffers and
call in here when a buffer fills, the cursor leaves the cached tail, a segment
is full or emptied, or a write fails; ``read`` is random access by position. Mixed into
:class:`storage.log.store.LogStore`, whose slots hold the state.
"""

from __future__ import annotations

import logging
import mmap
import os
from collections.abc import Callable
from typing import Any

from warren.storage.log.format import (
    MAGIC,
    MAGIC_RECYCLED,
    OFFSET_MASK,
    RECORD,
    RECORD_HEADER,
    SEGMENT_HEADER,
    SEGMENT_SHIFT,
    ack_bytes,
    crc_seed,
)
from warren.storage.log.segment import _close_fd, _Segment, _unlink

log = logging.getLogger("warren.storage")

_rec_unpack = RECORD.unpack_from


class _SegmentIO:
    """Segment files: read at the cursor, write the buffer, rotate, drop, ack files."""

    __slots__ = ()

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
        self._wseed = crc_seed(seg.id)
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
                fd, recycled = self._create_segment_file(self._wseg.path)
                if recycled and buf[:SEGMENT_HEADER] == MAGIC:
                    # the buffer starts at offset 0 (a new file is written from there)
                    buf[:SEGMENT_HEADER] = MAGIC_RECYCLED
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
            if self._afd_seg is not seg:
                # one ack file kept open: a replication follower writes one per batch,
                # and opening and closing it each time cost as much as the write
                self._close_ack_file()
                self._afd = os.open(seg.ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                self._afd_seg = seg
            os.write(self._afd, ack_bytes(buf))
        except OSError as exc:
            # a lost ack only means a redelivery after a restart: no error state
            log.warning("%s: ack write failed: %s", seg.ack_path, exc)
        del buf[:]

    def _close_ack_file(self) -> None:
        if self._afd >= 0:
            _close_fd(self._afd)
        self._afd = -1
        self._afd_seg = None

    def _flush_acks(self) -> None:
        for seg in list(self._ack_dirty):
            self._flush_acks_of(seg)

    def _drop_segment(self, seg: _Segment) -> None:
        """Delete a segment none of whose records is live any more."""
        self._segments.pop(seg.id, None)
        seg.unmap()
        if self._afd_seg is seg:
            self._close_ack_file()
        del seg.ackbuf[:]
        self._ack_dirty.discard(seg)
        # segment first: if only the ack file's removal survived a crash the
        # records would come back (redelivered), never vanish unacked
        self._retire_file(seg)
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
