// warren dashboard: a single page over the management API (same origin, session cookie).
// No build step: plain ES2020 and uPlot (vendored beside this file) for the charts.
"use strict";

// ---------------------------------------------------------------------------- helpers
const $ = (sel, root) => (root || document).querySelector(sel);
const enc = encodeURIComponent;
const POLL_MS = 2000;
const HISTORY = 300; // points kept per chart: 10 minutes at POLL_MS

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, error, reason) {
    super(reason || error || ("HTTP " + status));
    this.status = status;
    this.error = error;
  }
}

async function api(path, opts) {
  opts = Object.assign({credentials: "same-origin"}, opts || {});
  opts.headers = Object.assign({"X-Warren-UI": "1"}, opts.headers || {});
  if (opts.json !== undefined) {
    opts.body = JSON.stringify(opts.json);
    opts.headers["Content-Type"] = "application/json";
    delete opts.json;
  }
  const r = await fetch(path.startsWith("/") ? path : "/api/" + path, opts);
  const text = await r.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch (e) { data = text; } }
  // "not_authorized": no or a bad login; "not_authorised" (RabbitMQ's spelling) is a refused
  // action of a logged-in user, shown as an error, not as the login form
  if (r.status === 401 && !path.startsWith("/session") && !(data && data.error === "not_authorised")) {
    showLogin(data && data.reason);
    throw new ApiError(401, "not_authorized", (data && data.reason) || "Login required");
  }
  if (!r.ok) {
    if (data && typeof data === "object") throw new ApiError(r.status, data.error, data.reason);
    throw new ApiError(r.status, "http_error", "HTTP " + r.status + (data ? ": " + String(data).slice(0, 200) : ""));
  }
  return data;
}

function fmtNum(v) {
  if (v === undefined || v === null || v === "") return "–";
  if (typeof v !== "number") return String(v);
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : String(Number(v.toFixed(Math.abs(v) < 10 ? 2 : 1)));
}
function fmtBytes(v) {
  if (typeof v !== "number") return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : v) + " " + u[i];
}
function fmtDuration(ms) {
  if (ms === null || ms === undefined) return "–";
  const s = Math.round(ms / 1000);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}
function rateOf(stats, key) {
  const d = stats && stats[key + "_details"];
  return d ? d.rate : 0;
}
function parseJSONField(text, what) {
  if (!text || !text.trim()) return {};
  try {
    const v = JSON.parse(text);
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    return v;
  } catch (e) {
    throw new ApiError(400, "bad_request", what + " must be a JSON object (" + e.message + ")");
  }
}
function pretty(v) { return v && Object.keys(v).length ? JSON.stringify(v) : "–"; }

let toastTimer = null;
function toast(msg, kind) {
  const t = $("#toast");
  t.textContent = msg;
  t.className = "toast " + (kind || "ok");
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, kind === "error" ? 8000 : 3000);
}

// ---------------------------------------------------------------------------- building blocks
function card(title, ...body) {
  return h("section", {class: "card"}, title ? h("h2", {}, title) : null, ...body);
}
function stat(label, value, attrs) {
  return h("div", Object.assign({class: "stat"}, attrs || {}), h("div", {class: "stat-value"}, fmtNum(value)),
    h("div", {class: "stat-label"}, label));
}
function pill(text, kind) { return h("span", {class: "pill " + (kind || "")}, text); }

// columns: [{label, key, render(row), num, sort}]; opts: {sort, reverse, onSort, rowAttrs(row), empty}
function table(columns, rows, opts) {
  opts = opts || {};
  const head = h("tr", {}, columns.map(c => {
    const th = h("th", {class: (c.num ? "num " : "") + (c.sort && opts.onSort ? "sortable" : "")}, c.label);
    if (c.sort && opts.onSort) {
      if (opts.sort === c.sort) th.appendChild(h("span", {class: "arrow"}, opts.reverse ? " ▼" : " ▲"));
      th.addEventListener("click", () => opts.onSort(c.sort));
      th.setAttribute("data-sort", c.sort);
    }
    return th;
  }));
  const body = rows.length ? rows.map(r => h("tr", opts.rowAttrs ? opts.rowAttrs(r) : {}, columns.map(c => {
    const v = c.render ? c.render(r) : r[c.key];
    return h("td", {class: c.num ? "num" : ""}, v instanceof Node ? v : (c.num ? fmtNum(v) : (v === undefined || v === null ? "–" : String(v))));
  }))) : [h("tr", {}, h("td", {colspan: columns.length, class: "empty"}, opts.empty || "Nothing here yet."))];
  return h("div", {class: "table-wrap"}, h("table", {class: "grid"}, h("thead", {}, head), h("tbody", {}, body)));
}

// A button that asks for a second click before doing something destructive.
function dangerButton(label, action, attrs) {
  let armed = false, timer = null;
  const b = h("button", Object.assign({class: "danger", type: "button"}, attrs || {}), label);
  b.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      b.textContent = "Confirm " + label.toLowerCase();
      b.classList.add("armed");
      timer = setTimeout(() => { armed = false; b.textContent = label; b.classList.remove("armed"); }, 4000);
      return;
    }
    clearTimeout(timer);
    armed = false;
    b.textContent = label;
    b.classList.remove("armed");
    try { await action(); } catch (e) { toast(e.message, "error"); }
  });
  return b;
}

// fields: [{name, label, type: text|password|number|select|textarea|checkbox, options, value, placeholder, wide}]
// submit(values, form) may throw ApiError: its reason is shown in the form.
function form(id, fields, submitLabel, submit) {
  const err = h("div", {class: "form-error", role: "alert", hidden: true});
  const f = h("form", {class: "form", id: id, novalidate: true});
  for (const fd of fields) {
    let input;
    if (fd.type === "select") {
      input = h("select", {name: fd.name}, (fd.options || []).map(o => {
        const [v, l] = Array.isArray(o) ? o : [o, o];
        return h("option", {value: v, selected: String(fd.value) === String(v)}, l);
      }));
    } else if (fd.type === "textarea") {
      input = h("textarea", {name: fd.name, rows: fd.rows || 3, placeholder: fd.placeholder || ""});
      input.value = fd.value || "";
    } else if (fd.type === "checkbox") {
      input = h("input", {type: "checkbox", name: fd.name, checked: !!fd.value});
    } else {
      input = h("input", {name: fd.name, type: fd.type || "text", placeholder: fd.placeholder || "",
        autocomplete: fd.type === "password" ? "new-password" : "off"});
      if (fd.value !== undefined) input.value = fd.value;
    }
    f.appendChild(h("label", {class: fd.type === "checkbox" ? "check" : (fd.wide ? "wide" : "")},
      fd.type === "checkbox" ? [input, " " + fd.label] : [fd.label, input]));
  }
  const btn = h("button", {class: "primary", type: "submit"}, submitLabel);
  f.appendChild(h("div", {class: "form-actions"}, btn));
  f.appendChild(err);
  f.addEventListener("submit", async ev => {
    ev.preventDefault();
    err.hidden = true;
    const values = {};
    for (const fd of fields) {
      const el = f.elements[fd.name];
      values[fd.name] = fd.type === "checkbox" ? el.checked : el.value;
    }
    btn.disabled = true;
    try {
      await submit(values, f);
    } catch (e) {
      err.textContent = e.message || String(e);
      err.hidden = false;
    } finally {
      btn.disabled = false;
    }
  });
  return f;
}
function setForm(f, values) {
  for (const [k, v] of Object.entries(values)) {
    const el = f.elements[k];
    if (!el) continue;
    if (el.type === "checkbox") el.checked = !!v; else el.value = v;
  }
  f.scrollIntoView({behavior: "smooth", block: "center"});
}

