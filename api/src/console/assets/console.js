// Tessera's console: reads the node's REST API and draws the cluster. No framework and no
// network beyond the node: everything is built with the DOM, so names and documents are shown
// as text, never parsed as HTML.
"use strict";

const REFRESH_MS = 2000;
const INDEX_REFRESH_MS = 5000;
// Past this many copies on one node, the map shows counts per index instead of squares.
const SQUARES_PER_NODE = 400;
// Indexes whose counts and lag are fetched per refresh (the first ones the filter shows).
const DETAILED_INDEXES = 25;

const state = {
  topology: null, plans: [], health: null, tasks: [], indexes: [],
  details: {}, confirmDrain: null, tab: "map", lastIndexRefresh: 0,
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// With --auth required every call carries an API key: asked for once, kept for this tab.
function withKey(options) {
  const key = sessionStorage.getItem("tessera-api-key");
  const headers = Object.assign({}, (options && options.headers) || {});
  if (key) headers["Authorization"] = `Bearer ${key}`;
  return Object.assign({}, options || {}, { headers });
}

async function authorised(path, options) {
  let response = await fetch(path, withKey(options));
  if (response.status === 401) {
    const key = window.prompt("This node requires an API key (tsk_…); a monitor key shows the cluster, an operator key also runs drains:");
    if (key) {
      sessionStorage.setItem("tessera-api-key", key.trim());
      response = await fetch(path, withKey(options));
    }
  }
  return response;
}

async function api(path, options) {
  const response = await authorised(path, options);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const why = body && (body.error || body.message);
    throw new Error(`${path}: ${response.status}${why ? " " + why : ""}`);
  }
  return body;
}

function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
}

function short(uuid) { return (uuid || "").slice(0, 8); }
function filterText() { return document.getElementById("filter").value.trim().toLowerCase(); }
function matches(...texts) {
  const f = filterText();
  return !f || texts.some((t) => String(t || "").toLowerCase().includes(f));
}

function showError(e) {
  const p = document.getElementById("error");
  p.hidden = !e;
  p.textContent = e ? String(e.message || e) : "";
}

// ---- data ----

async function refresh() {
  try {
    const [topology, plans, health, tasks] = await Promise.all([
      api("/api/ctl/topology"), api("/api/plan"), api("/api/cluster/health"), api("/api/ctl/tasks"),
    ]);
    Object.assign(state, { topology, plans: plans.plans || [], health, tasks: tasks.tasks || [] });
    if (state.tab === "indexes" || state.tab === "query" || state.indexes.length === 0) {
      state.indexes = (await api("/api/index")).indexes || [];
    }
    if (state.tab === "indexes" && Date.now() - state.lastIndexRefresh > INDEX_REFRESH_MS) {
      state.lastIndexRefresh = Date.now();
      refreshDetails();
    }
    showError(null);
    document.getElementById("refreshed").textContent = "updated " + new Date().toLocaleTimeString();
    render();
  } catch (e) {
    showError(e);
  }
}

// Counts and lag of the indexes shown, fetched beside the main refresh.
async function refreshDetails() {
  const shown = state.indexes.filter((d) => matches(d.name)).slice(0, DETAILED_INDEXES);
  await Promise.all(shown.map(async (def) => {
    const name = encodeURIComponent(def.name);
    const [count, status] = await Promise.all([
      api(`/api/index/${name}/count`).catch((e) => ({ error: e.message })),
      api(`/api/index/${name}/status`).catch((e) => ({ error: e.message })),
    ]);
    state.details[def.name] = { count, lag: lagOf(status) };
  }));
  renderIndexes();
}

// Source changes the primaries have yet to apply, from an index's status.
function lagOf(status) {
  if (!status || !status.pindexes) return null;
  let lag = 0;
  for (const p of status.pindexes) {
    for (const c of p.copies || []) {
      if (c.role !== "primary" || !c.partitions) continue;
      for (const part of Object.values(c.partitions)) {
        if (part.high_seq !== null && part.high_seq !== undefined) lag += Math.max(0, part.high_seq - part.seq);
      }
    }
  }
  return lag;
}

// ---- rendering ----

function render() {
  renderHealth();
  renderMap();
  renderTasks();
  if (state.tab === "indexes") renderIndexes();
  renderQueryIndexes();
}

