// The dashboard's charts, drawn as plain SVG: a time series of lines and a list of bars.

const NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs = {}, parent = null, text = null) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

// A round upper bound for an axis (1, 2, 5 times a power of ten), never below `floor`.
export function niceMax(value, floor = 4) {
  const target = Math.max(value, floor);
  const power = 10 ** Math.floor(Math.log10(target));
  for (const step of [1, 2, 5, 10]) if (step * power >= target) return step * power;
  return 10 * power;
}

function clock(ms) {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()]
    .map((n) => String(n).padStart(2, "0")).join(":");
}

// Time ticks on round seconds/minutes so labels stay put as the chart scrolls.
function timeTicks(from, to, width) {
  const span = to - from;
  const wanted = Math.max(2, Math.floor(width / 110));
  const steps = [5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 1800e3, 3600e3];
  const step = steps.find((s) => span / s <= wanted) ?? steps[steps.length - 1];
  const ticks = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);
  return ticks;
}

// Lines over time. `series`: [{name, cls, points: [[ms, value], ...]}]; `gapMs`: a pause
// between two samples longer than this breaks the line instead of drawing across the gap.
export function lineChart(box, { series, from, to, cap = null, capLabel = "", gapMs, label }) {
  const width = Math.max(box.clientWidth, 280);
  const height = 220;
  const pad = { left: 40, right: 12, top: 12, bottom: 26 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const values = series.flatMap((s) => s.points.map((p) => p[1]));
  const top = niceMax(Math.max(0, ...values, cap ?? 0));
  const x = (t) => pad.left + ((t - from) / Math.max(1, to - from)) * plotW;
  const y = (v) => pad.top + plotH - (v / top) * plotH;
  const svg = svgEl("svg", {
    viewBox: `0 0 ${width} ${height}`, width: "100%", height, role: "img", "aria-label": label,
    class: "line-chart",
  });
  svgEl("title", {}, svg, label);
  const grid = svgEl("g", { class: "grid" }, svg);
  for (let i = 0; i <= 4; i += 1) {
    const v = (top * i) / 4;
    svgEl("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }, grid);
    svgEl("text", { x: pad.left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, grid,
      Number.isInteger(v) ? String(v) : v.toFixed(1));
  }
  for (const t of timeTicks(from, to, plotW)) {
    svgEl("line", { x1: x(t), x2: x(t), y1: pad.top, y2: pad.top + plotH, class: "tick" }, grid);
    svgEl("text", { x: x(t), y: height - 8, class: "axis", "text-anchor": "middle" }, grid, clock(t));
  }
  if (cap !== null && cap > 0) {
    svgEl("line", { x1: pad.left, x2: width - pad.right, y1: y(cap), y2: y(cap), class: "cap" }, svg);
    svgEl("text", { x: width - pad.right - 4, y: y(cap) - 4, class: "cap-label", "text-anchor": "end" },
      svg, capLabel);
  }
  for (const s of series) {
    const group = svgEl("g", { class: `series ${s.cls}`, "data-series": s.name }, svg);
    for (const run of splitAtGaps(s.points, gapMs)) {
      const line = run.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      const base = y(0).toFixed(1);
      const first = x(run[0][0]).toFixed(1);
      const last = x(run[run.length - 1][0]).toFixed(1);
      svgEl("polygon", { points: `${first},${base} ${line} ${last},${base}`, class: "area" }, group);
      svgEl("polyline", { points: line, class: "line" }, group);
    }
  }
  box.replaceChildren(svg);
  return svg;
}

function splitAtGaps(points, gapMs) {
  const runs = [];
  let run = [];
  for (const point of points) {
    if (run.length && point[0] - run[run.length - 1][0] > gapMs) {
      runs.push(run);
      run = [];
    }
    run.push(point);
  }
  if (run.length) runs.push(run);
  return runs;
}

// Horizontal bars, one per [name, value], each tagged with `data-name` and `data-value`.
export function barChart(box, { rows, label, classOf = () => "", empty = "nothing yet" }) {
  const width = Math.max(box.clientWidth, 240);
  const rowH = 26;
  // Wide enough for the longest name (about 7 px a character at 12 px), at most half.
  const longest = Math.max(0, ...rows.map((r) => String(r[0]).length));
  const labelW = Math.min(width * 0.5, Math.max(60, longest * 7 + 12));
  const valueW = 56;
  const height = Math.max(rows.length, 1) * rowH + 8;
  const svg = svgEl("svg", {
    viewBox: `0 0 ${width} ${height}`, width: "100%", height, role: "img", "aria-label": label,
    class: "bar-chart",
  });
  svgEl("title", {}, svg, label);
  if (!rows.length) {
    svgEl("text", { x: 4, y: 20, class: "empty" }, svg, empty);
  }
  const top = niceMax(Math.max(0, ...rows.map((r) => r[1])), 1);
  const barW = width - labelW - valueW;
  rows.forEach(([name, value], i) => {
    const yTop = 4 + i * rowH;
    const row = svgEl("g", { class: `bar ${classOf(name)}`, "data-name": name, "data-value": value }, svg);
    svgEl("text", { x: labelW - 8, y: yTop + 17, "text-anchor": "end", class: "bar-label" }, row, name);
    svgEl("rect", { x: labelW, y: yTop + 4, width: barW, height: rowH - 8, rx: 3, class: "track" }, row);
    const w = value > 0 ? Math.max(2, (value / top) * barW) : 0;
    svgEl("rect", { x: labelW, y: yTop + 4, width: w, height: rowH - 8, rx: 3, class: "fill" }, row);
    svgEl("text", { x: labelW + barW + 8, y: yTop + 17, class: "bar-value" }, row, String(value));
  });
  box.replaceChildren(svg);
  return svg;
}
