"""``warrenctl``: a command-line client of warren's management API.

Talks HTTP (stdlib ``urllib``) to the management listener, so it works against
any warren (or RabbitMQ) node reachable over HTTP::

    warrenctl list queues
    warrenctl declare queue orders --durable --arguments '{"x-max-priority": 3}'
    warrenctl publish amq.direct key 'hello' --property message_id=42
    warrenctl get orders --count 2
    warrenctl trace 42
    warrenctl export defs.json ; warrenctl import defs.json
    warrenctl --format json list connections
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

LIST_COLUMNS = {
    "queues": ["vhost", "name", "type", "durable", "messages_ready", "messages_unacknowledged", "consumers"],
    "exchanges": ["vhost", "name", "type", "durable", "auto_delete", "internal"],
    "bindings": ["vhost", "source", "destination", "destination_type", "routing_key"],
    "connections": ["name", "user", "vhost", "channels", "state", "recv_oct", "send_oct"],
    "channels": ["name", "user", "vhost", "consumer_count", "messages_unacknowledged", "prefetch_count"],
    "consumers": ["queue.vhost", "queue.name", "consumer_tag", "ack_required", "prefetch_count", "channel_details.name"],
    "vhosts": ["name", "messages", "tracing"],
    "users": ["name", "tags"],
    "permissions": ["user", "vhost", "configure", "write", "read"],
    "policies": ["vhost", "name", "pattern", "apply-to", "priority", "definition"],
}


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class Client:
    """Minimal management API client."""

    def __init__(self, base: str, user: str, password: str, timeout: float = 30.0) -> None:
        self.base = base.rstrip("/")
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + "/api/" + path, data=data, method=method)
        req.add_header("Authorization", self.auth)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode(errors="replace")) from None
        return json.loads(raw) if raw else None


def q(s: str) -> str:
    return quote(s, safe="")


def _col(item: dict[str, Any], col: str) -> Any:
    cur: Any = item
    for part in col.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part, "")
    return cur


def _cell(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table (header, separator, one line per row)."""
    cells = [[_cell(_col(r, c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines.extend(" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(lines)


def emit(data: Any, fmt: str, columns: list[str] | None = None) -> None:
    if fmt == "json" or columns is None:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(table(data if isinstance(data, list) else [data], columns))


def _timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        ts = datetime.fromtimestamp(e["ts"], UTC).strftime("%H:%M:%S.%f")[:-3]
        detail = {k: v for k, v in e.items() if k not in ("ts", "vhost", "message_id", "event")}
        out.append({"time": ts, "event": e["event"], "vhost": e["vhost"],
                    "detail": " ".join(f"{k}={_cell(v)}" for k, v in sorted(detail.items()))})
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="warrenctl", description="warren management CLI (uses the HTTP API)")
    p.add_argument("--url", default=os.environ.get("WARREN_MGMT_URL"), help="management base URL (overrides host/port)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=15672)
    p.add_argument("--user", "-u", default=os.environ.get("WARREN_MGMT_USER", "guest"))
    p.add_argument("--password", "-p", default=os.environ.get("WARREN_MGMT_PASSWORD", "guest"))
    p.add_argument("--vhost", "-V", default="/")
    p.add_argument("--format", "-f", choices=["table", "json"], default="table")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="list objects")
    ls.add_argument("what", choices=sorted(LIST_COLUMNS))
    sub.add_parser("overview", help="broker overview")
    cl = sub.add_parser("cluster", help="cluster commands")
    clsub = cl.add_subparsers(dest="cluster_cmd", required=True)
    clsub.add_parser("status", help="members, leader, in-sync set and replication lag")
    fg = clsub.add_parser("forget", help="take a node that is down off the cluster's node list")
    fg.add_argument("node")
    d = sub.add_parser("declare", help="declare a queue, exchange or binding")
    dsub = d.add_subparsers(dest="kind", required=True)
    dq = dsub.add_parser("queue")
    dq.add_argument("name")
    dq.add_argument("--durable", action=argparse.BooleanOptionalAction, default=True)
    dq.add_argument("--auto-delete", action="store_true")
    dq.add_argument("--arguments", default="{}", help="JSON object")
    dx = dsub.add_parser("exchange")
    dx.add_argument("name")
    dx.add_argument("--type", default="direct")
    dx.add_argument("--durable", action=argparse.BooleanOptionalAction, default=True)
    dx.add_argument("--auto-delete", action="store_true")
    dx.add_argument("--internal", action="store_true")
    dx.add_argument("--arguments", default="{}")
    db = dsub.add_parser("binding")
    db.add_argument("source")
    db.add_argument("destination")
    db.add_argument("--destination-type", choices=["queue", "exchange"], default="queue")
    db.add_argument("--routing-key", default="")
    db.add_argument("--arguments", default="{}")
    dl = sub.add_parser("delete", help="delete a queue or exchange")
    dl.add_argument("kind", choices=["queue", "exchange"])
    dl.add_argument("name")
    pg = sub.add_parser("purge", help="purge a queue")
    pg.add_argument("kind", choices=["queue"])
    pg.add_argument("name")
    ex = sub.add_parser("export", help="export definitions to FILE ('-' for stdout)")
    ex.add_argument("file")
    im = sub.add_parser("import", help="import definitions from FILE ('-' for stdin)")
    im.add_argument("file")
    pb = sub.add_parser("publish", help="publish one message (for debugging)")
    pb.add_argument("exchange", help="exchange name ('' or amq.default for the default exchange)")
    pb.add_argument("routing_key")
    pb.add_argument("payload")
    pb.add_argument("--property", action="append", default=[], help="NAME=VALUE (headers.NAME=VALUE for a header)")
    gt = sub.add_parser("get", help="get messages from a queue (for debugging)")
    gt.add_argument("queue")
    gt.add_argument("--count", type=int, default=1)
    gt.add_argument("--ackmode", default="ack_requeue_true",
                    choices=["ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false"])
    tr = sub.add_parser("trace", help="print a message's journey")
    tr.add_argument("message_id")
    ts = sub.add_parser("tracing", help="switch tracing for the vhost")
    ts.add_argument("state", choices=["on", "off", "status"])
    ts.add_argument("--firehose", action="store_true", help="only the firehose")
    ts.add_argument("--journey", action="store_true", help="only journeys")
    return p


def _props(items: list[str]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for it in items:
        k, _, v = it.partition("=")
        val: Any = int(v) if k in ("delivery_mode", "priority", "timestamp") else v
        if k.startswith("headers."):
            props.setdefault("headers", {})[k[len("headers."):]] = v
        else:
            props[k] = val
    return props


def emit_cluster(st: dict[str, Any], fmt: str) -> None:
    """``warrenctl cluster status``: a summary, then one row per follower."""
    if fmt == "json" or st.get("mode") != "cluster":
        emit(st, "json")
        return
    print(f"cluster {st['cluster']}: leader {st['leader'] or '(none)'}, members {', '.join(st['members'])}")
    down = [n for n in st.get("known", []) if n not in st["members"]]
    if down:
        print(f"down: {', '.join(down)} (warrenctl cluster forget <node> takes one off the node list)")
    print(f"in sync: {', '.join(st['in_sync'])} (min {st['min_in_sync']}); replication seq {st['replication_seq']}")
    rows = [{"follower": name, **f} for name, f in sorted(st.get("followers", {}).items())]
    emit(rows, "table", ["follower", "state", "acked_seq", "lag_operations", "lag_bytes", "lag_seconds"])


def run(args: argparse.Namespace, client: Client) -> int:
    vh = q(args.vhost)
    fmt = args.format
    cmd = args.cmd
    if cmd == "list":
        data = client.call("GET", args.what)
        emit(data, fmt, LIST_COLUMNS[args.what])
    elif cmd == "overview":
        emit(client.call("GET", "overview"), "json")
    elif cmd == "cluster":
        if args.cluster_cmd == "forget":
            client.call("DELETE", f"cluster/nodes/{q(args.node)}")
            print(f"node forgotten: {args.node}")
        else:
            emit_cluster(client.call("GET", "cluster"), fmt)
    elif cmd == "declare":
        if args.kind == "queue":
            client.call("PUT", f"queues/{vh}/{q(args.name)}", {
                "durable": args.durable, "auto_delete": args.auto_delete, "arguments": json.loads(args.arguments)})
            print(f"queue declared: {args.name}")
        elif args.kind == "exchange":
            client.call("PUT", f"exchanges/{vh}/{q(args.name)}", {
                "type": args.type, "durable": args.durable, "auto_delete": args.auto_delete,
                "internal": args.internal, "arguments": json.loads(args.arguments)})
            print(f"exchange declared: {args.name}")
        else:
            t = "q" if args.destination_type == "queue" else "e"
            client.call("POST", f"bindings/{vh}/e/{q(args.source)}/{t}/{q(args.destination)}",
                        {"routing_key": args.routing_key, "arguments": json.loads(args.arguments)})
            print(f"binding declared: {args.source} -> {args.destination}")
    elif cmd == "delete":
        path = "queues" if args.kind == "queue" else "exchanges"
        client.call("DELETE", f"{path}/{vh}/{q(args.name)}")
        print(f"{args.kind} deleted: {args.name}")
    elif cmd == "purge":
        client.call("DELETE", f"queues/{vh}/{q(args.name)}/contents")
        print(f"queue purged: {args.name}")
    elif cmd == "export":
        data = client.call("GET", "definitions")
        text = json.dumps(data, indent=2, sort_keys=True)
        if args.file == "-":
            print(text)
        else:
            with open(args.file, "w") as fh:
                fh.write(text + "\n")
            print(f"definitions exported to {args.file}")
    elif cmd == "import":
        if args.file == "-":
            data = json.load(sys.stdin)
        else:
            with open(args.file) as fh:
                data = json.load(fh)
        client.call("POST", "definitions", data)
        print(f"definitions imported from {args.file}")
    elif cmd == "publish":
        ex = args.exchange or "amq.default"
        r = client.call("POST", f"exchanges/{vh}/{q(ex)}/publish", {
            "routing_key": args.routing_key, "payload": args.payload, "payload_encoding": "string",
            "properties": _props(args.property)})
        routed = bool(r and r.get("routed"))
        if fmt == "json":
            emit(r, "json")
        else:
            print("message published" if routed else "message published but NOT routed")
        return 0 if routed else 2
    elif cmd == "get":
        msgs = client.call("POST", f"queues/{vh}/{q(args.queue)}/get", {
            "count": args.count, "ackmode": args.ackmode, "encoding": "auto", "truncate": 50000})
        emit(msgs, fmt, ["routing_key", "exchange", "message_count", "redelivered", "payload_bytes", "payload"])
    elif cmd == "trace":
        r = client.call("GET", f"trace/{q(args.message_id)}")
        if fmt == "json":
            emit(r, "json")
        elif not r["events"]:
            print(f"no events for message id {args.message_id!r} (is tracing on for the vhost?)")
            return 1
        else:
            emit(_timeline(r["events"]), "table", ["time", "event", "vhost", "detail"])
    elif cmd == "tracing":
        if args.state == "status":
            emit(client.call("GET", f"tracing/{vh}"), fmt, ["vhost", "firehose", "journey"])
        else:
            on = args.state == "on"
            both = not args.firehose and not args.journey
            body: dict[str, Any] = {}
            if both or args.firehose:
                body["firehose"] = on
            if both or args.journey:
                body["journey"] = on
            emit(client.call("PUT", f"tracing/{vh}", body), fmt, ["vhost", "firehose", "journey"])
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    base = args.url or f"http://{args.host}:{args.port}"
    client = Client(base, args.user, args.password)
    try:
        return run(args, client)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"error: cannot reach {base}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
