// The jobs views: the list of newest jobs, and one job followed live over
// its $stream (status changes and output lines as they happen).

import {api, get, stream} from './api.js';
import {ago, badge, duration, fmtTime, h, idLink, jsonView, problemBox, replace, TERMINAL} from './dom.js';

const STATUSES = ['pending', 'running', 'completed', 'failed', 'canceled'];
const PAGE_SIZE = 50;
// The list is refreshed on a timer: cheap (one indexed query for 50 rows),
// and a stream per row would cost a connection each.
const LIST_REFRESH_MS = 3000;

export async function jobsView(root, {query, signal}) {
  const status = query.get('status') || '';
  const taskID = query.get('task_id') || '';
  const page = Math.max(1, parseInt(query.get('page') || '1', 10) || 1);

  const go = (changes) => {
    const q = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) {
      if (v) q.set(k, v);
      else q.delete(k);
    }
    const s = q.toString();
    location.hash = '#/jobs' + (s ? '?' + s : '');
  };

  const filter = h('select', {id: 'job-filter', onchange: () => go({status: filter.value, page: ''})},
    h('option', {value: ''}, 'all statuses'),
    STATUSES.map(s => h('option', {value: s, selected: s === status}, s)));
  const auto = h('input', {type: 'checkbox', checked: true, id: 'job-autorefresh'});
  const box = h('div', {class: 'table-box'}, h('p', {class: 'muted'}, 'Loading jobs…'));
  const pager = h('div', {class: 'pager'});

  replace(root,
    h('h1', {}, 'Jobs'),
    h('section', {class: 'card'},
      h('div', {class: 'card-head'},
        h('div', {class: 'toolbar'},
          h('label', {class: 'inline'}, 'Status ', filter),
          taskID ? h('span', {class: 'chip'}, 'task ', h('span', {class: 'id', title: taskID}, taskID.slice(-8)), ' ',
            h('a', {href: '#', title: 'Show all tasks\' jobs', onclick: (e) => { e.preventDefault(); go({task_id: '', page: ''}); }}, '×')) : null),
        h('label', {class: 'inline'}, auto, ' auto-refresh')),
      box,
      pager));

  async function load() {
    const q = new URLSearchParams({page: String(page), size: String(PAGE_SIZE)});
    if (status) q.set('status', status);
    if (taskID) q.set('task_id', taskID);
    try {
      const body = await get(`jobs?${q}`, {signal});
      const jobs = body.items || [];
      replace(box, jobs.length === 0 ? h('p', {class: 'muted'}, status || taskID ? 'No jobs match.' : 'No jobs yet: run a task.') : jobTable(jobs));
      replace(pager, body.pages > 1 ? [
        h('button', {type: 'button', class: 'secondary', disabled: page <= 1, onclick: () => go({page: String(page - 1)})}, '← Newer'),
        h('span', {class: 'muted'}, ` page ${body.page} of ${body.pages} (${body.total} jobs) `),
        h('button', {type: 'button', class: 'secondary', disabled: page >= body.pages, onclick: () => go({page: String(page + 1)})}, 'Older →'),
      ] : body.total ? h('span', {class: 'muted'}, `${body.total} job${body.total === 1 ? '' : 's'}`) : null);
    } catch (err) {
      if (!signal.aborted) replace(box, problemBox(err));
    }
  }

  await load();
  const timer = setInterval(() => {
    if (auto.checked && !document.hidden) load();
  }, LIST_REFRESH_MS);
  signal.addEventListener('abort', () => clearInterval(timer));
}

function jobTable(jobs) {
  return h('table', {class: 'grid', id: 'job-table'},
    h('thead', {}, h('tr', {},
      h('th', {}, 'Job'), h('th', {}, 'Status'), h('th', {}, 'Command'), h('th', {}, 'Type'),
      h('th', {}, 'Attempt'), h('th', {}, 'Submitted'), h('th', {}, 'Duration'), h('th', {}, 'Artifact'))),
    h('tbody', {}, jobs.map(j => h('tr', {'data-job-id': j.id, 'data-status': j.status},
      h('td', {}, idLink(`#/jobs/${j.id}`, j.id)),
      h('td', {}, badge(j.status)),
      h('td', {class: 'command'}, h('code', {}, j.command)),
      h('td', {}, j.type),
      h('td', {}, `${j.attempt}/${j.max_attempts}`),
      h('td', {}, ago(j.submitted_at)),
      h('td', {}, j.started_at ? duration(j.started_at, j.finished_at) : h('span', {class: 'muted'}, '—')),
      h('td', {}, j.artifact_id ? idLink(`#/artifacts/${j.artifact_id}`, j.artifact_id) : h('span', {class: 'muted'}, '—'))))));
}

