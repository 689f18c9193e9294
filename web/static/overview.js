// The overview: what a person keeps open on a second screen. Counts of
// jobs by status, completions and failures per minute over the last hour
// (from GET /api/v1/jobs/$summary, drawn here as inline SVG: no chart
// library, no CDN), the jobs running now with their progress, and the
// nodes sharing the database (GET /api/v1/system's nodes when the server
// reports them, else this server's own facts).

import {get, items} from './api.js';
import {ago, badge, duration, grid, h, idLink, problemBox, progressBar, replace, svg} from './dom.js';

const REFRESH_MS = 5000;
const STATUSES = ['pending', 'running', 'completed', 'failed', 'canceled'];

export async function overviewView(root, {signal}) {
  const counts = h('div', {class: 'counts', id: 'overview-counts'}, h('p', {class: 'muted'}, 'Loading…'));
  const totals = h('span', {id: 'chart-totals', class: 'muted'});
  const chart = h('div', {class: 'chart', id: 'overview-chart'});
  const running = h('div', {id: 'overview-running'}, h('p', {class: 'muted'}, 'Loading…'));
  const nodes = h('div', {id: 'overview-nodes'}, h('p', {class: 'muted'}, 'Loading…'));
  const auto = h('input', {type: 'checkbox', checked: true, id: 'overview-autorefresh'});

  replace(root,
    h('div', {class: 'title-row'}, h('h1', {}, 'Overview'), h('span', {class: 'spacer'}), h('label', {class: 'inline'}, auto, ' auto-refresh')),
    h('section', {class: 'card'}, h('h2', {}, 'Jobs by status'), counts),
    h('section', {class: 'card'},
      h('div', {class: 'card-head'}, h('h2', {}, 'Finished per minute, last hour'),
        h('span', {class: 'legend'}, h('span', {class: 'swatch completed'}), 'completed ', h('span', {class: 'swatch failed'}), 'failed')),
      chart, totals),
    h('div', {class: 'columns'},
      h('section', {class: 'card'}, h('h2', {}, 'Running now'), running),
      h('section', {class: 'card'}, h('h2', {}, 'Nodes'), nodes)));

  let summary = null;
  const redraw = () => { if (summary) replace(chart, drawChart(summary, chart.clientWidth)); };
  window.addEventListener('resize', redraw, {signal});

  async function load() {
    const [sum, sys, run] = await Promise.allSettled([
      get('jobs/$summary', {signal}),
      get('system', {signal}),
      get('jobs?status=running&page=1&size=10', {signal}),
    ]);
    if (signal.aborted) return;
    if (sum.status === 'fulfilled') {
      summary = sum.value;
      replace(counts, countTiles(summary));
      redraw();
      const perMin = summary.completed / summary.minutes.length;
      const busiest = Math.max(...summary.minutes.map(m => m.completed + m.failed), 0);
      replace(totals, `${summary.completed} completed, ${summary.failed} failed`, summary.canceled ? `, ${summary.canceled} canceled` : '',
        ' in the last hour', perMin >= 1 ? ` (${perMin >= 10 ? Math.round(perMin) : perMin.toFixed(1)} completed a minute on average)` : '',
        busiest ? `; the busiest minute finished ${busiest}.` : '.');
    } else {
      replace(counts, problemBox(sum.reason));
      replace(chart);
    }
    if (run.status === 'fulfilled') {
      const list = items(run.value);
      const more = (run.value.total || 0) - list.length;
      replace(running, list.length === 0 ? h('p', {class: 'muted'}, 'No job is running.') : [
        h('ul', {class: 'running-list'}, list.map(j => h('li', {'data-job-id': j.id},
          idLink(`#/jobs/${j.id}`, j.id), ' ', h('code', {}, j.command), ' ',
          j.progress ? progressBar(j.progress) : h('span', {class: 'muted'}, 'no progress reported'),
          h('span', {class: 'muted'}, ` for ${duration(j.started_at, null)}`)))),
        more > 0 ? h('p', {}, h('a', {href: '#/jobs?status=running'}, `and ${more} more`)) : null,
      ]);
    } else {
      replace(running, problemBox(run.reason));
    }
    if (sys.status === 'fulfilled') replace(nodes, nodeList(sys.value));
    else replace(nodes, problemBox(sys.reason));
  }

  await load();
  const timer = setInterval(() => {
    if (auto.checked && !document.hidden) load();
  }, REFRESH_MS);
  signal.addEventListener('abort', () => clearInterval(timer));
}

function countTiles(s) {
  return [
    STATUSES.map(st => h('a', {class: `count count-${st}`, href: `#/jobs?status=${st}`, 'data-status': st, 'data-count': String(s.counts[st] || 0)},
      h('span', {class: 'n'}, String(s.counts[st] || 0)), badge(st))),
    h('a', {class: 'count count-total', href: '#/jobs', 'data-status': 'total', 'data-count': String(s.total)},
      h('span', {class: 'n'}, String(s.total)), h('span', {class: 'muted'}, 'all jobs')),
  ];
}

