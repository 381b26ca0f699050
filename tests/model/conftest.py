"""Fixtures for in-process model tests: a Node on a FakeClock, and small builders."""

from __future__ import annotations

from typing import Any

import pytest
from warren.server.core.config import Config
from warren.server.model.exchanges import EXCHANGE_TYPES, Exchange
from warren.server.model.node import Node
from warren.server.model.publish import MANAGEMENT, PublishResult
from warren.server.model.queue import Queue
from warren.server.model.vhost import VHost

from tests.model.fakes import FakeChannel, FakeClock, make_message


class Model:
    """A Node on a FakeClock with the calls a test needs (declare, bind, publish, consume)."""

    def __init__(self, data_dir: str) -> None:
        self.clock = FakeClock()
        # no persistence.prepare(): only non-durable queues are declared here, whose
        # stores keep messages in RAM (they would spill to data_dir only when large)
        self.node = Node(Config(data_dir=data_dir), clock=self.clock)
        self.vhost: VHost = self.node.vhosts["/"]

    def exchange(self, name: str, type_: str = "direct", arguments: dict[str, Any] | None = None) -> Exchange:
        ex = EXCHANGE_TYPES[type_](self.vhost, name, False, False, False, arguments or {})
        self.vhost.add_exchange(ex)
        return ex

    def queue(self, name: str, arguments: dict[str, Any] | None = None) -> Queue:
        return self.node.create_queue(self.vhost, name, False, None, False, arguments or {})

    def bind(
        self, source: str | Exchange, dest: Queue | Exchange, key: str = "", arguments: dict[str, Any] | None = None
    ) -> None:
        ex = self.vhost.exchanges[source] if isinstance(source, str) else source
        ex.bind(dest, key, arguments or {})

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | str = b"",
        extra_keys: list[str] | None = None,
        mandatory: bool = False,
        **properties: Any,
    ) -> PublishResult:
        ex = self.vhost.exchanges[exchange]
        msg = make_message(body, routing_key, exchange, **properties)
        return self.vhost.publish(ex, routing_key, msg, extra_keys, MANAGEMENT, mandatory)

    def channel(self, number: int = 1) -> FakeChannel:
        return FakeChannel(self.vhost, number)

    def run(self) -> int:
        """Run what is due now (dispatch)."""
        return self.clock.run_ready()


@pytest.fixture
def model(tmp_path) -> Model:
    return Model(str(tmp_path / "data"))
