// The writing page: a demonstration session of the annotator API. The session, the prompt, the guidelines, the
// length limits and the progress come from the server, so a reload picks up where the server says the writer is.
// The one thing kept here is the draft: saved in this browser (localStorage, per assignment) as it is typed, so a
// reload or a crash loses nothing, and dropped once the server has the text.

import { endpoints } from "./api.js";
import { isTyping } from "./keys.js";
import { renderText } from "./render.js";
import { $, call, sessionPage } from "./session_page.js";

const root = document.getElementById("writer");
const DRAFT_PREFIX = "tandem:draft:";

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

// --- The session, the screens, skip, report and the lease (session_page.js) ---------------------------------------

const page = sessionPage({
  root,
  state,
  sessionBody: { kind: "demonstration" },
  words: {
    done: "written",
    timeUp: "Time is up: finish this response",
    loadNext: "load the next prompt",
    skipped: "Skipped: that prompt goes to someone else.",
    gone: goneReason,
    reportWhat: "Choose what is wrong with the prompt.",
    reported: "Reported to the project's leads. That prompt is skipped: here is the next one.",
    relet: "You have this prompt again: carry on.",
    notYours: "This prompt is no longer yours.",
    leaseLost: (why) => `${why} Your draft is kept in this browser.`,
    leaseLapsed: () => "Time ran out on this prompt: send now to keep it if it is still free, or skip it.",
    leaseEnding: (left) => `This prompt goes back to the pool in ${left}: type or move the mouse to keep it.`,
  },
  showItem,
  onItemLeft: dropDraft,
});
const { show, notice, formError, withBusy, loadNext, sendReport } = page;

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

// --- The prompt and its guidelines ---------------------------------------------------------------------------------

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
  page.measureLease(item);
  page.renderPrompt(item);
  renderGuidelines(item.guidelines);
  if (!sameItem) {
    $("draft").value = loadDraft(item);
    page.clearItemActions();
    $("draft-state").textContent = $("draft").value ? "Draft restored from this browser." : "";
  }
  root.dataset.assignment = item.assignment_id;
  show("item");
  page.scrollPrompt(item);
  renderPreview();
  renderCounter();
  page.tick();
  $("draft").focus();
}

// --- Sending ---------------------------------------------------------------------------------------------------------

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

// --- Keyboard and wiring ------------------------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.isComposing) return;
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && state.screen === "item") {
    event.preventDefault();
    if ($("report-form").contains(event.target)) sendReport();
    else if (!event.repeat) submit();
    return;
  }
  if (event.key === "Escape" && isTyping(event.target)) page.leaveField(event);
});
$("draft").addEventListener("input", onDraftInput);
$("demonstration").addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});
page.start();
