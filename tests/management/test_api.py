"""Management API: RabbitMQ's paths, JSON field names and values, status codes."""

from __future__ import annotations

import aio_pika

from tests.brokerproc import BrokerProcess, wait_port

from .conftest import Http


async def test_auth_and_overview(broker, http):
    status, data = await http.req("GET", "/api/overview", auth=None)
    assert status == 401 and data == {"error": "not_authorized", "reason": "Login failed"}
    status, _ = await http.req("GET", "/api/queues", auth={"Authorization": "Basic Z3Vlc3Q6bm9wZQ=="})
    assert status == 401
    ov = await http.get("/api/overview")
    for k in ("management_version", "rabbitmq_version", "cluster_name", "message_stats", "queue_totals",
              "object_totals", "listeners", "node", "exchange_types"):
        assert k in ov
    assert ov["object_totals"]["queues"] == 0
    assert await http.get("/api/whoami") == {"name": "guest", "tags": ["administrator"]}
    assert await http.get("/api/healthchecks/node") == {"status": "ok"}
    assert await http.get("/api/health/checks/alarms") == {"status": "ok"}
    assert await http.get("/api/aliveness-test/%2F") == {"status": "ok"}
    assert (await http.req("GET", "/api/queues/%2F/nope"))[0] == 404


async def test_queue_lifecycle_publish_get(broker, http):
    st, _ = await http.req("PUT", "/api/queues/%2F/api-q", json={"durable": True, "arguments": {"x-max-priority": 3}})
    assert st == 201
    st, _ = await http.req("PUT", "/api/queues/%2F/api-q", json={"durable": True, "arguments": {"x-max-priority": 3}})
    assert st == 204
    st, _ = await http.req("PUT", "/api/exchanges/%2F/api-x", json={"type": "topic", "durable": True})
    assert st == 201
    st, _ = await http.req("POST", "/api/bindings/%2F/e/api-x/q/api-q", json={"routing_key": "a.#", "arguments": {}})
    assert st == 201
    for i in range(3):
        st, r = await http.req("POST", "/api/exchanges/%2F/api-x/publish", json={
            "routing_key": "a.b", "payload": f"hello{i}", "payload_encoding": "string",
            "properties": {"message_id": f"m{i}", "priority": i, "headers": {"h": 1}}})
        assert st == 200 and r == {"routed": True}
    st, r = await http.req("POST", "/api/exchanges/%2F/api-x/publish", json={
        "routing_key": "zzz", "payload": "x", "payload_encoding": "string", "properties": {}})
    assert r == {"routed": False}
    q = await http.get("/api/queues/%2F/api-q")
    assert q["name"] == "api-q" and q["vhost"] == "/" and q["durable"] is True
    assert q["messages"] == 3 and q["messages_ready"] == 3 and q["messages_unacknowledged"] == 0
    assert q["message_stats"]["publish"] == 3
    assert q["arguments"] == {"x-max-priority": 3}
    assert q["backing_queue_status"]["priority_lengths"] == {"0": 1, "1": 1, "2": 1, "3": 0}
    assert q["consumer_details"] == [] and q["consumers"] == 0
    got = await http.get("/api/queues/%2F")
    assert [x["name"] for x in got] == ["api-q"]
    cols = await http.get("/api/queues?columns=name,messages,message_stats.publish")
    assert cols == [{"name": "api-q", "messages": 3, "message_stats": {"publish": 3}}]
    # get with requeue: highest priority first, message stays
    st, msgs = await http.req("POST", "/api/queues/%2F/api-q/get", json={
        "count": 2, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000})
    assert st == 200 and [m["payload"] for m in msgs] == ["hello2", "hello1"]
    m0 = msgs[0]
    assert set(m0) == {"payload_bytes", "redelivered", "exchange", "routing_key", "message_count", "properties",
                       "payload", "payload_encoding"}
    assert m0["exchange"] == "api-x" and m0["routing_key"] == "a.b" and m0["payload_bytes"] == 6
    assert m0["properties"]["message_id"] == "m2" and m0["properties"]["headers"] == {"h": 1}
    assert m0["message_count"] == 2 and m0["redelivered"] is False
    assert (await http.get("/api/queues/%2F/api-q"))["messages"] == 3
    st, msgs = await http.req("POST", "/api/queues/%2F/api-q/get", json={"count": 1, "ackmode": "ack_requeue_false", "encoding": "base64"})
    assert msgs[0]["redelivered"] is True and msgs[0]["payload_encoding"] == "base64"
    assert (await http.get("/api/queues/%2F/api-q"))["messages"] == 2
    # bindings
    bs = await http.get("/api/bindings/%2F/e/api-x/q/api-q")
    assert bs == [{"source": "api-x", "vhost": "/", "destination": "api-q", "destination_type": "queue",
                   "routing_key": "a.#", "arguments": {}, "properties_key": "a.%23"}]
    allb = await http.get("/api/bindings")
    assert {"source": "", "vhost": "/", "destination": "api-q", "destination_type": "queue", "routing_key": "api-q",
            "arguments": {}, "properties_key": "api-q"} in allb
    st, _ = await http.req("DELETE", "/api/bindings/%2F/e/api-x/q/api-q/a.%2523")
    assert st == 204
    assert await http.get("/api/bindings/%2F/e/api-x/q/api-q") == []
    # purge, delete
    st, _ = await http.req("DELETE", "/api/queues/%2F/api-q/contents")
    assert st == 204 and (await http.get("/api/queues/%2F/api-q"))["messages"] == 0
    st, _ = await http.req("DELETE", "/api/queues/%2F/api-q")
    assert st == 204
    assert (await http.req("GET", "/api/queues/%2F/api-q"))[0] == 404
    ex = await http.get("/api/exchanges/%2F/api-x")
    assert ex["type"] == "topic" and ex["message_stats"]["publish_in"] == 4 and ex["message_stats"]["publish_out"] == 3
    st, _ = await http.req("DELETE", "/api/exchanges/%2F/api-x")
    assert st == 204


