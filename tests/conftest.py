"""Shared fixtures: every test gets its own broker process, port and data directory."""

from __future__ import annotations

import pytest

from tests.brokerproc import BrokerProcess


@pytest.fixture
def broker(tmp_path):
    """A fresh warren on a free port; yields the BrokerProcess (``broker.url``)."""
    b = BrokerProcess(tmp_path / "data").start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker_factory(tmp_path):
    """Start brokers with extra command-line arguments: ``broker_factory('--max-message-size', '100')``."""
    started: list[BrokerProcess] = []

    def make(*args: str) -> BrokerProcess:
        b = BrokerProcess(tmp_path / f"data{len(started)}", extra_args=list(args)).start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()
