"""The topology commands (``model.commands``) in-process: RabbitMQ's order of checks
(permissions before existence, the default exchange before existence), exclusive
ownership, redeclare equivalence."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from warren.protocol.constants import (
    ACCESS_REFUSED,
    NOT_FOUND,
    PRECONDITION_FAILED,
    RESOURCE_LOCKED,
)
from warren.server.core.config import Config
from warren.server.core.errors import ChannelError
from warren.server.model import commands as cmd
from warren.server.model.auth import Permission
from warren.server.model.node import Node


class _Session:
    """Just what the commands use of a session: its exclusive queues."""

    def __init__(self) -> None:
        self.exclusive_queues: list[Any] = []


def _run(tmp_path: Path, body: Callable[[Node], None]) -> None:
    async def go() -> None:
        body(Node(Config(data_dir=str(tmp_path))))

    asyncio.run(go())


def _code(fn: Callable[..., Any], *args: Any) -> tuple[int, str]:
    with pytest.raises(ChannelError) as info:
        fn(*args)
    return info.value.code, info.value.text


def test_permissions_are_checked_before_existence(tmp_path: Path) -> None:
    def body(node: Node) -> None:
        vh = node.vhosts["/"]
        # may configure only "a*": deleting a missing "b" is refused, not a no-op
        actor = cmd.Actor("u", Permission("^a", ".*", ".*"), None, _Session())
        assert _code(cmd.queue_delete, vh, actor, "b") == (
            ACCESS_REFUSED, "access to queue 'b' in vhost '/' refused for user 'u'")
        assert cmd.queue_delete(vh, actor, "a-missing") is None
        assert _code(cmd.exchange_delete, vh, actor, "b") == (
            ACCESS_REFUSED, "access to exchange 'b' in vhost '/' refused for user 'u'")
        # bind: write on the queue, then the default exchange, then existence
        reader = cmd.Actor("u", Permission(".*", "^w", ".*"), None, _Session())
        assert _code(cmd.queue_bind, vh, reader, "q", "", "k")[0] == ACCESS_REFUSED
        assert _code(cmd.queue_bind, vh, reader, "w", "", "k") == (
            ACCESS_REFUSED, "operation not permitted on the default exchange")
        assert _code(cmd.queue_bind, vh, reader, "w", "nox", "k") == (NOT_FOUND, "no exchange 'nox' in vhost '/'")
        assert cmd.queue_bind(vh, reader, "w", "nox", "k", None, True) is False  # unbinding nothing is a no-op

    _run(tmp_path, body)


def test_exclusive_queues_belong_to_their_session(tmp_path: Path) -> None:
    def body(node: Node) -> None:
        vh = node.vhosts["/"]
        owner, other = _Session(), _Session()
        mine = cmd.Actor(session=owner)
        gen, created = cmd.queue_declare(vh, mine, "", exclusive=True)
        assert created and gen.name.startswith("amq.gen-")
        q, _ = cmd.queue_declare(vh, mine, "ex-q", exclusive=True)
        assert owner.exclusive_queues == [gen, q]
        theirs = cmd.Actor(session=other)
        for fn, args in (
            (cmd.queue_declare, (q.name, False, True)),
            (cmd.queue_purge, (q.name,)),
            (cmd.queue_delete, (q.name,)),
            (cmd.lookup_queue, (q.name,)),
        ):
            assert _code(fn, vh, theirs, *args)[0] == RESOURCE_LOCKED
        # nor to an actor without a session (the management API, as in RabbitMQ)
        assert _code(cmd.queue_delete, vh, cmd.UNCHECKED, q.name)[0] == RESOURCE_LOCKED
        # the owner deletes it and forgets it
        assert cmd.queue_delete(vh, mine, q.name) == 0
        assert owner.exclusive_queues == [gen] and q.name not in vh.queues

    _run(tmp_path, body)


def test_redeclare_equivalence(tmp_path: Path) -> None:
    def body(node: Node) -> None:
        vh = node.vhosts["/"]
        a = cmd.UNCHECKED
        cmd.queue_declare(vh, a, "q", True, False, False, {"x-max-length": 5, "x-other": 1})
        # only the arguments RabbitMQ compares count
        assert cmd.queue_declare(vh, a, "q", True, False, False, {"x-max-length": 5, "x-other": 2})[1] is False
        assert _code(cmd.queue_declare, vh, a, "q", True, False, False, {}) == (
            PRECONDITION_FAILED,
            "inequivalent arg 'x-max-length' for queue 'q' in vhost '/': received none but current is "
            "the value '5' of type 'signedint'",
        )
        # no x-queue-type and "classic" are the same queue type
        cmd.queue_declare(vh, a, "c", True)
        assert cmd.queue_declare(vh, a, "c", True, False, False, {"x-queue-type": "classic"})[1] is False
        # an equivalent redeclare of amq.direct is fine, creating amq.* is not
        assert cmd.exchange_declare(vh, a, "amq.direct", "direct", True)[1] is False
        assert _code(cmd.exchange_declare, vh, a, "amq.new", "direct")[0] == ACCESS_REFUSED

    _run(tmp_path, body)