function renderHealth() {
  const h = state.health || {};
  const badge = document.getElementById("health");
  badge.textContent = h.status || "?";
  badge.className = "badge " + (h.status || "");
  const reasons = document.getElementById("reasons");
  const list = h.reasons || [];
  reasons.hidden = list.length === 0;
  reasons.className = "reasons " + (h.status || "");
  reasons.replaceChildren(...list.map((r) => el("div", { class: "reason" }, typeof r === "string" ? r : JSON.stringify(r))));
  const running = state.tasks.filter((t) => t.status === "running").length;
  document.getElementById("task-count").textContent = running ? `(${running})` : "";
}

// Copies per node, per index, from the stored plans.
function copiesByNode() {
  const byNode = new Map();
  for (const plan of state.plans) {
    for (const p of plan.pindexes || []) {
      for (const c of p.copies || []) {
        if (!byNode.has(c.node)) byNode.set(c.node, new Map());
        const byIndex = byNode.get(c.node);
        if (!byIndex.has(plan.index)) byIndex.set(plan.index, []);
        byIndex.get(plan.index).push({ pindex: p.name, index: plan.index, role: c.role, state: c.state });
      }
    }
  }
  return byNode;
}

function drainTaskFor(uuid) {
  return state.tasks.find((t) => t.status === "running" && (t.eject_nodes || []).includes(uuid));
}

