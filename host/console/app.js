// trailhead console. No framework and no graph library: the pipelines are left-to-right chains
// (receivers, processors in order, exporters), laid out here in columns as plain SVG.
// Every number comes from /console/events: the pipelines' shape once, then each second the
// registry's samples (what /metrics serves), GET /plugins' list and the components' notes.
// The live tap and the diff read /tap; the reload button posts to /reload. The running config
// (secrets redacted) and the last reload come on the same stream, again after each reload; the
// pod lookup asks /console/pod.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
/** Processors the host runs itself: not plugins, and not tap points (batch, memory limiter). */
const NOT_TAPPED = new Set(["batch", "memory_limiter"]);
const HOST_OWN = new Set(["batch", "memory_limiter", "tail_sampling"]);
/** The tap list shows at most this many batches, and draws at most one per DRAW_MS. */
const TAP_SHOWN = 20;
const DRAW_MS = 250;
/** A before/after pair is looked for among this many recent batches before the plugin. */
const DIFF_WINDOW = 64;
const DIFF_TIMEOUT_MS = 30000;

const state = { topology: null, connectors: new Set(), previous: null, current: null, config: null };

// ---------------------------------------------------------------------------------------------
// Tabs: arrow keys, Home and End move between them (the WAI-ARIA tabs pattern).
function setupTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    tab.focus();
    drawVisible();
    history.replaceState(null, "", "#" + tab.id.replace("tab-", ""));
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (e) => {
      const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
      if (to === undefined) return;
      e.preventDefault();
      select(tabs[(to + tabs.length) % tabs.length]);
    });
  });
  const wanted = tabs.find((t) => "#" + t.id.replace("tab-", "") === location.hash);
  if (wanted) select(wanted);
}

// ---------------------------------------------------------------------------------------------
// Samples: `name{label="value",...} number` lines of the Prometheus text format.
function parseSamples(text) {
  const samples = [];
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const line of text.split("\n")) {
    if (!line) continue;
    const brace = line.indexOf("{");
    const space = line.lastIndexOf(" ");
    const name = brace >= 0 && brace < space ? line.slice(0, brace) : line.slice(0, space);
    const labels = {};
    if (brace >= 0 && brace < space) {
      for (const m of line.slice(brace, line.lastIndexOf("}") + 1).matchAll(label)) {
        labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      }
    }
    samples.push({ name, labels, value: Number(line.slice(space + 1)) });
  }
  return samples;
}

function matches(sample, name, want) {
  return sample.name === name && Object.entries(want).every(([k, v]) => sample.labels[k] === v);
}

/** The sum of the series of `name` with the labels in `want`, in a snapshot; null if none. */
function total(snapshot, name, want = {}) {
  if (!snapshot) return null;
  let sum = null;
  for (const s of snapshot.byName.get(name) ?? []) if (matches(s, name, want)) sum = (sum ?? 0) + s.value;
  return sum;
}

/** The samples by metric name: a page with many components looks up hundreds a second. */
function byName(samples) {
  const index = new Map();
  for (const s of samples) {
    if (!index.has(s.name)) index.set(s.name, []);
    index.get(s.name).push(s);
  }
  return index;
}

/** Per second between the last two snapshots; null before there are two. */
function rate(name, want = {}) {
  const now = total(state.current, name, want);
  const before = total(state.previous, name, want);
  if (now === null || before === null) return null;
  const seconds = state.current.at_unix - state.previous.at_unix;
  return seconds > 0 ? Math.max(0, now - before) / seconds : null;
}

/** The q-quantile of a histogram's cumulative buckets, interpolated within the bucket. */
function quantile(q, name, want) {
  const buckets = (state.current.byName.get(name + "_bucket") ?? [])
    .filter((s) => matches(s, name + "_bucket", want))
    .map((s) => ({ le: s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), n: s.value }))
    .sort((a, b) => a.le - b.le);
  const count = buckets.length ? buckets[buckets.length - 1].n : 0;
  if (!count) return null;
  let [lowerBound, lowerCount] = [0, 0];
  for (const b of buckets) {
    if (b.n >= q * count) {
      if (b.le === Infinity) return lowerBound;
      const within = b.n - lowerCount;
      return lowerBound + (b.le - lowerBound) * (within ? (q * count - lowerCount) / within : 1);
    }
    [lowerBound, lowerCount] = [b.le, b.n];
  }
  return lowerBound;
}

const perSecond = (v) => (v === null ? "–" : v >= 100 ? v.toFixed(0) : v.toFixed(1));
// Formatters made once: making one per call is what a page with many rows spends its time on.
const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "medium", hour12: false });
const clock = (unix) => TIME.format(new Date(unix * 1000));
const millis = (s) => (s === null ? "–" : s < 0.001 ? (s * 1e6).toFixed(0) + " µs" : (s * 1000).toFixed(2) + " ms");
const kindOf = (id) => id.split("/")[0];

