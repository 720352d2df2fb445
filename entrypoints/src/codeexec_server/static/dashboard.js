// The operators' dashboard: queue over time, runs per status, consumer lag, dead letters,
// replay sessions and the limits document, all through the admin API with the admin's key.
import { barChart, lineChart } from "./dashboard_charts.js";
import { addUserFieldset, clearFieldErrors, readLimits, renderLimits, showFieldErrors }
  from "./dashboard_forms.js";
import { renderLetters, renderReplays } from "./dashboard_lists.js";

const KEY_ITEM = "codeexec-admin-key";
const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

const state = {
  key: sessionStorage.getItem(KEY_ITEM) || "",
  history: null, // the last /queue/history answer, samples accumulated
  schemas: null,
  timer: null,
  refreshing: null,
  resized: null,
};

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function say(message, kind) {
  const box = $("connection");
  box.textContent = message;
  box.dataset.state = kind;
}

async function connect(key) {
  state.key = key;
  clearTimeout(state.timer);
  state.history = null;
  try {
    await api("/api/v1/admin/queue");
  } catch (error) {
    const why = error.status === 401 ? "this key is unknown or revoked"
      : error.status === 403 ? "this key is not an admin's (the dashboard needs an admin key)"
        : error.message;
    say(`Not connected: ${why}.`, "error");
    document.body.dataset.connected = "false";
    return;
  }
  sessionStorage.setItem(KEY_ITEM, key);
  say("Connected as admin.", "ok");
  document.body.dataset.connected = "true";
  state.schemas ??= (await (await fetch("/openapi.json")).json()).components.schemas;
  fillReplayChoices();
  await loadLimits();
  await refresh();
}

// -- polling ---------------------------------------------------------------------------------

// One refresh at a time (a resize or a new key during one joins it), then the next is due.
async function refresh() {
  if (state.refreshing) return state.refreshing;
  clearTimeout(state.timer);
  state.refreshing = refreshAll();
  try {
    if (await state.refreshing) state.timer = setTimeout(refresh, POLL_MS);
  } finally {
    state.refreshing = null;
  }
  return undefined;
}

async function refreshAll() {
  const parts = [refreshQueue(), refreshCounts(), refreshLetters(), refreshReplays()];
  const failed = (await Promise.allSettled(parts)).find((r) => r.status === "rejected");
  if (failed && [401, 403].includes(failed.reason.status)) {
    say(`Disconnected: ${failed.reason.message}.`, "error");
    return false;
  }
  if (failed) say(`Connected; last refresh failed: ${failed.reason.message}`, "warn");
  else if ($("connection").dataset.state !== "ok") say("Connected as admin.", "ok");
  return true;
}

async function refreshQueue() {
  const known = state.history;
  const last = known?.samples.at(-1)?.time;
  const query = last ? `?since=${encodeURIComponent(last)}` : "";
  const [latest, now] = await Promise.all([
    api(`/api/v1/admin/queue/history${query}`), api("/api/v1/admin/queue"),
  ]);
  if (known && known.process === latest.process) {
    // Another API process (behind a balancer) has another ring: start over from its own.
    latest.samples = [...known.samples, ...latest.samples].slice(-Math.max(1, latest.capacity));
  } else if (known && query) {
    state.history = null;
    return refreshQueue();
  }
  state.history = latest;
  drawQueue(latest, now);
  drawLag(now.backlog);
}

function drawQueue(history, now) {
  $("queued-now").textContent = now.queued;
  $("running-now").textContent = now.running;
  $("max-running").textContent = now.max_running;
  const points = (name) => history.samples.map((s) => [Date.parse(s.time), s[name]]);
  // The axis spans what was sampled (at least a minute), up to the whole window.
  const to = Date.now();
  const first = history.samples.length ? Date.parse(history.samples[0].time) : to;
  const from = Math.max(to - history.window_s * 1000, Math.min(first, to - 60_000));
  const svg = lineChart($("queue-chart"), {
    series: [
      { name: "queued", cls: "queued", points: points("queued") },
      { name: "running", cls: "running", points: points("running") },
    ],
    from, to, cap: history.max_running, capLabel: `running cap ${history.max_running}`,
    gapMs: Math.max(3 * history.interval_s * 1000, 3000),
    label: `Queue over the last ${Math.round(history.window_s / 60)} minutes: `
      + `${now.queued} queued, ${now.running} running now`,
  });
  svg.dataset.samples = history.samples.length;
  svg.dataset.queued = now.queued;
  svg.dataset.running = now.running;
  const source = history.source === "coordinator" ? "the coordinator in that process"
    : history.source === "read_model" ? "the shared read model" : "nothing yet";
  const since = new Date(history.started_at).toLocaleTimeString();
  $("queue-note").textContent = history.interval_s > 0
    ? `Sampled every ${history.interval_s} s by API process ${history.process} from ${source}, `
      + `since ${since}; ${history.samples.length} samples.`
    : `API process ${history.process} does not sample the queue (CODEEXEC_QUEUE_SAMPLE_S=0).`;
}

function drawLag(backlog) {
  const rows = Object.entries(backlog).sort((a, b) => a[0].localeCompare(b[0]));
  barChart($("lag-chart"), {
    rows, classOf: (name) => (backlog[name] > 0 ? "behind" : "caught-up"),
    label: `Consumer lag: ${rows.map(([g, n]) => `${g} ${n}`).join(", ") || "none reported"}`,
    empty: "the bus reports no consumer group in this API process",
  });
}

const FLIGHT = ["requested", "queued", "scheduled", "running"];
const QUIET = ["cancelled", "rejected"];

function statusClass(name) {
  if (FLIGHT.includes(name)) return "flight";
  if (name === "succeeded") return "ok";
  return QUIET.includes(name) ? "quiet" : "bad";
}

