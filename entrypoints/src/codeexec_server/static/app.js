// The web console: wires the editor, live output, timeline and history to the HTTP API.
// Plain ES modules served as they are; CodeMirror is a vendored global script loaded first.

import { api, apiKey, followEvents, setApiKey, TERMINAL } from "./console/api.js";
import { FileEditor } from "./console/editor.js";
import { fillForm, markInvalid, readForm } from "./console/form.js";
import { History } from "./console/history.js";
import { installInspector } from "./console/inspector.js";
import { isTemplate, mainFileName, templateFor } from "./console/languages.js";
import { OutputView } from "./console/output.js";
import { Timeline } from "./console/timeline.js";

const $ = (id) => document.getElementById(id);
const LIVE_STATUS = { ExecutionRequested: "requested", ExecutionQueued: "queued",
  ExecutionScheduled: "scheduled", ExecutionStarted: "running", ExecutionCancelRequested: "cancelling" };

let languages = [];
let shown = null; // the execution on screen: {id, abort, live}
let editor, output, timeline, history;

function languageOf(value) {
  const [name, version] = value.split("@");
  return languages.find((l) => l.name === name && l.version === version) || null;
}

function onLanguageChange(previous) {
  const language = languageOf($("language").value);
  if (!language) return;
  localStorage.setItem("codeexec.language", $("language").value);
  editor.setIndent(language.name);
  const entry = editor.getFiles()[0];
  if (!previous || entry.name === mainFileName(previous)) editor.renameEntry(mainFileName(language));
  if (editor.files.length === 1 && isTemplate(entry.content)) editor.value = templateFor(language.name);
}

async function loadLanguages() {
  try {
    languages = await api("GET", "/languages");
  } catch (error) {
    output.detail.textContent = "languages: " + error.message;
    return;
  }
  const select = $("language");
  const before = select.value; // a reload (another key) keeps the choice and the code
  select.textContent = "";
  for (const l of languages) select.appendChild(new Option(`${l.name} ${l.version}`, `${l.name}@${l.version}`));
  const saved = before || localStorage.getItem("codeexec.language");
  const python = languages.find((l) => l.name === "python");
  if (saved && languageOf(saved)) select.value = saved;
  else if (python) select.value = `python@${python.version}`;
  if (select.value !== before) onLanguageChange(before ? languageOf(before) : null);
  history.setLanguages([...new Set(languages.map((l) => l.name))]);
}

function onEvent(event) {
  timeline.add(event);
  if (event.type === "ExecutionOutput") output.append(event);
  else if (LIVE_STATUS[event.type]) output.setStatus(LIVE_STATUS[event.type], false);
  else if (TERMINAL.has(event.type)) output.setStatus("finishing", false);
}

/** Follows an execution's events to the end, then shows its final facts. */
async function show(id, abort, onRequested) {
  await followEvents(id, (event) => {
    if (event.type === "ExecutionRequested" && onRequested) onRequested(event);
    onEvent(event);
  }, abort.signal);
  output.finish();
  // The read model may trail the stream by a moment: the server waits for it to show the end.
  const execution = await api("GET", "/executions/" + id + "?wait=true&timeout=10");
  if (!abort.signal.aborted) output.showResult(execution); // else another run is on screen
}

function present(id) {
  if (shown) shown.abort.abort();
  shown = { id, abort: new AbortController(), live: false };
  output.reset();
  timeline.reset();
  history.markOpen(id);
  window.history.replaceState(null, "", "#run=" + id);
  return shown;
}

let submitting = false; // set at once: Ctrl+Enter repeats before the POST returns

async function run() {
  if (submitting) return;
  let body;
  try {
    body = readForm(editor, languageOf($("language").value));
  } catch (error) {
    output.showError(error.message);
    return;
  }
  submitting = true;
  $("run").disabled = true;
  output.reset();
  timeline.reset();
  output.setStatus("submitting", false);
  let view = null;
  try {
    const created = await api("POST", "/executions", body);
    view = present(created.id);
    view.live = true;
    $("cancel").disabled = false;
    output.setStatus(created.status, created.terminal);
    history.load();
    await show(created.id, view.abort);
  } catch (error) {
    if (error.name !== "AbortError") output.showError(error.message);
    markInvalid(error);
  } finally {
    if (view) view.live = false;
    submitting = false;
    $("run").disabled = false;
    $("cancel").disabled = true;
    history.load();
  }
}

async function cancel() {
  if (!shown || !shown.live) return;
  output.setStatus("cancelling", false);
  try {
    await api("POST", `/executions/${shown.id}/cancel`);
  } catch (error) {
    output.detail.textContent = error.message;
  }
}

async function openRun(id) {
  const view = present(id);
  $("cancel").disabled = true;
  output.setStatus("loading", false);
  try {
    await show(id, view.abort, (requested) => fillForm(requested.spec, editor, languages));
  } catch (error) {
    if (error.name !== "AbortError") output.showError(error.message);
  }
}

async function copyOutput() {
  const text = output.text();
  try {
    await navigator.clipboard.writeText(text);
    $("copied").textContent = `Copied ${text.length} characters`;
  } catch (error) {
    $("copied").textContent = "Copy failed: " + error.message;
  }
}

function downloadOutput() {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(output.blob());
  link.download = `${shown ? shown.id.slice(0, 8) : "output"}-${$("stream-filter").value}.txt`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function start() {
  installInspector();
  editor = new FileEditor($("editor"), $("file-tabs"));
  editor.setFiles([{ name: "main.py", content: templateFor("python") }]);
  output = new OutputView({ pre: $("output"), facts: $("facts"), status: $("status"),
    detail: $("detail"), filter: $("stream-filter") });
  timeline = new Timeline($("timeline"), $("timeline-summary"));
  history = new History({ body: $("history"), status: $("history-status"),
    language: $("history-language"), newer: $("history-newer"), older: $("history-older"),
    pageLabel: $("history-page"), message: $("history-message"), onOpen: openRun });
  const key = $("apikey");
  key.value = apiKey();
  key.addEventListener("change", async () => {
    document.body.dataset.ready = "false";
    setApiKey(key.value);
    await loadLanguages();
    await history.load();
    document.body.dataset.ready = "true"; // languages and history are those of this key
  });
  let previous = null;
  $("language").addEventListener("focus", () => { previous = languageOf($("language").value); });
  $("language").addEventListener("change", () => { onLanguageChange(previous); previous = languageOf($("language").value); });
  $("template").addEventListener("click", () => {
    const language = languageOf($("language").value);
    if (language && (isTemplate(editor.value) || confirm("Replace this file with the template?"))) {
      editor.value = templateFor(language.name);
    }
  });
  $("add-file").addEventListener("submit", (event) => {
    event.preventDefault();
    const problem = editor.addFile($("new-file").value);
    $("file-error").textContent = problem;
    if (!problem) $("new-file").value = "";
  });
  $("run").addEventListener("click", run);
  $("cancel").addEventListener("click", cancel);
  $("copy").addEventListener("click", copyOutput);
  $("download").addEventListener("click", downloadOutput);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !$("inspector").open) {
      event.preventDefault();
      run();
    }
  });
  const openLinked = () => {
    const linked = /^#run=([0-9a-f-]{36})$/.exec(location.hash);
    if (linked && (!shown || shown.id !== linked[1])) openRun(linked[1]);
  };
  window.addEventListener("hashchange", openLinked); // an address naming a run opens it
  loadLanguages().then(async () => {
    await history.load();
    document.body.dataset.ready = "true";
    openLinked();
  });
}

start();