// ---------------------------------------------------------------------------------------------
// The stream.
function connect() {
  const events = new EventSource("/console/events");
  events.addEventListener("topology", (e) => {
    state.topology = JSON.parse(e.data);
    state.connectors = new Set(state.topology.connectors);
    drawGraphs();
    fillTapChoices();
  });
  events.addEventListener("config", (e) => {
    state.config = JSON.parse(e.data);
    drawConfig();
  });
  events.addEventListener("snapshot", (e) => {
    const snapshot = JSON.parse(e.data);
    snapshot.samples = parseSamples(snapshot.metrics);
    snapshot.byName = byName(snapshot.samples);
    state.previous = state.current;
    state.current = snapshot;
    $("connection").textContent = `live · ${snapshot.serving ? "serving" : "starting or stopping"} · ${clock(snapshot.at_unix)}`;
    drawVisible();
  });
  events.addEventListener("error", () => {
    $("connection").textContent = "disconnected; reconnecting…";
  });
}

/** Only the view on screen is drawn; a tab drawn when it is picked. */
function drawVisible() {
  if (!state.current) return;
  if (!$("view-pipelines").hidden) updateGraphs();
  if (!$("view-plugins").hidden) drawPlugins();
  if (!$("view-kubernetes").hidden) drawKubernetes();
}

// ---------------------------------------------------------------------------------------------
// Pipelines: one SVG per pipeline, columns of receivers, each processor, exporters.
const BOX = { w: 170, h: 62, gapX: 190, gapY: 18, pad: 12 };

function svg(tag, attributes, parent) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function role(id, column, last) {
  if (state.connectors.has(id)) return "connector";
  return column === 0 ? "receiver" : column === last ? "exporter" : "processor";
}

function drawGraphs() {
  const graphs = $("graphs");
  graphs.replaceChildren();
  for (const pipeline of state.topology.pipelines) {
    const columns = [pipeline.receivers, ...pipeline.processors.map((p) => [p]), pipeline.exporters];
    const rows = Math.max(...columns.map((c) => c.length), 1);
    const width = BOX.pad * 2 + columns.length * BOX.w + (columns.length - 1) * BOX.gapX;
    const height = BOX.pad * 2 + rows * BOX.h + (rows - 1) * BOX.gapY;
    const section = document.createElement("section");
    section.className = "pipeline";
    section.dataset.pipeline = pipeline.id;
    const title = document.createElement("h3");
    title.id = "pipeline-" + pipeline.id.replace(/\W/g, "-");
    title.textContent = `${pipeline.id} (${pipeline.signal})`;
    section.appendChild(title);
    const picture = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "group", "aria-labelledby": title.id });
    const defs = svg("defs", {}, picture);
    const arrow = "arrow-" + title.id;
    const marker = svg("marker", { id: arrow, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8a929c" }, marker);
    const place = (column, row, count) => ({
      x: BOX.pad + column * (BOX.w + BOX.gapX),
      y: BOX.pad + (height - BOX.pad * 2 - count * BOX.h - (count - 1) * BOX.gapY) / 2 + row * (BOX.h + BOX.gapY),
    });
    const positions = columns.map((ids, c) => ids.map((id, r) => ({ id, ...place(c, r, ids.length) })));
    // Edges first, so boxes sit on top of them.
    for (let c = 0; c + 1 < columns.length; c++) {
      for (const from of positions[c]) {
        for (const to of positions[c + 1]) {
          const [x1, y1, x2, y2] = [from.x + BOX.w, from.y + BOX.h / 2, to.x, to.y + BOX.h / 2];
          const edge = svg("path", { class: "edge", "marker-end": `url(#${arrow})`, d: `M ${x1} ${y1} C ${x1 + 50} ${y1}, ${x2 - 50} ${y2}, ${x2} ${y2}` }, picture);
          edge.dataset.from = from.id;
          edge.dataset.to = to.id;
          edge.dataset.column = c;
          const label = svg("text", { class: "rate", x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, "text-anchor": "middle" }, picture);
          label.dataset.from = from.id;
          label.dataset.to = to.id;
          label.dataset.column = c;
        }
      }
    }
    positions.forEach((column, c) => column.forEach(({ id, x, y }) => {
      const kind = role(id, c, columns.length - 1);
      const node = svg("g", { class: "node", transform: `translate(${x} ${y})`, tabindex: 0, role: "img" }, picture);
      node.dataset.component = id;
      node.dataset.role = kind;
      svg("rect", { width: BOX.w, height: BOX.h, rx: 6 }, node);
      svg("text", { x: 8, y: 17, class: "id" }, node).textContent = id.length > 24 ? id.slice(0, 23) + "…" : id;
      svg("text", { x: 8, y: 34, class: "kind" }, node).textContent = kind;
      svg("text", { x: 8, y: 51, class: "state" }, node);
      svg("title", {}, node);
    }));
    // Drawn at its natural size: a long chain scrolls sideways rather than shrinking.
    const scroller = document.createElement("div");
    scroller.className = "graph";
    scroller.appendChild(picture);
    section.appendChild(scroller);
    const errors = document.createElement("ul");
    errors.className = "errors";
    errors.setAttribute("aria-label", `Exporter errors in ${pipeline.id}`);
    section.appendChild(errors);
    graphs.appendChild(section);
  }
}