async function refreshCounts() {
  const counts = await api("/api/v1/admin/execution-counts");
  $("runs-total").textContent = counts.total;
  const rank = (name) => ({ flight: 0, ok: 1, bad: 2, quiet: 3 }[statusClass(name)]);
  const rows = Object.entries(counts.by_status).sort((a, b) => rank(a[0]) - rank(b[0])
    || FLIGHT.indexOf(a[0]) - FLIGHT.indexOf(b[0]) || b[1] - a[1]);
  barChart($("status-chart"), {
    rows, classOf: statusClass,
    label: `Runs per status: ${rows.map(([s, n]) => `${s} ${n}`).join(", ") || "none yet"}`,
    empty: "no runs yet",
  });
}

async function refreshLetters() {
  const wanted = $("letters-state").value;
  const query = wanted ? `&state=${wanted}` : "";
  const page = await api(`/api/v1/admin/dead-letters?limit=50${query}`);
  renderLetters(page.items, letterActions);
}

async function refreshReplays() {
  renderReplays(await api("/api/v1/admin/replays?limit=20"), replayAction);
}

// -- dead letters and replays ------------------------------------------------------------------

const letterActions = {
  async inspect(letter, button) {
    const full = await api(letter.links.self);
    if (full.payload_encoding === "utf-8") {
      try { full.payload = JSON.parse(full.payload); } catch { /* shown as the text it is */ }
    }
    $("letter-json").textContent = JSON.stringify(full, null, 2);
    $("letter-detail-h").textContent = `Dead letter ${letter.id}`;
    $("letter-detail").hidden = false;
    const close = () => { $("letter-detail").hidden = true; button.focus(); };
    $("letter-close").onclick = close;
    $("letter-detail").onkeydown = (e) => { if (e.key === "Escape") close(); };
    $("letter-json").focus();
  },
  async retry(letter) {
    await api(letter.links.retry, { method: "POST" });
    await refreshLetters();
  },
  async discard(letter) {
    await api(letter.links.discard, { method: "POST", body: { reason: "discarded from the dashboard" } });
    await refreshLetters();
  },
};

async function replayAction(session, action) {
  await api(session.links[action], { method: "POST" });
  await refreshReplays();
}

function fillReplayChoices() {
  const topic = $("replay-topic");
  if (topic.options.length) return;
  const replayIn = state.schemas.ReplayIn.properties;
  for (const name of replayIn.target_topic.enum) topic.add(new Option(name, name, false, name === replayIn.target_topic.default));
  for (const name of state.schemas.ReplayFilterIn.properties.event_types.items.enum) {
    $("replay-types").add(new Option(name, name));
  }
}

async function startReplay(event) {
  event.preventDefault();
  const form = $("replay-form");
  clearFieldErrors(form);
  const filters = {};
  const types = [...$("replay-types").selectedOptions].map((o) => o.value);
  if (types.length) filters.event_types = types;
  if ($("replay-user").value.trim()) filters.user_id = $("replay-user").value.trim();
  if ($("replay-execution").value.trim()) filters.execution_ids = [$("replay-execution").value.trim()];
  const body = { target_topic: $("replay-topic").value, filters, dry_run: $("replay-dry").checked };
  const number = (input) => (Number.isFinite(Number(input.value)) ? Number(input.value) : input.value);
  if ($("replay-rate").value.trim()) body.rate_per_s = number($("replay-rate"));
  if ($("replay-batch").value.trim()) body.batch_size = number($("replay-batch"));
  try {
    await api("/api/v1/admin/replays", { method: "POST", body });
    $("replay-form-error").textContent = "";
    await refreshReplays();
  } catch (error) {
    showFieldErrors(form, error.problem ?? { detail: error.message }, $("replay-form-error"));
  }
}

// -- limits ------------------------------------------------------------------------------------

async function loadLimits() {
  const doc = await api("/api/v1/admin/limits");
  renderLimits($("limits-fields"), doc, state.schemas);
  clearFieldErrors($("limits-form"));
}

async function saveLimits(event) {
  event.preventDefault();
  const form = $("limits-form");
  const message = $("limits-message");
  clearFieldErrors(form);
  try {
    const saved = await api("/api/v1/admin/limits", { method: "PUT", body: readLimits(form) });
    renderLimits($("limits-fields"), saved, state.schemas);
    message.textContent = `Saved at ${new Date().toLocaleTimeString()}.`;
    message.dataset.kind = "ok";
  } catch (error) {
    showFieldErrors(form, error.problem ?? { detail: error.message }, message);
  }
}

function addUser() {
  const input = $("limits-new-user");
  const user = input.value.trim();
  if (!user) return;
  const existing = document.querySelector(`#limits-fields fieldset[data-user="${CSS.escape(user)}"]`);
  const defaults = readLimits($("limits-form")).default_user_limits;
  const set = existing ?? addUserFieldset($("limits-fields"), user, defaults, state.schemas);
  set.querySelector("input").focus();
  input.value = "";
}

// -- wiring ------------------------------------------------------------------------------------

function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    connect($("adminkey").value.trim());
  });
  $("replay-form").addEventListener("submit", startReplay);
  $("limits-form").addEventListener("submit", saveLimits);
  $("limits-reload").addEventListener("click", () => loadLimits().catch((e) => {
    $("limits-message").textContent = e.message;
  }));
  $("limits-add-user").addEventListener("click", addUser);
  $("letters-state").addEventListener("change", () => refreshLetters());
  window.addEventListener("resize", () => {
    clearTimeout(state.resized);
    state.resized = setTimeout(() => { if (state.history) refresh(); }, 200);
  });
  if (state.key) {
    $("adminkey").value = state.key;
    connect(state.key);
  }
}

start();
