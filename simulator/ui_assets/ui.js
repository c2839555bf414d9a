// partnersim dashboard: plain JS, no dependencies, nothing fetched but this
// fake partner's own /__sim/ endpoints. One event stream feeds the page; every
// change goes through the admin API, with the admin token when one is set.
"use strict";

const MAX_ENTRIES = 2000; // kept in the page
const MAX_ROWS = 100; // drawn in the table
const TOKEN_KEY = "partnersim-admin-token";
const ACTIONS = ["status", "rate_limit", "malformed", "schema_drift", "cursor_drift",
  "disconnect", "auth"];

const $ = (id) => document.getElementById(id);
const view = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  entries: new Map(), // seq -> entry
  paused: false,
  frozenAt: 0, // the newest seq shown when the journal was paused
  unseen: 0, // arrived while paused
  skipped: 0, // not sent: more arrived in a tick than a page is sent
  filters: { path: "", status: "", rule: "", fault: "" },
  scenario: null, // {name, seed, yaml}
  editorDirty: false,
  justApplied: false, // the next scenario the stream reports is the one we applied
  stream: null, // AbortController of the open stream
  rates: [], // [time, seq] samples for req/s
  lastSeq: 0,
  selected: null,
  readyLoaded: false,
  started: null, // when the fake partner behind the stream started
  judgedAt: 0, // when the verdicts were last asked for
  judgedSeq: -1, // the newest seq they covered
  tabStop: null, // seq of the row that holds the list's one tab stop
  tabStopRow: null,
};

// --- helpers -------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function headers(extra = {}) {
  return view.token ? { ...extra, "X-Admin-Token": view.token } : extra;
}

class TokenNeeded extends Error {}

async function api(method, path, body) {
  const init = { method, headers: headers(body ? { "Content-Type": "application/yaml" } : {}) };
  if (body !== undefined) init.body = body;
  const response = await fetch(path, init);
  let payload = null;
  try { payload = await response.json(); } catch { payload = null; }
  if (response.status === 401 && payload && payload.error === "admin_token_required") {
    askToken(view.token ? "That token was refused." : "");
    throw new TokenNeeded();
  }
  return { status: response.status, payload };
}

let toastTimer = 0;
function toast(text, kind = "") {
  const node = $("toast");
  node.textContent = text;
  node.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.className = "toast"; }, 3500);
}

function setConn(kind, text) {
  $("conn").dataset.state = kind;
  $("conn-text").textContent = text;
}

