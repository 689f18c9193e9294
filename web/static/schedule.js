// A task's schedule and limits as the tasks view shows and edits them: one
// set of fields (schedule, timezone, overlap, catch_up, max_concurrent,
// priority) for both the create and the edit form, and the table cells for
// a task's schedule, next run and limits.
//
// The console does not parse cron expressions or check zones: the server
// does, and its 422 names the field at fault (body.schedule,
// body.timezone), which the form shows at that field. A second parser here
// could only disagree with the server's. The browser's own list of zones
// (Intl.supportedValuesOf) only feeds the timezone field's suggestions.

import {fmtShort, h, until} from './dom.js';

const OVERLAP = [
  ['skip', 'skip the slot (default)'],
  ['queue', 'queue it after the running job'],
  ['allow', 'allow it to run beside'],
  ['cancel_previous', 'cancel the running job'],
];
const CATCH_UP = [
  ['latest', 'the latest missed slot (default)'],
  ['none', 'none'],
  ['all', 'all missed slots (at most 10)'],
];
const EXAMPLES = [
  ['*/15 * * * *', 'every 15 minutes'],
  ['0 * * * *', 'every hour, on the hour'],
  ['0 9 * * MON-FRI', '09:00 on weekdays'],
  ['@daily', 'every day at midnight'],
  ['@weekly', 'Sundays at midnight'],
  ['@every 10m', 'every 10 minutes since the epoch, any zone'],
];

const browserZone = (() => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch {
    return '';
  }
})();

/** suggestions are the datalists the schedule fields share; the page needs
 * them once, wherever the forms are. */
export function suggestions() {
  let zones = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch { /* an older browser: the field still takes any name */ }
  if (!zones.includes('UTC')) zones = ['UTC', ...zones];
  return [
    h('datalist', {id: 'schedule-examples'}, EXAMPLES.map(([v, label]) => h('option', {value: v}, label))),
    h('datalist', {id: 'timezone-names'}, zones.map(z => h('option', {value: z}))),
  ];
}

function choice(id, name, options, value) {
  return h('select', {id, name}, options.map(([v, label]) => h('option', {value: v, selected: v === value}, label)));
}

/** intField reads an optional integer field: null when blank. */
function intField(input, label) {
  const v = input.value.trim();
  if (v === '') return null;
  const n = Number(v);
  if (!Number.isInteger(n)) {
    input.setAttribute('aria-invalid', 'true');
    input.addEventListener('input', () => input.removeAttribute('aria-invalid'), {once: true});
    input.focus();
    throw new Error(`${label} must be a whole number, got ${JSON.stringify(v)}`);
  }
  return n;
}

/**
 * scheduleFields builds the schedule and limit fields; idPrefix makes their
 * ids unique on the page. It returns {el, read(), set(task), reset(),
 * patch(task), inputs}: read() gives the values to create a task with (only
 * those given), patch(task) the PATCH body that turns task's values into
 * the form's (only what changed; a cleared field is null, which the server
 * resets: no schedule, UTC, unlimited, priority 0), and inputs maps each
 * API location (body.schedule, …) to its input, for markFields.
 */
