// flowhost UI: live updates (server-sent events), the timeline's
// selection and keys, collapsible JSON views, and the actions, which call
// the JSON API. Data is only ever written as text (textContent), never as
// markup.

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

const ICONS = { succeeded: "✓", failed: "✗", running: "▶", queued: "◷", cancelled: "⊘" };

function badge(word) {
  const icon = el("span", { "aria-hidden": "true" }, ICONS[word] || "•");
  return el("span", { class: `badge s-${word}` }, icon, " " + word);
}

// ---- the API ------------------------------------------------------------

async function api(method, url, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = body;
  }
  const response = await fetch(url, init);
  let json = null;
  try { json = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const message = json && json.error ? json.error.message : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return json;
}

// ---- the runs table, live -----------------------------------------------

function liveTable(table) {
  const limit = Number(table.dataset.limit || 50);
  const source = new EventSource(table.dataset.live);
  source.addEventListener("runs", (e) => {
    const rows = JSON.parse(e.data).slice(0, limit);
    const body = $("tbody", table);
    body.replaceChildren(...rows.map((r) => el("tr", { "data-run-id": r.run_id, "data-status": r.status },
      el("td", {}, badge(r.status)),
      el("td", {}, el("a", { href: `/ui/runs/${encodeURIComponent(r.run_id)}` }, el("code", {}, r.run_id))),
      el("td", {}, el("a", { href: `/ui/flows/${encodeURIComponent(r.flow)}` }, r.flow)),
      el("td", {}, el("time", {}, r.accepted_at)))));
    const empty = $("[data-testid=runs-empty]");
    if (empty && rows.length) empty.remove();
  });
}

// ---- a run's page, live ---------------------------------------------------

let runSource = null;

function liveRun() {
  const head = $(".run-head[data-live]");
  if (!head || runSource) return;
  runSource = new EventSource(head.dataset.live);
  const refresh = async (e) => {
    if (e.type === "done") { runSource.close(); runSource = null; }
    const shown = $("[data-testid=run-status]");
    if (e.type === "done" && shown && shown.dataset.status === e.data) return;
    await reloadRun();
  };
  runSource.addEventListener("changed", refresh);
  runSource.addEventListener("done", refresh);
}

// Fetches the page again and swaps its main content in, keeping the step
// shown. The HTML comes from this server, which escapes every value.
async function reloadRun() {
  const selected = $(".tl-label[aria-pressed=true]")?.dataset.select;
  const response = await fetch(location.pathname, { credentials: "same-origin" });
  if (!response.ok) return;
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  $("main").replaceChildren(...$("main", doc).childNodes);
  enhance();
  if (selected && $(`[data-testid=step-detail][data-path="${CSS.escape(selected)}"]`)) select(selected);
  liveRun();
}

// ---- the timeline --------------------------------------------------------

function select(path) {
  for (const b of $$(".tl-label")) b.setAttribute("aria-pressed", String(b.dataset.select === path));
  let found = false;
  for (const d of $$("[data-testid=step-detail]")) {
    d.hidden = d.dataset.path !== path;
    found ||= !d.hidden;
  }
  return found;
}

document.addEventListener("keydown", (e) => {
  if (!e.target.classList?.contains("tl-label")) return;
  if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
  const all = $$(".tl-label");
  const next = all[all.indexOf(e.target) + (e.key === "ArrowDown" ? 1 : -1)];
  if (next) { next.focus(); e.preventDefault(); }
});

// ---- JSON views ------------------------------------------------------------

function tree(value, key, depth) {
  const label = key === undefined ? [] : [el("span", { class: "k" }, JSON.stringify(key)), ": "];
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    if (entries.length === 0) return el("div", {}, ...label, el("span", { class: "lit" }, Array.isArray(value) ? "[]" : "{}"));
    const open = Array.isArray(value) ? "[" : "{";
    const summary = el("summary", {}, ...label, `${open} ${entries.length} ${Array.isArray(value) ? "items" : "keys"}`);
    const details = el("details", {}, summary);
    if (depth < 2) details.open = true;
    for (const [k, v] of entries) details.append(tree(v, Array.isArray(value) ? undefined : k, depth + 1));
    return details;
  }
  const cls = typeof value === "string" ? "str" : typeof value === "number" ? "num" : "lit";
  return el("div", {}, ...label, el("span", { class: cls }, JSON.stringify(value)));
}

