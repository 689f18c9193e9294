// A form generated from a registered function's params_schema (the JSON
// Schema GET /api/v1/tasks/$functions serves), so running a function task
// does not start from a blank JSON box.
//
// Each top-level property becomes a field that fits its type: text for a
// string, a number box for integer and number (with the schema's minimum
// and maximum), a choice for an enum and for a boolean, and a small JSON
// box for arrays and objects. A required property is marked and checked
// before the request is sent; a default is shown as the placeholder and is
// what the server uses when the field is left blank, since a blank field is
// not sent. The server validates the params again either way: this form
// only saves a round trip and says what each field wants.

import {h} from './dom.js';

/** typeOf is the schema's type, ignoring the "null" of ["array", "null"]. */
function typeOf(p) {
  const t = p && p.type;
  if (Array.isArray(t)) return t.find(x => x !== 'null') || 'null';
  return t || (p && p.enum ? 'string' : '');
}

/** resolve follows a local "$ref": "#/$defs/Name" within the params schema. */
function resolve(root, p) {
  for (let i = 0; p && p.$ref && i < 10; i++) {
    const m = /^#\/\$defs\/(.+)$/.exec(p.$ref);
    p = m && root.$defs ? root.$defs[m[1]] : null;
  }
  return p || {};
}

/** generatable reports whether a schema describes named params (a struct,
 * or no params at all), as opposed to "any object" (map[string]any), which
 * only raw JSON fits. */
export function generatable(schema) {
  if (!schema || typeof schema !== 'object') return false;
  const named = schema.properties && Object.keys(schema.properties).length > 0;
  return Boolean(named || schema.additionalProperties === false);
}

function hint(type, p) {
  const bits = [];
  if (p.enum) bits.push('one of ' + p.enum.join(', '));
  else if (type === 'integer') bits.push('integer');
  else if (type === 'number') bits.push('number');
  else if (type === 'array') bits.push('JSON array');
  else if (type === 'object') bits.push('JSON object');
  else if (type) bits.push(type);
  if (p.minimum !== undefined) bits.push(`≥ ${p.minimum}`);
  if (p.maximum !== undefined) bits.push(`≤ ${p.maximum}`);
  return bits.join(', ');
}

/**
 * schemaForm builds the fields for schema. idPrefix makes the inputs' ids
 * unique on the page. It returns {el, read(), set(values)}: read() returns
 * the params object of the non-blank fields, or throws an Error naming the
 * field to fix; set() fills the fields from a params object (values for
 * names the schema lacks are returned, so a caller can keep them).
 */
export function schemaForm(schema, {idPrefix}) {
  const required = new Set(schema.required || []);
  const fields = [];
  // Required parameters first, then the rest, each group by name (the
  // schema's JSON has lost the Go struct's field order).
  const names = Object.keys(schema.properties || {}).sort((a, b) => (required.has(b) - required.has(a)) || a.localeCompare(b));
  for (const name of names) {
    const raw = schema.properties[name];
    const p = resolve(schema, raw);
    const type = typeOf(p);
    const id = `${idPrefix}-${name}`;
    const isReq = required.has(name);
    const hasDefault = 'default' in p;
    const placeholder = hasDefault ? `${JSON.stringify(p.default)} (default)` : (isReq ? 'required' : 'optional');
    let input;
    if (p.enum || type === 'boolean') {
      const choices = p.enum || [true, false];
      input = h('select', {id, name},
        h('option', {value: ''}, hasDefault ? `— default: ${JSON.stringify(p.default)} —` : (isReq ? '— choose —' : '— not set —')),
        choices.map(v => h('option', {value: JSON.stringify(v)}, typeof v === 'string' ? v : JSON.stringify(v))));
    } else if (type === 'integer' || type === 'number') {
      input = h('input', {id, name, type: 'number', step: type === 'integer' ? '1' : 'any', placeholder,
        min: p.minimum !== undefined ? String(p.minimum) : null, max: p.maximum !== undefined ? String(p.maximum) : null});
    } else if (type === 'string') {
      input = h('input', {id, name, type: 'text', placeholder, autocomplete: 'off', spellcheck: 'false'});
    } else {
      input = h('textarea', {id, name, rows: 2, spellcheck: 'false', placeholder: hasDefault ? `${JSON.stringify(p.default)} (default)` : (type === 'array' ? '["a", "b"]' : '{"key": "value"}')});
    }
    if (isReq) input.required = true;
    input.dataset.type = type || 'json';
    const label = h('label', {for: id, class: 'field'},
      h('span', {class: 'field-name'}, h('code', {}, name), isReq ? h('span', {class: 'req', title: 'required'}, ' *') : null,
        h('span', {class: 'muted'}, ` ${hint(type, p)}`)),
      input,
      p.description ? h('span', {class: 'field-doc muted'}, p.description) : null);
    fields.push({name, type, p, input, isReq, label});
  }

  // read({lenient: true}) skips what is missing or invalid instead of
  // throwing: for carrying values over when the form is replaced.
  function read({lenient = false} = {}) {
    const out = {};
    for (const f of fields) {
      const v = f.input.value.trim();
      if (v === '') {
        if (f.isReq && !lenient) throw fieldError(f, `${f.name} is required${f.p.description ? ` (${f.p.description})` : ''}`);
        continue;
      }
      if (f.input.tagName === 'SELECT') {
        out[f.name] = JSON.parse(v);
      } else if (f.type === 'integer' || f.type === 'number') {
        const n = Number(v);
        if (!Number.isFinite(n) || (f.type === 'integer' && !Number.isInteger(n))) {
          if (lenient) continue;
          throw fieldError(f, `${f.name} must be ${f.type === 'integer' ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`);
        }
        if (lenient) { out[f.name] = n; continue; }
        if (f.p.minimum !== undefined && n < f.p.minimum) throw fieldError(f, `${f.name} must be at least ${f.p.minimum}`);
        if (f.p.maximum !== undefined && n > f.p.maximum) throw fieldError(f, `${f.name} must be at most ${f.p.maximum}`);
        out[f.name] = n;
      } else if (f.type === 'string') {
        out[f.name] = f.input.value; // as typed: spaces may matter
      } else {
        try {
          out[f.name] = JSON.parse(v);
        } catch (e) {
          if (lenient) continue;
          throw fieldError(f, `${f.name} is not valid JSON: ${e.message}`);
        }
      }
    }
    return out;
  }

  function set(values) {
    const rest = {};
    const byName = new Map(fields.map(f => [f.name, f]));
    for (const f of fields) f.input.value = '';
    for (const [k, v] of Object.entries(values || {})) {
      const f = byName.get(k);
      if (!f) {
        rest[k] = v;
      } else if (f.input.tagName === 'SELECT') {
        f.input.value = JSON.stringify(v);
      } else if (f.type === 'string' && typeof v === 'string') {
        f.input.value = v;
      } else if ((f.type === 'integer' || f.type === 'number') && typeof v === 'number') {
        f.input.value = String(v);
      } else {
        f.input.value = JSON.stringify(v);
      }
    }
    return rest;
  }

  const el = h('div', {class: 'schema-form', id: `${idPrefix}-fields`},
    fields.length ? fields.map(f => f.label) : h('p', {class: 'muted'}, 'This function takes no parameters.'));
  return {el, read, set};
}

function fieldError(f, message) {
  const err = new Error(message);
  err.problem = {detail: message};
  f.input.setAttribute('aria-invalid', 'true');
  f.input.addEventListener('input', () => f.input.removeAttribute('aria-invalid'), {once: true});
  f.input.focus();
  return err;
}
