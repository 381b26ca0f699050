"""Management API input validation (issue 12, items 8/9): a bad value gets a 400 with
RabbitMQ 3.10's reason, is refused before anything changes, and never a 500 or a
traceback in the log.

Expected answers were recorded from RabbitMQ 3.10 with the management plugin
(interop/test_validation_diff.py compares live). Marked ``warren:`` where warren
answers 400 and RabbitMQ 500 (a crash) or accepts what AMQP cannot carry.
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.management.conftest import AUTH

L300 = "k" * 300
VALIDATION = "Validation failed\n\n"


def _regexp(pattern, as_codes: bool):
    """RabbitMQ's ["invalid_regexp", <pattern>, [<message codes>, <pos>]], message left open."""
    return ["invalid_regexp", [ord(c) for c in pattern] if as_codes else pattern]


# (method, path, json body, status, reason: exact str / prefix via callable / list head / None)
CASES = [
    ("PUT", "/api/permissions/%2F/guest", {"configure": "(", "write": ".*", "read": ".*"}, 400, _regexp("(", True)),
    ("PUT", "/api/permissions/%2F/guest", {"configure": ".*", "write": "[", "read": ".*"}, 400, _regexp("[", True)),
    # warren: RabbitMQ 500
    ("PUT", "/api/permissions/%2F/guest", {"configure": 5, "write": ".*", "read": ".*"}, 400, None),
    ("PUT", "/api/topic-permissions/%2F/guest", {"exchange": "amq.topic", "write": "(", "read": ".*"}, 400,
     _regexp("(", False)),
    ("PUT", "/api/policies/%2F/p", {"pattern": "(", "definition": {"max-length": 1}}, 400,
     VALIDATION + "pattern should be regular expression but is invalid: "),
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*", "definition": {"max-length": "x"}}, 400,
     VALIDATION + "&lt;&lt;\"x\"&gt;&gt; is not a valid maximum length\n"),
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*", "definition": {"message-ttl": -1}}, 400,
     VALIDATION + "-1 is not a valid message TTL\n"),
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*", "definition": {"expires": 0}}, 400,
     VALIDATION + "0 is not a valid queue expiry\n"),
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*", "definition": {"overflow": "bogus"}}, 400,
     VALIDATION + "&lt;&lt;\"bogus\"&gt;&gt; is not a valid overflow value\n"),
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*", "definition": {"dead-letter-exchange": 5}}, 400,
     VALIDATION + "5 is not a valid dead letter exchange name\n"),
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*"}, 400, "[{key_missing,definition}]"),
    ("PUT", "/api/policies/%2F/p", {"pattern": 5, "definition": {"max-length": 1}}, 400,
     VALIDATION + "pattern should be a binary but was 5\n"),
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*", "definition": {"max-length": 1}, "priority": "x"}, 400,
     VALIDATION + "priority should be a number, actually was &lt;&lt;\"x\"&gt;&gt;\n"),
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*", "definition": {"max-length": 1}, "apply-to": "bogus"}, 400,
     VALIDATION + "apply-to 'bogus' unrecognised; should be 'queues', 'exchanges' or 'all'\n"),
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*", "definition": {"bogus-key": 1}}, 400,
     VALIDATION + "[{&lt;&lt;\"bogus-key\"&gt;&gt;,1}] are not recognised policy settings\n"),
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*", "definition": {}}, 400, VALIDATION + "no policy provided\n"),
    # warren: RabbitMQ 500
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*", "definition": "x"}, 400, VALIDATION + "parse error"),
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*", "definition": None}, 400, VALIDATION + "parse error"),
    ("PUT", "/api/policies/%2F/p", {"pattern": ".*", "definition": {"max-length": 1}, "apply-to": 5}, 400,
     VALIDATION + "apply-to"),
    ("PUT", "/api/queues/%2F/" + "q" * 256, {}, 400, "queue should be less than 255 bytes, actually was 256\n"),
    ("PUT", "/api/queues/%2F/" + "%C3%A9" * 128, {}, 400, "queue should be less than 255 bytes, actually was 256\n"),
    # warren: RabbitMQ accepts these, but AMQP cannot carry them (a delivery would break the consumer)
    ("PUT", "/api/exchanges/%2F/" + "x" * 300, {"type": "direct"}, 400,
     "exchange should be less than 255 bytes, actually was 300\n"),
    ("POST", "/api/bindings/%2F/e/amq.direct/q/vq", {"routing_key": L300}, 400,
     "routing_key should be less than 255 bytes, actually was 300\n"),
    ("POST", "/api/exchanges/%2F/amq.default/publish",
     {"routing_key": L300, "payload": "x", "payload_encoding": "string", "properties": {}}, 400,
     "routing_key should be less than 255 bytes, actually was 300\n"),
    ("POST", "/api/exchanges/%2F/amq.default/publish",
     {"routing_key": "k", "payload": "x", "payload_encoding": "string", "properties": {"content_type": L300}}, 400,
     "content_type should be less than 255 bytes, actually was 300\n"),
    # warren: RabbitMQ 500
    ("PUT", "/api/queues/%2F/qa", {"arguments": "x"}, 400, "arguments should be an object"),
    ("PUT", "/api/exchanges/%2F/xa", {"type": "direct", "arguments": "x"}, 400, "arguments should be an object"),
    ("POST", "/api/bindings/%2F/e/amq.direct/q/vq", {"routing_key": "k", "arguments": "x"}, 400,
     "arguments should be an object"),
    ("POST", "/api/exchanges/%2F/amq.default/publish",
     {"routing_key": "k", "payload": "x", "payload_encoding": "string", "properties": "x"}, 400,
     "properties should be an object"),
    ("POST", "/api/exchanges/%2F/amq.default/publish",
     {"routing_key": "k", "payload": "x", "payload_encoding": "string", "properties": {"headers": "x"}}, 400,
     "arguments should be an object"),
    ("POST", "/api/exchanges/%2F/amq.default/publish",
     {"routing_key": "k", "payload": "x", "payload_encoding": "string", "properties": {"delivery_mode": "x"}}, 400,
     ["not_int", "delivery_mode"]),
    ("PUT", "/api/users/u2", {"password": "x", "tags": 5}, 400, "tags should be a string or a list of strings"),
    ("PUT", "/api/vhosts/v1", {"description": "d", "tags": 7}, 400, "tags should be a string or a list of strings"),
    ("POST", "/api/exchanges/%2F/amq.default/publish",
     {"routing_key": "vq", "payload": "x", "payload_encoding": "string", "properties": {"headers": {"a": 10**30}}},
     400, "invalid properties: "),
    ("POST", "/api/exchanges/%2F/amq.default/publish",
     {"routing_key": "vq", "payload": "x", "payload_encoding": "string", "properties": {"timestamp": 10**20}},
     400, "invalid properties: "),
    ("POST", "/api/exchanges/%2F/amq.default/publish",
     {"routing_key": "vq", "payload": 5, "payload_encoding": "base64", "properties": {}}, 400, "payload_not_string"),
    ("POST", "/api/exchanges/%2F/amq.default/publish",
     {"routing_key": "vq", "payload": "x", "payload_encoding": "string", "properties": {"expiration": "abc"}},
     400, "406 PRECONDITION_FAILED - invalid expiration 'abc': no_integer"),
    ("POST", "/api/definitions", {"queues": "x"}, 400, "queues should be a list of objects"),
    ("POST", "/api/definitions", {"policies": "x"}, 400, "policies should be a list of objects"),
    ("POST", "/api/definitions", {"queues": [{"name": "q" * 300, "vhost": "/"}]}, 400,
     "queue should be less than 255 bytes, actually was 300\n"),
    ("POST", "/api/definitions", {"queues": [{"vhost": "/"}]}, 400, None),
    ("POST", "/api/definitions", {"users": [{"name": "u"}]}, 400, "tags_not_present"),
    ("POST", "/api/definitions",
     {"permissions": [{"user": "guest", "vhost": "/", "configure": "(", "write": ".*", "read": ".*"}]}, 400,
     _regexp("(", True)),
    ("POST", "/api/definitions",
     {"topic_permissions": [{"user": "guest", "vhost": "/", "exchange": "amq.topic", "write": "(", "read": ".*"}]},
     400, _regexp("(", False)),
    ("POST", "/api/definitions", {"policies": [{"vhost": "/", "name": "dp", "pattern": ".*",
                                                "definition": {"max-length": "x"}}]}, 400,
     VALIDATION + "&lt;&lt;\"x\"&gt;&gt; is not a valid maximum length\n (//dp)"),
    ("POST", "/api/definitions", {"policies": [{"vhost": "/", "name": "dp"}]}, 400,
     VALIDATION + "parse error while reading policy definition: undefined. Validator: policy_validator.\n"
     "pattern should be a binary but was undefined\n (//dp)"),
]