function clock(at) {
  const d = new Date(at * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function compact(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "object") return String(value);
  if (Array.isArray(value)) return `[${value.map(compact).join(", ")}]`;
  return `{${Object.entries(value).map(([k, v]) => `${k}: ${compact(v)}`).join(", ")}}`;
}

// "status 503 · latency" — what a fault did, in a few words.
function faultSummary(fault) {
  if (!fault || typeof fault !== "object") return "";
  if (Array.isArray(fault.one_of)) {
    return `one_of: ${fault.one_of.length} faults`;
  }
  const parts = [];
  for (const key of ACTIONS) {
    if (!(key in fault)) continue;
    const value = fault[key];
    parts.push(typeof value === "object" ? `${key} ${compact(value)}` : `${key} ${value}`);
  }
  if ("retry_after" in fault) parts.push(`retry_after ${fault.retry_after}`);
  if ("latency" in fault) parts.push("latency");
  if ("dribble" in fault) parts.push("dribble");
  if (fault.skipped) parts.push(`(${fault.skipped})`);
  return parts.join(" · ");
}

function statusText(entry) {
  if (entry.status !== null && entry.status !== undefined) return String(entry.status);
  return entry.duration_ms === null || entry.duration_ms === undefined ? "…" : "cut";
}

function statusClass(entry) {
  const text = statusText(entry);
  if (text === "cut") return "s-cut";
  if (text === "…") return "s-flight";
  return `s-${text[0]}xx`;
}

// --- journal -------------------------------------------------------------------

function matchesStatus(entry, wanted) {
  if (!wanted) return true;
  const text = statusText(entry);
  return wanted.split(/[\s,]+/).filter(Boolean).some((term) => {
    term = term.toLowerCase();
    if (term === "cut") return text === "cut";
    if (term === "…" || term === "flight" || term === "pending") return text === "…";
    if (/^\dxx$/.test(term)) return text[0] === term[0] && text.length === 3;
    return text === term;
  });
}

function matchesRule(entry, wanted) {
  if (!wanted) return true;
  const term = wanted.trim().toLowerCase();
  const rule = entry.rule === null || entry.rule === undefined ? "" : String(entry.rule).toLowerCase();
  if (term === "none") return rule === "";
  if (term === "any") return rule !== "";
  return rule !== "" && rule.includes(term);
}

function visible(entry) {
  const f = view.filters;
  if (f.path && !entry.path.toLowerCase().includes(f.path.toLowerCase())) return false;
  if (!matchesStatus(entry, f.status)) return false;
  if (!matchesRule(entry, f.rule)) return false;
  if (f.fault) {
    const summary = faultSummary(entry.fault).toLowerCase();
    const term = f.fault.trim().toLowerCase();
    if (term === "none" ? summary !== "" : !summary.includes(term)) return false;
  }
  return true;
}

function addEntries(batch) {
  let unordered = false;
  for (const entry of batch.entries) {
    const known = view.entries.has(entry.seq);
    if (!known && entry.seq < view.lastSeq) unordered = true;
    view.entries.set(entry.seq, entry);
    if (!known) {
      if (view.paused) view.unseen += 1;
      view.lastSeq = Math.max(view.lastSeq, entry.seq);
    }
  }
  if (unordered) { // e.g. after a reconnect: keep the Map in seq order
    view.entries = new Map([...view.entries].sort((a, b) => a[0] - b[0]));
  }
  view.skipped += batch.skipped || 0;
  dropBefore(batch.first);
  trim();
  if (view.paused) $("pause").textContent = view.unseen ? `Resume (${view.unseen} new)` : "Resume";
  scheduleRender();
  verdictsDue();
}

function dropBefore(first) {
  // The journal was cleared or its ring moved on: drop what it no longer holds.
  if (!first) view.skipped = 0;
  let dropped = 0;
  for (const seq of view.entries.keys()) {
    if (first && seq >= first) break; // insertion order is seq order
    view.entries.delete(seq);
    dropped += 1;
  }
  return dropped > 0;
}

function trim() {
  // A Map iterates in insertion order, which is seq order: the oldest come first.
  for (const seq of view.entries.keys()) {
    if (view.entries.size <= MAX_ENTRIES) break;
    view.entries.delete(seq);
  }
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; renderJournal(); });
}

const rowCache = new Map(); // seq -> {entry, tr}: a row is rebuilt only when its entry changed

function rowFor(entry) {
  const cached = rowCache.get(entry.seq);
  const tr = cached && cached.entry === entry ? cached.tr : row(entry);
  tr.classList.toggle("selected", String(view.selected) === String(entry.seq));
  rowCache.set(entry.seq, { entry, tr });
  return tr;
}

