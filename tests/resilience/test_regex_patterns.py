"""Policy and permission patterns cannot freeze the broker (issue 12 leftovers): they are
matched by RE2 when RE2 can, else by backtracking ``re`` only when the pattern's cost is
provably small (server/safe_regex.py); others are refused with 400 when set. A canary
client round-trips a message every 50 ms throughout (max RTT < 1 s)."""

from __future__ import annotations

import pika
import pytest
import requests

from tests.brokerproc import wait_port

AUTH = ("guest", "guest")
MAX_RTT = 1.0
#: (a+)+$ backtracks 2^n steps on n a's followed by a non-a: hopeless at 250
LONG = "a" * 250 + "!"


def _api(broker, method: str, path: str, body: dict | None = None) -> requests.Response:
    return requests.request(method, f"http://127.0.0.1:{broker.mgmt_port}/api/{path}", json=body, auth=AUTH, timeout=30)


@pytest.mark.timeout(90)
def test_evil_policy_pattern_cannot_freeze_the_broker(broker, canary):
    wait_port(broker.mgmt_port)
    r = _api(broker, "PUT", "policies/%2F/evil", {"pattern": "(a+)+$", "definition": {"max-length": 5}, "apply-to": "queues"})
    assert r.status_code in (201, 204), r.text
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    for i in range(20):
        ch.queue_declare(LONG[: 240 + i // 2] + f"!{i}", auto_delete=True)
    # the pattern still does what it says
    ch.queue_declare("aaaa", auto_delete=True)
    assert _api(broker, "GET", "queues/%2F/aaaa").json()["policy"] == "evil"
    assert _api(broker, "GET", f"queues/%2F/{LONG[:240]}!0").json()["policy"] is None
    conn.close()
    canary.wait_rounds(3)
    assert canary.max_rtt < MAX_RTT, f"canary max RTT {canary.max_rtt:.2f}s"


@pytest.mark.timeout(60)
def test_policy_patterns_re2_cannot_match_are_refused_unless_bounded(broker, canary):
    wait_port(broker.mgmt_port)
    # RabbitMQ's documented idiom needs lookahead (not in RE2): accepted, and applies
    r = _api(broker, "PUT", "policies/%2F/not-amq", {"pattern": r"^(?!amq\.).*", "definition": {"max-length": 5}})
    assert r.status_code in (201, 204), r.text
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("plain", auto_delete=True)
    assert _api(broker, "GET", "queues/%2F/plain").json()["policy"] == "not-amq"
    # lookahead with a nested quantifier: backtracking would be exponential; refused
    for pattern in (r"(?!x)(a+)+$", r"(?=a)(a|aa)*$", r"(?!x).*.*.*!$", "(?!x)" + "a" * 300):
        r = _api(broker, "PUT", "policies/%2F/evil", {"pattern": pattern, "definition": {"max-length": 5}})
        assert r.status_code == 400, (pattern, r.status_code, r.text)
        assert "pattern" in r.json()["reason"], r.text
    assert _api(broker, "GET", "policies/%2F/evil").status_code == 404
    for i in range(10):
        ch.queue_declare(LONG + str(i)[:3], auto_delete=True)
    conn.close()
    canary.wait_rounds(3)
    assert canary.max_rtt < MAX_RTT, f"canary max RTT {canary.max_rtt:.2f}s"
    assert "Traceback" not in broker.log_text()


@pytest.mark.timeout(90)
def test_evil_permission_pattern_cannot_freeze_the_broker(broker, canary):
    wait_port(broker.mgmt_port)
    assert _api(broker, "PUT", "users/mallory", {"password": "m", "tags": ""}).status_code in (201, 204)
    # refused: RE2 cannot match it and backtracking would be exponential
    r = _api(broker, "PUT", "permissions/%2F/mallory", {"configure": r"(?!x)(a+)+$", "write": ".*", "read": ".*"})
    assert r.status_code == 400, r.text
    assert "nested quantifier" in r.text
    # accepted: RE2 matches it in linear time
    r = _api(broker, "PUT", "permissions/%2F/mallory", {"configure": "(a+)+$", "write": "(a+)+$", "read": "(a+)+$"})
    assert r.status_code in (201, 204), r.text
    conn = pika.BlockingConnection(pika.URLParameters(broker.url.replace("guest:guest", "mallory:m")))
    for i in range(20):
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
            ch.queue_declare(LONG[: 240 + i // 2] + f"!{i}", auto_delete=True)
        assert exc.value.reply_code == 403
    ch = conn.channel()
    ch.queue_declare("aaa", auto_delete=True)  # allowed: the pattern still works
    conn.close()
    canary.wait_rounds(3)
    assert canary.max_rtt < MAX_RTT, f"canary max RTT {canary.max_rtt:.2f}s"
    assert "Traceback" not in broker.log_text()
