// The tasks view: the task table with its actions (including an edit form
// for a task's schedule and limits), the create form, the registered
// functions and the orphaned tasks.
//
// Each task's schedule and next run are in the table; the next run is
// kept current in place (see refreshNextRuns), without re-rendering the
// rows, so an open "Run with…" or edit form is not lost to a refresh.
//
// Function tasks get a form generated from the function's params_schema
// (schemaform.js) wherever params are entered — creating a task, and "Run
// with…" — with raw JSON one click away for what a form cannot say.

import {api, get, items} from './api.js';
import {badge, clearFieldErrors, compact, grid, h, idText, jsonView, markFields, parseJSONField, problemBox, replace, until} from './dom.js';
import {limitsCell, nextRun, scheduleCell, scheduleFields, suggestions} from './schedule.js';
import {generatable, schemaForm} from './schemaform.js';

// How often the next-run cells are looked at: their "in 4 min" is redrawn,
// and when a next run has come the tasks are read again for the new one.
const NEXT_RUN_TICK_MS = 5000;

export async function tasksView(root, {signal}) {
  const tableBox = h('div', {class: 'table-box'}, h('p', {class: 'muted'}, 'Loading tasks…'));
  const functionsBox = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const orphansBox = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  let functions = new Map(); // name → FunctionInfo
  const form = createForm(() => refresh());

  replace(root,
    suggestions(),
    h('h1', {}, 'Tasks'),
    h('section', {class: 'card'}, h('h2', {}, 'New task'), form.el),
    h('section', {class: 'card'},
      h('div', {class: 'card-head'}, h('h2', {}, 'All tasks'), h('button', {type: 'button', class: 'secondary', onclick: () => refresh()}, 'Refresh')),
      tableBox),
    h('section', {class: 'card'}, h('h2', {}, 'Registered functions'),
      h('p', {class: 'muted'}, 'Go functions this server can run as function tasks. A task whose command is one of these names runs it; anything else runs as a shell command.'),
      functionsBox),
    h('section', {class: 'card'}, h('h2', {}, 'Orphaned tasks'),
      h('p', {class: 'muted'}, 'Enabled tasks that no job has run (no_job), and function tasks whose function this server does not have (function_not_registered).'),
      orphansBox));

  async function refresh() {
    await Promise.all([loadTasks(), loadOrphans()]);
  }

  // refreshNextRuns keeps the next-run cells true: "in 4 min" counts down,
  // and once a next run has passed the tasks are read again and only those
  // cells are redrawn.
  async function refreshNextRuns() {
    if (document.hidden) return;
    const cells = [...tableBox.querySelectorAll('td.next-run[data-next]')];
    if (cells.some(c => Date.parse(c.dataset.next) <= Date.now())) {
      try {
        for (const t of items(await get('tasks', {signal}))) {
          const cell = tableBox.querySelector(`tr[data-task-id="${t.id}"] td.next-run`);
          if (!cell) continue;
          replace(cell, nextRun(t));
          if (t.next_fire_at) cell.dataset.next = t.next_fire_at;
          else delete cell.dataset.next;
        }
      } catch { /* the next tick tries again; the table shows errors on refresh */ }
      return;
    }
    for (const c of cells) {
      const u = c.querySelector('.until');
      if (u) u.textContent = until(c.dataset.next);
    }
  }
  const ticker = setInterval(refreshNextRuns, NEXT_RUN_TICK_MS);
  signal.addEventListener('abort', () => clearInterval(ticker));

  async function loadTasks() {
    try {
      const tasks = items(await get('tasks', {signal}));
      replace(tableBox, taskTable(tasks, functions, refresh));
    } catch (err) {
      if (!signal.aborted) replace(tableBox, problemBox(err));
    }
  }

  async function loadOrphans() {
    try {
      const body = await get('tasks/$orphaned', {signal});
      const list = (body && body.orphaned_tasks) || [];
      replace(orphansBox, list.length === 0 ? h('p', {class: 'muted'}, 'None.') :
        h('div', {class: 'table-box'}, grid('orphan-table', ['Task', 'Command', 'Type', 'Reason'], list.map(t => ({
          cells: [idText(t.id), h('code', {}, t.command), t.type, badge(t.reason, 'reason')],
          tds: [null, {class: 'command'}],
        })))));
    } catch (err) {
      if (!signal.aborted) replace(orphansBox, problemBox(err));
    }
  }

  async function loadFunctions() {
    try {
      const fns = (await get('tasks/$functions', {signal})) || [];
      functions = new Map(fns.map(f => [f.name, f]));
      form.setFunctions(functions);
      replace(functionsBox, fns.length === 0 ? h('p', {class: 'muted'}, 'This server has no registered functions: tasks run shell commands.') :
        h('div', {class: 'table-box'}, grid('function-table', ['Name', 'Description', 'Injects', 'Parameters', ''], fns.map(f => ({
          attrs: {'data-function': f.name},
          cells: [
            h('code', {}, f.name),
            f.description || h('span', {class: 'muted'}, '—'),
            (f.injects || []).length ? f.injects.join(', ') : h('span', {class: 'muted'}, '—'),
            schemaSummary(f.params_schema),
            h('button', {type: 'button', class: 'secondary', 'data-action': 'use', onclick: () => form.prefill(f)}, 'Use'),
          ],
          tds: [null, null, null, null, {class: 'actions'}],
        })))));
    } catch (err) {
      if (!signal.aborted) replace(functionsBox, problemBox(err));
    }
  }

  // The functions come first: the task table's "Run with…" forms and the
  // create form are built from their schemas.
  await loadFunctions();
  await refresh();
}