function renderJournal() {
  const body = $("journal-rows");
  const focused = document.activeElement && document.activeElement.closest
    ? document.activeElement.closest(".jrow[data-seq]") : null;
  const focusSeq = focused ? focused.dataset.seq : null;
  const seqs = [...view.entries.keys()].reverse(); // newest first (insertion order is seq order)
  const rows = [];
  let matching = 0;
  for (const seq of seqs) {
    if (view.paused && seq > view.frozenAt) continue; // arrived while paused
    const entry = view.entries.get(seq);
    if (!visible(entry)) continue;
    matching += 1;
    if (rows.length < MAX_ROWS) rows.push(rowFor(entry));
  }
  // Move only what moved: rows that stay keep their element (and focus).
  let cursor = body.firstChild;
  for (const tr of rows) {
    if (tr === cursor) { cursor = cursor.nextSibling; continue; }
    body.insertBefore(tr, cursor);
  }
  while (cursor) { const next = cursor.nextSibling; cursor.remove(); cursor = next; }
  for (const seq of rowCache.keys()) if (!view.entries.has(seq)) rowCache.delete(seq);
  const filtered = Object.values(view.filters).some(Boolean);
  $("journal-count").textContent = filtered ? `${matching} of ${view.entries.size}` : `${view.entries.size}`;
  $("journal-empty").hidden = rows.length > 0;
  $("journal-empty").textContent = view.entries.size && filtered
    ? "No request matches these filters."
    : "No requests yet. Point a client at this fake partner and they appear here as they arrive.";
  const notes = [];
  if (view.skipped) notes.push(`${view.skipped} entries arrived too fast to show; the journal keeps them (GET /__sim/journal).`);
  if (matching > MAX_ROWS) notes.push(`Showing the newest ${MAX_ROWS} of ${matching}.`);
  $("journal-note").textContent = notes.join(" ");
  // One tab stop for the whole list (a roving tabindex): the row last focused,
  // or the newest; the arrow keys move from there.
  const stop = body.querySelector(`.jrow[data-seq="${view.tabStop}"]`) || body.firstChild;
  if (stop !== view.tabStopRow) {
    if (view.tabStopRow) view.tabStopRow.tabIndex = -1;
    if (stop) stop.tabIndex = 0;
    view.tabStopRow = stop;
  }
  if (focusSeq && document.activeElement !== focused) {
    const again = body.querySelector(`.jrow[data-seq="${focusSeq}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

function row(entry) {
  const status = statusText(entry);
  const rule = entry.rule === null || entry.rule === undefined ? "" : String(entry.rule);
  const fault = faultSummary(entry.fault);
  const query = entry.query && Object.keys(entry.query).length
    ? "?" + new URLSearchParams(entry.query).toString() : "";
  const tr = el("div", { role: "row", class: "jrow", "data-seq": entry.seq, tabindex: "-1",
    "aria-label": `${entry.method} ${entry.path} ${status === "…" ? "in flight" : status}${rule ? `, rule ${rule}` : ""}${fault ? `, ${fault}` : ""}` },
  el("span", { role: "cell", class: "c-time mono", text: clock(entry.at) }),
  el("span", { role: "cell", class: "c-method", text: entry.method }),
  el("span", { role: "cell", class: "c-path mono", title: entry.path + query }, entry.path, query ? el("span", { class: "query", text: query }) : null),
  el("span", { role: "cell", class: "c-status" }, el("span", { class: `badge ${statusClass(entry)}`, text: status })),
  el("span", { role: "cell", class: "c-rule", text: rule, title: rule }),
  el("span", { role: "cell", class: "c-fault", text: fault, title: fault }),
  el("span", { role: "cell", class: "c-ms mono", text: entry.duration_ms === null ? "" : Number(entry.duration_ms).toFixed(1) }));
  return tr;
}

function kvTable(caption, data, empty) {
  const names = Object.keys(data || {});
  if (!names.length) return el("p", { class: "muted", text: empty });
  return el("table", { class: "kv" }, el("caption", { text: caption }),
    el("tbody", {}, ...names.sort().map((name) => el("tr", {},
      el("th", { scope: "row", class: "mono", text: name }),
      el("td", { class: "mono", text: String(data[name]) })))));
}

function openDetail(seq) {
  const entry = view.entries.get(Number(seq));
  if (!entry) return;
  view.selected = entry.seq;
  const status = statusText(entry);
  $("detail-title").textContent = `${entry.method} ${entry.path}`;
  const facts = el("dl", { class: "facts" },
    el("dt", { text: "Status" }), el("dd", {}, el("span", { class: `badge ${statusClass(entry)}`, text: status === "…" ? "in flight" : status }),
      status === "cut" ? " the connection was cut" : ""),
    el("dt", { text: "Duration" }), el("dd", { text: entry.duration_ms === null ? "—" : `${entry.duration_ms} ms` }),
    el("dt", { text: "Arrived" }), el("dd", { text: `${clock(entry.at)} (seq ${entry.seq})` }),
    el("dt", { text: "Rule" }), el("dd", { text: entry.rule === null ? "none — the normal answer" : String(entry.rule) }),
    el("dt", { text: "Fault" }), el("dd", {}, entry.fault ? el("code", { text: JSON.stringify(entry.fault) }) : "none"));
  $("detail-body").replaceChildren(facts,
    el("h3", { text: "Query" }), kvTable("Query parameters", entry.query, "No query."),
    el("h3", { text: "Headers" }), kvTable("Request headers (secrets redacted)", entry.headers, "No headers."),
    el("p", { class: "muted small", text: "Authorization and cookie values are redacted before the journal keeps them." }));
  const dialog = $("detail");
  if (!dialog.open) dialog.showModal();
  scheduleRender();
}

// --- rules, health, scenario ---------------------------------------------------

function matchSummary(match) {
  if (!match || !Object.keys(match).length) return "every request";
  const parts = [];
  if (match.method) parts.push(Array.isArray(match.method) ? match.method.join("|") : match.method);
  if (match.path) parts.push(match.path);
  if (match.query) parts.push(`query ${compact(match.query)}`);
  if (match.headers) parts.push(`headers ${compact(match.headers)}`);
  return parts.join(" ");
}

function renderRules(rules) {
  const key = JSON.stringify(rules);
  if (key === view.rulesKey) return;
  view.rulesKey = key;
  $("rules-count").textContent = rules.length ? String(rules.length) : "";
  $("rules-empty").hidden = rules.length > 0;
  $("rules").replaceChildren(...rules.map((rule) => {
    const thinning = [];
    if (rule.after) thinning.push(`after ${rule.after}`);
    if (rule.every > 1) thinning.push(`every ${rule.every}`);
    if (rule.probability !== null) thinning.push(`p ${rule.probability}`);
    const budget = rule.times === null
      ? el("p", { class: "budget-text" }, el("strong", { text: String(rule.spent) }), " acted · no cap")
      : el("p", { class: "budget-text" }, el("strong", { text: String(rule.spent) }), ` spent · `,
        el("strong", { text: String(rule.left) }), ` left of ${rule.times}`);
    const bar = rule.times === null ? null : el("progress", {
      max: String(rule.times), value: String(Math.min(rule.spent, rule.times)),
      "aria-label": `${rule.label}: ${rule.spent} of ${rule.times} spent` });
    const name = typeof rule.label === "number" ? `rule ${rule.label}` : rule.label;
    return el("li", { class: `rule ${rule.left === 0 ? "spent" : ""}`, "data-rule": String(rule.label) },
      el("div", { class: "rule-head" },
        el("span", { class: "rule-index", text: `#${rule.index}` }),
        el("strong", { class: "rule-name", text: name }),
        thinning.length ? el("span", { class: "chips" }, ...thinning.map((t) => el("span", { class: "chip", text: t }))) : null),
      el("p", { class: "rule-line" }, el("span", { class: "muted", text: "match " }), el("code", { text: matchSummary(rule.match) })),
      el("p", { class: "rule-line" }, el("span", { class: "muted", text: "fault " }), el("code", { text: faultSummary(rule.fault) || compact(rule.fault) })),
      el("div", { class: "budget" }, budget, bar));
  }));
}