async def test_connections_channels_consumers(broker, http):
    conn = await aio_pika.connect(broker.url, client_properties={"connection_name": "test-conn"})
    async with conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=7)
        q = await ch.declare_queue("cq")
        for _ in range(3):
            await ch.default_exchange.publish(aio_pika.Message(b"x"), "cq")
        async def ignore(m: aio_pika.abc.AbstractIncomingMessage) -> None:
            return None

        await q.consume(ignore, consumer_tag="ctag-1")
        conns = await http.get("/api/connections")
        assert len(conns) == 1
        c = conns[0]
        assert c["user"] == "guest" and c["vhost"] == "/" and c["protocol"] == "AMQP 0-9-1"
        assert c["channels"] == 1 and c["client_properties"]["connection_name"] == "test-conn"
        assert isinstance(c["recv_oct"], int) and c["recv_oct"] > 0

        async def three_unacked() -> bool:
            chans = await http.get("/api/channels")
            return chans[0]["messages_unacknowledged"] == 3

        from .conftest import wait_for

        await wait_for(three_unacked)
        chans = await http.get("/api/channels")
        assert chans[0]["name"] == f"{c['name']} (1)" and chans[0]["prefetch_count"] == 7
        assert chans[0]["consumer_count"] == 1 and chans[0]["message_stats"]["publish"] == 3
        assert chans[0]["message_stats"]["deliver"] == 3
        cons = await http.get("/api/consumers")
        assert cons == [{
            "arguments": {}, "ack_required": True, "active": True, "activity_status": "up",
            "channel_details": {"connection_name": c["name"], "name": chans[0]["name"], "node": c["node"],
                                "number": 1, "peer_host": c["peer_host"], "peer_port": c["peer_port"], "user": "guest"},
            "consumer_tag": "ctag-1", "exclusive": False, "prefetch_count": 7, "queue": {"name": "cq", "vhost": "/"}}]
        q = await http.get("/api/queues/%2F/cq")
        assert q["messages_unacknowledged"] == 3 and q["consumers"] == 1
        assert q["consumer_details"][0]["consumer_tag"] == "ctag-1"