// The log pane keeps at most this many lines: a chatty job can emit far
// more than a browser tab should hold as DOM nodes; the full captured
// output stays in the job's artifact and $logs.
const MAX_LOG_LINES = 20000;

export async function jobView(root, {params: [id], signal}) {
  const statusEl = h('span', {id: 'job-status', class: 'badge', 'data-status': ''}, '…');
  const streamState = h('span', {id: 'stream-state', class: 'muted'}, 'connecting…');
  const actionsProblem = h('div', {});
  const details = h('div', {class: 'details'});
  const logEl = h('pre', {id: 'log', class: 'log', 'aria-live': 'off'});
  const logCount = h('span', {class: 'muted'}, '0 lines');
  const follow = h('input', {type: 'checkbox', checked: true});
  const cancelBtn = h('button', {type: 'button', id: 'job-cancel', class: 'secondary', disabled: true, onclick: cancel}, 'Cancel');
  const deleteBtn = h('button', {type: 'button', id: 'job-delete', class: 'danger', onclick: del}, 'Delete');

  replace(root,
    h('div', {class: 'title-row'},
      h('h1', {}, 'Job ', h('span', {class: 'id', title: id}, id)),
      statusEl,
      h('span', {class: 'spacer'}),
      cancelBtn, deleteBtn),
    actionsProblem,
    h('section', {class: 'card'}, details),
    h('section', {class: 'card'},
      h('div', {class: 'card-head'},
        h('h2', {}, 'Output'),
        h('div', {class: 'toolbar'}, logCount, streamState, h('label', {class: 'inline'}, follow, ' follow'))),
      logEl));

  let job = null;
  let durationEl = null;
  let lines = 0;
  let dropped = 0;
  let pending = [];
  let flushTimer = null;
  const live = new AbortController();
  signal.addEventListener('abort', () => live.abort());
  // A running job's duration ticks without re-rendering the details.
  const ticker = setInterval(() => {
    if (job && job.status === 'running' && job.started_at && durationEl) durationEl.textContent = duration(job.started_at, null);
  }, 1000);
  signal.addEventListener('abort', () => clearInterval(ticker));

  function render(j) {
    job = j;
    statusEl.textContent = j.status;
    statusEl.dataset.status = j.status;
    statusEl.className = `badge badge-${j.status}`;
    cancelBtn.disabled = TERMINAL.has(j.status);
    const dl = [];
    const row = (k, ...v) => dl.push(h('dt', {}, k), h('dd', {}, ...v));
    row('Command', h('code', {class: 'command'}, j.command));
    row('Type', j.type);
    row('Task', h('a', {href: `#/jobs?task_id=${encodeURIComponent(j.task_id)}`, class: 'id', title: 'Jobs of this task'}, j.task_id));
    row('Attempt', `${j.attempt} of ${j.max_attempts}`);
    row('Submitted', fmtTime(j.submitted_at));
    row('Started', fmtTime(j.started_at));
    row('Finished', fmtTime(j.finished_at));
    durationEl = h('span', {}, j.started_at ? duration(j.started_at, j.finished_at) : '—');
    row('Duration', durationEl);
    if (j.node) row('Node', j.node);
    if (j.progress) {
      const p = j.progress;
      row('Progress', h('progress', {max: String(p.total || 1), value: String(p.current || 0)}),
        ` ${p.current}/${p.total}`, p.message ? ` — ${p.message}` : '');
    }
    if (j.exit_code !== null && j.exit_code !== undefined) row('Exit code', h('code', {id: 'job-exit-code', class: j.exit_code === 0 ? 'ok' : 'bad'}, String(j.exit_code)));
    if (j.error) row('Error', h('span', {id: 'job-error', class: 'bad'}, j.error));
    if (j.error_traceback) row('Traceback', h('details', {}, h('summary', {}, 'stack'), h('pre', {class: 'log'}, j.error_traceback)));
    if (j.params && Object.keys(j.params).length) row('Params', jsonView(j.params));
    if (j.env && Object.keys(j.env).length) row('Env', jsonView(j.env));
    if (j.result !== null && j.result !== undefined) row('Result', jsonView(j.result));
    row('Artifact', j.artifact_id ? h('a', {id: 'job-artifact', href: `#/artifacts/${j.artifact_id}`, class: 'id'}, j.artifact_id)
      : h('span', {class: 'muted'}, TERMINAL.has(j.status) ? '—' : 'written when the job finishes'));
    replace(details, h('dl', {}, dl));
  }

  function appendLog(ev) {
    pending.push(ev);
    if (!flushTimer) flushTimer = setTimeout(flush, 30);
  }

  // Lines are added in batches: a job printing thousands of lines a second
  // would otherwise re-layout the page once per line.
  function flush() {
    flushTimer = null;
    const atBottom = logEl.scrollHeight - logEl.scrollTop - logEl.clientHeight < 40;
    const frag = document.createDocumentFragment();
    for (const ev of pending) {
      frag.append(h('div', {class: ev.stream === 'stderr' ? 'line stderr' : 'line'}, ev.line));
    }
    lines += pending.length;
    pending = [];
    logEl.append(frag);
    while (logEl.childElementCount > MAX_LOG_LINES) {
      logEl.firstElementChild.remove();
      dropped++;
    }
    logCount.textContent = `${lines} line${lines === 1 ? '' : 's'}${dropped ? ` (first ${dropped} not shown)` : ''}`;
    if (follow.checked && atBottom) logEl.scrollTop = logEl.scrollHeight;
  }

  async function cancel() {
    replace(actionsProblem);
    cancelBtn.disabled = true;
    try {
      render(await api('POST', `jobs/${id}/$cancel`));
    } catch (err) {
      replace(actionsProblem, problemBox(err));
      cancelBtn.disabled = job ? TERMINAL.has(job.status) : false;
    }
  }

  async function del() {
    if (!confirm(`Delete job ${id}?${job && !TERMINAL.has(job.status) ? '\n\nIt is still running: it will be canceled first.' : ''}\n\nIts artifact is kept.`)) return;
    replace(actionsProblem);
    try {
      await api('DELETE', `jobs/${id}`);
      location.hash = '#/jobs';
    } catch (err) {
      replace(actionsProblem, problemBox(err));
    }
  }

  // Show the job at once, even before the stream delivers its first event
  // (and if the stream cannot be had at all).
  try {
    render(await get(`jobs/${id}`, {signal}));
  } catch (err) {
    if (signal.aborted) return;
    replace(details, problemBox(err));
    statusEl.textContent = 'unknown';
    streamState.textContent = '';
    return;
  }

  // Follow the stream until a terminal status. A dropped connection (a
  // restarted server, a proxy timeout) is resumed with Last-Event-ID, so
  // no event is shown twice or lost.
  const state = {};
  let retryMs = 500;
  let finished = false;
  while (!live.signal.aborted && !finished) {
    streamState.textContent = 'live';
    streamState.className = 'live';
    try {
      await stream(`jobs/${id}/$stream`, (ev) => {
        retryMs = 500;
        let data;
        try {
          data = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (ev.event === 'log') {
          appendLog(data);
        } else if (ev.event === 'status') {
          if (data.status === 'deleted') {
            finished = true;
            statusEl.textContent = 'deleted';
            statusEl.dataset.status = 'deleted';
            statusEl.className = 'badge badge-deleted';
            cancelBtn.disabled = true;
            deleteBtn.disabled = true;
            replace(actionsProblem, h('div', {class: 'notice'}, 'This job was deleted. ', h('a', {href: '#/jobs'}, 'Back to jobs'), '.'));
            live.abort();
            return;
          }
          if (pending.length) flush(); // output before the status it led to
          render(data);
          if (TERMINAL.has(data.status)) {
            finished = true;
            live.abort(); // the server closes too; no need to wait for it
          }
        }
      }, {signal: live.signal, state});
    } catch (err) {
      if (live.signal.aborted) break;
      if (err && (err.status === 404 || err.status === 401 || err.status === 400)) {
        replace(actionsProblem, problemBox(err));
        break;
      }
    }
    if (finished || live.signal.aborted) break;
    // The server closed without a terminal status: reconnect after a pause.
    streamState.textContent = 'reconnecting…';
    streamState.className = 'muted';
    await new Promise(r => setTimeout(r, retryMs));
    retryMs = Math.min(retryMs * 2, 10000);
  }
  if (pending.length) flush();
  if (!signal.aborted) {
    streamState.textContent = finished ? 'finished' : 'closed';
    streamState.className = 'muted';
  }
}