// ---------------------------------------------------------------------------- charts
const PALETTE = ["#3b82f6", "#10b981", "#f59e0b", "#8b5cf6", "#ef4444", "#06b6d4"];

class Series {
  // A time series of counters or gauges sampled by the poller; rates derive from counter deltas.
  constructor(names) { this.names = names; this.t = []; this.v = names.map(() => []); this.prev = null; }
  pushGauges(t, vals) {
    this.t.push(t); vals.forEach((x, i) => this.v[i].push(x));
    this.trim();
  }
  pushCounters(t, vals) {
    if (this.prev && t > this.prev.t) {
      const dt = t - this.prev.t;
      this.pushGauges(t, vals.map((x, i) => Math.max(0, (x - this.prev.vals[i]) / dt)));
    }
    this.prev = {t, vals};
  }
  trim() {
    while (this.t.length > HISTORY) { this.t.shift(); this.v.forEach(a => a.shift()); }
  }
  data() { return [this.t.slice(), ...this.v.map(a => a.slice())]; }
}

function chart(title, series, unit, id) {
  const box = h("div", {class: "chart", id: id});
  const now = h("div", {class: "chart-now"});
  const wrap = h("div", {class: "chart-card"}, h("div", {class: "chart-head"},
    h("div", {class: "chart-title"}, title, h("span", {class: "muted"}, " " + unit)), now), box);
  let plot = null;
  function draw() {
    const data = series.data();
    const last = data.map(a => a.length ? a[a.length - 1] : 0);
    box.setAttribute("data-points", String(data[0].length));
    series.names.forEach((n, i) => box.setAttribute("data-last-" + n, String(Math.round(last[i + 1] * 10) / 10)));
    now.replaceChildren(...series.names.map((n, i) => h("span", {class: "now-item"},
      h("span", {class: "dot", style: "background:" + PALETTE[i % PALETTE.length]}), n + " ",
      h("strong", {}, data[0].length ? fmtNum(last[i + 1]) : "–"))));
    if (typeof uPlot === "undefined") return;
    if (data[0].length < 2) {
      if (!plot) box.replaceChildren(h("div", {class: "chart-wait muted"}, "Collecting samples…"));
      return;
    }
    if (!plot) box.replaceChildren();
    const width = Math.max(240, box.clientWidth || 480);
    if (!plot) {
      plot = new uPlot({
        width, height: 200,
        cursor: {drag: {x: false, y: false}},
        legend: {show: false},
        // a fixed window of the last minutes, newest at the right edge
        scales: {x: {time: true, range: (u, min, max) => [max - Math.min(600, Math.max(60, max - min)), max]}, y: {range: (u, min, max) => [0, Math.max(1, max * 1.15)]}},
        axes: [{stroke: "#64748b", grid: {stroke: "#eef2f7"}, ticks: {stroke: "#e2e8f0"}},
          {stroke: "#64748b", grid: {stroke: "#eef2f7"}, ticks: {stroke: "#e2e8f0"}, size: 56,
            values: (u, vals) => vals.map(v => fmtNum(v))}],
        series: [{}, ...series.names.map((n, i) => ({label: n, stroke: PALETTE[i % PALETTE.length], width: 2,
          fill: PALETTE[i % PALETTE.length] + "14", points: {show: false},
          value: (u, v) => v === null || v === undefined ? "–" : fmtNum(v)}))],
      }, data, box);
    } else {
      if (Math.abs(plot.width - width) > 4) plot.setSize({width, height: 200});
      plot.setData(data);
    }
  }
  return {el: wrap, draw};
}

// ---------------------------------------------------------------------------- global sampler
const overviewRates = new Series(["publish", "deliver", "ack", "confirm"]);
const overviewDepth = new Series(["ready", "unacked"]);
const queueHistory = new Map(); // "vhost\u0000name" -> {rates, depth}
let lastOverview = null;

// The last ten minutes the broker sampled (RabbitMQ's msg_rates_age/lengths_age), so the
// overview charts start full instead of empty; live polling continues from there.
async function seedHistory() {
  if (overviewDepth.t.length) return;
  const ov = await api("overview?msg_rates_age=600&msg_rates_incr=5&lengths_age=600&lengths_incr=5");
  const ms = ov.message_stats || {}, qt = ov.queue_totals || {};
  const oldestFirst = (o, k) => ((o[k + "_details"] || {}).samples || []).slice().reverse();
  const rates = ["publish", "deliver_get", "ack", "confirm"].map(k => oldestFirst(ms, k));
  const depth = ["messages_ready", "messages_unacknowledged"].map(k => oldestFirst(qt, k));
  rates[0].forEach((p, i) => overviewRates.pushCounters(p.timestamp / 1000, rates.map(r => r[i] ? r[i].sample : 0)));
  depth[0].forEach((p, i) => overviewDepth.pushGauges(p.timestamp / 1000, depth.map(r => r[i] ? r[i].sample : 0)));
}

async function sampleOverview() {
  const ov = await api("overview");
  const t = Date.now() / 1000;
  const ms = ov.message_stats || {}, qt = ov.queue_totals || {};
  overviewRates.pushCounters(t, [ms.publish || 0, ms.deliver_get || 0, ms.ack || 0, ms.confirm || 0]);
  overviewDepth.pushGauges(t, [qt.messages_ready || 0, qt.messages_unacknowledged || 0]);
  lastOverview = ov;
  $("#node-info").textContent = (ov.node || "") + " · " + (ov.product_name || "warren") + " " + (ov.product_version || "");
  return ov;
}

// ---------------------------------------------------------------------------- pages
const pages = {};
let current = {name: null, refresh: null, token: 0};

function vhostFilter() { return $("#vhost-select").value; }

