"""Cluster bench (issue 10): 3 warren nodes vs a 3-node RabbitMQ 3.10 cluster, and warren single-node.

    python3 -m warren.bench.cluster_bench                      # 3 passes, 15 s per run
    python3 -m warren.bench.cluster_bench --duration 5 --repeat 1 --out /tmp/cb.json

In ONE run on this machine it starts

* ``rabbit-3``: three RabbitMQ 3.10 nodes (Debian's rabbitmq-server, no plugins) on loopback,
  ``rmqcb2``/``rmqcb3`` joined to ``rmqcb1``; the load goes to ``rmqcb1``, where the quorum queue is
  declared (so its Raft leader is there and the other two nodes are its followers);
* ``warren-3``: a private etcd and three ``warren --cluster etcd://...`` nodes; the load goes to the
  LEADER once all three are in the in-sync set (a confirm = fsynced on the leader and both followers);
* ``warren-1``: one warren without ``--cluster``;
* ``warren-3-tls`` (only when ``--brokers`` names it): ``warren-3`` with mutual TLS on the
  replication link (``cluster_tls_*``) and etcd over TLS with client certificates (``etcds://``);

and runs the same load on each with the C load generator ``amqp-perf``: 1 producer / 1 consumer,
persistent 1 KiB into a durable ``x-queue-type=quorum`` queue, publisher confirms (window 100),
prefetch 100, ack each; a fresh queue per run, deleted after it. Every pass runs all brokers back to
back, the order rotating from pass to pass so neighbours' noise hits all of them. It prints medians
(and per-pass values) of publish and consume msg/s and confirm latency p50/p99, the ratios
warren-3 / rabbit-3 and warren-3 / warren-1, and the broker CPU (utime+stime from /proc of the node
process trees), and writes everything as JSON. All processes it starts are stopped at the end, also on
errors and Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from warren.bench.ports import free_port
from warren.bench.scenarios import last_json, machine_busy, tree_cpu_s, wait_idle

log = logging.getLogger("cluster_bench")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RMQ_BIN = Path("/usr/lib/rabbitmq/bin")
SHARED_BENCH = Path("/work/shared/bench")
PACKAGES = ("server", "protocol", "storage", "bench")
BROKERS = ("rabbit-3", "warren-3", "warren-1", "warren-3-tls")
#: run unless --brokers names them
DEFAULT_BROKERS = ("rabbit-3", "warren-3", "warren-1")

# the issue's scenario (queue name, --time and --cleanup are added per run)
SCENARIO = ("--size", "1024", "--persistent", "--durable", "--confirm", "100", "--prefetch", "100",
            "--queue-args", "x-queue-type=quorum", "--producers", "1", "--consumers", "1")


class BenchError(RuntimeError):
    """A broker or tool could not be started or checked; the message says what and where to look."""


# --------------------------------------------------------------------------- helpers
def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def wait_for(cond: Any, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
             logpath: Path | None = None, interval: float = 0.1) -> Any:
    """Poll ``cond()`` until it returns something truthy; BenchError on timeout or if proc died."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what}: the process exited (rc {proc.returncode}); see {logpath}\n"
                             f"{tail(logpath) if logpath else ''}")
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}; see {logpath}\n"
                             f"{tail(logpath) if logpath else ''}")
        time.sleep(interval)


def pgrep_epmd() -> set[int]:
    p = subprocess.run(["pgrep", "-x", "epmd"], capture_output=True, text=True)
    return {int(x) for x in p.stdout.split()}


