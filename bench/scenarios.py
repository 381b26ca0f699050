"""Side-by-side scenario runner: warren vs RabbitMQ (and any other broker) in one run.

    python -m warren.bench.scenarios                          # S1..S7, both brokers, 1 pass, 12 s each
    python -m warren.bench.scenarios --repeat 3 --only S1,S3 --duration 8 --tool perf

For every pass and scenario the brokers run back to back (the order alternates per scenario and
pass, so that noise from neighbours hits both), and the runner measures around each load run:

* throughput (publish and consume msg/s) and end-to-end latency p50/p99 from the load tool
  (``amqp-perf`` in C, or ``warren-perf``: same options, same JSON);
* broker CPU: utime+stime from ``/proc/<pid>/stat`` of the broker process and all its descendants
  (plus reaped children), before/after, per million messages delivered (for fanout every copy counts);
* broker peak RSS: sum of VmRSS of the broker process tree, sampled every 0.25 s.

warren is started by the runner (``python -m warren.server.main --host 127.0.0.1 --port P --data-dir <fresh
tmp>``); RabbitMQ with the shared ``start-rabbitmq.sh``/``stop-rabbitmq.sh`` on private ports and a
private node name; ``--broker-cmd 'NAME=CMD {port} {data_dir}'`` plugs in any other broker.
Brokers are fresh per pass (default) or per scenario (``--fresh scenario``).
Medians over ``--repeat`` passes go into a ratio table (broker / baseline, baseline = RabbitMQ);
raw results are written as JSON and the tables as markdown under ``bench/results/``.
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
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from warren.bench.ports import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED_BENCH = "/work/shared/bench"
CLK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- scenarios
@dataclass(frozen=True)
class Scenario:
    """One load scenario: load-tool arguments (without --uri/--time/--label/--cleanup)."""

    name: str
    description: str
    args: tuple[str, ...]
    ordered: bool = True  # messages must arrive in publish order (not for priority queues)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("S1", "1P/1C transient 16 B, autoack, unlimited rate",
             ("--producers", "1", "--consumers", "1", "--size", "16", "--autoack", "--queue", "s1")),
    Scenario("S2", "1P/1C 1 KiB, manual ack, prefetch 100, multi-ack every 10",
             ("--producers", "1", "--consumers", "1", "--size", "1024", "--prefetch", "100",
              "--multi-ack-every", "10", "--queue", "s2")),
    Scenario("S3", "1P/1C persistent 1 KiB, durable queue, confirms window 100, prefetch 100, ack each",
             ("--producers", "1", "--consumers", "1", "--size", "1024", "--persistent", "--durable",
              "--confirm", "100", "--prefetch", "100", "--queue", "s3")),
    Scenario("S4", "4P/4C on 4 queues, 256 B, prefetch 100, multi-ack every 10",
             ("--producers", "4", "--consumers", "4", "--queues", "4", "--size", "256", "--prefetch",
              "100", "--multi-ack-every", "10", "--queue", "s4")),
    Scenario("S5", "fanout 1P -> 10 queues/10C, 128 B, prefetch 100, multi-ack every 10",
             ("--producers", "1", "--consumers", "10", "--fanout", "10", "--size", "128", "--prefetch",
              "100", "--multi-ack-every", "10", "--queue", "s5")),
    Scenario("S6", "latency: 1P/1C 256 B at a fixed 5,000 msg/s, prefetch 100, ack each",
             ("--producers", "1", "--consumers", "1", "--size", "256", "--rate", "5000", "--prefetch",
              "100", "--queue", "s6")),
    Scenario("S7", "priority queue x-max-priority 10, random priorities 0-9, 1P/1C 128 B, prefetch 100",
             ("--producers", "1", "--consumers", "1", "--size", "128", "--priority-max", "10",
              "--prefetch", "100", "--multi-ack-every", "10", "--queue", "s7"), ordered=False),
)


# --------------------------------------------------------------------------- /proc
def _stat(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    return {"ppid": int(rest[1]), "utime": int(rest[11]), "stime": int(rest[12]),
            "cutime": int(rest[13]), "cstime": int(rest[14])}


def descendants(root: int) -> list[int]:
    """``root`` and every live descendant."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(_stat(int(d))["ppid"], []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def last_json(stdout: str) -> dict[str, Any] | None:
    """The last line of a load tool's output that parses as JSON (its result), if any."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def tree_cpu_s(pids: list[int]) -> float:
    """utime+stime (s) of the process trees, plus the reaped children of the roots."""
    total = 0
    for root in pids:
        for p in descendants(root):
            try:
                st = _stat(p)
            except OSError:
                continue
            total += st["utime"] + st["stime"]
            if p == root:
                total += st["cutime"] + st["cstime"]
    return total / CLK


def tree_rss_kb(pids: list[int]) -> int:
    """Sum of VmRSS (kB) over the process trees."""
    total = 0
    for root in pids:
        for p in descendants(root):
            try:
                with open(f"/proc/{p}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
                            break
            except OSError:
                pass
    return total


def machine_busy() -> tuple[int, int]:
    """(total, idle) jiffies from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]