def _check_reason(reason, want) -> None:
    if want is None:
        return
    if isinstance(want, list):
        assert isinstance(reason, list) and reason[: len(want)] == want, reason
    else:
        assert isinstance(reason, str) and reason.startswith(want), reason


async def test_bad_input_gets_400_with_rabbitmq_reason(broker, http):
    assert (await http.req("PUT", "/api/queues/%2F/vq", json={}))[0] == 201
    before_log = broker.log_path.stat().st_size
    problems = []
    for method, path, body, status, want in CASES:
        got, data = await http.req(method, path, json=body)
        if got != status:
            problems.append(f"{method} {path[:60]} {body!r:.80}: {got} {data!r:.200}")
            continue
        try:
            assert isinstance(data, dict) and data.get("error") == "bad_request", data
            _check_reason(data["reason"], want)
        except AssertionError as exc:
            problems.append(f"{method} {path[:60]} {body!r:.80}: {exc}")
    assert not problems, "\n".join(problems)
    # nothing was half-applied: no policy, the permissions are as they were, no odd queue
    assert await http.get("/api/policies") == []
    assert await http.get("/api/topic-permissions") == []
    perms = await http.get("/api/permissions/%2F/guest")
    assert (perms["configure"], perms["write"], perms["read"]) == (".*", ".*", ".*")
    assert sorted(q["name"] for q in await http.get("/api/queues")) == ["vq"]
    assert (await http.get("/api/queues/%2F/vq"))["messages"] == 0
    assert [u["name"] for u in await http.get("/api/users")] == ["guest"]
    log = broker.log_text()[before_log:]
    assert "Traceback" not in log and "internal" not in log.lower(), log[-2000:]


