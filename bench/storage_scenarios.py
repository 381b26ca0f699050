"""Storage scenarios P1..P5: warren vs RabbitMQ 3.10, side by side.

    python -m warren.bench.storage_scenarios                       # P1..P5 (+P3b on warren), 1 pass, full size
    python -m warren.bench.storage_scenarios --scale 0.1 --duration 4 --only P1,P3
    python -m warren.bench.storage_scenarios --skip-rabbitmq --only P3b --p3b-size 16

Scenarios (message counts are multiplied by ``--scale``):

* **P1** persistent 1 KiB to a durable queue, publisher confirms (window 100), manual ack (prefetch 100,
  ack each): throughput and confirm latency p99.  Same load as the baseline's S3.
* **P2** priority queue ``x-max-priority 10``, random priorities 0-9, 128 B, prefetch 100, multi-ack 10
  (the baseline's S7 load): throughput.
* **P3** backlog: 1,000,000 x 100 B transient messages published with no consumer (confirm window 1000),
  then drained by one consumer (prefetch 1000, multi-ack every 100): broker peak RSS, drain time.
  Same command lines as the baseline's S8pub / S8drain.
* **P3b** (warren only) 10,000,000 messages queued (publish only, confirm window 1000), then purged:
  peak RSS, publish and purge time.  Body size ``--p3b-size`` (default: 100 B, or 16 B if the P3 publish
  rate of this run says 100 B would take more than 6 minutes).
* **P4** restart: 1,000,000 persistent 100 B messages on a durable queue (confirm window 1000); after the
  last confirm the broker is killed with SIGKILL, restarted on the same data, and timed until it accepts
  an AMQP connection and until a passive declare reports every message; then the queue is drained (timed).
* **P5** 10,000 durable idle queues declared over one connection (pipelined batches of 1000 declares):
  declare time, broker RSS; then a clean stop and restart, timed until connections are accepted and
  until a passive declare of the last queue succeeds; all queues are then checked by passive declare.

Every scenario runs on a freshly started broker with empty storage (one per scenario and broker; the
broker order alternates).  Broker CPU = utime+stime of the broker process tree from /proc before/after
each phase; RSS = VmRSS of the tree sampled every 0.25 s.  Load: the C tool amqp-perf
(/work/shared/bench/README.md).  Writes bench/results/storage-<stamp>[-label].json and .md;
see bench/STORAGE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

if __package__ in (None, ""):  # run as a file: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pamqp import commands, exceptions, frame, header  # noqa: E402
from warren.bench.scenarios import (  # noqa: E402
    REPO,
    SHARED_BENCH,
    RssSampler,
    free_port,
    last_json,
    machine_busy,
    tree_cpu_s,
    tree_rss_kb,
    wait_idle,
)

HERE = os.path.dirname(os.path.abspath(__file__))
CLK = os.sysconf("SC_CLK_TCK")
HDR = struct.Struct(">BHI")
ALL = ("P1", "P2", "P3", "P3b", "P4", "P5")
WARREN_ONLY = {"P3b"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- a tiny blocking AMQP client
class AmqpClosed(Exception):
    """The connection was closed (by Connection.Close or EOF)."""


class ChannelClosed(Exception):
    """The broker closed the channel (e.g. 404 on a passive declare)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code


