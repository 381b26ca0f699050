"""Frame bytes, differential: the raw-socket scenarios of tests/broker/_wire_scenarios.py
run against warren and against a live RabbitMQ; every frame must be byte-identical
(tests/broker/test_wire.py checks the same against bytes recorded from RabbitMQ 3.10.8).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from tests.broker import _wire_scenarios as W


def _port(url: str) -> int:
    return urlsplit(url).port or 5672


def _run(coro_fn, url: str, *args):
    return asyncio.run(coro_fn(_port(url), *args))


@pytest.mark.parametrize("scenario", ["server_methods", "update_secret", "odd_names"])
def test_scenario_bytes_match_rabbitmq(warren, rabbitmq, prefix, scenario):
    fn = getattr(W, scenario)
    assert _run(fn, warren.url, prefix) == _run(fn, rabbitmq, prefix)


def test_hot_path_error_bytes_match_rabbitmq(warren, rabbitmq, prefix):
    async def all_cases(port: int) -> dict[str, str]:
        return {name: await W.hot_path_error(port, prefix, name) for name in W.HOT_PATH_ERRORS}

    ours, theirs = _run(all_cases, warren.url), _run(all_cases, rabbitmq)
    assert {k: v for k, v in ours.items() if v != theirs[k]} == {}
