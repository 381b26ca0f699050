"""The leader's view of one follower, and the states it goes through (see leader.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Hook = Callable[[str], Awaitable[Any]]

CATCHUP = "catchup"
JOINING = "joining"
INSYNC = "insync"
REMOVING = "removing"
GONE = "gone"
#: states whose acks every wait needs
_COUNTED = (JOINING, INSYNC, REMOVING)

#: catch-up and resync write this much before waiting for the socket to drain
_CHUNK = 256 * 1024


class ReplicationError(Exception):
    """A wait failed: the in-sync set is below ``min_insync``, or the leader stopped leading."""


class _Peer:
    __slots__ = (
        "node",
        "writer",
        "acked",
        "state",
        "live",
        "join_seq",
        "task",
        "gone",
        "need",
        "caught",
    )

    def __init__(self, node: str, writer: asyncio.StreamWriter, acked: int) -> None:
        self.node = node
        self.writer = writer
        self.acked = acked
        self.state = CATCHUP
        #: gets frames as they are flushed (else the catch-up task feeds it)
        self.live = False
        self.join_seq = -1
        self.task: asyncio.Task[None] | None = None
        #: set once it is out of the in-sync set (or never was in it)
        self.gone = asyncio.Event()
        #: joining: the highest seq confirmed before it counted; it must ack that first
        self.need = 0
        self.caught = asyncio.Event()
