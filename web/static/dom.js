// DOM and formatting helpers shared by the views.
//
// Everything the server sends (commands, log lines, params, errors) is
// untrusted text: it is only ever put into the page as text nodes or
// attribute values, never as HTML, so a task named "<img onerror=…>" shows
// up as exactly that string.

/**
 * h builds an element: h('a', {href: '#/x', class: 'y', onclick: fn}, 'text', child…).
 * Props starting with "on" and holding a function become event listeners;
 * null, undefined and false props and children are skipped; arrays of
 * children are flattened; strings and numbers become text nodes.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'selected') {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
}

/** replace empties el and fills it with children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** short is the one short form of an id the console shows everywhere: the
 * last 8 characters of the ULID after an ellipsis. The first characters are
 * the timestamp and look alike for everything made on the same day; the
 * last ones are random. The search on the jobs page takes this form too. */
export function short(id) {
  return id ? '…' + id.slice(-8) : '';
}

/** idText shows an id in its short form, with the full id on hover; it
 * never wraps (the .id class), so an id is never broken across lines. */
export function idText(id) {
  return h('span', {class: 'id', title: id}, short(id));
}

/** idLink links to a resource and shows its short id, with the full id on hover. */
export function idLink(href, id) {
  return h('a', {href, class: 'id', title: id}, short(id));
}

/**
 * grid builds a table that is a table on a wide screen and a list of cards
 * on a phone (style.css, under 640 px): each cell carries its column's name
 * in data-label, which the card layout shows in front of the value. cols
 * are column names ('' for an unlabelled actions column); rows are
 * {attrs, cells: [td contents…], tds: [extra td attributes…]}.
 */
export function grid(id, cols, rows) {
  return h('table', {class: 'grid', id},
    h('thead', {}, h('tr', {}, cols.map(c => h('th', {}, c)))),
    h('tbody', {}, rows.map(r => r instanceof Node ? r : h('tr', r.attrs || {},
      r.cells.map((c, i) => h('td', {...((r.tds && r.tds[i]) || {}), 'data-label': cols[i] || null}, c))))));
}

/** progressBar shows a job's reported progress: a bar, "current/total", and
 * the message as a tooltip and, when room allows, as text. */
export function progressBar(p, {withMessage = false} = {}) {
  if (!p) return null;
  const total = p.total > 0 ? p.total : 0;
  return h('span', {class: 'progress', title: p.message || null},
    h('progress', {max: String(total || 1), value: total ? String(Math.min(p.current || 0, total)) : null}),
    ` ${p.current || 0}/${total || '?'}`,
    withMessage && p.message ? h('span', {class: 'muted'}, ` — ${p.message}`) : null);
}

const SVG = 'http://www.w3.org/2000/svg';

/** svg builds an SVG element, like h (attributes only, text children). */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== false) el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** badge shows a job status, or a reason, as a coloured pill. */
export function badge(text, kind = text) {
  return h('span', {class: `badge badge-${kind}`}, text);
}

export const TERMINAL = new Set(['completed', 'failed', 'canceled']);

/** fmtTime renders an RFC 3339 time in the browser's locale, keeping the
 * exact value in the tooltip. */
export function fmtTime(iso) {
  if (!iso) return h('span', {class: 'muted'}, '—');
  const d = new Date(iso);
  return h('time', {datetime: iso, title: iso}, d.toLocaleString());
}

/** ago is a coarse "how long ago" for tables, where the exact time is noise. */
export function ago(iso) {
  if (!iso) return h('span', {class: 'muted'}, '—');
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  return h('time', {datetime: iso, title: new Date(iso).toLocaleString()}, `${human(s)} ago`);
}

/** duration between two RFC 3339 times; the end defaults to now (a running job). */
export function duration(from, to) {
  if (!from) return '—';
  const end = to ? new Date(to).getTime() : Date.now();
  return human((end - new Date(from).getTime()) / 1000);
}

