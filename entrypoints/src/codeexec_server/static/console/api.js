// The console's HTTP client: JSON calls with the API key, and an execution's event stream
// read with fetch (EventSource cannot send the Authorization header), resumed after drops.

export const API = "/api/v1";
const KEY_ITEM = "codeexec.key";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || "HTTP " + status);
    this.status = status;
    this.problem = problem;
  }
}

export function apiKey() {
  return localStorage.getItem(KEY_ITEM) || "";
}

export function setApiKey(key) {
  localStorage.setItem(KEY_ITEM, key.trim());
}

function headers(json) {
  const h = {};
  const key = apiKey();
  if (key) h.Authorization = "Bearer " + key;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

export async function api(method, path, body) {
  const response = await fetch(API + path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Parses one server-sent-events block into {id, event, data} (null for comments). */
export function parseBlock(block) {
  let id = null;
  let event = "message";
  let data = "";
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    if (colon === 0) continue;
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") id = value;
    else if (field === "event") event = value;
    else if (field === "data") data += value;
  }
  return data ? { id, event, data } : null;
}

async function readStream(response, onMessage) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const message = parseBlock(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (message) onMessage(message);
    }
  }
}

/**
 * Calls `onEvent(event)` for every event of the execution, history first, until the server
 * closes the stream after the terminal event. A dropped connection resumes after the last
 * id seen (`?after=`), so nothing is lost or repeated.
 */
export async function followEvents(id, onEvent, signal) {
  let after = 0;
  let terminal = false;
  for (let attempt = 0; !terminal; attempt++) {
    try {
      const response = await fetch(`${API}/executions/${id}/events?after=${after}`, {
        headers: headers(false),
        signal,
      });
      if (!response.ok || !response.body) {
        throw new ApiError(response.status, await response.json().catch(() => ({})));
      }
      await readStream(response, (message) => {
        if (message.event === "error") throw new Error(JSON.parse(message.data).detail);
        const event = JSON.parse(message.data);
        after = Math.max(after, event.aggregate_version);
        attempt = 0;
        terminal = terminal || TERMINAL.has(event.type);
        onEvent(event);
      });
      if (terminal) return; // the server closes the stream after the terminal event
      throw new Error("the event stream ended early");
    } catch (error) {
      if (error.name === "AbortError" || error instanceof ApiError || attempt >= 5) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
    }
  }
}

export const TERMINAL = new Set([
  "ExecutionRejected",
  "ExecutionCompleted",
  "ExecutionFailed",
  "ExecutionTimedOut",
  "ExecutionCancelled",
]);