/** schemaSummary lists a function's parameters and keeps the full JSON Schema one click away. */
function schemaSummary(schema) {
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const names = Object.keys(props);
  const type = (p) => Array.isArray(p.type) ? p.type.filter(x => x !== 'null').join('|') : (p.type || 'any');
  return h('details', {},
    h('summary', {}, names.length ? names.map(n => `${n}${required.has(n) ? '*' : ''}: ${type(props[n])}`).join(', ') :
      (schema && schema.additionalProperties === true ? 'any JSON object' : 'no parameters')),
    jsonView(schema));
}

function taskTable(tasks, functions, refresh) {
  if (tasks.length === 0) return h('p', {class: 'muted'}, 'No tasks yet: create one above.');
  const cols = ['Task', 'Command', 'Type', 'Enabled', 'Schedule', 'Next run', 'Params / env', 'Limits', ''];
  return grid('task-table', cols, tasks.flatMap(t => taskRows(t, functions, refresh, cols.length)));
}

function taskRows(t, functions, refresh, ncols) {
  const problem = h('div', {});
  const options = h('tr', {class: 'run-options', hidden: true}, h('td', {colspan: ncols}, runForm(t, functions.get(t.command), problem)));
  const editing = h('tr', {class: 'edit-options', hidden: true});
  const edit = () => {
    if (!editing.hidden) { editing.hidden = true; return; }
    replace(editing, h('td', {colspan: ncols}, editForm(t, () => { editing.hidden = true; }, refresh)));
    editing.hidden = false;
    editing.querySelector('input').focus();
  };
  const toggle = h('button', {
    type: 'button', class: `toggle ${t.enabled ? 'on' : 'off'}`, 'data-action': 'toggle', 'aria-pressed': String(t.enabled),
    title: t.enabled ? 'Enabled: click to disable' : 'Disabled: click to enable',
    onclick: async () => {
      toggle.disabled = true;
      try {
        await api('PATCH', `tasks/${t.id}`, {enabled: !t.enabled});
        await refresh();
      } catch (err) {
        toggle.disabled = false;
        replace(problem, problemBox(err));
      }
    },
  }, t.enabled ? 'enabled' : 'disabled');
  const run = async () => {
    replace(problem);
    try {
      const r = await api('POST', `tasks/${t.id}/$execute`);
      location.hash = `#/jobs/${r.job_id}`;
    } catch (err) {
      replace(problem, problemBox(err));
    }
  };
  const del = async () => {
    if (!confirm(`Delete task ${t.id}?\n\n${t.command}\n\nIts jobs keep running and keep their snapshot of the task.`)) return;
    try {
      await api('DELETE', `tasks/${t.id}`);
      await refresh();
    } catch (err) {
      replace(problem, problemBox(err));
    }
  };
  const main = {
    attrs: {'data-task-id': t.id, 'data-command': t.command},
    cells: [
      idText(t.id),
      [h('code', {}, t.command), problem],
      t.type,
      toggle,
      scheduleCell(t),
      nextRun(t),
      t.type === 'shell' ? compact(t.env) : compact(t.params),
      limitsCell(t),
      [
        h('button', {type: 'button', 'data-action': 'run', onclick: run, disabled: !t.enabled, title: t.enabled ? 'Run now with the task\'s own params' : 'Enable the task to run it'}, 'Run'),
        h('button', {type: 'button', class: 'secondary', 'data-action': 'run-with', disabled: !t.enabled, title: 'Run with params or env overrides',
          onclick: () => { options.hidden = !options.hidden; }}, 'Run with…'),
        h('button', {type: 'button', class: 'secondary', 'data-action': 'edit', title: 'Change the schedule, limits, timeout and retries', onclick: edit}, 'Edit'),
        h('a', {class: 'button secondary', href: `#/jobs?task_id=${encodeURIComponent(t.id)}`}, 'Jobs'),
        h('button', {type: 'button', class: 'danger', 'data-action': 'delete', onclick: del}, 'Delete'),
      ],
    ],
    tds: [null, {class: 'command'}, null, null, {class: 'schedule-cell'}, {class: 'next-run', 'data-next': t.next_fire_at || null},
      null, {class: 'limits'}, {class: 'actions'}],
  };
  return [main, options, editing];
}

