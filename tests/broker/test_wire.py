"""warren sends RabbitMQ's bytes: every frame of the raw-socket scenarios in
``_wire_scenarios.py`` equals what RabbitMQ 3.10.8 sent for the same scenario
(``rabbitmq_wire.json``, recorded with the name prefix ``wire``; regenerate by running
the scenarios against RabbitMQ; interop/test_wire_diff.py compares with a live node).

Issue 8: Channel.OpenOk's reserved long string (item 1), class/method ids of errors
raised on the hand-written hot path (item 7), connection.update-secret (item 2),
names outside pamqp's name pattern in every reply that carries one (item 10).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pamqp import commands as C

from tests.broker import _wire_scenarios as W
from tests.broker._raw import recv_frame_bytes

RABBITMQ = json.loads((Path(__file__).parent / "rabbitmq_wire.json").read_text())
P = "wire"


def _frames(obs) -> list[list[str]]:
    return [list(x) for x in obs]


async def test_server_methods_bytes_as_rabbitmq(broker):
    assert _frames(await W.server_methods(broker.port, P)) == RABBITMQ["server_methods"]


async def test_channel_open_ok_has_an_empty_reserved_long_string(broker):
    """@cloudamqp/amqp-client reads Channel.OpenOk as RabbitMQ sends it (pamqp's "0" broke it)."""
    c = await W._open(broker.port, channel=None)
    try:
        c.send(C.Channel.Open(), 7)
        assert (await recv_frame_bytes(c)).hex() == "010007000000080014000b00000000ce"
    finally:
        c.close()


@pytest.mark.parametrize("case", list(W.HOT_PATH_ERRORS))
async def test_hot_path_error_bytes_as_rabbitmq(broker, case):
    """Channel.Close / Connection.Close for errors found on the fast publish/ack path name
    the failing method (Basic.Publish 60/40, Basic.Ack 60/80...), as RabbitMQ does."""
    assert await W.hot_path_error(broker.port, P, case) == RABBITMQ["hot_path_errors"][case]


async def test_update_secret_bytes_as_rabbitmq(broker):
    assert _frames(await W.update_secret(broker.port, P)) == RABBITMQ["update_secret"]


async def test_odd_names_bytes_as_rabbitmq(broker):
    assert _frames(await W.odd_names(broker.port, P)) == RABBITMQ["odd_names"]