pages.overview = async (main) => {
  const statsBox = h("div", {class: "stats", id: "overview-stats"});
  const rates = chart("Message rates", overviewRates, "msg/s", "chart-rates");
  const depth = chart("Queued messages", overviewDepth, "messages", "chart-depth");
  const listeners = h("div");
  const cluster = h("div", {id: "cluster-status"});
  main.append(h("div", {class: "charts"}, rates.el, depth.el), statsBox, card("Cluster", cluster),
    card("Listeners", listeners));
  async function refreshCluster() {
    let st;
    try { st = await api("cluster"); } catch (e) { return; }
    if (st.mode !== "cluster") {
      cluster.replaceChildren(h("p", {class: "muted"}, "Single node (" + st.node + "): not started with --cluster."));
      return;
    }
    const enough = st.in_sync.length >= st.min_in_sync;
    // on the node list but not running (until `warrenctl cluster forget`)
    const down = (st.known || []).filter(n => !st.members.includes(n));
    cluster.replaceChildren(
      h("dl", {class: "dl"},
        h("dt", {}, "Cluster"), h("dd", {}, st.cluster),
        h("dt", {}, "Leader"), h("dd", {id: "cluster-leader"}, st.leader || "(none)"),
        h("dt", {}, "Members"), h("dd", {id: "cluster-members"}, st.members.join(", ")),
        h("dt", {}, "Down"), h("dd", {id: "cluster-down"}, down.length ? pill(down.join(", "), "warn") : "none"),
        h("dt", {}, "In sync"), h("dd", {id: "cluster-insync"}, st.in_sync.join(", "), " ",
          pill("min " + st.min_in_sync, enough ? "ok" : "warn"))),
      table([{label: "Follower", key: "name"}, {label: "State", render: f => pill(f.state, f.state === "insync" ? "ok" : "warn")},
        {label: "Acked seq", render: f => fmtNum(f.acked_seq)}, {label: "Lag (ops)", render: f => fmtNum(f.lag_operations)},
        {label: "Lag (bytes)", render: f => fmtNum(f.lag_bytes)}, {label: "Lag (s)", render: f => String(f.lag_seconds)}],
        Object.entries(st.followers || {}).map(([name, f]) => ({name, ...f})), {empty: "No follower connected."}));
  }
  async function refresh() {
    refreshCluster();
    const ov = lastOverview || await sampleOverview();
    const ot = ov.object_totals || {}, qt = ov.queue_totals || {}, ms = ov.message_stats || {};
    statsBox.replaceChildren(
      stat("Connections", ot.connections, {"data-total": "connections", "data-value": ot.connections}),
      stat("Channels", ot.channels, {"data-total": "channels", "data-value": ot.channels}),
      stat("Queues", ot.queues, {"data-total": "queues", "data-value": ot.queues}),
      stat("Exchanges", ot.exchanges, {"data-total": "exchanges", "data-value": ot.exchanges}),
      stat("Consumers", ot.consumers, {"data-total": "consumers", "data-value": ot.consumers}),
      stat("Ready", qt.messages_ready, {"data-total": "messages ready", "data-value": qt.messages_ready}),
      stat("Unacked", qt.messages_unacknowledged, {"data-total": "messages unacked", "data-value": qt.messages_unacknowledged}),
      stat("Published", ms.publish, {"data-total": "published", "data-value": ms.publish || 0}));
    listeners.replaceChildren(table([{label: "Protocol", key: "protocol"}, {label: "Address", key: "ip_address"},
      {label: "Port", render: l => String(l.port)}], ov.listeners || []));
    rates.draw(); depth.draw();
  }
  await refresh();
  return refresh;
};

// -- queues
const queueState = {search: "", regex: false, sort: "name", reverse: false, page: 1, size: 50};
pages.queues = async (main) => {
  const st = queueState;
  const search = h("input", {type: "search", placeholder: "Filter by name…", id: "queue-search", value: st.search});
  const regex = h("input", {type: "checkbox", checked: st.regex});
  const size = h("select", {}, [20, 50, 100, 500].map(n => h("option", {value: n, selected: n === st.size}, n + " per page")));
  const info = h("span", {class: "muted", id: "queue-count"});
  const list = h("div", {id: "queue-list"});
  const pager = h("div", {class: "pager"});
  let debounce = null;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { st.search = search.value; st.page = 1; refresh(); }, 250);
  });
  regex.addEventListener("change", () => { st.regex = regex.checked; st.page = 1; refresh(); });
  size.addEventListener("change", () => { st.size = parseInt(size.value, 10); st.page = 1; refresh(); });
  main.append(card(null, h("div", {class: "toolbar"}, search, h("label", {class: "check"}, regex, " regex"), size, info), list, pager),
    card("Add a queue", addQueueForm()));
  async function refresh() {
    const vh = vhostFilter();
    const cols = "name,vhost,type,durable,auto_delete,exclusive,policy,arguments,messages_ready,messages_unacknowledged,messages,consumers,lane_depths,message_stats.publish_details,message_stats.deliver_get_details,message_stats.ack_details";
    const qs = new URLSearchParams({page: st.page, page_size: st.size, columns: cols, sort: st.sort,
      sort_reverse: st.reverse});
    if (st.search) { qs.set("name", st.search); if (st.regex) qs.set("use_regex", "true"); }
    const t0 = performance.now();
    const res = await api("queues" + (vh ? "/" + enc(vh) : "") + "?" + qs);
    const onSort = k => { if (st.sort === k) st.reverse = !st.reverse; else { st.sort = k; st.reverse = false; } refresh(); };
    list.replaceChildren(table([
      {label: "Virtual host", key: "vhost", sort: "vhost"},
      {label: "Name", sort: "name", render: q => h("a", {href: "#/queue/" + enc(q.vhost) + "/" + enc(q.name)}, q.name)},
      {label: "Type", render: q => pill(q.type || "classic")},
      {label: "Features", render: q => h("span", {}, q.durable ? pill("D", "info") : null, q.auto_delete ? pill("AD") : null,
        q.exclusive ? pill("Excl") : null, q.arguments && q.arguments["x-max-priority"] ? pill("Pri " + q.arguments["x-max-priority"], "info") : null,
        q.policy ? pill(q.policy, "policy") : null)},
      {label: "Ready", key: "messages_ready", num: true, sort: "messages_ready"},
      {label: "Unacked", key: "messages_unacknowledged", num: true, sort: "messages_unacknowledged"},
      {label: "Total", key: "messages", num: true, sort: "messages"},
      {label: "Consumers", key: "consumers", num: true, sort: "consumers"},
      {label: "Lanes", render: q => q.lane_depths ? q.lane_depths.join(" / ") : "–"},
      {label: "In /s", num: true, render: q => fmtNum(rateOf(q.message_stats, "publish"))},
      {label: "Out /s", num: true, render: q => fmtNum(rateOf(q.message_stats, "deliver_get"))},
    ], res.items, {sort: st.sort, reverse: st.reverse, onSort, empty: st.search ? "No queue matches." : "No queues.",
      rowAttrs: q => ({"data-queue": q.vhost + " " + q.name, "data-ready": q.messages_ready,
        "data-unacked": q.messages_unacknowledged, "data-consumers": q.consumers})}));
    info.textContent = res.filtered_count + " of " + res.total_count + " queues · " + Math.round(performance.now() - t0) + " ms";
    list.setAttribute("data-total", res.total_count);
    list.setAttribute("data-filtered", res.filtered_count);
    pager.replaceChildren(
      h("button", {type: "button", class: "ghost", disabled: st.page <= 1, onclick: () => { st.page--; refresh(); }}, "‹ Prev"),
      h("span", {class: "muted", id: "queue-page"}, "Page " + res.page + " of " + res.page_count),
      h("button", {type: "button", class: "ghost", disabled: st.page >= res.page_count, onclick: () => { st.page++; refresh(); }}, "Next ›"));
  }
  await refresh();
  return refresh;
};

function addQueueForm() {
  return form("add-queue", [
    {name: "vhost", label: "Virtual host", value: vhostFilter() || "/"},
    {name: "name", label: "Name"},
    {name: "type", label: "Type", type: "select", options: ["classic", "quorum"]},
    {name: "durable", label: "Durability", type: "select", options: [["true", "Durable"], ["false", "Transient"]]},
    {name: "arguments", label: "Arguments (JSON)", type: "textarea", placeholder: '{"x-max-priority": 3}', wide: true},
  ], "Add queue", async v => {
    const args = parseJSONField(v.arguments, "Arguments");
    if (v.type === "quorum") args["x-queue-type"] = "quorum";
    if (!v.name) throw new ApiError(400, "bad_request", "A queue needs a name.");
    await api("queues/" + enc(v.vhost) + "/" + enc(v.name), {method: "PUT",
      json: {durable: v.durable === "true", auto_delete: false, arguments: args}});
    toast("Queue " + v.name + " added");
    location.hash = "#/queue/" + enc(v.vhost) + "/" + enc(v.name);
  });
}