class Mini:
    """Blocking AMQP 0-9-1 client over one socket, pamqp codec: declares, purges, probes."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.ch = 0
        try:
            self.sock.sendall(header.ProtocolHeader().marshal())
            self.expect(commands.Connection.Start)
            self.send(commands.Connection.StartOk(
                client_properties={"product": "warren-storage-bench"},
                mechanism="PLAIN", response="\0guest\0guest"), 0)
            tune = self.expect(commands.Connection.Tune)
            self.send(commands.Connection.TuneOk(channel_max=tune.channel_max or 2047,
                                                 frame_max=tune.frame_max or 131072, heartbeat=0), 0)
            self.send(commands.Connection.Open(virtual_host="/"), 0)
            self.expect(commands.Connection.OpenOk)
            self.open_channel()
        except BaseException:
            self.sock.close()
            raise

    def open_channel(self) -> None:
        self.ch += 1
        self.send(commands.Channel.Open())
        self.expect(commands.Channel.OpenOk)

    def send(self, f: Any, ch: int | None = None) -> None:
        self.sock.sendall(frame.marshal(f, self.ch if ch is None else ch))

    def send_many(self, frames: list[Any]) -> None:
        self.sock.sendall(b"".join(frame.marshal(f, self.ch) for f in frames))

    def read_frame(self) -> tuple[int, Any]:
        while True:
            if len(self.buf) >= 8:
                if self.buf[:4] == b"AMQP":
                    raise AmqpClosed(f"protocol header refused: {bytes(self.buf[:8])!r}")
                ftype, ch, size = HDR.unpack_from(self.buf, 0)
                end = 7 + size + 1  # header, payload, frame-end
                if len(self.buf) >= end:
                    data = bytes(self.buf[:end])
                    del self.buf[:end]
                    if ftype in (3, 8):  # body, heartbeat
                        return ch, None
                    return ch, frame.unmarshal(data)[2]
            d = self.sock.recv(262144)
            if not d:
                raise AmqpClosed("EOF")
            self.buf += d

    def expect(self, *kinds: type) -> Any:
        while True:
            ch, f = self.read_frame()
            if isinstance(f, kinds):
                return f
            if isinstance(f, commands.Connection.Close):
                try:
                    self.send(commands.Connection.CloseOk(), 0)
                except OSError:
                    pass
                raise AmqpClosed(f"connection.close {f.reply_code} {f.reply_text}")
            if isinstance(f, commands.Channel.Close):
                self.send(commands.Channel.CloseOk(), ch)
                raise ChannelClosed(f.reply_code, f.reply_text)

    def rpc(self, f: Any, *kinds: type) -> Any:
        self.send(f)
        return self.expect(*kinds)

    def close(self) -> None:
        try:
            self.sock.settimeout(3.0)
            self.send(commands.Connection.Close(reply_code=200, reply_text="bye",
                                                 class_id=0, method_id=0), 0)
            self.expect(commands.Connection.CloseOk)
        except (OSError, AmqpClosed, ChannelClosed):
            pass
        self.sock.close()


def amqp_ready(port: int) -> bool:
    """True if a full AMQP handshake (connection + channel open) succeeds."""
    try:
        Mini(port, timeout=3.0).close()
        return True
    except (OSError, AmqpClosed, ChannelClosed, exceptions.UnmarshalingException):
        return False


def declare_pipelined(port: int, names: list[str], passive: bool, batch: int = 1000) -> tuple[float, int]:
    """Declare (or passive-declare) ``names`` over one connection in pipelined batches.

    Returns (seconds, number that succeeded).  A passive declare of a missing queue closes the channel;
    then the rest of that batch is lost with it, so missing queues are re-checked one by one.
    """
    c = Mini(port, timeout=60.0)
    ok = 0
    t0 = time.monotonic()
    try:
        for i in range(0, len(names), batch):
            chunk = names[i:i + batch]
            c.send_many([commands.Queue.Declare(queue=n, durable=True, passive=passive) for n in chunk])
            try:
                for _ in chunk:
                    c.expect(commands.Queue.DeclareOk)
                    ok += 1
            except ChannelClosed:
                if not passive:
                    raise
                # drain what the closed channel still sends (nothing useful), then one by one
                c.open_channel()
                done = ok - i
                for n in chunk[done + 1:]:
                    try:
                        c.rpc(commands.Queue.Declare(queue=n, durable=True, passive=True), commands.Queue.DeclareOk)
                        ok += 1
                    except ChannelClosed:
                        c.open_channel()
        return time.monotonic() - t0, ok
    finally:
        c.close()


# --------------------------------------------------------------------------- brokers
def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def wait_accepting(port: int, t0: float, alive: Callable[[], bool], timeout: float = 600.0) -> float:
    """Seconds from t0 until an AMQP handshake succeeds on port."""
    while True:
        if amqp_ready(port):
            return time.monotonic() - t0
        if not alive():
            raise RuntimeError("broker exited during startup")
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"port {port}: no AMQP handshake after {timeout} s")
        time.sleep(0.05)


class Warren:
    """warren from this checkout on a private data dir that survives restarts until ``wipe``."""

    name = "warren"

    def __init__(self, port: int, http: bool = True, log_level: str = "WARNING") -> None:
        self.port = port
        self.http = http
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        self.data_dir: str | None = None
        self.log_path = ""
        self.log_offset = 0

    @property
    def uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self, keep_data: bool = False) -> float:
        """Start (fresh data dir unless keep_data); returns seconds until AMQP is accepted."""
        if not keep_data or not self.data_dir:
            self.wipe()
            self.data_dir = tempfile.mkdtemp(prefix="stor-warren-", dir="/tmp")
            self.log_path = self.data_dir + ".log"
        cmd = [sys.executable, "-m", "warren.server.main", "--host", "127.0.0.1", "--port", str(self.port),
               "--data-dir", self.data_dir, "--log-level", self.log_level,
               "--management-port", str(free_port() if self.http else 0),
               "--prometheus-port", str(free_port() if self.http else 0)]
        with open(self.log_path, "ab") as lf:
            lf.write(f"\n=== {time.strftime('%H:%M:%S')} {shlex.join(cmd)}\n".encode())
            lf.flush()
            t0 = time.monotonic()
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=lf, stderr=lf, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        return wait_accepting(self.port, t0, self.alive)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.alive() and self.proc else []

    def kill9(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None
        return "SIGKILL"

    def stop(self) -> float:
        """Clean stop (SIGTERM); returns seconds it took."""
        t0 = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                log("  !! warren did not stop within 60 s of SIGTERM; SIGKILL")
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        return time.monotonic() - t0

    def wipe(self) -> None:
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def log_issues(self) -> list[str]:
        """Lines of the broker log (since the last call) that look like trouble."""
        out: list[str] = []
        if not self.log_path or not os.path.exists(self.log_path):
            return out
        with open(self.log_path, errors="replace") as f:
            f.seek(self.log_offset)
            text = f.read()
            self.log_offset = f.tell()
        for line in text.splitlines():
            if line.startswith("=== "):  # our own start marker (contains the command line)
                continue
            if any(w in line for w in ("ERROR", "CRITICAL", "Traceback", "WARNING", "Exception")):
                out.append(line.strip()[:300])
        return out


class Rabbit:
    """RabbitMQ via the shared start/stop scripts on a private node (RMQ_KEEP_DATA=1 for restarts)."""

    name = "rabbitmq"

    def __init__(self, a: argparse.Namespace) -> None:
        self.scripts, self.base, self.port = a.rmq_scripts, a.rmq_base, a.rmq_port
        self.env = dict(os.environ, RMQ_BENCH_BASE=a.rmq_base, RMQ_PORT=str(a.rmq_port),
                        RMQ_MGMT_PORT=str(a.rmq_mgmt_port), RMQ_PROM_PORT=str(a.rmq_prom_port),
                        RMQ_DIST_PORT=str(a.rmq_dist_port), RMQ_NODENAME=a.rmq_nodename)
        self.env.pop("RMQ_KEEP_DATA", None)

    @property
    def uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _read_pid(self, name: str) -> int | None:
        try:
            with open(os.path.join(self.base, name)) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self, keep_data: bool = False) -> float:
        env = dict(self.env, RMQ_KEEP_DATA="1" if keep_data else "0")
        if keep_data:  # stale PID file from a killed node must not be measured
            with_pid = os.path.join(self.base, "rabbit.pid")
            if os.path.exists(with_pid):
                os.unlink(with_pid)
        t0 = time.monotonic()
        p = subprocess.Popen([os.path.join(self.scripts, "start-rabbitmq.sh")], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            t = wait_accepting(self.port, t0, lambda: p.poll() is None or p.returncode == 0)
        except RuntimeError:
            out = p.communicate(timeout=120)[0] if p.poll() is None else (p.stdout.read() if p.stdout else "")
            raise RuntimeError(f"start-rabbitmq.sh failed: {out[-2000:]}") from None
        out, _ = p.communicate(timeout=180)
        if p.returncode != 0 or not self.pids():
            raise RuntimeError(f"start-rabbitmq.sh failed (rc {p.returncode}): {out[-2000:]}")
        return t

    def alive(self) -> bool:
        return bool(self.pids()) and all(os.path.exists(f"/proc/{p}") for p in self.pids())

    def pids(self) -> list[int]:
        p = self._read_pid("rabbit.pid")
        return [p] if p else []

    def kill9(self) -> str:
        beam, wrapper = self._read_pid("rabbit.pid"), self._read_pid("wrapper.pid")
        if beam:
            os.kill(beam, signal.SIGKILL)
            wait_gone(beam, 30)
        if wrapper and not wait_gone(wrapper, 20):
            log(f"  !! rabbitmq wrapper {wrapper} still alive after beam SIGKILL; SIGKILL")
            os.kill(wrapper, signal.SIGKILL)
            wait_gone(wrapper, 10)
        for f in ("rabbit.pid", "wrapper.pid"):
            try:
                os.unlink(os.path.join(self.base, f))
            except OSError:
                pass
        return "SIGKILL (beam.smp)"

    def stop(self) -> float:
        t0 = time.monotonic()
        subprocess.run([os.path.join(self.scripts, "stop-rabbitmq.sh")], env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
        return time.monotonic() - t0

    def wipe(self) -> None:
        pass  # the next start without RMQ_KEEP_DATA wipes $RMQ_BENCH_BASE

    def log_issues(self) -> list[str]:
        return []


# --------------------------------------------------------------------------- measuring a phase
class Phase:
    """CPU (before/after) and peak RSS (sampled) of the broker around a block of work."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker

    def __enter__(self) -> Phase:
        self.pids = self.broker.pids()
        self.rss0 = tree_rss_kb(self.pids)
        self.sampler = RssSampler(self.pids)
        self.sampler.start()
        self.m0, self.c0, self.t0 = machine_busy(), tree_cpu_s(self.pids), time.monotonic()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.monotonic() - self.t0
        alive = self.broker.alive()
        self.cpu = tree_cpu_s(self.pids) - self.c0 if alive else float("nan")
        m1 = machine_busy()
        self.sampler.halt.set()
        self.sampler.join()
        self.rss1 = tree_rss_kb(self.pids) if alive else 0
        self.peak = max(self.sampler.peak, self.rss0, self.rss1)
        tot, idle = m1[0] - self.m0[0], m1[1] - self.m0[1]
        self.busy = round(100.0 * (tot - idle) / tot, 1) if tot else float("nan")

    def summary(self) -> dict[str, Any]:
        return {"wall_s": round(self.wall, 3), "broker_cpu_s": round(self.cpu, 3),
                "rss_start_MB": round(self.rss0 / 1024, 1), "rss_peak_MB": round(self.peak / 1024, 1),
                "rss_end_MB": round(self.rss1 / 1024, 1), "machine_busy_pct": self.busy}


