"""The fsync helper process (see :mod:`storage.log.syncproc`), run as a script.

Reads requests from the ``SOCK_SEQPACKET`` socket whose descriptor is argv[1]:
a job id, directory paths, and the file descriptors to ``fdatasync`` (passed
with ``SCM_RIGHTS``). Answers each with the job id and an errno, and exits
when the broker's end of the socket closes (which includes the broker being
killed). Run with ``-I -S``, it imports only the standard library; the broker
imports it too, for :func:`fsync_all` and the message formats.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import sys
from collections.abc import Sequence

REQ = struct.Struct("<Q")  # job id, then NUL-separated directory paths
REP = struct.Struct("<Qi")  # job id, errno (0 = ok), then the error text


def fsync_all(fds: Sequence[int], dirs: Sequence[str | os.PathLike[str]]) -> None:
    """Make ``fds`` (file data) and ``dirs`` (their entries) durable, in this thread."""
    for fd in fds:
        os.fdatasync(fd)
    for d in dirs:
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def serve(sock: socket.socket) -> None:
    """Answer sync requests until the broker's end of ``sock`` closes.

    The broker may send a request before the previous one is answered: whatever is
    queued when a request is taken is served by the same pass (each file once), so
    requests never pile up behind one fsync each."""
    sock.setblocking(False)
    while True:
        select.select([sock], [], [])
        batch = _take(sock)
        if batch is None:
            return
        while batch and len(batch) < _MAX_BATCH:
            more = _take(sock)
            if not more:
                break
            batch += more
        fds = [fd for _job, fd_list, _dirs in batch for fd in fd_list]
        dirs = list(dict.fromkeys(d for _job, _fds, ds in batch for d in ds))
        err, text = 0, b""
        try:
            fsync_all(_distinct_files(fds), dirs)
        except OSError as exc:
            err, text = exc.errno or 5, str(exc).encode("utf-8", "replace")
        finally:
            for fd in fds:
                os.close(fd)
        try:
            for job, _fds, _dirs in batch:
                _send(sock, REP.pack(job, err) + text)
        except OSError:
            return


#: requests served by one pass at most
_MAX_BATCH = 64


def _take(sock: socket.socket) -> list[tuple[int, list[int], list[str]]] | None:
    """One request as ``[(job, fds, dirs)]``; ``[]`` if none is queued, None once the
    broker's end is closed."""
    try:
        msg, fds, _fl, _ad = socket.recv_fds(sock, 1 << 16, 256)
    except BlockingIOError:
        return []
    except (OSError, ValueError):
        return None
    if not msg:
        for fd in fds:
            os.close(fd)
        return None
    (job,) = REQ.unpack_from(msg)
    rest = msg[REQ.size :]
    dirs = rest.decode("utf-8", "surrogateescape").split("\0") if rest else []
    return [(job, fds, dirs)]


def _send(sock: socket.socket, data: bytes) -> None:
    while True:
        try:
            sock.send(data)
            return
        except BlockingIOError:
            select.select([], [sock], [])


def _distinct_files(fds: list[int]) -> list[int]:
    """``fds`` with one descriptor per file: each request passes its own duplicates."""
    if len(fds) < 2:
        return fds
    seen: set[tuple[int, int]] = set()
    out = []
    for fd in fds:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            out.append(fd)
    return out


if __name__ == "__main__":
    # Ctrl-C or a SIGTERM to the whole process group is for the broker, which
    # still needs its fsyncs while it shuts down; the helper leaves on EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(socket.socket(fileno=int(sys.argv[1])))
