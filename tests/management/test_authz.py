"""Management API authorization (issue 12 item 1): tags decide which endpoints a user reaches,
vhost permissions decide which objects, exactly as RabbitMQ 3.10.

``test_matrix_matches_rabbitmq`` walks every route x user (11 users: each tag, with full,
``^$``, read-only or no permissions) and compares the status codes with
authz_expected.json, recorded from RabbitMQ 3.10 with the same set-up
(interop/test_management_authz_diff.py runs the same comparison against a live node).
"""

from __future__ import annotations

import json
from pathlib import Path

import aio_pika
import pytest
from warren.server.http.management import authz
from warren.server.http.management.api import Api, make_management_app

from tests.brokerproc import wait_port

from . import authz_matrix as M

EXPECTED = Path(__file__).with_name("authz_expected.json")


def expected() -> dict[tuple[str, str, str], int]:
    return {(u, m, p): s for u, m, p, s in json.loads(EXPECTED.read_text())}


def differences(rmq: dict[tuple[str, str, str], int], ours: dict[tuple[str, str, str], int]) -> list[str]:
    out = []
    for k, want in sorted(rmq.items()):
        got = ours.get(k)
        # RabbitMQ 3.10 crashes (500) looking up a connection/channel or vhost limit that does not exist;
        # warren answers 404 there
        if want == 500 and got == 404:
            continue
        if got != want:
            out.append(f"{k}: rabbitmq {want} warren {got}")
    return out


def test_every_route_has_a_rule():
    api = Api(None)  # type: ignore[arg-type]
    routes = {(m, "/".join(pat)) for m, pat, _h, _r in api.routes}
    assert routes - authz.RULES.keys() == set(), "routes without an authorization rule"
    assert authz.RULES.keys() - routes == set(), "rules for routes that do not exist"


def test_every_aiohttp_route_goes_through_the_api_handler():
    """Nothing under the management listener but the API handler (which authorizes) and the static dashboard."""
    app = make_management_app(None)  # type: ignore[arg-type]
    api = app["api"]
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if path in authz.PUBLIC_PATHS:
            continue
        assert route.handler == api.handle, f"{route.method} {path} bypasses authorization"


@pytest.mark.timeout(120)
async def test_matrix_matches_rabbitmq(broker):
    wait_port(broker.mgmt_port)
    ours = await M.run(f"http://127.0.0.1:{broker.mgmt_port}/api", broker.port)
    want = expected()
    assert len(want) > 1500
    problems = differences(want, ours)
    assert not problems, "\n".join(problems)


async def test_listings_are_filtered(broker, http):
    """Non-monitoring users see their own connections only; queues only in vhosts they may use."""
    for u, tags in (("f-mgmt", "management"), ("f-mon", "monitoring")):
        assert (await http.req("PUT", f"/api/users/{u}", {"password": "pw", "tags": tags}))[0] == 201
    await http.req("PUT", "/api/vhosts/f-other", {})
    await http.req("PUT", "/api/permissions/%2F/f-mgmt", M.FULL)
    await http.req("PUT", "/api/queues/f-other/hidden-q", {})
    await http.req("PUT", "/api/queues/%2F/seen-q", {})
    guest = await aio_pika.connect(broker.url)
    own = await aio_pika.connect(f"amqp://f-mgmt:pw@127.0.0.1:{broker.port}/")
    try:
        for u, conn_users, queues in (("f-mgmt", {"f-mgmt"}, {"seen-q"}), ("f-mon", {"guest", "f-mgmt"}, set())):
            a = M.auth(u, "pw")
            st, conns = await http.req("GET", "/api/connections", auth=a)
            assert st == 200 and {c["user"] for c in conns} == conn_users
            st, qs = await http.req("GET", "/api/queues", auth=a)
            assert st == 200 and {q["name"] for q in qs} == queues
            st, vhosts = await http.req("GET", "/api/vhosts", auth=a)
            assert {v["name"] for v in vhosts} == ({"/"} if u == "f-mgmt" else {"/", "f-other"})
        st, body = await http.req("GET", "/api/queues/f-other", auth=M.auth("f-mgmt", "pw"))
        assert (st, body) == (401, {"error": "not_authorised", "reason": "User not authorised to access virtual host"})
    finally:
        await guest.close()
        await own.close()


async def test_refusals_carry_rabbitmq_bodies(broker, http):
    await http.req("PUT", "/api/users/b-none", {"password": "pw", "tags": "management"})
    await http.req("PUT", "/api/users/b-notag", {"password": "pw", "tags": ""})
    await http.req("PUT", "/api/permissions/%2F/b-none", M.NONE)
    await http.req("PUT", "/api/queues/%2F/b-q", {})
    a = M.auth("b-none", "pw")
    cases = [
        ("POST", "/api/queues/%2F/b-q/get", {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"},
         401, "not_authorised", "ACCESS_REFUSED - access to queue 'b-q' in vhost '/' refused for user 'b-none'"),
        ("POST", "/api/exchanges/%2F/amq.direct/publish",
         {"routing_key": "b-q", "payload": "x", "payload_encoding": "string", "properties": {}},
         400, "bad_request", "403 ACCESS_REFUSED - access to exchange 'amq.direct' in vhost '/' refused for user 'b-none'"),
        ("DELETE", "/api/queues/%2F/b-q", None, 401, "not_authorised", "Access refused."),
        ("DELETE", "/api/queues/%2F/b-q/contents", None, 401, "not_authorised", "Access refused."),
        ("GET", "/api/users", None, 401, "not_authorised", "Not administrator user"),
        ("GET", "/api/nodes", None, 401, "not_authorised", "Not monitor user"),
        ("PUT", "/api/policies/%2F/b-p", {"pattern": ".*", "definition": {}}, 401, "not_authorised",
         "User not authorised to access object"),
    ]
    for method, path, body, status, error, reason in cases:
        st, got = await http.req(method, path, body, auth=a)
        assert (st, got) == (status, {"error": error, "reason": reason}), path
    st, got = await http.req("GET", "/api/whoami", auth=M.auth("b-notag", "pw"))
    assert (st, got) == (401, {"error": "not_authorised", "reason": "Not management user"})
    # the queue is untouched
    assert (await http.get("/api/queues/%2F/b-q"))["name"] == "b-q"


async def test_overview_is_restricted_for_non_monitoring_users(broker, http):
    """As RabbitMQ: no node/listeners, totals over the user's own vhosts and connections only."""
    await http.req("PUT", "/api/users/o-mgmt", {"password": "pw", "tags": "management"})
    await http.req("PUT", "/api/users/o-mon", {"password": "pw", "tags": "monitoring"})
    await http.req("PUT", "/api/vhosts/o-other", {})
    await http.req("PUT", "/api/permissions/o-other/o-mgmt", M.FULL)
    await http.req("PUT", "/api/queues/%2F/o-q1", {})
    await http.req("PUT", "/api/queues/o-other/o-q2", {})
    st, mine = await http.req("GET", "/api/overview", auth=M.auth("o-mgmt", "pw"))
    assert st == 200
    assert "node" not in mine and "listeners" not in mine
    assert mine["object_totals"]["queues"] == 1 and mine["object_totals"]["connections"] == 0
    assert mine["object_totals"]["exchanges"] == 7  # the default and amq.* exchanges of o-other
    st, mon = await http.req("GET", "/api/overview", auth=M.auth("o-mon", "pw"))
    assert st == 200 and "node" in mon and mon["object_totals"]["queues"] == 2