const HEALTH_LABELS = {
  status: "status", scenario: null, seed: "seed", orders: "orders", rules: "rules",
  journal_entries: null, journal_size: null, uptime_s: "uptime", mode: "mode",
  cassette: "cassette", interactions: "interactions", distinct_requests: "distinct requests",
};

function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function renderHealth(health) {
  const key = JSON.stringify(health) + view.lastSeq;
  if (key === view.healthKey) return;
  view.healthKey = key;
  const items = [];
  const add = (label, value, id) => items.push(el("div", { class: "fig", id },
    el("dt", { text: label }), el("dd", { text: value })));
  add("requests/s", rate(), "fig-rate");
  add("journal", `${health.journal_entries} / ${health.journal_size}`);
  for (const [key, value] of Object.entries(health)) {
    if (!(key in HEALTH_LABELS)) { add(key.replaceAll("_", " "), compact(value)); continue; }
    const label = HEALTH_LABELS[key];
    if (!label) continue;
    add(label, key === "uptime_s" ? duration(value) : compact(value));
  }
  $("health").replaceChildren(...items);
  $("mode").textContent = health.mode === "replay" ? "replaying a cassette" : "fake partner";
  $("scenario-name").textContent = health.scenario;
}

function rate() {
  const now = performance.now() / 1000;
  view.rates.push([now, view.lastSeq]);
  while (view.rates.length > 2 && now - view.rates[0][0] > 5) view.rates.shift();
  const [t0, s0] = view.rates[0];
  return now - t0 > 0.5 ? ((view.lastSeq - s0) / (now - t0)).toFixed(1) : "—";
}

