// The writing page: a demonstration session of the annotator API. The session, the prompt, the guidelines, the
// length limits and the progress come from the server, so a reload picks up where the server says the writer is.
// The one thing kept here is the draft: saved in this browser (localStorage, per assignment) as it is typed, so a
// reload or a crash loses nothing, and dropped once the server has the text.

import { api, endpoints, serverNow } from "./api.js";
import { renderConversation, renderText } from "./render.js";

const root = document.getElementById("writer");
const projectId = root.dataset.projectId;
const $ = (id) => document.getElementById(id);
const DRAFT_PREFIX = "tandem:draft:";
const IDLE_SECONDS = 180; // the lease is renewed only while someone is at the page

const state = {
  session: null,
  item: null,
  busy: false,
  screen: "loading",
  breakEndsAt: 0,
  breakRetrying: false,
  doneTimer: null,
  noticeTimer: null,
  previewFrame: 0,
  lastActivity: Date.now(),
  renewing: false,
  leaseLost: "",
};

const demonstrationPath = (assignmentId) => `assignments/${encodeURIComponent(assignmentId)}/demonstration/`;

// --- Screens and small helpers ---------------------------------------------------------------------------------

function show(screen) {
  state.screen = screen;
  for (const section of root.querySelectorAll("[data-screen]")) section.hidden = section.dataset.screen !== screen;
  root.dataset.state = screen;
  if (screen !== "done" && state.doneTimer) {
    clearInterval(state.doneTimer);
    state.doneTimer = null;
  }
}

function notice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = !text;
  clearTimeout(state.noticeTimer);
  if (text) state.noticeTimer = setTimeout(() => notice(""), 10000);
}

function formError(text) {
  $("form-error").textContent = text;
}

function showError(text) {
  $("error-detail").textContent = text;
  show("error");
}