function enhance() {
  for (const pre of $$("pre[data-json]")) {
    if (pre.dataset.text !== undefined) continue;
    const text = pre.textContent;
    pre.dataset.text = text;
    try {
      const value = JSON.parse(text);
      if (value !== null && typeof value === "object") {
        pre.replaceChildren(tree(value, undefined, 0));
        pre.classList.add("jt");
      }
    } catch { /* shown as text */ }
  }
  for (const table of $$("table[data-live]")) liveTable(table);
  liveRun();
}

// ---- actions ---------------------------------------------------------------

function say(text, isError) {
  const out = $("[data-testid=action-result]");
  if (!out) return;
  out.textContent = text;
  out.className = isError ? "error" : "";
}

async function rerun(id, body) {
  const answer = await api("POST", `/runs/${encodeURIComponent(id)}/rerun`, JSON.stringify(body));
  location.assign(`/ui/runs/${encodeURIComponent(answer.run_id)}`);
}

function openEditor(path) {
  const editor = $("[data-testid=rerun-editor]");
  if (!editor) return;
  const detail = $(`[data-testid=step-detail][data-path="${CSS.escape(path)}"]`);
  const recorded = detail && $("[data-testid=step-input] pre[data-json]", detail);
  let text = "";
  if (recorded) {
    try { text = JSON.stringify(JSON.parse(recorded.dataset.text), null, 2); } catch { text = recorded.dataset.text; }
  }
  editor.dataset.path = path;
  $("[data-testid=rerun-path]", editor).textContent = path;
  const input = $("[data-testid=rerun-input]", editor);
  input.value = text;
  input.placeholder = "empty: the step's own input";
  $("[data-testid=rerun-error]", editor).textContent = "";
  editor.hidden = false;
  input.focus();
}

async function submitRerun() {
  const editor = $("[data-testid=rerun-editor]");
  const input = $("[data-testid=rerun-input]", editor);
  const error = $("[data-testid=rerun-error]", editor);
  const text = input.value.trim();
  const body = { from: editor.dataset.path };
  if (text) {
    try { body.input = JSON.parse(text); } catch (e) {
      input.setAttribute("aria-invalid", "true");
      error.textContent = `Not valid JSON, nothing was sent: ${e.message}`;
      return;
    }
  }
  input.removeAttribute("aria-invalid");
  error.textContent = "";
  try { await rerun(editor.dataset.run, body); } catch (e) { error.textContent = e.message; }
}

async function startRun(form) {
  const input = $("[data-testid=start-input]", form);
  const errors = $("[data-testid=input-errors]", form);
  const show = (lines) => errors.replaceChildren(...lines.map((l) => el("li", {}, l)));
  let text = input.value.trim() || "{}";
  try { JSON.parse(text); } catch (e) {
    input.setAttribute("aria-invalid", "true");
    show([`Not valid JSON, nothing was sent: ${e.message}`]);
    return;
  }
  input.removeAttribute("aria-invalid");
  show([]);
  try {
    const answer = await api("POST", `/flows/${encodeURIComponent(form.dataset.flow)}/runs?wait=false`, text);
    location.assign(`/ui/runs/${encodeURIComponent(answer.run_id)}`);
  } catch (e) {
    input.setAttribute("aria-invalid", "true");
    // Schema violations come as `...: input/a: why; input/b: why`.
    const [head, rest] = e.message.split(/input_schema: /);
    show(rest ? rest.split("; ") : [head]);
  }
}

document.addEventListener("submit", (e) => {
  const form = e.target.closest("form.start");
  if (!form) return;
  e.preventDefault();
  startRun(form);
});

document.addEventListener("click", async (e) => {
  const target = e.target.closest("[data-select], [data-action]");
  if (!target) return;
  if (target.dataset.select !== undefined) { select(target.dataset.select); return; }
  const id = $(".run-head")?.dataset.runId;
  switch (target.dataset.action) {
    case "cancel":
      try {
        await api("POST", `/runs/${encodeURIComponent(id)}/cancel`);
        say("Cancelling…");
      } catch (err) { say(err.message, true); }
      break;
    case "rerun":
      try { await rerun(id, {}); } catch (err) { say(err.message, true); }
      break;
    case "rerun-from": openEditor(target.dataset.path); break;
    case "rerun-submit": await submitRerun(); break;
    case "rerun-close": $("[data-testid=rerun-editor]").hidden = true; break;
  }
});

enhance();
document.documentElement.dataset.ready = "true";
