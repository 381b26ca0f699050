"""@cloudamqp/amqp-client (Node) against warren: ``interop/node/cloudamqp.js`` prints what
it observed. Over amqp and amqps, and against RabbitMQ (same observations).

This client parses Channel.OpenOk as RabbitMQ encodes it (an empty reserved long string)
and sets its socket read timeout to the heartbeat: a broker that sends "0" there, or
leaves a whole interval without a frame, loses it (issue 8, items 1 and 4).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from interop.common import assert_same
from interop.test_amqplib import run_scenario
from tests.brokerproc import BrokerProcess, free_port, wait_port


def check(obs: dict[str, Any]) -> None:
    assert obs["heartbeat"] == 1
    assert obs["channel_ids"] == [1, 2]
    assert obs["queue_declare"] == ["<p>.q", 0, 0]
    assert obs["odd_queue"] == "<p>.jobs!|café"
    assert obs["confirm_tags"] == [1, 2, 3] and obs["unroutable_tag"] == 4
    assert obs["returned"] == [[312, "NO_ROUTE", "<p>.x", "nowhere", "lost"]]
    assert obs["consumer_tag_generated"] is True
    assert obs["deliveries"] == [
        ["msg-0", 1, False, "k", "<p>.x"],
        ["msg-1", 2, False, "k", "<p>.x"],
        ["msg-2", 3, False, "k", "<p>.x"],
        ["msg-1", 4, True, "k", "<p>.x"],
    ]
    assert obs["after_acks"] == [0, 0]
    # 3 s idle with a 1 s heartbeat: still connected, still answering
    assert obs["after_idle"] == {"errors": [], "closed": False}
    assert obs["after_idle_roundtrip"] == 0
    assert obs["update_secret"] == "ok" and obs["after_update_secret"] == 0
    assert obs["publish_missing"] == "channel 3 closed: NOT_FOUND - no exchange '<p>.none' in vhost '/' (404)"
    assert obs["ch3_closed"] is True
    assert obs["get"] == ["g1", 0, False] and obs["get_empty"] is True
    assert obs["queue_delete"] == 0
    assert obs["channels_closed"] == [True, True] and obs["connection_closed"] is True
    # the only error reported is the channel error provoked above
    assert obs["errors"] == ["Channel 3 closed: " + obs["publish_missing"]]


@pytest.mark.timeout(90)
def test_cloudamqp_scenario(warren, prefix, node_cloudamqp):
    check(run_scenario(node_cloudamqp, warren.url, prefix))


@contextmanager
def _tls_broker(tmp_path: Path) -> Iterator[tuple[BrokerProcess, int, Path]]:
    """warren with an AMQPS listener on a trustme certificate: (broker, TLS port, CA file)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {n: tmp_path / f"{n}.pem" for n in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    tls_port = free_port()
    b = BrokerProcess(
        tmp_path / "data",
        extra_args=["--tls-port", str(tls_port), "--tls-cert", str(paths["cert"]), "--tls-key", str(paths["key"])],
    ).start()
    try:
        wait_port(tls_port)
        yield b, tls_port, paths["ca"]
    finally:
        b.stop()


@pytest.mark.timeout(120)
def test_cloudamqp_scenario_over_tls(tmp_path, prefix, node_cloudamqp):
    """The same scenario through warren's AMQPS listener: the same observations."""
    with _tls_broker(tmp_path) as (b, tls_port, ca):
        plain = run_scenario(node_cloudamqp, b.url, prefix)
        tls = run_scenario(
            node_cloudamqp,
            f"amqps://guest:guest@127.0.0.1:{tls_port}/",
            prefix + "t",
            {"NODE_EXTRA_CA_CERTS": str(ca)},
        )
    check(tls)
    assert tls == plain


@pytest.mark.timeout(120)
def test_cloudamqp_scenario_matches_rabbitmq(warren, rabbitmq, prefix, node_cloudamqp):
    ours = run_scenario(node_cloudamqp, warren.url, prefix)
    check(ours)
    assert_same(ours, run_scenario(node_cloudamqp, rabbitmq, prefix))
