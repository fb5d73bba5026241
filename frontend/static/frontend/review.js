// Keyboard use of the lead's review queue (frontend/views_demonstrations.py). The page works without this file: each
// review is a plain form. Here: j / k move between demonstrations, a accepts, e edits, r goes to the reason;
// Ctrl (or Cmd) + Enter in the editor accepts with the edits, Enter in the reason rejects, Escape leaves a field.
// The Accept button says "Accept with edits" while the editor differs from the text as written.

import { isTyping } from "./keys.js";

const cards = [...document.querySelectorAll("article.demonstration")];
let current = -1;

function focusCard(index) {
  if (!cards.length) return;
  current = Math.max(0, Math.min(cards.length - 1, index));
  for (const [i, card] of cards.entries()) card.classList.toggle("current", i === current);
  cards[current].focus();
  cards[current].scrollIntoView({ block: "nearest" });
}

function submit(card, decision) {
  const form = card.querySelector("form.review-form");
  if (!form) return;
  const button = form.querySelector(`button[value="${decision}"]`);
  if (decision === "reject") {
    const reason = form.querySelector("input.reason");
    if (!reason.value.trim()) {
      reason.setCustomValidity("Say why it is rejected.");
      reason.reportValidity();
      reason.focus();
      return;
    }
  }
  form.requestSubmit(button);
}

function normalised(text) {
  return text.replace(/\r\n/g, "\n");
}

for (const [index, card] of cards.entries()) {
  card.addEventListener("focusin", () => {
    current = index;
    for (const [i, other] of cards.entries()) other.classList.toggle("current", i === index);
  });
  const editor = card.querySelector("textarea.editor");
  const reason = card.querySelector("input.reason");
  const accept = card.querySelector('button[value="accept"]');
  if (editor && accept) {
    const original = normalised(editor.dataset.original || "");
    editor.addEventListener("input", () => {
      const edited = normalised(editor.value) !== original;
      editor.classList.toggle("edited", edited);
      accept.textContent = edited ? "Accept with edits" : "Accept";
    });
    editor.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        submit(card, "accept");
      }
    });
  }
  if (reason) {
    reason.addEventListener("input", () => reason.setCustomValidity(""));
    reason.addEventListener("keydown", (event) => {
      // Enter in a text input would submit with the form's first button (Accept): here it rejects.
      if (event.key === "Enter") {
        event.preventDefault();
        submit(card, "reject");
      }
    });
  }
  const rejectButton = card.querySelector('button[value="reject"]');
  if (rejectButton && reason) {
    rejectButton.addEventListener("click", (event) => {
      if (!reason.value.trim()) {
        event.preventDefault();
        submit(card, "reject");
      }
    });
  }
}

document.addEventListener("keydown", (event) => {
  const target = event.target;
  const typing = isTyping(target);
  if (event.key === "Escape" && typing) {
    target.blur();
    if (current >= 0) focusCard(current);
    return;
  }
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  const card = cards[current];
  switch (event.key) {
    case "j":
      focusCard(current + 1);
      break;
    case "k":
      focusCard(current - 1);
      break;
    case "a":
      if (card) submit(card, "accept");
      break;
    case "e":
      if (card) card.querySelector("textarea.editor")?.focus();
      break;
    case "r":
      if (card) card.querySelector("input.reason")?.focus();
      break;
    default:
      return;
  }
  event.preventDefault();
});

if (cards.length) focusCard(0);
