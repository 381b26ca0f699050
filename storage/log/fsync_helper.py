"""The fsync helper process (see :mod:`storage.log.syncproc`), run as a script.

Reads requests from the ``SOCK_SEQPACKET`` socket whose descriptor is argv[1]:
a job id, directory paths, and the file descriptors to ``fdatasync`` (passed
with ``SCM_RIGHTS``). Answers each with the job id and an errno. Imports only
builtin modules, and exits when the broker's end of the socket closes (which
includes the broker being killed).
"""

import os
import signal
import socket
import struct
import sys

# Ctrl-C or a SIGTERM to the whole process group is for the broker, which
# still needs its fsyncs while it shuts down; the helper leaves on EOF.
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
REQ = struct.Struct("<Q")  # job id, then NUL-separated directory paths
REP = struct.Struct("<Qi")  # job id, errno (0 = ok), then the error text
sock = socket.socket(fileno=int(sys.argv[1]))
while True:
    try:
        msg, fds, _fl, _ad = socket.recv_fds(sock, 1 << 16, 256)
    except (OSError, ValueError):
        break
    if not msg:
        break
    (job,) = REQ.unpack_from(msg)
    rest = msg[REQ.size :]
    dirs = rest.decode("utf-8", "surrogateescape").split("\0") if rest else []
    err, text = 0, b""
    try:
        for fd in fds:
            os.fdatasync(fd)
        for d in dirs:
            dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except OSError as exc:
        err, text = exc.errno or 5, str(exc).encode("utf-8", "replace")
    finally:
        for fd in fds:
            os.close(fd)
    try:
        sock.send(REP.pack(job, err) + text)
    except OSError:
        break
