"""The TLS listener's SSL context, from the ``tls_*`` settings (RabbitMQ's ``ssl_options``)."""

from __future__ import annotations

import ssl

from warren.server.core.config import Config, ConfigError

VERIFY_MODES = ("verify_none", "verify_peer")
LOGIN_FROM = ("distinguished_name", "common_name")

# short names RabbitMQ (and RFC 4514) use in a distinguished name
_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "domainComponent": "DC",
    "streetAddress": "STREET",
    "userId": "UID",
}


def cert_login(peercert: dict, login_from: str) -> str:
    """The user name a client certificate logs in as (mechanism EXTERNAL).

    ``common_name``: the subject's CN. ``distinguished_name`` (RabbitMQ's
    default): the whole subject in RFC 4514 order, e.g. ``CN=app,O=Example,C=US``.
    """
    subject = peercert.get("subject", ())
    if login_from == "common_name":
        for rdn in subject:
            for key, value in rdn:
                if key == "commonName":
                    return value
        return ""
    parts = []
    for rdn in reversed(subject):
        parts.append("+".join(f"{_SHORT.get(k, k)}={_escape(v)}" for k, v in rdn))
    return ",".join(parts)


def _escape(value: str) -> str:
    out = value
    for ch in ("\\", ",", "+", '"', "<", ">", ";"):
        out = out.replace(ch, "\\" + ch)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def server_context(config: Config) -> ssl.SSLContext:
    """An SSL context for the AMQPS listener; raises ConfigError for unusable settings.

    ``tls_verify`` ``verify_peer`` asks clients for a certificate and checks it
    against ``tls_ca``; without ``tls_fail_if_no_peer_cert`` a client may still
    connect without one, as with RabbitMQ.
    """
    if not config.tls_cert or not config.tls_key:
        raise ConfigError("tls_port needs tls_cert and tls_key (PEM files)")
    if config.tls_cert_login_from not in LOGIN_FROM:
        raise ConfigError(f"tls_cert_login_from must be one of {', '.join(LOGIN_FROM)}")
    if config.tls_verify not in VERIFY_MODES:
        raise ConfigError(f"tls_verify must be one of {', '.join(VERIFY_MODES)}, not {config.tls_verify!r}")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(config.tls_cert, config.tls_key)
        if config.tls_ca:
            ctx.load_verify_locations(config.tls_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate, key or CA: {exc}") from exc
    if config.tls_verify == "verify_peer":
        if not config.tls_ca:
            raise ConfigError("tls_verify verify_peer needs tls_ca (the CA bundle client certificates are checked against)")
        ctx.verify_mode = ssl.CERT_REQUIRED if config.tls_fail_if_no_peer_cert else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
