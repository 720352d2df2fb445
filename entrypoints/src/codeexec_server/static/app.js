// codeexec web page: submit code, follow its event stream live (fetch streaming), list runs.
"use strict";
const $ = (id) => document.getElementById(id);
const API = "/api/v1";
let current = null; // {id, abort}

function headers(json) {
  const h = {};
  const key = $("apikey").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function api(method, path, body) {
  const response = await fetch(API + path, {
    method, headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || data.title || "HTTP " + response.status);
  return data;
}

function setStatus(status, terminal) {
  const el = $("status");
  el.textContent = status;
  el.dataset.status = status;
  el.dataset.terminal = terminal ? "true" : "false";
}

function bytesOf(b64) {
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

const decoders = {};
function appendOutput(stream, text) {
  const out = $("output");
  const span = document.createElement("span");
  span.className = stream;
  span.textContent = text;
  out.appendChild(span);
  out.scrollTop = out.scrollHeight;
}

function showResult(execution) {
  setStatus(execution.status, execution.terminal);
  const parts = [];
  if (execution.exit_code !== null) parts.push("exit code " + execution.exit_code);
  if (execution.signal !== null) parts.push("signal " + execution.signal);
  if (execution.wall_time_s !== null) parts.push(execution.wall_time_s.toFixed(3) + " s");
  if (execution.message) parts.push(execution.message);
  $("detail").textContent = parts.join(" · ");
}

async function follow(id, signal) {
  const response = await fetch(`${API}/executions/${id}/events`, { headers: headers(false), signal });
  if (!response.ok || !response.body) throw new Error("event stream: HTTP " + response.status);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

function onEvent(name, event) {
  if (name === "ExecutionOutput") {
    const decoder = decoders[event.stream] || (decoders[event.stream] = new TextDecoder());
    appendOutput(event.stream, decoder.decode(bytesOf(event.data), { stream: true }));
  } else if (name === "ExecutionQueued") setStatus("queued", false);
  else if (name === "ExecutionStarted") setStatus("running", false);
  else if (name === "ExecutionCancelRequested") setStatus("cancelling", false);
}

async function run() {
  if (current) return;
  $("output").textContent = "";
  $("detail").textContent = "";
  for (const k of Object.keys(decoders)) delete decoders[k];
  setStatus("submitting", false);
  $("run").disabled = true;
  const abort = new AbortController();
  try {
    const created = await api("POST", "/executions", {
      language: $("language").value, source: $("code").value, stdin: $("stdin").value,
    });
    current = { id: created.id, abort };
    $("cancel").disabled = false;
    setStatus(created.status, created.terminal);
    await follow(created.id, abort.signal);
    showResult(await api("GET", "/executions/" + created.id));
  } catch (error) {
    if (error.name !== "AbortError") { setStatus("error", true); $("detail").textContent = error.message; }
  } finally {
    current = null;
    $("run").disabled = false;
    $("cancel").disabled = true;
    loadRecent();
  }
}

async function cancel() {
  if (!current) return;
  try { await api("POST", `/executions/${current.id}/cancel`); }
  catch (error) { $("detail").textContent = error.message; }
}

async function loadLanguages() {
  try {
    const languages = await api("GET", "/languages");
    const select = $("language");
    const previous = localStorage.getItem("codeexec.language");
    select.textContent = "";
    for (const lang of languages) {
      const option = new Option(`${lang.name} ${lang.version}`, lang.name);
      select.appendChild(option);
    }
    if (previous && languages.some((l) => l.name === previous)) select.value = previous;
    else if (languages.some((l) => l.name === "python")) select.value = "python";
  } catch (error) { $("detail").textContent = "languages: " + error.message; }
}

async function loadRecent() {
  try {
    const page = await api("GET", "/executions?limit=10");
    const list = $("recent");
    list.textContent = "";
    for (const item of page.items) {
      const li = document.createElement("li");
      li.textContent = `${item.created_at.slice(0, 19).replace("T", " ")}  ${item.language}  ${item.status}`;
      li.onclick = async () => {
        const execution = await api("GET", "/executions/" + item.id);
        $("output").textContent = "";
        appendOutput("stdout", execution.stdout_encoding === "utf-8" ? execution.stdout : "[binary]");
        appendOutput("stderr", execution.stderr_encoding === "utf-8" ? execution.stderr : "[binary]");
        showResult(execution);
      };
      list.appendChild(li);
    }
  } catch (_) { /* no key yet */ }
}

function onKey(event) {
  const area = event.target;
  if (event.key === "Tab" && !event.ctrlKey && !event.altKey) {
    event.preventDefault();
    const { selectionStart: start, selectionEnd: end, value } = area;
    area.value = value.slice(0, start) + "    " + value.slice(end);
    area.selectionStart = area.selectionEnd = start + 4;
  } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    run();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const key = $("apikey");
  key.value = localStorage.getItem("codeexec.key") || "";
  key.addEventListener("change", () => {
    localStorage.setItem("codeexec.key", key.value.trim());
    loadLanguages();
    loadRecent();
  });
  $("language").addEventListener("change", (e) => localStorage.setItem("codeexec.language", e.target.value));
  $("code").addEventListener("keydown", onKey);
  $("run").addEventListener("click", run);
  $("cancel").addEventListener("click", cancel);
  loadLanguages();
  loadRecent();
});
