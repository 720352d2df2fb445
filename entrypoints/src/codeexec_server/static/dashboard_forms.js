// The dashboard's forms: field errors from problem+json beside their fields, and the limits form.

// Show each `errors[].field` of a 422 problem beside the input whose name it starts with;
// what matches no input goes to `fallback`. `aliases` maps a problem's field to an input name.
export function showFieldErrors(form, problem, fallback, aliases = {}) {
  clearFieldErrors(form);
  const unplaced = [];
  for (const error of problem?.errors ?? []) {
    const input = inputFor(form, error.field, aliases);
    if (!input) {
      unplaced.push(`${error.field}: ${error.message}`);
      continue;
    }
    const slot = document.getElementById(`${input.id}-error`);
    slot.textContent = slot.textContent ? `${slot.textContent}; ${error.message}` : error.message;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", slot.id);
  }
  const first = form.querySelector("[aria-invalid='true']");
  if (first) first.focus();
  if (!problem?.errors?.length) unplaced.push(problem?.detail || "the request failed");
  fallback.textContent = unplaced.join("; ");
  fallback.dataset.kind = unplaced.length ? "error" : "";
}

export function clearFieldErrors(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }
  for (const slot of form.querySelectorAll(".error")) slot.textContent = "";
}

function inputFor(form, field, aliases) {
  // A list's item (`filters.execution_ids.0`) belongs to the list's input.
  let name = aliases[field] ?? field;
  while (name) {
    const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (input) return input;
    name = name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : "";
  }
  return null;
}

const GROUPS = [
  ["", "Global", ["max_running", "max_queue", "aging_interval_s", "allow_user_priority"]],
  ["default_user_limits", "Default per-user limits", null],
  ["max_resource_limits", "Per-run maxima (what a submission may ask for)", null],
];

// The limits document as fieldsets of labelled inputs named by their dotted path; `schemas`
// are the OpenAPI components (types and descriptions of each field).
export function renderLimits(box, doc, schemas) {
  box.replaceChildren();
  for (const [path, title, only] of GROUPS) {
    const values = path ? doc[path] : doc;
    const schema = schemas[path ? refName(schemas.LimitsDocument.properties[path]) : "LimitsDocument"];
    box.appendChild(fieldset(title, path, values, schema, only));
  }
  for (const [user, values] of Object.entries(doc.user_limits ?? {})) {
    addUserFieldset(box, user, values, schemas);
  }
}

export function addUserFieldset(box, user, values, schemas) {
  const set = fieldset(`User ${user}`, `user_limits.${user}`, values, schemas.UserLimitsModel, null);
  set.dataset.user = user;
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = `Remove ${user}'s limits`;
  remove.addEventListener("click", () => set.remove());
  set.appendChild(remove);
  box.appendChild(set);
  return set;
}

function refName(property) {
  const ref = property.$ref ?? property.allOf?.[0]?.$ref ?? "";
  return ref.split("/").pop();
}

function fieldset(title, path, values, schema, only) {
  const set = document.createElement("fieldset");
  const legend = document.createElement("legend");
  legend.textContent = title;
  set.appendChild(legend);
  for (const name of only ?? Object.keys(schema.properties)) {
    const property = schema.properties[name];
    if (!property || !(name in values)) continue;
    const full = path ? `${path}.${name}` : name;
    set.appendChild(field(full, name, values[name], property));
  }
  return set;
}

function field(full, name, value, property) {
  const wrap = document.createElement("div");
  wrap.className = property.type === "boolean" ? "field check" : "field";
  const id = `limit-${full.replace(/[^A-Za-z0-9_-]/g, "-")}`;
  const input = document.createElement("input");
  input.id = id;
  input.name = full;
  input.dataset.type = property.type;
  if (property.type === "boolean") {
    input.type = "checkbox";
    input.checked = Boolean(value);
  } else {
    input.type = "number";
    input.step = property.type === "integer" ? "1" : "any";
    input.value = String(value);
  }
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = name.replaceAll("_", " ");
  if (property.description) label.title = property.description;
  const error = document.createElement("span");
  error.className = "error";
  error.id = `${id}-error`;
  if (property.type === "boolean") wrap.append(input, label, error);
  else wrap.append(label, input, error);
  if (name.endsWith("_bytes")) {
    // Bytes are typed exactly but read more easily as a size.
    const hint = document.createElement("span");
    hint.className = "hint";
    hint.id = `${id}-hint`;
    const show = () => { hint.textContent = size(Number(input.value)); };
    input.addEventListener("input", show);
    show();
    wrap.insertBefore(hint, error);
  }
  return wrap;
}

function size(bytes) {
  if (!Number.isFinite(bytes)) return "";
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `= ${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

// The document the form shows, for PUT. A number that does not parse is sent as typed,
// so the server's error names the field.
export function readLimits(form) {
  const doc = { user_limits: {} };
  for (const input of form.querySelectorAll("input[name]")) {
    let value;
    if (input.dataset.type === "boolean") value = input.checked;
    else if (input.value.trim() === "") value = null;
    else value = Number.isFinite(Number(input.value)) ? Number(input.value) : input.value;
    const parts = input.name.split(".");
    if (parts[0] === "user_limits") {
      // A user id may hold dots: everything between the first and last part is the user.
      parts.splice(1, parts.length - 2, parts.slice(1, -1).join("."));
    }
    let target = doc;
    for (const part of parts.slice(0, -1)) target = target[part] ??= {};
    target[parts[parts.length - 1]] = value;
  }
  return doc;
}
