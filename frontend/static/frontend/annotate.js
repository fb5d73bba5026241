// The annotator page. It holds no state of its own that matters: the session, the item on the screen, which
// side is which and the progress all come from the API, so a reload (or a second tab) picks up exactly where
// the server says the annotator is. What the annotator has clicked but not submitted is the only local state.

import { api, endpoints, serverNow } from "./api.js";
import { annotatorActions } from "./annotate_actions.js";
import { renderConversation, renderText } from "./render.js";

const root = document.getElementById("annotator");
const projectId = root.dataset.projectId;
const $ = (id) => document.getElementById(id);

const CHOICE_KEYS = { left: "1", right: "2", tie: "3", both_bad: "4" };
// One row of keys per criterion, in the columns of 1/2/3 above them: left, right, tie.
const DIMENSION_KEYS = [
  ["q", "w", "e"],
  ["a", "s", "d"],
  ["z", "x", "c"],
  ["r", "t", "y"],
  ["f", "g", "h"],
  ["v", "b", "n"],
  ["u", "i", "o"],
];
const DIMENSION_VALUES = ["left", "right", "tie", "na"];
// [on a wide screen, on stacked panes]; "na": the criterion does not apply to this item (no key of its own).
const DIMENSION_LABELS = { left: ["Left", "Top"], right: ["Right", "Bottom"], tie: ["Tie"], na: ["N/A"] };
const CHOICE_NAMES = { left: ["Left", "Top"], right: ["Right", "Bottom"], tie: ["Tie"], both_bad: ["Both bad"] };
// The panes stack (and become top and bottom) in the same windows as tandem.css's stacked layout.
const STACKED = window.matchMedia("(max-width: 800px), (max-height: 560px)");
const TOUCH = window.matchMedia("(hover: none) and (pointer: coarse)");

const state = {
  session: null,
  item: null,
  choice: null,
  dimensions: {},
  busy: false,
  screen: "loading",
  breakEndsAt: 0,
  breakRetrying: false,
  doneTimer: null,
  noticeTimer: null,
  dimensionKeys: new Map(), // key → [dimension key, value]
  last: null, // the last judgment while it may be changed: { id, item, choice, dimensions, justification, until }
  saved: null, // while changing the last judgment: the current item and its picks, to come back to
  lastActivity: Date.now(),
  renewing: false,
  leaseLost: "", // why the item on the screen can no longer be kept, from the server
  qualifying: false, // the last item was a qualification item
};

function choiceName(choice) {
  const names = CHOICE_NAMES[choice] || [choice];
  return STACKED.matches ? names[names.length - 1] : names[0];
}

// The item whose lease the page keeps: the current one, also while the last judgment is being changed.
function leasedItem() {
  return state.saved ? state.saved.item : state.item;
}

// --- Screens and small helpers -------------------------------------------------------------------------