class Ctx:
    """Per-run settings shared by the scenario functions."""

    def __init__(self, a: argparse.Namespace, tool: str) -> None:
        self.a, self.tool = a, tool
        self.scale = a.scale
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.phases: dict[str, Any] = {}
        self.p3_pub_rate: float | None = None

    def n(self, full: int, minimum: int = 1000) -> int:
        return max(minimum, int(round(full * self.scale)))

    def perf(self, broker: Any, label: str, args: list[str], max_time: float,
             ordered: bool = True, allow_redelivered: bool = False) -> dict[str, Any]:
        """One amqp-perf run; returns its JSON (or {}) and records problems."""
        cmd = [self.tool, "--uri", broker.uri, "--label", label, "--max-time", str(max_time), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=max_time + 180)
        res = last_json(p.stdout) or {}
        self.phases.setdefault("perf", []).append(
            {"label": label, "cmd": shlex.join(cmd), "rc": p.returncode, "result": res,
             "stderr_tail": p.stderr[-3000:]})
        issues = []
        if p.returncode != 0:
            issues.append(f"rc={p.returncode}")
        if not res:
            issues.append("no JSON result")
        if res.get("errors"):
            issues.append(f"errors={res['errors']}: {res.get('first_error', '')}")
        keys = ["protocol_anomalies", "unconfirmed", "nacked", "no_timestamp"]
        if not allow_redelivered:
            keys.append("redelivered")
        for k in keys:
            if res.get(k):
                issues.append(f"{k}={res[k]}")
        if ordered and res.get("out_of_order"):
            issues.append(f"out_of_order={res['out_of_order']}")
        if allow_redelivered and res.get("redelivered"):
            self.notes.append(f"{label}: redelivered={res['redelivered']}")
        for i in issues:
            self.problems.append(f"{label}: {i}")
        if issues:
            log(f"    !! {label}: {'; '.join(issues)}\n    " + p.stderr[-600:].replace("\n", "\n    "))
        return res


def _ms(res: dict[str, Any], key: str, q: str) -> float:
    h = res.get(key) or {}
    return h[q] / 1e3 if h.get("count") and q in h else float("nan")


def _per_m(cpu: float, n: int) -> float:
    return cpu / (n / 1e6) if n else float("nan")