/**
 * editForm changes a task's schedule and limits, timeout and retries with
 * one PATCH of what changed. A cleared field is sent as null, which resets
 * it (no schedule, UTC, unlimited, no timeout, 0). A 422 is shown at the
 * fields it names.
 */
function editForm(t, close, onSaved) {
  const id = `edit-${t.id}`;
  const fields = scheduleFields(id);
  fields.set(t);
  const timeout = h('input', {id: `${id}-timeout`, name: 'timeout_seconds', type: 'number', min: '0', step: 'any', placeholder: 'none',
    value: t.timeout_seconds ? String(t.timeout_seconds) : ''});
  const retries = h('input', {id: `${id}-retries`, name: 'retries', type: 'number', min: '0', max: '100', step: '1', placeholder: '0',
    value: t.retries ? String(t.retries) : ''});
  const result = h('div', {class: 'form-result'});
  const save = h('button', {type: 'submit', 'data-action': 'edit-save'}, 'Save');
  const form = h('form', {class: 'edit-form stack', id: `${id}-form`, novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    replace(result);
    clearFieldErrors(form);
    let body;
    try {
      body = fields.patch(t);
      const to = timeout.value.trim() === '' ? null : Number(timeout.value);
      if (to !== (t.timeout_seconds ?? null)) body.timeout_seconds = to;
      const re = retries.value.trim() === '' ? 0 : Number(retries.value);
      if (re !== t.retries) body.retries = retries.value.trim() === '' ? null : re;
    } catch (err) {
      replace(result, problemBox(err));
      return;
    }
    if (Object.keys(body).length === 0) {
      replace(result, h('p', {class: 'muted'}, 'Nothing changed.'));
      return;
    }
    save.disabled = true;
    try {
      await api('PATCH', `tasks/${t.id}`, body);
      await onSaved();
    } catch (err) {
      markFields(err, {...fields.inputs, 'body.timeout_seconds': timeout, 'body.retries': retries});
      replace(result, problemBox(err));
    } finally {
      save.disabled = false;
    }
  }},
  h('h3', {}, 'Edit ', idText(t.id), ' ', h('code', {}, t.command)),
  fields.el,
  h('div', {class: 'row'},
    h('label', {}, 'Timeout (seconds; blank: none)', timeout),
    h('label', {}, 'Retries', retries)),
  result,
  h('div', {class: 'buttons'}, save, ' ', h('button', {type: 'button', class: 'secondary', 'data-action': 'edit-cancel', onclick: close}, 'Cancel')));
  return form;
}

/**
 * paramsEditor is where params are entered: the function's generated form
 * when its schema names parameters, else (or on request) a JSON box. It
 * keeps one value across the switch, so nothing typed is lost by it.
 */