function publishForm(id, vhost, exchange, routingKey) {
  return form(id, [
    {name: "routing_key", label: "Routing key", value: routingKey || ""},
    {name: "delivery_mode", label: "Delivery mode", type: "select", options: [["2", "2 – persistent"], ["1", "1 – transient"]]},
    {name: "priority", label: "Priority", type: "number", placeholder: "none"},
    {name: "message_id", label: "Message id", placeholder: "optional"},
    {name: "headers", label: "Headers (JSON)", type: "textarea", rows: 2, placeholder: '{"x-delay": 5000}'},
    {name: "properties", label: "Other properties (JSON)", type: "textarea", rows: 2, placeholder: '{"content_type": "text/plain"}'},
    {name: "payload", label: "Payload", type: "textarea", rows: 4, wide: true},
  ], "Publish message", async v => {
    const props = parseJSONField(v.properties, "Properties");
    props.delivery_mode = parseInt(v.delivery_mode, 10);
    if (v.priority !== "") props.priority = parseInt(v.priority, 10);
    if (v.message_id) props.message_id = v.message_id;
    const headers = parseJSONField(v.headers, "Headers");
    if (Object.keys(headers).length) props.headers = headers;
    const r = await api("exchanges/" + enc(vhost) + "/" + enc(exchange || "amq.default") + "/publish", {method: "POST",
      json: {routing_key: v.routing_key, payload: v.payload, payload_encoding: "string", properties: props}});
    toast(r.routed ? "Message published." : "Message published but not routed to any queue.", r.routed ? "ok" : "warn");
  });
}

// -- one queue
pages.queue = async (main, args) => {
  const [vhost, name] = args;
  const base = "queues/" + enc(vhost) + "/" + enc(name);
  const key = vhost + "\u0000" + name;
  if (!queueHistory.has(key)) {
    queueHistory.set(key, {rates: new Series(["publish", "deliver", "ack"]), depth: new Series(["ready", "unacked"])});
  }
  const hist = queueHistory.get(key);
  const statsBox = h("div", {class: "stats", id: "queue-stats"});
  const rates = chart("Message rates", hist.rates, "msg/s", "queue-chart-rates");
  const depth = chart("Queue depth", hist.depth, "messages", "queue-chart-depth");
  const lanes = h("div", {id: "queue-lanes"});
  const consumers = h("div");
  const bindings = h("div");
  const details = h("div");
  const getResult = h("div", {id: "get-result", class: "messages"});
  $("#page-title").textContent = "Queue " + name;
  const getForm = form("get-form", [
    {name: "count", label: "Messages", type: "number", value: "1"},
    {name: "ackmode", label: "Ack mode", type: "select", options: [["ack_requeue_true", "Nack, requeue"],
      ["ack_requeue_false", "Ack (remove)"], ["reject_requeue_false", "Reject, no requeue"]]},
    {name: "encoding", label: "Encoding", type: "select", options: [["auto", "Auto string / base64"], ["base64", "base64"]]},
    {name: "truncate", label: "Truncate at (bytes)", type: "number", value: "50000"},
  ], "Get messages", async v => {
    const count = parseInt(v.count, 10);
    if (!(count >= 1)) throw new ApiError(400, "bad_request", "Messages must be a number of at least 1.");
    const msgs = await api(base + "/get", {method: "POST", json: {count, ackmode: v.ackmode, encoding: v.encoding,
      truncate: parseInt(v.truncate, 10) || 50000}});
    getResult.replaceChildren(...(msgs.length ? msgs.map((m, i) => h("div", {class: "message", "data-message": i},
      h("div", {class: "message-head"}, h("strong", {}, "Message " + (i + 1)),
        pill("exchange: " + (m.exchange || "(default)")), pill("routing key: " + m.routing_key),
        m.redelivered ? pill("redelivered", "warn") : null, pill(m.payload_bytes + " bytes"), pill(m.payload_encoding)),
      h("div", {class: "kv"}, "properties: " + JSON.stringify(m.properties)),
      h("pre", {class: "payload"}, m.payload))) : [h("p", {class: "muted"}, "Queue is empty.")]));
    refresh();
  });
  const bindForm = form("queue-bind", [
    {name: "source", label: "From exchange"}, {name: "routing_key", label: "Routing key"},
    {name: "arguments", label: "Arguments (JSON)", type: "textarea", rows: 1},
  ], "Bind", async v => {
    if (!v.source) throw new ApiError(400, "bad_request", "Name the exchange to bind from.");
    await api("bindings/" + enc(vhost) + "/e/" + enc(v.source) + "/q/" + enc(name), {method: "POST",
      json: {routing_key: v.routing_key, arguments: parseJSONField(v.arguments, "Arguments")}});
    toast("Bound from " + v.source);
    refresh();
  });
  main.append(
    h("div", {class: "crumbs"}, h("a", {href: "#/queues"}, "Queues"), " › ", h("strong", {}, name), " ", pill("vhost " + vhost)),
    statsBox,
    h("div", {class: "charts"}, rates.el, depth.el),
    h("div", {class: "cols"}, card("Priority lanes", lanes), card("Details", details)),
    card("Consumers", consumers),
    card("Bindings", bindings, h("h3", {}, "Add binding"), bindForm),
    h("div", {class: "cols"}, card("Get messages", getForm, getResult), card("Publish message", publishForm("queue-publish", vhost, "", name))),
    card("Danger zone", h("div", {class: "toolbar"},
      dangerButton("Purge", async () => { await api(base + "/contents", {method: "DELETE"}); toast("Queue purged"); refresh(); }, {id: "purge"}),
      dangerButton("Delete", async () => { await api(base, {method: "DELETE"}); toast("Queue deleted"); location.hash = "#/queues"; }, {id: "delete-queue"}))));
  async function refresh() {
    const [q, bs] = await Promise.all([api(base), api(base + "/bindings")]);
    const t = Date.now() / 1000, ms = q.message_stats || {};
    hist.rates.pushCounters(t, [ms.publish || 0, ms.deliver_get || 0, ms.ack || 0]);
    hist.depth.pushGauges(t, [q.messages_ready || 0, q.messages_unacknowledged || 0]);
    statsBox.replaceChildren(stat("Ready", q.messages_ready, {"data-ready": q.messages_ready}),
      stat("Unacked", q.messages_unacknowledged, {"data-unacked": q.messages_unacknowledged}),
      stat("Total", q.messages), stat("Consumers", q.consumers, {"data-consumers": q.consumers}),
      stat("Bytes ready", null, {}), stat("Published", ms.publish || 0));
    statsBox.children[4].firstChild.textContent = fmtBytes(q.message_bytes_ready);
    rates.draw(); depth.draw();
    if (q.lane_depths) {
      const max = Math.max(1, ...q.lane_depths);
      lanes.replaceChildren(table([{label: "Priority", key: "p", num: true}, {label: "Ready", key: "d", num: true},
        {label: "", render: r => h("div", {class: "bar"}, h("div", {class: "bar-fill", style: "width:" + (100 * r.d / max) + "%"}))}],
      q.lane_depths.map((d, p) => ({p, d})).reverse()));
    } else {
      lanes.replaceChildren(h("p", {class: "muted"}, "Not a priority queue (declare with x-max-priority for lanes)."));
    }
    details.replaceChildren(h("dl", {class: "dl"},
      h("dt", {}, "Type"), h("dd", {}, q.type), h("dt", {}, "Durable"), h("dd", {}, String(q.durable)),
      h("dt", {}, "Auto-delete"), h("dd", {}, String(q.auto_delete)), h("dt", {}, "Exclusive"), h("dd", {}, String(q.exclusive)),
      h("dt", {}, "Arguments"), h("dd", {class: "mono"}, pretty(q.arguments)),
      h("dt", {}, "Policy"), h("dd", {}, q.policy || "–"),
      h("dt", {}, "Effective policy"), h("dd", {class: "mono"}, pretty(q.effective_policy_definition)),
      h("dt", {}, "State"), h("dd", {}, q.state)));
    consumers.replaceChildren(table([{label: "Tag", key: "consumer_tag"},
      {label: "Channel", render: c => c.channel_details.name}, {label: "Ack", render: c => c.ack_required ? "manual" : "auto"},
      {label: "Prefetch", key: "prefetch_count", num: true}, {label: "Exclusive", render: c => String(c.exclusive)},
      {label: "Active", render: c => c.active ? pill("active", "ok") : pill("waiting")}], q.consumer_details || [],
    {empty: "No consumers."}));
    bindings.replaceChildren(table([{label: "From", render: b => b.source || "(default exchange)"},
      {label: "Routing key", key: "routing_key"}, {label: "Arguments", render: b => pretty(b.arguments)},
      {label: "", render: b => b.source ? dangerButton("Unbind", async () => {
        await api("bindings/" + enc(vhost) + "/e/" + enc(b.source) + "/q/" + enc(name) + "/" + enc(b.properties_key), {method: "DELETE"});
        toast("Unbound"); refresh();
      }) : h("span", {class: "muted"}, "implicit")}], bs));
  }
  await refresh();
  return refresh;
};

