// The lead's charts. Data comes from the page's json_script blocks (never inline script); every label is set as
// text by Chart.js on a canvas, so nothing here builds HTML. Chart.js is the vendored UMD build (window.Chart).

const Chart = window.Chart;
const COLOURS = ["#2f6fde", "#d9480f", "#2b8a3e", "#ae3ec9", "#e8590c", "#1098ad", "#c2255c", "#5c940d", "#364fc7", "#862e9c"];
const QUIET = "rgba(120, 130, 150, 0.28)";
const BAND = { alarm: "rgba(198, 40, 40, 0.10)", warn: "rgba(224, 161, 0, 0.13)", fine: "rgba(43, 138, 62, 0.06)" };

function readData(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}

// Shaded horizontal ranges behind the data: options.plugins.bands = [{from, to, colour}], in y units.
const bandsPlugin = {
  id: "bands",
  beforeDatasetsDraw(chart, _args, options) {
    const { ctx, chartArea, scales } = chart;
    if (!options || !options.ranges || !scales.y) return;
    ctx.save();
    for (const range of options.ranges) {
      const top = scales.y.getPixelForValue(Math.min(range.to, scales.y.max));
      const bottom = scales.y.getPixelForValue(Math.max(range.from, scales.y.min));
      if (bottom <= top) continue;
      ctx.fillStyle = range.colour;
      ctx.fillRect(chartArea.left, top, chartArea.right - chartArea.left, bottom - top);
    }
    ctx.restore();
  },
};

// Dashed reference lines: options.plugins.rules = [{value, colour, label}].
const rulesPlugin = {
  id: "rules",
  afterDatasetsDraw(chart, _args, options) {
    const { ctx, chartArea, scales } = chart;
    if (!options || !options.lines || !scales.y) return;
    ctx.save();
    ctx.setLineDash([6, 4]);
    ctx.lineWidth = 1.5;
    for (const line of options.lines) {
      const y = scales.y.getPixelForValue(line.value);
      if (y < chartArea.top || y > chartArea.bottom) continue;
      ctx.strokeStyle = line.colour;
      ctx.beginPath();
      ctx.moveTo(chartArea.left, y);
      ctx.lineTo(chartArea.right, y);
      ctx.stroke();
      if (line.label) {
        ctx.fillStyle = line.colour;
        ctx.font = "11px system-ui, sans-serif";
        ctx.textAlign = "right";
        ctx.fillText(line.label, chartArea.right - 4, y - 4);
      }
    }
    ctx.restore();
  },
};

Chart.register(bandsPlugin, rulesPlugin);
Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", sans-serif';
Chart.defaults.color = "#5b6577";
Chart.defaults.maintainAspectRatio = false;
Chart.defaults.animation = false;

const fixed = (digits) => (value) => (value === null || value === undefined ? "—" : Number(value).toFixed(digits));
const percent = (value) => (value === null || value === undefined ? "—" : `${Math.round(value * 100)} %`);

function tooltipWith(format) {
  return {
    callbacks: {
      label(context) {
        const name = context.dataset.label || "";
        return `${name}: ${format(context.parsed.y)}`;
      },
    },
  };
}

function canvas(id) {
  return document.getElementById(id);
}

function colourFor(index) {
  return COLOURS[index % COLOURS.length];
}

// Many annotators: colour the flagged ones (and everyone when there are few), grey the rest, legend only when short.
function personDatasets(people, key) {
  const few = people.length <= COLOURS.length;
  let colourIndex = 0;
  return people.map((person) => {
    const highlighted = few || person.flagged;
    const colour = highlighted ? colourFor(colourIndex++) : QUIET;
    return {
      label: person.username,
      data: person[key],
      borderColor: colour,
      backgroundColor: colour,
      borderWidth: highlighted ? 2.2 : 1,
      pointRadius: highlighted ? 3 : 1.5,
      spanGaps: true,
      order: highlighted ? 0 : 1,
      url: person.url,
    };
  });
}

function openPointOwner(event, elements, chart) {
  if (!elements.length) return;
  const dataset = chart.data.datasets[elements[0].datasetIndex];
  if (dataset.url) window.location.assign(dataset.url);
}

function kappaChart(data) {
  const t = data.thresholds;
  const names = data.batches.map((b) => b.name);
  const series = [
    ["cohen_kappa", COLOURS[0]],
    ["krippendorff_alpha", COLOURS[1]],
    ["fleiss_kappa", COLOURS[2]],
  ];
  const values = data.batches.flatMap((b) => series.map(([key]) => b[key])).filter((v) => v !== null);
  const low = Math.min(0, ...values);
  return new Chart(canvas("chart-kappa"), {
    type: fewBatches(names) ? "bar" : "line",
    data: {
      labels: names,
      datasets: series.map(([key, colour], i) => ({
        label: data.labels[key],
        data: data.batches.map((b) => b[key]),
        borderColor: colour,
        backgroundColor: colour,
        borderWidth: i === 0 ? 3 : 1.8,
        borderDash: i === 0 ? [] : [4, 3],
        pointRadius: i === 0 ? 4 : 2.5,
        spanGaps: false,
      })),
    },
    options: {
      scales: { y: { min: Math.floor(low * 10) / 10, max: 1, title: { display: true, text: "coefficient" } } },
      plugins: {
        tooltip: tooltipWith(fixed(3)),
        bands: {
          ranges: [
            { from: -1, to: t.kappa_alarm, colour: BAND.alarm },
            { from: t.kappa_alarm, to: t.kappa_warn, colour: BAND.warn },
            { from: t.kappa_warn, to: 1, colour: BAND.fine },
          ],
        },
        rules: {
          lines: [
            { value: t.kappa_warn, colour: "#b07d00", label: `warn < ${t.kappa_warn}` },
            { value: t.kappa_alarm, colour: "#c62828", label: `alarm < ${t.kappa_alarm}` },
          ],
        },
      },
    },
  });
}

