// The output pane: stdout and stderr as they arrive (invalid UTF-8 shown as \xHH escapes),
// the status, exit code or signal, time and memory, and copy/download of the exact bytes.

import { base64Bytes, ByteEscapingDecoder } from "./utf8.js";

const SHOWN_BYTES = 1 << 20; // past this the page stops drawing; Download still has it all
const SIGNALS = { 1: "SIGHUP", 2: "SIGINT", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
  11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM", 24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS" };

function formatSeconds(s) {
  return s < 1 ? (s * 1000).toFixed(1) + " ms" : s.toFixed(3) + " s";
}

function formatBytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
  return (n / (1 << 20)).toFixed(1) + " MiB";
}

export class OutputView {
  constructor({ pre, facts, status, detail, filter }) {
    this.pre = pre;
    this.facts = facts;
    this.status = status;
    this.detail = detail;
    this.filter = filter;
    filter.addEventListener("change", () => { pre.dataset.show = filter.value; });
    this.reset();
  }

  reset() {
    this.chunks = []; // {stream, bytes}, in arrival order
    this.decoders = {}; // per stage and stream: a sequence may be cut between two chunks
    this.shown = 0;
    this.pre.textContent = "";
    this.facts.textContent = "";
    this.detail.textContent = "";
    this.setStatus("idle", false);
  }

  /** One ExecutionOutput event; the compiler's output (stage "compile") is marked apart. */
  append(event) {
    const bytes = base64Bytes(event.data);
    const stream = event.stream;
    const classes = event.stage === "compile" ? stream + " compile" : stream;
    this.chunks.push({ stream, bytes });
    const decoder = this.decoders[classes] || (this.decoders[classes] = new ByteEscapingDecoder());
    this._draw(classes, decoder.decode(bytes));
  }

  /** The stream ended: a sequence still cut short is shown as escapes. */
  finish() {
    for (const [classes, decoder] of Object.entries(this.decoders)) this._draw(classes, decoder.finish());
  }

  _draw(classes, pieces) {
    if (this.shown > SHOWN_BYTES) return;
    const atEnd = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
    for (const piece of pieces) {
      const span = document.createElement("span");
      span.className = piece.bad ? classes + " bad-byte" : classes;
      if (piece.bad) span.title = "bytes that are not UTF-8, shown as escapes";
      span.textContent = piece.text;
      this.pre.appendChild(span);
      this.shown += piece.text.length;
    }
    if (this.shown > SHOWN_BYTES) {
      const note = document.createElement("span");
      note.className = "note";
      note.textContent = "\n[display stops after 1 MiB; Download has every byte]\n";
      this.pre.appendChild(note);
    }
    if (atEnd) this.pre.scrollTop = this.pre.scrollHeight;
  }

  setStatus(status, terminal) {
    this.status.textContent = status.replaceAll("_", " ");
    this.status.dataset.status = status;
    this.status.dataset.terminal = terminal ? "true" : "false";
  }

  showError(message) {
    this.setStatus("error", true);
    this.detail.textContent = message;
  }

  /** The execution's final facts (GET /api/v1/executions/{id}). */
  showResult(execution) {
    this.setStatus(execution.status, execution.terminal);
    const facts = [];
    if (execution.exit_code !== null) facts.push(["exit code", String(execution.exit_code)]);
    if (execution.signal !== null) {
      const name = SIGNALS[execution.signal];
      facts.push(["signal", name ? `${execution.signal} (${name})` : String(execution.signal)]);
    }
    if (execution.wall_time_s !== null) facts.push(["wall time", formatSeconds(execution.wall_time_s)]);
    if (execution.cpu_time_s !== null) facts.push(["CPU time", formatSeconds(execution.cpu_time_s)]);
    if (execution.memory_bytes) facts.push(["memory", formatBytes(execution.memory_bytes)]);
    this.facts.textContent = "";
    for (const [term, value] of facts) {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = term;
      dd.textContent = value;
      div.append(dt, dd);
      this.facts.appendChild(div);
    }
    const notes = [];
    if (execution.message) notes.push(execution.message);
    if (execution.stdout_truncated) notes.push("stdout was cut at the output limit");
    if (execution.stderr_truncated) notes.push("stderr was cut at the output limit");
    this.detail.textContent = notes.join(" · ");
  }

  _selected() {
    const show = this.filter.value;
    return this.chunks.filter((c) => show === "all" || c.stream === show);
  }

  /** The shown text (escapes included), for the clipboard. */
  text() {
    const show = this.filter.value;
    return [...this.pre.querySelectorAll("span.stdout, span.stderr")]
      .filter((s) => show === "all" || s.classList.contains(show))
      .map((s) => s.textContent)
      .join("");
  }

  /** The exact bytes of the selected streams, in arrival order. */
  blob() {
    return new Blob(this._selected().map((c) => c.bytes), { type: "application/octet-stream" });
  }
}
