// The run page: polls /api/v1/runs/<id>/metrics/ for new points and the run's progress, appends them to the
// charts without reloading, and stops polling when the run ends. Text goes into the DOM as text nodes only.

import { api } from "./api.js";

const POLL_MS = 2000;
const FINAL = new Set(["succeeded", "failed", "cancelled", "lost"]);
const STATUS_LABELS = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
  lost: "Lost",
};
const COLORS = ["#2f6fde", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d"];

const page = JSON.parse(document.getElementById("run-page").textContent);
const root = document.getElementById("run");
const charts = {};
const seriesIndex = {}; // metric name -> [chart, dataset]
let after = null;
let status = page.status;

// Evaluation values (eval_*) are shown in the table, not as one-point lines.
function groupOf(name) {
  const n = name.toLowerCase();
  if (n.startsWith("eval_")) return null;
  if (n.includes("kl")) return "kl";
  if (n.includes("loss")) return "loss";
  if (n.includes("acc")) return "accuracy";
  if (n.includes("reward") || n.includes("score")) return "reward";
  return "other";
}

function chartFor(group) {
  if (charts[group]) return charts[group];
  const box = document.querySelector(`.chart-box[data-group="${group}"]`);
  box.hidden = false;
  document.getElementById("charts-empty").hidden = true;
  charts[group] = new window.Chart(document.getElementById(`chart-${group}`), {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      parsing: false,
      normalized: true,
      spanGaps: true,
      elements: { point: { radius: 0 }, line: { borderWidth: 1.5 } },
      interaction: { mode: "nearest", axis: "x", intersect: false },
      scales: { x: { type: "linear", title: { display: true, text: "step" } } },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
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

function showProgress(data) {
  status = data.status;
  root.dataset.state = status;
  const badge = document.getElementById("run-status");
  badge.textContent = STATUS_LABELS[status] || status;
  badge.className = `run-status status-${status}`;
  const bar = document.getElementById("run-progress");
  if (data.progress !== null && data.progress !== undefined) bar.value = data.progress;
  document.getElementById("run-step").textContent = data.total
    ? `Step ${data.step} of ${data.total} (${Math.round((100 * data.step) / data.total)} %)`
    : status === "queued"
      ? "Waiting for a worker"
      : "Waiting for the first step";
  const eta = document.getElementById("run-eta");
  eta.textContent = status === "running" && data.eta_seconds !== null ? ` · about ${duration(data.eta_seconds)} left` : "";
  const error = document.getElementById("run-error");
  error.textContent = data.error || "";
  error.hidden = !data.error;
  if (FINAL.has(status)) {
    const cancel = document.getElementById("run-cancel");
    if (cancel) cancel.hidden = true;
    document.getElementById("run-cancel-note").hidden = true;
  }
}

function showEvaluation(evaluation) {
  const rows = Object.entries(evaluation || {}).sort(([a], [b]) => a.localeCompare(b));
  const table = document.getElementById("evaluation");
  const body = table.tBodies[0];
  body.replaceChildren(
    ...rows.map(([name, value]) => {
      const tr = document.createElement("tr");
      for (const text of [name, typeof value === "number" ? String(Number(value.toPrecision(6))) : String(value)]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
  table.hidden = rows.length === 0;
  document.getElementById("evaluation-empty").hidden = rows.length > 0;
}

async function finish() {
  const response = await api("GET", `runs/${page.id}/`);
  if (response.status !== 200) return;
  showEvaluation(response.data.evaluation);
  const pre = document.getElementById("lineage-json");
  if (pre && response.data.lineage) pre.textContent = JSON.stringify(response.data.lineage, null, 2);
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
    if (FINAL.has(data.status)) {
      await finish();
      root.dataset.polling = "done";
      return;
    }
  }
  setTimeout(poll, POLL_MS);
}

async function cancel(event) {
  const button = event.currentTarget;
  button.disabled = true;
  const response = await api("POST", `runs/${page.id}/cancel/`);
  if (response.status === 200 || response.status === 202) {
    button.hidden = true;
    document.getElementById("run-cancel-note").hidden = response.data.status !== "running";
    showProgress({ ...response.data, total: response.data.total, eta_seconds: null });
  } else {
    button.disabled = false;
    const error = document.getElementById("run-error");
    error.textContent = response.data.detail || `Could not cancel (HTTP ${response.status}).`;
    error.hidden = false;
  }
}

document.getElementById("run-cancel")?.addEventListener("click", cancel);
poll();
