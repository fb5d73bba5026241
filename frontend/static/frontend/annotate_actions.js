// The annotator page's one action besides judging: changing the last judgment within the window. annotate.js
// owns the state and the screen; it hands in what this needs. Skip, report and keeping the lease are the session
// pages' own (session_page.js).

import { endpoints, serverNow } from "./api.js";
import { $, call, duration } from "./session_page.js";

export function annotatorActions({ state, root, notice, formError, withBusy, showItem, renderSelection, closeReport, choiceName }) {
  function rememberLast(judgment, item, body) {
    const seconds = Number(state.session?.revise_window_seconds) || 0;
    const made = Date.parse(judgment.created_at) || serverNow();
    state.last = seconds > 0 ? { id: judgment.id, item, ...body, until: made + seconds * 1000 } : null;
    renderLast();
  }

  function lastSecondsLeft() {
    return state.last ? (state.last.until - serverNow()) / 1000 : 0;
  }

  function renderLast() {
    const bar = $("last-judgment");
    const left = lastSecondsLeft();
    if (!state.last || left <= 0 || state.saved || state.screen !== "item") {
      bar.hidden = true;
      if (state.last && left <= 0) state.last = null;
      return;
    }
    $("last-text").textContent = `Last judgment: ${choiceName(state.last.choice)}${state.last.choice === "left" || state.last.choice === "right" ? " is better" : ""}. You can change it for ${duration(left)}.`;
    bar.hidden = false;
  }

  function openRevision() {
    if (state.busy || state.screen !== "item" || state.saved || lastSecondsLeft() <= 0) return;
    const last = state.last;
    state.saved = {
      item: state.item,
      choice: state.choice,
      dimensions: state.dimensions,
      justification: $("justification").value,
    };
    closeReport();
    showItem(last.item);
    state.choice = last.choice;
    state.dimensions = { ...last.dimensions };
    $("justification").value = last.justification;
    root.dataset.mode = "revising";
    $("revise-banner").hidden = false;
    renderSelection();
    renderLast();
  }

  function closeRevision() {
    const saved = state.saved;
    if (!saved) return;
    state.saved = null;
    delete root.dataset.mode;
    $("revise-banner").hidden = true;
    state.item = null;
    showItem(saved.item);
    state.choice = saved.choice;
    state.dimensions = saved.dimensions;
    $("justification").value = saved.justification;
    renderSelection();
    renderLast();
  }

  async function submitRevision() {
    const last = state.last;
    if (!state.choice) {
      formError("Pick a response first.");
      return;
    }
    const body = { choice: state.choice, dimensions: { ...state.dimensions }, justification: $("justification").value.trim() };
    await withBusy(async () => {
      const response = await call("POST", endpoints.revision(last.id), body);
      if (response.status === 200 || response.status === 201) {
        Object.assign(last, body);
        notice(`Changed: your last judgment is now “${choiceName(body.choice)}${body.choice === "left" || body.choice === "right" ? " is better" : ""}”.`);
        closeRevision();
      } else if (response.status === 400) {
        formError(response.data.detail || "The server did not accept this change.");
      } else if (response.status === 0) {
        formError("Not changed: the server could not be reached. Press Enter to try again.");
      } else {
        state.last = null;
        notice(`Not changed: ${response.data.detail || `HTTP ${response.status}`}`);
        closeRevision();
      }
    });
  }

  return { rememberLast, renderLast, openRevision, closeRevision, submitRevision };
}