/** niceCeil rounds a chart's top up to 1, 2 or 5 times a power of ten. */
function niceCeil(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * drawChart draws the summary's minutes as stacked bars — completed below,
 * failed above — at the container's pixel width, so labels keep their size
 * on a phone (the view redraws on resize).
 */
function drawChart(s, width) {
  const W = Math.max(260, Math.floor(width || 600));
  const H = 170;
  const pad = {l: 34, r: 8, t: 10, b: 24};
  const pw = W - pad.l - pad.r;
  const ph = H - pad.t - pad.b;
  const n = s.minutes.length;
  const top = niceCeil(Math.max(...s.minutes.map(m => m.completed + m.failed), 0));
  const y = (v) => pad.t + ph - (v / top) * ph;
  const slot = pw / n;
  const bw = Math.max(1, slot - (slot > 4 ? 1.5 : 0.5));
  const fmt = new Intl.DateTimeFormat(undefined, {hour: '2-digit', minute: '2-digit'});

  const parts = [];
  for (const v of Number.isInteger(top / 2) ? [0, top / 2, top] : [0, top]) {
    parts.push(svg('line', {x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: 'grid-line'}),
      svg('text', {x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis'}, Number.isInteger(v) ? String(v) : v.toFixed(1)));
  }
  s.minutes.forEach((m, i) => {
    const x = pad.l + i * slot + (slot - bw) / 2;
    const label = `${fmt.format(new Date(m.start))}: ${m.completed} completed, ${m.failed} failed${m.canceled ? `, ${m.canceled} canceled` : ''}`;
    parts.push(svg('g', {class: 'bar', 'data-minute': i, 'data-completed': m.completed, 'data-failed': m.failed},
      svg('title', {}, label),
      // A transparent full-height rect makes the whole slot hoverable.
      svg('rect', {x: pad.l + i * slot, y: pad.t, width: slot, height: ph, class: 'hit'}),
      m.completed ? svg('rect', {x, y: y(m.completed), width: bw, height: y(0) - y(m.completed), class: 'completed'}) : null,
      m.failed ? svg('rect', {x, y: y(m.completed + m.failed), width: bw, height: y(m.completed) - y(m.completed + m.failed), class: 'failed'}) : null));
  });
  // Fewer time labels on a narrow chart, so they do not run together.
  for (const back of W < 480 ? [60, 30, 0] : [60, 45, 30, 15, 0]) {
    const i = n - back; // minutes before the end of the window
    const x = pad.l + Math.min(n, Math.max(0, i)) * slot;
    parts.push(svg('text', {x, y: H - 6, 'text-anchor': back === 60 ? 'start' : back === 0 ? 'end' : 'middle', class: 'axis'},
      back === 0 ? 'now' : `−${back} min`));
  }
  return svg('svg', {width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', id: 'throughput-chart',
    'aria-label': `Jobs finished per minute over the last hour: ${s.completed} completed, ${s.failed} failed`}, parts);
}

/** nodeList shows the live nodes the server reports (job.Node: id, host,
 * pid, version, started_at, last_seen), or this server alone when the
 * server lists none. */
function nodeList(sys) {
  if (Array.isArray(sys.nodes) && sys.nodes.length) {
    return h('div', {class: 'table-box'}, grid('node-table', ['Node', 'Host', 'Version', 'Started', 'Last seen'], sys.nodes.map(n => ({
      attrs: {'data-node': n.id},
      cells: [
        [h('code', {class: 'node-name'}, n.id), n.id === sys.node ? [' ', h('span', {class: 'chip'}, 'this server')] : null],
        n.host ? `${n.host}${n.pid ? ` (pid ${n.pid})` : ''}` : h('span', {class: 'muted'}, '—'),
        n.version || h('span', {class: 'muted'}, '—'),
        n.started_at ? ago(n.started_at) : h('span', {class: 'muted'}, '—'),
        n.last_seen ? ago(n.last_seen) : h('span', {class: 'muted'}, '—'),
      ],
    }))));
  }
  return [h('dl', {class: 'facts', 'data-node': sys.node || ''},
    h('dt', {}, 'Node'), h('dd', {}, h('code', {class: 'node-name'}, sys.node || '—'), ' ', h('span', {class: 'chip'}, 'this server')),
    h('dt', {}, 'Host'), h('dd', {}, `${sys.hostname} (pid ${sys.pid}, ${sys.num_cpu} CPUs)`),
    h('dt', {}, 'Up'), h('dd', {}, duration(sys.started_at, sys.now), h('span', {class: 'muted'}, `, ${sys.go_version}`)),
    sys.database ? [h('dt', {}, 'Database'), h('dd', {}, h('code', {class: 'wrap'}, sys.database))] : null),
  h('p', {class: 'muted note'}, 'The server does not list other nodes; this is the one the console talks to.')];
}
