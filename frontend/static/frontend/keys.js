// Keyboard helpers shared by the pages that take single-key shortcuts (annotate.js, write.js, review.js).

/** Whether a key pressed on this element is typing (a text field, a select, editable content), not a shortcut. */
export function isTyping(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}
