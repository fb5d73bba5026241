// The run page: polls /api/v1/runs/<id>/metrics/ for new points and the run's progress, appends them to the
// charts without reloading, reads the run itself whenever its status changes (lineage, evaluation, flags), and
// stops polling when the run ends. Text goes into the DOM as text nodes only.

import { api } from "./api.js";

const POLL_MS = 2000;
const FINAL = new Set(["succeeded", "failed", "cancelled", "lost"]);
const STOPPED = new Set(["failed", "cancelled", "lost"]);
const STATUS_LABELS = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
  lost: "Lost",
};
// What the progress line says before any step (frontend/runs.py step_text says the same on first load).
const NO_STEP_TEXT = {
  queued: "Waiting for a worker",
  running: "Waiting for the first step",
  succeeded: "Finished",
  failed: "Failed before its first step",
  cancelled: "Cancelled before its first step",
  lost: "Lost before its first step",
};
const COLORS = ["#2f6fde", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d"];
// Above this many points a line is drawn without its points; below it each point shows, so one point draws.
const POINTS_SHOWN_UP_TO = 60;

const page = JSON.parse(document.getElementById("run-page").textContent);
const root = document.getElementById("run");
const charts = {};
const seriesIndex = {}; // metric name -> [chart, dataset]
let after = null;
let status = page.status;
let shownStatus = null; // the status the lineage, evaluation and flags were last read for
let lineageShown = false; // written when the run starts: read again while a running run has none yet
let otherCharts = 0;

// Shared charts for metrics of one kind and one scale; every other metric gets a chart of its own (a learning rate
// of 1e-5 and a token count of 1e5 on one axis flatten each other). Evaluation values (eval_*) are in the table.
function groupOf(name) {
  const n = name.toLowerCase();
  if (n.startsWith("eval_")) return null;
  if (n.includes("kl")) return "kl";
  if (n.includes("loss")) return "loss";
  if (n.includes("acc")) return "accuracy";
  if (n.includes("reward") || n.includes("score")) return "reward";
  return `metric:${name}`;
}

// Axis numbers a person reads: 0 for float dust next to 0, 1.5e-5 rather than 0.000015, 12.3K rather than 12345,
// and only as many decimals as the step between ticks needs.
const compactFormats = {};

function compact(value, size, unit) {
  const digits = Math.min(6, Math.max(2, Math.floor(Math.log10(size)) - Math.floor(Math.log10(unit)) + 1));
  compactFormats[digits] ??= new Intl.NumberFormat("en", { notation: "compact", maximumSignificantDigits: digits });
  return compactFormats[digits].format(value);
}

export function formatNumber(value, step) {
  if (!Number.isFinite(value)) return String(value);
  const unit = Math.abs(step) || Math.abs(value) || 1;
  if (Math.abs(value) < unit * 1e-6) return "0";
  const size = Math.max(Math.abs(value), unit);
  if (size >= 1e4) return compact(value, size, unit);
  if (size < 1e-3) {
    const digits = Math.min(3, Math.max(0, Math.floor(Math.log10(size)) - Math.floor(Math.log10(unit))));
    return value.toExponential(digits).replace(/\.?0+e/, "e").replace("e+", "e");
  }
  const decimals = Math.min(6, Math.max(0, -Math.floor(Math.log10(unit))));
  return value.toLocaleString("en", { maximumFractionDigits: decimals, minimumFractionDigits: 0 });
}

function tickLabel(value, index, ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1].value - ticks[0].value) : 0;
  return formatNumber(value, step);
}

function tooltipValue(value) {
  if (value === null || value === undefined) return "–";
  return formatNumber(value, Math.abs(value) / 1000);
}

function newBox(name) {
  const figure = document.createElement("figure");
  figure.className = "chart-box";
  figure.dataset.metric = name;
  const caption = document.createElement("figcaption");
  caption.textContent = name;
  const holder = document.createElement("div");
  holder.className = "chart";
  const canvas = document.createElement("canvas");
  otherCharts += 1;
  canvas.id = `chart-metric-${otherCharts}`;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `${name} per step`);
  holder.append(canvas);
  figure.append(caption, holder);
  document.getElementById("other-charts").append(figure);
  return canvas;
}

