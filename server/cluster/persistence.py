"""Persistence of the leader of a cluster: replicated stores, definitions mirrored to etcd.

Durable queues (every lane) and durable delayed exchanges keep their records in
:class:`ReplicatedLogStore` instances named by stable ids, the same on every node,
so the follower that is promoted finds each store where the model looks for it:

    ``q:<queue id>:<lane>``   a durable queue's lane (queue id = digest of vhost + name)
    ``d:<queue id>``          a durable x-delayed-message exchange's held messages

Non-durable queues stay local (RAM, spilling to ``transient/``) and end with the
leader, as RabbitMQ's non-replicated transient queues end with their node.

Definitions are saved to the local file as on a single node and then, fenced by
the leadership, to etcd (one key per object); a confirm waits for that save, so a
confirmed message never sits in a queue the next leader would not know.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from warren.server.cluster.definitions import ClusterDefinitions
from warren.server.cluster.election import Leadership
from warren.server.cluster.replication.leader import Leader
from warren.server.cluster.replication.source import LogStoreSource
from warren.server.cluster.replication.store import ReplicatedLogStore
from warren.server.model.message_codec import decode_message, decode_requeued, encode_message
from warren.server.model.persistence import Persistence, queue_id
from warren.storage.base import MessageStore
from warren.storage.lanes import LanedStore

if TYPE_CHECKING:
    from warren.server.model.node import Node
    from warren.server.model.vhost import VHost


def queue_store_id(vhost: str, name: str, lane: int) -> str:
    return f"q:{queue_id(vhost, name)}:{lane}"


def delayed_store_id(vhost: str, name: str) -> str:
    return f"d:{queue_id(vhost, name)}"


class ClusterPersistence(Persistence):
    """The leader's persistence (module docstring)."""

    def __init__(
        self,
        broker: Node,
        data_dir: str,
        *,
        leader: Leader,
        source: LogStoreSource,
        definitions: ClusterDefinitions,
        leadership: Leadership,
        initial: dict[str, Any],
        known: dict[str, bytes],
        ahead: dict[str, ReplicatedLogStore] | None = None,
    ) -> None:
        super().__init__(broker, data_dir)
        self.leader = leader
        self.source = source
        self.cluster_definitions = definitions
        self.leadership = leadership
        self._initial = initial
        self._known = known
        self.mirror = self._mirror
        #: stores recovered ahead of the model (``open_ahead``), until it declares them
        self._ahead = ahead or {}

    def prepare(self) -> dict[str, Any]:
        """The definitions come from etcd (the cluster's), not the local file."""
        self.prepare_dirs()
        return self._initial

    def _replicated(self, store_id: str, encode: Callable[[Any], bytes],
                    decode: Callable[[bytes], Any], **options: Any) -> ReplicatedLogStore:
        store = self._ahead.pop(store_id, None)
        if store is not None:
            store.bind(encode, decode, **options)
            return store
        return ReplicatedLogStore(self.root, store_id, self.leader, self.source, encode, decode,
                                  **options)

    def store_for(self, vhost: VHost, name: str, durable: bool, max_priority: int) -> MessageStore:
        if not durable:
            return super().store_for(vhost, name, durable, max_priority)
        lanes = max_priority + 1 if max_priority else 1
        stores = [
            self._replicated(queue_store_id(vhost.name, name, lane), encode_message, decode_message,
                             decode_requeued=decode_requeued)
            for lane in range(lanes)
        ]
        return stores[0] if lanes == 1 else LanedStore(stores)

    def delayed_store(self, vhost: str, name: str, durable: bool, encode: Callable[[Any], bytes],
                      decode: Callable[[bytes], Any], **options: Any) -> MessageStore:
        if not durable:
            return super().delayed_store(vhost, name, durable, encode, decode, **options)
        return self._replicated(delayed_store_id(vhost, name), encode, decode, **options)

    def close_unclaimed(self) -> None:
        """Close the stores opened ahead that no queue or exchange declared (their files
        stay; a follower's full resync from this leader will not list them)."""
        ahead, self._ahead = self._ahead, {}
        for store in ahead.values():
            store.close()

    async def _mirror(self, payload: bytes) -> None:
        self._known = await self.cluster_definitions.replace(
            json.loads(payload), self._known, fenced_by=self.leadership
        )