export function scheduleFields(idPrefix) {
  const schedule = h('input', {id: `${idPrefix}-schedule`, name: 'schedule', autocomplete: 'off', spellcheck: 'false',
    list: 'schedule-examples', placeholder: 'none — */15 * * * *, @daily, @every 10m'});
  const timezone = h('input', {id: `${idPrefix}-timezone`, name: 'timezone', autocomplete: 'off', spellcheck: 'false',
    list: 'timezone-names', placeholder: browserZone && browserZone !== 'UTC' ? `UTC (this browser: ${browserZone})` : 'UTC'});
  const overlap = choice(`${idPrefix}-overlap`, 'overlap', OVERLAP, 'skip');
  const catchUp = choice(`${idPrefix}-catch-up`, 'catch_up', CATCH_UP, 'latest');
  const maxConcurrent = h('input', {id: `${idPrefix}-max-concurrent`, name: 'max_concurrent', type: 'number', min: '1', max: '100000', step: '1', placeholder: 'unlimited'});
  const priority = h('input', {id: `${idPrefix}-priority`, name: 'priority', type: 'number', min: '-1000', max: '1000', step: '1', placeholder: '0'});

  const el = h('div', {class: 'schedule-fields'},
    h('div', {class: 'row'},
      h('label', {class: 'wide-field'}, 'Schedule (5 cron fields, @hourly/@daily/…, or @every 10m; blank: none)', schedule),
      h('label', {}, 'Timezone (IANA name)', timezone)),
    h('div', {class: 'row'},
      h('label', {title: 'What a slot does while a job of this task is still pending or running'}, 'When the last run is still going', overlap),
      h('label', {title: 'Slots missed while no server was running'}, 'Catch up missed slots', catchUp),
      h('label', {title: 'At most this many jobs of the task run at once, over all servers'}, 'Max concurrent jobs', maxConcurrent),
      h('label', {title: 'Higher runs first among ready jobs, -1000 to 1000'}, 'Priority', priority)));

  function values() {
    return {
      schedule: schedule.value.trim() || null,
      timezone: timezone.value.trim() || null,
      overlap: overlap.value,
      catch_up: catchUp.value,
      max_concurrent: intField(maxConcurrent, 'max concurrent jobs'),
      priority: intField(priority, 'priority'),
    };
  }

  return {
    el,
    inputs: {
      'body.schedule': schedule, 'body.timezone': timezone, 'body.overlap': overlap, 'body.catch_up': catchUp,
      'body.max_concurrent': maxConcurrent, 'body.priority': priority,
    },
    read() {
      const v = values();
      const body = {overlap: v.overlap, catch_up: v.catch_up};
      for (const k of ['schedule', 'timezone', 'max_concurrent', 'priority']) {
        if (v[k] !== null) body[k] = v[k];
      }
      return body;
    },
    patch(t) {
      const v = values();
      const body = {};
      if (v.schedule !== (t.schedule ?? null)) body.schedule = v.schedule;
      if ((v.timezone || 'UTC') !== t.timezone) body.timezone = v.timezone;
      if (v.overlap !== t.overlap) body.overlap = v.overlap;
      if (v.catch_up !== t.catch_up) body.catch_up = v.catch_up;
      if (v.max_concurrent !== (t.max_concurrent ?? null)) body.max_concurrent = v.max_concurrent;
      if ((v.priority ?? 0) !== t.priority) body.priority = v.priority;
      return body;
    },
    set(t) {
      schedule.value = t.schedule || '';
      timezone.value = t.timezone || '';
      overlap.value = t.overlap || 'skip';
      catchUp.value = t.catch_up || 'latest';
      maxConcurrent.value = t.max_concurrent ?? '';
      priority.value = t.priority ? String(t.priority) : '';
    },
    reset() {
      this.set({});
    },
  };
}

/** everySchedule: an @every schedule's slots do not depend on its zone. */
const everySchedule = (s) => /^@every\s/.test(s);

/** scheduleCell shows a task's schedule, its zone (when it matters and is
 * not UTC) and the policies that differ from the defaults. */
export function scheduleCell(t) {
  if (!t.schedule) return h('span', {class: 'muted'}, '—');
  const notes = [];
  if (t.timezone && t.timezone !== 'UTC' && !everySchedule(t.schedule)) notes.push(t.timezone);
  if (t.overlap && t.overlap !== 'skip') notes.push(`overlap ${t.overlap}`);
  if (t.catch_up && t.catch_up !== 'latest') notes.push(`catch up ${t.catch_up}`);
  return [h('code', {class: 'schedule'}, t.schedule),
    notes.length ? h('div', {class: 'muted schedule-notes'}, notes.join(' · ')) : null];
}

/** nextRun shows when the task fires next, and how soon; a scheduled task
 * that is disabled does not fire, and says so. */
export function nextRun(t) {
  if (!t.next_fire_at) {
    return h('span', {class: 'muted'}, t.schedule && !t.enabled ? 'not while disabled' : '—');
  }
  const when = fmtShort(t.next_fire_at);
  // The tooltip adds the time in the task's own zone, the one its
  // schedule is read in.
  try {
    const d = new Date(t.next_fire_at);
    if (t.timezone && t.timezone !== Intl.DateTimeFormat().resolvedOptions().timeZone) {
      when.title = `${d.toLocaleString()} here, ${d.toLocaleString(undefined, {timeZone: t.timezone})} in ${t.timezone}`;
    }
  } catch { /* a zone this browser does not know: the tooltip keeps the local time */ }
  return [when, h('div', {class: 'muted until'}, until(t.next_fire_at))];
}

/** limitsCell shows what bounds a task's jobs, one per line, when set:
 * timeout, retries, max_concurrent and priority. */
export function limitsCell(t) {
  const parts = [];
  if (t.timeout_seconds) parts.push(`timeout ${t.timeout_seconds} s`);
  if (t.retries) parts.push(`${t.retries} ${t.retries === 1 ? 'retry' : 'retries'}`);
  if (t.max_concurrent) parts.push(`≤ ${t.max_concurrent} at once`);
  if (t.priority) parts.push(`priority ${t.priority}`);
  return parts.length ? parts.map(p => h('div', {}, p)) : h('span', {class: 'muted'}, '—');
}