// -- exchanges
pages.exchanges = async (main) => {
  const search = h("input", {type: "search", placeholder: "Filter by name…"});
  const list = h("div", {id: "exchange-list"});
  let rows = [];
  function render() {
    const s = search.value;
    list.replaceChildren(table([
      {label: "Virtual host", key: "vhost"},
      {label: "Name", render: x => h("a", {href: "#/exchange/" + enc(x.vhost) + "/" + enc(x.name || "amq.default")}, x.name || "(AMQP default)")},
      {label: "Type", render: x => pill(x.type, "info")},
      {label: "Features", render: x => h("span", {}, x.durable ? pill("D", "info") : null, x.auto_delete ? pill("AD") : null,
        x.internal ? pill("I") : null, x.policy ? pill(x.policy, "policy") : null)},
      {label: "Delayed pending", num: true, render: x => x.delayed_pending === undefined ? "–" : fmtNum(x.delayed_pending)},
      {label: "In /s", num: true, render: x => fmtNum(rateOf(x.message_stats, "publish_in"))},
      {label: "Out /s", num: true, render: x => fmtNum(rateOf(x.message_stats, "publish_out"))},
    ], rows.filter(x => !s || x.name.includes(s)), {rowAttrs: x => ({"data-exchange": x.vhost + " " + x.name})}));
  }
  search.addEventListener("input", render);
  main.append(card(null, h("div", {class: "toolbar"}, search), list), card("Add an exchange", form("add-exchange", [
    {name: "vhost", label: "Virtual host", value: vhostFilter() || "/"}, {name: "name", label: "Name"},
    {name: "type", label: "Type", type: "select", options: ["direct", "fanout", "topic", "headers", "x-delayed-message"]},
    {name: "durable", label: "Durability", type: "select", options: [["true", "Durable"], ["false", "Transient"]]},
    {name: "arguments", label: "Arguments (JSON)", type: "textarea", rows: 2, placeholder: '{"x-delayed-type": "direct"}', wide: true},
  ], "Add exchange", async v => {
    if (!v.name) throw new ApiError(400, "bad_request", "An exchange needs a name.");
    await api("exchanges/" + enc(v.vhost) + "/" + enc(v.name), {method: "PUT",
      json: {type: v.type, durable: v.durable === "true", auto_delete: false, internal: false, arguments: parseJSONField(v.arguments, "Arguments")}});
    toast("Exchange " + v.name + " added");
    refresh();
  })));
  async function refresh() {
    const vh = vhostFilter();
    rows = await api("exchanges" + (vh ? "/" + enc(vh) : ""));
    render();
  }
  await refresh();
  return refresh;
};

pages.exchange = async (main, args) => {
  const [vhost, name] = args;
  const base = "exchanges/" + enc(vhost) + "/" + enc(name);
  $("#page-title").textContent = "Exchange " + (name === "amq.default" ? "(AMQP default)" : name);
  const details = h("div"), bindings = h("div");
  const isDefault = name === "amq.default";
  main.append(h("div", {class: "crumbs"}, h("a", {href: "#/exchanges"}, "Exchanges"), " › ", h("strong", {}, name), " ", pill("vhost " + vhost)),
    h("div", {class: "cols"}, card("Details", details), card("Publish message", publishForm("exchange-publish", vhost, name, ""))),
    card("Bindings from this exchange", bindings, isDefault ? null : h("h3", {}, "Add binding"), isDefault ? null : form("exchange-bind", [
      {name: "dtype", label: "To", type: "select", options: [["q", "Queue"], ["e", "Exchange"]]},
      {name: "dest", label: "Destination name"}, {name: "routing_key", label: "Routing key"},
      {name: "arguments", label: "Arguments (JSON)", type: "textarea", rows: 1},
    ], "Bind", async v => {
      if (!v.dest) throw new ApiError(400, "bad_request", "Name the destination.");
      await api("bindings/" + enc(vhost) + "/e/" + enc(name) + "/" + v.dtype + "/" + enc(v.dest), {method: "POST",
        json: {routing_key: v.routing_key, arguments: parseJSONField(v.arguments, "Arguments")}});
      toast("Bound to " + v.dest); refresh();
    })),
    isDefault || name.startsWith("amq.") ? null : card("Danger zone", dangerButton("Delete", async () => {
      await api(base, {method: "DELETE"}); toast("Exchange deleted"); location.hash = "#/exchanges";
    }, {id: "delete-exchange"})));
  async function refresh() {
    const x = await api(base);
    const bs = isDefault ? [] : await api(base + "/bindings/source");
    details.replaceChildren(h("dl", {class: "dl"}, h("dt", {}, "Type"), h("dd", {}, x.type),
      h("dt", {}, "Durable"), h("dd", {}, String(x.durable)), h("dt", {}, "Internal"), h("dd", {}, String(x.internal)),
      h("dt", {}, "Arguments"), h("dd", {class: "mono"}, pretty(x.arguments)), h("dt", {}, "Policy"), h("dd", {}, x.policy || "–"),
      h("dt", {}, "Published in"), h("dd", {}, fmtNum((x.message_stats || {}).publish_in)),
      x.delayed_pending !== undefined ? [h("dt", {}, "Delayed pending"), h("dd", {}, h("a", {href: "#/delayed"}, fmtNum(x.delayed_pending)))] : null));
    bindings.replaceChildren(table([{label: "To", render: b => b.destination_type === "queue"
      ? h("a", {href: "#/queue/" + enc(vhost) + "/" + enc(b.destination)}, b.destination) : b.destination},
    {label: "Type", key: "destination_type"}, {label: "Routing key", key: "routing_key"}, {label: "Arguments", render: b => pretty(b.arguments)},
    {label: "", render: b => dangerButton("Unbind", async () => {
      await api("bindings/" + enc(vhost) + "/e/" + enc(name) + "/" + (b.destination_type === "queue" ? "q" : "e") + "/" +
        enc(b.destination) + "/" + enc(b.properties_key), {method: "DELETE"});
      toast("Unbound"); refresh();
    })}], bs, {empty: isDefault ? "The default exchange routes to the queue named by the routing key." : "No bindings."}));
  }
  await refresh();
  return refresh;
};

