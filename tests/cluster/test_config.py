"""--cluster etcd://... and --node-name parsing (no etcd needed)."""

from __future__ import annotations

import pytest
from warren.server.cluster.config import ClusterConfig, ClusterConfigError, parse_cluster


def test_endpoints_default_port_and_cluster_name():
    cfg = parse_cluster("etcd://h1:2379,h2,10.0.0.3:32379", "n1")
    assert cfg == ClusterConfig(
        endpoints=(("h1", 2379), ("h2", 2379), ("10.0.0.3", 32379)), node_name="n1"
    )
    assert cfg.cluster == "warren"
    assert cfg.lease_ttl == 5 and cfg.min_insync == 2 and cfg.follower_timeout == 2.0


def test_ipv6_path_and_options():
    cfg = parse_cluster(
        "etcd://[::1]:2379,[fd00::2]/prod?lease_ttl=3&min_insync=3&follower_timeout=0.5", "n-2"
    )
    assert cfg.endpoints == (("::1", 2379), ("fd00::2", 2379))
    assert cfg.cluster == "prod"
    assert (cfg.lease_ttl, cfg.min_insync, cfg.follower_timeout) == (3, 3, 0.5)


def test_etcds_means_tls_to_etcd():
    assert parse_cluster("etcds://h1:2379/p", "n1").tls
    assert not parse_cluster("etcd://h1:2379/p", "n1").tls


def test_node_name_defaults_to_host_name():
    assert parse_cluster("etcd://h1").node_name


@pytest.mark.parametrize(
    ("url", "node", "message"),
    [
        ("http://h1:2379", "n1", "must be an etcd:// or etcds:// URL"),
        ("etcd://", "n1", "names no etcd endpoint"),
        ("etcd://h1:99999", "n1", "port out of range"),
        ("etcd://h1:abc", "n1", "bad etcd endpoint"),
        ("etcd://user:pw@h1", "n1", "credentials"),
        ("etcd://h1", "bad/name", "bad node name"),
        ("etcd://h1", "", "bad node name"),
        ("etcd://h1?lease_ttl=1", "n1", "lease_ttl must be 2..60"),
        ("etcd://h1?lease_ttl=x", "n1", "is not a number"),
        ("etcd://h1?min_insync=0", "n1", "min_insync must be at least 1"),
        ("etcd://h1?follower_timeout=0", "n1", "follower_timeout"),
        ("etcd://h1?colour=blue", "n1", "unknown --cluster option 'colour'"),
        ("etcd://h1/a/b", "n1", "bad cluster name"),
    ],
)
def test_bad_input_has_a_clear_message(url, node, message):
    with pytest.raises(ClusterConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_cluster(url, node)
