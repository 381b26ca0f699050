"""Permission patterns, refusal texts and close reasons as RabbitMQ 3.10 has them
(issue 12, items 8/9; each checked against RabbitMQ with the same steps):

- vhost permission patterns are searched in the name (re:run), not full-matched:
  ``^sec-a`` allows ``sec-abc``; the default exchange is checked as ``amq.default``,
  so write ``""`` (RabbitMQ: ``^$``) does not allow publishing to it;
- a loopback-only user connecting from elsewhere gets the same refusal text whether
  its password was right or wrong (the text must not confirm a guessed password);
- closing a connection through the API sends "CONNECTION_FORCED - <reason>" once.
"""

from __future__ import annotations

import asyncio
import socket

import aio_pika
import aiohttp
import aiormq
import pytest
from pamqp import commands as C

from tests.broker._raw import RawConn
from tests.broker.test_bad_input import Raw
from tests.management.conftest import AUTH, wait_for


async def _user(http, name: str, configure: str, write: str, read: str) -> None:
    assert (await http.req("PUT", f"/api/users/{name}", json={"password": "pw", "tags": ""}))[0] == 201
    body = {"configure": configure, "write": write, "read": read}
    assert (await http.req("PUT", f"/api/permissions/%2F/{name}", json=body))[0] == 201


async def test_permission_patterns_are_searched(broker, http):
    await _user(http, "alice", "^sec-a", "", ".*")
    conn = await aio_pika.connect(f"amqp://alice:pw@127.0.0.1:{broker.port}/")
    async with conn:
        ch = await conn.channel()
        await ch.declare_queue("sec-abc", auto_delete=True)  # full-matching refused this
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as e:
            await ch.declare_queue("xsec-a")
        assert "access to queue 'xsec-a' in vhost '/' refused for user 'alice'" in str(e.value)
        ch = await conn.channel(publisher_confirms=True)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as e:
            await ch.default_exchange.publish(aio_pika.Message(b"x"), routing_key="sec-abc")
        assert "access to exchange 'amq.default' in vhost '/' refused for user 'alice'" in str(e.value)


def _non_loopback_ip() -> str | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the interface
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


@pytest.mark.parametrize("password", ["guest", "wrong"])
async def test_loopback_user_refusal_does_not_tell_the_password(broker_factory, password):
    ip = _non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback interface to connect from")
    b = broker_factory("--host", "0.0.0.0")
    r = RawConn(*await asyncio.open_connection(ip, b.port))
    try:
        close = await r.handshake(user="guest", password=password)
    finally:
        r.close()
    assert isinstance(close, C.Connection.Close), close
    assert close.reply_code == 403
    assert close.reply_text == (
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
    )


async def test_loopback_user_cannot_use_the_management_api_remotely(broker_factory):
    """As RabbitMQ's management plugin: guest's right password from elsewhere gets 401
    "User can only log in via localhost" (a wrong one still "Login failed"); from
    loopback, and for other users from anywhere, the API answers."""
    ip = _non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback interface to connect from")
    b = broker_factory("--host", "0.0.0.0")
    guest = aiohttp.BasicAuth("guest", "guest")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        async with s.get(f"http://{ip}:{b.mgmt_port}/api/overview", auth=guest) as r:
            assert r.status == 401
            assert await r.json() == {"error": "not_authorised", "reason": "User can only log in via localhost"}
        async with s.get(f"http://{ip}:{b.mgmt_port}/api/overview",
                         auth=aiohttp.BasicAuth("guest", "wrong")) as r:
            assert r.status == 401
            assert (await r.json())["reason"] == "Login failed"
        async with s.post(f"http://{ip}:{b.mgmt_port}/session",
                          json={"username": "guest", "password": "guest"}) as r:
            assert r.status == 401
            assert (await r.json())["reason"] == "User can only log in via localhost"
        async with s.get(f"http://127.0.0.1:{b.mgmt_port}/api/overview", auth=guest) as r:
            assert r.status == 200
        async with s.put(f"http://127.0.0.1:{b.mgmt_port}/api/users/remote-admin", auth=guest,
                         json={"password": "pw", "tags": "administrator"}) as r:
            assert r.status == 201
        async with s.get(f"http://{ip}:{b.mgmt_port}/api/overview",
                         auth=aiohttp.BasicAuth("remote-admin", "pw")) as r:
            assert r.status == 200
    assert "management login refused user=guest peer=" + ip in b.log_text()


async def test_api_close_reason_has_one_prefix(broker, http):
    r = Raw(broker.port).handshake()
    try:
        async def listed() -> bool:
            return bool(await http.get("/api/connections"))

        await wait_for(listed)
        name = (await http.get("/api/connections"))[0]["name"]
        st, _ = await http.req("DELETE", "/api/connections/" + name.replace(" ", "%20").replace(">", "%3E"),
                               auth={**AUTH, "X-Reason": "maintenance"})
        assert st == 204
        _, close = r.read_method()
    finally:
        r.close()
    assert isinstance(close, C.Connection.Close), close
    assert (close.reply_code, close.reply_text) == (320, "CONNECTION_FORCED - maintenance")
