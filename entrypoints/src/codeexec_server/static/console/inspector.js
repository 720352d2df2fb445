// Event times and the JSON inspector: a modal dialog showing events exactly as the stream
// sent them (output also decoded, invalid bytes escaped), focus returned to what opened it.

import { base64Bytes, ByteEscapingDecoder } from "./utf8.js";

const STAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$/;

/** Microseconds since the epoch of an ISO time (Date.parse keeps only milliseconds). */
export function parseMicros(iso) {
  const m = STAMP.exec(iso);
  if (!m) return Date.parse(iso) * 1000;
  const fraction = (m[2] || ".0").slice(1).padEnd(6, "0").slice(0, 6);
  return Date.parse(m[1] + (m[3] || "Z")) * 1000 + Number(fraction);
}

export function formatMicros(us) {
  if (us === 0) return "0";
  if (us < 1000) return Math.round(us) + " µs";
  if (us < 1e6) return (us / 1000).toFixed(us < 10000 ? 1 : 0) + " ms";
  return (us / 1e6).toFixed(us < 1e7 ? 2 : 1) + " s";
}

function decoded(events) {
  const decoders = {};
  let text = "";
  for (const event of events) {
    const decoder = decoders[event.stream] || (decoders[event.stream] = new ByteEscapingDecoder());
    text += decoder.decode(base64Bytes(event.data)).map((p) => p.text).join("");
  }
  for (const decoder of Object.values(decoders)) text += decoder.finish().map((p) => p.text).join("");
  return text;
}

let opener = null;

/** Shows one event, or a group's events as a JSON array (`group`: even a group of one). */
export function showInspector(events, from, group = false) {
  const dialog = document.getElementById("inspector");
  const title = document.getElementById("inspector-title");
  const json = document.getElementById("inspector-json");
  const text = document.getElementById("inspector-text");
  const first = events[0];
  title.textContent = group
    ? `${events.length} ${first.type} event${events.length === 1 ? "" : "s"} on ${first.stream}`
    : `${first.type} · #${first.aggregate_version}`;
  json.textContent = JSON.stringify(group ? events : first, null, 2);
  const output = first.type === "ExecutionOutput";
  text.hidden = !output;
  text.querySelector("pre").textContent = output ? decoded(events) : "";
  opener = from;
  if (!dialog.open) dialog.showModal();
}

/** Closes the inspector and gives the focus back to the event that opened it at once
 * (the dialog's close event comes a task later). The timeline may have been redrawn
 * meanwhile: then the event's replacement takes the focus. */
function closeInspector() {
  const dialog = document.getElementById("inspector");
  if (dialog.open) dialog.close();
  const key = opener && opener.dataset.key;
  const target = opener && opener.isConnected ? opener
    : key && document.querySelector(`[data-key="${key}"]`);
  if (target) target.focus();
  opener = null;
}

export function installInspector() {
  const dialog = document.getElementById("inspector");
  dialog.addEventListener("cancel", (event) => { // Escape
    event.preventDefault();
    closeInspector();
  });
  document.getElementById("inspector-close").addEventListener("click", closeInspector);
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) closeInspector(); // a click on the backdrop
  });
}
