/* edgeprov dashboard page: hash routes, live events (server-sent), views drawn with the DOM and SVG. */
"use strict";

const state = {
  config: { bands: {}, writable: false },
  devices: new Map(),      // device id -> summary from the server
  readings: new Map(),     // device id -> [reading, ...] (oldest first)
  ledger: [],              // per node: {node, url, history: [sample, ...]}
  route: { view: "fleet", args: [] },
};
const MAX_READINGS = 500;
const MAX_HISTORY = 600;

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function cell(label, ...children) {
  return el("td", { "data-label": label }, ...children);
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const text = await response.text();
  let body;
  try { body = text ? JSON.parse(text) : {}; } catch (e) { body = { error: text }; }
  return { ok: response.ok, status: response.status, body };
}

/* ---- values --------------------------------------------------------------------------------- */

function milli(v) { return (v / 1000).toLocaleString(undefined, { maximumFractionDigits: 3 }); }

function inBand(name, v) {
  const band = state.config.bands[name];
  return !band || (v >= band[0] && v <= band[1]);
}

function valuesText(values) {
  return Object.entries(values).map(([k, v]) => `${k}=${milli(v)}`).join(" ");
}

function valuesNode(values) {
  const span = el("span");
  for (const [k, v] of Object.entries(values)) {
    span.append(el("span", { class: inBand(k, v) ? "" : "excursion", title: inBand(k, v) ? "" : "outside its band" },
      `${k}=${milli(v)} `));
  }
  return span;
}

function readingHref(r) { return `#/reading/${encodeURIComponent(r.device)}/${r.epoch}/${r.ctr}`; }

function time(ms) { return ms ? new Date(ms).toLocaleTimeString() : "–"; }

/* ---- fleet ---------------------------------------------------------------------------------- */

function statusWord(online) { return online === true ? "online" : online === false ? "offline" : "unknown"; }

function renderFleet() {
  const body = $("#fleet-table tbody");
  const devices = [...state.devices.values()].sort((a, b) => a.device.localeCompare(b.device));
  body.replaceChildren(...devices.map((d) => {
    const last = d.last;
    const gaps = d.missing ? `${d.missing} missing: ` + d.gaps.map(([a, b]) => (a === b ? a : `${a}–${b}`)).join(", ") : "none";
    return el("tr", { "data-device": d.device },
      cell("Device", el("a", { href: `#/readings/${encodeURIComponent(d.device)}` }, d.device)),
      cell("Gateway", d.gateway),
      cell("Status", el("span", { class: statusWord(d.online) }, statusWord(d.online))),
      cell("Last reading", last ? el("a", { href: readingHref(last) }, valuesNode(last.values), ` at ${time(last.ts_ms)}`) : "–"),
      cell("Counter", `e${d.epoch} #${d.max_ctr}`),
      cell("Gaps", el("span", { class: d.missing ? "excursion" : "" }, gaps)));
  }));
  const online = devices.filter((d) => d.online === true).length;
  $("#fleet-summary").textContent = devices.length ? `${online} of ${devices.length} online` : "";
  $("#fleet-empty").hidden = devices.length > 0;
  renderDeviceSelect();
}

function setBroker(b) {
  const pill = $("#broker");
  pill.className = "pill " + (b.connected ? "up" : "down");
  pill.textContent = b.connected ? "broker connected" : "broker offline";
  pill.title = b.error || "";
}

/* ---- readings ------------------------------------------------------------------------------- */

function renderDeviceSelect() {
  const select = $("#device-select");
  const names = [...state.devices.keys()].sort();
  const current = state.route.view === "readings" ? state.route.args[0] : select.value;
  if ([...select.options].map((o) => o.value).join() !== names.join()) {
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  }
  if (current && names.includes(current)) select.value = current;
}

async function loadReadings(device) {
  const r = await getJSON(`/api/devices/${encodeURIComponent(device)}/readings`);
  if (r.ok) state.readings.set(device, r.body.readings);
}