# --------------------------------------------------------------------------- scenarios
def p1(ctx: Ctx, b: Any) -> dict[str, Any]:
    d = ctx.a.duration
    with Phase(b) as ph:
        r = ctx.perf(b, "P1", ["--producers", "1", "--consumers", "1", "--size", "1024", "--persistent",
                               "--durable", "--confirm", "100", "--prefetch", "100", "--queue", "p1",
                               "--time", str(d), "--cleanup"], max(60.0, d * 5))
    ctx.phases["run"] = ph.summary()
    return {"cons_rate": r.get("consume_rate", 0.0), "pub_rate": r.get("publish_rate", 0.0),
            "confirm_p50_ms": _ms(r, "confirm_latency_us", "p50"),
            "confirm_p99_ms": _ms(r, "confirm_latency_us", "p99"),
            "lat_p50_ms": _ms(r, "latency_us", "p50"), "lat_p99_ms": _ms(r, "latency_us", "p99"),
            "cpu_per_M": _per_m(ph.cpu, r.get("received", 0)), "peak_rss_MB": ph.peak / 1024}


def p2(ctx: Ctx, b: Any) -> dict[str, Any]:
    d = ctx.a.duration
    with Phase(b) as ph:
        r = ctx.perf(b, "P2", ["--producers", "1", "--consumers", "1", "--size", "128", "--priority-max",
                               "10", "--prefetch", "100", "--multi-ack-every", "10", "--queue", "p2",
                               "--time", str(d), "--cleanup"], max(60.0, d * 5), ordered=False)
    ctx.phases["run"] = ph.summary()
    return {"cons_rate": r.get("consume_rate", 0.0), "pub_rate": r.get("publish_rate", 0.0),
            "lat_p99_ms": _ms(r, "latency_us", "p99"),
            "cpu_per_M": _per_m(ph.cpu, r.get("received", 0)), "peak_rss_MB": ph.peak / 1024}


def p3(ctx: Ctx, b: Any) -> dict[str, Any]:
    n = ctx.n(1_000_000)
    with Phase(b) as pub:
        r1 = ctx.perf(b, "P3pub", ["--producers", "1", "--consumers", "0", "--size", "100", "--pmessages",
                                   str(n), "--confirm", "1000", "--queue", "p3", "--purge",
                                   "--confirm-grace", "60"], 900)
    time.sleep(2.0)
    rss_settled = tree_rss_kb(b.pids()) / 1024
    with Phase(b) as dr:
        r2 = ctx.perf(b, "P3drain", ["--producers", "0", "--consumers", "1", "--cmessages", str(n),
                                     "--prefetch", "1000", "--multi-ack-every", "100", "--queue", "p3",
                                     "--cleanup"], 900)
    ctx.phases.update(publish=pub.summary(), drain=dr.summary())
    if r1.get("confirmed", 0) != n:
        ctx.problems.append(f"P3pub: confirmed {r1.get('confirmed')} of {n}")
    if r2.get("received", 0) != n:
        ctx.problems.append(f"P3drain: received {r2.get('received')} of {n}")
    pr, cr = r1.get("publish_rate", 0.0), r2.get("consume_rate", 0.0)
    if b.name == "warren":
        ctx.p3_pub_rate = pr
    return {"n": n, "pub_rate": pr, "confirm_p50_ms": _ms(r1, "confirm_latency_us", "p50"),
            "rss_after_pub_MB": rss_settled, "peak_rss_pub_MB": pub.peak / 1024,
            "drain_s": r2.get("received", 0) / cr if cr else float("nan"), "drain_rate": cr,
            "peak_rss_drain_MB": dr.peak / 1024, "peak_rss_MB": max(pub.peak, dr.peak) / 1024,
            "rss_after_drain_MB": dr.rss1 / 1024,
            "cpu_per_M_pub": _per_m(pub.cpu, r1.get("sent", 0)),
            "cpu_per_M_drain": _per_m(dr.cpu, r2.get("received", 0))}


def p3b(ctx: Ctx, b: Any) -> dict[str, Any]:
    n = ctx.n(10_000_000)
    size = ctx.a.p3b_size
    if not size:
        size = 100
        if ctx.p3_pub_rate and n / ctx.p3_pub_rate > 360:
            size = 16
            ctx.notes.append(f"P3b: --size 16 (P3 published at {ctx.p3_pub_rate:.0f}/s: {n} x 100 B would "
                             f"take {n / ctx.p3_pub_rate:.0f} s)")
    with Phase(b) as pub:
        r = ctx.perf(b, "P3bpub", ["--producers", "1", "--consumers", "0", "--size", str(size), "--pmessages",
                                   str(n), "--confirm", "1000", "--queue", "p3b", "--purge",
                                   "--confirm-grace", "120"], 1800)
    if r.get("confirmed", 0) != n:
        ctx.problems.append(f"P3bpub: confirmed {r.get('confirmed')} of {n}")
    time.sleep(2.0)
    rss_settled = tree_rss_kb(b.pids()) / 1024
    with Phase(b) as pg:
        c = Mini(b.port, timeout=600.0)
        ok = c.rpc(commands.Queue.Declare(queue="p3b", passive=True), commands.Queue.DeclareOk)
        t0 = time.monotonic()
        purged = c.rpc(commands.Queue.Purge(queue="p3b"), commands.Queue.PurgeOk).message_count
        purge_s = time.monotonic() - t0
        c.rpc(commands.Queue.Delete(queue="p3b"), commands.Queue.DeleteOk)
        c.close()
    if ok.message_count != n or purged != n:
        ctx.problems.append(f"P3b: queue had {ok.message_count}, purge removed {purged}, expected {n}")
    ctx.phases.update(publish=pub.summary(), purge=pg.summary())
    return {"n": n, "size": size, "pub_rate": r.get("publish_rate", 0.0),
            "pub_s": pub.wall, "rss_after_pub_MB": rss_settled, "purge_s": purge_s,
            "peak_rss_MB": max(pub.peak, pg.peak) / 1024, "rss_after_purge_MB": pg.rss1 / 1024,
            "cpu_per_M_pub": _per_m(pub.cpu, r.get("sent", 0))}


