// The run's timeline: every event as it arrives, drawn as a waterfall on a time axis (SVG):
// one row per stage with the time since the previous stage, output chunks grouped per
// stream. Each event is an element with data-event-type; click or Enter inspects its JSON.

import { TERMINAL } from "./api.js";
import { formatMicros, parseMicros, showInspector } from "./inspector.js";

const SVG = "http://www.w3.org/2000/svg";
const ROW = 26;
const AXIS = 28;

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

/** A note beside a mark: to its right, or to its left where the right has no room. */
function aside(parent, text, at, y, width) {
  const right = at + 9 + text.length * 7 < width;
  el("text", { class: "delta", x: right ? at + 9 : at - 9, y: y + 4,
    "text-anchor": right ? "start" : "end" }, parent).textContent = text;
}

/** What each stage means, shown as the row's tooltip. */
const MEANING = {
  ExecutionRequested: "recorded by the API before it answered 202 Accepted",
  ExecutionQueued: "acknowledged by the coordinator and put in its queue",
  ExecutionScheduled: "given a slot by the coordinator and sent to a worker",
  ExecutionStarted: "the worker started the sandbox",
  ExecutionCancelRequested: "someone asked to cancel it",
  ExecutionCompleted: "the program ended; its result is recorded",
  ExecutionFailed: "the sandbox failed",
  ExecutionTimedOut: "no result before the deadline",
  ExecutionCancelled: "cancelled and stopped",
  ExecutionRejected: "refused by the coordinator",
};

function label(type) {
  return type.replace(/^Execution/, "").replace(/([a-z])([A-Z])/g, "$1 $2");
}

/** Ticks at a 1-2-5 step giving about six labels over the span (micros). */
function ticks(span) {
  const raw = span / 6;
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || power * 10;
  const out = [];
  for (let t = 0; t <= span + 1e-6; t += step) out.push(t);
  return out;
}

export class Timeline {
  constructor(root, summary) {
    this.root = root;
    this.summary = summary;
    this.pending = false;
    this.drawnAt = 0;
    this.timer = null;
    new ResizeObserver(() => this._schedule()).observe(root);
    this.reset();
  }

  reset() {
    this.events = [];
    this.lastSeenAt = 0; // client clock when the last event arrived, to extend a live run
    clearInterval(this.timer);
    this.timer = null;
    this.render();
  }

  add(event) {
    this.events.push({ event, at: parseMicros(event.time) });
    this.lastSeenAt = performance.now();
    if (!this.timer && !TERMINAL.has(event.type)) {
      this.timer = setInterval(() => this._schedule(), 250); // a live run's bars keep growing
    }
    if (TERMINAL.has(event.type)) {
      clearInterval(this.timer);
      this.timer = null;
    }
    this._schedule();
  }

  /** Redraws at most every 100 ms: a live run's events can come faster than anyone reads
   * them, and each redraw costs CPU the sandbox on the same machine could use. */
  _schedule() {
    if (this.pending) return;
    this.pending = true;
    const wait = Math.max(0, this.drawnAt + 100 - performance.now());
    setTimeout(() => requestAnimationFrame(() => {
      this.pending = false;
      this.drawnAt = performance.now();
      this.render();
    }), wait);
  }

  _rows() {
    const rows = [];
    const outputs = {};
    let previous = null; // the last stage event, for the duration to the next
    for (const item of this.events) {
      const { event } = item;
      if (event.type === "ExecutionOutput") {
        const name = event.stage === "compile" ? "compile " + event.stream : event.stream;
        let row = outputs[name];
        if (!row) {
          row = outputs[name] = { kind: "output", name, stream: event.stream, items: [], bytes: 0 };
          rows.push(row);
        }
        row.items.push(item);
        row.bytes += Math.floor((event.data.length * 3) / 4) - (event.data.match(/=*$/)[0].length);
      } else {
        rows.push({ kind: "stage", item, since: previous });
        previous = item;
      }
    }
    return rows;
  }