function onState(data) {
  if (view.started !== null && view.started !== data.started) {
    // Another fake partner now answers at this address (it was restarted):
    // its journal counts from 1 again, so nothing shown so far is its own.
    view.entries.clear();
    view.lastSeq = 0;
    view.skipped = 0;
    view.scenario = null;
    scheduleRender();
  }
  view.started = data.started;
  renderHealth(data.health);
  renderRules(data.rules);
  if (dropBefore(data.journal_first)) { scheduleRender(); view.judgedSeq = -1; verdictsDue(); }
  // The stream sends the YAML only when the running scenario changed.
  const yaml = data.scenario.yaml;
  const changed = yaml !== undefined && (!view.scenario || view.scenario.yaml !== yaml);
  view.scenario = { ...data.scenario, yaml: yaml !== undefined ? yaml : view.scenario && view.scenario.yaml };
  if (changed && view.justApplied) {
    view.justApplied = false; // our own apply: the editor already holds it, comments and all
  } else if (changed) {
    if (!view.editorDirty) showRunning(true);
    else setEditorStatus("info", "The running scenario changed. “Show running scenario” loads it.");
  }
}

// --- the scenario editor ---------------------------------------------------------

function editorLines() { return $("editor").value.split("\n").length; }

function renderGutter(marked = new Set()) {
  const count = editorLines();
  const gutter = $("gutter");
  const nodes = [];
  for (let n = 1; n <= count; n += 1) nodes.push(el("span", { class: marked.has(n) ? "bad" : "", text: String(n) }));
  gutter.replaceChildren(...nodes);
  gutter.scrollTop = $("editor").scrollTop;
  view.marked = marked;
}

function setEditorStatus(kind, text) {
  const node = $("editor-status");
  node.className = `editor-status ${kind}`;
  node.textContent = text;
}

// `quietly`: the stream says the scenario changed; keep what the editor said
// about the last apply (it is the news), unless it said nothing yet.
function showRunning(quietly = false) {
  if (!view.scenario) return;
  $("editor").value = view.scenario.yaml;
  view.editorDirty = false;
  $("problems").replaceChildren();
  renderGutter();
  if (!quietly || !$("editor-status").textContent) {
    setEditorStatus("", `Running: ${view.scenario.name} (seed ${view.scenario.seed}).`);
  }
}

function goToLine(line) {
  const editor = $("editor");
  const lines = editor.value.split("\n");
  let start = 0;
  for (let n = 1; n < line && n <= lines.length; n += 1) start += lines[n - 1].length + 1;
  const end = start + (lines[line - 1] || "").length;
  editor.focus();
  editor.setSelectionRange(start, end);
  const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 18;
  editor.scrollTop = Math.max(0, (line - 3) * lineHeight);
}

