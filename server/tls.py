"""The TLS listener's SSL context, from the ``tls_*`` settings (RabbitMQ's ``ssl_options``)."""

from __future__ import annotations

import ssl

from .config import Config, ConfigError

VERIFY_MODES = ("verify_none", "verify_peer")


def server_context(config: Config) -> ssl.SSLContext:
    """An SSL context for the AMQPS listener; raises ConfigError for unusable settings.

    ``tls_verify`` ``verify_peer`` asks clients for a certificate and checks it
    against ``tls_ca``; without ``tls_fail_if_no_peer_cert`` a client may still
    connect without one, as with RabbitMQ.
    """
    if not config.tls_cert or not config.tls_key:
        raise ConfigError("tls_port needs tls_cert and tls_key (PEM files)")
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