async def test_deeply_nested_json_is_refused(broker, http):
    nested: object = 1
    for _ in range(900):  # fits json.loads' own limit, not the recursive code after it
        nested = {"a": nested}
    st, data = await http.req("PUT", "/api/queues/%2F/deep", json={"arguments": {"x-foo": nested}})
    assert st == 400 and "nested" in data["reason"], data
    st, data = await http.req("POST", "/api/definitions", data=b"[" * 5000 + b"]" * 5000,
                              auth={**AUTH, "Content-Type": "application/json"})
    assert st == 400, data
    assert "Traceback" not in broker.log_text()


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_definitions_import_needs_json(broker, http, ctype):
    """RabbitMQ answers 415 unless the body is application/json (or its UI's multipart
    upload): a cross-site HTML form cannot post definitions."""
    headers = dict(AUTH)
    if ctype:
        headers["Content-Type"] = ctype
    body = b'{"queues": [{"name": "csrf", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}}]}'
    async with http.s.post(http.base + "/api/definitions", data=body, headers=headers) as r:
        assert r.status == 415
    assert all(q["name"] != "csrf" for q in await http.get("/api/queues"))


async def test_definitions_import_json_and_multipart(broker, http):
    body = b'{"queues": [{"name": "viajson", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}}]}'
    headers = {**AUTH, "Content-Type": "application/json; charset=utf-8"}
    async with http.s.post(http.base + "/api/definitions", data=body, headers=headers) as r:
        assert r.status == 204
    form = aiohttp.FormData()
    form.add_field("file", body.replace(b"viajson", b"viaform"), filename="defs.json", content_type="application/json")
    async with http.s.post(http.base + "/api/definitions", data=form, headers=AUTH) as r:
        assert r.status == 204, await r.text()
    names = {q["name"] for q in await http.get("/api/queues")}
    assert {"viajson", "viaform"} <= names
