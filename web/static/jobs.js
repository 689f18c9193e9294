// The jobs views: the list of newest jobs with its filters, and one job
// followed live over its $stream (status changes and output lines as they
// happen).
//
// Filters: status, task and trigger are the API's own (?status=,
// ?task_id=, ?trigger=), so they page on the server over every job. The
// API's list has no time or text filter yet, so a time range or a search
// is applied here: the console reads the newest jobs (matching status,
// task and trigger) a page at a time, newest first, until it passes the
// start of the time range or has read SCAN_LIMIT of them, and says which
// when it shows the matches. A search for a whole job id asks for that job
// directly.
//
// A job a task's schedule fired carries a "schedule" badge with its slot
// (scheduled_for), which is not its submit time when it was caught up
// after a downtime or queued behind the task's previous job.

import {api, get, items, stream} from './api.js';
import {ago, badge, duration, fmtShort, fmtTime, grid, h, idLink, idText, jsonView, problemBox, progressBar, replace, short, TERMINAL} from './dom.js';

const STATUSES = ['pending', 'running', 'completed', 'failed', 'canceled'];
const TRIGGERS = [
  {value: '', label: 'any trigger'},
  {value: 'api', label: 'api (run by hand or by a client)'},
  {value: 'schedule', label: 'schedule'},
];
const RANGES = [
  {value: '', label: 'any time', ms: 0},
  {value: '15m', label: 'last 15 minutes', ms: 15 * 60e3},
  {value: '1h', label: 'last hour', ms: 3600e3},
  {value: '24h', label: 'last 24 hours', ms: 24 * 3600e3},
  {value: '7d', label: 'last 7 days', ms: 7 * 24 * 3600e3},
];
const PAGE_SIZE = 50;
// How many of the newest jobs a time range or search reads at most, and
// how many per request.
const SCAN_LIMIT = 2000;
const SCAN_PAGE = 200;
// The list is refreshed on a timer: cheap (one indexed query for 50 rows),
// and a stream per row would cost a connection each. A filtered scan costs
// up to SCAN_LIMIT / SCAN_PAGE requests, so it refreshes less often.
const LIST_REFRESH_MS = 3000;
const SCAN_REFRESH_MS = 15000;
const ULID_RE = /^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$/;

/** rerun starts a new job of j's task with j's params (function) or env
 * (shell): the job's own are the task's merged with the overrides it ran
 * with, so sending them back runs the same thing again. */
export async function rerun(j) {
  const body = {};
  if (j.type === 'function' && j.params && Object.keys(j.params).length) body.params = j.params;
  if (j.type === 'shell' && j.env && Object.keys(j.env).length) body.env = j.env;
  return api('POST', `tasks/${j.task_id}/$execute`, body);
}