function paramsEditor(idPrefix, {label, placeholder = '{"name": "Alice"}', textareaId}) {
  const raw = h('textarea', {id: textareaId || `${idPrefix}-json`, name: 'params', rows: 3, spellcheck: 'false', placeholder});
  const rawLabel = h('label', {class: 'grow-field'}, label, raw);
  const holder = h('div', {class: 'params-form'});
  const toggle = h('button', {type: 'button', class: 'link', 'data-action': 'params-mode'}, 'edit as JSON');
  const box = h('div', {class: 'params-editor'}, rawLabel);
  let form = null; // the schema form while it is shown
  let fn = null;
  let extra = {}; // keys the schema does not name, kept from a JSON edit

  function showForm(values) {
    form = schemaForm(fn.params_schema, {idPrefix});
    extra = form.set(values);
    replace(holder, h('div', {class: 'params-head'}, h('span', {class: 'muted'}, `Parameters of ${fn.name}`), toggle), form.el,
      Object.keys(extra).length ? h('p', {class: 'muted'}, 'Also sent, not in the schema: ', h('code', {}, JSON.stringify(extra))) : null);
    toggle.textContent = 'edit as JSON';
    replace(box, holder);
  }

  function showJSON(values) {
    form = null;
    raw.value = values && Object.keys(values).length ? JSON.stringify(values, null, 2) : '';
    if (fn && generatable(fn.params_schema)) {
      toggle.textContent = 'use the form';
      replace(box, h('div', {class: 'params-head'}, h('span', {class: 'muted'}, `Parameters of ${fn.name} as JSON`), toggle), rawLabel);
    } else {
      replace(box, rawLabel);
    }
  }

  toggle.addEventListener('click', () => {
    try {
      if (form) showJSON(read() || {});
      else showForm(parseJSONField(raw.value, 'params') || {});
    } catch (err) {
      box.prepend(problemBox(err));
    }
  });

  /** read returns the params to send, undefined for none. */
  function read() {
    if (!form) return parseJSONField(raw.value, 'params');
    const v = {...extra, ...form.read()};
    return Object.keys(v).length ? v : undefined;
  }

  return {
    el: box,
    read,
    /** use switches to fn's form (null: the JSON box), starting from
     * values, or when values is undefined from what is entered now. */
    use(f, values) {
      let carry = values;
      if (carry === undefined) {
        try {
          carry = form ? {...extra, ...form.read({lenient: true})} : parseJSONField(raw.value, 'params');
        } catch {
          carry = undefined; // unparsable JSON stays where it is
          if (!(f && generatable(f.params_schema))) { fn = f; return; }
        }
      }
      fn = f;
      if (f && generatable(f.params_schema)) showForm(carry || {});
      else showJSON(carry || null);
    },
    get fn() { return fn; },
  };
}

/** runForm executes a task with params (and, for shell tasks, env) merged over the task's own. */
function runForm(t, fn, problem) {
  const errBox = h('div', {});
  const params = paramsEditor(`run-${t.id}`, {label: 'params (JSON, merged over the task\'s)', placeholder: '{"name": "Bob"}'});
  const env = h('textarea', {name: 'env', rows: 3, placeholder: '{"VAR": "value"}', spellcheck: 'false'});
  if (t.type === 'function') params.use(fn || null, t.params || {});
  const form = h('form', {class: 'run-form', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    replace(errBox);
    replace(problem);
    const body = {};
    try {
      if (t.type === 'function') {
        const p = params.read();
        if (p !== undefined) body.params = p;
      } else {
        const v = parseJSONField(env.value, 'env');
        if (v !== undefined) body.env = v;
      }
    } catch (err) {
      replace(errBox, problemBox(err));
      return;
    }
    try {
      const r = await api('POST', `tasks/${t.id}/$execute`, body);
      location.hash = `#/jobs/${r.job_id}`;
    } catch (err) {
      replace(errBox, problemBox(err));
    }
  }},
  t.type === 'function' ? params.el : h('label', {}, 'env (JSON, merged over the task\'s)', env),
  errBox,
  h('div', {}, h('button', {type: 'submit', 'data-action': 'run-submit'}, 'Run')));
  return form;
}