/** What a node shows: its state line, whether it looks unwell, and a full description. */
function nodeState(id, kind, signal) {
  const serving = state.current?.serving;
  if (kind === "receiver") {
    const accepted = total(state.current, "trailhead_receiver_accepted_items_total", { receiver: id, signal });
    return { line: serving ? "serving" : "starting", level: serving ? "serving" : "warn",
             text: `${accepted ?? 0} items accepted since start` };
  }
  if (kind === "processor") {
    const plugin = state.current?.plugins.find((p) => p.id === id);
    if (!plugin) return { line: HOST_OWN.has(kindOf(id)) ? "host" : "–", level: "", text: "run by the host" };
    const failures = Object.values(plugin.failures).reduce((a, b) => a + b, 0);
    const level = plugin.state === "serving" ? "serving" : plugin.state === "probation" ? "warn" : "bad";
    return { line: `${plugin.state} · v${plugin.version}`, level,
             text: `${plugin.name} ${plugin.version}, ${plugin.calls} calls, ${failures} failures` };
  }
  if (kind === "exporter") {
    const want = { exporter: id, signal };
    const size = total(state.current, "trailhead_exporter_queue_size", want);
    const capacity = total(state.current, "trailhead_exporter_queue_capacity", want);
    const retries = total(state.current, "trailhead_exporter_retries_total", want) ?? 0;
    const notes = state.current?.notes[`exporter/${id}/${signal}`] ?? [];
    const last = notes[notes.length - 1];
    const fill = capacity ? size / capacity : 0;
    const level = last && state.current.at_unix - last.at_unix < 60 ? "bad" : fill > 0.8 || rate("trailhead_exporter_retries_total", want) > 0 ? "warn" : "serving";
    const queue = capacity ? `queue ${size}/${capacity}` : "queue –";
    return { line: `${queue} · ${retries} retries`, level, last,
             text: `${queue}, ${retries} retries${last ? `, last error at ${clock(last.at_unix)}: ${last.detail}` : ""}` };
  }
  return { line: "connector", level: "", text: "a connector: exporter of one pipeline, receiver of another" };
}

/** An edge's label: what its source accepted or dropped and what its target sent. */
function edgeRate(from, to, column, columns, signal) {
  const parts = [];
  let flowing = false;
  let bad = false;
  if (column === 0 && !state.connectors.has(from)) {
    const want = { receiver: from, signal };
    const accepted = rate("trailhead_receiver_accepted_items_total", want);
    const refused = rate("trailhead_receiver_refused_items_total", want);
    parts.push(`accepted ${perSecond(accepted)}/s`);
    if (refused) parts.push(`refused ${perSecond(refused)}/s`);
    flowing ||= accepted > 0;
    bad ||= refused > 0;
  }
  if (column === columns - 2 && !state.connectors.has(to)) {
    const want = { exporter: to, signal };
    const sent = rate("trailhead_exporter_sent_items_total", want);
    const failed = rate("trailhead_exporter_send_failed_items_total", want);
    parts.push(`sent ${perSecond(sent)}/s`);
    if (failed) parts.push(`failed ${perSecond(failed)}/s`);
    flowing ||= sent > 0;
    bad ||= failed > 0;
  }
  if (column > 0) {
    const dropped = rate("trailhead_processor_dropped_items_total", { processor: from });
    parts.push(`dropped ${perSecond(dropped)}/s`);
    flowing ||= rate("trailhead_processor_calls_total", { processor: from }) > 0;
    bad ||= dropped > 0;
  }
  return { text: parts.join(" · "), flowing, bad };
}

function updateGraphs() {
  if (!state.topology) return;
  for (const pipeline of state.topology.pipelines) {
    const section = document.querySelector(`.pipeline[data-pipeline="${CSS.escape(pipeline.id)}"]`);
    if (!section) continue;
    const columns = 2 + pipeline.processors.length;
    const errors = [];
    for (const node of section.querySelectorAll(".node")) {
      const id = node.dataset.component;
      const shown = nodeState(id, node.dataset.role, pipeline.signal);
      node.querySelector(".state").textContent = shown.line;
      node.setAttribute("class", `node ${shown.level}`);
      const description = `${node.dataset.role} ${id}: ${shown.line}. ${shown.text}`;
      node.setAttribute("aria-label", description);
      node.querySelector("title").textContent = description;
      if (shown.last) errors.push(`${clock(shown.last.at_unix)} ${id}: ${shown.last.outcome}: ${shown.last.detail}`);
    }
    for (const label of section.querySelectorAll("text.rate")) {
      const { from, to, column } = label.dataset;
      const shown = edgeRate(from, to, Number(column), columns, pipeline.signal);
      label.textContent = shown.text;
      label.setAttribute("class", shown.bad ? "rate bad" : "rate");
      const edge = section.querySelector(`path.edge[data-from="${CSS.escape(from)}"][data-to="${CSS.escape(to)}"]`);
      edge?.setAttribute("class", shown.flowing ? "edge flowing" : "edge");
    }
    const list = section.querySelector("ul.errors");
    list.replaceChildren(...errors.map((line) => Object.assign(document.createElement("li"), { textContent: "last error " + line })));
  }
}

