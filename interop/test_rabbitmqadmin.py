"""rabbitmqadmin (shipped by Debian's rabbitmq-server) against warren's management API:
list, declare, publish, get, delete. Skipped without rabbitmqadmin unless CI is set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.brokerproc import wait_port

ADMIN = shutil.which("rabbitmqadmin")


def admin(warren, *args: str) -> str:
    r = subprocess.run(
        ["python3", ADMIN, "-H", "127.0.0.1", "-P", str(warren.mgmt_port), "-u", "guest", "-p", "guest", *args],
        capture_output=True, text=True, timeout=14,
    )
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_rabbitmqadmin_list_declare_publish_get(warren, prefix):
    if ADMIN is None:
        if os.environ.get("CI"):
            pytest.fail("rabbitmqadmin is not installed (CI is set)")
        pytest.skip("rabbitmqadmin is not installed")
    wait_port(warren.mgmt_port)
    q, x = f"{prefix}-q", f"{prefix}-x"
    admin(warren, "declare", "queue", f"name={q}", "durable=true")
    admin(warren, "declare", "exchange", f"name={x}", "type=direct")
    admin(warren, "declare", "binding", f"source={x}", f"destination={q}", "routing_key=k")
    out = admin(warren, "publish", f"exchange={x}", "routing_key=k", "payload=hello-admin")
    assert "Message published" in out
    queues = json.loads(admin(warren, "-f", "raw_json", "list", "queues"))
    assert [(i["name"], i["messages"]) for i in queues] == [(q, 1)]
    got = json.loads(admin(warren, "-f", "raw_json", "get", f"queue={q}", "ackmode=ack_requeue_false"))
    assert got[0]["payload"] == "hello-admin" and got[0]["routing_key"] == "k"
    table = admin(warren, "list", "queues", "name", "messages")
    assert q in table
    for what in ("exchanges", "bindings", "connections", "channels", "consumers", "vhosts", "users", "permissions"):
        admin(warren, "list", what)
    admin(warren, "show", "overview")
    admin(warren, "delete", "queue", f"name={q}")
    assert json.loads(admin(warren, "-f", "raw_json", "list", "queues")) == []