function renderReadings() {
  const device = $("#device-select").value;
  const readings = state.readings.get(device) || [];
  const names = [...new Set(readings.flatMap((r) => Object.keys(r.values)))].sort();
  const plots = $("#plots");
  for (const fig of [...plots.children]) if (!names.includes(fig.dataset.name)) fig.remove();
  for (const name of names) {
    let fig = plots.querySelector(`[data-name="${name}"]`);
    if (!fig) {
      fig = el("div", { class: "plot", "data-name": name },
        el("h3", {}, `${device} · ${name}` + (state.config.bands[name] ? ` (band ${state.config.bands[name].map(milli).join("–")})` : "")));
      fig.append(svgEl("svg", { class: "chart" }));
      plots.append(fig);
    }
    const points = readings.filter((r) => name in r.values).map((r) => [r.ts_ms, r.values[name] / 1000]);
    const band = state.config.bands[name];
    drawLineChart(fig.querySelector("svg"), [{ name, points }], {
      band: band && band.map((v) => v / 1000),
      bad: band && ((y) => y * 1000 < band[0] || y * 1000 > band[1]),
    });
  }
  const rows = readings.slice(-50).reverse().map((r) => el("tr", { "data-ctr": r.ctr },
    cell("Counter", el("a", { href: readingHref(r) }, `e${r.epoch} #${r.ctr}`)),
    cell("Time", time(r.ts_ms)),
    cell("Values", valuesNode(r.values)),
    cell("Status", el("span", { class: r.status, title: r.reason }, r.status + (r.reason ? ` (${r.reason})` : "")))));
  $("#readings-table tbody").replaceChildren(...rows);
}

/* ---- one reading ---------------------------------------------------------------------------- */

function facts(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v instanceof Node ? v : String(v))]));
}

async function renderReading(device, epoch, ctr) {
  $("#reading-title").textContent = `${device} e${epoch} #${ctr}`;
  $("#reading-message").textContent = "";
  const answer = await getJSON(`/api/readings/${encodeURIComponent(device)}/${epoch}/${ctr}`);
  const { local, ledger, record_id: id } = answer.body;
  state.recordId = id;
  facts($("#reading-local"), local ? [
    ["gateway", local.gateway], ["measured", new Date(local.ts_ms).toISOString()],
    ["seen on broker", new Date(local.received_ms).toISOString()], ["values", valuesNode(local.values)],
    ["excursions", local.excursions.join(", ") || "none"], ["inputs", local.inputs.join(", ") || "none"],
    ["gateway ack", el("span", { class: local.status }, local.status + (local.reason ? ` (${local.reason})` : ""))],
  ] : [["broker", "this dashboard has not seen that reading since it started"]]);
  $("#proof-link").href = `/api/proof/${encodeURIComponent(id)}`;
  $("#proof-link").download = `proof-${device}-${epoch}-${ctr}.json`;
  $("#proof-link").hidden = !ledger.ok;
  if (!ledger.ok) {
    facts($("#reading-ledger"), [["ledger", ledger.status === 404 ? "not on the ledger (yet)" : errorText(ledger)]]);
    $("#reading-hops").replaceChildren();
    return;
  }
  const r = ledger.body;
  facts($("#reading-ledger"), ledgerFacts(r));
  const hops = r.hops || (r.record && r.record.hops) || [];
  $("#reading-hops").replaceChildren(...hops.map((h) => el("li", {},
    `${h.gateway} received ${new Date(h.received_ms).toISOString()}`,
    h.verified === undefined ? "" : el("span", { class: h.verified ? "committed" : "rejected" }, h.verified ? " ✓ signed" : " ✗ bad signature"))));
}

function errorText(answer) {
  const b = answer.body || {};
  return b.error || (typeof b.detail === "string" ? b.detail : JSON.stringify(b.detail || b)) || `HTTP ${answer.status}`;
}

function ledgerFacts(r) {
  const commit = r.commit || {};
  const checks = (r.verifications || []).map((v) => `${v.ok ? "ok" : "FAILED"} (asked by ${v.asked_by.slice(0, 12)}, ${new Date(v.committed_ms).toISOString()})`);
  return [
    ["record", r.id],
    ["committed", commit.status === "committed" ? "yes" : commit.status || "unknown"],
    ["block height", commit.height ?? "–"],
    ["index in block", commit.index ?? "–"],
    ["committed at", r.committed_ms ? new Date(r.committed_ms).toISOString() : "–"],
    ["verified", el("span", { class: r.valid ? "committed" : "rejected" }, r.valid ? "yes: signature and policy checked by the endorsers" : "no (invalidated)")],
    ["late", r.late ? "yes (arrived after the skew window)" : "no"],
    ["verification requests", checks.join("; ") || "none yet"],
  ];
}