async function applyScenario(text, label) {
  setEditorStatus("busy", "Applying…");
  let result;
  try {
    result = await api("PUT", "/__sim/scenario", text);
  } catch (error) {
    if (!(error instanceof TokenNeeded)) setEditorStatus("bad", `Could not reach the fake partner: ${error.message}`);
    return false;
  }
  const { status, payload } = result;
  if (status === 200) {
    view.editorDirty = false;
    view.justApplied = true;
    $("problems").replaceChildren();
    renderGutter();
    setEditorStatus("good", `Applied ${label || `“${payload.scenario}”`}: ${payload.rules} rule(s); budgets and data set start afresh.`);
    toast(`Scenario “${payload.scenario}” is running`, "good");
    return true;
  }
  const problems = (payload && payload.problems) || [];
  const lines = new Set(problems.map((p) => p.line).filter(Boolean));
  renderGutter(lines);
  setEditorStatus("bad", payload && payload.message ? payload.message
    : `Refused (HTTP ${status}); the previous scenario is still running.`);
  $("problems").replaceChildren(...problems.map((problem) => {
    const where = problem.line ? `Line ${problem.line}` : "Scenario";
    const button = el("button", { type: "button", class: "problem",
      "data-line": problem.line || "" },
    el("span", { class: "where", text: where }), " ",
    el("code", { text: problem.path }), " ", el("span", { text: problem.message }));
    if (problem.line) button.addEventListener("click", () => goToLine(problem.line));
    else button.disabled = true;
    return el("li", {}, button);
  }));
  return false;
}

async function loadReady() {
  if (view.readyLoaded) return;
  let result;
  try { result = await api("GET", "/__sim/ui/scenarios"); } catch { return; }
  view.readyLoaded = true;
  const list = (result.payload && result.payload.scenarios) || [];
  $("ready-wrap").hidden = list.length === 0;
  $("ready").replaceChildren(...list.map((item) => {
    const button = el("button", { type: "button", class: "ready-item",
      title: `${item.summary || item.file} One click applies it.` }, item.name);
    button.setAttribute("aria-label", `Apply ready-made scenario ${item.name}${item.summary ? `: ${item.summary}` : ""}`);
    button.addEventListener("click", async () => {
      $("editor").value = item.text;
      view.editorDirty = true;
      renderGutter();
      await applyScenario(item.text, `“${item.name}” (${item.file})`);
    });
    return el("li", {}, button);
  }));
}

// --- verdicts: the client judged from the journal alone ------------------------------

const VERDICT_QUIET_MS = 800; // judge once the traffic has paused this long
const VERDICT_EVERY_MS = 2000; // and no more often than this
let verdictTimer = 0;

function verdictsDue() {
  // Judging reads the whole journal: wait for a pause in the traffic, so a flood
  // of requests does not turn into a flood of judgements.
  clearTimeout(verdictTimer);
  verdictTimer = setTimeout(() => {
    const wait = VERDICT_EVERY_MS - (Date.now() - (view.judgedAt || 0));
    if (wait > 0) verdictTimer = setTimeout(judge, wait);
    else judge();
  }, VERDICT_QUIET_MS);
}

async function judge() {
  if (view.judgedSeq === view.lastSeq && view.judgedAt) return;
  const seq = view.lastSeq;
  view.judgedAt = Date.now();
  let result;
  try { result = await api("GET", "/__sim/verdicts"); } catch { return; }
  if (result.status === 404) { $("tab-verdicts").hidden = true; return; } // an older partnersim
  if (result.status !== 200 || !result.payload) return;
  view.judgedSeq = seq;
  renderVerdicts(result.payload);
}