// -- connections and channels
pages.connections = async (main) => {
  const conns = h("div", {id: "connection-list"}), chans = h("div", {id: "channel-list"});
  main.append(card("Connections", conns), card("Channels", chans));
  async function refresh() {
    const vh = vhostFilter();
    const [cs, chs] = await Promise.all([api(vh ? "vhosts/" + enc(vh) + "/connections" : "connections"),
      api(vh ? "vhosts/" + enc(vh) + "/channels" : "channels")]);
    conns.replaceChildren(table([{label: "Name", key: "name"}, {label: "User", key: "user"}, {label: "Virtual host", key: "vhost"},
      {label: "Client", render: c => ((c.client_properties || {}).product || "") + " " + ((c.client_properties || {}).version || "")},
      {label: "TLS", render: c => c.ssl ? pill("TLS", "ok") : "–"},
      {label: "Channels", key: "channels", num: true},
      {label: "Recv /s", num: true, render: c => fmtBytes(rateOf(c, "recv_oct"))},
      {label: "Send /s", num: true, render: c => fmtBytes(rateOf(c, "send_oct"))},
      {label: "", render: c => dangerButton("Close", async () => {
        await api("connections/" + enc(c.name), {method: "DELETE", headers: {"X-Reason": "Closed from the warren dashboard"}});
        toast("Connection closed"); refresh();
      })}], cs, {empty: "No client connections.", rowAttrs: c => ({"data-connection": c.name})}));
    chans.replaceChildren(table([{label: "Channel", key: "name"}, {label: "User", key: "user"},
      {label: "Mode", render: c => h("span", {}, c.confirm ? pill("confirm", "info") : null, c.transactional ? pill("tx") : null)},
      {label: "Prefetch", key: "prefetch_count", num: true}, {label: "Consumers", key: "consumer_count", num: true},
      {label: "Unacked", key: "messages_unacknowledged", num: true},
      {label: "Publish /s", num: true, render: c => fmtNum(rateOf(c.message_stats, "publish"))},
      {label: "Deliver /s", num: true, render: c => fmtNum(rateOf(c.message_stats, "deliver_get"))}], chs,
    {empty: "No channels.", rowAttrs: c => ({"data-channel": c.name})}));
  }
  await refresh();
  return refresh;
};

// -- delayed messages
const openDelayed = new Set();
pages.delayed = async (main) => {
  const list = h("div", {id: "delayed-list"});
  main.append(card("Delayed-message exchanges", h("p", {class: "muted"},
    "Messages published to an x-delayed-message exchange with an x-delay header wait here until they are due."), list));
  async function refresh() {
    const vh = vhostFilter();
    const xs = await api("delayed" + (vh ? "/" + enc(vh) : ""));
    const blocks = [];
    for (const x of xs) {
      const id = x.vhost + "\u0000" + x.name;
      const open = openDelayed.has(id);
      blocks.push(h("div", {class: "delayed-ex", "data-delayed": x.vhost + " " + x.name},
        h("div", {class: "delayed-head"},
          h("button", {type: "button", class: "ghost", onclick: () => { open ? openDelayed.delete(id) : openDelayed.add(id); refresh(); }}, open ? "▾" : "▸"),
          h("a", {href: "#/exchange/" + enc(x.vhost) + "/" + enc(x.name)}, x.name), pill(x.vhost), pill("routes as " + x.delayed_type, "info"),
          h("span", {class: "delayed-count"}, fmtNum(x.pending) + " pending"),
          h("span", {class: "muted"}, x.next_due ? "next due in " + fmtDuration(x.next_due_in_ms) : "nothing pending"))));
      if (open) {
        const d = await api("exchanges/" + enc(x.vhost) + "/" + enc(x.name) + "/delayed?limit=100");
        blocks.push(table([{label: "Due at", render: m => new Date(m.due).toLocaleString()},
          {label: "Due in", render: m => fmtDuration(m.due_in_ms)}, {label: "Routing key", key: "routing_key"},
          {label: "Message id", key: "message_id"}, {label: "Delay", num: true, render: m => typeof m.delay === "number" ? fmtDuration(m.delay) : "–"},
          {label: "Bytes", key: "payload_bytes", num: true}], d.messages, {empty: "Nothing pending.",
          rowAttrs: m => ({"data-due-in": m.due_in_ms})}));
        if (d.pending > d.messages.length) blocks.push(h("p", {class: "muted"}, "Showing the first " + d.messages.length + " of " + d.pending + "."));
      }
    }
    list.replaceChildren(...(blocks.length ? blocks : [h("p", {class: "muted"}, "No x-delayed-message exchanges.")]));
  }
  await refresh();
  return refresh;
};

// -- admin: users
pages.users = async (main) => {
  const list = h("div", {id: "user-list"});
  const f = form("user-form", [
    {name: "name", label: "Username"}, {name: "password", label: "Password", type: "password", placeholder: "leave empty to keep"},
    {name: "tags", label: "Tags (comma separated)", placeholder: "administrator, monitoring, policymaker, management"},
  ], "Add / update user", async v => {
    if (!v.name) throw new ApiError(400, "bad_request", "A user needs a name.");
    const body = {tags: v.tags};
    if (v.password) body.password = v.password;
    await api("users/" + enc(v.name), {method: "PUT", json: body});
    toast("User " + v.name + " saved");
    f.reset(); refresh();
  });
  main.append(card("Users", list), card("Add or edit a user", f));
  async function refresh() {
    const us = await api("users");
    list.replaceChildren(table([{label: "Name", key: "name"},
      {label: "Tags", render: u => h("span", {}, (Array.isArray(u.tags) ? u.tags : String(u.tags || "").split(",")).filter(Boolean).map(t => pill(t, "info")))},
      {label: "", render: u => h("span", {class: "row-actions"},
        h("button", {type: "button", class: "ghost", onclick: () => setForm(f, {name: u.name, password: "", tags: (Array.isArray(u.tags) ? u.tags : [u.tags]).join(",")})}, "Edit"),
        dangerButton("Delete", async () => { await api("users/" + enc(u.name), {method: "DELETE"}); toast("User deleted"); refresh(); }))}],
    us, {rowAttrs: u => ({"data-user": u.name})}));
  }
  await refresh();
  return refresh;
};