export async function jobsView(root, {query, signal}) {
  const status = STATUSES.includes(query.get('status')) ? query.get('status') : '';
  const taskID = query.get('task_id') || '';
  const trigger = TRIGGERS.some(x => x.value === query.get('trigger')) ? query.get('trigger') : '';
  const range = RANGES.find(r => r.value === query.get('since')) || RANGES[0];
  const q = (query.get('q') || '').trim();
  const page = Math.max(1, parseInt(query.get('page') || '1', 10) || 1);
  const scanning = Boolean(range.ms || q);

  const go = (changes) => {
    const next = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    const s = next.toString();
    location.hash = '#/jobs' + (s ? '?' + s : '');
  };

  const statusSel = h('select', {id: 'filter-status', onchange: () => go({status: statusSel.value, page: ''})},
    h('option', {value: ''}, 'any status'),
    STATUSES.map(s => h('option', {value: s, selected: s === status}, s)));
  const taskSel = h('select', {id: 'filter-task', onchange: () => go({task_id: taskSel.value, page: ''})},
    h('option', {value: ''}, 'any task'),
    taskID ? h('option', {value: taskID, selected: true}, short(taskID)) : null);
  const triggerSel = h('select', {id: 'filter-trigger', onchange: () => go({trigger: triggerSel.value, page: ''})},
    TRIGGERS.map(x => h('option', {value: x.value, selected: x.value === trigger}, x.label)));
  const rangeSel = h('select', {id: 'filter-since', onchange: () => go({since: rangeSel.value, page: ''})},
    RANGES.map(r => h('option', {value: r.value, selected: r === range}, r.label)));
  const search = h('input', {id: 'filter-q', type: 'search', value: q, placeholder: 'job id or command', autocomplete: 'off', spellcheck: 'false'});
  const filters = h('form', {id: 'job-filters', class: 'filters', onsubmit: (e) => {
    e.preventDefault();
    go({q: search.value.trim(), page: ''});
  }},
  h('label', {}, 'Task', taskSel),
  h('label', {}, 'Status', statusSel),
  h('label', {}, 'Trigger', triggerSel),
  h('label', {}, 'Submitted', rangeSel),
  h('label', {class: 'search'}, 'Search', h('span', {class: 'search-row'}, search, h('button', {type: 'submit', class: 'secondary'}, 'Search'))),
  status || taskID || trigger || range.ms || q ? h('a', {href: '#/jobs', class: 'clear', id: 'filter-clear'}, 'clear filters') : null);

  const auto = h('input', {type: 'checkbox', checked: true, id: 'job-autorefresh'});
  const notice = h('div', {id: 'job-notice'});
  const scope = h('p', {id: 'job-scope', class: 'muted'});
  const box = h('div', {class: 'table-box'}, h('p', {class: 'muted'}, 'Loading jobs…'));
  const pager = h('div', {class: 'pager'});

  replace(root,
    h('div', {class: 'title-row'}, h('h1', {}, 'Jobs'), h('span', {class: 'spacer'}),
      h('label', {class: 'inline'}, auto, ' auto-refresh')),
    h('section', {class: 'card'}, filters),
    notice,
    h('section', {class: 'card'}, scope, box, pager));

  // The task choice lists every task by command and short id.
  get('tasks', {signal}).then((body) => {
    const tasks = items(body);
    replace(taskSel, h('option', {value: ''}, 'any task'),
      tasks.map(t => h('option', {value: t.id, selected: t.id === taskID}, `${t.command.length > 40 ? t.command.slice(0, 39) + '…' : t.command} (${short(t.id)})`)),
      taskID && !tasks.some(t => t.id === taskID) ? h('option', {value: taskID, selected: true}, `${short(taskID)} (deleted task)`) : null);
  }, () => { /* the list itself shows API errors */ });

  async function onRerun(j, btn) {
    btn.disabled = true;
    replace(notice);
    try {
      const r = await rerun(j);
      replace(notice, h('div', {class: 'notice', role: 'status'}, 'Started ', idLink(`#/jobs/${r.job_id}`, r.job_id),
        ` — a re-run of ${short(j.id)} with the same ${j.type === 'shell' ? 'env' : 'params'}.`));
      await load();
    } catch (err) {
      replace(notice, problemBox(err));
    } finally {
      btn.disabled = false;
    }
  }

  const matches = (j) => {
    if (status && j.status !== status) return false;
    if (taskID && j.task_id !== taskID) return false;
    if (trigger && j.trigger !== trigger) return false;
    if (range.ms && Date.parse(j.submitted_at) < Date.now() - range.ms) return false;
    if (!q) return true;
    const needle = q.toLowerCase().replace(/^(…|\.\.\.)/, ''); // the short form as shown, or typed
    return j.id.toLowerCase().includes(needle) || j.command.toLowerCase().includes(needle);
  };

  // scan reads the newest jobs (status and task filtered by the server)
  // until the time range's start or SCAN_LIMIT, and keeps the matches.
  async function scan() {
    if (ULID_RE.test(q)) {
      try {
        const j = await get(`jobs/${q.toUpperCase()}`, {signal});
        return {found: [j].filter(matches), scanned: 1, complete: true};
      } catch (err) {
        if (err.status === 404) return {found: [], scanned: 0, complete: true};
        throw err;
      }
    }
    const found = [];
    let scanned = 0;
    for (let p = 1; ; p++) {
      const sq = new URLSearchParams({page: String(p), size: String(SCAN_PAGE)});
      if (status) sq.set('status', status);
      if (taskID) sq.set('task_id', taskID);
      if (trigger) sq.set('trigger', trigger);
      const body = await get(`jobs?${sq}`, {signal});
      const list = body.items || [];
      scanned += list.length;
      found.push(...list.filter(matches));
      const oldest = list[list.length - 1];
      if (p >= (body.pages || 1) || list.length === 0) return {found, scanned, complete: true};
      if (range.ms && oldest && Date.parse(oldest.submitted_at) < Date.now() - range.ms) return {found, scanned, complete: true};
      if (scanned >= SCAN_LIMIT) return {found, scanned, complete: false};
    }
  }

  async function load() {
    try {
      let jobs;
      let total;
      let pages;
      if (scanning) {
        const r = await scan();
        total = r.found.length;
        pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
        jobs = r.found.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
        replace(scope, `${total} match${total === 1 ? '' : 'es'}`,
          r.complete ? (range.ms ? ` submitted in the ${range.label}.` : '.') :
            ` among the newest ${r.scanned} jobs. Older jobs were not searched: the API's job list has no time or text filter yet, so the console reads at most ${SCAN_LIMIT}; choose a task or status to reach further back.`);
        scope.dataset.complete = String(r.complete);
      } else {
        const sq = new URLSearchParams({page: String(page), size: String(PAGE_SIZE)});
        if (status) sq.set('status', status);
        if (taskID) sq.set('task_id', taskID);
        if (trigger) sq.set('trigger', trigger);
        const body = await get(`jobs?${sq}`, {signal});
        jobs = body.items || [];
        total = body.total;
        pages = body.pages;
        replace(scope);
      }
      replace(box, jobs.length === 0 ? h('p', {class: 'muted'}, status || taskID || trigger || scanning ? 'No jobs match.' : 'No jobs yet: run a task.') :
        jobTable(jobs, onRerun));
      replace(pager, pages > 1 ? [
        h('button', {type: 'button', class: 'secondary', disabled: page <= 1, onclick: () => go({page: String(page - 1)})}, '← Newer'),
        h('span', {class: 'muted'}, ` page ${page} of ${pages} (${total} jobs) `),
        h('button', {type: 'button', class: 'secondary', disabled: page >= pages, onclick: () => go({page: String(page + 1)})}, 'Older →'),
      ] : total && !scanning ? h('span', {class: 'muted'}, `${total} job${total === 1 ? '' : 's'}`) : null);
    } catch (err) {
      if (!signal.aborted) replace(box, problemBox(err));
    }
  }

  await load();
  const timer = setInterval(() => {
    if (auto.checked && !document.hidden) load();
  }, scanning ? SCAN_REFRESH_MS : LIST_REFRESH_MS);
  signal.addEventListener('abort', () => clearInterval(timer));
}