function renderVerdicts(verdict) {
  const count = verdict.violations.length;
  $("verdicts-count").textContent = verdict.requests ? (count ? `✗ ${count}` : "✓") : "";
  $("verdicts-count").className = `count ${count ? "bad-text" : "good-text"}`;
  $("verdict-summary").className = `verdict-summary ${verdict.requests ? (count ? "bad" : "good") : ""}`;
  $("verdict-summary").textContent = !verdict.requests
    ? "No client requests in the journal yet."
    : count
      ? `${count} violation(s) in ${verdict.operations} operation(s), ${verdict.requests} request(s).`
      : `Every contract holds: ${verdict.operations} operation(s), ${verdict.requests} request(s).`;
  $("violations").replaceChildren(...verdict.violations.map((finding) => {
    const seq = finding.seq;
    const item = el("li", { class: "violation" },
      el("span", { class: "contract", text: finding.contract }), " ",
      el("span", { class: "mono small", text: finding.operation }),
      el("p", { text: finding.message }));
    if (seq !== null && seq !== undefined) {
      const button = el("button", { type: "button", class: "quiet small", text: `journal seq ${seq}` });
      button.addEventListener("click", () => openDetail(seq));
      button.disabled = !view.entries.has(Number(seq));
      item.append(button);
    }
    return item;
  }));
  const contracts = verdict.contracts || {};
  $("contracts").replaceChildren(...Object.entries(contracts).flatMap(([id, text]) => [
    el("dt", { class: verdict.violations.some((f) => f.contract === id) ? "bad-text" : "", text: id }),
    el("dd", { text })]));
}

// --- the event stream ---------------------------------------------------------------

async function connect() {
  if (view.stream) view.stream.abort();
  const controller = new AbortController();
  view.stream = controller;
  setConn("connecting", "Connecting…");
  try {
    const response = await fetch("/__sim/ui/events", { headers: headers(), signal: controller.signal, cache: "no-store" });
    if (response.status === 401) {
      setConn("locked", "Needs the admin token");
      askToken(view.token ? "That token was refused." : "");
      return;
    }
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    $("token-change").hidden = !view.token;
    setConn(view.paused ? "paused" : "live", view.paused ? "Paused" : "Live");
    loadReady();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
  } catch (error) {
    if (controller.signal.aborted) return;
  }
  if (controller.signal.aborted || view.stream !== controller) return;
  setConn("down", "Disconnected — retrying");
  setTimeout(() => { if (view.stream === controller) connect(); }, 1000);
}

function dispatch(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (!data.length) return;
  const payload = JSON.parse(data.join("\n"));
  if (event === "entries") addEntries(payload);
  else if (event === "state") onState(payload);
}

// --- the token gate -------------------------------------------------------------------

function askToken(error) {
  if (view.stream) { view.stream.abort(); view.stream = null; }
  setConn("locked", "Needs the admin token");
  $("gate-error").textContent = error || "";
  const gate = $("gate");
  if (!gate.open) gate.showModal();
  $("gate-token").focus();
}

// --- wiring -----------------------------------------------------------------------------

function togglePause() {
  view.paused = !view.paused;
  const button = $("pause");
  button.setAttribute("aria-pressed", String(view.paused));
  if (view.paused) {
    view.unseen = 0;
    view.frozenAt = view.lastSeq;
    button.textContent = "Resume";
    setConn("paused", "Paused");
  } else {
    button.textContent = "Pause";
    setConn("live", "Live");
    scheduleRender();
  }
}

function selectTab(tab) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
}

