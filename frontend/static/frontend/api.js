// The annotator API over fetch, with the session cookie and the CSRF token. Answers are returned, not thrown:
// the page decides what each status means. Only a network failure throws.

const API_ROOT = "/api/v1/";

function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "csrftoken") return decodeURIComponent(rest.join("="));
  }
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : "";
}

// The server's clock minus ours, from the Date header; the session clock and countdowns use server time.
let skewMs = 0;

export function serverNow() {
  return Date.now() + skewMs;
}

function noteServerDate(response, sentAt) {
  const header = response.headers.get("Date");
  const server = header ? Date.parse(header) : NaN;
  if (Number.isNaN(server)) return;
  const local = (sentAt + Date.now()) / 2;
  const diff = server - local;
  // The header has one-second resolution: only a clearly wrong local clock is corrected.
  skewMs = Math.abs(diff) > 2000 ? diff : 0;
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (method !== "GET") {
    headers["X-CSRFToken"] = csrfToken();
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  const sentAt = Date.now();
  const response = await fetch(API_ROOT + path, init);
  noteServerDate(response, sentAt);
  let data = null;
  const type = response.headers.get("Content-Type") || "";
  if (response.status !== 204 && type.includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  return {
    status: response.status,
    data: data || {},
    retryAfter: Number(response.headers.get("Retry-After")) || null,
  };
}

export const endpoints = {
  sessionStart: (projectId) => `projects/${encodeURIComponent(projectId)}/sessions/`,
  session: (sessionId) => `sessions/${encodeURIComponent(sessionId)}/`,
  next: (sessionId) => `sessions/${encodeURIComponent(sessionId)}/next/`,
  judgment: (assignmentId) => `assignments/${encodeURIComponent(assignmentId)}/judgment/`,
  skip: (assignmentId) => `assignments/${encodeURIComponent(assignmentId)}/skip/`,
  report: (assignmentId) => `assignments/${encodeURIComponent(assignmentId)}/report/`,
  renew: (assignmentId) => `assignments/${encodeURIComponent(assignmentId)}/renew/`,
  revision: (judgmentId) => `judgments/${encodeURIComponent(judgmentId)}/revision/`,
};