function chartFor(group) {
  if (charts[group]) return charts[group];
  let canvas;
  if (group.startsWith("metric:")) {
    canvas = newBox(group.slice("metric:".length));
  } else {
    document.querySelector(`.chart-box[data-group="${group}"]`).hidden = false;
    canvas = document.getElementById(`chart-${group}`);
  }
  document.getElementById("charts-empty").hidden = true;
  const single = group.startsWith("metric:");
  charts[group] = new window.Chart(canvas, {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      parsing: false,
      normalized: true,
      spanGaps: true,
      elements: {
        point: { radius: (ctx) => (ctx.dataset.data.length <= POINTS_SHOWN_UP_TO ? 2.5 : 0), hitRadius: 4 },
        line: { borderWidth: 1.5 },
      },
      interaction: { mode: "nearest", axis: "x", intersect: false },
      scales: {
        x: { type: "linear", title: { display: true, text: "step" }, ticks: { callback: tickLabel, precision: 0 } },
        y: { ticks: { callback: tickLabel } },
      },
      plugins: {
        legend: { display: !single, position: "bottom", labels: { boxWidth: 12 } },
        tooltip: {
          callbacks: {
            title: (items) => (items.length ? `step ${items[0].parsed.x}` : ""),
            label: (item) => `${item.dataset.label}: ${tooltipValue(item.parsed.y)}`,
          },
        },
      },
    },
  });
  return charts[group];
}

function append(series) {
  const touched = new Set();
  for (const [name, points] of Object.entries(series)) {
    const group = groupOf(name);
    if (!group || points.length === 0) continue;
    if (!seriesIndex[name]) {
      const chart = chartFor(group);
      const color = COLORS[chart.data.datasets.length % COLORS.length];
      const dataset = { label: name, data: [], borderColor: color, backgroundColor: color };
      chart.data.datasets.push(dataset);
      seriesIndex[name] = [chart, dataset];
    }
    const [chart, dataset] = seriesIndex[name];
    for (const [x, y] of points) dataset.data.push({ x, y });
    touched.add(chart);
  }
  for (const chart of touched) chart.update("none");
}

function duration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  const hours = Math.floor(seconds / 3600);
  return `${hours} h ${Math.round((seconds - hours * 3600) / 60)} min`;
}

function stepText(data) {
  if (data.total) {
    if (STOPPED.has(data.status) && data.step < data.total) return `Stopped at step ${data.step} of ${data.total}`;
    return `Step ${data.step} of ${data.total} (${Math.round((100 * data.step) / data.total)} %)`;
  }
  return NO_STEP_TEXT[data.status] || "";
}

