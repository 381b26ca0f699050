"""The management-API authorization matrix: the same users, tags, permissions and objects
set up on a broker (warren or RabbitMQ) through its HTTP API, then every route probed
as every user; the result is ``{(user, method, path): status}``.

Used by interop/test_management_authz_diff.py (warren against RabbitMQ 3.10) and by
tests/management/test_authz.py (warren against the matrix recorded from RabbitMQ in
authz_expected.json).

Mutating requests act on per-user copies of the objects (``q-<user>``, ``x-<user>``,
``p-<user>`` ...) so the users cannot disturb each other; requests run in phases
(reads, then creates/updates, then deletes) and, inside a phase, concurrently.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import aio_pika
import aiohttp

PW = "pw-authz"
VH2 = "authz-vh"
FULL = {"configure": ".*", "write": ".*", "read": ".*"}
NONE = {"configure": "^$", "write": "^$", "read": "^$"}
READ_ONLY = {"configure": "^$", "write": "^$", "read": ".*"}

#: user -> (tags, {vhost: permissions})
USERS: dict[str, tuple[str, dict[str, dict[str, str]]]] = {
    "az-admin": ("administrator", {"/": FULL}),
    "az-admin-noperm": ("administrator", {}),
    "az-mon": ("monitoring", {}),
    "az-mon-full": ("monitoring", {"/": FULL}),
    "az-pol": ("policymaker", {"/": FULL}),
    "az-pol-none": ("policymaker", {"/": NONE}),
    "az-mgmt": ("management", {"/": FULL}),
    "az-mgmt-none": ("management", {"/": NONE}),
    "az-mgmt-ro": ("management", {"/": READ_ONLY}),
    "az-mgmt-novh": ("management", {}),
    "az-notag": ("", {"/": FULL}),
}


def auth(user: str, password: str = PW) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def q(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="")


GUEST = auth("guest", "guest")


async def _ok(s: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> None:
    async with s.request(method, url, json=body, headers=GUEST) as r:
        if r.status >= 300:
            raise AssertionError(f"setup {method} {url}: {r.status} {await r.text()}")


async def setup(base: str, amqp_port: int) -> dict[str, Any]:
    """Create users, permissions, vhost, per-user objects and two AMQP connections."""
    async with aiohttp.ClientSession() as s:
        await _ok(s, "PUT", f"{base}/vhosts/{VH2}", {})
        for vh in ("/", VH2):
            await _ok(s, "PUT", f"{base}/queues/{q(vh)}/shared-q", {"durable": True})
            await _ok(s, "PUT", f"{base}/exchanges/{q(vh)}/shared-x", {"type": "direct", "durable": True})
            await _ok(s, "POST", f"{base}/bindings/{q(vh)}/e/shared-x/q/shared-q", {"routing_key": "rk"})
            await _ok(s, "PUT", f"{base}/policies/{q(vh)}/shared-p", {"pattern": "^nothing$", "definition": {"max-length": 5}})
            await _ok(s, "PUT", f"{base}/vhost-limits/{q(vh)}/max-queues", {"value": 1000})
        for u, (tags, perms) in USERS.items():
            await _ok(s, "PUT", f"{base}/users/{u}", {"password": PW, "tags": tags})
            await _ok(s, "PUT", f"{base}/users/t-{u}", {"password": PW, "tags": ""})
            await _ok(s, "PUT", f"{base}/user-limits/t-{u}/max-connections", {"value": 10})
            await _ok(s, "PUT", f"{base}/vhosts/v-{u}", {})
            await _ok(s, "PUT", f"{base}/permissions/{q(VH2)}/t-{u}", FULL)
            for vh, p in perms.items():
                await _ok(s, "PUT", f"{base}/permissions/{q(vh)}/{u}", p)
            for vh in ("/", VH2):
                await _ok(s, "PUT", f"{base}/queues/{q(vh)}/q-{u}", {"durable": True})
                await _ok(s, "PUT", f"{base}/queues/{q(vh)}/qd-{u}", {"durable": True})
                await _ok(s, "PUT", f"{base}/exchanges/{q(vh)}/x-{u}", {"type": "direct", "durable": True})
                await _ok(s, "PUT", f"{base}/exchanges/{q(vh)}/xd-{u}", {"type": "direct", "durable": True})
                await _ok(s, "POST", f"{base}/bindings/{q(vh)}/e/x-{u}/q/q-{u}", {"routing_key": "del"})
                await _ok(s, "PUT", f"{base}/policies/{q(vh)}/pd-{u}", {"pattern": "^nothing$", "definition": {"max-length": 5}})
                await _ok(s, "PUT", f"{base}/permissions/{q(vh)}/t-{u}", FULL)
    guest_conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{amqp_port}/")
    own_conn = await aio_pika.connect(f"amqp://az-mgmt:{PW}@127.0.0.1:{amqp_port}/")
    await guest_conn.channel()
    await own_conn.channel()
    names: dict[str, str] = {}
    async with aiohttp.ClientSession(headers=GUEST) as s:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            async with s.get(f"{base}/connections") as r:
                conns = await r.json()
            async with s.get(f"{base}/channels") as r:
                chans = await r.json()
            names = {c["user"]: c["name"] for c in conns}
            chan_names = {c["user"]: c["name"] for c in chans} if chans and "user" in chans[0] else {}
            if {"guest", "az-mgmt"} <= names.keys() and {"guest", "az-mgmt"} <= chan_names.keys():
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"connections did not show up: {names}")
    return {"conns": (guest_conn, own_conn), "conn": names, "chan": chan_names}


def requests_for(u: str, ctx: dict[str, Any]) -> list[tuple[int, str, str, Any]]:
    """(phase, method, path, body) for user ``u``; paths are relative to /api/."""
    gc, oc = q(ctx["conn"]["guest"]), q(ctx["conn"]["az-mgmt"])
    gch, och = q(ctx["chan"]["guest"]), q(ctx["chan"]["az-mgmt"])
    R: list[tuple[int, str, str, Any]] = []

    def add(phase: int, method: str, path: str, body: Any = None) -> None:
        R.append((phase, method, path, body))

    for p in ("overview", "whoami", "nodes", "extensions", "cluster-name", "connections", "channels",
              "consumers", "exchanges", "queues", "bindings", "vhosts", "users", "permissions",
              "policies", "topic-permissions", "vhost-limits", "user-limits", "definitions",
              "healthchecks/node", "health/checks/alarms", "health/checks/local-alarms",
              "health/checks/virtual-hosts", "health/checks/node-is-quorum-critical",
              "health/checks/node-is-mirror-sync-critical", "health/checks/protocol-listener/amqp",
              "health/checks/certificate-expiration/1/months"):
        add(0, "GET", p)
    for c in (gc, oc):
        add(0, "GET", f"connections/{c}")
        add(0, "GET", f"connections/{c}/channels")
    for c in (gch, och):
        add(0, "GET", f"channels/{c}")
    add(0, "GET", "connections/nosuchconn")
    add(0, "GET", "channels/nosuchchan")
    add(0, "GET", f"users/{u}")
    add(0, "GET", f"users/t-{u}")
    add(0, "GET", f"users/t-{u}/permissions")
    add(0, "GET", f"user-limits/t-{u}")
    for vh in ("/", VH2, "nosuchvh"):
        v = q(vh)
        for p in ("connections", "channels", "permissions"):
            add(0, "GET", f"vhosts/{v}/{p}")
        for p in ("consumers", "exchanges", "queues", "bindings", "policies", "vhost-limits",
                  "definitions", "aliveness-test", "vhosts"):
            add(0, "GET", f"{p}/{v}")
        add(0, "GET", f"exchanges/{v}/shared-x")
        add(0, "GET", f"exchanges/{v}/shared-x/bindings/source")
        add(0, "GET", f"exchanges/{v}/shared-x/bindings/destination")
        add(0, "GET", f"queues/{v}/shared-q")
        add(0, "GET", f"queues/{v}/shared-q/bindings")
        add(0, "GET", f"bindings/{v}/e/shared-x/q/shared-q")
        add(0, "GET", f"bindings/{v}/e/shared-x/q/shared-q/rk")
        add(0, "GET", f"policies/{v}/shared-p")
        add(0, "GET", f"permissions/{v}/t-{u}")
        add(0, "GET", f"topic-permissions/{v}/t-{u}")
        # phase 1: create, publish, get, purge, bind (per-user objects)
        add(1, "PUT", f"queues/{v}/new-q-{u}", {"durable": False})
        add(1, "PUT", f"exchanges/{v}/new-x-{u}", {"type": "fanout", "durable": False})
        add(1, "POST", f"exchanges/{v}/x-{u}/publish",
            {"routing_key": "rk", "payload": "x", "payload_encoding": "string", "properties": {}})
        add(1, "POST", f"queues/{v}/q-{u}/get", {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
        add(1, "POST", f"bindings/{v}/e/x-{u}/q/q-{u}", {"routing_key": "new"})
        add(1, "PUT", f"policies/{v}/new-p-{u}", {"pattern": "^nothing$", "definition": {"max-length": 5}})
        add(1, "PUT", f"permissions/{v}/t-{u}", FULL)
        add(1, "PUT", f"topic-permissions/{v}/t-{u}", {"exchange": "amq.topic", "write": ".*", "read": ".*"})
        add(1, "PUT", f"vhost-limits/{v}/max-connections", {"value": 1000})
        add(1, "GET", f"exchanges/{v}/x-{u}")
        # phase 2: delete
        add(2, "DELETE", f"queues/{v}/q-{u}/contents")
        add(2, "DELETE", f"queues/{v}/qd-{u}")
        add(2, "DELETE", f"exchanges/{v}/xd-{u}")
        add(2, "DELETE", f"bindings/{v}/e/x-{u}/q/q-{u}/del")
        add(2, "DELETE", f"policies/{v}/pd-{u}")
        add(2, "DELETE", f"topic-permissions/{v}/t-{u}")
        add(2, "DELETE", f"vhost-limits/{v}/max-queues")
    add(1, "PUT", f"users/n-{u}", {"password": PW, "tags": ""})
    add(1, "PUT", f"vhosts/nv-{u}", {})
    add(1, "PUT", f"user-limits/t-{u}/max-channels", {"value": 10})
    add(1, "POST", "definitions", {"queues": [{"name": f"def-q-{u}", "vhost": "/", "durable": True,
                                               "auto_delete": False, "arguments": {}}]})
    add(2, "DELETE", f"user-limits/t-{u}/max-connections")
    add(2, "DELETE", f"permissions/{q(VH2)}/t-{u}")
    add(2, "DELETE", f"vhosts/v-{u}")
    add(3, "DELETE", f"users/t-{u}")
    # closing connections goes last, and each is closed by one user only, after everyone else has tried
    # (RabbitMQ's statistics still list a closed connection for a moment)
    if u == "az-mgmt":
        add(4, "DELETE", f"connections/{oc}")
    elif u == "az-admin":
        add(4, "DELETE", f"connections/{gc}")
    elif u != "az-admin-noperm":
        add(3, "DELETE", f"connections/{oc}")
        add(3, "DELETE", f"connections/{gc}")
    return R


async def run(base: str, amqp_port: int, users: list[str] | None = None) -> dict[tuple[str, str, str], int]:
    """Set up and probe; returns {(user, method, path-template): status}."""
    ctx = await setup(base, amqp_port)
    users = users or list(USERS)
    out: dict[tuple[str, str, str], int] = {}
    templ = {ctx["conn"]["guest"]: "<guest-conn>", ctx["conn"]["az-mgmt"]: "<own-conn>",
             ctx["chan"]["guest"]: "<guest-chan>", ctx["chan"]["az-mgmt"]: "<own-chan>"}
    templ = {q(k): v for k, v in templ.items()}
    sem = asyncio.Semaphore(32)
    conn = aiohttp.TCPConnector(limit=32)
    try:
        async with aiohttp.ClientSession(connector=conn) as s:
            async def one(u: str, method: str, path: str, body: Any) -> None:
                async with sem, s.request(method, f"{base}/{path}", json=body, headers=auth(u)) as r:
                    await r.read()
                key = "/".join("<self>" if seg == u else seg.replace(f"-{u}", "-<u>") for seg in path.split("/"))
                for k, v in templ.items():
                    key = key.replace(k, v)
                out[(u, method, key)] = r.status

            reqs = {u: requests_for(u, ctx) for u in users}
            for phase in range(5):
                # the administrators act last in each phase: their deletes are global
                for group in ([u for u in users if "admin" not in u], [u for u in users if "admin" in u]):
                    await asyncio.gather(*(one(u, m, p, b) for u in group for ph, m, p, b in reqs[u] if ph == phase))
    finally:
        for c in ctx["conns"]:
            await c.close()
    return out