function show(screen) {
  state.screen = screen;
  for (const section of root.querySelectorAll("[data-screen]")) {
    section.hidden = section.dataset.screen !== screen;
  }
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

// An answer the page cannot act on by itself: logged out, not a member, or something unexpected.
function handleUnexpected(response, what) {
  const code = response.data.code;
  if (response.status === 401 || code === "not_authenticated" || code === "authentication_failed") {
    show("logged-out");
  } else if (code === "not_member") {
    show("forbidden");
  } else if (code === "not_qualified") {
    // The project's qualification was not passed: the server's words (the score, what was needed), nothing more.
    state.item = null;
    state.qualifying = false; // not passed: no word about passing
    renderQualification(null);
    $("not-qualified-detail").textContent = response.data.detail || "";
    show("not-qualified");
  } else {
    const detail = response.data.detail ? ` ${response.data.detail}` : "";
    showError(`Could not ${what} (HTTP ${response.status}).${detail}`);
  }
}

async function call(method, path, body) {
  try {
    return await api(method, path, body);
  } catch {
    return { status: 0, data: {}, retryAfter: null };
  }
}

// --- Status bar: progress and the session clock -----------------------------------------------------------

function renderStatus() {
  const session = state.session;
  $("progress").textContent = session ? `${session.tasks_done} / ${session.max_tasks} judged` : "";
  document.title = session
    ? `(${session.tasks_done}/${session.max_tasks}) ${root.dataset.title}`
    : root.dataset.title;
  tick();
}

function tick() {
  const clock = $("clock");
  if (state.session && state.screen === "item") {
    const left = secondsUntil(state.session.expires_at);
    clock.textContent = left > 0 ? `${duration(left)} left` : "Time is up: finish this item";
    clock.classList.toggle("low", left < 300);
    clock.hidden = false;
  } else {
    clock.hidden = true;
  }
  renderLease();
  renderLast();
  if (state.screen === "break") {
    const left = (state.breakEndsAt - serverNow()) / 1000;
    $("break-countdown").textContent = duration(left);
    $("break-retry").disabled = left > 0 || state.breakRetrying;
    if (left <= 0 && !state.breakRetrying) startSession({ fromBreak: true });
  }
}

// --- The session ----------------------------------------------------------------------------------------

async function startSession({ fromBreak = false } = {}) {
  state.breakRetrying = fromBreak;
  if (!fromBreak) show("loading");
  const response = await call("POST", endpoints.sessionStart(projectId));
  state.breakRetrying = false;
  if (response.status === 200 || response.status === 201) {
    state.session = response.data;
    renderStatus();
    await loadNext();
  } else if (response.status === 429) {
    showBreak(response.data.retry_after ?? response.retryAfter ?? 60);
  } else if (response.status === 0) {
    if (fromBreak) {
      state.breakEndsAt = serverNow() + 5000; // try again shortly
    } else {
      showError("The server could not be reached. Check your connection and try again.");
    }
  } else if (response.status === 404) {
    showError("This project no longer exists.");
  } else {
    handleUnexpected(response, "start a session");
  }
}

function showBreak(retryAfterSeconds) {
  const done = state.session ? state.session.tasks_done : null;
  $("break-done").textContent =
    done === null ? "" : `You judged ${done} ${done === 1 ? "item" : "items"} in your last session. `;
  state.item = null;
  state.breakEndsAt = serverNow() + Math.max(1, Number(retryAfterSeconds)) * 1000;
  show("break");
  renderStatus();
}

async function sessionOver() {
  const previous = state.session;
  const response = await call("POST", endpoints.sessionStart(projectId));
  if (response.status === 429) {
    showBreak(response.data.retry_after ?? response.retryAfter ?? 60);
  } else if ((response.status === 200 || response.status === 201) && response.data.id !== previous?.id) {
    state.session = response.data;
    notice("Your session ended and a new one has started.");
    renderStatus();
    await loadNext();
  } else if (response.status === 200) {
    showBreak(5); // the server still calls the old session open: ask again in a moment
  } else if (response.status === 0) {
    showError("The server could not be reached. Check your connection and try again.");
  } else {
    handleUnexpected(response, "start a new session");
  }
}

async function refreshSession() {
  if (!state.session) return;
  const response = await call("GET", endpoints.session(state.session.id));
  if (response.status === 200) state.session = response.data;
}

// --- Items ----------------------------------------------------------------------------------------------

async function loadNext({ refresh = false } = {}) {
  if (!state.session) return startSession();
  const [response] = await Promise.all([
    call("GET", endpoints.next(state.session.id)),
    refresh ? refreshSession() : null,
  ]);
  renderStatus();
  if (response.status === 200) {
    showItem(response.data);
  } else if (response.status === 204) {
    showDone();
  } else if (response.status === 410) {
    await sessionOver();
  } else if (response.status === 404) {
    state.session = null;
    await startSession();
  } else if (response.status === 0) {
    showError("The server could not be reached. Check your connection and try again.");
  } else {
    handleUnexpected(response, "load the next item");
  }
}

function showDone() {
  state.item = null;
  show("done");
  // New batches may open while the annotator waits: look again every minute.
  state.doneTimer = setInterval(() => loadNext(), 60000);
}

// "Qualification: n of N" while the project's qualification set is being answered; a word when it has been passed.
function renderQualification(progress) {
  const box = $("qualification");
  if (progress) {
    box.textContent = `Qualification: ${progress.answered} of ${progress.size}`;
    state.qualifying = true;
  } else if (state.qualifying) {
    state.qualifying = false;
    notice("You passed the qualification: from now on these are live items.");
  }
  box.hidden = !progress;
}

function showItem(item) {
  const sameItem = state.item && state.item.assignment_id === item.assignment_id;
  renderQualification(item.qualification || null);
  state.item = item;
  if (!sameItem) {
    state.choice = null;
    state.dimensions = {};
    $("justification").value = "";
    $("skip-reason").value = "";
    state.leaseLost = "";
    formError("");
    closeReport();
  }
  // How long a lease runs, to renew it well before it lapses (a reload may bring a lease half used).
  item.leaseSeconds = Math.max(Number(state.session?.lease_minutes) * 60 || secondsUntil(item.lease_expires_at), 30);
  const prompt = $("prompt");
  if (Array.isArray(item.messages)) {
    prompt.replaceChildren(renderConversation(item.messages));
    prompt.classList.add("conversation");
  } else {
    prompt.replaceChildren(renderText(item.prompt));
    prompt.classList.remove("conversation");
  }
  $("left").replaceChildren(renderText(item.left?.text));
  $("right").replaceChildren(renderText(item.right?.text));
  for (const id of ["left", "right"]) $(id).scrollTop = 0;

  const choices = new Set(item.choices || ["left", "right"]);
  for (const button of root.querySelectorAll("[data-choice]")) {
    button.hidden = !choices.has(button.dataset.choice);
  }
  buildDimensions(item.dimensions || []);
  $("justification-required").hidden = !item.require_justification;
  $("justification").required = Boolean(item.require_justification);
  root.dataset.assignment = item.assignment_id;
  if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  show("item");
  // A conversation is read from its last turn: start there.
  prompt.scrollTop = Array.isArray(item.messages) ? prompt.scrollHeight : 0;
  renderSelection();
  tick();
}

function buildDimensions(dimensions) {
  const box = $("dimensions");
  state.dimensionKeys.clear();
  const rows = dimensions.map((dimension, index) => {
    const keys = DIMENSION_KEYS[index];
    const row = document.createElement("div");
    row.className = "dimension";
    row.setAttribute("role", "group");
    const label = document.createElement("span");
    label.className = "dimension-label";
    label.textContent = dimension.label || dimension.key;
    if (dimension.description) label.title = dimension.description;
    row.append(label);
    DIMENSION_VALUES.forEach((value, column) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "pick";
      button.dataset.dimension = dimension.key;
      button.dataset.value = value;
      button.setAttribute("aria-pressed", "false");
      const [wide, narrow] = DIMENSION_LABELS[value];
      button.setAttribute("aria-label", `${dimension.label || dimension.key}: ${value === "na" ? "not applicable" : wide}`);
      if (value === "na") {
        button.classList.add("na");
        button.title = "Not applicable: this criterion does not fit this item";
      }
      if (keys && column < keys.length) {
        const kbd = document.createElement("kbd");
        kbd.textContent = keys[column];
        button.append(kbd, " ");
        state.dimensionKeys.set(keys[column], [dimension.key, value]);
      }
      button.append(sideLabel(wide, narrow));
      row.append(button);
    });
    if (dimension.description) {
      const description = document.createElement("span");
      description.className = "dimension-description";
      description.textContent = dimension.description;
      row.append(description);
    }
    return row;
  });
  box.replaceChildren(...rows);
  box.hidden = rows.length === 0;
}