// -- admin: vhosts
pages.vhosts = async (main) => {
  const list = h("div", {id: "vhost-list"});
  const f = form("vhost-form", [
    {name: "name", label: "Name"}, {name: "description", label: "Description"}, {name: "tags", label: "Tags (comma separated)"},
  ], "Add / update virtual host", async v => {
    if (!v.name) throw new ApiError(400, "bad_request", "A virtual host needs a name.");
    await api("vhosts/" + enc(v.name), {method: "PUT", json: {description: v.description, tags: v.tags}});
    toast("Virtual host " + v.name + " saved"); loadVhosts(); refresh();
  });
  main.append(card("Virtual hosts", list), card("Add or edit a virtual host", f));
  async function refresh() {
    const vs = await api("vhosts");
    list.replaceChildren(table([{label: "Name", key: "name"}, {label: "Description", render: v => v.description || "–"},
      {label: "Messages", key: "messages", num: true}, {label: "Ready", key: "messages_ready", num: true},
      {label: "Unacked", key: "messages_unacknowledged", num: true},
      {label: "Firehose", render: v => h("a", {href: "#/trace"}, v.tracing ? pill("on", "warn") : "off")},
      {label: "", render: v => h("span", {class: "row-actions"},
        h("button", {type: "button", class: "ghost", onclick: () => setForm(f, {name: v.name, description: v.description || "",
          tags: ((v.metadata || {}).tags || v.tags || []).join ? ((v.metadata || {}).tags || v.tags || []).join(",") : String(v.tags || "")})}, "Edit"),
        dangerButton("Delete", async () => {
          await api("vhosts/" + enc(v.name), {method: "DELETE"}); toast("Virtual host deleted"); loadVhosts(); refresh();
        }))}], vs, {rowAttrs: v => ({"data-vhost": v.name})}));
  }
  await refresh();
  return refresh;
};

// -- admin: permissions
pages.permissions = async (main) => {
  const list = h("div", {id: "permission-list"});
  const f = form("permission-form", [
    {name: "user", label: "User"}, {name: "vhost", label: "Virtual host", value: vhostFilter() || "/"},
    {name: "configure", label: "Configure regexp", value: ".*"}, {name: "write", label: "Write regexp", value: ".*"},
    {name: "read", label: "Read regexp", value: ".*"},
  ], "Set permission", async v => {
    if (!v.user) throw new ApiError(400, "bad_request", "Name the user.");
    await api("permissions/" + enc(v.vhost) + "/" + enc(v.user), {method: "PUT",
      json: {configure: v.configure, write: v.write, read: v.read}});
    toast("Permission set"); refresh();
  });
  main.append(card("Permissions", list), card("Set a permission", f));
  async function refresh() {
    const ps = await api("permissions");
    list.replaceChildren(table([{label: "User", key: "user"}, {label: "Virtual host", key: "vhost"},
      {label: "Configure", render: p => h("code", {}, p.configure)}, {label: "Write", render: p => h("code", {}, p.write)},
      {label: "Read", render: p => h("code", {}, p.read)},
      {label: "", render: p => h("span", {class: "row-actions"},
        h("button", {type: "button", class: "ghost", onclick: () => setForm(f, p)}, "Edit"),
        dangerButton("Delete", async () => {
          await api("permissions/" + enc(p.vhost) + "/" + enc(p.user), {method: "DELETE"}); toast("Permission removed"); refresh();
        }))}], ps, {rowAttrs: p => ({"data-permission": p.vhost + " " + p.user})}));
  }
  await refresh();
  return refresh;
};

// -- admin: policies
pages.policies = async (main) => {
  const list = h("div", {id: "policy-list"});
  const f = form("policy-form", [
    {name: "vhost", label: "Virtual host", value: vhostFilter() || "/"}, {name: "name", label: "Name"},
    {name: "pattern", label: "Pattern (regexp)", placeholder: "^orders\\."},
    {name: "apply-to", label: "Apply to", type: "select", options: ["all", "queues", "exchanges", "classic_queues", "quorum_queues"]},
    {name: "priority", label: "Priority", type: "number", value: "0"},
    {name: "definition", label: "Definition (JSON)", type: "textarea", rows: 3, placeholder: '{"max-length": 1000, "overflow": "reject-publish"}', wide: true},
  ], "Add / update policy", async v => {
    if (!v.name) throw new ApiError(400, "bad_request", "A policy needs a name.");
    const definition = parseJSONField(v.definition, "Definition");
    const priority = v.priority === "" ? 0 : Number(v.priority);
    if (!Number.isInteger(priority)) throw new ApiError(400, "bad_request", "Priority must be an integer.");
    await api("policies/" + enc(v.vhost) + "/" + enc(v.name), {method: "PUT",
      json: {pattern: v.pattern, definition, priority, "apply-to": v["apply-to"]}});
    toast("Policy " + v.name + " saved"); refresh();
  });
  main.append(card("Policies", list), card("Add or edit a policy", f));
  async function refresh() {
    const vh = vhostFilter();
    const ps = await api("policies" + (vh ? "/" + enc(vh) : ""));
    list.replaceChildren(table([{label: "Virtual host", key: "vhost"}, {label: "Name", key: "name"},
      {label: "Pattern", render: p => h("code", {}, p.pattern)}, {label: "Apply to", key: "apply-to"},
      {label: "Priority", key: "priority", num: true}, {label: "Definition", render: p => h("code", {}, JSON.stringify(p.definition))},
      {label: "", render: p => h("span", {class: "row-actions"},
        h("button", {type: "button", class: "ghost", onclick: () => setForm(f, {vhost: p.vhost, name: p.name, pattern: p.pattern,
          "apply-to": p["apply-to"], priority: p.priority, definition: JSON.stringify(p.definition)})}, "Edit"),
        dangerButton("Delete", async () => {
          await api("policies/" + enc(p.vhost) + "/" + enc(p.name), {method: "DELETE"}); toast("Policy deleted"); refresh();
        }))}], ps, {empty: "No policies.", rowAttrs: p => ({"data-policy": p.vhost + " " + p.name})}));
  }
  await refresh();
  return refresh;
};

// -- admin: limits
pages.limits = async (main) => {
  const vlist = h("div", {id: "vhost-limit-list"}), ulist = h("div", {id: "user-limit-list"});
  main.append(
    h("div", {class: "cols"}, card("Virtual host limits", vlist, form("vhost-limit-form", [
      {name: "vhost", label: "Virtual host", value: vhostFilter() || "/"},
      {name: "limit", label: "Limit", type: "select", options: ["max-connections", "max-queues"]},
      {name: "value", label: "Value (-1 = no limit)", type: "number"},
    ], "Set limit", async v => {
      await api("vhost-limits/" + enc(v.vhost) + "/" + enc(v.limit), {method: "PUT", json: {value: v.value === "" ? null : Number(v.value)}});
      toast("Limit set"); refresh();
    })), card("User limits", ulist, form("user-limit-form", [
      {name: "user", label: "User"},
      {name: "limit", label: "Limit", type: "select", options: ["max-connections", "max-channels"]},
      {name: "value", label: "Value (-1 = no limit)", type: "number"},
    ], "Set limit", async v => {
      if (!v.user) throw new ApiError(400, "bad_request", "Name the user.");
      await api("user-limits/" + enc(v.user) + "/" + enc(v.limit), {method: "PUT", json: {value: v.value === "" ? null : Number(v.value)}});
      toast("Limit set"); refresh();
    }))));
  function flat(items, who) {
    const out = [];
    for (const it of items) for (const [k, v] of Object.entries(it.value || {})) out.push({who: it[who], limit: k, value: v});
    return out;
  }
  async function refresh() {
    const [vl, ul] = await Promise.all([api("vhost-limits"), api("user-limits")]);
    vlist.replaceChildren(table([{label: "Virtual host", key: "who"}, {label: "Limit", key: "limit"}, {label: "Value", key: "value", num: true},
      {label: "", render: r => dangerButton("Clear", async () => {
        await api("vhost-limits/" + enc(r.who) + "/" + enc(r.limit), {method: "DELETE"}); toast("Limit cleared"); refresh();
      })}], flat(vl, "vhost"), {empty: "No virtual host limits."}));
    ulist.replaceChildren(table([{label: "User", key: "who"}, {label: "Limit", key: "limit"}, {label: "Value", key: "value", num: true},
      {label: "", render: r => dangerButton("Clear", async () => {
        await api("user-limits/" + enc(r.who) + "/" + enc(r.limit), {method: "DELETE"}); toast("Limit cleared"); refresh();
      })}], flat(ul, "user"), {empty: "No user limits."}));
  }
  await refresh();
  return refresh;
};

