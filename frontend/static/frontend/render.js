// Renders untrusted model text as DOM, safely. Every character of the input ends up in a text node: nothing
// is ever parsed as HTML, no attribute is taken from the text, and there are no links. What is understood is a small markdown subset —
// fenced code blocks, paragraphs with their line breaks, bullet and numbered lists, headings, quotes,
// **bold**, *italic*, `code` — and anything else (HTML, [links](...), images) stays literal text.

const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const LIST_ITEM = /^ {0,3}([-*+]|\d{1,9}[.)])[ \t]+(.*)$/;
const HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
// Spans are bounded in length and never cross a line, so hostile input cannot make this quadratic.
const INLINE = new RegExp(
  [
    "(`{1,3})([^`\\n]{1,500}?)\\1(?!`)", // 1, 2: code
    "\\*\\*(?=\\S)([^\\n]{0,500}?\\S)\\*\\*", // 3: bold
    "(?<![\\p{L}\\p{N}_])__(?=\\S)([^\\n]{0,500}?\\S)__(?![\\p{L}\\p{N}_])", // 4: bold
    "(?<!\\*)\\*(?=[^\\s*])([^*\\n]{0,500}?[^\\s*]|[^\\s*])\\*(?!\\*)", // 5: italic
    "(?<![\\p{L}\\p{N}_])_(?=[^\\s_])([^_\\n]{0,500}?[^\\s_]|[^\\s_])_(?![\\p{L}\\p{N}_])", // 6: italic
  ].join("|"),
  "gu",
);

function el(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

export function appendInline(parent, text, depth = 0) {
  if (depth > 2) {
    parent.append(document.createTextNode(text));
    return;
  }
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    let node;
    if (m[2] !== undefined) {
      node = el("code");
      node.textContent = m[2];
    } else if (m[3] !== undefined || m[4] !== undefined) {
      node = el("strong");
      appendInline(node, m[3] ?? m[4], depth + 1);
    } else {
      node = el("em");
      appendInline(node, m[5] ?? m[6], depth + 1);
    }
    parent.append(node);
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

function isFenceClose(line, fence) {
  const trimmed = line.trim();
  const marker = fence[0];
  return trimmed.length >= fence.length && [...trimmed].every((c) => c === marker);
}

function codeBlock(lines, info) {
  const pre = el("pre", "md-code");
  const language = info.trim().split(/\s+/)[0];
  // The language tag is shown as text, never used as a class or attribute value.
  if (language) {
    const tag = el("span", "md-code-lang");
    tag.textContent = language;
    pre.append(tag);
  }
  const code = el("code");
  code.textContent = lines.join("\n");
  pre.append(code);
  return pre;
}

function paragraph(lines) {
  const p = el("p", "md-p");
  appendInline(p, lines.join("\n"));
  return p;
}

function isBlockStart(line) {
  return FENCE_OPEN.test(line) || LIST_ITEM.test(line) || HEADING.test(line) || QUOTE.test(line);
}

/** Model text → a DocumentFragment of safe nodes. */
export function renderText(text) {
  const fragment = document.createDocumentFragment();
  const lines = String(text ?? "")
    .replace(/\r\n?/g, "\n")
    .split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(FENCE_OPEN);
    if (fence && !(fence[1][0] === "`" && fence[2].includes("`"))) {
      const body = [];
      i += 1;
      while (i < lines.length && !isFenceClose(lines[i], fence[1])) body.push(lines[i++]);
      i += 1; // the closing fence; an unclosed fence runs to the end of the text
      fragment.append(codeBlock(body, fence[2]));
      continue;
    }
    if (line.trim() === "") {
      i += 1;
      continue;
    }
    const heading = line.match(HEADING);
    if (heading) {
      const h = el("p", `md-h md-h${heading[1].length}`);
      appendInline(h, heading[2]);
      fragment.append(h);
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) quoted.push(lines[i++].match(QUOTE)[1]);
      const quote = el("blockquote", "md-quote");
      quote.append(renderText(quoted.join("\n")));
      fragment.append(quote);
      continue;
    }
    const first = line.match(LIST_ITEM);
    if (first) {
      const ordered = /\d/.test(first[1]);
      const list = el(ordered ? "ol" : "ul", "md-list");
      if (ordered) {
        const start = Number.parseInt(first[1], 10);
        if (start !== 1 && Number.isSafeInteger(start)) list.start = start;
      }
      let item = null;
      let itemLines = [];
      const flush = () => {
        if (item) appendInline(item, itemLines.join("\n"));
      };
      while (i < lines.length) {
        const m = lines[i].match(LIST_ITEM);
        if (m && /\d/.test(m[1]) === ordered) {
          flush();
          item = el("li");
          list.append(item);
          itemLines = [m[2]];
        } else if (lines[i].trim() !== "" && /^\s/.test(lines[i]) && !FENCE_OPEN.test(lines[i])) {
          itemLines.push(lines[i].trim()); // an indented continuation of the item
        } else {
          break;
        }
        i += 1;
      }
      flush();
      fragment.append(list);
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() !== "" && (para.length === 0 || !isBlockStart(lines[i]))) {
      para.push(lines[i++]);
    }
    fragment.append(paragraph(para));
  }
  return fragment;
}

const ROLE_LABELS = { user: "User", assistant: "Assistant", system: "System", tool: "Tool" };

function messageText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((part) => (typeof part === "string" ? part : (part?.text ?? ""))).join("\n");
  }
  return content == null ? "" : JSON.stringify(content, null, 2);
}

/** A conversation (the API's "messages") → turns, each labelled with its role as text. */
export function renderConversation(messages) {
  const fragment = document.createDocumentFragment();
  for (const message of messages) {
    const role = String(message?.role ?? "");
    const known = Object.hasOwn(ROLE_LABELS, role);
    const turn = el("div", `turn turn-${known ? role : "other"}`);
    const label = el("div", "turn-role");
    label.textContent = known ? ROLE_LABELS[role] : role || "Message";
    const body = el("div", "turn-body");
    body.append(renderText(messageText(message?.content)));
    turn.append(label, body);
    fragment.append(turn);
  }
  return fragment;
}