  render() {
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.key : undefined;
    this.root.textContent = "";
    if (this.events.length === 0) {
      const empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "Run something: its events appear here as they happen.";
      this.root.appendChild(empty);
      this.summary.textContent = "";
      return;
    }
    const rows = this._rows();
    const width = Math.max(this.root.clientWidth, 300);
    const left = width < 520 ? 96 : 140;
    const right = width < 520 ? 64 : 96;
    const height = AXIS + rows.length * ROW + 6;
    const t0 = this.events[0].at;
    const last = this.events[this.events.length - 1];
    const live = this.timer !== null;
    const end = live ? last.at + (performance.now() - this.lastSeenAt) * 1000 : last.at;
    const span = Math.max(end - t0, 1000);
    const x = (t) => left + ((t - t0) / span) * (width - left - right);
    const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "group",
      "aria-label": `Timeline of ${this.events.length} events` }, this.root);
    const axis = el("g", { class: "axis", "aria-hidden": "true" }, svg);
    for (const t of ticks(span)) {
      el("line", { x1: x(t0 + t), x2: x(t0 + t), y1: AXIS - 6, y2: height, class: "grid" }, axis);
      el("text", { x: x(t0 + t), y: AXIS - 10, "text-anchor": "middle" }, axis).textContent =
        formatMicros(t);
    }
    rows.forEach((row, i) => {
      const y = AXIS + i * ROW + ROW / 2;
      if (row.kind === "stage") this._stage(svg, row, y, x, { width, live, end });
      else this._output(svg, row, y, x, { left, width });
    });
    if (focused) {
      const again = this.root.querySelector(`[data-key="${focused}"]`);
      if (again) again.focus();
    }
    const total = formatMicros(last.at - t0);
    const started = this.events.find((e) => e.event.type === "ExecutionStarted");
    const parts = [`${this.events.length} events`, `${live ? "so far" : "total"} ${total}`];
    if (started) parts.push(`waited ${formatMicros(started.at - t0)} before starting`);
    this.summary.textContent = parts.join(" · ");
  }

  _stage(svg, row, y, x, { width, live, end }) {
    const { item, since } = row;
    const type = item.event.type;
    const g = el("g", { class: "ev stage", tabindex: 0, role: "button", "data-event-type": type,
      "data-key": "v" + item.event.aggregate_version,
      "aria-label": `${type} at +${formatMicros(item.at - this.events[0].at)}; show JSON` }, svg);
    el("rect", { class: "hit", x: 2, y: y - ROW / 2 + 2, width: width - 4, height: ROW - 4, rx: 4 }, g);
    el("title", {}, g).textContent = `${type}: ${MEANING[type] || "an event of this run"}`;
    el("text", { class: "name", x: 10, y: y + 4 }, g).textContent = label(type);
    if (since) {
      el("line", { class: "span", x1: x(since.at), x2: x(item.at), y1: y, y2: y }, g);
    }
    if (type === "ExecutionStarted" && live && !this.events.some((e) => TERMINAL.has(e.event.type))) {
      el("line", { class: "span running", x1: x(item.at), x2: x(end), y1: y, y2: y }, g);
    }
    const kind = TERMINAL.has(type) ? (type === "ExecutionCompleted" ? "done" : "stop") : "step";
    el("circle", { class: "dot " + kind, cx: x(item.at), cy: y, r: 5 }, g);
    aside(g, since ? "+" + formatMicros(item.at - since.at) : "0", x(item.at), y, width);
    g.addEventListener("click", () => showInspector([item.event], g));
    g.addEventListener("keydown", (e) => this._activate(e, [item.event], g));
  }

  _output(svg, row, y, x, { width }) {
    const first = row.items[0].at;
    const lastAt = row.items[row.items.length - 1].at;
    const events = row.items.map((i) => i.event);
    const g = el("g", { class: "ev output " + row.stream, tabindex: 0, role: "button",
      "data-key": "out-" + row.name.replace(" ", "-"), "aria-label":
        `${row.name}: ${row.items.length} output events, ${row.bytes} bytes; show JSON` }, svg);
    el("rect", { class: "hit", x: 2, y: y - ROW / 2 + 2, width: width - 4, height: ROW - 4, rx: 4 }, g);
    el("text", { class: "name", x: 10, y: y + 4 }, g).textContent =
      `${row.name} (${row.items.length})`;
    el("rect", { class: "band", x: x(first) - 2, y: y - 6, width: Math.max(x(lastAt) - x(first), 0) + 4,
      height: 12, rx: 3 }, g);
    for (const item of row.items) {
      const tick = el("rect", { class: "tick", x: x(item.at) - 1, y: y - 8, width: 2, height: 16,
        "data-event-type": "ExecutionOutput" }, g);
      tick.addEventListener("click", (e) => { e.stopPropagation(); showInspector([item.event], g); });
    }
    const over = row.items.length > 1 ? ` over ${formatMicros(lastAt - first)}` : "";
    aside(g, `${row.bytes} B${over}`, x(lastAt), y, width);
    g.addEventListener("click", () => showInspector(events, g, true));
    g.addEventListener("keydown", (e) => this._activate(e, events, g, true));
  }

  _activate(event, events, opener, group = false) {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      showInspector(events, opener, group);
    }
  }
}
