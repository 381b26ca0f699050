"""The etcd key layout of a warren cluster (one place, so DESIGN.md and the code agree).

    /warren/<cluster>/members/<node>          node info (JSON), bound to the node's lease
    /warren/<cluster>/nodes/<node>            a node that joined once (JSON), no lease: listed
                                              (not running) while down, until forgotten
    /warren/<cluster>/leader                  leader info (JSON), bound to the leader's lease;
                                              its create_revision is the fencing token
    /warren/<cluster>/isr                     in-sync replica set (JSON), written only by the leader
    /warren/<cluster>/definitions/<kind>/<id> one definition object (JSON), no lease

Name parts are percent-encoded so a '/' inside a vhost or queue name cannot change the layout.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

ROOT = "/warren"


def part(name: str) -> str:
    """One path segment: everything but unreserved characters percent-encoded ('/' included)."""
    return quote(name, safe="")


def unpart(segment: str) -> str:
    return unquote(segment)


def cluster_prefix(cluster: str) -> str:
    return f"{ROOT}/{part(cluster)}/"


def members_prefix(cluster: str) -> str:
    return f"{cluster_prefix(cluster)}members/"


def member_key(cluster: str, node: str) -> str:
    return f"{members_prefix(cluster)}{part(node)}"


def nodes_prefix(cluster: str) -> str:
    return f"{cluster_prefix(cluster)}nodes/"


def node_key(cluster: str, node: str) -> str:
    return f"{nodes_prefix(cluster)}{part(node)}"


def leader_key(cluster: str) -> str:
    return f"{cluster_prefix(cluster)}leader"


def isr_key(cluster: str) -> str:
    return f"{cluster_prefix(cluster)}isr"


def definitions_prefix(cluster: str) -> str:
    return f"{cluster_prefix(cluster)}definitions/"