// ---------------------------------------------------------------------------------------------
// Plugins.
function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function drawPlugins() {
  const body = $("plugins").tBodies[0];
  const rows = state.current.plugins.map((plugin) => {
    const row = document.createElement("tr");
    row.dataset.processor = plugin.id;
    cell(row, plugin.id);
    cell(row, plugin.name);
    cell(row, plugin.version);
    const sha = cell(row, plugin.sha256 ? plugin.sha256.slice(0, 12) + "…" : "–");
    sha.title = plugin.sha256 ?? "";
    cell(row, plugin.loaded_at_unix ? DATE_TIME.format(new Date(plugin.loaded_at_unix * 1000)) : "–");
    cell(row, String(plugin.calls ?? 0), "num");
    const failures = Object.entries(plugin.failures ?? {}).filter(([, n]) => n > 0);
    cell(row, failures.length ? failures.map(([k, n]) => `${k}: ${n}`).join(", ") : "none");
    const want = { processor: plugin.id };
    const name = "trailhead_processor_duration_seconds";
    cell(row, `${millis(quantile(0.5, name, want))} / ${millis(quantile(0.99, name, want))}`, "num");
    const notes = state.current.notes["processor/" + plugin.id] ?? [];
    const rolledBack = notes.length && notes[notes.length - 1].outcome === "rolled_back";
    const shown = rolledBack && plugin.state === "serving" ? "rolled back" : plugin.state;
    cell(row, shown, "state-" + shown.replace(" ", "_"));
    return row;
  });
  body.replaceChildren(...rows);
  const swaps = Object.entries(state.current.notes)
    .filter(([key]) => key.startsWith("processor/"))
    .flatMap(([key, notes]) => notes.map((n) => ({ processor: key.slice("processor/".length), ...n })))
    .sort((a, b) => b.at_unix - a.at_unix);
  $("swaps").replaceChildren(...swaps.map((swap) => {
    const item = document.createElement("li");
    const outcome = Object.assign(document.createElement("strong"), { className: "outcome-" + swap.outcome, textContent: swap.outcome.replace("_", " ") });
    item.append(`${clock(swap.at_unix)} ${swap.processor}: `, outcome, ` — ${swap.detail}`);
    return item;
  }));
  if (!swaps.length) $("swaps").replaceChildren(Object.assign(document.createElement("li"), { textContent: "No swap since start." }));
}