function typing(target) {
  return target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function wire() {
  for (const name of Object.keys(view.filters)) {
    $(`f-${name}`).addEventListener("input", (event) => {
      view.filters[name] = event.target.value.trim();
      scheduleRender();
    });
  }
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("pause").addEventListener("click", togglePause);

  const rows = $("journal-rows");
  rows.addEventListener("click", (event) => {
    const tr = event.target.closest(".jrow[data-seq]");
    if (tr) openDetail(tr.dataset.seq);
  });
  rows.addEventListener("focusin", (event) => {
    const tr = event.target.closest(".jrow[data-seq]");
    if (!tr || tr === view.tabStopRow) return;
    if (view.tabStopRow) view.tabStopRow.tabIndex = -1;
    tr.tabIndex = 0;
    view.tabStopRow = tr;
    view.tabStop = tr.dataset.seq;
  });
  rows.addEventListener("keydown", (event) => {
    const tr = event.target.closest(".jrow[data-seq]");
    if (!tr) return;
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); openDetail(tr.dataset.seq); }
    else if (event.key === "ArrowDown" && tr.nextElementSibling) { event.preventDefault(); tr.nextElementSibling.focus(); }
    else if (event.key === "ArrowUp" && tr.previousElementSibling) { event.preventDefault(); tr.previousElementSibling.focus(); }
    else if (event.key === "Home" && rows.firstElementChild) { event.preventDefault(); rows.firstElementChild.focus(); }
    else if (event.key === "End" && rows.lastElementChild) { event.preventDefault(); rows.lastElementChild.focus(); }
  });
  $("detail").addEventListener("close", () => {
    const seq = view.selected;
    view.selected = null;
    scheduleRender();
    requestAnimationFrame(() => {
      const tr = rows.querySelector(`.jrow[data-seq="${seq}"]`);
      if (tr) tr.focus();
    });
  });

  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const at = tabs.indexOf(tab);
      let next = null;
      if (event.key === "ArrowRight") next = tabs[(at + 1) % tabs.length];
      else if (event.key === "ArrowLeft") next = tabs[(at - 1 + tabs.length) % tabs.length];
      else if (event.key === "Home") next = tabs[0];
      else if (event.key === "End") next = tabs[tabs.length - 1];
      if (next) { event.preventDefault(); selectTab(next); next.focus(); }
    });
  }

  const editor = $("editor");
  editor.addEventListener("input", () => {
    view.editorDirty = true;
    renderGutter(view.marked || new Set());
  });
  editor.addEventListener("scroll", () => { $("gutter").scrollTop = editor.scrollTop; });
  editor.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $("editor-form").requestSubmit();
    }
  });
  $("editor-form").addEventListener("submit", (event) => {
    event.preventDefault();
    applyScenario(editor.value);
  });
  $("revert").addEventListener("click", () => showRunning());
  $("verdicts-refresh").addEventListener("click", () => { view.judgedAt = 0; view.judgedSeq = -1; judge(); });

  $("reset").addEventListener("click", async () => {
    try {
      const { status } = await api("POST", "/__sim/reset");
      if (status === 200) toast("Reset: budgets, journal and data set are back to the start", "good");
      else toast(`Reset refused (HTTP ${status})`, "bad");
    } catch (error) { if (!(error instanceof TokenNeeded)) toast(`Reset failed: ${error.message}`, "bad"); }
  });
  $("clear").addEventListener("click", async () => {
    try {
      const { status } = await api("DELETE", "/__sim/journal");
      if (status === 200) toast("Journal cleared", "good");
      else toast(`Clearing refused (HTTP ${status})`, "bad");
    } catch (error) { if (!(error instanceof TokenNeeded)) toast(`Clearing failed: ${error.message}`, "bad"); }
  });

  $("gate-form").addEventListener("submit", (event) => {
    event.preventDefault();
    view.token = $("gate-token").value;
    sessionStorage.setItem(TOKEN_KEY, view.token);
    $("gate").close();
    view.readyLoaded = false;
    connect();
  });
  $("gate").addEventListener("cancel", (event) => event.preventDefault());
  $("token-change").addEventListener("click", () => askToken(""));

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (document.querySelector("dialog[open]")) return;
    if (event.key === "/") { event.preventDefault(); $("f-path").focus(); }
    else if (event.key === "p" || event.key === "P") { event.preventDefault(); togglePause(); }
  });
}

wire();
renderGutter();
connect();