function showProgress(data) {
  status = data.status;
  root.dataset.state = status;
  const badge = document.getElementById("run-status");
  badge.textContent = STATUS_LABELS[status] || status;
  badge.className = `run-status status-${status}`;
  const bar = document.getElementById("run-progress");
  if (data.progress !== null && data.progress !== undefined) bar.value = data.progress;
  document.getElementById("run-step").textContent = stepText(data);
  const eta = document.getElementById("run-eta");
  eta.textContent = status === "running" && data.eta_seconds !== null ? ` · about ${duration(data.eta_seconds)} left` : "";
  const error = document.getElementById("run-error");
  error.textContent = data.error || "";
  error.hidden = !data.error;
  const queue = document.getElementById("run-queue"); // why a queued run waits: over once a worker took it
  if (queue && status !== "queued") queue.hidden = true;
  if (FINAL.has(status)) {
    const cancel = document.getElementById("run-cancel");
    if (cancel) cancel.hidden = true;
    const confirm = document.getElementById("run-cancel-confirm");
    if (confirm) confirm.hidden = true;
    document.getElementById("run-cancel-note").hidden = true;
  }
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function showEvaluation(evaluation) {
  const rows = Object.entries(evaluation || {}).sort(([a], [b]) => a.localeCompare(b));
  const table = document.getElementById("evaluation");
  table.tBodies[0].replaceChildren(
    ...rows.map(([name, value]) => {
      const tr = document.createElement("tr");
      tr.append(cell(name), cell(typeof value === "number" ? String(Number(value.toPrecision(6))) : String(value)));
      return tr;
    }),
  );
  table.hidden = rows.length === 0;
  document.getElementById("evaluation-empty").hidden = rows.length > 0;
}

function showFlags(flags) {
  const list = document.getElementById("flag-list");
  list.replaceChildren(
    ...(flags || []).map((flag) => {
      const li = document.createElement("li");
      li.dataset.code = flag.code;
      const code = document.createElement("strong");
      code.textContent = flag.code;
      li.append(code, ` ${flag.detail}`);
      return li;
    }),
  );
  document.getElementById("run-flags").hidden = !flags || flags.length === 0;
}

// A list of links (for staff) or names, or the placeholder when there is nothing yet.
function fillList(id, entries, label, urlTemplate) {
  const dd = document.getElementById(id);
  if (!dd || entries.length === 0) return;
  const parts = [];
  entries.forEach((entry, index) => {
    if (index) parts.push(", ");
    if (urlTemplate) {
      const a = document.createElement("a");
      a.href = urlTemplate.replace("{id}", String(entry.id));
      a.textContent = label(entry);
      parts.push(a);
    } else {
      parts.push(label(entry));
    }
  });
  dd.replaceChildren(...parts);
}

function showLineage(run) {
  const lineage = run.lineage || {};
  const urls = page.admin_urls || {};
  fillList("lineage-batches", lineage.batches || [], (b) => b.name, urls.batch);
  fillList("lineage-criteria", lineage.criteria_versions || [], (c) => `v${c.number}`, urls.criteria);
  const worker = lineage.run && lineage.run.worker;
  if (run.device) document.getElementById("lineage-device").textContent = worker ? `${run.device} on ${worker}` : run.device;
  const code = lineage.code || {};
  if (code.git_sha) {
    const sha = document.createElement("code");
    sha.textContent = code.git_sha.slice(0, 12);
    document.getElementById("lineage-code").replaceChildren(sha, code.git_dirty ? " (with local changes)" : "");
  }
  if (run.finished_at) {
    document.getElementById("lineage-finished").textContent = run.finished_at.replace("T", " ").slice(0, 19);
  }
  const pre = document.getElementById("lineage-json");
  if (run.lineage && Object.keys(run.lineage).length) {
    pre.textContent = JSON.stringify(run.lineage, null, 2);
    lineageShown = true;
  }
}

// The run itself, read when its status changes: the lineage is written when it starts and again when it ends.
async function refreshRun() {
  const response = await api("GET", `runs/${page.id}/`);
  if (response.status !== 200) return false;
  showLineage(response.data);
  showEvaluation(response.data.evaluation);
  showFlags(response.data.flags);
  shownStatus = response.data.status;
  return true;
}

async function poll() {
  let response;
  try {
    response = await api("GET", `runs/${page.id}/metrics/${after === null ? "" : `?after=${after}`}`);
  } catch {
    setTimeout(poll, POLL_MS * 2); // the network blinked: try again later
    return;
  }
  if (response.status === 200) {
    const data = response.data;
    append(data.series);
    if (data.last_step !== null && data.last_step !== undefined) after = data.last_step;
    showProgress(data);
    if (data.more) {
      poll();
      return;
    }
    const stale = data.status !== shownStatus || (data.status === "running" && !lineageShown);
    if (stale && data.status !== "queued") {
      try {
        await refreshRun();
      } catch {
        // read again at the next poll
      }
    }
    if (FINAL.has(data.status) && shownStatus === data.status) {
      root.dataset.polling = "done";
      return;
    }
  }
  setTimeout(poll, POLL_MS);
}

// Cancelling asks first, on the page (no browser dialog): the question and two buttons below the header.
function askToCancel() {
  const button = document.getElementById("run-cancel");
  const confirm = document.getElementById("run-cancel-confirm");
  confirm.hidden = false;
  button.setAttribute("aria-expanded", "true");
  document.getElementById("run-cancel-no").focus();
}

function keepRunning() {
  const button = document.getElementById("run-cancel");
  document.getElementById("run-cancel-confirm").hidden = true;
  button.setAttribute("aria-expanded", "false");
  button.focus();
}

async function cancel(event) {
  const yes = event.currentTarget;
  const button = document.getElementById("run-cancel");
  yes.disabled = true;
  const response = await api("POST", `runs/${page.id}/cancel/`);
  yes.disabled = false;
  document.getElementById("run-cancel-confirm").hidden = true;
  if (response.status === 200 || response.status === 202) {
    button.hidden = true;
    document.getElementById("run-cancel-note").hidden = response.data.status !== "running";
    showProgress({ ...response.data, total: response.data.total, eta_seconds: null });
  } else {
    button.setAttribute("aria-expanded", "false");
    const error = document.getElementById("run-error");
    error.textContent = response.data.detail || `Could not cancel (HTTP ${response.status}).`;
    error.hidden = false;
  }
}

document.getElementById("run-cancel")?.addEventListener("click", askToCancel);
document.getElementById("run-cancel-no")?.addEventListener("click", keepRunning);
document.getElementById("run-cancel-yes")?.addEventListener("click", cancel);
shownStatus = page.status; // the server rendered the lineage, evaluation and flags for the status it saw
lineageShown = page.has_lineage;
poll();
