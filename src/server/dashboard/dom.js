// Building the page. Every value from the API goes in as text (a text node
// or textContent), never as HTML: run inputs and outputs are user data.

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name === 'text') {
      el.textContent = String(value);
    } else if (name === 'value' && 'value' in el) {
      el.value = String(value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: `h('td', {class: 'x'}, 'text', otherNode)`. */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return fill(el, {}, children);
}

/** An RFC 3339 time shown in UTC to the millisecond, or '' . */
export function time(text) {
  if (!text) return '';
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) return String(text);
  return d.toISOString().replace('T', ' ').replace(/\.(\d{3})Z$/, '.$1Z');
}

/** Milliseconds as a short duration. */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '';
  if (ms === 0) return '0 ms';
  if (ms < 1) return `${ms.toFixed(3)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** A number with thousands separators. */
export function count(n) {
  return n === null || n === undefined ? '' : Number(n).toLocaleString('en-US');
}

/** The status badge of a run; the class comes from a fixed list. */
export function statusBadge(status) {
  const known = ['running', 'succeeded', 'failed'];
  const cls = known.includes(status) ? `status status-${status}` : 'status';
  return h('span', {class: cls}, status ?? '');
}

/** JSON as indented text (for a <pre>). */
export function json(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** A short one-line preview of a JSON value. */
export function preview(value, max = 80) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text === undefined) return '';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Micros since the epoch (an event's timestamp) as RFC 3339. */
export function fromMicros(micros) {
  if (typeof micros !== 'number') return null;
  const fraction = String(micros % 1_000_000).padStart(6, '0');
  return new Date(Math.floor(micros / 1000)).toISOString().replace(/\.\d{3}Z$/, `.${fraction}Z`);
}

/** Text cut to `max` characters. */
export function clip(text, max) {
  const value = String(text ?? '');
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}