function human(s) {
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** compact renders a small JSON value on one line for table cells. */
export function compact(v) {
  if (v === null || v === undefined) return h('span', {class: 'muted'}, '—');
  const s = JSON.stringify(v);
  if (s === '{}') return h('span', {class: 'muted'}, '{}');
  return h('code', {class: 'compact', title: JSON.stringify(v, null, 2)}, s.length > 80 ? s.slice(0, 77) + '…' : s);
}

/**
 * jsonView pretty-prints a JSON value with light syntax colouring. It walks
 * the value instead of regex-colouring a string, so text inside strings can
 * never be mistaken for markup.
 */
export function jsonView(v) {
  const pre = h('pre', {class: 'json'});
  const out = [];
  const walk = (x, indent) => {
    const pad = '  '.repeat(indent);
    if (x === null) out.push(h('span', {class: 'j-null'}, 'null'));
    else if (typeof x === 'string') out.push(h('span', {class: 'j-str'}, JSON.stringify(x)));
    else if (typeof x === 'number') out.push(h('span', {class: 'j-num'}, String(x)));
    else if (typeof x === 'boolean') out.push(h('span', {class: 'j-bool'}, String(x)));
    else if (Array.isArray(x)) {
      if (x.length === 0) { out.push('[]'); return; }
      out.push('[\n');
      x.forEach((e, i) => {
        out.push(pad + '  ');
        walk(e, indent + 1);
        out.push(i < x.length - 1 ? ',\n' : '\n');
      });
      out.push(pad + ']');
    } else {
      const keys = Object.keys(x);
      if (keys.length === 0) { out.push('{}'); return; }
      out.push('{\n');
      keys.forEach((k, i) => {
        out.push(pad + '  ', h('span', {class: 'j-key'}, JSON.stringify(k)), ': ');
        walk(x[k], indent + 1);
        out.push(i < keys.length - 1 ? ',\n' : '\n');
      });
      out.push(pad + '}');
    }
  };
  walk(v === undefined ? null : v, 0);
  append(pre, out);
  return pre;
}

/**
 * problemBox shows an API error: the problem's detail first (it says what
 * to fix), then each invalid field as "location: message".
 */
export function problemBox(err) {
  const p = err && err.problem;
  const detail = (p && (p.detail || p.title)) || (err && err.message) || String(err);
  const fields = (p && Array.isArray(p.errors)) ? p.errors : [];
  return h('div', {class: 'problem', role: 'alert'},
    h('strong', {}, detail),
    fields.length ? h('ul', {}, fields.map(f => h('li', {}, f.location ? h('code', {}, f.location) : null, f.location ? ': ' : '', f.message))) : null);
}

/** parseJSONField reads an optional JSON-object textarea; blank means "not given". */
export function parseJSONField(value, label) {
  const s = value.trim();
  if (!s) return undefined;
  let v;
  try {
    v = JSON.parse(s);
  } catch (e) {
    throw new Error(`${label} is not valid JSON: ${e.message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new Error(`${label} must be a JSON object, like {"key": "value"}`);
  }
  return v;
}

/** until is a coarse "how long from now" for a time to come ("in 4 min");
 * a time already past is "due" (the page has not caught up with it yet). */
export function until(iso) {
  const s = (new Date(iso).getTime() - Date.now()) / 1000;
  return s <= 0 ? 'due' : `in ${human(s)}`;
}

/** fmtShort renders a time compactly: the time of day for today, else the
 * date and time, in the browser's locale; the exact value is the tooltip. */
export function fmtShort(iso) {
  if (!iso) return h('span', {class: 'muted'}, '—');
  const d = new Date(iso);
  const today = d.toDateString() === new Date().toDateString();
  return h('time', {datetime: iso, title: d.toLocaleString()}, today ? d.toLocaleTimeString() : d.toLocaleString());
}

/**
 * markFields shows a validation problem at the fields it names: each of
 * the problem's errors whose location (body.schedule, body.timezone, …) is
 * in inputs marks that input invalid and puts the message under it, until
 * the input is changed. It returns how many errors it placed; the caller
 * still shows the problem as a whole (problemBox), which lists them all.
 */
export function markFields(err, inputs) {
  const p = err && err.problem;
  const list = (p && Array.isArray(p.errors)) ? p.errors : [];
  let placed = 0;
  for (const e of list) {
    const input = inputs[e.location];
    if (!input) continue;
    const msg = h('span', {class: 'field-error', role: 'alert'}, e.message);
    input.setAttribute('aria-invalid', 'true');
    (input.closest('label') || input.parentNode).append(msg);
    input.addEventListener('input', () => {
      input.removeAttribute('aria-invalid');
      msg.remove();
    }, {once: true});
    if (placed === 0) input.focus();
    placed++;
  }
  return placed;
}

/** clearFieldErrors removes what markFields showed inside root. */
export function clearFieldErrors(root) {
  for (const m of root.querySelectorAll('.field-error')) m.remove();
  for (const i of root.querySelectorAll('[aria-invalid="true"]')) i.removeAttribute('aria-invalid');
}