function renderMap() {
  const topology = state.topology;
  if (!topology) return;
  const byNode = copiesByNode();
  const missing = (state.health && state.health.missing) || {};
  const groups = new Map();
  for (const n of topology.nodes) {
    const g = n.group || "(no group)";
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(n);
  }
  const rows = [];
  for (const [group, nodes] of [...groups.entries()].sort()) {
    const shown = nodes.filter((n) => matches(n.uuid, n.host_port, group, ...(byNode.get(n.uuid) || new Map()).keys()));
    if (shown.length === 0) continue;
    rows.push(el("tr", { class: "group-row" }, el("td", { colspan: 7 }, `${group} · ${shown.length} node(s)`)));
    for (const n of shown) rows.push(nodeRow(n, byNode.get(n.uuid) || new Map()));
  }
  const missingRow = Object.keys(missing).length
    ? el("tr", { class: "down" }, el("td", { colspan: 6 }, "missing (no copy can serve)"),
        el("td", {}, el("div", { class: "copies" }, Object.entries(missing).filter(([ix]) => matches(ix)).map(([ix, names]) =>
          el("span", { class: "ix" }, el("b", {}, ix), (names || []).map((p) => el("span", { class: "copy missing", title: `${p} missing`, "data-pindex": p })))))))
    : null;
  const table = el("table", { id: "map-table" },
    el("thead", {}, el("tr", {}, ["Node", "Address", "State", "Live", "Copies", "Primaries", "Copies by index"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows, missingRow));
  document.getElementById("map").replaceChildren(table);
}

function nodeRow(n, byIndex) {
  const copies = [...byIndex.values()].reduce((a, l) => a + l.length, 0);
  const draining = drainTaskFor(n.uuid);
  const cls = !n.live ? "down" : draining ? "draining" : "";
  const cell = el("div", { class: "copies" });
  for (const [index, list] of [...byIndex.entries()].sort()) {
    if (!matches(index) && matches(n.uuid, n.host_port, n.group)) { /* node matched: show all */ }
    if (copies > SQUARES_PER_NODE) {
      const by = {};
      for (const c of list) by[`${c.role} ${c.state}`] = (by[`${c.role} ${c.state}`] || 0) + 1;
      cell.append(el("span", { class: "ix", "data-index": index }, el("b", {}, index),
        Object.entries(by).map(([k, v]) => `${v} ${k}`).join(", ")));
    } else {
      cell.append(el("span", { class: "ix", "data-index": index }, el("b", {}, index),
        list.sort((a, b) => a.pindex.localeCompare(b.pindex)).map((c) => el("span", {
          class: `copy ${c.role} ${c.state}`, title: `${c.pindex} · ${c.role} · ${c.state}`,
          "data-pindex": c.pindex, "data-role": c.role, "data-state": c.state, "data-node": n.uuid,
          onclick: () => showPIndex(c.index, c.pindex),
        }))));
    }
  }
  let action;
  if (draining) action = el("span", { class: "muted" }, `draining ${Math.round(draining.progress.percent || 0)}%`);
  else if (state.confirmDrain === n.uuid) {
    action = el("span", {},
      el("button", { class: "danger confirm-drain", onclick: () => drain(n.uuid) }, "Confirm drain"), " ",
      el("button", { onclick: () => { state.confirmDrain = null; renderMap(); } }, "Cancel"));
  } else if (n.wanted && n.live) {
    action = el("button", { class: "drain", onclick: () => { state.confirmDrain = n.uuid; renderMap(); } }, "Drain");
  }
  return el("tr", { class: cls, "data-node": n.uuid, "data-copies": copies },
    el("td", { title: n.uuid }, short(n.uuid), " ", action),
    el("td", {}, n.host_port),
    el("td", {}, n.failed_over ? "failed over" : n.state),
    el("td", {}, n.live ? "yes" : "no"),
    el("td", { class: "copies-count" }, copies),
    el("td", {}, n.primaries),
    el("td", {}, cell));
}

async function drain(uuid) {
  state.confirmDrain = null;
  try {
    await post("/api/ctl/topology-change", { type: "drain", eject_nodes: [uuid] });
    await refresh();
  } catch (e) {
    showError(e);
  }
}

async function showPIndex(index, pindex) {
  const panel = document.getElementById("pindex");
  const plan = state.plans.find((p) => p.index === index);
  const p = plan && plan.pindexes.find((x) => x.name === pindex);
  const explain = el("pre", { id: "explain" }, "…");
  panel.replaceChildren(
    el("button", { style: "float:right", onclick: () => { panel.hidden = true; } }, "×"),
    el("h3", {}, pindex),
    el("div", {}, `index ${index} · source partitions ${(p && p.source_partitions || []).join(", ")}`),
    el("table", {}, el("tbody", {}, (p ? p.copies : []).map((c) =>
      el("tr", {}, el("td", { title: c.node }, short(c.node)), el("td", {}, c.role), el("td", {}, c.state),
        el("td", {}, c.can_read ? "reads" : ""))))),
    el("h4", {}, "Explain"), explain);
  panel.hidden = false;
  try {
    const e = await api(`/api/plan/explain?pindex=${encodeURIComponent(pindex)}`);
    explain.textContent = JSON.stringify(e, null, 2);
  } catch (e) {
    explain.textContent = String(e.message || e);
  }
}

function renderTasks() {
  const rows = state.tasks.slice().sort((a, b) => (b.created_ms || 0) - (a.created_ms || 0)).map((t) => {
    const p = t.progress || {};
    const perNode = Object.entries(p.per_node || {}).map(([n, [inc, out]]) => `${short(n)}: +${inc} −${out}`).join(", ");
    return el("tr", { "data-task": t.id, "data-status": t.status },
      el("td", {}, t.type), el("td", {}, t.status),
      el("td", {}, el("span", { class: "bar" }, el("span", { style: `width:${Math.min(100, p.percent || 0)}%` })), ` ${Math.round(p.percent || 0)}%`),
      el("td", {}, `${p.moves_done || 0}/${p.moves_total || 0}`),
      el("td", {}, p.eta_s === null || p.eta_s === undefined ? "" : `${Math.round(p.eta_s)} s`),
      el("td", {}, perNode),
      el("td", {}, (t.eject_nodes || []).map(short).join(", ")),
      el("td", {}, t.status === "running" ? el("button", { onclick: () => cancelTask(t.id) }, "Cancel") : (t.summary || "")));
  });
  document.getElementById("tasks").replaceChildren(rows.length === 0 ? el("p", { class: "muted" }, "No topology tasks.") :
    el("table", {}, el("thead", {}, el("tr", {}, ["Kind", "Status", "Progress", "Moves", "ETA", "Per node (in/out)", "Nodes out", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)));
}

async function cancelTask(id) {
  try { await post(`/api/ctl/tasks/${encodeURIComponent(id)}/cancel`); await refresh(); } catch (e) { showError(e); }
}

function renderIndexes() {
  const missing = (state.health && state.health.missing) || {};
  const rows = state.indexes.filter((d) => matches(d.name)).map((d) => {
    const plan = state.plans.find((p) => p.index === d.name);
    const detail = state.details[d.name] || {};
    const controls = d.controls || {};
    const health = missing[d.name] && missing[d.name].length ? "red" : "green";
    const count = detail.count ? (detail.count.error ? detail.count.error : detail.count.count) : "…";
    const control = (label, path) => el("button", { onclick: () => indexControl(d.name, path) }, label);
    return el("tr", { "data-index": d.name },
      el("td", {}, el("span", { class: `dot ${health}` }), d.name),
      el("td", {}, d.type), el("td", {}, plan ? plan.pindexes.length : 0),
      el("td", {}, (d.plan && d.plan.replicas) || 0),
      el("td", { class: "docs" }, count),
      el("td", {}, detail.lag === undefined || detail.lag === null ? "…" : detail.lag),
      el("td", {}, controls.ingest_paused ? control("Resume ingest", "ingestControl/resume") : control("Pause ingest", "ingestControl/pause"), " ",
        controls.query_disallowed ? control("Allow queries", "queryControl/allow") : control("Disallow queries", "queryControl/disallow"), " ",
        d.plan && d.plan.frozen ? control("Unfreeze plan", "planFreezeControl/unfreeze") : control("Freeze plan", "planFreezeControl/freeze")));
  });
  document.getElementById("indexes").replaceChildren(el("table", {},
    el("thead", {}, el("tr", {}, ["Index", "Type", "PIndexes", "Replicas", "Documents", "Ingest lag (seqs)", "Controls"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows)));
}

async function indexControl(name, path) {
  try { await post(`/api/index/${encodeURIComponent(name)}/${path}`); await refresh(); } catch (e) { showError(e); }
}

function renderQueryIndexes() {
  const select = document.getElementById("query-index");
  const names = state.indexes.filter((d) => d.type === "fulltext").map((d) => d.name);
  const current = [...select.options].map((o) => o.value);
  if (names.join("\n") === current.join("\n")) return;
  const chosen = select.value;
  select.replaceChildren(...names.map((n) => el("option", { value: n, selected: n === chosen }, n)));
}

async function runQuery(event) {
  event.preventDefault();
  const index = document.getElementById("query-index").value;
  const text = document.getElementById("query-text").value.trim();
  const size = Number(document.getElementById("query-size").value) || 10;
  const out = document.getElementById("query-result");
  const query = text ? { query_string: text } : { match_all: {} };
  out.replaceChildren(el("p", { class: "muted" }, "running…"));
  const response = await authorised(`/api/index/${encodeURIComponent(index)}/query`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ query, size, allow_partial_results: true }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    out.replaceChildren(el("p", { class: "error", id: "query-error" }, `${response.status}: ${body.error || ""}`));
    return;
  }
  const s = body.status || {};
  const errors = Object.entries(s.errors || {});
  out.replaceChildren(...[
    el("div", { class: "summary", id: "query-summary", "data-total": body.total_hits },
      `${body.total_hits} hits · ${Number(body.took_ms || 0).toFixed(1)} ms · PIndexes ${s.successful}/${s.total} answered`,
      response.headers.get("x-trace-id") ? ` · trace ${response.headers.get("x-trace-id")}` : ""),
    errors.length ? el("ul", { class: "error" }, errors.map(([p, e]) => el("li", {}, `${p}: ${e}`))) : null,
    el("table", { id: "hits" }, el("thead", {}, el("tr", {}, ["Id", "Score", "PIndex", "Fields"].map((h) => el("th", {}, h)))),
      el("tbody", {}, (body.hits || []).map((h) => el("tr", { class: "hit" },
        el("td", {}, h.id), el("td", {}, Number(h.score).toFixed(3)), el("td", {}, h.pindex || ""),
        el("td", {}, JSON.stringify(h.fields || {})))))),
  ].filter(Boolean));
}

// ---- tabs ----

function showTab() {
  const tab = (location.hash || "#map").slice(1);
  state.tab = ["map", "tasks", "indexes", "query"].includes(tab) ? tab : "map";
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== `tab-${state.tab}`;
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.tab === state.tab);
  if (state.tab === "indexes") { state.lastIndexRefresh = 0; refresh(); }
}

window.addEventListener("hashchange", showTab);
document.getElementById("filter").addEventListener("input", render);
document.getElementById("query-form").addEventListener("submit", (e) => runQuery(e).catch(showError));
showTab();
refresh();
setInterval(refresh, REFRESH_MS);
