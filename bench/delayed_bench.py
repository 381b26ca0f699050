"""Delayed-message benchmark: memory per pending message and lateness of firing.

Starts its own warren (fresh data directory), declares a durable
``x-delayed-message`` exchange (``x-delayed-type: direct``) bound to a durable
queue, and

1. *load*: publishes N persistent messages (default 1,000,000) with publisher
   confirms through a raw publisher (``bench.perf``'s connection; one frame
   template per message, batches of ``--batch`` messages patched in place).
   Each message's ``x-delay`` makes it due at a random instant of a window of
   ``--window`` seconds that opens ``--lead`` seconds after the start, so all
   N are pending together once the load ends. The body stamps the due time
   (wall clock, µs) as the publisher computed it;
2. reads the broker's VmRSS (``/proc/<pid>/status``) before and after the load:
   growth / N = RAM per pending message;
3. *fire*: a raw no-ack consumer receives what fires and records lateness =
   receive time - stamped due time (p50/p99/p99.9/max), the firing rate, the
   broker's peak RSS and CPU while firing.

The stamped due time is taken before the message is written, so lateness also
includes the publish path's lag (client buffer -> broker), which the broker's
own due time (arrival + x-delay) does not; the publisher keeps at most
``--inflight`` messages unconfirmed so that this stays small. The confirm
latency is printed as an upper bound of that lag.

Usage: ``python -m warren.bench.delayed_bench [-n 1000000] [--window 100] [--lead 45]``
(the window is N / 10,000 s by default: 10,000 msg/s fire).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pamqp import body as pbody
from pamqp import commands, frame, header
from warren.bench.perf import Options, connect

ROOT = Path(__file__).resolve().parent.parent
HDR = struct.Struct(">BHI")
U64 = struct.Struct(">Q")
I32 = struct.Struct(">i")
EXCHANGE = "bench.delayed"
QUEUE = "bench.fired"


# --------------------------------------------------------------------------- broker process
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(data_dir: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "warren.server.main", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data_dir), "--log-level", "WARNING",
           "--management-port", "0", "--prometheus-port", "0"]
    log = open(data_dir.parent / "warren.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("broker did not listen")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- frames
class Frames:
    """Split a byte stream into (type, payload) frames; calls ``on_frame``."""

    def __init__(self, on_frame) -> None:
        self.buf = bytearray()
        self.on_frame = on_frame

    def feed(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        off = 0
        n = len(buf)
        on_frame = self.on_frame
        while n - off >= 8:
            ftype, _ch, size = HDR.unpack_from(buf, off)
            end = off + 8 + size
            if end > n:
                break
            on_frame(ftype, buf, off + 7, size)
            off = end
        if off:
            del buf[:off]


def template(delay_max_ms: int) -> tuple[bytes, int, int]:
    """Publish + header + body frames of one message, and where x-delay and the due stamp go."""
    props = commands.Basic.Properties(headers={"x-delay": delay_max_ms}, delivery_mode=2)
    pub = frame.marshal(commands.Basic.Publish(exchange=EXCHANGE, routing_key="k"), 1)
    hdr = frame.marshal(header.ContentHeader(0, 16, props), 1)
    body = frame.marshal(pbody.ContentBody(b"\0" * 16), 1)
    t = pub + hdr + body
    i = t.index(b"\x07x-delayI") + 9
    assert I32.unpack_from(t, i)[0] == delay_max_ms
    return t, i, len(pub) + len(hdr) + 7


def pct(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


# --------------------------------------------------------------------------- run
async def run(args: argparse.Namespace) -> dict:
    n = args.messages
    window = args.window if args.window else n / 10000.0
    tmp = Path(tempfile.mkdtemp(prefix="warren-delayed-bench-"))
    data = tmp / "data"
    data.mkdir()
    port = free_port()
    proc = start_broker(data, port)
    res: dict = {"messages": n, "window_s": window, "lead_s": args.lead}
    try:
        opt = Options()
        opt.host, opt.port = "127.0.0.1", port
        setup = await connect(opt, "setup")
        await setup.rpc(commands.Exchange.Declare(exchange=EXCHANGE, exchange_type="x-delayed-message", durable=True,
                                                  arguments={"x-delayed-type": "direct"}), commands.Exchange.DeclareOk)
        await setup.rpc(commands.Queue.Declare(queue=QUEUE, durable=True), commands.Queue.DeclareOk)
        await setup.rpc(commands.Queue.Bind(queue=QUEUE, exchange=EXCHANGE, routing_key="k"), commands.Queue.BindOk)

        # consumer: no-ack, records lateness (µs) per message
        cons = await connect(opt, "consumer")
        await cons.rpc(commands.Basic.Consume(queue=QUEUE, no_ack=True), commands.Basic.ConsumeOk)
        late: list[float] = []
        got = [0]
        recv_times: list[float] = []
        all_in = asyncio.get_running_loop().create_future()

        def on_cons_frame(ftype: int, buf: bytearray, at: int, size: int) -> None:
            if ftype == 3:
                now_us = time.time() * 1e6
                late.append(now_us - U64.unpack_from(buf, at)[0])
                got[0] += 1
                if got[0] % 10000 == 0:
                    recv_times.append(time.monotonic())
                if got[0] >= n and not all_in.done():
                    all_in.set_result(None)

        cf = Frames(on_cons_frame)

        def cons_data(data: bytes) -> None:
            cf.feed(data)

        cons.handler = cons_data
        rest = cons.take_rest()
        if rest:
            cf.feed(rest)

        # publisher with confirms
        pub = await connect(opt, "publisher")
        await pub.rpc(commands.Confirm.Select(), commands.Confirm.SelectOk)
        confirmed = [0]
        nacked = [0]
        conf_event = asyncio.Event()

        def on_pub_frame(ftype: int, buf: bytearray, at: int, size: int) -> None:
            if ftype == 1:
                cls, meth = struct.unpack_from(">HH", buf, at)
                if cls == 60 and meth in (80, 120):
                    (tag,) = struct.unpack_from(">Q", buf, at + 4)
                    if meth == 120:
                        nacked[0] += 1
                    confirmed[0] = max(confirmed[0], tag)  # multiple or single: in order here
                    conf_event.set()

        pf = Frames(on_pub_frame)
        pub.handler = pf.feed
        rest = pub.take_rest()
        if rest:
            pf.feed(rest)

        await asyncio.sleep(1.0)
        pid = proc.pid
        rss0 = rss_bytes(pid)
        res["rss_before"] = rss0
        t_start = time.time()
        open_at = t_start + args.lead  # the window opens here (wall clock)
        delay_max = max(100_000, int((args.lead + window) * 1000) + 1000)  # 32-bit in the header
        tmpl, off_delay, off_body = template(delay_max)
        tlen = len(tmpl)
        batch = args.batch
        rnd = random.Random(7)
        sent = 0
        lag: list[float] = []
        pending_batches: list[tuple[int, float]] = []
        t_load0 = time.monotonic()
        while sent < n:
            k = min(batch, n - sent)
            while sent - confirmed[0] + k > args.inflight:
                conf_event.clear()
                await conf_event.wait()
                now_m = time.monotonic()
                while pending_batches and pending_batches[0][0] <= confirmed[0]:
                    lag.append(now_m - pending_batches.pop(0)[1])
            buf = bytearray(tmpl * k)
            now_ms = time.time() * 1000.0
            base_us = int(now_ms * 1000)
            for j in range(k):
                due_ms = open_at * 1000.0 + rnd.random() * window * 1000.0
                delay = int(due_ms - now_ms)
                if delay < 1:
                    delay = 1
                I32.pack_into(buf, j * tlen + off_delay, delay)
                U64.pack_into(buf, j * tlen + off_body, base_us + delay * 1000)
            pub.write(buf)
            sent += k
            pending_batches.append((sent, time.monotonic()))
            await pub.drain()
        while confirmed[0] < n:
            conf_event.clear()
            await asyncio.wait_for(conf_event.wait(), 60)
        now_m = time.monotonic()
        for _s, t in pending_batches:
            lag.append(now_m - t)
        t_load = time.monotonic() - t_load0
        res["load_s"] = t_load
        res["publish_rate"] = n / t_load
        res["nacked"] = nacked[0]
        lag.sort()
        res["confirm_latency_ms"] = {"p50": pct(lag, 0.5) * 1000, "p99": pct(lag, 0.99) * 1000}
        res["fired_during_load"] = got[0]
        await asyncio.sleep(1.0)
        rss1 = rss_bytes(pid)
        res["rss_loaded"] = rss1
        res["bytes_per_pending"] = (rss1 - rss0) / n
        store_bytes = sum(f.stat().st_size for f in (data / "delayed").rglob("*") if f.is_file())
        res["store_bytes"] = store_bytes
        if time.time() > open_at:
            print(f"warning: the load took longer than --lead ({t_load:.1f}s): messages fired during the load",
                  file=sys.stderr)
        # firing
        peak = rss1
        cpu0 = cpu_seconds(pid)
        t_fire0 = None
        deadline = open_at + window + 60
        while not all_in.done() and time.time() < deadline:
            await asyncio.sleep(0.5)
            peak = max(peak, rss_bytes(pid))
            if t_fire0 is None and got[0]:
                t_fire0 = time.monotonic()
        cpu1 = cpu_seconds(pid)
        fire_s = max(1e-9, window)
        res["received"] = got[0]
        res["rss_peak_firing"] = peak
        res["rss_after"] = rss_bytes(pid)
        res["broker_cpu_pct_firing"] = 100.0 * (cpu1 - cpu0) / max(1e-9, (time.time() - open_at) if got[0] else 1)
        res["fire_rate"] = got[0] / fire_s
        if len(recv_times) > 2:
            res["fire_rate_observed"] = (len(recv_times) - 1) * 10000 / (recv_times[-1] - recv_times[0])
        late_ms = sorted(x / 1000.0 for x in late)
        res["lateness_ms"] = {"p50": pct(late_ms, 0.5), "p99": pct(late_ms, 0.99),
                              "p999": pct(late_ms, 0.999), "max": late_ms[-1] if late_ms else float("nan"),
                              "min": late_ms[0] if late_ms else float("nan")}
        for c in (setup, cons, pub):
            if c.transport is not None:
                c.transport.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return res


def table(r: dict) -> str:
    mb = 1024 * 1024
    lat = r.get("lateness_ms", {})
    rows = [
        ("pending messages", f"{r['messages']:,}"),
        ("due window", f"{r['window_s']:.0f} s (opens {r['lead_s']:.0f} s after start) -> "
                       f"{r['messages'] / r['window_s']:,.0f} msg/s fire"),
        ("load: publish rate (confirmed, persistent)", f"{r['publish_rate']:,.0f} msg/s in {r['load_s']:.1f} s"),
        ("load: confirm latency p50 / p99", f"{r['confirm_latency_ms']['p50']:.1f} / {r['confirm_latency_ms']['p99']:.1f} ms"),
        ("broker RSS before load", f"{r['rss_before'] / mb:.1f} MiB"),
        ("broker RSS with all pending", f"{r['rss_loaded'] / mb:.1f} MiB"),
        ("RSS growth per pending message", f"{r['bytes_per_pending']:.0f} bytes"),
        ("delayed store on disk", f"{r['store_bytes'] / mb:.1f} MiB ({r['store_bytes'] / r['messages']:.0f} bytes/msg)"),
        ("broker RSS peak while firing", f"{r['rss_peak_firing'] / mb:.1f} MiB"),
        ("received / fired during load", f"{r['received']:,} / {r['fired_during_load']:,}"),
        ("observed fire rate", f"{r.get('fire_rate_observed', float('nan')):,.0f} msg/s"),
        ("broker CPU while firing", f"{r['broker_cpu_pct_firing']:.0f} %"),
        ("lateness p50 / p99", f"{lat.get('p50', float('nan')):.1f} / {lat.get('p99', float('nan')):.1f} ms"),
        ("lateness p99.9 / max / min", f"{lat.get('p999', float('nan')):.1f} / {lat.get('max', float('nan')):.1f} / "
                                       f"{lat.get('min', float('nan')):.1f} ms"),
    ]
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--messages", type=int, default=1_000_000)
    p.add_argument("--window", type=float, default=0.0, help="seconds the due times spread over (default N/10000)")
    p.add_argument("--lead", type=float, default=45.0, help="seconds from start until the window opens")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--inflight", type=int, default=300)
    p.add_argument("--json", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the data directory")
    args = p.parse_args(argv)
    try:
        import uvloop

        r = uvloop.run(run(args))
    except ImportError:
        r = asyncio.run(run(args))
    print(table(r))
    if args.json:
        print(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
