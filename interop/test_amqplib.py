"""Node's amqplib against warren: ``interop/node/scenario.js`` prints what it observed.

The ``node_scenario`` fixture (conftest.py) installs the node modules once per session.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from interop.common import normalize

NODE_DIR = Path(__file__).resolve().parent / "node"


def run_scenario(
    cmd: list[str], url: str, p: str, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(extra_env or {})
    r = subprocess.run(
        [*cmd, url, p], cwd=NODE_DIR, capture_output=True, text=True, timeout=30, env=env
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no JSON from scenario.js (rc={r.returncode}):\n{r.stdout}\n{r.stderr}"
    obs = json.loads(lines[-1])
    assert "fatal" not in obs, f"scenario.js failed: {obs['fatal']}\n{r.stderr}"
    return normalize(obs, p)


def _closed(code: int, cls: int, meth: int, text: str) -> list[Any]:
    name = {404: "NOT-FOUND", 406: "PRECONDITION-FAILED"}[code]
    return [code, cls, meth, f'Channel closed by server: {code} ({name}) with message "{text}"']


def test_amqplib_scenario(warren, prefix, node_scenario):
    obs = run_scenario(node_scenario, warren.url, prefix)
    assert "connection_error" not in obs
    assert obs["assert_queue"] == ["<p>.q", 0, 0]
    assert obs["confirmed"] is True
    assert obs["returned"] == [[312, "NO_ROUTE", "", "<p>.nothing", "lost"]]
    assert obs["check_queue"] == [3, 0]
    d = obs["deliveries"]
    assert [(x["body"], x["tag"], x["redelivered"], x["routingKey"]) for x in d] == [
        ("msg-0", 1, False, "k0"),
        ("msg-1", 2, False, "k1"),
        ("msg-2", 3, False, "k2"),
        ("msg-1", 4, True, "k1"),
    ]
    assert d[3]["headers"] == {"n": 1, "s": "str", "arr": [1, "a", True], "obj": {"x": 1}}
    assert d[3]["messageId"] == "id1" and d[3]["deliveryMode"] == 2 and d[3]["priority"] == 1
    assert obs["consumer_tags_match"] is True
    assert obs["after_acks"] == [0, 1] and obs["after_cancel"] == [0, 0]
    assert obs["get1"] == ["g1", False, 1]
    assert obs["get2"] == ["g1", True, 1]
    assert obs["get3"] == ["g2", False, 0]
    assert obs["get_empty"] is False
    assert obs["rpc_request"] == [["ping", "amq.rabbitmq.reply-to.<token>", "n-1"]]
    assert obs["rpc_reply"] == ["pong:ping", "n-1", False, "", "amq.rabbitmq.reply-to.<token>"]
    assert obs["err_check_missing"] == _closed(
        404, 50, 10, "NOT_FOUND - no queue '<p>.missing' in vhost '/'"
    )
    assert obs["err_inequivalent_queue"] == _closed(
        406,
        50,
        10,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '<p>.q' in vhost '/': "
        "received 'true' but current is 'false'",
    )
    assert obs["err_unknown_tag"] == _closed(
        406, 60, 80, "PRECONDITION_FAILED - unknown delivery tag 99"
    )
    assert obs["err_consume_missing"] == _closed(
        404, 60, 20, "NOT_FOUND - no queue '<p>.missing' in vhost '/'"
    )
    assert obs["err_delete_not_empty"] == _closed(
        406, 50, 40, "PRECONDITION_FAILED - queue '<p>.q' in vhost '/' not empty"
    )
    assert obs["queue_delete"] == 1


def test_amqplib_scenario_over_tls(tmp_path, prefix, node_scenario):
    """The same scenario through warren's AMQPS listener: what amqplib sees is the same."""
    import trustme

    from tests.brokerproc import BrokerProcess, free_port, wait_port

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {n: tmp_path / f"{n}.pem" for n in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    tls_port = free_port()
    b = BrokerProcess(
        tmp_path / "data",
        extra_args=[
            "--tls-port",
            str(tls_port),
            "--tls-cert",
            str(paths["cert"]),
            "--tls-key",
            str(paths["key"]),
        ],
    ).start()
    try:
        wait_port(tls_port)
        plain = run_scenario(node_scenario, b.url, prefix)
        tls = run_scenario(
            node_scenario,
            f"amqps://guest:guest@127.0.0.1:{tls_port}/",
            prefix + "t",
            {"NODE_EXTRA_CA_CERTS": str(paths["ca"])},
        )
    finally:
        b.stop()
    assert "connection_error" not in tls
    assert tls == plain
