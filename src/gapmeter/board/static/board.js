// gapmeter board: plots (plotly.js served by the board itself) and leaderboard form helpers.
// Sign-in is a plain form: the server sets an HttpOnly cookie that no script can read.
// All data comes from <script type="application/json"> blocks rendered by the server, so no
// inline script runs (the Content-Security-Policy forbids it) and text is never parsed as HTML.
"use strict";

function readJson(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

function markRendered(el) { el.setAttribute("data-rendered", "true"); }

function radar() {
  const el = document.getElementById("radar");
  const data = readJson("radar-data");
  if (!el || !data || !window.Plotly) return;
  if (!data.tasks.length) { el.textContent = "No scores."; markRendered(el); return; }
  const theta = data.tasks.concat([data.tasks[0]]);
  const r = data.values.map(v => (v === null ? 0 : 100 * v));
  Plotly.newPlot(el, [{ type: "scatterpolar", r: r.concat([r[0]]), theta: theta, fill: "toself", name: "score (%)" }],
    { polar: { radialaxis: { range: [0, 100] } }, margin: { t: 30, b: 30 }, showlegend: false },
    { displaylogo: false, responsive: true }).then(() => markRendered(el));
}

function pareto() {
  const data = readJson("pareto-data");
  if (!data || !window.Plotly) return;
  document.querySelectorAll("[data-plot=pareto]").forEach(el => {
    const x = el.dataset.x;
    const frontier = new Set(x === "cost" ? data.frontier_cost : data.frontier_speed);
    const pts = data.points.filter(p => p[x] !== null && p.quality !== null);
    const trace = (sel, name, symbol) => {
      const ps = pts.filter(sel);
      return {
        type: "scatter", mode: "markers+text", name: name, x: ps.map(p => p[x]), y: ps.map(p => 100 * p.quality),
        text: ps.map(p => p.model), textposition: "top center", marker: { size: 10, symbol: symbol },
        error_y: { type: "data", symmetric: false, visible: true,
          array: ps.map(p => p.quality_ci95 ? 100 * (p.quality_ci95[1] - p.quality) : 0),
          arrayminus: ps.map(p => p.quality_ci95 ? 100 * (p.quality - p.quality_ci95[0]) : 0) },
      };
    };
    const front = pts.filter(p => frontier.has(p.model)).sort((a, b) => a[x] - b[x]);
    const line = { type: "scatter", mode: "lines", name: "frontier", x: front.map(p => p[x]),
      y: front.map(p => 100 * p.quality), line: { dash: "dot" }, hoverinfo: "skip" };
    Plotly.newPlot(el, [trace(p => frontier.has(p.model), "on the frontier", "diamond"),
      trace(p => !frontier.has(p.model), "dominated", "circle"), line],
      { xaxis: { title: { text: el.dataset.xlabel }, type: "log" }, yaxis: { title: { text: "quality (%)" } },
        margin: { t: 20 } }, { displaylogo: false, responsive: true }).then(() => markRendered(el));
  });
}

function leaderboardForm() {
  const form = document.getElementById("filters");
  if (!form) return;
  form.querySelectorAll("input[type=range]").forEach(r => {
    r.addEventListener("input", () => { r.nextElementSibling.textContent = r.value; });
  });
  form.addEventListener("submit", () => {
    const boxes = Array.from(form.querySelectorAll(".task-box"));
    const chosen = boxes.filter(b => b.checked).map(b => b.value);
    // All tasks selected means "no filter": keep URLs short and stable.
    document.getElementById("tasks-field").value = chosen.length === boxes.length ? "" : chosen.join(",");
  });
}

document.addEventListener("DOMContentLoaded", () => { radar(); pareto(); leaderboardForm(); });