def wait_count(port: int, queue: str, n: int, t0: float, timeout: float,
               stall_s: float) -> tuple[float | None, int]:
    """Passive-declare ``queue`` until it reports >= n messages: (seconds since t0 or None, count)."""
    conn: Mini | None = None
    last, last_change = -1, time.monotonic()
    try:
        while True:
            now = time.monotonic()
            try:
                if conn is None:
                    conn = Mini(port, timeout=30.0)
                cnt = conn.rpc(commands.Queue.Declare(queue=queue, durable=True, passive=True),
                               commands.Queue.DeclareOk).message_count
                now = time.monotonic()
                if cnt >= n:
                    return now - t0, cnt
                if cnt != last:
                    last, last_change = cnt, now
                elif now - last_change > stall_s:
                    return None, cnt
            except ChannelClosed:
                if conn is not None:
                    conn.open_channel()
            except (OSError, AmqpClosed):
                conn = None
            if now - t0 > timeout:
                return None, max(last, 0)
            time.sleep(0.05)
    finally:
        if conn is not None:
            conn.close()


def p4(ctx: Ctx, b: Any) -> dict[str, Any]:
    n = ctx.n(1_000_000)
    with Phase(b) as pub:
        r1 = ctx.perf(b, "P4pub", ["--producers", "1", "--consumers", "0", "--size", "100", "--pmessages",
                                   str(n), "--persistent", "--durable", "--confirm", "1000", "--queue", "p4",
                                   "--purge", "--confirm-grace", "60"], 1200)
    confirmed = r1.get("confirmed", 0)
    if confirmed != n:
        ctx.problems.append(f"P4pub: confirmed {confirmed} of {n}")
    rss_before_kill = tree_rss_kb(b.pids()) / 1024
    if ctx.a.p4_stop == "kill9" or b.name == "warren":
        how = b.kill9()
    else:
        b.stop()
        how = "clean stop"
    ctx.notes.append(f"P4 {b.name}: stopped with {how} right after the last confirm")
    t0 = time.monotonic()
    accept_s = b.start(keep_data=True)
    with Phase(b) as rec:
        ready_s, count = wait_count(b.port, "p4", confirmed, t0, ctx.a.recovery_timeout, 20.0)
    if ready_s is None:
        ctx.problems.append(f"P4: after restart the queue has {count} of {confirmed} confirmed messages "
                            f"(LOST {confirmed - count})")
    if count > confirmed:
        ctx.notes.append(f"P4 {b.name}: {count} messages after restart > {confirmed} confirmed")
    rss_recovered = tree_rss_kb(b.pids()) / 1024
    with Phase(b) as dr:
        r2 = ctx.perf(b, "P4drain", ["--producers", "0", "--consumers", "1", "--cmessages", str(count),
                                     "--prefetch", "1000", "--multi-ack-every", "100", "--durable",
                                     "--queue", "p4", "--cleanup"], 1200, allow_redelivered=True)
    if r2.get("received", 0) != count:
        ctx.problems.append(f"P4drain: received {r2.get('received')} of {count}")
    cr = r2.get("consume_rate", 0.0)
    ctx.phases.update(publish=pub.summary(), recovery=rec.summary(), drain=dr.summary(),
                      stopped_with=how)
    return {"n": n, "pub_rate": r1.get("publish_rate", 0.0), "rss_before_kill_MB": rss_before_kill,
            "accept_s": accept_s, "ready_s": ready_s if ready_s is not None else float("nan"),
            "recovered": count, "lost": confirmed - min(count, confirmed),
            "rss_recovered_MB": rss_recovered,
            "drain_s": r2.get("received", 0) / cr if cr else float("nan"), "drain_rate": cr,
            "peak_rss_drain_MB": dr.peak / 1024, "redelivered": r2.get("redelivered", 0)}


def p5(ctx: Ctx, b: Any) -> dict[str, Any]:
    nq = ctx.n(10_000, minimum=100)
    names = [f"p5-{i:05d}" for i in range(nq)]
    time.sleep(1.0)
    rss_empty = tree_rss_kb(b.pids()) / 1024
    with Phase(b) as dec:
        declare_s, ok = declare_pipelined(b.port, names, passive=False)
    if ok != nq:
        ctx.problems.append(f"P5: {ok} of {nq} declares answered")
    time.sleep(3.0)
    rss_idle = tree_rss_kb(b.pids()) / 1024
    stop_s = b.stop()
    t0 = time.monotonic()
    accept_s = b.start(keep_data=True)
    last_s: float | None = None
    conn: Mini | None = None
    while time.monotonic() - t0 < ctx.a.recovery_timeout:
        try:
            if conn is None:
                conn = Mini(b.port, timeout=30.0)
            conn.rpc(commands.Queue.Declare(queue=names[-1], durable=True, passive=True),
                     commands.Queue.DeclareOk)
            last_s = time.monotonic() - t0
            break
        except ChannelClosed:
            if conn is not None:
                conn.open_channel()
            if time.monotonic() - t0 > accept_s + 30:
                break
        except (OSError, AmqpClosed):
            conn = None
        time.sleep(0.05)
    if conn is not None:
        conn.close()
    if last_s is None:
        ctx.problems.append(f"P5: last queue {names[-1]} missing after restart")
    time.sleep(1.0)
    rss_restarted = tree_rss_kb(b.pids()) / 1024
    check_s, found = declare_pipelined(b.port, names, passive=True)
    if found != nq:
        ctx.problems.append(f"P5: {nq - found} of {nq} queues missing after restart")
    ctx.phases.update(declare=dec.summary())
    # one at a time, waiting for each DeclareOk (how most applications declare)
    ns = ctx.n(2_000, minimum=50)
    conn = Mini(b.port, timeout=30.0)
    t0 = time.monotonic()
    for i in range(ns):
        conn.rpc(commands.Queue.Declare(queue=f"p5s-{i:05d}", durable=True), commands.Queue.DeclareOk)
    seq_s = time.monotonic() - t0
    conn.close()
    return {"queues": nq, "seq_declare_ms": seq_s * 1000 / ns, "declare_s": declare_s, "declare_rate": nq / declare_s if declare_s else 0.0,
            "rss_empty_MB": rss_empty, "rss_idle_MB": rss_idle,
            "kB_per_queue": (rss_idle - rss_empty) * 1024 / nq, "stop_s": stop_s, "accept_s": accept_s,
            "last_queue_s": last_s if last_s is not None else float("nan"),
            "rss_restarted_MB": rss_restarted, "queues_found": found, "passive_check_s": check_s}


