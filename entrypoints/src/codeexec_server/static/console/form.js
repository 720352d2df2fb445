// The run form around the editor: reads a submission from it (language, files, stdin, args,
// limits), fills it from a past run's ExecutionRequested, and marks fields a 422 names.

import { base64Bytes, bytesText } from "./utf8.js";

const $ = (id) => document.getElementById(id);
/** Each limit field and the unit its input is in (memory in MiB, output in KiB). */
const LIMITS = { wall_time_s: 1, cpu_time_s: 1, memory_bytes: 1 << 20, processes: 1, output_bytes: 1024 };

/** The form control a problem's field names (limits.memory_bytes, args.2, stdin...). */
function controlOf(field) {
  if (field.startsWith("limits.")) return $("limit-" + field.split(".")[1]);
  const top = field.split(".")[0];
  return { stdin: $("stdin"), args: $("args"), language: $("language"), version: $("language"),
    files: $("new-file") }[top] || null;
}

/** Marks the fields a 422 names as invalid and opens the options they are in. */
export function markInvalid(error) {
  const fields = (error.problem && error.problem.errors) || [];
  const controls = fields.map((e) => controlOf(e.field)).filter(Boolean);
  for (const control of controls) control.setAttribute("aria-invalid", "true");
  if (controls.some((c) => $("options").contains(c))) $("options").open = true;
}

/** The submission the form describes, or throws an Error naming the field. */
export function readForm(editor, language) {
  for (const control of document.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
  if (!language) throw new Error("language: choose one (enter an API key first)");
  const body = { language: language.name, version: language.version, files: editor.getFiles() };
  body.stdin = $("stdin").value;
  const args = $("args").value.replace(/\n$/, "");
  body.args = args === "" ? [] : args.split("\n");
  const limits = {};
  for (const [field, unit] of Object.entries(LIMITS)) {
    const input = $("limit-" + field);
    if (input.value.trim() === "") continue;
    const value = Number(input.value) * unit;
    if (!Number.isFinite(value) || value <= 0 || !input.checkValidity()) {
      input.setAttribute("aria-invalid", "true");
      throw new Error(`limits.${field}: not a valid number`);
    }
    limits[field] = field.endsWith("_s") ? value : Math.round(value);
  }
  if (Object.keys(limits).length) body.limits = limits;
  return body;
}

/** Fills the form with a past run's spec (ExecutionRequested.spec, bytes as base64). */
export function fillForm(spec, editor, languages) {
  const match = languages.find((l) => l.name === spec.language && (!spec.version || l.version === spec.version))
    || languages.find((l) => l.name === spec.language);
  if (match) {
    $("language").value = `${match.name}@${match.version}`;
    editor.setIndent(match.name);
  }
  const inexact = [];
  editor.setFiles(spec.files.map((f) => {
    const { text, exact } = bytesText(base64Bytes(f.content));
    if (!exact) inexact.push(f.name);
    return { name: f.name, content: text };
  }));
  const stdin = bytesText(base64Bytes(spec.stdin || ""));
  if (!stdin.exact) inexact.push("stdin");
  $("stdin").value = stdin.text;
  $("file-error").textContent = inexact.length
    ? `${inexact.join(", ")}: not UTF-8 text; shown with replacement characters, so running it again would send other bytes`
    : "";
  $("args").value = (spec.args || []).join("\n");
  for (const [field, unit] of Object.entries(LIMITS)) {
    const value = spec.limits ? spec.limits[field] : null;
    $("limit-" + field).value = value === null || value === undefined ? "" : String(value / unit);
  }
}