// -- tracing: per-vhost switches and the message-journey lookup
pages.trace = async (main) => {
  const switches = h("div", {id: "tracing-switches"});
  const timeline = h("div", {id: "trace-result"});
  main.append(card("Tracing per virtual host", h("p", {class: "muted"},
    "Journey records every step of messages that carry a message id (look them up below). Firehose republishes every " +
    "message to amq.rabbitmq.trace, as rabbitmqctl trace_on does. Both cost throughput while on."), switches),
  card("Message journey", form("trace-form", [{name: "id", label: "Message id"}, {name: "vhost", label: "Virtual host (optional)"}],
    "Look up", async v => {
      if (!v.id) throw new ApiError(400, "bad_request", "Enter a message id.");
      const r = await api("trace/" + enc(v.id) + (v.vhost ? "?vhost=" + enc(v.vhost) : ""));
      timeline.replaceChildren(r.events.length ? h("ol", {class: "timeline"}, r.events.map(e => h("li", {"data-event": e.event},
        h("span", {class: "tl-time"}, new Date(e.ts * 1000).toISOString().replace("T", " ").slice(0, 23)),
        h("strong", {}, e.event), " ", pill(e.vhost),
        h("span", {class: "tl-detail"}, Object.entries(e).filter(([k]) => !["ts", "vhost", "message_id", "event"].includes(k))
          .map(([k, x]) => k + "=" + (typeof x === "string" ? x : JSON.stringify(x))).join("  ")))))
        : h("p", {class: "muted"}, "No events for this message id (is journey tracing on for its virtual host?)."));
    }), timeline));
  async function refresh() {
    const vs = await api("vhosts");
    const states = await Promise.all(vs.map(v => api("tracing/" + enc(v.name))));
    switches.replaceChildren(table([{label: "Virtual host", key: "vhost"},
      ...["journey", "firehose"].map(kind => ({label: kind === "journey" ? "Journey" : "Firehose", render: s => {
        const input = h("input", {type: "checkbox", checked: s[kind], "data-switch": kind + " " + s.vhost});
        const label = h("span", {class: "switch-label"}, s[kind] ? "on" : "off");
        input.addEventListener("change", async () => {
          label.textContent = input.checked ? "on" : "off";
          try {
            await api("tracing/" + enc(s.vhost), {method: "PUT", json: {[kind]: input.checked}});
            toast(kind + " tracing " + (input.checked ? "on" : "off") + " for " + s.vhost);
          } catch (e) {
            toast(e.message, "error");
            input.checked = !input.checked;
            label.textContent = input.checked ? "on" : "off";
          }
        });
        return h("label", {class: "switch"}, input, h("span", {class: "slider"}), label);
      }}))], states));
  }
  await refresh();
  return refresh;
};

// ---------------------------------------------------------------------------- shell
const TITLES = {overview: "Overview", queues: "Queues", exchanges: "Exchanges", connections: "Connections and channels",
  delayed: "Delayed messages", users: "Users", vhosts: "Virtual hosts", permissions: "Permissions", policies: "Policies",
  limits: "Limits", trace: "Tracing", queue: "Queue", exchange: "Exchange"};

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const parts = raw.split("/").map(decodeURIComponent);
  const name = pages[parts[0]] ? parts[0] : "overview";
  return {name, args: parts.slice(1)};
}

async function render() {
  const {name, args} = parseHash();
  const token = ++current.token;
  current.refresh = null;
  const main = $("#main");
  main.replaceChildren();
  main.removeAttribute("data-ready");
  main.setAttribute("data-page", name);
  $("#page-title").textContent = TITLES[name] || name;
  document.querySelectorAll("#nav a").forEach(a => a.classList.toggle("active",
    a.dataset.page === name || (name === "queue" && a.dataset.page === "queues") || (name === "exchange" && a.dataset.page === "exchanges")));
  try {
    const refresh = await pages[name](main, args);
    if (token !== current.token) return;
    current.refresh = refresh;
    main.setAttribute("data-ready", "1");
    document.body.setAttribute("data-loaded", "1");
  } catch (e) {
    if (token !== current.token) return;
    main.append(h("div", {class: "card error-card", role: "alert"}, h("h2", {}, "Could not load this page"), h("p", {}, e.message)));
    main.setAttribute("data-ready", "error");
  }
}

let polling = false;
async function poll() {
  if (polling || $("#app").hidden) return;
  polling = true;
  try {
    await sampleOverview();
    if (current.refresh) await current.refresh();
    $("#toast").classList.remove("stale");
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) toast("Refresh failed: " + e.message, "error");
  } finally {
    polling = false;
  }
}

async function loadVhosts() {
  const sel = $("#vhost-select");
  const keep = sel.value;
  const vs = await api("vhosts");
  sel.replaceChildren(h("option", {value: ""}, "All"), ...vs.map(v => h("option", {value: v.name, selected: v.name === keep}, v.name)));
}

function showLogin(reason) {
  $("#app").hidden = true;
  $("#login-view").hidden = false;
  const err = $("#login .form-error");
  if (reason && reason !== "Login failed") { err.textContent = reason; err.hidden = false; }
  $("#login input[name=username]").focus();
}

async function startApp(me) {
  $("#login-view").hidden = true;
  $("#app").hidden = false;
  $("#whoami").textContent = me.name;
  $("#whoami").title = "tags: " + (me.tags || []).join(", ");
  // only the overview needs the samples first; other pages render at once
  const warm = Promise.all([loadVhosts().catch(() => {}),
    seedHistory().catch(() => {}).then(() => sampleOverview()).catch(() => {})]);
  if (parseHash().name === "overview") await warm;
  await render();
}

$("#login").addEventListener("submit", async ev => {
  ev.preventDefault();
  const f = ev.target, err = $(".form-error", f);
  err.hidden = true;
  try {
    const me = await api("/session", {method: "POST", json: {username: f.username.value, password: f.password.value}});
    f.password.value = "";
    await startApp(me);
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
});
$("#logout").addEventListener("click", async () => {
  await api("/session", {method: "DELETE"}).catch(() => {});
  location.hash = "";
  showLogin();
});
$("#vhost-select").addEventListener("change", () => render());
window.addEventListener("hashchange", () => render());
window.addEventListener("error", ev => toast("Error: " + ev.message, "error"));
window.addEventListener("unhandledrejection", ev => toast("Error: " + (ev.reason && ev.reason.message || ev.reason), "error"));

(async function boot() {
  try {
    const me = await api("/session");
    await startApp(me);
  } catch (e) {
    showLogin();
  }
  setInterval(poll, POLL_MS);
})();