SCENARIOS: dict[str, tuple[str, Callable[[Ctx, Any], dict[str, Any]]]] = {
    "P1": ("persistent 1 KiB, durable queue, confirms (window 100), prefetch 100, ack each", p1),
    "P2": ("priority queue x-max-priority 10, random priorities, 128 B, prefetch 100, multi-ack 10", p2),
    "P3": ("backlog: 1M x 100 B published without consumer (confirm 1000), then drained "
           "(prefetch 1000, multi-ack 100)", p3),
    "P3b": ("warren only: 10M messages queued (confirm 1000), then purged", p3b),
    "P4": ("1M persistent 100 B on a durable queue, SIGKILL after the last confirm, restart, drain", p4),
    "P5": ("10,000 durable idle queues: declare, RSS, clean restart", p5),
}

# (scenario, metric key, label, format, better: "hi"/"lo"/"", target: (kind, value) or None)
METRICS: list[tuple[str, str, str, str, str, tuple[str, float] | None]] = [
    ("P1", "cons_rate", "throughput (consume msg/s)", "{:.0f}", "hi", ("ratio>=", 2.0)),
    ("P1", "pub_rate", "publish msg/s", "{:.0f}", "hi", None),
    ("P1", "confirm_p50_ms", "confirm p50 ms", "{:.2f}", "lo", None),
    ("P1", "confirm_p99_ms", "confirm p99 ms", "{:.2f}", "lo", ("ratio<=", 1.0)),
    ("P1", "lat_p99_ms", "end-to-end p99 ms", "{:.2f}", "lo", None),
    ("P1", "cpu_per_M", "broker CPU-s / M msgs", "{:.1f}", "lo", None),
    ("P1", "peak_rss_MB", "peak RSS MB", "{:.0f}", "lo", None),
    ("P2", "cons_rate", "throughput (consume msg/s)", "{:.0f}", "hi", ("ratio>=", 1.0)),
    ("P2", "pub_rate", "publish msg/s", "{:.0f}", "hi", None),
    ("P2", "cpu_per_M", "broker CPU-s / M msgs", "{:.1f}", "lo", None),
    ("P2", "peak_rss_MB", "peak RSS MB", "{:.0f}", "lo", None),
    ("P3", "n", "messages", "{:.0f}", "", None),
    ("P3", "pub_rate", "publish msg/s", "{:.0f}", "hi", None),
    ("P3", "confirm_p50_ms", "confirm p50 ms", "{:.2f}", "lo", None),
    ("P3", "rss_after_pub_MB", "RSS with backlog queued MB", "{:.0f}", "lo", None),
    ("P3", "peak_rss_MB", "peak RSS MB (publish+drain)", "{:.0f}", "lo", ("abs<=", 150.0)),
    ("P3", "drain_s", "drain time s", "{:.1f}", "lo", ("ratio<=", 1.0)),
    ("P3", "drain_rate", "drain msg/s", "{:.0f}", "hi", None),
    ("P3", "rss_after_drain_MB", "RSS after drain MB", "{:.0f}", "lo", None),
    ("P3", "cpu_per_M_pub", "CPU-s / M published", "{:.1f}", "lo", None),
    ("P3", "cpu_per_M_drain", "CPU-s / M drained", "{:.1f}", "lo", None),
    ("P3b", "n", "messages", "{:.0f}", "", None),
    ("P3b", "size", "body bytes", "{:.0f}", "", None),
    ("P3b", "pub_rate", "publish msg/s", "{:.0f}", "hi", None),
    ("P3b", "pub_s", "publish time s", "{:.1f}", "lo", None),
    ("P3b", "rss_after_pub_MB", "RSS with backlog queued MB", "{:.0f}", "lo", None),
    ("P3b", "peak_rss_MB", "peak RSS MB", "{:.0f}", "lo", ("abs<=", 300.0)),
    ("P3b", "purge_s", "purge time s", "{:.2f}", "lo", None),
    ("P3b", "rss_after_purge_MB", "RSS after purge MB", "{:.0f}", "lo", None),
    ("P4", "n", "messages", "{:.0f}", "", None),
    ("P4", "pub_rate", "persistent publish msg/s", "{:.0f}", "hi", None),
    ("P4", "rss_before_kill_MB", "RSS before kill MB", "{:.0f}", "lo", None),
    ("P4", "accept_s", "restart: accepts connections s", "{:.2f}", "lo", None),
    ("P4", "ready_s", "restart: all messages counted s", "{:.2f}", "lo", None),
    ("P4", "lost", "confirmed messages lost", "{:.0f}", "lo", ("abs<=", 0.0)),
    ("P4", "rss_recovered_MB", "RSS after recovery MB", "{:.0f}", "lo", None),
    ("P4", "drain_s", "drain time after restart s", "{:.1f}", "lo", None),
    ("P4", "drain_rate", "drain msg/s", "{:.0f}", "hi", None),
    ("P4", "redelivered", "redelivered flags on drain", "{:.0f}", "", None),
    ("P5", "queues", "queues", "{:.0f}", "", None),
    ("P5", "declare_s", "declare time s", "{:.2f}", "lo", None),
    ("P5", "seq_declare_ms", "declare one at a time (2,000 more), ms each", "{:.2f}", "lo", None),
    ("P5", "rss_empty_MB", "RSS empty broker MB", "{:.0f}", "lo", None),
    ("P5", "rss_idle_MB", "RSS with idle queues MB", "{:.0f}", "lo", None),
    ("P5", "kB_per_queue", "RSS kB per queue", "{:.1f}", "lo", None),
    ("P5", "stop_s", "clean stop s", "{:.2f}", "lo", None),
    ("P5", "accept_s", "restart: accepts connections s", "{:.2f}", "lo", None),
    ("P5", "last_queue_s", "restart: last queue declarable s", "{:.2f}", "lo", None),
    ("P5", "queues_found", "queues found after restart", "{:.0f}", "hi", None),
    ("P5", "rss_restarted_MB", "RSS after restart MB", "{:.0f}", "lo", None),
]


