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
    """Answer sync requests until the broker's end of ``sock`` closes."""
    while True:
        try:
            msg, fds, _fl, _ad = socket.recv_fds(sock, 1 << 16, 256)
        except (OSError, ValueError):
            return
        if not msg:
            return
        (job,) = REQ.unpack_from(msg)
        rest = msg[REQ.size :]
        dirs = rest.decode("utf-8", "surrogateescape").split("\0") if rest else []
        err, text = 0, b""
        try:
            fsync_all(fds, dirs)
        except OSError as exc:
            err, text = exc.errno or 5, str(exc).encode("utf-8", "replace")
        finally:
            for fd in fds:
                os.close(fd)
        try:
            sock.send(REP.pack(job, err) + text)
        except OSError:
            return


if __name__ == "__main__":
    # Ctrl-C or a SIGTERM to the whole process group is for the broker, which
    # still needs its fsyncs while it shuts down; the helper leaves on EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(socket.socket(fileno=int(sys.argv[1])))
