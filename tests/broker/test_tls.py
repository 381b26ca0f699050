"""The AMQPS listener (``tls_port``): clients connect over TLS unchanged, peers are
verified when asked, and bad TLS settings stop the broker with a clear message.

Certificates come from a throwaway CA (trustme), written to the test's directory.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import aio_pika
import pytest
import trustme

from tests.brokerproc import free_port, wait_port


@pytest.fixture
def pki(tmp_path: Path) -> dict:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client.example", common_name="client.example")
    paths = {
        "cert": tmp_path / "server.pem",
        "key": tmp_path / "server.key",
        "ca": tmp_path / "ca.pem",
    }
    server.cert_chain_pems[0].write_to_path(paths["cert"])
    server.private_key_pem.write_to_path(paths["key"])
    ca.cert_pem.write_to_path(paths["ca"])
    return {"authority": ca, "client": client, **paths}


def _tls_args(pki: dict, port: int, *extra: str) -> list[str]:
    return [
        "--tls-port",
        str(port),
        "--tls-cert",
        str(pki["cert"]),
        "--tls-key",
        str(pki["key"]),
        *extra,
    ]


def _client_context(pki: dict, with_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    pki["authority"].configure_trust(ctx)
    if with_cert:
        pki["client"].configure_cert(ctx)
    return ctx


async def _roundtrip(url: str, ctx: ssl.SSLContext | None = None) -> bytes:
    conn = await aio_pika.connect(url, ssl_context=ctx) if ctx else await aio_pika.connect(url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("", exclusive=True)
        await ch.default_exchange.publish(aio_pika.Message(b"x" * 200_000), routing_key=q.name)
        m = await q.get(timeout=5)
        await m.ack()
        return m.body


async def test_amqps_roundtrip_beside_plain_amqp(broker_factory, pki):
    port = free_port()
    b = broker_factory(*_tls_args(pki, port))
    wait_port(port)
    ctx = _client_context(pki)
    body = await _roundtrip(f"amqps://guest:guest@127.0.0.1:{port}/", ctx)
    assert body == b"x" * 200_000  # several TLS records and AMQP frames
    assert await _roundtrip(b.url) == b"x" * 200_000
    # the listener shows in the management overview, as RabbitMQ's amqp/ssl
    wait_port(b.mgmt_port)
    req = urllib.request.Request(f"http://127.0.0.1:{b.mgmt_port}/api/overview")
    req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
    overview = json.loads(
        await asyncio.to_thread(lambda: urllib.request.urlopen(req, timeout=10).read())
    )
    assert {"protocol": "amqp/ssl", "port": port} in [
        {"protocol": li["protocol"], "port": li["port"]} for li in overview["listeners"]
    ]


async def test_untrusted_client_fails_and_others_are_served(broker_factory, pki):
    port = free_port()
    b = broker_factory(*_tls_args(pki, port))
    wait_port(port)
    untrusting = ssl.create_default_context()  # does not know the test CA
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection("127.0.0.1", port, ssl=untrusting)
    assert await _roundtrip(f"amqps://guest:guest@127.0.0.1:{port}/", _client_context(pki))
    assert await _roundtrip(b.url)


async def test_verify_peer_requires_a_client_certificate(broker_factory, pki):
    port = free_port()
    broker_factory(
        *_tls_args(
            pki,
            port,
            "--tls-ca",
            str(pki["ca"]),
            "--tls-verify",
            "verify_peer",
            "--tls-fail-if-no-peer-cert",
            "true",
        )
    )
    wait_port(port)
    url = f"amqps://guest:guest@127.0.0.1:{port}/"
    with pytest.raises((ConnectionError, ssl.SSLError, OSError, aio_pika.exceptions.AMQPError)):
        await asyncio.wait_for(_roundtrip(url, _client_context(pki, with_cert=False)), 10)
    assert await _roundtrip(url, _client_context(pki, with_cert=True))


@pytest.mark.parametrize(
    "args, text",
    [
        (["--tls-port", "{port}"], "tls_port needs tls_cert and tls_key (PEM files)"),
        (
            [
                "--tls-port",
                "{port}",
                "--tls-cert",
                "/nonexistent.pem",
                "--tls-key",
                "/nonexistent.key",
            ],
            "cannot load the TLS certificate, key or CA",
        ),
        (
            [
                "--tls-port",
                "{port}",
                "--tls-cert",
                "{cert}",
                "--tls-key",
                "{key}",
                "--tls-verify",
                "verify_peer",
            ],
            "tls_verify verify_peer needs tls_ca",
        ),
    ],
)
def test_bad_tls_settings_stop_the_broker(tmp_path, pki, args, text):
    fill = {"port": str(free_port()), "cert": str(pki["cert"]), "key": str(pki["key"])}
    cmd = [
        sys.executable,
        "-m",
        "warren.server.main",
        "--port",
        str(free_port()),
        "--data-dir",
        str(tmp_path / "d"),
        "--management-port",
        "0",
        "--prometheus-port",
        "0",
        *[a.format(**fill) for a in args],
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert f"cannot start: {text}" in p.stderr


def _pika_roundtrip(port: int, pki: dict) -> bytes:
    import pika

    params = pika.ConnectionParameters(
        host="127.0.0.1",
        port=port,
        ssl_options=pika.SSLOptions(_client_context(pki), server_hostname="127.0.0.1"),
    )
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"via pika")
        _m, _p, body = ch.basic_get(q, auto_ack=True)
        return body
    finally:
        conn.close()


def _kombu_roundtrip(port: int, pki: dict) -> bytes:
    import kombu

    ssl_opts = {
        "ca_certs": str(pki["ca"]),
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": "127.0.0.1",
    }
    with kombu.Connection(
        f"amqp://guest:guest@127.0.0.1:{port}//", ssl=ssl_opts, connect_timeout=10
    ) as conn:
        q = kombu.Queue(
            "kombu-tls", exchange=kombu.Exchange("kombu-tls", "direct"), routing_key="k"
        )
        with conn.Producer() as prod:
            prod.publish(
                b"via kombu", exchange=q.exchange, routing_key="k", declare=[q], serializer=None
            )
        m = q(conn.default_channel).get(no_ack=True)
        return m.body


async def test_pika_and_kombu_over_tls(broker_factory, pki):
    port = free_port()
    broker_factory(*_tls_args(pki, port))
    wait_port(port)
    assert await asyncio.to_thread(_pika_roundtrip, port, pki) == b"via pika"
    assert await asyncio.to_thread(_kombu_roundtrip, port, pki) == b"via kombu"


def _external_login(port: int, pki: dict, with_cert: bool = True) -> str:
    """Log in with SASL EXTERNAL over TLS (pika); the user name the broker reports back."""
    import pika

    params = pika.ConnectionParameters(
        host="127.0.0.1",
        port=port,
        credentials=pika.credentials.ExternalCredentials(),
        ssl_options=pika.SSLOptions(
            _client_context(pki, with_cert=with_cert), server_hostname="127.0.0.1"
        ),
    )
    try:
        conn = pika.BlockingConnection(params)
    except pika.exceptions.AMQPConnectionError as exc:
        return f"refused: {exc!r}"
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"x")
        return "ok"
    finally:
        conn.close()


async def _add_user(b, name: str) -> None:
    import urllib.parse
    import urllib.request

    wait_port(b.mgmt_port)
    auth = "Basic Z3Vlc3Q6Z3Vlc3Q="
    u = urllib.parse.quote(name, safe="")
    for path, body in (
        (f"users/{u}", {"password": "unused", "tags": ""}),
        (f"permissions/%2F/{u}", {"configure": ".*", "write": ".*", "read": ".*"}),
    ):
        req = urllib.request.Request(
            f"http://127.0.0.1:{b.mgmt_port}/api/{path}",
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Authorization": auth, "Content-Type": "application/json"},
        )
        await asyncio.to_thread(lambda r=req: urllib.request.urlopen(r, timeout=10).read())


async def test_external_login_by_distinguished_name(broker_factory, pki):
    from cryptography import x509

    port = free_port()
    b = broker_factory(
        *_tls_args(pki, port, "--tls-ca", str(pki["ca"]), "--tls-verify", "verify_peer")
    )
    wait_port(port)
    dn = x509.load_pem_x509_certificate(
        pki["client"].cert_chain_pems[0].bytes()
    ).subject.rfc4514_string()
    # no such user yet: refused
    assert (await asyncio.to_thread(_external_login, port, pki)).startswith("refused")
    await _add_user(b, dn)
    assert await asyncio.to_thread(_external_login, port, pki) == "ok"
    # without a client certificate EXTERNAL is not offered
    assert (await asyncio.to_thread(_external_login, port, pki, False)).startswith("refused")


async def test_external_login_by_common_name(broker_factory, pki):
    port = free_port()
    b = broker_factory(
        *_tls_args(
            pki,
            port,
            "--tls-ca",
            str(pki["ca"]),
            "--tls-verify",
            "verify_peer",
            "--tls-cert-login-from",
            "common_name",
        )
    )
    wait_port(port)
    await _add_user(b, "client.example")
    assert await asyncio.to_thread(_external_login, port, pki) == "ok"
