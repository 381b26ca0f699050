"""Broker configuration: defaults < TOML file < WARREN_* environment < command-line flags."""

from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "warren")


class ConfigError(ValueError):
    """A setting the broker cannot start with (the message says which and why)."""


@dataclass
class Config:
    """Every setting the broker reads; names match the TOML keys and WARREN_<NAME> variables."""

    host: str = "0.0.0.0"
    port: int = 5672
    data_dir: str = field(default_factory=default_data_dir)
    frame_max: int = 131072
    channel_max: int = 2047
    heartbeat: int = 60
    handshake_timeout: float = 10.0
    close_timeout: float = 3.0
    max_message_size: int = 134217728
    default_user: str = "guest"
    default_pass: str = "guest"
    loopback_users: list[str] = field(default_factory=lambda: ["guest"])
    consumer_timeout: int = 1800000
    disk_free_limit: int = 50_000_000
    #: memory alarm above this fraction of RAM (RabbitMQ's vm_memory_high_watermark.relative)
    vm_memory_high_watermark: float = 0.4
    #: ... or above this many bytes, when set ("200MB", "1GiB"; vm_memory_high_watermark.absolute)
    vm_memory_high_watermark_absolute: str = ""
    definitions: str = ""
    log_level: str = "INFO"
    cluster_name: str = "warren"
    management_host: str = ""
    management_port: int = 15672
    prometheus_port: int = 15692
    #: when set, the Prometheus endpoints need HTTP basic auth with this user name and prometheus_pass
    prometheus_user: str = ""
    prometheus_pass: str = ""
    #: seconds a rendered /metrics/per-object is served again to later scrapers
    prometheus_per_object_interval: float = 5.0
    #: seconds an HTTP connection may take to send complete request headers (also keep-alive idle)
    http_idle_timeout: float = 5.0
    #: open connections per HTTP listener (capped at a quarter of the file-descriptor limit)
    http_max_connections: int = 1024
    trace_ring_size: int = 10000
    #: bytes per segment file of a message store (queues, delayed exchanges, replicas)
    segment_size: int = 33554432
    tls_port: int = 0
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    tls_verify: str = "verify_none"
    tls_fail_if_no_peer_cert: bool = False
    tls_cert_login_from: str = "distinguished_name"
    #: etcd://h1:2379,h2:2379[/name][?lease_ttl=..&min_insync=..&follower_timeout=..]:
    #: run as one node of a replicated cluster (empty: the single-node default)
    cluster: str = ""
    #: this node's name in the cluster (default: the short host name)
    node_name: str = ""
    #: file holding the secret every node of the cluster shares (authenticates replication)
    cluster_secret_file: str = ""
    #: the leader streams its stores to followers on this port (followers connect to it)
    replication_port: int = 5679
    #: the address other nodes reach this one at (default: host, or 127.0.0.1 when host is 0.0.0.0)
    advertise_host: str = ""
    #: PEM files for TLS between the nodes: with all three set, the replication link is
    #: TLS, each end verified against cluster_tls_ca (the leader's certificate must name
    #: its advertise_host); off by default (the link is HMAC-authenticated either way)
    cluster_tls_cert: str = ""
    cluster_tls_key: str = ""
    cluster_tls_ca: str = ""
    #: with --cluster etcds://: PEM of the CA that signed etcd's certificate (default: the
    #: system's CAs), and this node's client certificate and key for etcd's --client-cert-auth
    etcd_ca: str = ""
    etcd_cert: str = ""
    etcd_key: str = ""
    #: for an etcd with authentication enabled: the user, and a file holding its password
    #: (a file, so that the password is not in the process list or the environment)
    etcd_username: str = ""
    etcd_password_file: str = ""

    @classmethod
    def load(cls, argv: list[str] | None = None) -> Config:
        parser = argparse.ArgumentParser(prog="warren", description="warren AMQP 0-9-1 broker")
        parser.add_argument("--config", help="TOML config file (env WARREN_CONFIG)")
        for f in fields(cls):
            flag = "--" + f.name.replace("_", "-")
            if f.name == "loopback_users":
                parser.add_argument(flag, help="comma-separated users allowed only from loopback ('' for none)")
            else:
                parser.add_argument(flag, type=str, default=None, help=f"(default {_default_of(f)!r})")
        ns = parser.parse_args(argv)
        values: dict = {}
        path = ns.config or os.environ.get("WARREN_CONFIG")
        if path:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
            values.update(data.get("warren", data))
        for f in fields(cls):
            env = os.environ.get("WARREN_" + f.name.upper())
            if env is not None:
                values[f.name] = env
            flag_v = getattr(ns, f.name)
            if flag_v is not None:
                values[f.name] = flag_v
        cfg = cls()
        for f in fields(cls):
            if f.name in values:
                setattr(cfg, f.name, _coerce(f, values[f.name]))
        return cfg


def _default_of(f: object) -> object:
    d = getattr(f, "default", None)
    if d is None or str(d).startswith("<dataclasses"):
        factory = getattr(f, "default_factory", None)
        return factory() if callable(factory) else None
    return d


def _coerce(f: object, v: object) -> object:
    t = f.type
    if t == "int":
        return int(v)  # type: ignore[arg-type]
    if t == "float":
        return float(v)  # type: ignore[arg-type]
    if t == "list[str]":
        if isinstance(v, list):
            return [str(x) for x in v]
        return [s for s in str(v).split(",") if s]
    if t == "str":
        return str(v)
    if t == "bool":
        if isinstance(v, bool):
            return v
        text = str(v).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{getattr(f, 'name', '?')}: expected true or false, got {v!r}")
    return v


def ensure_dir(path: str) -> Path:
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    return p
