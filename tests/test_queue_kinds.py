"""Every queue kind implements the interface the rest of the broker relies on
(``model.queue_kind.QueueKind``), and ``x-queue-type`` picks the kind."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest
from warren.server.core.config import Config
from warren.server.model.node import Node
from warren.server.model.queue_kind import QUEUE_KINDS, QueueKind

MEMBERS = [n for n in dir(QueueKind) if not n.startswith("_")] + list(QueueKind.__annotations__)


@pytest.mark.parametrize("kind", sorted(QUEUE_KINDS))
def test_kind_implements_queue_kind(kind: str, tmp_path: Path) -> None:
    async def build() -> None:
        node = Node(Config(data_dir=str(tmp_path)))
        vh = node.vhosts["/"]
        q = node.create_queue(vh, f"q-{kind}", True, None, False, {"x-queue-type": kind})
        assert type(q) is QUEUE_KINDS[kind]
        assert q.kind == kind
        assert isinstance(q, QueueKind)
        for name in MEMBERS:
            assert hasattr(q, name), f"{kind} queue lacks {name}"
        for name, proto in inspect.getmembers(QueueKind, inspect.isfunction):
            if name.startswith("_"):
                continue
            want = list(inspect.signature(proto).parameters)
            got = list(inspect.signature(getattr(type(q), name)).parameters)
            assert got == want, f"{kind}.{name}{got} differs from QueueKind.{name}{want}"
        vh.delete_queue(q)

    asyncio.run(build())