/** createForm is the "New task" form; prefill(fn) starts it from a registered function. */
function createForm(onCreated) {
  let functions = new Map();
  const list = h('datalist', {id: 'function-names'});
  const command = h('input', {id: 'task-command', name: 'command', required: true, autocomplete: 'off', spellcheck: 'false', list: 'function-names',
    placeholder: 'greet_user, or a shell command like: echo hello'});
  const type = h('select', {id: 'task-type', name: 'type'},
    h('option', {value: ''}, 'auto: function if registered'),
    h('option', {value: 'function'}, 'function'),
    h('option', {value: 'shell'}, 'shell'));
  const params = paramsEditor('task-params', {label: 'Params (JSON object, function tasks)', textareaId: 'task-params'});
  const env = h('textarea', {id: 'task-env', name: 'env', rows: 3, spellcheck: 'false', placeholder: '{"VAR": "value"}'});
  const envLabel = h('label', {class: 'grow-field'}, 'Env (JSON object, shell tasks)', env);
  const timeout = h('input', {id: 'task-timeout', name: 'timeout_seconds', type: 'number', min: '0', step: 'any', placeholder: 'none'});
  const retries = h('input', {id: 'task-retries', name: 'retries', type: 'number', min: '0', max: '100', step: '1', placeholder: '0'});
  const enabled = h('input', {id: 'task-enabled', name: 'enabled', type: 'checkbox', checked: true});
  const sched = scheduleFields('task');
  const result = h('div', {class: 'form-result'});
  const submit = h('button', {type: 'submit', id: 'task-create'}, 'Create task');

  // The params part follows the command: a registered function's name (and
  // a type that is not "shell") brings up its form; anything else, the
  // JSON box — a shell task's params are refused by the server, which then
  // says why.
  function sync() {
    const f = type.value !== 'shell' ? functions.get(command.value.trim()) : undefined;
    if ((f || null) !== params.fn) params.use(f || null);
    envLabel.hidden = Boolean(f);
  }
  command.addEventListener('input', sync);
  type.addEventListener('change', sync);

  const el = h('form', {id: 'task-form', class: 'stack', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    replace(result);
    clearFieldErrors(el);
    const body = {command: command.value.trim()};
    try {
      if (!body.command) throw new Error('command is required: a registered function\'s name or a shell command line');
      if (type.value) body.type = type.value;
      const p = params.read();
      const v = envLabel.hidden ? undefined : parseJSONField(env.value, 'env');
      if (p !== undefined) body.params = p;
      if (v !== undefined) body.env = v;
      if (timeout.value !== '') body.timeout_seconds = Number(timeout.value);
      if (retries.value !== '') body.retries = Number(retries.value);
      if (!enabled.checked) body.enabled = false;
      Object.assign(body, sched.read());
    } catch (err) {
      replace(result, problemBox(err));
      return;
    }
    submit.disabled = true;
    try {
      const t = await api('POST', 'tasks', body);
      replace(result, h('p', {class: 'ok', id: 'task-created'}, 'Created ', idText(t.id), ` (${t.type})`,
        t.next_fire_at ? [': it runs next ', until(t.next_fire_at), '.'] : '.'));
      command.value = '';
      env.value = '';
      timeout.value = '';
      retries.value = '';
      type.value = '';
      enabled.checked = true;
      sched.reset();
      params.use(null, null);
      sync();
      await onCreated(t);
    } catch (err) {
      markFields(err, {...sched.inputs, 'body.command': command, 'body.type': type, 'body.timeout_seconds': timeout, 'body.retries': retries});
      replace(result, problemBox(err));
    } finally {
      submit.disabled = false;
    }
  }},
  list,
  h('label', {}, 'Command', command),
  h('div', {class: 'row'},
    h('label', {}, 'Type', type),
    h('label', {}, 'Timeout (seconds)', timeout),
    h('label', {}, 'Retries', retries),
    h('label', {class: 'check'}, enabled, ' enabled')),
  h('div', {class: 'row'}, params.el, envLabel),
  sched.el,
  result,
  h('div', {}, submit));

  return {
    el,
    setFunctions(fns) {
      functions = fns;
      replace(list, [...fns.keys()].map(n => h('option', {value: n})));
      sync();
    },
    prefill(fn) {
      command.value = fn.name;
      type.value = 'function';
      env.value = '';
      params.use(fn, {});
      envLabel.hidden = true;
      el.scrollIntoView({behavior: 'smooth', block: 'start'});
      command.focus();
    },
  };
}
