"""One node of a warren cluster on etcd (``warren --cluster etcd://... --node-name n1``).

A node is a follower until it wins the election, then the leader until its term ends:

* **follower**: replicates the leader's stores into ``data_dir/stores`` (fsync, then
  acknowledge: :class:`Follower`), forwards AMQP clients to the leader
  (:class:`LeaderProxy`), and campaigns. Only a member of the in-sync set may win
  (``election.py``), so the winner holds every confirmed message.
* **leader**: writes the in-sync set as just itself (its followers resync from the new
  term's log, and are named again once they hold all of it), starts the replication
  :class:`Leader`, then a :class:`Broker` whose durable stores are replicated and whose
  definitions come from (and are saved to) etcd. Confirms wait for the local fsync and
  every in-sync follower. When the term ends (lease lost, key gone, or a fenced in-sync
  write refused) the broker stops at once, closing its clients, and the node goes back
  to following.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from warren.server.cluster.config import ClusterConfig, ClusterConfigError, parse_cluster
from warren.server.cluster.definitions import ClusterDefinitions
from warren.server.cluster.election import Election, Leadership
from warren.server.cluster.etcd import Etcd, EtcdError, EtcdTLS
from warren.server.cluster.isr import InSyncReplicas
from warren.server.cluster.lease import LeaseLost, Session
from warren.server.cluster.membership import Membership
from warren.server.cluster.persistence import ClusterPersistence
from warren.server.cluster.proxy import LeaderProxy
from warren.server.cluster.replication.follower import Follower
from warren.server.cluster.replication.leader import Leader
from warren.server.cluster.replication.state import NO_LOG, ReplicaState
from warren.server.cluster.replication.store import ReplicatedSource, open_ahead
from warren.server.core.config import Config, ConfigError
from warren.server.core.process import disk_free, process_stats
from warren.server.model.node import Node
from warren.server.node.broker import Broker, Service

#: seconds between a node's updates of its own figures (memory, fds, disk) in its member key
STATS_INTERVAL = 5.0

log = logging.getLogger("warren.cluster")

RETRY = 0.5


def advertised_host(config: Config) -> str:
    if config.advertise_host:
        return config.advertise_host
    return "127.0.0.1" if config.host in ("", "0.0.0.0", "::") else config.host


def link_contexts(config: Config) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """(leader's, follower's) TLS contexts for the replication link, or (None, None)
    without cluster_tls_*: mutual TLS, each end verified against cluster_tls_ca."""
    files = (config.cluster_tls_cert, config.cluster_tls_key, config.cluster_tls_ca)
    if not any(files):
        return None, None
    if not all(files):
        raise ConfigError("cluster TLS needs cluster_tls_cert, cluster_tls_key and cluster_tls_ca (PEM files)")
    try:
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=config.cluster_tls_ca)
        server.verify_mode = ssl.CERT_REQUIRED
        server.load_cert_chain(config.cluster_tls_cert, config.cluster_tls_key)
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config.cluster_tls_ca)
        client.load_cert_chain(config.cluster_tls_cert, config.cluster_tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cluster TLS: {exc}") from None
    return server, client


def etcd_tls(config: Config, tls: bool) -> EtcdTLS | None:
    """TLS to etcd for an etcds:// URL (None for etcd://)."""
    files = {"etcd_ca": config.etcd_ca, "etcd_cert": config.etcd_cert, "etcd_key": config.etcd_key}
    if not tls:
        if any(files.values()):
            raise ConfigError("etcd_ca/etcd_cert/etcd_key are for TLS to etcd: use --cluster etcds://...")
        return None
    if bool(config.etcd_cert) != bool(config.etcd_key):
        raise ConfigError("etcd_cert and etcd_key go together (a client certificate and its key)")
    pem: dict[str, bytes | None] = {}
    for name, path in files.items():
        try:
            pem[name] = Path(path).read_bytes() if path else None
        except OSError as exc:
            raise ConfigError(f"cannot read {name}: {exc}") from None
    return EtcdTLS(ca=pem["etcd_ca"], cert=pem["etcd_cert"], key=pem["etcd_key"])