/** firstLine keeps a table cell to one short line of a long error. */
function firstLine(s, max = 120) {
  const line = s.split('\n', 1)[0];
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}

/** triggerCell shows what made a job: a "schedule" badge and the slot it
 * fired for, or a plain "api". */
function triggerCell(j) {
  if (j.trigger !== 'schedule') return h('span', {class: 'muted'}, j.trigger || 'api');
  return [badge('schedule', 'trigger'), ' ', j.scheduled_for ? h('span', {class: 'slot', title: 'the slot this job fired for'}, fmtShort(j.scheduled_for)) : null];
}

function jobTable(jobs, onRerun) {
  return grid('job-table', ['Job', 'Status', 'Trigger', 'Command', 'Error', 'Attempt', 'Submitted', 'Duration', 'Artifact', ''], jobs.map(j => {
    const again = TERMINAL.has(j.status) ? h('button', {type: 'button', class: 'secondary', 'data-action': 'rerun',
      title: `Run ${j.command} again with the same ${j.type === 'shell' ? 'env' : 'params'}`}, 'Re-run') : null;
    if (again) again.addEventListener('click', () => onRerun(j, again));
    return {
      attrs: {'data-job-id': j.id, 'data-status': j.status, 'data-trigger': j.trigger || 'api'},
      cells: [
        idLink(`#/jobs/${j.id}`, j.id),
        [badge(j.status), j.status === 'running' && j.progress ? progressBar(j.progress) : null],
        triggerCell(j),
        h('code', {}, j.command),
        j.error ? h('span', {class: 'bad error-text', title: j.error}, firstLine(j.error)) : h('span', {class: 'muted'}, '—'),
        `${j.attempt}/${j.max_attempts}`,
        ago(j.submitted_at),
        j.started_at ? duration(j.started_at, j.finished_at) : h('span', {class: 'muted'}, '—'),
        j.artifact_id ? idLink(`#/artifacts/${j.artifact_id}`, j.artifact_id) : h('span', {class: 'muted'}, '—'),
        again,
      ],
      tds: [null, {class: 'status-cell'}, {class: 'trigger-cell'}, {class: 'command'}, {class: 'error-cell'}, null, null, null, null, {class: 'actions'}],
    };
  }));
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
  const rerunBtn = h('button', {type: 'button', id: 'job-rerun', class: 'secondary', hidden: true, onclick: again}, 'Re-run');

  replace(root,
    h('div', {class: 'title-row'},
      h('h1', {}, 'Job ', idText(id)),
      statusEl,
      h('span', {class: 'spacer'}),
      h('span', {class: 'buttons'}, rerunBtn, cancelBtn, deleteBtn)),
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
    rerunBtn.hidden = !TERMINAL.has(j.status);
    const dl = [];
    const row = (k, ...v) => dl.push(h('dt', {}, k), h('dd', {}, ...v));
    row('ID', h('code', {class: 'id full-id', id: 'job-id'}, j.id));
    row('Command', h('code', {class: 'command'}, j.command));
    row('Type', j.type);
    row('Task', h('a', {href: `#/jobs?task_id=${encodeURIComponent(j.task_id)}`, class: 'id', title: `${j.task_id}: jobs of this task`}, short(j.task_id)));
    row('Trigger', h('span', {id: 'job-trigger'}, j.trigger === 'schedule' ? badge('schedule', 'trigger') : (j.trigger || 'api')));
    if (j.scheduled_for) row('Slot', h('span', {id: 'job-slot'}, fmtTime(j.scheduled_for)));
    if (j.priority) row('Priority', String(j.priority));
    row('Attempt', `${j.attempt} of ${j.max_attempts}`);
    row('Submitted', fmtTime(j.submitted_at));
    row('Started', fmtTime(j.started_at));
    row('Finished', fmtTime(j.finished_at));
    durationEl = h('span', {}, j.started_at ? duration(j.started_at, j.finished_at) : '—');
    row('Duration', durationEl);
    if (j.node) row('Node', j.node);
    if (j.progress) row('Progress', progressBar(j.progress, {withMessage: true}));
    if (j.exit_code !== null && j.exit_code !== undefined) row('Exit code', h('code', {id: 'job-exit-code', class: j.exit_code === 0 ? 'ok' : 'bad'}, String(j.exit_code)));
    if (j.error) row('Error', h('span', {id: 'job-error', class: 'bad'}, j.error));
    if (j.error_traceback) row('Traceback', h('details', {}, h('summary', {}, 'stack'), h('pre', {class: 'log'}, j.error_traceback)));
    if (j.params && Object.keys(j.params).length) row('Params', jsonView(j.params));
    if (j.env && Object.keys(j.env).length) row('Env', jsonView(j.env));
    if (j.result !== null && j.result !== undefined) row('Result', jsonView(j.result));
    row('Artifact', j.artifact_id ? h('a', {id: 'job-artifact', href: `#/artifacts/${j.artifact_id}`, class: 'id', title: j.artifact_id}, short(j.artifact_id))
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

  async function again() {
    replace(actionsProblem);
    rerunBtn.disabled = true;
    try {
      const r = await rerun(job);
      location.hash = `#/jobs/${r.job_id}`;
    } catch (err) {
      replace(actionsProblem, problemBox(err));
    } finally {
      rerunBtn.disabled = false;
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
            rerunBtn.hidden = true;
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
      console.warn('job stream ended, reconnecting:', (err && err.message) || err);
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
