"""Cluster settings from ``--cluster etcd://h1:2379,h2:2379[/name][?options]`` and ``--node-name``.

Not wired into server/config.py yet. The URL carries everything so the same string works as
a flag, a TOML value or an environment variable:

    etcd://10.0.0.1:2379,10.0.0.2:2379,[::1]:2379/prod?lease_ttl=5&min_insync=2&follower_timeout=2

``etcds://`` is the same over TLS (``etcd_ca``, and ``etcd_cert``/``etcd_key`` for etcd's
``--client-cert-auth``, are node settings: files, not URL parts).

- path: the cluster name (default ``warren``): several clusters can share one etcd;
- ``lease_ttl`` (s, integer, default 5): how long a dead node keeps its membership and
  leadership; failover takes about this long;
- ``min_insync`` (default 2): publishes are held while fewer nodes are in sync;
- ``follower_timeout`` (s, default 2): how long the leader waits for a follower's fsync
  acknowledgement before dropping it from the in-sync set.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from warren.server.cluster.isr import DEFAULT_MIN_INSYNC
from warren.server.cluster.lease import DEFAULT_TTL

DEFAULT_CLUSTER = "warren"
DEFAULT_PORT = 2379
DEFAULT_FOLLOWER_TIMEOUT = 2.0

_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))(?::(?P<port>\d+))?$")


class ClusterConfigError(ValueError):
    """The --cluster URL or the node name is not valid; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Where etcd is and how this node takes part in the cluster."""

    endpoints: tuple[tuple[str, int], ...]
    node_name: str
    cluster: str = DEFAULT_CLUSTER
    lease_ttl: int = DEFAULT_TTL
    min_insync: int = DEFAULT_MIN_INSYNC
    follower_timeout: float = DEFAULT_FOLLOWER_TIMEOUT
    #: etcds://: TLS to etcd (server verified against etcd_ca, or the system's CAs)
    tls: bool = False


def _endpoint(text: str) -> tuple[str, int]:
    m = _ENDPOINT.match(text)
    if not m:
        raise ClusterConfigError(f"bad etcd endpoint {text!r}: expected host[:port]")
    port = int(m["port"]) if m["port"] else DEFAULT_PORT
    if not 0 < port < 65536:
        raise ClusterConfigError(f"bad etcd endpoint {text!r}: port out of range")
    return (m["v6"] or m["host"]), port


def parse_cluster(url: str, node_name: str | None = None) -> ClusterConfig:
    """Parse ``--cluster`` and ``--node-name`` (default: this machine's short host name)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("etcd", "etcds"):
        raise ClusterConfigError(f"--cluster must be an etcd:// or etcds:// URL, got {url!r}")
    if "@" in parts.netloc:
        raise ClusterConfigError("etcd user credentials are not supported yet")
    hosts = [h for h in parts.netloc.split(",") if h]
    if not hosts:
        raise ClusterConfigError("--cluster names no etcd endpoint (etcd://host:2379,...)")
    endpoints = tuple(_endpoint(h) for h in hosts)

    cluster = unquote(parts.path.strip("/")) or DEFAULT_CLUSTER
    if "/" in cluster or not cluster.isprintable():
        raise ClusterConfigError(f"bad cluster name {cluster!r}")

    name = node_name if node_name is not None else socket.gethostname().split(".")[0]
    if not _NODE_NAME.match(name):
        raise ClusterConfigError(
            f"bad node name {name!r}: 1-64 of letters, digits, '.', '_', '-', starting with"
            " a letter or digit"
        )

    options: dict[str, float | int] = {}
    for key, raw in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        try:
            if key == "lease_ttl":
                options[key] = int(raw)
                if not 2 <= options[key] <= 60:
                    raise ClusterConfigError("lease_ttl must be 2..60 seconds")
            elif key == "min_insync":
                options[key] = int(raw)
                if options[key] < 1:
                    raise ClusterConfigError("min_insync must be at least 1")
            elif key == "follower_timeout":
                options[key] = float(raw)
                if not 0 < options[key] <= 60:
                    raise ClusterConfigError("follower_timeout must be in (0, 60] seconds")
            else:
                raise ClusterConfigError(f"unknown --cluster option {key!r}")
        except ValueError as e:
            if isinstance(e, ClusterConfigError):
                raise
            raise ClusterConfigError(f"--cluster option {key}={raw!r} is not a number") from None
    return ClusterConfig(endpoints=endpoints, node_name=name, cluster=cluster,  # type: ignore[arg-type]
                         tls=parts.scheme == "etcds", **options)