function sideLabel(wide, narrow) {
  if (!narrow) return wide;
  const fragment = document.createDocumentFragment();
  for (const [text, className] of [[wide, "side-wide"], [narrow, "side-narrow"]]) {
    const span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    fragment.append(span);
  }
  return fragment;
}

function renderSelection() {
  for (const button of root.querySelectorAll("[data-choice]")) {
    button.setAttribute("aria-pressed", String(button.dataset.choice === state.choice));
  }
  for (const button of $("dimensions").querySelectorAll("[data-dimension]")) {
    const picked = state.dimensions[button.dataset.dimension] === button.dataset.value;
    button.setAttribute("aria-pressed", String(picked));
  }
}

function pickChoice(choice) {
  if (!state.item || !(state.item.choices || []).includes(choice)) return;
  state.choice = choice;
  formError("");
  renderSelection();
}

function pickDimension(key, value) {
  if (state.dimensions[key] === value) {
    delete state.dimensions[key]; // the same key again takes the answer back
  } else {
    state.dimensions[key] = value;
  }
  renderSelection();
}

// --- Submitting ---------------------------------------------------------------------------------------

async function submit() {
  if (state.busy || state.screen !== "item" || !state.item) return;
  if (state.saved) return submitRevision();
  const item = state.item;
  if (state.leaseLost || (!state.choice && secondsUntil(item.lease_expires_at) <= 0)) {
    notice(state.leaseLost ? `${state.leaseLost} Here is the next one.` : "Time ran out on that item, so it went back to the pool. Here is the next one.");
    await withBusy(() => loadNext({ refresh: true }));
    return;
  }
  if (!state.choice) {
    if (secondsUntil(item.lease_expires_at) <= 0) {
      notice("Time ran out on that item, so it went back to the pool. Here is the next one.");
      await withBusy(() => loadNext({ refresh: true }));
      return;
    }
    const offered = (item.choices || ["left", "right"]).map((choice) =>
      TOUCH.matches ? choiceName(choice).toLowerCase() : `${CHOICE_KEYS[choice]} ${choiceName(choice).toLowerCase()}`,
    );
    formError(`Pick a response first: ${offered.join(", ")}.`);
    return;
  }
  const justification = $("justification").value.trim();
  if (item.require_justification && !justification) {
    formError("This project asks for a justification: press j and write a sentence.");
    $("justification").focus();
    return;
  }
  await withBusy(async () => {
    const body = { choice: state.choice, dimensions: { ...state.dimensions }, justification };
    let response = await call("POST", endpoints.judgment(item.assignment_id), body);
    if (response.status === 410 && response.data.code === "lease_expired") {
      // The lease lapsed with a pick made: let the item again if it is still free, and send the pick again.
      const renewed = await call("POST", endpoints.renew(item.assignment_id));
      if (renewed.status !== 200) {
        const why = renewed.data.detail || "This item went back to the pool: your pick could not be kept.";
        notice(`${why} Here is the next one.`);
        await loadNext({ refresh: true });
        return;
      }
      item.lease_expires_at = renewed.data.lease_expires_at;
      response = await call("POST", endpoints.judgment(item.assignment_id), body);
    }
    if (response.status === 200 || response.status === 201) {
      notice("");
      rememberLast(response.data, item, body);
      await loadNext({ refresh: true });
    } else if (response.status === 410 || response.status === 409 || response.status === 404) {
      notice(skipReason(response));
      await loadNext({ refresh: true });
    } else if (response.status === 400) {
      formError(response.data.detail || "The server did not accept this judgment.");
    } else if (response.status === 0) {
      formError("Not saved: the server could not be reached. Press Enter to try again.");
    } else if (response.status === 401 || response.data.code === "not_authenticated") {
      show("logged-out");
    } else {
      formError(`Not saved (HTTP ${response.status}). Press Enter to try again.`);
    }
  });
}

