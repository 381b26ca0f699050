"""warrenctl against a running broker: declare, list, publish, get, purge, delete,
export/import definitions, trace (table and json output)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.brokerproc import ROOT, wait_port


def ctl(broker, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, "-m", "warren.server.cli", "--port", str(broker.mgmt_port), *args],
        capture_output=True, text=True, timeout=14, cwd=str(ROOT),
    )
    if ok:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def test_cli_roundtrip(broker, tmp_path):
    wait_port(broker.mgmt_port)
    ctl(broker, "declare", "queue", "cli-q", "--arguments", '{"x-max-priority": 2}')
    ctl(broker, "declare", "exchange", "cli-x", "--type", "fanout")
    ctl(broker, "declare", "binding", "cli-x", "cli-q")
    ctl(broker, "tracing", "on", "--journey")
    r = ctl(broker, "publish", "cli-x", "", "hello", "--property", "message_id=cli-1", "--property", "priority=2")
    assert "message published" in r.stdout
    assert ctl(broker, "publish", "amq.direct", "nope", "x", ok=False).returncode == 2
    queues = json.loads(ctl(broker, "--format", "json", "list", "queues").stdout)
    assert [(q["name"], q["messages_ready"]) for q in queues] == [("cli-q", 1)]
    table = ctl(broker, "list", "queues").stdout.splitlines()
    assert [c.strip() for c in table[0].split(" | ")][:2] == ["vhost", "name"] and "cli-q" in table[2]
    bindings = json.loads(ctl(broker, "-f", "json", "list", "bindings").stdout)
    assert any(b["source"] == "cli-x" and b["destination"] == "cli-q" for b in bindings)
    got = json.loads(ctl(broker, "-f", "json", "get", "cli-q").stdout)
    assert got[0]["payload"] == "hello" and got[0]["properties"]["message_id"] == "cli-1"
    trace = ctl(broker, "trace", "cli-1").stdout
    assert "published" in trace and "routed" in trace and "delivered" in trace and "requeued" in trace
    tj = json.loads(ctl(broker, "-f", "json", "trace", "cli-1").stdout)
    assert [e["event"] for e in tj["events"]] == ["published", "routed", "delivered", "requeued"]
    for what in ("exchanges", "connections", "consumers", "channels"):
        json.loads(ctl(broker, "-f", "json", "list", what).stdout)
    defs = tmp_path / "defs.json"
    ctl(broker, "export", str(defs))
    data = json.loads(defs.read_text())
    assert any(q["name"] == "cli-q" for q in data["queues"])
    ctl(broker, "purge", "queue", "cli-q")
    assert json.loads(ctl(broker, "-f", "json", "list", "queues").stdout)[0]["messages_ready"] == 0
    ctl(broker, "delete", "queue", "cli-q")
    ctl(broker, "delete", "exchange", "cli-x")
    assert json.loads(ctl(broker, "-f", "json", "list", "queues").stdout) == []
    ctl(broker, "import", str(defs))
    assert [q["name"] for q in json.loads(ctl(broker, "-f", "json", "list", "queues").stdout)] == ["cli-q"]
    r = ctl(broker, "delete", "queue", "missing", ok=False)
    assert r.returncode == 1 and "404" in r.stderr