async def test_users_vhosts_permissions_policies(broker, http):
    assert (await http.req("PUT", "/api/vhosts/v2", json={"description": "second"}))[0] == 201
    vhs = {v["name"]: v for v in await http.get("/api/vhosts")}
    assert set(vhs) == {"/", "v2"} and vhs["v2"]["description"] == "second" and vhs["v2"]["tracing"] is False
    assert (await http.req("PUT", "/api/users/bob", json={"password": "secret", "tags": "monitoring"}))[0] == 201
    u = await http.get("/api/users/bob")
    assert u["tags"] == ["monitoring"] and u["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert (await http.req("PUT", "/api/permissions/v2/bob", json={"configure": "", "write": ".*", "read": ".*"}))[0] == 201
    assert await http.get("/api/permissions/v2/bob") == {"user": "bob", "vhost": "v2", "configure": "", "write": ".*", "read": ".*"}
    bob = {"Authorization": "Basic Ym9iOnNlY3JldA=="}
    st, _ = await http.req("GET", "/api/overview", auth=bob)
    assert st == 200
    st, _ = await http.req("PUT", "/api/vhosts/v3", json={}, auth=bob)
    assert st == 401
    st, _ = await http.req("PUT", "/api/policies/v2/ttl", json={"pattern": "^t\\.", "definition": {"message-ttl": 1000}, "priority": 1, "apply-to": "queues"})
    assert st == 201
    pol = await http.get("/api/policies/v2")
    assert pol == [{"vhost": "v2", "name": "ttl", "pattern": "^t\\.", "apply-to": "queues", "definition": {"message-ttl": 1000}, "priority": 1}]
    assert (await http.req("PUT", "/api/queues/v2/t.one", json={"durable": False}))[0] == 201
    assert (await http.get("/api/queues/v2/t.one"))["policy"] == "ttl"
    assert (await http.req("DELETE", "/api/policies/v2/ttl"))[0] == 204
    assert (await http.req("DELETE", "/api/users/bob"))[0] == 204
    assert (await http.req("DELETE", "/api/vhosts/v2"))[0] == 204
    assert [v["name"] for v in await http.get("/api/vhosts")] == ["/"]


async def test_definitions_export_import(broker, http, tmp_path):
    await http.req("PUT", "/api/queues/%2F/def-q", json={"durable": True, "arguments": {"x-message-ttl": 5000}})
    await http.req("PUT", "/api/exchanges/%2F/def-x", json={"type": "fanout", "durable": True})
    await http.req("POST", "/api/bindings/%2F/e/def-x/q/def-q", json={"routing_key": "", "arguments": {}})
    await http.req("PUT", "/api/users/alice", json={"password": "pw", "tags": ""})
    defs = await http.get("/api/definitions")
    for k in ("rabbit_version", "users", "vhosts", "permissions", "policies", "queues", "exchanges", "bindings"):
        assert k in defs
    other = BrokerProcess(tmp_path / "other").start()
    try:
        wait_port(other.mgmt_port)
        h2 = Http(other, http.s)
        st, _ = await h2.req("POST", "/api/definitions", json=defs)
        assert st == 204
        q = await h2.get("/api/queues/%2F/def-q")
        assert q["durable"] is True and q["arguments"] == {"x-message-ttl": 5000}
        assert (await h2.get("/api/exchanges/%2F/def-x"))["type"] == "fanout"
        assert await h2.get("/api/bindings/%2F/e/def-x/q/def-q")
        assert "alice" in [u["name"] for u in await h2.get("/api/users")]
        defs2 = await h2.get("/api/definitions")
        assert sorted(defs2["queues"], key=str) == sorted(defs["queues"], key=str)
        assert sorted(defs2["bindings"], key=str) == sorted(defs["bindings"], key=str)
    finally:
        other.stop()