function skipReason(response) {
  switch (response.data.code) {
    case "lease_expired":
      return "Time ran out on that item, so it went back to the pool. Here is the next one.";
    case "overlap_full":
      return "That item already had all the judgments it needed. Here is the next one.";
    case "batch_closed":
      return "That item's batch was closed. Here is the next one.";
    case "conflict":
      return "That item was already judged (perhaps in another tab). Here is the next one.";
    case "item_withdrawn":
      return "A lead withdrew that item. Here is the next one.";
    default:
      return "That item is no longer yours to judge. Here is the next one.";
  }
}

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

// --- Skip, report, changing the last judgment, keeping the lease (annotate_actions.js) ----------------------

const { skip, openReport, closeReport, sendReport, rememberLast, renderLast, openRevision, closeRevision, submitRevision, noteActivity, maybeRenew, renderLease } = annotatorActions({
  state, root, $, call, notice, formError, withBusy, loadNext, showItem, renderSelection, duration, secondsUntil, skipReason, show, choiceName, leasedItem,
});

// --- Keyboard -------------------------------------------------------------------------------------------

function isTyping(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

function choiceForKey(event) {
  for (const [choice, key] of Object.entries(CHOICE_KEYS)) {
    if (event.key === key || event.code === `Digit${key}` || event.code === `Numpad${key}`) return choice;
  }
  return null;
}

function onKeyDown(event) {
  if (event.defaultPrevented || event.isComposing) return;
  // Links and buttons outside the annotator (the header's) keep their own keys.
  if (event.target instanceof Element && !root.contains(event.target) && event.target.closest("a, button")) return;
  const modified = event.ctrlKey || event.metaKey || event.altKey;
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && state.screen === "item") {
    event.preventDefault();
    submit();
    return;
  }
  if (isTyping(event.target)) {
    if (event.key === "Escape") {
      event.preventDefault();
      event.target.blur();
      if ($("report-form").contains(event.target)) closeReport();
    }
    return;
  }
  if (modified) return;
  if (event.key === "?") {
    event.preventDefault();
    toggleHelp();
    return;
  }
  if (event.key === "Escape" && !$("keys-help").hidden) {
    toggleHelp(false);
    return;
  }
  if (state.screen !== "item") return;
  if (event.key === "Escape" && (state.saved || !$("report-form").hidden)) {
    event.preventDefault();
    if (state.saved) closeRevision();
    else closeReport();
    return;
  }
  if (event.key === "Backspace") {
    event.preventDefault();
    openRevision();
    return;
  }
  if (event.key === "Enter") {
    event.preventDefault(); // also stops a focused button from being clicked: Enter always submits
    if (!event.repeat) submit();
    return;
  }
  // Digits by key or by position, shifted or not: on some layouts (AZERTY) the digits need Shift.
  const choice = choiceForKey(event);
  if (choice) {
    event.preventDefault();
    pickChoice(choice);
    return;
  }
  if (event.shiftKey) return;
  const key = event.key.toLowerCase();
  if (key === "j") {
    event.preventDefault(); // focus the box without typing the j into it
    $("justification").focus();
    return;
  }
  if (key === "k" || key === "p") {
    event.preventDefault();
    if (key === "k") skip();
    else openReport();
    return;
  }
  const dimension = state.dimensionKeys.get(key);
  if (dimension) {
    event.preventDefault();
    pickDimension(...dimension);
  }
}

