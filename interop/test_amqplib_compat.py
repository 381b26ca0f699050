"""amqplib (Node) through issue 8's items: connection.update-secret as amqplib's own suite
calls it (item 2), class/method ids of hot-path channel errors, which amqplib exposes
(item 7), names outside pamqp's pattern in every reply (item 10). Against warren and,
differentially, against RabbitMQ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from interop.common import assert_same
from interop.test_amqplib import run_scenario

NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture(scope="session")
def node_compat(node_modules) -> list[str]:
    return [node_modules, str(NODE_DIR / "amqplib_compat.js")]


def check(obs: dict[str, Any]) -> None:
    assert obs["update_secret"] == "ok"
    assert obs["publish_missing"] == [
        404, 60, 40,
        "Channel closed by server: 404 (NOT-FOUND) with message \"NOT_FOUND - no exchange '<p>.none' in vhost '/'\"",
    ]
    assert obs["ack_unknown"][:3] == [406, 60, 80]
    assert [n["declare"] for n in obs["names"]] == ["<p>.jobs!", "<p>.café", "<p>.a|b"]
    for n, name in zip(obs["names"], ["jobs!", "café", "a|b"], strict=True):
        x = f"<p>.{name}.x"
        assert n["returned"] == [312, "NO_ROUTE", x, "nowhere"]
        assert n["get"] == ["m", x, name]
        assert n["consume_ok"] == name and n["deliver"] == [name, x]
    assert obs["connection_error"] is None


def test_amqplib_compat(warren, prefix, node_compat):
    check(run_scenario(node_compat, warren.url, prefix))


def test_amqplib_compat_matches_rabbitmq(warren, rabbitmq, prefix, node_compat):
    ours = run_scenario(node_compat, warren.url, prefix)
    check(ours)
    assert_same(ours, run_scenario(node_compat, rabbitmq, prefix))
