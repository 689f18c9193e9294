// The tasks view: the task table with its actions, the create form, the
// registered functions and the orphaned tasks.

import {api, get, items} from './api.js';
import {badge, compact, h, jsonView, parseJSONField, problemBox, replace} from './dom.js';

export async function tasksView(root, {signal}) {
  const tableBox = h('div', {class: 'table-box'}, h('p', {class: 'muted'}, 'Loading tasks…'));
  const functionsBox = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const orphansBox = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const form = createForm(() => refresh());

  replace(root,
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

  async function loadTasks() {
    try {
      const tasks = items(await get('tasks', {signal}));
      replace(tableBox, taskTable(tasks, refresh));
    } catch (err) {
      if (!signal.aborted) replace(tableBox, problemBox(err));
    }
  }

  async function loadOrphans() {
    try {
      const body = await get('tasks/$orphaned', {signal});
      const list = (body && body.orphaned_tasks) || [];
      replace(orphansBox, list.length === 0 ? h('p', {class: 'muted'}, 'None.') :
        h('table', {class: 'grid'},
          h('thead', {}, h('tr', {}, h('th', {}, 'Task'), h('th', {}, 'Command'), h('th', {}, 'Type'), h('th', {}, 'Reason'))),
          h('tbody', {}, list.map(t => h('tr', {},
            h('td', {}, h('span', {class: 'id', title: t.id}, t.id.slice(-8))),
            h('td', {}, h('code', {}, t.command)),
            h('td', {}, t.type),
            h('td', {}, badge(t.reason, 'reason')))))));
    } catch (err) {
      if (!signal.aborted) replace(orphansBox, problemBox(err));
    }
  }

  async function loadFunctions() {
    try {
      const fns = await get('tasks/$functions', {signal});
      replace(functionsBox, !fns || fns.length === 0 ? h('p', {class: 'muted'}, 'This server has no registered functions: tasks run shell commands.') :
        h('table', {class: 'grid'},
          h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Description'), h('th', {}, 'Injects'), h('th', {}, 'Parameters'), h('th', {}))),
          h('tbody', {}, fns.map(f => h('tr', {},
            h('td', {}, h('code', {}, f.name)),
            h('td', {}, f.description || h('span', {class: 'muted'}, '—')),
            h('td', {}, (f.injects || []).length ? (f.injects || []).join(', ') : h('span', {class: 'muted'}, '—')),
            h('td', {}, schemaSummary(f.params_schema)),
            h('td', {class: 'actions'}, h('button', {type: 'button', class: 'secondary', onclick: () => form.prefill(f)}, 'Use')))))));
    } catch (err) {
      if (!signal.aborted) replace(functionsBox, problemBox(err));
    }
  }

  await Promise.all([refresh(), loadFunctions()]);
}

/** schemaSummary lists a function's parameters and keeps the full JSON Schema one click away. */
function schemaSummary(schema) {
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const names = Object.keys(props);
  return h('details', {},
    h('summary', {}, names.length ? names.map(n => `${n}${required.has(n) ? '*' : ''}: ${props[n].type || 'any'}`).join(', ') : 'no parameters'),
    jsonView(schema));
}

/** defaultsOf builds a params object from a schema's defaults, to start the form from. */
function defaultsOf(schema) {
  const out = {};
  for (const [k, p] of Object.entries((schema && schema.properties) || {})) {
    if (p && 'default' in p) out[k] = p.default;
  }
  return out;
}

function taskTable(tasks, refresh) {
  if (tasks.length === 0) return h('p', {class: 'muted'}, 'No tasks yet: create one above.');
  return h('table', {class: 'grid', id: 'task-table'},
    h('thead', {}, h('tr', {},
      h('th', {}, 'Task'), h('th', {}, 'Command'), h('th', {}, 'Type'), h('th', {}, 'Enabled'),
      h('th', {}, 'Params / env'), h('th', {}, 'Timeout'), h('th', {}, 'Retries'), h('th', {}, ''))),
    h('tbody', {}, tasks.flatMap(t => taskRows(t, refresh))));
}

function taskRows(t, refresh) {
  const problem = h('div', {});
  const options = h('tr', {class: 'run-options', hidden: true}, h('td', {colspan: 8}, runForm(t, problem)));
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
  const main = h('tr', {'data-task-id': t.id, 'data-command': t.command},
    h('td', {}, h('span', {class: 'id', title: t.id}, t.id.slice(-8))),
    h('td', {class: 'command'}, h('code', {}, t.command), problem),
    h('td', {}, t.type),
    h('td', {}, toggle),
    h('td', {}, t.type === 'shell' ? compact(t.env) : compact(t.params)),
    h('td', {}, t.timeout_seconds ? `${t.timeout_seconds} s` : h('span', {class: 'muted'}, '—')),
    h('td', {}, String(t.retries)),
    h('td', {class: 'actions'},
      h('button', {type: 'button', 'data-action': 'run', onclick: run, disabled: !t.enabled, title: t.enabled ? 'Run now with the task\'s own params' : 'Enable the task to run it'}, 'Run'),
      h('button', {type: 'button', class: 'secondary', 'data-action': 'run-with', disabled: !t.enabled, title: 'Run with params or env overrides',
        onclick: () => { options.hidden = !options.hidden; }}, 'Run with…'),
      h('a', {class: 'button secondary', href: `#/jobs?task_id=${encodeURIComponent(t.id)}`}, 'Jobs'),
      h('button', {type: 'button', class: 'danger', 'data-action': 'delete', onclick: del}, 'Delete')));
  return [main, options];
}

/** runForm executes a task with params (and, for shell tasks, env) merged over the task's own. */
function runForm(t, problem) {
  const params = h('textarea', {name: 'params', rows: 3, placeholder: '{"name": "Bob"}', spellcheck: 'false'});
  const env = h('textarea', {name: 'env', rows: 3, placeholder: '{"VAR": "value"}', spellcheck: 'false'});
  const errBox = h('div', {});
  const form = h('form', {class: 'run-form', onsubmit: async (e) => {
    e.preventDefault();
    replace(errBox);
    replace(problem);
    const body = {};
    try {
      const p = parseJSONField(params.value, 'params');
      const v = parseJSONField(env.value, 'env');
      if (p !== undefined) body.params = p;
      if (v !== undefined) body.env = v;
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
  h('div', {class: 'row'},
    h('label', {}, 'params (JSON, merged over the task\'s)', params),
    h('label', {}, 'env (JSON, shell tasks)', env)),
  errBox,
  h('button', {type: 'submit'}, 'Run'));
  return form;
}

/** createForm is the "New task" form; prefill(fn) starts it from a registered function. */
function createForm(onCreated) {
  const command = h('input', {id: 'task-command', name: 'command', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'greet_user, or a shell command like: echo hello'});
  const type = h('select', {id: 'task-type', name: 'type'},
    h('option', {value: ''}, 'auto (function if registered, else shell)'),
    h('option', {value: 'function'}, 'function'),
    h('option', {value: 'shell'}, 'shell'));
  const params = h('textarea', {id: 'task-params', name: 'params', rows: 3, spellcheck: 'false', placeholder: '{"name": "Alice"}'});
  const env = h('textarea', {id: 'task-env', name: 'env', rows: 3, spellcheck: 'false', placeholder: '{"VAR": "value"}'});
  const timeout = h('input', {id: 'task-timeout', name: 'timeout_seconds', type: 'number', min: '0', step: 'any', placeholder: 'none'});
  const retries = h('input', {id: 'task-retries', name: 'retries', type: 'number', min: '0', max: '100', step: '1', placeholder: '0'});
  const enabled = h('input', {id: 'task-enabled', name: 'enabled', type: 'checkbox', checked: true});
  const result = h('div', {class: 'form-result'});
  const submit = h('button', {type: 'submit', id: 'task-create'}, 'Create task');

  const el = h('form', {id: 'task-form', class: 'stack', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    replace(result);
    const body = {command: command.value.trim()};
    try {
      if (!body.command) throw new Error('command is required: a registered function\'s name or a shell command line');
      if (type.value) body.type = type.value;
      const p = parseJSONField(params.value, 'params');
      const v = parseJSONField(env.value, 'env');
      if (p !== undefined) body.params = p;
      if (v !== undefined) body.env = v;
      if (timeout.value !== '') body.timeout_seconds = Number(timeout.value);
      if (retries.value !== '') body.retries = Number(retries.value);
      if (!enabled.checked) body.enabled = false;
    } catch (err) {
      replace(result, problemBox(err));
      return;
    }
    submit.disabled = true;
    try {
      const t = await api('POST', 'tasks', body);
      replace(result, h('p', {class: 'ok'}, 'Created ', h('span', {class: 'id', title: t.id}, t.id), ` (${t.type}).`));
      command.value = '';
      params.value = '';
      env.value = '';
      timeout.value = '';
      retries.value = '';
      type.value = '';
      enabled.checked = true;
      await onCreated(t);
    } catch (err) {
      replace(result, problemBox(err));
    } finally {
      submit.disabled = false;
    }
  }},
  h('label', {}, 'Command', command),
  h('div', {class: 'row'},
    h('label', {}, 'Type', type),
    h('label', {}, 'Timeout (seconds)', timeout),
    h('label', {}, 'Retries', retries),
    h('label', {class: 'check'}, enabled, ' enabled')),
  h('div', {class: 'row'},
    h('label', {}, 'Params (JSON object, function tasks)', params),
    h('label', {}, 'Env (JSON object, shell tasks)', env)),
  result,
  h('div', {}, submit));

  return {
    el,
    prefill(fn) {
      command.value = fn.name;
      type.value = 'function';
      const d = defaultsOf(fn.params_schema);
      params.value = Object.keys(d).length ? JSON.stringify(d, null, 2) : '';
      env.value = '';
      el.scrollIntoView({behavior: 'smooth', block: 'start'});
      command.focus();
    },
  };
}