# --------------------------------------------------------------------------- tables
def _f(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    return fmt.format(v)


def med_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    keys = {k for r in rows for k in r["metrics"]}
    for k in keys:
        xs = [r["metrics"][k] for r in rows if isinstance(r["metrics"].get(k), (int, float))
              and r["metrics"][k] == r["metrics"][k]]
        out[k] = statistics.median(xs) if xs else float("nan")
    return out


def verdict(target: tuple[str, float] | None, w: float, r: float | None) -> str:
    if target is None:
        return ""
    kind, val = target
    if w != w:
        return "?"
    if kind == "abs<=":
        return "✔" if w <= val else "✘"
    if r is None or r != r or not r:
        return "?"
    ratio = w / r
    ok = ratio >= val if kind == "ratio>=" else ratio <= val
    return "✔" if ok else "✘"


def markdown(meta: dict[str, Any], runs: list[dict[str, Any]], scen: list[str]) -> str:
    out = ["# warren storage scenarios: warren vs RabbitMQ 3.10", "",
           f"{meta['started']} · scale {meta['scale']} · P1/P2 {meta['duration_s']} s · "
           f"{meta['repeat']} pass(es), medians · fresh broker per scenario · {meta['ncpu']} CPUs · "
           f"warren {meta['warren_commit'][:10]} (+{meta['warren_dirty_files']} modified files)", "",
           "| scen | metric | warren | RabbitMQ | warren / RabbitMQ | target | met |",
           "|---|---|---:|---:|---:|---|:---:|"]
    for s in scen:
        wr = [r for r in runs if r["scenario"] == s and r["broker"] == "warren" and "metrics" in r]
        rr = [r for r in runs if r["scenario"] == s and r["broker"] == "rabbitmq" and "metrics" in r]
        if not wr and not rr:
            continue
        wm, rm = med_metrics(wr) if wr else {}, med_metrics(rr) if rr else {}
        for sc, key, label, fmt, _better, target in METRICS:
            if sc != s:
                continue
            w, r = wm.get(key, float("nan")), rm.get(key) if rm else None
            ratio = "–"
            if r is not None and r == r and r and w == w and _better:
                ratio = f"{w / r:.2f}×"
            tgt = ""
            if target:
                tgt = {"ratio>=": "≥ {}× RabbitMQ", "ratio<=": "≤ {}× RabbitMQ", "abs<=": "≤ {}"}[target[0]]
                tgt = tgt.format(f"{target[1]:g}")
            out.append(f"| {s} | {label} | {_f(w, fmt)} | {_f(r, fmt) if rm else '–'} | {ratio} | {tgt} "
                       f"| {verdict(target, w, r)} |")
    out += ["", "## Problems and notes", ""]
    any_ = False
    for r in runs:
        items = [f"problem: {p}" for p in r.get("problems", [])] + [f"note: {x}" for x in r.get("notes", [])]
        items += [f"log: {x}" for x in r.get("log_issues", [])[:10]]
        if len(r.get("log_issues", [])) > 10:
            items.append(f"log: ... {len(r['log_issues']) - 10} more lines")
        if r.get("error"):
            items.append(f"ERROR: {r['error']}")
        for i in items:
            any_ = True
            out.append(f"* {r['scenario']} {r['broker']} pass {r['pass']}: {i}")
    if not any_:
        out.append("none")
    out += ["", "Scenarios:", ""] + [f"* **{s}** {SCENARIOS[s][0]}" for s in scen]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = ap.add_argument
    a("--only", default="", help="comma list of scenarios: " + ",".join(ALL))
    a("--repeat", type=int, default=1, help="passes; the table shows medians")
    a("--scale", type=float, default=1.0, help="multiply message/queue counts (e.g. 0.1 for a quick test)")
    a("--duration", type=float, default=12.0, help="seconds of the timed runs P1/P2 (default 12)")
    a("--skip-rabbitmq", action="store_true", help="run warren only (RabbitMQ columns stay empty)")
    a("--warren-only", action="store_true", help="alias of --skip-rabbitmq")
    a("--rmq-from", default=None, metavar="JSON",
      help="take RabbitMQ's rows from an earlier results JSON instead of running it (implies --skip-rabbitmq)")
    a("--p3b-size", type=int, default=0, help="P3b body size (default: 100, or 16 if P3 says >6 min)")
    a("--p4-stop", choices=("kill9", "clean"), default="kill9",
      help="how RabbitMQ is stopped in P4 (warren is always SIGKILLed)")
    a("--recovery-timeout", type=float, default=600.0, help="max seconds to wait for a restart (P4, P5)")
    a("--c-tool", default=None, help="amqp-perf binary (default: build a copy in /tmp/stor-amqp-perf)")
    a("--warren-port", type=int, default=0)
    a("--warren-log-level", default="WARNING")
    a("--warren-no-http", action="store_true", help="warren without management/Prometheus listeners")
    a("--rmq-port", type=int, default=5693)
    a("--rmq-mgmt-port", type=int, default=15693)
    a("--rmq-prom-port", type=int, default=15713)
    a("--rmq-dist-port", type=int, default=25693)
    a("--rmq-base", default="/tmp/rmq-stor")
    a("--rmq-nodename", default="rabbitstor@localhost")
    a("--rmq-scripts", default=SHARED_BENCH)
    a("--idle-wait", type=float, default=15.0, help="max seconds to wait for a quiet box before a scenario")
    a("--idle-cores", type=float, default=0.3)
    a("--out-dir", default=os.path.join(HERE, "results"))
    a("--label", default="")
    return ap


def build_tool(explicit: str | None) -> str:
    if explicit:
        return explicit
    d = "/tmp/stor-amqp-perf"
    exe = os.path.join(d, "amqp-perf")
    if not os.access(exe, os.X_OK):
        os.makedirs(d, exist_ok=True)
        for f in ("amqp-perf.c", "Makefile"):
            shutil.copy(os.path.join(SHARED_BENCH, f), d)
        subprocess.run(["make", "-C", d], check=True, stdout=subprocess.DEVNULL)
    return exe


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    only = [x.strip() for x in a.only.split(",") if x.strip()]
    norm = {s.upper(): s for s in ALL}
    bad = [x for x in only if x.upper() not in norm]
    if bad:
        sys.exit(f"unknown scenarios {bad}; choose from {','.join(ALL)}")
    scen = [norm[x.upper()] for x in only] if only else list(ALL)
    skip_rmq = a.skip_rabbitmq or a.warren_only or bool(a.rmq_from)
    tool = build_tool(a.c_tool)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(a.out_dir, exist_ok=True)
    base = os.path.join(a.out_dir, f"storage-{stamp}{'-' + a.label if a.label else ''}")
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv, "scale": a.scale,
            "duration_s": a.duration, "repeat": a.repeat, "tool": tool, "ncpu": os.cpu_count(),
            "uname": " ".join(os.uname()), "warren_commit": git("rev-parse", "HEAD"),
            "warren_dirty_files": len(git("status", "--porcelain", "--untracked-files=no").splitlines()),
            "skip_rabbitmq": skip_rmq, "rmq_from": a.rmq_from, "label": a.label}
    runs: list[dict[str, Any]] = []
    if a.rmq_from:
        with open(a.rmq_from) as f:
            old = json.load(f)
        runs += [dict(r, imported_from=a.rmq_from) for r in old["runs"]
                 if r["broker"] == "rabbitmq" and r["scenario"] in scen]

    def save() -> None:
        with open(base + ".json", "w") as f:
            json.dump({"meta": meta, "runs": runs}, f, indent=1, default=str)

    warren = Warren(a.warren_port or free_port(), http=not a.warren_no_http, log_level=a.warren_log_level)
    rabbit = Rabbit(a)
    current: list[Any] = []
    interrupted = False
    ctx = Ctx(a, tool)

    def on_term(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        for rep in range(a.repeat):
            for k, s in enumerate(scen):
                names = ["warren"] if (skip_rmq or s in WARREN_ONLY) else ["warren", "rabbitmq"]
                if (k + rep) % 2:
                    names.reverse()
                for bn in names:
                    b = warren if bn == "warren" else rabbit
                    ctx.problems, ctx.notes, ctx.phases = [], [], {}
                    row: dict[str, Any] = {"scenario": s, "broker": bn, "pass": rep + 1,
                                           "started": time.strftime("%H:%M:%S")}
                    log(f"[pass {rep + 1}/{a.repeat}] {s} on {bn}: {SCENARIOS[s][0]}")
                    try:
                        row["fresh_start_s"] = round(b.start(keep_data=False), 3)
                        current.append(b)
                        row["waited_for_idle_s"] = wait_idle(b.pids(), 1.0, a.idle_wait, a.idle_cores)
                        t0 = time.monotonic()
                        row["metrics"] = SCENARIOS[s][1](ctx, b)
                        row["wall_s"] = round(time.monotonic() - t0, 1)
                        if not b.alive():
                            ctx.problems.append("broker not running at the end of the scenario")
                    except KeyboardInterrupt:
                        interrupted = True
                        row["error"] = "interrupted"
                    except Exception as e:  # noqa: BLE001 - record and go on with the next run
                        row["error"] = f"{type(e).__name__}: {e}"
                        log(f"    !! {row['error']}")
                    finally:
                        if b in current:
                            b.stop()
                            current.remove(b)
                        row["log_issues"] = b.log_issues()
                        b.wipe()
                    row.update(problems=ctx.problems, notes=ctx.notes, phases=ctx.phases)
                    runs.append(row)
                    m = row.get("metrics", {})
                    log("    " + " ".join(f"{k}={_f(v, '{:.4g}')}" for k, v in m.items()
                                          if isinstance(v, (int, float))))
                    for p in ctx.problems:
                        log(f"    !! {p}")
                    for li in row["log_issues"][:5]:
                        log(f"    log: {li}")
                    save()
                    if interrupted:
                        raise KeyboardInterrupt
    except KeyboardInterrupt:
        log("interrupted; writing what we have")
    finally:
        for b in current:
            b.stop()
            b.wipe()

    md = markdown(meta, runs, scen)
    save()
    with open(base + ".md", "w") as f:
        f.write(md)
    print(md)
    log(f"raw results: {base}.json\nmarkdown:    {base}.md")
    bad_run = any(r.get("problems") or r.get("error") for r in runs if not r.get("imported_from"))
    sys.exit(1 if bad_run else 0)


if __name__ == "__main__":
    main()
