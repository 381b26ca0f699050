// warren dashboard: plain JS over the management API (same origin, basic auth).
"use strict";
let auth = sessionStorage.getItem("warren-auth");
(function fromHash() {
  const h = new URLSearchParams(location.hash.replace(/^#/, "").split("/")[0].includes("=") ? location.hash.slice(1) : "");
  if (h.get("user")) {
    auth = "Basic " + btoa(h.get("user") + ":" + (h.get("password") || ""));
    sessionStorage.setItem("warren-auth", auth);
  }
})();

async function api(path, opts) {
  opts = opts || {};
  opts.headers = Object.assign({"Authorization": auth || ""}, opts.headers || {});
  const r = await fetch("/api/" + path, opts);
  if (r.status === 401) { document.getElementById("login").hidden = false; throw new Error("login required"); }
  if (!r.ok) throw new Error(r.status + " " + (await r.text()));
  const t = await r.text();
  return t ? JSON.parse(t) : null;
}
const enc = encodeURIComponent;
function cell(v, num) { const td = document.createElement("td"); td.textContent = v; if (num) td.className = "num"; return td; }
function fill(id, rows, build) {
  const tb = document.querySelector("#" + id + " tbody");
  tb.replaceChildren(...rows.map(build));
}
function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  cells.forEach(c => tr.appendChild(c));
  return tr;
}
function rate(ms, k) { return ms && ms[k + "_details"] ? ms[k + "_details"].rate : 0; }

async function refresh() {
  const [ov, queues, conns, chans, cons] = await Promise.all([
    api("overview"), api("queues"), api("connections"), api("channels"), api("consumers")]);
  const ot = ov.object_totals, qt = ov.queue_totals, ms = ov.message_stats || {};
  fill("totals", [["connections", ot.connections], ["channels", ot.channels], ["queues", ot.queues],
    ["consumers", ot.consumers], ["messages ready", qt.messages_ready], ["messages unacked", qt.messages_unacknowledged]],
    ([k, v]) => row([cell(k), cell(v, true)], {"data-total": k, "data-value": v}));
  fill("rates", ["publish", "deliver_get", "ack", "redeliver", "confirm"],
    k => row([cell(k), cell(rate(ms, k), true), cell(ms[k] || 0, true)], {"data-rate": k}));
  fill("queues", queues, q => {
    const name = document.createElement("td");
    const a = document.createElement("a");
    a.href = "#queue/" + enc(q.vhost) + "/" + enc(q.name); a.textContent = q.name; name.appendChild(a);
    return row([cell(q.vhost), name, cell(q.messages_ready, true), cell(q.messages_unacknowledged, true),
      cell(q.consumers, true), cell(q.lane_depths ? q.lane_depths.join(" / ") : "-"),
      cell(rate(q.message_stats, "publish"), true), cell(rate(q.message_stats, "deliver_get"), true)],
      {"data-queue": q.vhost + " " + q.name, "data-ready": q.messages_ready, "data-unacked": q.messages_unacknowledged,
       "data-consumers": q.consumers});
  });
  fill("connections", conns, c => row([cell(c.name), cell(c.user), cell(c.vhost), cell(c.channels, true),
    cell(c.recv_oct, true), cell(c.send_oct, true)], {"data-connection": c.name}));
  fill("channels", chans, c => row([cell(c.name), cell(c.prefetch_count, true), cell(c.consumer_count, true),
    cell(c.messages_unacknowledged, true), cell((c.message_stats || {}).publish || 0, true),
    cell((c.message_stats || {}).deliver_get || 0, true)], {"data-channel": c.name}));
  fill("consumers", cons, c => row([cell(c.queue.vhost + " " + c.queue.name), cell(c.consumer_tag),
    cell(c.ack_required), cell(c.prefetch_count, true), cell(c.channel_details.name)], {"data-consumer": c.consumer_tag}));
  await showQueue();
  document.body.setAttribute("data-loaded", "1");
  document.getElementById("status").textContent = "";
}

function currentQueue() {
  const m = location.hash.match(/^#queue\/([^/]*)\/(.*)$/);
  return m ? [decodeURIComponent(m[1]), decodeURIComponent(m[2])] : null;
}
async function showQueue() {
  const sel = currentQueue();
  document.getElementById("queue-section").hidden = !sel;
  if (!sel) return;
  const q = await api("queues/" + enc(sel[0]) + "/" + enc(sel[1]));
  document.getElementById("queue-title").textContent = q.vhost + " / " + q.name;
  fill("queue-detail", [["durable", q.durable], ["ready", q.messages_ready], ["unacked", q.messages_unacknowledged],
    ["consumers", q.consumers], ["lanes", q.lane_depths ? q.lane_depths.join(" / ") : "-"],
    ["arguments", JSON.stringify(q.arguments)], ["policy", q.policy || "-"]], ([k, v]) => row([cell(k), cell(v)]));
}

document.getElementById("get-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const sel = currentQueue(); if (!sel) return;
  const f = ev.target;
  const msgs = await api("queues/" + enc(sel[0]) + "/" + enc(sel[1]) + "/get", {method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({count: parseInt(f.count.value, 10) || 1, ackmode: f.ackmode.value, encoding: "auto", truncate: 50000})});
  document.getElementById("get-result").textContent = JSON.stringify(msgs, null, 2);
  refresh();
});
document.getElementById("trace-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const r = await api("trace/" + enc(ev.target.id.value));
  fill("trace", r.events, e => {
    const d = Object.entries(e).filter(([k]) => !["ts", "vhost", "message_id", "event"].includes(k))
      .map(([k, v]) => k + "=" + JSON.stringify(v)).join(" ");
    return row([cell(new Date(e.ts * 1000).toISOString()), cell(e.event), cell(e.vhost), cell(d)], {"data-event": e.event});
  });
});
document.getElementById("login").addEventListener("submit", ev => {
  ev.preventDefault();
  auth = "Basic " + btoa(ev.target.user.value + ":" + ev.target.password.value);
  sessionStorage.setItem("warren-auth", auth);
  ev.target.hidden = true;
  refresh();
});
window.addEventListener("hashchange", () => showQueue().catch(() => {}));
function tick() {
  refresh().catch(e => { document.getElementById("status").textContent = e.message; });
}
tick();
setInterval(tick, 2000);