// With one or two batches a line chart is a column of overlapping dots: grouped bars show each value apart.
function fewBatches(names) {
  return names.length <= 2;
}

function personChart(id, data, key, { percentScale }) {
  const people = data.annotators;
  return new Chart(canvas(id), {
    type: fewBatches(data.batch_names) ? "bar" : "line",
    data: { labels: data.batch_names, datasets: personDatasets(people, key) },
    options: {
      onClick: openPointOwner,
      interaction: { mode: "nearest", intersect: true },
      scales: {
        y: percentScale
          ? { min: 0, max: 1, ticks: { callback: percent } }
          : { suggestedMin: 0, max: 1, title: { display: true, text: "κ" } },
      },
      plugins: {
        legend: { display: people.length <= 12, position: "right" },
        tooltip: tooltipWith(percentScale ? percent : fixed(3)),
      },
    },
  });
}

function biasChart(data) {
  const select = document.getElementById("bias-batch");
  const batches = data.bias;
  const urlOf = new Map(data.annotators.map((person) => [person.id, person.url]));
  for (const [index, batch] of batches.entries()) {
    const option = document.createElement("option");
    option.value = String(index);
    option.textContent = batch.batch;
    select.append(option);
  }
  select.value = String(batches.length - 1);
  const build = (index) => {
    const rows = batches[index].annotators;
    return {
      labels: rows.map((r) => r.username),
      datasets: [
        {
          label: data.labels.left_share,
          data: rows.map((r) => r.left_share),
          backgroundColor: rows.map((r) => (r.flagged ? "#d9480f" : "rgba(47, 111, 222, 0.75)")),
          urls: rows.map((r) => urlOf.get(r.id)),
        },
        {
          label: data.labels.longer_vs_consensus,
          data: rows.map((r) => r.longer_vs_consensus),
          backgroundColor: rows.map((r) => (r.flagged ? "#ae3ec9" : "rgba(43, 138, 62, 0.65)")),
          urls: rows.map((r) => urlOf.get(r.id)),
        },
      ],
    };
  };
  const chart = new Chart(canvas("chart-bias"), {
    type: "bar",
    data: build(batches.length - 1),
    options: {
      onClick(event, elements, c) {
        if (!elements.length) return;
        const element = elements[0];
        window.location.assign(c.data.datasets[element.datasetIndex].urls[element.index]);
      },
      scales: { y: { min: 0, max: 1, ticks: { callback: percent } }, x: { ticks: { autoSkip: true, maxRotation: 60 } } },
      plugins: {
        tooltip: tooltipWith(percent),
        rules: { lines: [{ value: 0.5, colour: "#1d2430", label: "½" }] },
      },
    },
  });
  select.addEventListener("change", () => {
    chart.data = build(Number(select.value));
    chart.update();
  });
  return chart;
}

function perHourChart(data) {
  const target = canvas("chart-per-hour");
  if (!data.per_hour) {
    target.parentElement.hidden = true;
    document.getElementById("per-hour-missing").hidden = false;
    return null;
  }
  const { unit, rows } = data.per_hour;
  const label = (iso) => {
    const date = new Date(iso);
    const day = date.toISOString().slice(5, 10);
    return unit === "day" ? day : `${day} ${String(date.getUTCHours()).padStart(2, "0")}h`;
  };
  document.getElementById("per-hour-title").textContent = unit === "day" ? "Judgments per day" : "Judgments per hour";
  return new Chart(target, {
    type: "bar",
    data: {
      labels: rows.map((row) => label(row.start)),
      datasets: [{ label: data.labels.judgments, data: rows.map((row) => row.judgments), backgroundColor: COLOURS[0] }],
    },
    options: {
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { ticks: { autoSkip: true, maxRotation: 0 } } },
      plugins: { legend: { display: false } },
    },
  });
}

function annotatorCharts(data) {
  const names = data.batch_names;
  const line = (key, colour, dashed) => ({
    label: data.labels[key],
    data: data.series[key],
    borderColor: colour,
    backgroundColor: colour,
    borderDash: dashed ? [4, 3] : [],
    borderWidth: 2,
    pointRadius: 3,
    spanGaps: true,
  });
  new Chart(canvas("chart-annotator-quality"), {
    type: "line",
    data: {
      labels: names,
      datasets: [
        line("gold_accuracy", COLOURS[0]),
        line("consensus_kappa", COLOURS[1]),
        line("consensus_agreement", COLOURS[2], true),
      ],
    },
    options: {
      scales: { y: { suggestedMin: 0, max: 1 } },
      plugins: { tooltip: tooltipWith(fixed(3)) },
    },
  });
  new Chart(canvas("chart-annotator-habits"), {
    type: "line",
    data: {
      labels: names,
      datasets: [line("left_share", COLOURS[3]), line("longer_share", COLOURS[4]), line("tie_rate", COLOURS[5], true)],
    },
    options: {
      scales: { y: { min: 0, max: 1, ticks: { callback: percent } } },
      plugins: { tooltip: tooltipWith(percent), rules: { lines: [{ value: 0.5, colour: "#1d2430", label: "½" }] } },
    },
  });
}

const project = readData("dashboard-data");
if (project && project.batches.length && canvas("chart-kappa")) {
  kappaChart(project);
  perHourChart(project);
  personChart("chart-accuracy", project, "gold_accuracy", { percentScale: true });
  personChart("chart-consensus", project, "consensus_kappa", { percentScale: false });
  biasChart(project);
}
const annotator = readData("annotator-data");
if (annotator && annotator.batch_names.length && canvas("chart-annotator-quality")) {
  annotatorCharts(annotator);
}
