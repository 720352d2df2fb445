// History: the user's runs newest first (GET /api/v1/executions), filtered by status and
// language, paged with the API's cursors; opening one shows its source, output and timeline.

import { api } from "./api.js";

const PAGE = 10;
export const STATUSES = [
  "succeeded", "runtime_error", "signaled", "time_limit_exceeded", "memory_limit_exceeded",
  "output_limit_exceeded", "compilation_error", "cancelled", "internal_error", "rejected",
  "requested", "queued", "scheduled", "running",
];

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function when(iso) {
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay ? date.toLocaleTimeString() : date.toLocaleString();
}

export class History {
  constructor({ body, status, language, newer, older, pageLabel, message, onOpen }) {
    Object.assign(this, { body, status, language, newer, older, pageLabel, message, onOpen });
    this.cursors = [null]; // cursors[i] loads page i; the API pages by cursor only
    this.openId = null;
    for (const name of STATUSES) status.appendChild(new Option(name.replaceAll("_", " "), name));
    const filter = () => { this.cursors = [null]; this.load(); };
    status.addEventListener("change", filter);
    language.addEventListener("change", filter);
    older.addEventListener("click", () => { this.cursors.push(this.next); this.load(); });
    newer.addEventListener("click", () => { this.cursors.pop(); this.load(); });
  }

  setLanguages(names) {
    const keep = this.language.value;
    this.language.length = 1; // keeps "any language"
    for (const name of names) this.language.appendChild(new Option(name, name));
    if (names.includes(keep)) this.language.value = keep;
  }

  markOpen(id) {
    this.openId = id;
    for (const row of this.body.rows) {
      if (row.dataset.id === id) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    }
  }

  async load() {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (this.status.value) query.append("status", this.status.value);
    if (this.language.value) query.set("language", this.language.value);
    const cursor = this.cursors[this.cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    let page;
    try {
      page = await api("GET", "/executions?" + query);
    } catch (error) {
      this.message.textContent = error.status === 401 ? "Enter an API key to see your runs." : error.message;
      return;
    }
    this.next = page.next_cursor;
    this.body.textContent = "";
    this.message.textContent = page.items.length ? "" : "No runs match.";
    for (const item of page.items) this._row(item);
    this.markOpen(this.openId);
    this.older.disabled = !page.next_cursor;
    this.newer.disabled = this.cursors.length <= 1;
    this.pageLabel.textContent = `page ${this.cursors.length}`;
  }

  _row(item) {
    const row = this.body.insertRow();
    row.dataset.id = item.id;
    const first = document.createElement("td");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.textContent = when(item.created_at);
    open.setAttribute("aria-label", `Open the ${item.language} run of ${when(item.created_at)}, ${item.status}`);
    open.addEventListener("click", () => this.onOpen(item.id));
    first.appendChild(open);
    row.appendChild(first);
    cell(row, item.language + (item.version ? " " + item.version : ""));
    const status = cell(row, "");
    const badge = document.createElement("span");
    badge.className = "status";
    badge.dataset.status = item.status;
    badge.dataset.terminal = String(item.terminal);
    badge.textContent = item.status.replaceAll("_", " ");
    status.appendChild(badge);
    cell(row, item.wall_time_s === null ? "–" : item.wall_time_s.toFixed(3) + " s", "num");
    cell(row, item.exit_code === null ? (item.signal === null ? "–" : "sig " + item.signal) : String(item.exit_code), "num");
    cell(row, item.id.slice(0, 8), "mono");
  }
}