class RssSampler(threading.Thread):
    """Peak of tree_rss_kb, sampled every 0.25 s."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.peak = max(self.peak, tree_rss_kb(self.pids))
            self.halt.wait(0.25)


def wait_idle(pids: list[int], min_pause: float, max_wait: float, machine_cores: float,
              per_process: bool = False) -> float:
    """Sleep min_pause, then until the broker uses <5 % of a core (of each process, with
    ``per_process``) and the machine < machine_cores over 1 s (at most max_wait s).
    Returns the seconds waited."""
    quiet = 0.05 * max(1, len(pids)) if per_process else 0.05
    t0 = time.monotonic()
    time.sleep(min_pause)
    while time.monotonic() - t0 < max_wait:
        c0, m0 = tree_cpu_s(pids), machine_busy()
        time.sleep(1.0)
        c1, m1 = tree_cpu_s(pids), machine_busy()
        busy = ((m1[0] - m0[0]) - (m1[1] - m0[1])) / CLK
        if c1 - c0 < quiet and busy < machine_cores:
            break
    return round(time.monotonic() - t0, 1)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on host:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


# --------------------------------------------------------------------------- brokers
class Broker:
    """A broker the runner can start, measure (PIDs) and stop."""

    name = "broker"
    port = 0

    @property
    def uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        raise NotImplementedError

    def alive(self) -> bool:
        return all(os.path.exists(f"/proc/{p}") for p in self.pids())


class CmdBroker(Broker):
    """A broker started from a command line with ``{port}`` and ``{data_dir}`` placeholders.

    The started process (own session) and its descendants are measured; stop = SIGTERM to its
    process group, SIGKILL after 30 s.  The data dir is a fresh temp dir per start.
    """

    def __init__(self, name: str, cmd: str, port: int, cwd: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name, self.cmd, self.port, self.cwd = name, cmd, port, cwd
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.data_dir: str | None = None
        self.log_path = os.path.join(tempfile.gettempdir(), f"scen-{name}-{port}.log")

    def start(self) -> None:
        if port_open(self.port):
            raise RuntimeError(f"{self.name}: port {self.port} is already in use")
        self.data_dir = tempfile.mkdtemp(prefix=f"scen-{self.name}-")
        cmd = self.cmd.format(port=self.port, data_dir=self.data_dir, python=shlex.quote(sys.executable))
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the broker
        log.write(f"\n=== {time.strftime('%H:%M:%S')} {cmd}\n".encode())
        log.flush()
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(cmd, shell=True, cwd=self.cwd, stdout=log, stderr=log, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited during startup (rc {self.proc.returncode}); "
                                   f"see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name}: port {self.port} not open after 60 s")
            time.sleep(0.1)
        time.sleep(1.0)  # a broker that dies right after binding (e.g. a failing plugin) is caught here
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited right after startup (rc {self.proc.returncode}); "
                               f"see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        self.proc = None
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []


class WarrenBroker(CmdBroker):
    """warren from this checkout: ``python -m server.main`` with a fresh data dir.

    Its management and Prometheus listeners (enabled, like RabbitMQ's plugins) get free ports through
    WARREN_MANAGEMENT_PORT / WARREN_PROMETHEUS_PORT, so they never collide with a RabbitMQ on
    15672/15692; ``http=False`` sets both to 0 (disabled).
    """

    def __init__(self, port: int, http: bool = True) -> None:
        env = {"WARREN_MANAGEMENT_PORT": str(free_port() if http else 0),
               "WARREN_PROMETHEUS_PORT": str(free_port() if http else 0),
               "WARREN_LOG_LEVEL": "WARNING"}
        super().__init__("warren", "{python} -m warren.server.main --host 127.0.0.1 --port {port} "
                         "--data-dir {data_dir}", port, cwd=REPO, env=env)


class RabbitBroker(Broker):
    """RabbitMQ via the shared start/stop scripts, on private ports and a private node name."""

    name = "rabbitmq"

    def __init__(self, scripts: str, base: str, port: int, mgmt_port: int, prom_port: int,
                 dist_port: int, nodename: str, plugins: str | None) -> None:
        self.scripts, self.base, self.port = scripts, base, port
        self.env = dict(os.environ, RMQ_BENCH_BASE=base, RMQ_PORT=str(port),
                        RMQ_MGMT_PORT=str(mgmt_port), RMQ_PROM_PORT=str(prom_port),
                        RMQ_DIST_PORT=str(dist_port), RMQ_NODENAME=nodename)
        if plugins:
            self.env["RMQ_PLUGINS"] = plugins

    def start(self) -> None:
        p = subprocess.run([os.path.join(self.scripts, "start-rabbitmq.sh")], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0 or not self.pids():
            raise RuntimeError(f"start-rabbitmq.sh failed (rc {p.returncode}):\n{p.stdout[-2000:]}")

    def stop(self) -> None:
        subprocess.run([os.path.join(self.scripts, "stop-rabbitmq.sh")], env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def pids(self) -> list[int]:
        try:
            with open(os.path.join(self.base, "rabbit.pid")) as f:
                return [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            return []


# --------------------------------------------------------------------------- one run
def find_c_tool(explicit: str | None) -> str | None:
    """Path of a built amqp-perf: --c-tool, bench/amqp-perf, the shared dir, /tmp/amqp-perf."""
    for p in ([explicit] if explicit else []) + [
        os.path.join(HERE, "amqp-perf"), os.path.join(SHARED_BENCH, "amqp-perf"), "/tmp/amqp-perf/amqp-perf",
    ]:
        if p and os.access(p, os.X_OK):
            return p
    return None


def tool_cmd(tool: str, c_tool: str | None) -> list[str]:
    """argv prefix of the load generator."""
    if tool == "c":
        if not c_tool:
            sys.exit("C amqp-perf not built: make -C /work/shared/bench (or copy amqp-perf.c + Makefile "
                     "to /tmp/amqp-perf and make there), or use --tool perf")
        return [c_tool]
    return [sys.executable, "-m", "warren.bench.perf", "--json"]


def run_one(broker: Broker, sc: Scenario, tool_argv: list[str], duration: float,
            idle_wait: float, machine_cores: float, label: str) -> dict[str, Any]:
    """One load run against one broker, with CPU/RSS measurement around it."""
    pids = broker.pids()
    waited = wait_idle(pids, 1.0, idle_wait, machine_cores)
    cmd = tool_argv + ["--uri", broker.uri, "--label", label, "--max-time", str(max(60.0, duration * 5)),
                       "--time", str(duration), "--cleanup", *sc.args]
    rss0 = tree_rss_kb(pids)
    sampler = RssSampler(pids)
    sampler.start()
    m0, c0 = machine_busy(), tree_cpu_s(pids)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                       timeout=duration * 5 + 120)
    wall = time.monotonic() - t0
    c1, m1 = tree_cpu_s(pids), machine_busy()
    sampler.halt.set()
    sampler.join()
    rss1 = tree_rss_kb(pids)
    res = last_json(p.stdout)
    tot, idle = m1[0] - m0[0], m1[1] - m0[1]
    cli = (res or {}).get("client_cpu_s", {})
    other = (tot - idle) / CLK - (c1 - c0) - cli.get("user", 0) - cli.get("sys", 0)
    return {
        "scenario": sc.name, "broker": broker.name, "cmd": " ".join(shlex.quote(x) for x in cmd),
        "rc": p.returncode, "stderr_tail": p.stderr[-4000:], "wall_s": round(wall, 3),
        "waited_for_idle_s": waited, "broker_cpu_s": round(c1 - c0, 3),
        "broker_rss_kb": {"start": rss0, "peak": max(sampler.peak, rss0, rss1), "end": rss1},
        "machine_busy_pct": round(100.0 * (tot - idle) / tot, 1) if tot else None,
        "other_cpu_s": round(other, 2), "broker_alive_after": broker.alive(), "result": res,
    }


def values(r: dict[str, Any], sc: Scenario) -> dict[str, Any]:
    """Table values of one run, plus the list of correctness problems it showed."""
    res = r.get("result") or {}
    lat = res.get("latency_us", {})
    clat = res.get("confirm_latency_us", {})
    sent, recv = res.get("sent", 0), res.get("received", 0)
    cpu = r["broker_cpu_s"]
    nan = float("nan")
    issues = []
    if r["rc"] != 0:
        issues.append(f"rc={r['rc']}")
    if not res:
        issues.append("no result")
    if res.get("errors"):
        issues.append(f"errors={res['errors']}: {res.get('first_error', '')}")
    for k in ("protocol_anomalies", "redelivered", "unconfirmed", "nacked", "no_timestamp"):
        if res.get(k):
            issues.append(f"{k}={res[k]}")
    if sc.ordered and res.get("out_of_order"):
        issues.append(f"out_of_order={res['out_of_order']}")
    if not r.get("broker_alive_after", True):
        issues.append("broker died")
    return {
        "pub": res.get("publish_rate", 0.0), "cons": res.get("consume_rate", 0.0),
        "p50": lat["p50"] / 1e3 if lat.get("count") else nan,
        "p99": lat["p99"] / 1e3 if lat.get("count") else nan,
        "conf_p50": clat["p50"] / 1e3 if clat.get("count") else nan,
        "cpu_s": cpu,
        "cpu_per_M": cpu / (recv / 1e6) if recv else (cpu / (sent / 1e6) if sent else nan),
        "cpu_per_M_pub": cpu / (sent / 1e6) if sent else nan,
        "rss_MB": r["broker_rss_kb"]["peak"] / 1024,
        "client_cpu_s": sum((res.get("client_cpu_s") or {}).values()),
        "busy_pct": r.get("machine_busy_pct") or 0.0,
        "issues": issues,
    }


# --------------------------------------------------------------------------- tables
COLS = [("pub", "publish msg/s", "{:.0f}"), ("cons", "consume msg/s", "{:.0f}"),
        ("p50", "lat p50 ms", "{:.2f}"), ("p99", "lat p99 ms", "{:.2f}"),
        ("conf_p50", "confirm p50 ms", "{:.2f}"), ("cpu_per_M", "CPU-s/M msgs", "{:.1f}"),
        ("rss_MB", "peak RSS MB", "{:.0f}")]
# for these a smaller value is better
LOWER_BETTER = {"p50", "p99", "conf_p50", "cpu_per_M", "rss_MB"}


def _fmt(v: Any, f: str) -> str:
    return "–" if v is None or (isinstance(v, float) and v != v) else f.format(v)


def medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each numeric column over passes (NaN dropped); issues concatenated."""
    m: dict[str, Any] = {}
    for k, _, _ in COLS + [("cpu_s", "", ""), ("client_cpu_s", "", ""), ("busy_pct", "", ""),
                           ("cpu_per_M_pub", "", "")]:
        xs = [r[k] for r in rows if r[k] == r[k]]
        m[k] = statistics.median(xs) if xs else float("nan")
    m["issues"] = sorted({i for r in rows for i in r["issues"]})
    m["n"] = len(rows)
    return m


def markdown(meta: dict[str, Any], scen: list[Scenario], brokers: list[str], baseline: str,
             med: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Ratio table + per-broker medians as markdown."""
    out = [f"# warren bench: {' vs '.join(brokers)}", "",
           f"{meta['started']} · tool `{meta['tool']}` · {meta['duration_s']} s per run · "
           f"{meta['repeat']} pass(es) (medians) · fresh broker per {meta['fresh']} · "
           f"{meta['ncpu']} CPUs ({meta['cpu_model']})", ""]
    others = [b for b in brokers if b != baseline]
    if baseline in brokers and others:
        for b in others:
            out += [f"## Ratio {b} / {baseline} (throughput: >1 is better for {b}; latency, CPU, RSS: "
                    f"<1 is better for {b})", "",
                    "| scen | " + " | ".join(h for _, h, _ in COLS) + " |",
                    "|---|" + "---:|" * len(COLS)]
            for sc in scen:
                a, z = med.get(sc.name, {}).get(b), med.get(sc.name, {}).get(baseline)
                cells = []
                for k, _, _ in COLS:
                    if a is None or z is None or a[k] != a[k] or z[k] != z[k] or not z[k]:
                        cells.append("–")
                    else:
                        cells.append(f"{a[k] / z[k]:.2f}×")
                out.append(f"| {sc.name} | " + " | ".join(cells) + " |")
            out.append("")
    out += ["## Medians", "",
            "| scen | broker | " + " | ".join(h for _, h, _ in COLS) + " | broker CPU-s | client CPU-s "
            "| machine busy % | problems |",
            "|---|---|" + "---:|" * (len(COLS) + 3) + "---|"]
    for sc in scen:
        for b in brokers:
            m = med.get(sc.name, {}).get(b)
            if m is None:
                continue
            cells = [_fmt(m[k], f) for k, _, f in COLS]
            prob = "; ".join(m["issues"]) if m["issues"] else "none"
            out.append(f"| {sc.name} | {b} | " + " | ".join(cells)
                       + f" | {_fmt(m['cpu_s'], '{:.1f}')} | {_fmt(m['client_cpu_s'], '{:.1f}')} "
                       f"| {_fmt(m['busy_pct'], '{:.0f}')} | {prob} |")
    out += ["", "Scenarios:", ""]
    out += [f"* **{sc.name}** {sc.description}: `{' '.join(sc.args)}`" for sc in scen]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """argparse parser of the scenario runner."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = ap.add_argument
    a("--tool", choices=("perf", "c"), default=None,
      help="load generator: c = amqp-perf (default if built), perf = warren-perf")
    a("--c-tool", default=None, help="path of the amqp-perf binary")
    a("--repeat", type=int, default=1, help="passes; tables show medians")
    a("--only", default="", help="comma list of scenarios, e.g. S1,S3")
    a("--duration", type=float, default=12.0, help="seconds per load run (default 12)")
    a("--fresh", choices=("pass", "scenario"), default="pass",
      help="start fresh brokers per pass (default) or per scenario")
    a("--brokers", default="warren,rabbitmq",
      help="comma list of brokers to run: warren, rabbitmq and NAMEs from --broker-cmd")
    a("--broker-cmd", action="append", default=[], metavar="NAME=CMD",
      help="another broker: shell command with {port} and {data_dir} placeholders (and {python}); "
           "e.g. 'lavinmq=lavinmq --bind 127.0.0.1 --amqp-port {port} --data-dir {data_dir}'. "
           "Added to --brokers automatically.")
    a("--baseline", default="rabbitmq", help="denominator of the ratio table")
    a("--warren-port", type=int, default=0, help="warren's port (default: a free one)")
    a("--warren-no-http", action="store_true",
      help="start warren without its management/Prometheus listeners (default: on, free ports)")
    a("--rmq-port", type=int, default=5692)
    a("--rmq-mgmt-port", type=int, default=15693)
    a("--rmq-prom-port", type=int, default=15694)
    a("--rmq-dist-port", type=int, default=25693)
    a("--rmq-base", default="/tmp/rmq-scen")
    a("--rmq-nodename", default="rabbitscen@localhost")
    a("--rmq-plugins", default=None, help="RMQ_PLUGINS for start-rabbitmq.sh (e.g. none)")
    a("--rmq-scripts", default=SHARED_BENCH, help="dir with start-rabbitmq.sh/stop-rabbitmq.sh")
    a("--idle-wait", type=float, default=15.0,
      help="max seconds to wait for a quiet broker+machine before each run (default 15)")
    a("--idle-cores", type=float, default=0.3,
      help="'quiet machine' = less than this many busy cores over 1 s (default 0.3)")
    a("--out-dir", default=os.path.join(HERE, "results"))
    a("--label", default="", help="free text for the file names and JSON")
    return ap


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the scenarios against all brokers, print and write the tables."""
    a = build_parser().parse_args(argv)
    c_tool = find_c_tool(a.c_tool)
    tool = a.tool or ("c" if c_tool else "perf")
    tool_argv = tool_cmd(tool, c_tool)
    only = {x.strip().upper() for x in a.only.split(",") if x.strip()}
    scen = [s for s in SCENARIOS if not only or s.name in only]
    if only - {s.name for s in SCENARIOS}:
        sys.exit(f"unknown scenarios: {sorted(only - {s.name for s in SCENARIOS})}")

    extra: dict[str, str] = {}
    for spec in a.broker_cmd:
        if "=" not in spec:
            sys.exit(f"--broker-cmd wants NAME=CMD, got {spec!r}")
        n, c = spec.split("=", 1)
        extra[n.strip()] = c
    names = [b.strip() for b in a.brokers.split(",") if b.strip()]
    names += [n for n in extra if n not in names]
    brokers: dict[str, Broker] = {}
    for n in names:
        if n in extra:  # --broker-cmd may also replace the built-in warren/rabbitmq
            brokers[n] = CmdBroker(n, extra[n], free_port())
        elif n == "warren":
            brokers[n] = WarrenBroker(a.warren_port or free_port(), http=not a.warren_no_http)
        elif n == "rabbitmq":
            brokers[n] = RabbitBroker(a.rmq_scripts, a.rmq_base, a.rmq_port, a.rmq_mgmt_port,
                                      a.rmq_prom_port, a.rmq_dist_port, a.rmq_nodename, a.rmq_plugins)
        else:
            sys.exit(f"unknown broker {n!r} (use --broker-cmd {n}=...)")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(a.out_dir, exist_ok=True)
    base = os.path.join(a.out_dir, f"scen-{stamp}{'-' + a.label if a.label else ''}")
    cpu_model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "tool": " ".join(tool_argv), "tool_kind": tool,
            "duration_s": a.duration, "repeat": a.repeat, "fresh": a.fresh, "brokers": names,
            "baseline": a.baseline, "ncpu": os.cpu_count(), "cpu_model": cpu_model,
            "uname": " ".join(os.uname()), "label": a.label, "argv": sys.argv,
            "scenarios": {s.name: {"description": s.description, "args": list(s.args)} for s in scen}}
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    meta["warren_commit"] = git("rev-parse", "HEAD")
    meta["warren_dirty_files"] = len(git("status", "--porcelain", "--untracked-files=no").splitlines())
    runs: list[dict[str, Any]] = []

    def save() -> None:
        with open(base + ".json", "w") as f:
            json.dump({"meta": meta, "runs": runs}, f, indent=1)

    running: set[str] = set()

    def start(n: str) -> None:
        print(f"  starting {n} ...", file=sys.stderr, flush=True)
        brokers[n].start()
        running.add(n)

    def stop(n: str) -> None:
        if n in running:
            brokers[n].stop()
            running.discard(n)

    try:
        for rep in range(a.repeat):
            if a.fresh == "pass":
                for n in names:
                    start(n)
            for k, sc in enumerate(scen):
                order = names if (k + rep) % 2 == 0 else list(reversed(names))
                for n in order:
                    if a.fresh == "scenario":
                        start(n)
                    b = brokers[n]
                    if not b.alive():
                        print(f"!! {n} is not running; restarting it", file=sys.stderr)
                        stop(n)
                        start(n)
                    print(f"[pass {rep + 1}/{a.repeat}] {sc.name} on {n}: {sc.description}",
                          file=sys.stderr, flush=True)
                    r = run_one(b, sc, tool_argv, a.duration, a.idle_wait, a.idle_cores,
                                f"{sc.name}-{n}-{rep + 1}")
                    r["pass"] = rep + 1
                    runs.append(r)
                    v = values(r, sc)
                    print(f"    pub {v['pub']:.0f}/s cons {v['cons']:.0f}/s p50 {v['p50']:.2f} ms "
                          f"p99 {v['p99']:.2f} ms cpu {v['cpu_s']:.1f} s ({v['cpu_per_M']:.1f}/M) "
                          f"rss {v['rss_MB']:.0f} MB waited {r['waited_for_idle_s']} s"
                          + (f"\n    !! {'; '.join(v['issues'])}" if v["issues"] else ""),
                          file=sys.stderr, flush=True)
                    if v["issues"]:
                        print("    " + r["stderr_tail"][-800:].replace("\n", "\n    "), file=sys.stderr)
                    save()
                    if a.fresh == "scenario":
                        stop(n)
            if a.fresh == "pass":
                for n in names:
                    stop(n)
    except KeyboardInterrupt:
        print("interrupted; writing what we have", file=sys.stderr)
    finally:
        for n in list(running):
            stop(n)

    med: dict[str, dict[str, dict[str, Any]]] = {}
    for sc in scen:
        for n in names:
            rows = [values(r, sc) for r in runs if r["scenario"] == sc.name and r["broker"] == n]
            if rows:
                med.setdefault(sc.name, {})[n] = medians(rows)
    md = markdown(meta, scen, names, a.baseline, med)
    with open(base + ".json", "w") as f:
        json.dump({"meta": meta, "runs": runs, "medians": med}, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(md)
    print(md)
    print(f"raw results: {base}.json\nmarkdown:    {base}.md", file=sys.stderr)
    bad = any(m["issues"] for per in med.values() for m in per.values())
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