async function reload() {
  const button = $("reload");
  const shown = $("reload-outcome");
  button.disabled = true;
  shown.textContent = "reloading…";
  try {
    const response = await fetch("/reload", { method: "POST" });
    const answer = await response.json();
    if (answer.config === "rejected") {
      shown.textContent = `config rejected: ${answer.error}`;
    } else {
      const plugins = answer.plugins.map((p) => {
        const who = p.policy ? `${p.processor} (${p.policy})` : p.processor;
        return p.error ? `${who}: rejected: ${p.error}` : `${who}: ${p.swapped ? "swapped" : "unchanged"}`;
      });
      shown.textContent = [`config ${answer.config}`, ...plugins].join("; ");
    }
  } catch (error) {
    shown.textContent = `reload failed: ${error}`;
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Config: the running config as YAML, and what the last reload changed.

const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isBlock = (v) => (Array.isArray(v) && v.length > 0) || (isMap(v) && Object.keys(v).length > 0);
const PLAIN = /^[A-Za-z0-9_][A-Za-z0-9_./:@+-]*$/;
const RESERVED = /^(true|false|null|yes|no|on|off|~|[-+]?[0-9][0-9_.eE+-]*)$/i;

/** A scalar as YAML: plain where that reads back as the same string, else double-quoted. */
function yamlScalar(v) {
  if (typeof v !== "string") return v === null ? "null" : String(v);
  return PLAIN.test(v) && !RESERVED.test(v) ? v : JSON.stringify(v);
}

/** A JSON value as YAML lines at `indent` (keys sorted, as the server sends them). */
function yamlLines(value, indent) {
  if (Array.isArray(value) && value.length) {
    return value.flatMap((item) => {
      if (!isBlock(item)) return [`${indent}- ${yamlScalarOrEmpty(item)}`];
      const inner = yamlLines(item, indent + "  ");
      return [`${indent}- ${inner[0].trimStart()}`, ...inner.slice(1)];
    });
  }
  if (isMap(value) && Object.keys(value).length) {
    return Object.entries(value).flatMap(([k, v]) => isBlock(v)
      ? [`${indent}${yamlScalar(k)}:`, ...yamlLines(v, indent + "  ")]
      : [`${indent}${yamlScalar(k)}: ${yamlScalarOrEmpty(v)}`]);
  }
  return [indent + yamlScalarOrEmpty(value)];
}
const yamlScalarOrEmpty = (v) => (Array.isArray(v) ? "[]" : isMap(v) ? "{}" : yamlScalar(v));
const compact = (v) => (v === undefined || v === null ? "—" : typeof v === "string" ? v : JSON.stringify(v));

function drawConfig() {
  const { settings, last_reload: last } = state.config;
  $("config-text").textContent = yamlLines(settings, "").join("\n");
  const table = $("reload-changes");
  if (!last) return;
  const outcome = last.outcome;
  const plugins = (outcome.plugins ?? []).map((p) => p.error ? `${p.processor}: ${p.error}` : `${p.processor}: ${p.swapped ? "swapped" : "unchanged"}`);
  const said = outcome.config === "rejected" ? `rejected: ${outcome.error}` : outcome.config;
  const counted = last.all_changes_listed ? "" : " (the first of them)";
  $("last-reload").textContent = `${clock(last.at_unix)}: config ${said}; ${last.changes.length} change(s)${counted}` +
    (plugins.length ? `; ${plugins.join("; ")}` : "");
  table.hidden = last.changes.length === 0;
  table.tBodies[0].replaceChildren(...last.changes.map((change) => {
    const row = document.createElement("tr");
    cell(row, change.path);
    cell(row, compact(change.before), change.before === null || change.before === undefined ? "" : "diff-removed");
    cell(row, compact(change.after), change.after === null || change.after === undefined ? "" : "diff-added");
    return row;
  }));
}

// ---------------------------------------------------------------------------------------------
// Kubernetes: the cache's size, each watch's last list and outages (all from the snapshot), and
// a pod looked up by IP.

function drawKubernetes() {
  const snapshot = state.current;
  const pods = total(snapshot, "trailhead_kubernetes_pods");
  const listed = snapshot.byName.get("trailhead_kubernetes_listed_timestamp_seconds") ?? [];
  if (pods === null && !listed.length) {
    $("k8s-summary").textContent = "No Kubernetes cache: no k8sattributes processor runs.";
    $("k8s-watches").tBodies[0].replaceChildren();
    return;
  }
  const cached = pods ?? 0;
  $("k8s-summary").textContent = `${cached} pod${cached === 1 ? "" : "s"} cached (deleted ones still in their grace period included).`;
  $("k8s-watches").tBodies[0].replaceChildren(...listed.map((sample) => {
    const kind = sample.labels.kind;
    const row = document.createElement("tr");
    row.dataset.kind = kind;
    cell(row, kind);
    cell(row, sample.value > 0 ? DATE_TIME.format(new Date(sample.value * 1000)) : "not yet");
    cell(row, String(total(snapshot, "trailhead_kubernetes_watch_failures_total", { kind }) ?? 0), "num");
    const notes = snapshot.notes["kubernetes/" + kind] ?? [];
    const last = notes[notes.length - 1];
    cell(row, last ? `${clock(last.at_unix)} ${last.outcome.replace("_", " ")}: ${last.detail}` : "none");
    return row;
  }));
}

async function findPod(event) {
  event.preventDefault();
  const ip = $("pod-ip").value.trim();
  const shown = $("pod");
  shown.replaceChildren();
  $("pod-status").textContent = "looking up…";
  try {
    const response = await fetch("/console/pod?ip=" + encodeURIComponent(ip));
    const answer = await response.json();
    if (!response.ok) {
      $("pod-status").textContent = answer.error;
      return;
    }
    $("pod-status").textContent = `${ip} is ${answer.namespace}/${answer.name}`;
    const pairs = (map) => Object.entries(map).map(([k, v]) => `${k}=${v}`).join(", ") || "—";
    const fields = [["name", answer.name], ["namespace", answer.namespace], ["uid", answer.uid],
      ["node", answer.node], ["start time", answer.start_time],
      ["owners", answer.owners.map((o) => `${o.kind}/${o.name}`).join(", ") || "—"],
      ["labels", pairs(answer.labels)], ["annotations", pairs(answer.annotations)],
      ["containers", pairs(answer.containers)]];
    for (const [term, value] of fields) {
      shown.append(Object.assign(document.createElement("dt"), { textContent: term }),
        Object.assign(document.createElement("dd"), { textContent: value || "—" }));
    }
  } catch (error) {
    $("pod-status").textContent = `lookup failed: ${error}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Live tap: /tap streams one JSON line per batch (OTLP/JSON in `data`).

/** Calls `onRecord` for each line of /tap?query until `signal` aborts. The first is the header. */
async function readTap(query, signal, onRecord) {
  const response = await fetch("/tap?" + query, { signal });
  if (!response.ok) throw new Error((await response.text()).trim());
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += decoder.decode(value, { stream: true });
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, end);
      pending = pending.slice(end + 1);
      if (line) onRecord(JSON.parse(line));
    }
  }
}

/** A query value as /tap reads it: it does not decode `%2F`, and ids hold slashes. */
const queryValue = (text) => encodeURIComponent(text).replace(/%2F/g, "/");

function option(select, value, text) {
  select.add(new Option(text ?? value, value));
}

function fillTapChoices() {
  for (const id of ["tap-pipeline", "diff-pipeline"]) {
    const select = $(id);
    select.replaceChildren();
    for (const p of state.topology.pipelines) option(select, p.id);
  }
  fillPoints();
  fillDiffProcessors();
}

const pipelineById = (id) => state.topology.pipelines.find((p) => p.id === id);
const tapped = (pipeline) => pipeline.processors.filter((p) => !NOT_TAPPED.has(kindOf(p)));

function fillPoints() {
  const select = $("tap-point");
  select.replaceChildren();
  option(select, "", "to the exporters");
  for (const p of tapped(pipelineById($("tap-pipeline").value))) {
    option(select, "before=" + queryValue(p), "before " + p);
    option(select, "after=" + queryValue(p), "after " + p);
  }
}

function fillDiffProcessors() {
  const select = $("diff-processor");
  select.replaceChildren();
  for (const p of tapped(pipelineById($("diff-pipeline").value))) option(select, p);
}

/** Attributes as {key: text}; OTLP/JSON's AnyValue keeps its one field. */
function attributes(list) {
  const out = {};
  for (const a of list ?? []) {
    const value = a.value?.value ?? a.value ?? {};
    const [inner] = Object.values(value);
    out[a.key] = typeof inner === "object" ? JSON.stringify(inner) : String(inner);
  }
  return out;
}

/** The resources of a batch, whatever its signal, with their items. */
function resources(data) {
  const kinds = [["resourceSpans", "scopeSpans", "spans"], ["resourceLogs", "scopeLogs", "logRecords"], ["resourceMetrics", "scopeMetrics", "metrics"]];
  for (const [top, scope, items] of kinds) {
    if (data[top]) {
      return data[top].map((r) => ({
        attributes: attributes(r.resource?.attributes),
        items: (r[scope] ?? []).flatMap((s) => s[items] ?? []),
      }));
    }
  }
  return [];
}

function batchMatches(data, filter) {
  if (!filter) return true;
  const [key, value] = filter.includes("=") ? filter.split("=", 2) : [null, filter];
  return resources(data).some((r) => {
    if (key === null) return (r.attributes["service.name"] ?? "").includes(value);
    if (r.attributes[key] === value) return true;
    return r.items.some((item) => attributes(item.attributes)[key] === value);
  });
}

const tap = { abort: null, paused: false, received: 0, skipped: 0, pausedOut: 0, batches: [], drawn: 0, timer: null, label: "" };

function tapStatus() {
  const where = tap.label;
  const skipped = tap.skipped ? ` · ${tap.skipped} skipped by trailhead (this page fell behind)` : "";
  const paused = tap.paused ? ` · paused (${tap.pausedOut} not kept)` : "";
  const hidden = tap.received - tap.drawn - tap.pausedOut;
  const notDrawn = hidden > 0 ? ` · ${hidden} not drawn (at most ${1000 / DRAW_MS} a second, newest ${TAP_SHOWN} kept)` : "";
  $("tap-status").textContent = `${where}: ${tap.received} batches${skipped}${notDrawn}${paused}.`;
}

function copyText(text) {
  if (navigator.clipboard?.writeText) return navigator.clipboard.writeText(text);
  const area = Object.assign(document.createElement("textarea"), { value: text });
  document.body.appendChild(area);
  area.select();
  document.execCommand("copy");
  area.remove();
  return Promise.resolve();
}

/** A tapped batch's list item, built once and reused by every later draw. Its JSON is written
 * out only when shown or copied: at 30 batches a second of 100 spans, writing it for each drawn
 * batch was most of what the page did. */
function batchItem(batch) {
  if (batch.element) return batch.element;
  const { record, at } = batch;
  const item = document.createElement("li");
  const services = [...new Set(resources(record.data).map((r) => r.attributes["service.name"]).filter(Boolean))];
  const summary = document.createElement("div");
  summary.className = "summary";
  const text = `${clock(at)} · ${record.signal} · ${record.items} items${services.length ? " · " + services.join(", ") : ""}`;
  summary.append(Object.assign(document.createElement("span"), { textContent: text }));
  const pre = Object.assign(document.createElement("pre"), { hidden: true, tabIndex: 0 });
  const show = Object.assign(document.createElement("button"), { type: "button", textContent: "Show" });
  show.setAttribute("aria-expanded", "false");
  show.addEventListener("click", () => {
    if (!pre.textContent) pre.textContent = JSON.stringify(record.data, null, 1);
    pre.hidden = !pre.hidden;
    show.setAttribute("aria-expanded", String(!pre.hidden));
    show.textContent = pre.hidden ? "Show" : "Hide";
  });
  const copy = Object.assign(document.createElement("button"), { type: "button", textContent: "Copy OTLP JSON" });
  copy.addEventListener("click", async () => {
    await copyText(JSON.stringify(record.data));
    copy.textContent = "Copied";
    setTimeout(() => (copy.textContent = "Copy OTLP JSON"), 1500);
  });
  summary.append(show, copy);
  item.append(summary, pre);
  batch.element = item;
  return item;
}

/** Whether a batch passes the filter, worked out once per batch and filter. */
function passes(batch, filter) {
  if (batch.filter !== filter) Object.assign(batch, { filter, passes: batchMatches(batch.record.data, filter) });
  return batch.passes;
}

function drawTap() {
  const filter = $("tap-filter").value.trim();
  const fresh = tap.batches.filter((b) => !b.drawn);
  if (!fresh.length) return tapStatus();
  tap.drawn += fresh.length;
  for (const b of fresh) b.drawn = true;
  const shown = tap.batches.filter((b) => passes(b, filter)).slice(-TAP_SHOWN).reverse();
  $("tap-batches").replaceChildren(...shown.map(batchItem));
  tapStatus();
}

function stopTap() {
  tap.abort?.abort();
  clearInterval(tap.timer);
  tap.abort = null;
  $("tap-start").disabled = false;
  $("tap-pause").disabled = true;
  $("tap-stop").disabled = true;
}

function startTap(event) {
  event.preventDefault();
  stopTap();
  const pipeline = $("tap-pipeline").value;
  const point = $("tap-point").value;
  Object.assign(tap, { abort: new AbortController(), paused: false, received: 0, skipped: 0, pausedOut: 0, batches: [], drawn: 0 });
  tap.label = `Watching ${pipeline} ${$("tap-point").selectedOptions[0].text}`;
  $("tap-pause").setAttribute("aria-pressed", "false");
  $("tap-pause").textContent = "Pause";
  $("tap-batches").replaceChildren();
  $("tap-start").disabled = true;
  $("tap-pause").disabled = false;
  $("tap-stop").disabled = false;
  tapStatus();
  tap.timer = setInterval(() => { if (!tap.paused) drawTap(); }, DRAW_MS);
  let header = true;
  const query = `pipeline=${queryValue(pipeline)}${point ? "&" + point : ""}`;
  readTap(query, tap.abort.signal, (record) => {
    if (header) return (header = false);
    tap.received += 1;
    tap.skipped += record.skipped_before;
    if (tap.paused) return (tap.pausedOut += 1);
    tap.batches.push({ record, at: Date.now() / 1000, drawn: false });
    // Batches that leave the window undrawn are counted by `received - drawn`.
    if (tap.batches.length > TAP_SHOWN * 2) tap.batches.splice(0, tap.batches.length - TAP_SHOWN * 2);
  }).catch((error) => {
    if (error.name !== "AbortError") $("tap-status").textContent = `Tap failed: ${error.message}`;
    stopTap();
  });
}

function togglePause() {
  tap.paused = !tap.paused;
  $("tap-pause").setAttribute("aria-pressed", String(tap.paused));
  $("tap-pause").textContent = tap.paused ? "Resume" : "Pause";
  tapStatus();
}

// ---------------------------------------------------------------------------------------------
// Diff: one batch before a processor and the same batch after it.

/** The items of a batch by identity: spans by id, other items by position. */
function itemsOf(data) {
  const items = new Map();
  resources(data).forEach((r, ri) => r.items.forEach((item, ii) => {
    const key = item.spanId ? "span " + item.spanId : `item ${ri}.${ii}`;
    items.set(key, { name: item.name ?? item.body?.stringValue ?? item.spanId ?? key, attributes: attributes(item.attributes) });
  }));
  return items;
}

function sameBatch(before, after) {
  const spans = (data) => [...itemsOf(data).keys()].filter((k) => k.startsWith("span "));
  const afterSpans = new Set(spans(after.data));
  const beforeSpans = spans(before.data);
  if (beforeSpans.length && afterSpans.size) return beforeSpans.some((k) => afterSpans.has(k));
  return before.signal === after.signal;
}

function compare(where, before, after, rows) {
  for (const [key, value] of Object.entries(after)) {
    if (!(key in before)) rows.push({ where, change: "added", key, before: "", after: value });
    else if (before[key] !== value) rows.push({ where, change: "changed", key, before: before[key], after: value });
  }
  for (const [key, value] of Object.entries(before)) {
    if (!(key in after)) rows.push({ where, change: "removed", key, before: value, after: "" });
  }
}

function diffBatches(before, after) {
  const rows = [];
  const [rb, ra] = [resources(before.data), resources(after.data)];
  rb.forEach((r, i) => {
    const where = `resource ${r.attributes["service.name"] ?? "#" + (i + 1)}`;
    compare(where, r.attributes, ra[i]?.attributes ?? {}, rows);
  });
  const [ib, ia] = [itemsOf(before.data), itemsOf(after.data)];
  let dropped = 0;
  for (const [key, item] of ib) {
    const out = ia.get(key);
    if (!out) {
      dropped += 1;
      rows.push({ where: item.name, change: "dropped", key: "", before: key, after: "" });
    } else {
      compare(item.name, item.attributes, out.attributes, rows);
    }
  }
  return { rows, dropped, inCount: ib.size, outCount: ia.size };
}

function drawDiff(processor, before, after) {
  const { rows, dropped, inCount, outCount } = diffBatches(before, after);
  const count = (c) => rows.filter((r) => r.change === c).length;
  $("diff-status").textContent = `${processor}: ${inCount} items in, ${outCount} out, ${dropped} dropped; attributes ${count("added")} added, ${count("changed")} changed, ${count("removed")} removed.`;
  const table = document.createElement("table");
  table.id = "diff-table";
  table.createCaption().textContent = `What ${processor} changed in one ${before.signal} batch`;
  const head = table.createTHead().insertRow();
  for (const h of ["Where", "Change", "Attribute", "Before", "After"]) {
    head.appendChild(Object.assign(document.createElement("th"), { scope: "col", textContent: h }));
  }
  const body = table.createTBody();
  for (const r of rows) {
    const row = body.insertRow();
    row.className = "diff-" + (r.change === "dropped" ? "removed" : r.change);
    for (const v of [r.where, r.change, r.key, r.before, r.after]) cell(row, v);
  }
  if (!rows.length) cell(body.insertRow(), "No change in this batch.").colSpan = 5;
  $("diff").replaceChildren(table);
}

async function startDiff(event) {
  event.preventDefault();
  const pipeline = $("diff-pipeline").value;
  const processor = $("diff-processor").value;
  if (!processor) return ($("diff-status").textContent = "This pipeline runs no plugin to diff.");
  const abort = new AbortController();
  const timeout = setTimeout(() => abort.abort(), DIFF_TIMEOUT_MS);
  const befores = [];
  let ready = 0;
  let found = false;
  $("diff-start").disabled = true;
  $("diff-status").textContent = `Tapping before and after ${processor}…`;
  const onHeader = () => {
    ready += 1;
    if (ready === 2) $("diff-status").textContent = `Waiting for a batch through ${processor}…`;
  };
  const base = `pipeline=${queryValue(pipeline)}`;
  const watchBefore = readTap(`${base}&before=${queryValue(processor)}`, abort.signal, (record) => {
    if (!("data" in record)) return onHeader();
    befores.push(record);
    if (befores.length > DIFF_WINDOW) befores.shift();
  });
  const watchAfter = readTap(`${base}&after=${queryValue(processor)}`, abort.signal, (record) => {
    if (!("data" in record)) return onHeader();
    const before = befores.find((b) => sameBatch(b, record));
    if (!before || found) return;
    found = true;
    drawDiff(processor, before, record);
    abort.abort();
  });
  try {
    await Promise.all([watchBefore, watchAfter]);
  } catch (error) {
    if (error.name !== "AbortError") $("diff-status").textContent = `Diff failed: ${error.message}`;
    else if (!found) $("diff-status").textContent = `No batch passed ${processor} within ${DIFF_TIMEOUT_MS / 1000} s (a plugin that drops a whole batch sends nothing after it).`;
  } finally {
    clearTimeout(timeout);
    abort.abort();
    $("diff-start").disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
setupTabs();
$("reload").addEventListener("click", reload);
$("tap-form").addEventListener("submit", startTap);
$("tap-pause").addEventListener("click", togglePause);
$("tap-stop").addEventListener("click", () => { stopTap(); tapStatus(); });
$("tap-pipeline").addEventListener("change", fillPoints);
$("tap-filter").addEventListener("input", () => { for (const b of tap.batches) b.drawn = false; tap.drawn = Math.max(0, tap.drawn - tap.batches.length); drawTap(); });
$("diff-pipeline").addEventListener("change", fillDiffProcessors);
$("diff-form").addEventListener("submit", startDiff);
$("pod-form").addEventListener("submit", findPod);
connect();