function duration(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

function secondsUntil(iso) {
  return (Date.parse(iso) - serverNow()) / 1000;
}

async function call(method, path, body) {
  try {
    return await api(method, path, body);
  } catch {
    return { status: 0, data: {}, retryAfter: null };
  }
}

function handleUnexpected(response, what) {
  const code = response.data.code;
  if (response.status === 401 || code === "not_authenticated" || code === "authentication_failed") {
    show("logged-out");
  } else if (code === "not_member") {
    show("forbidden");
  } else {
    const detail = response.data.detail ? ` ${response.data.detail}` : "";
    showError(`Could not ${what} (HTTP ${response.status}).${detail}`);
  }
}

// --- The draft, kept in this browser ----------------------------------------------------------------------------

function draftKey(item) {
  return DRAFT_PREFIX + item.assignment_id;
}

function loadDraft(item) {
  try {
    return localStorage.getItem(draftKey(item)) ?? "";
  } catch {
    return "";
  }
}

function saveDraft() {
  if (!state.item) return;
  const text = $("draft").value;
  try {
    if (text) localStorage.setItem(draftKey(state.item), text);
    else localStorage.removeItem(draftKey(state.item));
    $("draft-state").textContent = text ? "Draft saved in this browser." : "";
  } catch {
    $("draft-state").textContent = "This browser does not keep drafts: send before you leave the page.";
  }
}

function dropDraft(item) {
  try {
    localStorage.removeItem(draftKey(item));
  } catch {
    // nothing was kept
  }
}

// The server counts characters (code points) after dropping surrounding blank space; so does this.
function counted(text) {
  return [...text.replace(/\r\n?/g, "\n").trim()].length;
}

function renderCounter() {
  const item = state.item;
  const counter = $("counter");
  if (!item) {
    counter.textContent = "";
    return;
  }
  const n = counted($("draft").value);
  counter.textContent = `${n} / ${item.max_chars} characters (at least ${item.min_chars})`;
  counter.classList.toggle("short", n < item.min_chars);
  counter.classList.toggle("over", n > item.max_chars);
}

function renderPreview() {
  state.previewFrame = 0;
  $("preview").replaceChildren(renderText($("draft").value));
}

function onDraftInput() {
  saveDraft();
  renderCounter();
  formError("");
  if (!state.previewFrame) state.previewFrame = requestAnimationFrame(renderPreview);
}

// --- Status bar -------------------------------------------------------------------------------------------------

function renderStatus() {
  const session = state.session;
  $("progress").textContent = session ? `${session.tasks_done} / ${session.max_tasks} written` : "";
  document.title = session ? `(${session.tasks_done}/${session.max_tasks}) ${root.dataset.title}` : root.dataset.title;
  tick();
}

function tick() {
  const clock = $("clock");
  if (state.session && state.screen === "item") {
    const left = secondsUntil(state.session.expires_at);
    clock.textContent = left > 0 ? `${duration(left)} left` : "Time is up: finish this response";
    clock.classList.toggle("low", left < 300);
    clock.hidden = false;
  } else {
    clock.hidden = true;
  }
  renderLease();
  if (state.screen === "break") {
    const left = (state.breakEndsAt - serverNow()) / 1000;
    $("break-countdown").textContent = duration(left);
    $("break-retry").disabled = left > 0 || state.breakRetrying;
    if (left <= 0 && !state.breakRetrying) startSession({ fromBreak: true });
  }
}

// --- The session and its prompts ---------------------------------------------------------------------------------

async function startSession({ fromBreak = false } = {}) {
  state.breakRetrying = fromBreak;
  if (!fromBreak) show("loading");
  const response = await call("POST", endpoints.sessionStart(projectId), { kind: "demonstration" });
  state.breakRetrying = false;
  if (response.status === 200 || response.status === 201) {
    state.session = response.data;
    renderStatus();
    await loadNext();
  } else if (response.status === 429) {
    showBreak(response.data.retry_after ?? response.retryAfter ?? 60);
  } else if (response.status === 0) {
    if (fromBreak) state.breakEndsAt = serverNow() + 5000;
    else showError("The server could not be reached. Check your connection and try again.");
  } else if (response.status === 404) {
    showError("This project no longer exists.");
  } else {
    handleUnexpected(response, "start a session");
  }
}

function showBreak(retryAfterSeconds) {
  state.item = null;
  state.breakEndsAt = serverNow() + Math.max(1, Number(retryAfterSeconds)) * 1000;
  show("break");
  renderStatus();
}

async function loadNext({ refresh = false } = {}) {
  if (!state.session) return startSession();
  const [response, session] = await Promise.all([
    call("GET", endpoints.next(state.session.id)),
    refresh ? call("GET", endpoints.session(state.session.id)) : null,
  ]);
  if (session?.status === 200) state.session = session.data;
  renderStatus();
  if (response.status === 200) {
    showItem(response.data);
  } else if (response.status === 204) {
    state.item = null;
    show("done");
    state.doneTimer = setInterval(() => loadNext(), 60000);
  } else if (response.status === 410) {
    state.session = null;
    await startSession();
  } else if (response.status === 404) {
    state.session = null;
    await startSession();
  } else if (response.status === 0) {
    showError("The server could not be reached. Check your connection and try again.");
  } else {
    handleUnexpected(response, "load the next prompt");
  }
}

function renderGuidelines(guidelines) {
  const box = $("guidelines");
  const parts = [];
  const section = (title, content) => {
    const wrap = document.createElement("section");
    const heading = document.createElement("h3");
    heading.textContent = title;
    wrap.append(heading, content);
    parts.push(wrap);
  };
  if (guidelines?.text) {
    const text = document.createElement("div");
    text.className = "rich";
    text.append(renderText(guidelines.text));
    section("For this project", text);
  }
  if (guidelines?.scope) {
    const scope = document.createElement("div");
    scope.className = "rich";
    scope.append(renderText(guidelines.scope));
    section("Scope", scope);
  }
  const list = (entries) => {
    const ul = document.createElement("ul");
    for (const entry of entries) ul.append(entry);
    return ul;
  };
  if (guidelines?.dimensions?.length) {
    section(
      "A good response is, in this order",
      list(
        guidelines.dimensions.map((d) => {
          const li = document.createElement("li");
          const name = document.createElement("strong");
          name.textContent = d.label || d.key;
          li.append(name, document.createTextNode(d.description ? `: ${d.description}` : ""));
          return li;
        }),
      ),
    );
  }
  if (guidelines?.disqualifiers?.length) {
    section(
      "Never",
      list(
        guidelines.disqualifiers.map((text) => {
          const li = document.createElement("li");
          li.textContent = text;
          return li;
        }),
      ),
    );
  }
  box.replaceChildren(...parts);
  $("guidelines-version").textContent = guidelines?.criteria_version ? `· criteria v${guidelines.criteria_version}` : "";
}

function showItem(item) {
  const sameItem = state.item && state.item.assignment_id === item.assignment_id;
  state.item = item;
  item.leaseSeconds = Math.max(Number(state.session?.lease_minutes) * 60 || secondsUntil(item.lease_expires_at), 30);
  const prompt = $("prompt");
  if (Array.isArray(item.messages)) {
    prompt.replaceChildren(renderConversation(item.messages));
    prompt.classList.add("conversation");
  } else {
    prompt.replaceChildren(renderText(item.prompt));
    prompt.classList.remove("conversation");
  }
  renderGuidelines(item.guidelines);
  if (!sameItem) {
    $("draft").value = loadDraft(item);
    $("skip-reason").value = "";
    state.leaseLost = "";
    formError("");
    closeReport();
    $("draft-state").textContent = $("draft").value ? "Draft restored from this browser." : "";
  }
  root.dataset.assignment = item.assignment_id;
  show("item");
  prompt.scrollTop = Array.isArray(item.messages) ? prompt.scrollHeight : 0;
  renderPreview();
  renderCounter();
  tick();
  $("draft").focus();
}

// --- Sending, skipping, reporting ----------------------------------------------------------------------------------

async function withBusy(work) {
  state.busy = true;
  root.classList.add("busy");
  $("submit").disabled = true;
  try {
    await work();
  } finally {
    state.busy = false;
    root.classList.remove("busy");
    $("submit").disabled = false;
  }
}

function goneReason(response) {
  switch (response.data.code) {
    case "lease_expired":
      return "Time ran out on that prompt, so it went back to the pool. Your draft of it is kept in this browser.";
    case "overlap_full":
      return "That prompt already had all the responses it needed.";
    case "batch_closed":
      return "That prompt's batch was closed.";
    case "conflict":
      return "A different response to that prompt was already sent (perhaps in another tab).";
    default:
      return response.data.detail || "That prompt is no longer yours to write.";
  }
}

async function submit() {
  if (state.busy || state.screen !== "item" || !state.item) return;
  const item = state.item;
  const text = $("draft").value;
  const n = counted(text);
  if (n < item.min_chars || n > item.max_chars) {
    formError(
      n < item.min_chars
        ? `Write at least ${item.min_chars} characters (${n} so far).`
        : `Keep it to ${item.max_chars} characters (${n} now).`,
    );
    return;
  }
  await withBusy(async () => {
    let response = await call("POST", demonstrationPath(item.assignment_id), { text });
    if (response.status === 410 && response.data.code === "lease_expired" && !state.leaseLost) {
      // The lease lapsed while writing: let the prompt again if it is still free, and send again.
      const renewed = await call("POST", endpoints.renew(item.assignment_id));
      if (renewed.status === 200) {
        item.lease_expires_at = renewed.data.lease_expires_at;
        response = await call("POST", demonstrationPath(item.assignment_id), { text });
      }
    }
    if (response.status === 200 || response.status === 201) {
      dropDraft(item);
      notice("Sent: thank you. Here is the next prompt.");
      await loadNext({ refresh: true });
    } else if (response.status === 400) {
      formError(response.data.detail || "The server did not accept this response.");
    } else if (response.status === 410 || response.status === 409 || response.status === 404) {
      if (response.data.code !== "lease_expired") dropDraft(item);
      notice(`${goneReason(response)} Here is the next prompt.`);
      await loadNext({ refresh: true });
    } else if (response.status === 0) {
      formError("Not sent: the server could not be reached. Your draft is kept; try again.");
    } else if (response.status === 401 || response.data.code === "not_authenticated") {
      show("logged-out");
    } else {
      formError(`Not sent (HTTP ${response.status}). Your draft is kept; try again.`);
    }
  });
}

async function skip() {
  if (state.busy || state.screen !== "item" || !state.item) return;
  const item = state.item;
  await withBusy(async () => {
    const reason = $("skip-reason").value.trim();
    const response = await call("POST", endpoints.skip(item.assignment_id), reason ? { reason } : {});
    if (response.status === 0) {
      formError("Not skipped: the server could not be reached. Try again.");
      return;
    }
    if (response.status === 401) {
      show("logged-out");
      return;
    }
    dropDraft(item);
    notice(response.status === 200 ? "Skipped: that prompt goes to someone else." : goneReason(response));
    await loadNext({ refresh: true });
  });
}

function openReport() {
  if (state.screen !== "item" || !state.item) return;
  $("report-form").hidden = false;
  $("report-open").setAttribute("aria-expanded", "true");
  $("report-error").textContent = "";
  $("report-form").querySelector("input[name=kind]").focus();
}

function closeReport() {
  $("report-form").hidden = true;
  $("report-open").setAttribute("aria-expanded", "false");
  for (const input of $("report-form").querySelectorAll("input[name=kind]")) input.checked = false;
  $("report-note").value = "";
}

async function sendReport() {
  const item = state.item;
  const kind = $("report-form").querySelector("input[name=kind]:checked")?.value;
  if (!kind) {
    $("report-error").textContent = "Choose what is wrong with the prompt.";
    return;
  }
  await withBusy(async () => {
    const response = await call("POST", endpoints.report(item.assignment_id), {
      kind,
      note: $("report-note").value.trim(),
    });
    if (response.status === 200 || response.status === 201) {
      closeReport();
      dropDraft(item);
      notice("Reported to the project's leads. That prompt is skipped: here is the next one.");
      await loadNext({ refresh: true });
    } else if (response.status === 0) {
      $("report-error").textContent = "Not sent: the server could not be reached. Try again.";
    } else {
      $("report-error").textContent = response.data.detail || `Not sent (HTTP ${response.status}).`;
    }
  });
}

// --- Keeping the lease while someone writes -----------------------------------------------------------------------

function noteActivity() {
  state.lastActivity = Date.now();
  maybeRenew();
}

function maybeRenew() {
  const item = state.item;
  if (!item || state.renewing || state.screen !== "item" || state.leaseLost) return;
  if ((Date.now() - state.lastActivity) / 1000 > IDLE_SECONDS) return;
  if (secondsUntil(item.lease_expires_at) > Math.min(120, item.leaseSeconds / 2)) return;
  renew(item);
}

async function renew(item) {
  state.renewing = true;
  const response = await call("POST", endpoints.renew(item.assignment_id));
  state.renewing = false;
  if (response.status === 200) {
    item.lease_expires_at = response.data.lease_expires_at;
    if (response.data.relet) notice("You have this prompt again: carry on.");
  } else if (response.status >= 400 && response.status !== 401) {
    state.leaseLost = response.data.detail || "This prompt is no longer yours.";
  }
  renderLease();
}

function renderLease() {
  const lease = $("lease");
  const item = state.item;
  lease.classList.remove("warn");
  if (!item || state.screen !== "item") {
    lease.textContent = "";
    return;
  }
  const left = secondsUntil(item.lease_expires_at);
  if (state.leaseLost) {
    lease.textContent = `${state.leaseLost} Your draft is kept in this browser.`;
  } else if (left <= 0) {
    lease.textContent = "Time ran out on this prompt: send now to keep it if it is still free, or skip it.";
  } else if (left < Math.min(60, item.leaseSeconds / 4)) {
    lease.textContent = `This prompt goes back to the pool in ${duration(left)}: type or move the mouse to keep it.`;
  } else {
    lease.textContent = "";
    return;
  }
  lease.classList.add("warn");
}

// --- Keyboard and wiring ------------------------------------------------------------------------------------------

function isTyping(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.isComposing) return;
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && state.screen === "item") {
    event.preventDefault();
    if ($("report-form").contains(event.target)) sendReport();
    else if (!event.repeat) submit();
    return;
  }
  if (event.key === "Escape" && isTyping(event.target)) {
    event.preventDefault();
    event.target.blur();
    if ($("report-form").contains(event.target)) closeReport();
  }
});
$("draft").addEventListener("input", onDraftInput);
$("demonstration").addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});
$("skip").addEventListener("click", () => skip());
$("report-open").addEventListener("click", () => ($("report-form").hidden ? openReport() : closeReport()));
$("report-cancel").addEventListener("click", () => closeReport());
$("report-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sendReport();
});
for (const type of ["keydown", "pointerdown", "input", "wheel"]) {
  document.addEventListener(type, noteActivity, { passive: true, capture: true });
}
$("break-retry").addEventListener("click", () => startSession({ fromBreak: true }));
$("done-retry").addEventListener("click", () => loadNext());
$("error-retry").addEventListener("click", () => startSession());
setInterval(maybeRenew, 5000);
setInterval(tick, 1000);
startSession();
