// What the annotator's session pages share: the comparison page (annotate.js) and the writing page (write.js).
// Both are a shell over a session of the annotator API: the screens, the status bar and its clock, starting a
// session and the break after one, fetching the next item, skip and report, and keeping the item's lease while
// someone works on it live here once. Each page owns its state object and its item screen, and hands in what
// differs: the session kind, its words, how an item is shown, and its own hooks. The markup these rely on comes
// from the includes in frontend/templates/frontend/session/.

import { api, endpoints, serverNow } from "./api.js";
import { renderConversation, renderText } from "./render.js";

export const $ = (id) => document.getElementById(id);

export function duration(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

export function secondsUntil(iso) {
  return (Date.parse(iso) - serverNow()) / 1000;
}

/** The API call, with a network failure answered as status 0 instead of thrown. */
export async function call(method, path, body) {
  try {
    return await api(method, path, body);
  } catch {
    return { status: 0, data: {}, retryAfter: null };
  }
}

// The lease is renewed only while someone is at the page: an abandoned tab lets its item go back to the pool.
const IDLE_SECONDS = 180;
export const UNREACHABLE = "The server could not be reached. Check your connection and try again.";

/**
 * The session machinery of one page.
 *
 * root: the page's element (data-project-id, data-title); state: the page's state object, with at least session,
 * item, busy, screen, breakEndsAt, breakRetrying, doneTimer, noticeTimer, lastActivity, renewing and leaseLost
 * (and saved, while a page shows an earlier item in place of the leased one). sessionBody: what starting a session
 * sends. words: the page's texts (below). showItem(item): puts an item on the screen. onTick(): more to redraw each
 * second. refusals: { code: (response) => ... } for refusals the page handles itself. onSessionOver(): the session
 * ended while fetching (default: start a new one). onItemLeft(item): the item was skipped, reported or is gone.
 */
export function sessionPage({ root, state, sessionBody, words, showItem, onTick, refusals = {}, onSessionOver, onItemLeft }) {
  const projectId = root.dataset.projectId;

  // --- Screens and messages -----------------------------------------------------------------------------------

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

  // An answer the page cannot act on by itself: logged out, not a member, a refusal the page knows, or the unexpected.
  function handleUnexpected(response, what) {
    const code = response.data.code;
    if (response.status === 401 || code === "not_authenticated" || code === "authentication_failed") {
      show("logged-out");
    } else if (code === "not_member") {
      show("forbidden");
    } else if (Object.hasOwn(refusals, code)) {
      refusals[code](response);
    } else {
      const detail = response.data.detail ? ` ${response.data.detail}` : "";
      showError(`Could not ${what} (HTTP ${response.status}).${detail}`);
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

  // --- Status bar: progress and the session clock ---------------------------------------------------------------

  function renderStatus() {
    const session = state.session;
    $("progress").textContent = session ? `${session.tasks_done} / ${session.max_tasks} ${words.done}` : "";
    document.title = session ? `(${session.tasks_done}/${session.max_tasks}) ${root.dataset.title}` : root.dataset.title;
    tick();
  }

  function tick() {
    const clock = $("clock");
    if (state.session && state.screen === "item") {
      const left = secondsUntil(state.session.expires_at);
      clock.textContent = left > 0 ? `${duration(left)} left` : words.timeUp;
      clock.classList.toggle("low", left < 300);
      clock.hidden = false;
    } else {
      clock.hidden = true;
    }
    renderLease();
    onTick?.();
    if (state.screen === "break") {
      const left = (state.breakEndsAt - serverNow()) / 1000;
      $("break-countdown").textContent = duration(left);
      $("break-retry").disabled = left > 0 || state.breakRetrying;
      if (left <= 0 && !state.breakRetrying) startSession({ fromBreak: true });
    }
  }

  // --- The session ------------------------------------------------------------------------------------------------

  async function startSession({ fromBreak = false } = {}) {
    state.breakRetrying = fromBreak;
    if (!fromBreak) show("loading");
    const response = await call("POST", endpoints.sessionStart(projectId), sessionBody);
    state.breakRetrying = false;
    if (response.status === 200 || response.status === 201) {
      state.session = response.data;
      renderStatus();
      await loadNext();
    } else if (response.status === 429) {
      showBreak(response.data.retry_after ?? response.retryAfter ?? 60);
    } else if (response.status === 0) {
      if (fromBreak) state.breakEndsAt = serverNow() + 5000; // try again shortly
      else showError(UNREACHABLE);
    } else if (response.status === 404) {
      showError("This project no longer exists.");
    } else {
      handleUnexpected(response, "start a session");
    }
  }

  function showBreak(retryAfterSeconds) {
    $("break-done").textContent = words.breakDone?.(state.session) ?? "";
    state.item = null;
    state.breakEndsAt = serverNow() + Math.max(1, Number(retryAfterSeconds)) * 1000;
    show("break");
    renderStatus();
  }

  async function refreshSession() {
    if (!state.session) return;
    const response = await call("GET", endpoints.session(state.session.id));
    if (response.status === 200) state.session = response.data;
  }

  // --- Items --------------------------------------------------------------------------------------------------------

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
    } else if (response.status === 410 && onSessionOver) {
      await onSessionOver();
    } else if (response.status === 410 || response.status === 404) {
      state.session = null;
      await startSession();
    } else if (response.status === 0) {
      showError(UNREACHABLE);
    } else {
      handleUnexpected(response, words.loadNext);
    }
  }

  function showDone() {
    state.item = null;
    show("done");
    // New work may open while the annotator waits: look again every minute.
    state.doneTimer = setInterval(() => loadNext(), 60000);
  }

  // The leased item's prompt: a conversation as turns, or text.
  function renderPrompt(item) {
    const prompt = $("prompt");
    if (Array.isArray(item.messages)) {
      prompt.replaceChildren(renderConversation(item.messages));
      prompt.classList.add("conversation");
    } else {
      prompt.replaceChildren(renderText(item.prompt));
      prompt.classList.remove("conversation");
    }
  }

  // How long a lease runs, to renew it well before it lapses (a reload may bring a lease half used).
  function measureLease(item) {
    item.leaseSeconds = Math.max(Number(state.session?.lease_minutes) * 60 || secondsUntil(item.lease_expires_at), 30);
  }

  // Once the item screen shows: a conversation is read from its last turn, so it starts there.
  function scrollPrompt(item) {
    const prompt = $("prompt");
    prompt.scrollTop = Array.isArray(item.messages) ? prompt.scrollHeight : 0;
  }

  // A new item on the screen: no skip reason, no lost lease, no error and no open report left from the last one.
  function clearItemActions() {
    $("skip-reason").value = "";
    state.leaseLost = "";
    formError("");
    closeReport();
  }

  // --- Skip and report ------------------------------------------------------------------------------------------

  async function skip() {
    if (state.busy || state.screen !== "item" || !state.item || state.saved) return;
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
      onItemLeft?.(item);
      notice(response.status === 200 ? words.skipped : words.gone(response));
      await loadNext({ refresh: true });
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
      $("report-error").textContent = words.reportWhat;
      return;
    }
    await withBusy(async () => {
      const body = { kind, note: $("report-note").value.trim() };
      const response = await call("POST", endpoints.report(item.assignment_id), body);
      if (response.status === 200 || response.status === 201) {
        closeReport();
        onItemLeft?.(item);
        notice(words.reported);
        await loadNext({ refresh: true });
      } else if (response.status === 0) {
        $("report-error").textContent = "Not sent: the server could not be reached. Try again.";
      } else {
        $("report-error").textContent = response.data.detail || `Not sent (HTTP ${response.status}).`;
      }
    });
  }

  // Escape in a field leaves it; leaving the report form closes it.
  function leaveField(event) {
    event.preventDefault();
    event.target.blur();
    if ($("report-form").contains(event.target)) closeReport();
  }

  // --- Keeping the lease while someone works ------------------------------------------------------------------

  // The item whose lease the page keeps: the current one, also while an earlier one is on the screen.
  function leasedItem() {
    return state.saved ? state.saved.item : state.item;
  }

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
      if (response.data.relet) notice(words.relet);
    } else if (response.status >= 400 && response.status !== 401) {
      state.leaseLost = response.data.detail || words.notYours;
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
      lease.textContent = words.leaseLost(state.leaseLost);
    } else if (left <= 0) {
      lease.textContent = words.leaseLapsed();
    } else if (left < Math.min(60, item.leaseSeconds / 4)) {
      // Someone at the page renews well before this (maybeRenew): the warning is for someone idle.
      lease.textContent = words.leaseEnding(duration(left));
    } else {
      lease.textContent = "";
      return;
    }
    lease.classList.add("warn");
  }

  // --- Wiring -------------------------------------------------------------------------------------------------

  // The controls every session page has, the activity that keeps the lease, the clocks; then the first session.
  function start() {
    $("skip").addEventListener("click", () => skip());
    $("report-open").addEventListener("click", () => ($("report-form").hidden ? openReport() : closeReport()));
    $("report-cancel").addEventListener("click", () => closeReport());
    $("report-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sendReport();
    });
    // Activity that keeps the lease: keys, clicks, typing, scrolling anywhere (the texts scroll on their own), and
    // the mouse, counted at most every 5 s.
    for (const type of ["keydown", "pointerdown", "input", "wheel", "scroll"]) {
      document.addEventListener(type, noteActivity, { passive: true, capture: true });
    }
    let lastMove = 0;
    document.addEventListener("mousemove", () => {
      if (Date.now() - lastMove > 5000) {
        lastMove = Date.now();
        noteActivity();
      }
    }, { passive: true });
    $("break-retry").addEventListener("click", () => startSession({ fromBreak: true }));
    $("done-retry").addEventListener("click", () => loadNext());
    $("error-retry").addEventListener("click", () => startSession());
    setInterval(maybeRenew, 5000);
    setInterval(tick, 1000);
    startSession();
  }

  return {
    show, notice, formError, showError, handleUnexpected, withBusy, renderStatus, tick, startSession, showBreak,
    loadNext, measureLease, renderPrompt, scrollPrompt, clearItemActions, skip, openReport, closeReport, sendReport, leaveField,
    noteActivity, start,
  };
}