async function requestVerification() {
  const token = $("#token").value.trim();
  const response = await fetch(`/api/verify/${encodeURIComponent(state.recordId)}`, {
    method: "POST", headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  const text = await response.text();
  $("#reading-message").textContent = response.ok ? `verification requested: ${text.slice(0, 300)}` : `refused: ${text.slice(0, 300)}`;
}

/* ---- ledger health -------------------------------------------------------------------------- */

function renderLedger() {
  const rows = state.ledger.map((n) => {
    const s = n.history[n.history.length - 1] || { up: false, error: "not polled yet" };
    return el("tr", { "data-node": n.node },
      cell("Node", el("span", { title: n.url }, `node ${n.node}`)),
      cell("Up", el("span", { class: s.up ? "online" : "offline", title: s.error || "" }, s.up ? "up" : "down")),
      cell("Height", s.up ? s.height : "–"), cell("Round", s.up ? s.round : "–"),
      cell("Leader", s.up ? `node ${s.leader}` : "–"),
      cell("tx/s", s.up ? s.tx_per_s.toFixed(1) : "–"),
      cell("Latency", s.up && s.latency_ms !== null ? `${s.latency_ms.toFixed(1)} ms` : "–"));
  });
  $("#nodes-table tbody").replaceChildren(...rows);
  if (state.route.view !== "ledger") return;
  const series = (key) => state.ledger.map((n) => ({
    name: `node ${n.node}`,
    points: n.history.filter((s) => s.up && s[key] !== null).map((s) => [s.t_ms, s[key]]),
  }));
  drawLineChart($("#chart-tps"), series("tx_per_s"));
  drawLineChart($("#chart-latency"), series("latency_ms"));
  drawLineChart($("#chart-height"), series("height"), { fmtY: (v) => String(Math.round(v)) });
}

/* ---- lineage -------------------------------------------------------------------------------- */

/* The lineage API's graph: nodes {id: summary}, edges [record, input]; drawn input -> record. */
function normalizeGraph(body) {
  const nodes = new Map(Object.entries(body.nodes).map(([id, n]) => [id, { ...n, id }]));
  const edges = body.edges.map(([record, input]) => {
    const a = nodes.get(input), b = nodes.get(record);
    return { from: input, to: record, kind: a && b && a.dp && a.dp === b.dp ? "lineage" : "derivation" };
  });
  return { nodes, edges };
}

function subtitle(n) {
  if (n.missing) return "missing";
  if (n.kind === "reading") return `reading ${valuesText(n.values || {})}`;
  const c = n.context || {};
  return [c.event, c.location, c.temperature !== undefined ? `${c.temperature}${c.unit ? " " + c.unit : ""}` : ""]
    .filter(Boolean).join(" · ") || n.kind || "";
}

/* Layers by longest path from the sources, so every edge points rightwards (inputs left of outputs). */
function layout(graph) {
  const layer = new Map([...graph.nodes.keys()].map((id) => [id, 0]));
  for (let i = 0; i < graph.nodes.size; i++) {
    let moved = false;
    for (const e of graph.edges) {
      if (layer.get(e.to) < layer.get(e.from) + 1 && layer.get(e.from) + 1 < graph.nodes.size) {
        layer.set(e.to, layer.get(e.from) + 1); moved = true;
      }
    }
    if (!moved) break;
  }
  const columns = [];
  for (const [id, l] of layer) (columns[l] = columns[l] || []).push(id);
  const pos = new Map();
  const rows = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  // Each column centred on the tallest one, so a fan-in points at the middle of its inputs.
  columns.forEach((ids, x) => ids.sort().forEach((id, y) => pos.set(id, { x, y: y + (rows - ids.length) / 2 })));
  return { pos, columns: columns.length, rows };
}

function label(id) { return id.length > 22 ? id.slice(0, 10) + "…" + id.slice(-10) : id; }

function drawLineage(graph, root) {
  const svg = $("#lineage-graph");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const { pos, columns, rows } = layout(graph);
  const BW = 170, BH = 40;
  // Inputs left of outputs; on a narrow screen inputs above outputs, so the graph fits a phone.
  const vertical = svg.parentElement.clientWidth < 600;
  const [W, H] = vertical ? [BW + 16, 100] : [260, 60];
  const [across, down] = vertical ? [rows, columns] : [columns, rows];
  svg.setAttribute("width", across * W + 20);
  svg.setAttribute("height", down * H + 20);
  const defs = svgEl("defs", {}, svg);
  const marker = svgEl("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, defs);
  svgEl("path", { d: "M0,0 L10,5 L0,10 z", fill: "#5b6570" }, marker);
  const at = (id) => {
    const { x, y } = pos.get(id);
    return vertical ? { x: 10 + y * W, y: 10 + x * H } : { x: 10 + x * W, y: 10 + y * H };
  };
  for (const e of graph.edges) {
    const a = at(e.from), b = at(e.to);
    const [x1, y1, x2, y2] = vertical ? [a.x + BW / 2, a.y + BH, b.x + BW / 2, b.y] : [a.x + BW, a.y + BH / 2, b.x, b.y + BH / 2];
    const d = vertical ? `M${x1},${y1} C${x1},${y1 + 25} ${x2},${y2 - 25} ${x2},${y2}` : `M${x1},${y1} C${x1 + 20},${y1} ${x2 - 20},${y2} ${x2},${y2}`;
    svgEl("path", { class: "edge", "data-from": e.from, "data-to": e.to, d }, svg);
    if (e.kind) svgEl("text", { class: "edge-label", x: (x1 + x2) / 2 + (vertical ? 4 : 0), y: (y1 + y2) / 2 - 3, "text-anchor": vertical ? "start" : "middle" }, svg).textContent = e.kind;
  }
  for (const [id, n] of graph.nodes) {
    const p = at(id);
    const invalid = n.valid === false || n.invalidated === true;
    const excursion = Object.entries(n.values || {}).some(([k, v]) => !inBand(k, v));
    const g = svgEl("g", { class: "node" + (id === root ? " root" : "") + (invalid ? " invalid" : "") + (excursion ? " excursion" : ""), "data-id": id, tabindex: 0 }, svg);
    svgEl("rect", { x: p.x, y: p.y, width: BW, height: BH }, g);
    svgEl("text", { x: p.x + 8, y: p.y + 16 }, g).textContent = label(id);
    svgEl("text", { class: "sub", x: p.x + 8, y: p.y + 31 }, g).textContent = label(subtitle(n));
    svgEl("title", {}, g).textContent = id;
    const open = () => { location.hash = `#/lineage/${encodeURIComponent(id)}`; };
    g.addEventListener("click", open);
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(); });
  }
}

/* Record ids among a record's fields (its inputs) link to their own lineage: click through records. */
function factValue(key, value) {
  if (key === "inputs" && Array.isArray(value)) {
    const span = el("span");
    value.forEach((id, i) => span.append(i ? ", " : "", el("a", { href: `#/lineage/${encodeURIComponent(id)}` }, id)));
    return value.length ? span : "none";
  }
  return value !== null && typeof value === "object" ? JSON.stringify(value) : value;
}

async function renderLineage(id) {
  const message = $("#lineage-message");
  $("#lineage-id").value = id || "";
  if (!id) { message.textContent = "Enter a data point or record id."; return; }
  message.textContent = "loading…";
  const depth = $("#lineage-depth").value || 10;
  const r = (await getJSON(`/api/ledger/lineage/${encodeURIComponent(id)}?depth=${depth}`)).body;
  if (!r.ok) {
    $("#lineage-graph").replaceChildren();
    facts($("#record-facts"), []);
    $("#record-title").hidden = true;
    message.textContent = r.status === 404 ? `no record or data point ${id} on the ledger` : errorText(r);
    return;
  }
  const graph = normalizeGraph(r.body);
  message.textContent = `${graph.nodes.size} records, ${graph.edges.length} edges` + (r.body.truncated ? " (cut at the depth limit)" : "");
  drawLineage(graph, id);
  const full = (await getJSON(`/api/ledger/record/${encodeURIComponent(id)}`)).body;
  const rec = full.ok ? full.body : graph.nodes.get(id);
  $("#record-title").hidden = false;
  $("#record-title").textContent = `Record ${id}`;
  facts($("#record-facts"), Object.entries(rec).filter(([k]) => k !== "id").map(([k, v]) => [k, factValue(k, v)]));
}

/* ---- routing and live events ---------------------------------------------------------------- */

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const view = parts[0] || "fleet";
  return { view, args: parts.slice(1) };
}

