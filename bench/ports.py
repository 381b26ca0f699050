"""Loopback ports for brokers started by the benchmarks and the tests."""

from __future__ import annotations

import os
import random
import socket
import time

_handed_out: set[int] = set()
# below Linux's ephemeral range (32768-60999): a port the kernel picked with bind(0) can be
# picked again by the next caller, or become some client's source port, while a broker is
# still starting on it; then a client talks to the wrong peer (or to itself)
_PORT_RANGE = (20000, 32000)
_rng = random.Random(os.getpid() ^ time.time_ns())


def free_port() -> int:
    """A loopback port nothing listens on, below the ephemeral range, never handed out
    twice by this process."""
    for _ in range(1000):
        port = _rng.randrange(*_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port found")