class Proc:
    """A child in its own session (setsid), output to a log file; stop = SIGTERM to its group."""

    def __init__(self, name: str, argv: list[str], logpath: Path, env: dict[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self.name, self.argv, self.logpath, self.env, self.cwd = name, argv, logpath, env, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.termed = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> Proc:
        with open(self.logpath, "ab") as out:
            out.write(f"=== {time.strftime('%H:%M:%S')} {shlex.join(self.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, cwd=self.cwd, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def term(self) -> None:
        """SIGTERM to the group, once (a second one could cut a clean shutdown short)."""
        if self.alive() and not self.termed:
            self.termed = True
            self.signal_group(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.term()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: SIGKILL", self.name, timeout)
        # whatever is left in its group (children that outlived it) goes too
        self.signal_group(signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


def http_json(port: int, path: str, timeout: float = 2.0) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={
        "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


# --------------------------------------------------------------------------- RabbitMQ cluster
class RabbitNode:
    """One RabbitMQ node with a private base dir; ``wrapper`` is the setsid'd rabbitmq-server script."""

    def __init__(self, base: Path, home: Path, nodename: str) -> None:
        self.nodename = nodename
        self.base = base
        self.port = free_port()
        self.dist_port = free_port()
        for d in ("mnesia", "log", "etc"):
            (base / d).mkdir(parents=True, exist_ok=True)
        (base / "etc" / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nlog.file.level = warning\nlog.console = false\n")
        (base / "etc" / "enabled_plugins").write_text("[].\n")
        (base / "etc" / "rabbitmq-env.conf").write_text("")  # never read /etc/rabbitmq/rabbitmq-env.conf
        dist_args = "-kernel inet_dist_use_interface {127,0,0,1}"
        self.env = dict(
            os.environ, HOME=str(home), RABBITMQ_NODENAME=nodename, RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"), RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_PID_FILE=str(base / "rabbit.pid"), RABBITMQ_CONFIG_FILE=str(base / "etc" / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "etc" / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "etc" / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(base / "etc" / "rabbitmq-env.conf"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=dist_args, RABBITMQ_CTL_ERL_ARGS=dist_args,
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        self.wrapper = Proc(nodename, [str(RMQ_BIN / "rabbitmq-server")], base / "log" / "startup.log", env=self.env)

    @property
    def uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def beam_pid(self) -> int | None:
        try:
            return int((self.base / "rabbit.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def ctl(self, *args: str, timeout: float = 120.0) -> str:
        cmd = [str(RMQ_BIN / "rabbitmqctl"), "-n", self.nodename, *args]
        try:
            p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{shlex.join(cmd)}: no answer after {timeout:.0f} s") from exc
        if p.returncode != 0:
            raise BenchError(f"{shlex.join(cmd)} failed (rc {p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-2000:]}\n"
                             f"node log: {self.base / 'log'}")
        return p.stdout

    def term(self) -> None:
        """SIGTERM to the wrapper only (once): its TERM trap stops the node cleanly; the beam follows."""
        w = self.wrapper
        if w.alive() and not w.termed and w.proc is not None:
            w.termed = True
            os.kill(w.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        beam = self.beam_pid()
        w = self.wrapper
        self.term()
        deadline = time.monotonic() + 60
        while (w.alive() or alive(beam)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(beam):
            log.warning("%s: beam %s still alive after 60 s: SIGKILL", self.nodename, beam)
            assert beam is not None
            os.kill(beam, signal.SIGKILL)
        w.stop(timeout=5)


class RabbitCluster:
    """``n`` RabbitMQ nodes on loopback sharing one Erlang cookie, clustered with join_cluster."""

    name = "rabbit-3"

    def __init__(self, base: Path, n: int = 3, prefix: str = "rmqcb") -> None:
        for tool in ("rabbitmq-server", "rabbitmqctl"):
            if not os.access(RMQ_BIN / tool, os.X_OK):
                raise BenchError(f"{RMQ_BIN / tool} not found: install Debian's rabbitmq-server (3.10), e.g. "
                                 f"{SHARED_BENCH / 'start-rabbitmq.sh'} installs it (or use --brokers warren-3,warren-1)")
        if not shutil.which("epmd") and not list(Path("/usr/lib/erlang").glob("erts-*/bin/epmd")):
            raise BenchError("epmd (Erlang) not found: install rabbitmq-server with its erlang dependencies")
        home = base / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(f"rmqcb{secrets.token_hex(16)}")
        cookie.chmod(0o400)
        self.nodes = [RabbitNode(base / f"{prefix}{i}", home, f"{prefix}{i}@localhost") for i in range(1, n + 1)]
        self.epmd_before = pgrep_epmd()
        self.epmd_started: set[int] = set()

    @property
    def uri(self) -> str:
        return self.nodes[0].uri

    def pids(self) -> list[int]:
        return [n.wrapper.pid for n in self.nodes if n.wrapper.pid]

    def alive(self) -> bool:
        return all(n.wrapper.alive() for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            if port_open(node.port):
                raise BenchError(f"127.0.0.1:{node.port} is taken")
        for node in self.nodes:
            log.info("rabbit-3: starting %s (amqp %d, dist %d)", node.nodename, node.port, node.dist_port)
            node.wrapper.start()
        for node in self.nodes:
            wait_for(lambda node=node: port_open(node.port), 120, f"{node.nodename} on 127.0.0.1:{node.port}",
                     proc=node.wrapper.proc, logpath=node.base / "log", interval=0.5)
            node.ctl("-q", "await_startup", "--timeout", "60")
        self.epmd_started = pgrep_epmd() - self.epmd_before
        first = self.nodes[0].nodename
        for node in self.nodes[1:]:
            log.info("rabbit-3: joining %s to %s", node.nodename, first)
            node.ctl("stop_app")
            node.ctl("join_cluster", first)
            node.ctl("start_app")
        out = self.nodes[0].ctl("cluster_status", "--formatter", "json")
        running = set(json.loads(out[out.index("{"):]).get("running_nodes", []))
        want = {n.nodename for n in self.nodes}
        if running != want:
            raise BenchError(f"rabbit-3: cluster_status lists running nodes {sorted(running)}, want {sorted(want)}")
        log.info("rabbit-3: cluster of %d running: %s", len(running), ", ".join(sorted(running)))

    def stop(self) -> None:
        for node in self.nodes:
            node.term()
        for node in self.nodes:
            node.stop()
        for pid in self.epmd_started:
            if alive(pid):
                names = subprocess.run(["epmd", "-names"], capture_output=True, text=True,
                                       env=dict(os.environ, ERL_EPMD_ADDRESS="127.0.0.1")).stdout
                others = [ln for ln in names.splitlines() if ln.startswith("name ")]
                if others:
                    log.info("epmd %d left running: other nodes registered (%s)", pid, "; ".join(others))
                else:
                    os.kill(pid, signal.SIGTERM)
                    log.info("stopped epmd %d (started by this run)", pid)

    def describe(self) -> dict[str, Any]:
        return {"nodes": [n.nodename for n in self.nodes], "load_to": self.nodes[0].nodename,
                "ports": [n.port for n in self.nodes]}


# --------------------------------------------------------------------------- warren
def warren_env(base: Path) -> dict[str, str]:
    """Environment for warren children: this checkout's packages first on PYTHONPATH.

    The editable install may point at another checkout; a directory of symlinks
    ``warren/server -> <this checkout>/server`` ... (as the tests' conftest does) makes the nodes run
    the code next to this file."""
    ns = base / "ns" / "warren"
    ns.mkdir(parents=True, exist_ok=True)
    for pkg in PACKAGES:
        (ns / pkg).symlink_to(REPO / pkg, target_is_directory=True)
    return dict(os.environ, PYTHONPATH=str(ns.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def warren_code(env: dict[str, str]) -> str:
    """Where the nodes' ``warren.server`` comes from (it must be this checkout)."""
    p = subprocess.run([sys.executable, "-c", "import os, warren.server as s; print(os.path.realpath(s.__path__[0]))"],
                       env=env, capture_output=True, text=True, timeout=60)
    got = p.stdout.strip()
    if p.returncode != 0 or Path(got) != REPO / "server":
        raise BenchError(f"the warren nodes would not run this checkout's code ({REPO / 'server'}): "
                         f"{got or p.stderr[-1000:]}")
    return got


class WarrenNode:
    """One warren process; ``extra`` adds the cluster flags."""

    def __init__(self, name: str, base: Path, env: dict[str, str], log_level: str,
                 extra: list[str] | None = None) -> None:
        self.name = name
        self.port, self.mgmt_port, self.prom_port = free_port(), free_port(), free_port()
        self.data_dir = base / name
        self.data_dir.mkdir(parents=True)
        argv = [sys.executable, "-m", "warren.server.main", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--management-port", str(self.mgmt_port),
                "--prometheus-port", str(self.prom_port), "--log-level", log_level, *(extra or [])]
        self.proc = Proc(name, argv, base / f"{name}.log", env=env, cwd=str(base))

    @property
    def uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self) -> None:
        if port_open(self.port):
            raise BenchError(f"127.0.0.1:{self.port} is taken")
        self.proc.start()

    def wait_port(self) -> None:
        wait_for(lambda: port_open(self.port), 60, f"warren {self.name} on 127.0.0.1:{self.port}",
                 proc=self.proc.proc, logpath=self.proc.logpath)


class WarrenSingle:
    """warren without --cluster (the single-node default)."""

    name = "warren-1"

    def __init__(self, base: Path, env: dict[str, str], log_level: str) -> None:
        self.node = WarrenNode("w1", base, env, log_level)

    @property
    def uri(self) -> str:
        return self.node.uri

    def pids(self) -> list[int]:
        return [self.node.proc.pid] if self.node.proc.pid else []

    def alive(self) -> bool:
        return self.node.proc.alive()

    def start(self) -> None:
        log.info("warren-1: starting on %d", self.node.port)
        self.node.start()
        self.node.wait_port()

    def stop(self) -> None:
        self.node.proc.stop()

    def describe(self) -> dict[str, Any]:
        return {"port": self.node.port, "log": str(self.node.proc.logpath)}


def etcd_binary() -> str:
    found = shutil.which("etcd") or next((p for p in ("/usr/bin/etcd", "/usr/local/bin/etcd") if os.access(p, os.X_OK)),
                                         None)
    if found is None:
        raise BenchError("etcd not found: apt-get install etcd-server (or use --brokers rabbit-3,warren-1)")
    return found


class WarrenCluster:
    """A private etcd and ``n`` ``warren --cluster`` nodes; the load goes to whichever node leads."""

    name = "warren-3"

    def __init__(self, base: Path, env: dict[str, str], log_level: str, n: int = 3,
                 options: str = "lease_ttl=5&min_insync=2", tls: bool = False) -> None:
        """``tls``: mutual TLS on the replication link and etcd over TLS with client
        certificates (certificates from a throwaway CA made with trustme)."""
        self.n = n
        self.cluster = "cb"
        self.name = "warren-3-tls" if tls else "warren-3"
        base.mkdir(parents=True, exist_ok=True)
        self.pki = _make_pki(base / "pki", [f"n{i}" for i in range(1, n + 1)]) if tls else None
        self.etcd_port, peer = free_port(), free_port()
        shm = Path("/dev/shm")
        # etcd fsyncs every write; on tmpfs its latency does not depend on the brokers' disk traffic
        parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else base
        self.etcd_dir = Path(tempfile.mkdtemp(prefix="cluster-bench-etcd-", dir=parent))
        scheme = "https" if self.pki else "http"
        client, peer_url = f"{scheme}://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{peer}"
        etcd_tls = [] if not self.pki else [
            "--cert-file", str(self.pki["etcd"][0]), "--key-file", str(self.pki["etcd"][1]),
            "--trusted-ca-file", str(self.pki["ca"]), "--client-cert-auth"]
        self.etcd = Proc("etcd", [
            etcd_binary(), *etcd_tls, "--name", "cb", "--data-dir", str(self.etcd_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"cb={peer_url}", "--initial-cluster-state", "new", "--log-level", "warn",
        ], base / "etcd.log")
        secret = base / "cluster-secret"
        secret.write_text(secrets.token_hex(32))
        secret.chmod(0o600)
        url = f"{'etcds' if self.pki else 'etcd'}://127.0.0.1:{self.etcd_port}/{self.cluster}?{options}"

        def tls_args(name: str) -> list[str]:
            if not self.pki:
                return []
            cert, key = self.pki[name]
            return ["--etcd-ca", str(self.pki["ca"]), "--etcd-cert", str(cert), "--etcd-key", str(key),
                    "--cluster-tls-cert", str(cert), "--cluster-tls-key", str(key),
                    "--cluster-tls-ca", str(self.pki["ca"])]

        self.nodes = {
            f"n{i}": WarrenNode(f"n{i}", base, env, log_level, extra=[
                "--cluster", url, "--node-name", f"n{i}", "--cluster-secret-file", str(secret),
                "--replication-port", str(free_port()), "--advertise-host", "127.0.0.1", *tls_args(f"n{i}")])
            for i in range(1, n + 1)
        }
        self.leader: WarrenNode | None = None

    @property
    def uri(self) -> str:
        assert self.leader is not None
        return self.leader.uri

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self.nodes.values() if n.proc.pid]

    def etcd_pids(self) -> list[int]:
        return [self.etcd.pid] if self.etcd.pid else []

    def alive(self) -> bool:
        return self.etcd.alive() and all(n.proc.alive() for n in self.nodes.values())

    def start(self) -> None:
        log.info("warren-3: starting etcd on %d", self.etcd_port)
        self.etcd.start()

        ctx = None
        if self.pki:
            import ssl

            ctx = ssl.create_default_context(cafile=str(self.pki["ca"]))
            ctx.load_cert_chain(str(self.pki["n1"][0]), str(self.pki["n1"][1]))
        scheme = "https" if self.pki else "http"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{scheme}://127.0.0.1:{self.etcd_port}/health", timeout=1,
                                            context=ctx) as r:
                    return json.loads(r.read()).get("health") == "true"
            except (OSError, ValueError):
                return False

        wait_for(healthy, 30, "etcd to become healthy", proc=self.etcd.proc, logpath=self.etcd.logpath)
        for node in self.nodes.values():
            log.info("warren-3: starting %s (amqp %d, mgmt %d)", node.name, node.port, node.mgmt_port)
            node.start()
        for node in self.nodes.values():
            node.wait_port()
        st = self.wait_serving(timeout=90)
        log.info("warren-3: leader %s, in sync %s", st["leader"], st["in_sync"])

    def status(self) -> dict[str, Any] | None:
        """/api/cluster (any node answers with the leader's view); None while nobody serves it."""
        for node in self.nodes.values():
            try:
                return http_json(node.mgmt_port, "/api/cluster")
            except (OSError, ValueError):
                continue
        return None

    def wait_serving(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until a leader serves and all ``n`` nodes are in sync; sets ``self.leader``."""

        def ready() -> dict[str, Any] | None:
            st = self.status()
            if not st or st.get("role") != "leader" or st.get("leader") not in self.nodes:
                return None
            followers = st.get("followers") or {}
            if len(st.get("in_sync") or []) != self.n or st["in_sync"][0] != st["leader"] or \
                    len(followers) != self.n - 1 or any(f.get("state") != "insync" for f in followers.values()):
                return None
            return st

        for node in self.nodes.values():
            if not node.proc.alive():
                raise BenchError(f"warren {node.name} is not running; see {node.proc.logpath}\n"
                                 f"{tail(node.proc.logpath)}")
        st = wait_for(ready, timeout, f"a warren leader with {self.n} nodes in sync (GET /api/cluster)",
                      logpath=self.nodes["n1"].proc.logpath, interval=0.2)
        self.leader = self.nodes[st["leader"]]
        return st

    def stop(self) -> None:
        for node in self.nodes.values():
            node.proc.term()
        for node in self.nodes.values():
            node.proc.stop()
        self.etcd.stop()
        shutil.rmtree(self.etcd_dir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        return {"nodes": {n.name: n.port for n in self.nodes.values()}, "etcd_port": self.etcd_port,
                "logs": str(self.nodes["n1"].proc.logpath.parent)}


def _make_pki(d: Path, names: list[str]) -> dict[str, Any]:
    """A throwaway CA and a certificate (for 127.0.0.1) per name and for etcd:
    {"ca": path, name: (cert path, key path), ...}."""
    import trustme

    d.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    out: dict[str, Any] = {"ca": d / "ca.pem"}
    ca.cert_pem.write_to_path(out["ca"])
    for name in [*names, "etcd"]:
        cert = ca.issue_cert("127.0.0.1", "localhost", common_name=name)
        out[name] = (d / f"{name}.pem", d / f"{name}.key")
        cert.cert_chain_pems[0].write_to_path(out[name][0])
        cert.private_key_pem.write_to_path(out[name][1])
    return out


# --------------------------------------------------------------------------- load
def find_amqp_perf(explicit: str | None, build_dir: Path) -> str:
    """A built amqp-perf; build one from the shared source with gcc if there is none."""
    candidates = [explicit] if explicit else [
        "/tmp/amqp-perf", "/tmp/amqp-perf/amqp-perf", str(HERE / "amqp-perf"), str(SHARED_BENCH / "amqp-perf")]
    for p in candidates:
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    if explicit:
        raise BenchError(f"--amqp-perf {explicit}: not an executable file")
    src = SHARED_BENCH / "amqp-perf.c"
    build = f"gcc -O2 -o /tmp/amqp-perf {src} -lrabbitmq -lm -lpthread"
    if not src.is_file() or not shutil.which("gcc"):
        raise BenchError(f"amqp-perf not found and cannot be built here; build it with: {build}")
    out = build_dir / "amqp-perf"
    p = subprocess.run(["gcc", "-O2", "-o", str(out), str(src), "-lrabbitmq", "-lm", "-lpthread"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError(f"building amqp-perf failed (needs librabbitmq-dev):\n{p.stderr[-2000:]}\nby hand: {build}")
    log.info("built %s from %s", out, src)
    return str(out)


def problems(run: dict[str, Any]) -> list[str]:
    """What the load generator (or the broker) reported as wrong in one run."""
    res = run.get("result") or {}
    out = []
    if run["rc"] != 0:
        out.append(f"amqp-perf rc={run['rc']}")
    if not res:
        out.append("no JSON result from amqp-perf")
    if res.get("errors"):
        out.append(f"errors={res['errors']}: {res.get('first_error', '')}")
    for k in ("protocol_anomalies", "unconfirmed", "nacked", "returned", "redelivered", "out_of_order", "no_timestamp"):
        if res.get(k):
            out.append(f"{k}={res[k]}")
    if not run.get("broker_alive_after", True):
        out.append("a broker process died")
    out.extend(run.get("cluster_issues", []))
    return out


def run_load(tool: str, broker: Any, queue: str, duration: float, label: str, extra_pids: list[int],
             rate: float = 0.0) -> dict[str, Any]:
    """One amqp-perf run against ``broker``, with the broker's CPU around it."""
    pids = broker.pids()
    cmd = [tool, "--uri", broker.uri, "--queue", queue, "--time", str(duration),
           "--max-time", str(max(60.0, duration * 5)), "--cleanup", "--label", label, *SCENARIO]
    if rate:
        cmd += ["--rate", f"{rate:g}"]
    c0, e0, m0 = tree_cpu_s(pids), tree_cpu_s(extra_pids), machine_busy()
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration * 5 + 120)
        rc, stdout, stderr = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as exc:
        got = exc.stdout or ""
        rc, stdout, stderr = -1, got.decode(errors="replace") if isinstance(got, bytes) else got, "amqp-perf timed out"
    wall = time.monotonic() - t0
    c1, e1, m1 = tree_cpu_s(pids), tree_cpu_s(extra_pids), machine_busy()
    tot, idle = m1[0] - m0[0], m1[1] - m0[1]
    return {"cmd": shlex.join(cmd), "rc": rc, "wall_s": round(wall, 2), "result": last_json(stdout),
            "stderr_tail": stderr[-3000:], "broker_cpu_s": round(c1 - c0, 3), "etcd_cpu_s": round(e1 - e0, 3),
            "machine_busy_pct": round(100.0 * (tot - idle) / tot, 1) if tot else None,
            "broker_alive_after": broker.alive()}


def values(run: dict[str, Any]) -> dict[str, float]:
    res = run.get("result") or {}
    clat = res.get("confirm_latency_us") or {}
    nan = float("nan")
    recv = res.get("received") or 0
    return {
        "pub": float(res.get("publish_rate") or 0.0), "cons": float(res.get("consume_rate") or 0.0),
        "conf_p50": clat["p50"] / 1e3 if clat.get("count") else nan,
        "conf_p99": clat["p99"] / 1e3 if clat.get("count") else nan,
        "cpu_s": run["broker_cpu_s"],
        "cpu_per_M": run["broker_cpu_s"] / (recv / 1e6) if recv else nan,
        "confirmed": float(res.get("confirmed") or 0),
    }


# --------------------------------------------------------------------------- report
COLS = (("pub", "publish msg/s", "{:.0f}"), ("cons", "consume msg/s", "{:.0f}"),
        ("conf_p50", "confirm p50 ms", "{:.2f}"), ("conf_p99", "confirm p99 ms", "{:.2f}"),
        ("cpu_per_M", "broker CPU-s/M msgs", "{:.1f}"))


def fmt(v: Any, f: str) -> str:
    return "–" if v is None or (isinstance(v, float) and v != v) else f.format(v)


def median(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b and a == a and b == b else float("nan")


def report(brokers: list[str], per_broker: dict[str, list[dict[str, float]]], issues: dict[str, list[str]]) -> tuple[
        str, dict[str, Any], dict[str, Any]]:
    """Markdown tables, medians and ratios."""
    med = {b: {k: median([v[k] for v in per_broker[b]]) for k, _, _ in COLS + (("cpu_s", "", ""),)}
           for b in brokers}
    lines = ["| broker | " + " | ".join(h for _, h, _ in COLS) + " | per pass: publish msg/s | per pass: confirm p99 ms |",
             "|---" * (len(COLS) + 3) + "|"]
    for b in brokers:
        pp = " / ".join(fmt(v["pub"], "{:.0f}") for v in per_broker[b])
        p99 = " / ".join(fmt(v["conf_p99"], "{:.1f}") for v in per_broker[b])
        lines.append(f"| {b} | " + " | ".join(fmt(med[b][k], f) for k, _, f in COLS) + f" | {pp} | {p99} |")
    ratios: dict[str, Any] = {}
    pairs = [("warren-3", "rabbit-3", "target ≥ 4x rate, ≤ 0.5x confirm p99"), ("warren-3", "warren-1", ""),
             ("warren-3-tls", "warren-3", "the cost of TLS between the nodes and to etcd")]
    rl = ["", "| ratio | publish rate | consume rate | confirm p50 | confirm p99 | note |", "|---|---|---|---|---|---|"]
    for a, b, note in pairs:
        if a in med and b in med:
            r = {k: ratio(med[a][k], med[b][k]) for k in ("pub", "cons", "conf_p50", "conf_p99")}
            ratios[f"{a}/{b}"] = r
            if b == "rabbit-3":
                met = r["pub"] >= 4 and r["conf_p99"] <= 0.5
                note += f" — {'met' if met else 'NOT met'}"
            rl.append(f"| {a} / {b} | {fmt(r['pub'], '{:.2f}x')} | {fmt(r['cons'], '{:.2f}x')} | "
                      f"{fmt(r['conf_p50'], '{:.2f}x')} | {fmt(r['conf_p99'], '{:.2f}x')} | {note} |")
    if ratios:
        lines += rl
    bad = {b: sorted(set(v)) for b, v in issues.items() if v}
    if bad:
        lines += ["", "**Problems reported:**"] + [f"- {b}: {'; '.join(v)}" for b, v in bad.items()]
    return "\n".join(lines) + "\n", med, ratios


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python3 -m warren.bench.cluster_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per load run (default 15)")
    ap.add_argument("--repeat", type=int, default=3, help="passes over all brokers (default 3); medians over passes")
    ap.add_argument("--brokers", default=",".join(DEFAULT_BROKERS),
                    help=f"comma list out of {','.join(BROKERS)} (default {','.join(DEFAULT_BROKERS)}; warren-3-tls: "
                         "warren-3 with mutual TLS on the replication link and etcds:// with client certificates)")
    ap.add_argument("--out", help="results JSON (default bench/results/cluster-<date>-<time>.json; tables go "
                                  "next to it as .md)")
    ap.add_argument("--amqp-perf", help="path of the built load generator (default: /tmp/amqp-perf, ... or build it)")
    ap.add_argument("--idle-wait", type=float, default=15.0,
                    help="before each run wait at most this long for the brokers and the machine to be quiet")
    ap.add_argument("--idle-cores", type=float, default=0.3, help="'quiet machine' = fewer busy cores than this")
    ap.add_argument("--warren-log-level", default="WARNING")
    ap.add_argument("--cluster-options", default="lease_ttl=5&min_insync=2",
                    help="query of the --cluster etcd:// URL of the warren nodes")
    ap.add_argument("--rmq-prefix", default="rmqcb", help="RabbitMQ node names <prefix>1@localhost ...")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data) after the run")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="publish at most this many msg/s (0: as fast as confirms allow): at a rate all "
                         "brokers sustain, compare confirm latency and CPU per message at equal load")
    return ap


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def versions() -> dict[str, str]:
    def run(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return ""

    return {"rabbitmq-server": run(["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"]),
            "etcd": run(["etcd", "--version"]), "warren_checkout": str(REPO),
            "warren_git": run(["git", "-C", str(REPO), "describe", "--always", "--dirty"])}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    if not brokers or any(b not in BROKERS for b in brokers):
        sys.exit(f"--brokers: pick from {', '.join(BROKERS)}")
    if args.repeat < 1 or args.duration <= 0:
        sys.exit("--repeat must be >= 1 and --duration > 0")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _sigterm)  # SIGINT too: a background job starts with it ignored
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else REPO / "bench" / "results" / f"cluster-{stamp}.json"
    base = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    meta: dict[str, Any] = {"argv": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "scenario": list(SCENARIO), "duration_s": args.duration, "repeat": args.repeat, "rate": args.rate,
                            "brokers": brokers, "nproc": os.cpu_count(), "versions": versions(), "base": str(base)}
    runs: list[dict[str, Any]] = []
    rc = 0
    try:
        with ExitStack() as stack:
            tool = find_amqp_perf(args.amqp_perf, base)
            meta["amqp_perf"] = tool
            env = warren_env(base)
            meta["versions"]["warren_nodes_run"] = warren_code(env)
            started: dict[str, Any] = {}
            # constructors check for the binaries first, so a missing one fails before anything starts
            makers = {
                "rabbit-3": lambda: RabbitCluster(base / "rabbit", prefix=args.rmq_prefix),
                "warren-3": lambda: WarrenCluster(base / "warren3", env, args.warren_log_level,
                                                  options=args.cluster_options),
                "warren-1": lambda: WarrenSingle(base / "warren1", env, args.warren_log_level),
                "warren-3-tls": lambda: WarrenCluster(base / "warren3tls", env, args.warren_log_level,
                                                      options=args.cluster_options, tls=True),
            }
            objs: dict[str, Any] = {}
            for b in brokers:
                objs[b] = makers[b]()
                stack.callback(objs[b].stop)  # stop() is safe on a broker that never started
            for b in brokers:
                objs[b].start()
                started[b] = objs[b].describe()
            meta["setup"] = started
            for i in range(args.repeat):
                order = brokers[i % len(brokers):] + brokers[:i % len(brokers)]
                for b in order:
                    broker = objs[b]
                    cluster_issues = []
                    extra: list[int] = []
                    if isinstance(broker, WarrenCluster):
                        st = broker.wait_serving(timeout=60)
                        extra = broker.etcd_pids()
                    waited = wait_idle(broker.pids(), 1.0, args.idle_wait, args.idle_cores, per_process=True)
                    queue = f"cb-{b}-p{i + 1}-{secrets.token_hex(3)}"
                    log.info("pass %d/%d: %s (%s), queue %s, %.0f s", i + 1, args.repeat, b, broker.uri, queue,
                             args.duration)
                    run = run_load(tool, broker, queue, args.duration, f"{b}-p{i + 1}", extra, args.rate)
                    if isinstance(broker, WarrenCluster):
                        after = broker.status() or {}
                        run["leader"] = st["leader"]
                        run["in_sync_after"] = after.get("in_sync")
                        if after.get("leader") != st["leader"]:
                            cluster_issues.append(f"leader changed {st['leader']} -> {after.get('leader')}")
                        if len(after.get("in_sync") or []) != broker.n:
                            cluster_issues.append(f"in-sync set after the run: {after.get('in_sync')}")
                    run.update(broker=b, passno=i + 1, waited_for_idle_s=waited, cluster_issues=cluster_issues)
                    run["values"] = values(run)
                    run["problems"] = problems(run)
                    runs.append(run)
                    v = run["values"]
                    log.info("  %s: publish %.0f/s consume %.0f/s confirm p50 %.2f ms p99 %.2f ms, CPU %.1f s%s",
                             b, v["pub"], v["cons"], v["conf_p50"], v["conf_p99"], v["cpu_s"],
                             ("  PROBLEMS: " + "; ".join(run["problems"])) if run["problems"] else "")
                    if not broker.alive():
                        raise BenchError(f"{b} died during pass {i + 1}")
            log.info("stopping brokers")
    except BenchError as exc:
        log.error("%s", exc)
        rc = 2
    except KeyboardInterrupt:
        log.error("interrupted; brokers stopped")
        rc = 130
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            log.info("kept %s", base)
    if not runs:
        return rc or 2
    done = [b for b in brokers if any(r["broker"] == b for r in runs)]
    per_broker = {b: [r["values"] for r in runs if r["broker"] == b] for b in done}
    issues = {b: [p for r in runs if r["broker"] == b for p in r["problems"]] for b in done}
    text, med, ratios = report(done, per_broker, issues)
    head = (f"Cluster bench: 1P/1C persistent 1 KiB, durable quorum queue, confirms window 100, prefetch 100; "
            f"{args.duration:g} s per run, {len({r['passno'] for r in runs})} pass(es), medians "
            f"(order rotates per pass). Broker CPU = utime+stime of the node processes (warren-3 without etcd).\n\n")
    print(head + text)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out.write_text(json.dumps({"meta": meta, "runs": runs, "medians": med, "ratios": ratios}, indent=1, default=str))
    out.with_suffix(".md").write_text(f"{head}```\n{shlex.join(sys.argv)}\n```\n\n{text}")
    log.info("wrote %s and %s", out, out.with_suffix(".md"))
    if any(issues.values()):
        rc = rc or 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
