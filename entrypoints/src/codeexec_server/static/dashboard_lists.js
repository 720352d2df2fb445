// The dashboard's lists: dead letters as a table, replay sessions with progress bars. They are
// redrawn on every poll only when their data changed, and keep the keyboard focus where it was.

const $ = (id) => document.getElementById(id);
const drawn = { letters: "", replays: "" };

function button(label, action, id, handler, enabled = true) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.action = action;
  b.dataset.id = id;
  b.disabled = !enabled;
  b.addEventListener("click", handler);
  return b;
}

// Redraw `draw()` and put the focus back on the same action of the same item.
function keepingFocus(draw) {
  const active = document.activeElement;
  const was = active?.dataset?.action ? [active.dataset.action, active.dataset.id] : null;
  draw();
  if (was) {
    const again = document.querySelector(`[data-action="${was[0]}"][data-id="${was[1]}"]`);
    if (again && !again.disabled) again.focus();
  }
}

async function reporting(box, work) {
  try {
    box.textContent = "";
    await work();
  } catch (error) {
    box.textContent = error.message;
  }
}

function when(iso) {
  const time = new Date(iso);
  const today = time.toDateString() === new Date().toDateString();
  return today ? time.toLocaleTimeString() : time.toLocaleString();
}

export function renderLetters(items, actions) {
  const key = JSON.stringify(items);
  if (key === drawn.letters) return;
  drawn.letters = key;
  const message = $("letters-message");
  keepingFocus(() => {
    const rows = items.map((letter) => {
      const tr = document.createElement("tr");
      tr.dataset.id = letter.id;
      tr.dataset.state = letter.state;
      const cells = [
        letter.state, letter.group, letter.event_type, letter.error, String(letter.retries),
        when(letter.parked_at),
      ];
      const labels = ["state", "group", "event", "error", "retries", "parked"];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        td.dataset.label = labels[i]; // shown before the value on narrow screens
        tr.appendChild(td);
      });
      tr.children[0].className = `pill ${letter.state}`;
      tr.children[3].className = "error-text";
      tr.children[3].title = letter.error;
      tr.children[5].title = letter.parked_at;
      const td = document.createElement("td");
      const controls = document.createElement("div");
      controls.className = "actions";
      td.appendChild(controls);
      const retryable = ["parked", "exhausted"].includes(letter.state);
      const inspect = button("Inspect", "inspect", letter.id, (e) =>
        reporting(message, () => actions.inspect(letter, e.currentTarget)));
      inspect.setAttribute("aria-label", `Inspect dead letter ${letter.event_type} of ${letter.group}`);
      const retry = button("Retry", "retry", letter.id, () =>
        reporting(message, () => actions.retry(letter)), retryable);
      const discard = button("Discard", "discard", letter.id, (e) => {
        // Two steps: discarding is never undone.
        const b = e.currentTarget;
        if (b.dataset.armed !== "true") {
          b.dataset.armed = "true";
          b.textContent = "Confirm discard";
          return undefined;
        }
        return reporting(message, () => actions.discard(letter));
      }, letter.open);
      controls.append(inspect, retry, discard);
      tr.appendChild(td);
      return tr;
    });
    document.querySelector("#letters tbody").replaceChildren(...rows);
    $("letters-empty").hidden = items.length > 0;
  });
}

function selection(filters) {
  const parts = [];
  if (filters.event_types.length) parts.push(filters.event_types.join(", "));
  if (filters.user_id) parts.push(`user ${filters.user_id}`);
  if (filters.execution_ids.length) parts.push(`${filters.execution_ids.length} execution(s)`);
  if (filters.since || filters.until) parts.push("a time range");
  return parts.length ? parts.join(" · ") : "every event";
}

export function renderReplays(sessions, act) {
  const key = JSON.stringify(sessions);
  if (key === drawn.replays) return;
  drawn.replays = key;
  const message = $("replays-message");
  keepingFocus(() => {
    const items = sessions.map((s) => {
      const li = document.createElement("li");
      li.dataset.id = s.id;
      li.dataset.state = s.state;
      const head = document.createElement("div");
      head.className = "replay-head";
      const title = document.createElement("span");
      title.className = "replay-title";
      title.textContent = `${s.dry_run ? "Dry run" : "Replay"} to ${s.target_topic}`;
      const pill = document.createElement("span");
      pill.className = `pill ${s.state}`;
      pill.textContent = s.state;
      const who = document.createElement("span");
      who.className = "muted";
      who.textContent = `${s.id.slice(0, 8)} by ${s.created_by} · ${selection(s.filters)}`;
      head.append(title, pill, who);
      const barId = `progress-${s.id}`;
      const label = document.createElement("label");
      label.htmlFor = barId;
      label.className = "sr";
      label.textContent = `Progress of replay ${s.id.slice(0, 8)}`;
      const bar = document.createElement("progress");
      bar.id = barId;
      bar.max = 100;
      bar.value = s.percent;
      bar.textContent = `${s.percent}%`;
      const figures = document.createElement("p");
      figures.className = "replay-figures";
      figures.textContent = `${s.percent}% · ${s.position} of ${s.total} examined · `
        + `${s.matched} matched · ${s.sent} sent · ${s.failed} failed`;
      const controls = document.createElement("div");
      controls.className = "actions";
      const go = (action) => () => reporting(message, () => act(s, action));
      controls.append(
        button("Pause", "pause", s.id, go("pause"), s.state === "running"),
        button("Resume", "resume", s.id, go("resume"), s.state === "paused"),
        button("Cancel", "cancel", s.id, go("cancel"), ["running", "paused"].includes(s.state)),
      );
      li.append(head, label, bar, figures, controls);
      return li;
    });
    $("replays").replaceChildren(...items);
    $("replays-empty").hidden = sessions.length > 0;
  });
}
