// The annotator page's actions besides judging: skip, report, change the last judgment within the window, and
// keep the item's lease alive while someone works on it. annotate.js owns the state and the screen; it hands in
// what these need.

import { endpoints, serverNow } from "./api.js";

export function annotatorActions({ state, root, $, call, notice, formError, withBusy, loadNext, showItem, renderSelection, duration, secondsUntil, skipReason, show, choiceName, leasedItem }) {
  // --- Skip and report ------------------------------------------------------------------------------------

  async function skip() {
    if (state.busy || state.screen !== "item" || !state.item || state.saved) return;
    const item = state.item;
    await withBusy(async () => {
      const reason = $("skip-reason").value.trim();
      const response = await call("POST", endpoints.skip(item.assignment_id), reason ? { reason } : {});
      if (response.status === 200) {
        notice("Skipped: that item goes to someone else, and you will not see it again.");
        await loadNext({ refresh: true });
      } else if (response.status === 0) {
        formError("Not skipped: the server could not be reached. Try again.");
      } else if (response.status === 401) {
        show("logged-out");
      } else {
        notice(skipReason(response));
        await loadNext({ refresh: true });
      }
    });
  }

  function openReport() {
    if (state.screen !== "item" || !state.item || state.saved) return;
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
      $("report-error").textContent = "Choose what is wrong with the item.";
      return;
    }
    await withBusy(async () => {
      const body = { kind, note: $("report-note").value.trim() };
      const response = await call("POST", endpoints.report(item.assignment_id), body);
      if (response.status === 200 || response.status === 201) {
        closeReport();
        notice("Reported to the project's leads. That item is skipped: here is the next one.");
        await loadNext({ refresh: true });
      } else if (response.status === 0) {
        $("report-error").textContent = "Not sent: the server could not be reached. Try again.";
      } else {
        $("report-error").textContent = response.data.detail || `Not sent (HTTP ${response.status}).`;
      }
    });
  }

  // --- Changing the last judgment -------------------------------------------------------------------------

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

  // --- Keeping the lease while the annotator works ---------------------------------------------------------

  // Renewed only while someone is at the page: an abandoned tab lets its item go back to the pool.
  const IDLE_SECONDS = 180;

  function noteActivity() {
    state.lastActivity = Date.now();
    maybeRenew();
  }

  function maybeRenew() {
    const item = leasedItem();
    if (!item || state.renewing || state.screen !== "item" || state.leaseLost) return;
    if ((Date.now() - state.lastActivity) / 1000 > IDLE_SECONDS) return;
    // Well before it lapses: half a lease ahead, at most two minutes.
    if (secondsUntil(item.lease_expires_at) > Math.min(120, item.leaseSeconds / 2)) return;
    renew(item);
  }

  async function renew(item) {
    state.renewing = true;
    const response = await call("POST", endpoints.renew(item.assignment_id));
    state.renewing = false;
    if (response.status === 200) {
      item.lease_expires_at = response.data.lease_expires_at;
      if (response.data.relet) notice("You have this item again: carry on.");
    } else if (response.status >= 400 && response.status !== 401) {
      state.leaseLost = response.data.detail || "This item is no longer yours.";
    }
    renderLease();
  }

  function renderLease() {
    const lease = $("lease");
    const item = leasedItem();
    lease.classList.remove("warn");
    if (!item || state.screen !== "item") {
      lease.textContent = "";
      return;
    }
    const left = secondsUntil(item.lease_expires_at);
    if (state.leaseLost) {
      lease.textContent = `${state.leaseLost} Press Enter for the next item.`;
    } else if (left <= 0) {
      lease.textContent = state.choice
        ? "Time ran out on this item, but your pick is kept: press Enter to send it (it counts if the item is still free)."
        : "Time ran out on this item: press any key to try to keep it, or Enter for the next one.";
    } else if (left < Math.min(60, item.leaseSeconds / 4)) {
      // Someone at the page renews well before this (maybeRenew): the warning is for an idle annotator.
      lease.textContent = `This item goes back to the pool in ${duration(left)}: press a key or move the mouse to keep it.`;
    } else {
      lease.textContent = "";
      return;
    }
    lease.classList.add("warn");
  }

  return { skip, openReport, closeReport, sendReport, rememberLast, renderLast, openRevision, closeRevision, submitRevision, noteActivity, maybeRenew, renderLease };
}