function toggleHelp(force) {
  const help = $("keys-help");
  help.hidden = force === undefined ? !help.hidden : !force;
  $("keys-toggle").setAttribute("aria-expanded", String(!help.hidden));
}

// --- Wiring ---------------------------------------------------------------------------------------------

document.addEventListener("keydown", onKeyDown);
root.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target.closest("button") : null;
  if (!target) return;
  if (target.dataset.choice) pickChoice(target.dataset.choice);
  else if (target.dataset.dimension) pickDimension(target.dataset.dimension, target.dataset.value);
});
$("judgment").addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});
$("keys-toggle").addEventListener("click", () => toggleHelp());
$("skip").addEventListener("click", () => skip());
$("report-open").addEventListener("click", () => ($("report-form").hidden ? openReport() : closeReport()));
$("report-cancel").addEventListener("click", () => closeReport());
$("report-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sendReport();
});
$("revise-open").addEventListener("click", () => openRevision());
$("revise-cancel").addEventListener("click", () => closeRevision());
// Activity that keeps the lease alive: keys, clicks, touches, scrolling the texts, the mouse (at most every 5 s).
let lastMove = 0;
for (const type of ["keydown", "pointerdown", "input", "wheel"]) {
  document.addEventListener(type, noteActivity, { passive: true, capture: true });
}
root.addEventListener("scroll", noteActivity, { passive: true, capture: true });
document.addEventListener("mousemove", () => {
  if (Date.now() - lastMove > 5000) {
    lastMove = Date.now();
    noteActivity();
  }
}, { passive: true });
setInterval(maybeRenew, 5000);
$("break-retry").addEventListener("click", () => startSession({ fromBreak: true }));
$("done-retry").addEventListener("click", () => loadNext());
$("not-qualified-retry").addEventListener("click", () => loadNext());
$("error-retry").addEventListener("click", () => startSession());
setInterval(tick, 1000);
startSession();