def etcd_credentials(config: Config) -> tuple[str, str] | None:
    """(user, password) for an etcd with authentication enabled; None without."""
    if not config.etcd_username and not config.etcd_password_file:
        return None
    if not (config.etcd_username and config.etcd_password_file):
        raise ConfigError("etcd_username and etcd_password_file go together")
    try:
        password = Path(config.etcd_password_file).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read etcd_password_file: {exc}") from None
    if not password:
        raise ConfigError("etcd_password_file is empty")
    return config.etcd_username, password


def read_secret(config: Config) -> bytes:
    if not config.cluster_secret_file:
        raise ConfigError("cluster mode needs cluster_secret_file (the secret every node shares)")
    try:
        secret = Path(config.cluster_secret_file).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read cluster_secret_file: {exc}") from None
    if len(secret) < 16:
        raise ConfigError("the cluster secret must be at least 16 bytes")
    return secret


class ForgetRefused(Exception):
    """A node that cannot be forgotten now (``ClusterNode.forget``); the text says why."""


class ClusterNode:
    """Runs this process as one node of the cluster (module docstring)."""

    def __init__(self, config: Config, services: Sequence[Service] = ()) -> None:
        try:
            self.cc: ClusterConfig = parse_cluster(config.cluster, config.node_name or None)
        except ClusterConfigError as exc:
            raise ConfigError(str(exc)) from None
        self.config = config
        self.services = list(services)
        self.secret = read_secret(config)
        self.link_tls = link_contexts(config)
        self.name = self.cc.node_name
        host = advertised_host(config)
        self.info: dict[str, Any] = {
            "amqp": [host, config.port],
            "amqps": [host, config.tls_port],
            "repl": [host, config.replication_port],
            "http": [host, config.management_port],
            "prometheus": [host, config.prometheus_port],
        }
        self.etcd = Etcd(list(self.cc.endpoints), tls=etcd_tls(config, self.cc.tls),
                         credentials=etcd_credentials(config))
        self.election = Election(self.etcd, self.cc.cluster, self.name)
        self.membership = Membership(self.etcd, self.cc.cluster, self.name)
        self.isr = InSyncReplicas(self.etcd, self.cc.cluster, self.cc.min_insync)
        self.definitions = ClusterDefinitions(self.etcd, self.cc.cluster)
        self.role = "starting"
        self.broker: Broker | None = None
        self.leader: Leader | None = None
        self.follower: Follower | None = None
        #: a follower's listeners, each forwarding to the same listener of the leader
        self.proxies: dict[str, LeaderProxy] = {}
        self.session: Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._members: set[str] = set()
        #: the cluster's node list in etcd: every node that joined, until forgotten (a node
        #: that is down is still listed, not running, as RabbitMQ lists a stopped node)
        self._known: set[str] = set()
        self._leader_name: str | None = None
        self._insync: list[str] = []
        #: each member's own figures, as it last published them in its member key
        self._member_stats: dict[str, dict[str, Any]] = {}
        self._started = time.time()

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        self._watch = asyncio.ensure_future(self._watch_cluster())

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(BaseException):
                await self._watch
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self.etcd.close()

    def status(self) -> dict[str, Any]:
        """What this node knows of the cluster (management API, /metrics, warrenctl)."""
        leader = self.leader
        return {
            "mode": "cluster",
            "cluster": self.cc.cluster,
            "node": self.name,
            "role": self.role,
            "leader": self._leader_name,
            "members": sorted(self._members),
            "known": sorted(self._known | self._members | set(self._insync) | {self.name}),
            "in_sync": list(self._insync),
            "member_stats": self._stats_view(),
            "min_in_sync": self.cc.min_insync,
            "lease_ttl": self.cc.lease_ttl,
            "follower_timeout": self.cc.follower_timeout,
            "replication_tls": self.link_tls[0] is not None,
            "replication_seq": leader.seq if leader is not None else None,
            "followers": leader.follower_status() if leader is not None else {},
            "follower": None if self.follower is None else {
                "applied_seq": self.follower.applied,
                "durable_seq": self.follower.durable,
                "resyncs": self.follower.resyncs,
            },
        }

    async def forget(self, node: str) -> None:
        """Take a node that is down off the cluster's node list (``/api/nodes`` stops
        listing it), as ``rabbitmqctl forget_cluster_node``. ForgetRefused for this node,
        a running one or one in the in-sync set; KeyError if it is not on the list. A
        forgotten node that starts again joins, and is listed, again."""
        if node == self.name:
            raise ForgetRefused(f"node {node} is this node")
        if node in self._members:
            raise ForgetRefused(f"node {node} is running; stop it first")
        if node in self._insync:
            raise ForgetRefused(f"node {node} is in the in-sync set")
        if not await self.membership.forget(node):
            raise KeyError(node)
        self._known.discard(node)
        log.info("cluster: node %s forgotten", node)

    def _stats_view(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        return {name: {**{k: v for k, v in st.items() if k != "at"}, "age_s": round(max(0.0, now - st["at"]), 1)}
                for name, st in self._member_stats.items() if isinstance(st.get("at"), (int, float))}

    def _own_stats(self) -> dict[str, Any]:
        """This process's figures, published in its member key for the others' /api/nodes."""
        p = process_stats()
        return {"mem_used": p["resident_memory_bytes"], "fd_used": p["open_fds"], "fd_total": p["max_fds"],
                "disk_free": disk_free(self.config.data_dir), "uptime": int((time.time() - self._started) * 1000),
                "at": time.time()}

    async def _publish_stats(self, session: Session) -> None:
        """Refresh this node's figures in its member key every STATS_INTERVAL (the key is
        bound to the session's lease: a node that is down has no figures, not stale ones)."""
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            try:
                await self.membership.join(session, {**self.info, "stats": self._own_stats()})
            except EtcdError as exc:
                log.debug("cluster: publishing this node's figures: %s", exc)

    async def _watch_cluster(self) -> None:
        """Keep the members, the leader's name and the in-sync set current (for status)."""

        async def members() -> None:
            async for found in self.membership.watch():
                self._members = set(found)
                self._member_stats = {name: m.info["stats"] for name, m in found.items()
                                      if isinstance(m.info.get("stats"), dict)}

        async def known() -> None:
            async for names in self.membership.watch_nodes():
                self._known = names

        async def leader() -> None:
            async for lead in self.election.observe():
                self._leader_name = None if lead is None else lead.node

        async def insync() -> None:
            async for isr in self.isr.watch():
                self._insync = [] if isr is None else list(isr.members)

        async def forever(fn: Any) -> None:
            while True:
                try:
                    await fn()
                except EtcdError as exc:
                    log.debug("cluster: status watch: %s", exc)
                await asyncio.sleep(RETRY)

        await asyncio.gather(forever(members), forever(known), forever(leader), forever(insync))

    # -- the node's life ------------------------------------------------------
    async def _run(self) -> None:
        try:
            while not self._stopping:
                session = Session(self.etcd, self.cc.lease_ttl)
                try:
                    await session.start()
                except EtcdError as exc:
                    log.warning("cluster: etcd unreachable (%s); retrying", exc)
                    await asyncio.sleep(RETRY)
                    continue
                self.session = session
                failed = False
                stats: asyncio.Task[None] | None = None
                try:
                    await self.membership.join(session, {**self.info, "stats": self._own_stats()})
                    await self.membership.register(self.info)
                    stats = asyncio.ensure_future(self._publish_stats(session))
                    leadership = await self._follow(session)
                    await self._lead(session, leadership)
                except (LeaseLost, EtcdError) as exc:
                    log.warning("cluster: node %s: %s; starting over", self.name, exc)
                except Exception:
                    # e.g. a listener that cannot be bound as the broker starts: a node that
                    # let this end its loop would sit silent, neither leading nor following
                    log.exception("cluster: node %s: a role failed; starting over", self.name)
                    failed = True
                finally:
                    if stats is not None:
                        stats.cancel()
                    await self._stop_roles()
                    with contextlib.suppress(Exception):
                        await session.stop(revoke=not session.lost.is_set())
                    self.session = None
                if failed and not self._stopping:
                    await asyncio.sleep(RETRY)
        except asyncio.CancelledError:
            await self._stop_roles()
            if self.session is not None:
                with contextlib.suppress(Exception):
                    await self.session.stop(revoke=True)
            raise

    async def _stop_roles(self) -> None:
        broker, self.broker = self.broker, None
        if broker is not None:
            with contextlib.suppress(Exception):
                await broker.stop()
        leader, self.leader = self.leader, None
        if leader is not None:
            await leader.close()
        await self._stop_following()

    async def _stop_following(self) -> None:
        follower, self.follower = self.follower, None
        if follower is not None:
            await follower.close()
        proxies, self.proxies = self.proxies, {}
        for proxy in proxies.values():
            await proxy.close()

    # -- follower ---------------------------------------------------------------
    async def _follow(self, session: Session) -> Leadership:
        """Follow whoever leads until this node wins the election."""
        self.role = "follower"
        cfg = self.config
        http_host = cfg.management_host or cfg.host
        for kind, host, port in (("amqp", cfg.host, cfg.port), ("amqps", cfg.host, cfg.tls_port),
                                 ("http", http_host, cfg.management_port),
                                 ("prometheus", http_host, cfg.prometheus_port)):
            if port:
                # clients are named to the leader by a signed line ahead of their bytes
                proxy = self.proxies[kind] = LeaderProxy(host, port, secret=self.secret)
                await proxy.start()
        watching = asyncio.ensure_future(self._watch_leader())
        try:
            return await self.election.campaign(session, self.info)
        finally:
            watching.cancel()
            with contextlib.suppress(BaseException):
                await watching
            await self._stop_following()

    async def _watch_leader(self) -> None:
        while True:
            try:
                async for leadership in self.election.observe():
                    await self._retarget(leadership)
            except EtcdError as exc:
                log.info("cluster: watching the leader: %s", exc)
            await asyncio.sleep(RETRY)

    async def _retarget(self, leadership: Leadership | None) -> None:
        if leadership is not None and leadership.node == self.name:
            return
        for kind, proxy in self.proxies.items():
            target = None if leadership is None else leadership.info.get(kind)
            # a listener the leader does not have (port 0: e.g. no tls_port) forwards nowhere
            proxy.retarget((str(target[0]), int(target[1])) if target and len(target) == 2 and target[1] else None)
        repl = None if leadership is None else tuple(leadership.info.get("repl", ()))
        current = self.follower
        if current is not None and repl and (current.host, current.port) == repl:
            return
        if leadership is None or not repl or len(repl) != 2:
            if current is not None:
                await current.retarget(None)  # its stores stay open for the next leader
            return
        log.info("cluster: node %s follows %s at %s:%s", self.name, leadership.node, *repl)
        if current is not None:
            await current.retarget(str(repl[0]), int(repl[1]))
        else:
            self.follower = Follower(self.name, str(repl[0]), int(repl[1]), self.secret,
                                     self.config.data_dir, ssl=self.link_tls[1])
            await self.follower.start()

    # -- leader -------------------------------------------------------------------
    def _take_position(self) -> tuple[bytes, int] | None:
        """The follower position this node's stores hold exactly (its last follower closed
        cleanly), which the new term's log continues; the position is cleared first, and
        durably: these stores become the leader's own, and as a follower again this node
        resyncs (blocking: run it in an executor)."""
        path = Path(self.config.data_dir) / "replica.state"
        if not path.exists():
            return None
        state = ReplicaState(path)
        try:
            held = (state.log_id, state.seq) if state.exact and state.log_id != NO_LOG else None
            state.write(NO_LOG, 0)
        finally:
            state.close()
        if held is not None:
            log.info("cluster: node %s continues the log it followed from seq %d", self.name, held[1])
        return held

    async def _lead(self, session: Session, leadership: Leadership) -> None:
        self.role = "leader"
        document, _ = await self.definitions.load()
        known = self.definitions.keyed(document)
        # the new term's followers resync; each is named again once it holds everything
        await self.isr.write(leadership, [self.name])
        source = ReplicatedSource()
        cc = self.cc

        async def add(node: str) -> None:
            await self.isr.add(leadership, node)
            log.info("cluster: %s joined the in-sync set", node)

        async def remove(node: str) -> None:
            await self.isr.remove(leadership, node)
            log.warning("cluster: %s left the in-sync set", node)

        parent = await asyncio.get_running_loop().run_in_executor(None, self._take_position)
        leader = self.leader = Leader(
            self.secret, source=source, host=self.config.host, port=self.config.replication_port,
            min_insync=cc.min_insync, follower_timeout=cc.follower_timeout, on_add=add, on_remove=remove,
            alive=lambda: session.alive, ssl=self.link_tls[0], parent=parent,
        )

        # recovering the stores is the slow part of a promotion (~0.8 s per GB queued):
        # not on the loop, which must keep the lease alive meanwhile
        opening = asyncio.get_running_loop().run_in_executor(
            None, open_ahead, self.config.data_dir, leader, source)
        try:
            ahead = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(_close_ahead)  # nobody will claim them
            raise

        def persistence(node: Node) -> ClusterPersistence:
            return ClusterPersistence(
                node, self.config.data_dir, leader=leader, source=source,
                definitions=self.definitions, leadership=leadership,
                initial=document if any(document.values()) else {}, known=known, ahead=ahead,
            )

        self.broker = Broker(self.config, self.services, persistence=persistence)
        self.broker.cluster = self
        self.broker.forward_secret = self.secret
        try:
            await self.broker.start()
        finally:
            persistence_ = self.broker.persistence
            if isinstance(persistence_, ClusterPersistence):
                persistence_.close_unclaimed()
        # followers are let in once every store is open: the snapshot a joining follower
        # copies must hold what the stores recovered, which no operation carries
        await leader.start()
        # a new cluster's defaults (vhost "/", the default user) go to etcd too
        self.broker.persistence.schedule_save()
        log.info("cluster: node %s serves as leader (token %d) since=%.6f", self.name, leadership.token, time.time())
        lost = asyncio.ensure_future(self.election.wait_lost(session, leadership))
        reason = "stopping"
        try:
            while not lost.done():
                if leader.failed is not None:
                    reason = f"replication failed ({leader.failed})"
                    # hand the key back so that the next leader need not wait out the lease,
                    # but no longer than the lease: with etcd out of reach (how an in-sync
                    # update fails) the resign hung ~30 s while this node kept its clients
                    resign = asyncio.ensure_future(self.election.resign(leadership))
                    await asyncio.wait({resign}, timeout=self.cc.lease_ttl)
                    if not resign.done():
                        # not awaited: whatever it is stuck in must not hold this node; the
                        # delete is fenced by the term, so landing late is harmless
                        resign.cancel()
                    resign.add_done_callback(_retrieve)
                    return
                await asyncio.wait({lost}, timeout=0.2)
            reason = lost.result()
        finally:
            lost.cancel()
            with contextlib.suppress(BaseException):
                await lost
            # one line to grep for, whatever ended the term
            log.warning("cluster: node %s stopped leading (token %d) last_replicated=%.6f: %s",
                        self.name, leadership.token, leader.last_ok_at, reason)


def _close_ahead(fut: asyncio.Future[dict[str, Any]]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        for store in fut.result().values():
            store.close()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Consume a background task's outcome (a failed resign is expected with etcd away)."""
    if not task.cancelled():
        task.exception()
