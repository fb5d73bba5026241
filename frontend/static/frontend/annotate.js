// The annotator page. It holds no state of its own that matters: the session, the item on the screen, which
// side is which and the progress all come from the API, so a reload (or a second tab) picks up exactly where
// the server says the annotator is. What the annotator has clicked but not submitted is the only local state.

import { endpoints } from "./api.js";
import { annotatorActions } from "./annotate_actions.js";
import { isTyping } from "./keys.js";
import { renderText } from "./render.js";
import { $, UNREACHABLE, call, secondsUntil, sessionPage } from "./session_page.js";

const root = document.getElementById("annotator");
const projectId = root.dataset.projectId;

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

// --- The session, the screens, skip, report and the lease (session_page.js) -------------------------------------

const page = sessionPage({
  root,
  state,
  words: {
    done: "judged",
    timeUp: "Time is up: finish this item",
    loadNext: "load the next item",
    breakDone: (session) => {
      const done = session ? session.tasks_done : null;
      return done === null ? "" : `You judged ${done} ${done === 1 ? "item" : "items"} in your last session. `;
    },
    skipped: "Skipped: that item goes to someone else, and you will not see it again.",
    gone: skipReason,
    reportWhat: "Choose what is wrong with the item.",
    reported: "Reported to the project's leads. That item is skipped: here is the next one.",
    relet: "You have this item again: carry on.",
    notYours: "This item is no longer yours.",
    leaseLost: (why) => `${why} Press Enter for the next item.`,
    leaseLapsed: () =>
      state.choice
        ? "Time ran out on this item, but your pick is kept: press Enter to send it (it counts if the item is still free)."
        : "Time ran out on this item: press any key to try to keep it, or Enter for the next one.",
    leaseEnding: (left) => `This item goes back to the pool in ${left}: press a key or move the mouse to keep it.`,
  },
  showItem,
  onTick: () => renderLast(),
  refusals: { not_qualified: notQualified },
  onSessionOver: sessionOver,
});
const { show, notice, formError, showError, handleUnexpected, withBusy, renderStatus, loadNext, closeReport, openReport, skip } = page;

// --- Changing the last judgment (annotate_actions.js) ---------------------------------------------------------

const { rememberLast, renderLast, openRevision, closeRevision, submitRevision } = annotatorActions({
  state, root, notice, formError, withBusy, showItem, renderSelection, closeReport, choiceName,
});

// --- The session ends, qualification ---------------------------------------------------------------------------

async function sessionOver() {
  const previous = state.session;
  const response = await call("POST", endpoints.sessionStart(projectId));
  if (response.status === 429) {
    page.showBreak(response.data.retry_after ?? response.retryAfter ?? 60);
  } else if ((response.status === 200 || response.status === 201) && response.data.id !== previous?.id) {
    state.session = response.data;
    notice("Your session ended and a new one has started.");
    renderStatus();
    await loadNext();
  } else if (response.status === 200) {
    page.showBreak(5); // the server still calls the old session open: ask again in a moment
  } else if (response.status === 0) {
    showError(UNREACHABLE);
  } else {
    handleUnexpected(response, "start a new session");
  }
}

// The project's qualification was not passed: the server's words (the score, what was needed), nothing more.
function notQualified(response) {
  state.item = null;
  state.qualifying = false; // not passed: no word about passing
  renderQualification(null);
  $("not-qualified-detail").textContent = response.data.detail || "";
  show("not-qualified");
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

// --- Items ----------------------------------------------------------------------------------------------

function showItem(item) {
  const sameItem = state.item && state.item.assignment_id === item.assignment_id;
  renderQualification(item.qualification || null);
  state.item = item;
  if (!sameItem) {
    state.choice = null;
    state.dimensions = {};
    $("justification").value = "";
    page.clearItemActions();
  }
  page.measureLease(item);
  page.renderPrompt(item);
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
  page.scrollPrompt(item);
  renderSelection();
  page.tick();
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

// --- Keyboard -------------------------------------------------------------------------------------------

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
    if (event.key === "Escape") page.leaveField(event);
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
$("revise-open").addEventListener("click", () => openRevision());
$("revise-cancel").addEventListener("click", () => closeRevision());
$("not-qualified-retry").addEventListener("click", () => loadNext());
page.start();