async function route() {
  state.route = parseRoute();
  const { view, args } = state.route;
  const known = ["fleet", "readings", "reading", "ledger", "lineage"];
  const shown = known.includes(view) ? view : "fleet";
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${shown}`;
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.view === shown || (shown === "reading" && a.dataset.view === "readings"));
  }
  if (shown === "readings") {
    renderDeviceSelect();
    if (args[0]) $("#device-select").value = args[0];
    const device = $("#device-select").value;
    if (device) await loadReadings(device);
    renderReadings();
  } else if (shown === "reading") {
    await renderReading(args[0], Number(args[1]), Number(args[2]));
  } else if (shown === "ledger") {
    renderLedger();
  } else if (shown === "lineage") {
    await renderLineage(args[0]);
  }
}

function onReading(r) {
  const list = state.readings.get(r.device) || [];
  list.push(r);
  if (list.length > MAX_READINGS) list.shift();
  state.readings.set(r.device, list);
  if (state.route.view === "readings" && $("#device-select").value === r.device) renderReadings();
}

function onAck(r) {
  const list = state.readings.get(r.device) || [];
  const i = list.findIndex((x) => x.epoch === r.epoch && x.ctr === r.ctr);
  if (i >= 0) list[i] = r;
  if (state.route.view === "readings") renderReadings();
  const [d, e, c] = state.route.args;
  if (state.route.view === "reading" && d === r.device && Number(e) === r.epoch && Number(c) === r.ctr) route();
}

function onLedger(data) {
  data.nodes.forEach((sample, i) => {
    const node = state.ledger[i];
    if (!node) return;
    node.history.push(sample);
    if (node.history.length > MAX_HISTORY) node.history.shift();
  });
  renderLedger();
}

function connectEvents() {
  const source = new EventSource("/events");
  source.addEventListener("device", (ev) => { const d = JSON.parse(ev.data); state.devices.set(d.device, d); renderFleet(); });
  source.addEventListener("reading", (ev) => onReading(JSON.parse(ev.data)));
  source.addEventListener("ack", (ev) => onAck(JSON.parse(ev.data)));
  source.addEventListener("broker", (ev) => setBroker(JSON.parse(ev.data)));
  source.addEventListener("ledger", (ev) => onLedger(JSON.parse(ev.data)));
  window.addEventListener("beforeunload", () => source.close());
}

async function start() {
  const [config, fleet, health] = await Promise.all([getJSON("/api/config"), getJSON("/api/fleet"), getJSON("/api/ledger/health")]);
  state.config = config.body;
  for (const d of fleet.body.devices) state.devices.set(d.device, d);
  state.ledger = health.body.nodes;
  setBroker(fleet.body.broker);
  $("#mode").textContent = state.config.writable ? "writes need the token" : "read-only";
  $("#token-label").hidden = !state.config.writable;
  $("#verify-button").disabled = !state.config.writable;
  $("#verify-button").addEventListener("click", requestVerification);
  $("#device-select").addEventListener("change", () => { location.hash = `#/readings/${encodeURIComponent($("#device-select").value)}`; });
  $("#lineage-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("#lineage-id").value.trim();
    const target = `#/lineage/${encodeURIComponent(id)}`;
    if (location.hash === target) route(); else location.hash = target;
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => { if (state.route.view === "readings") renderReadings(); else if (state.route.view === "ledger") renderLedger(); });
  renderFleet();
  connectEvents();
  await route();
  document.body.dataset.ready = "1";
}

start();
