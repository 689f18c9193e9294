// The artifacts views: a paged list with "open by id", and one artifact
// with its data pretty-printed and its subtree ($tree).

import {get, items} from './api.js';
import {fmtTime, grid, h, idLink, idText, jsonView, problemBox, replace, short} from './dom.js';

const PAGE_SIZE = 50;

export async function artifactsView(root, {query, signal}) {
  const page = Math.max(1, parseInt(query.get('page') || '1', 10) || 1);
  const input = h('input', {id: 'artifact-id', placeholder: 'artifact id (ULID)', autocomplete: 'off', spellcheck: 'false', required: true});
  const box = h('div', {class: 'table-box'}, h('p', {class: 'muted'}, 'Loading artifacts…'));
  const pager = h('div', {class: 'pager'});
  replace(root,
    h('h1', {}, 'Artifacts'),
    h('section', {class: 'card'},
      h('form', {class: 'toolbar', onsubmit: (e) => {
        e.preventDefault();
        const id = input.value.trim();
        if (id) location.hash = `#/artifacts/${encodeURIComponent(id)}`;
      }}, h('label', {class: 'inline grow'}, 'Open ', input), h('button', {type: 'submit'}, 'Open'))),
    h('section', {class: 'card'}, h('h2', {}, 'All artifacts (oldest first)'), box, pager));

  try {
    const body = await get(`artifacts?page=${page}&size=${PAGE_SIZE}`, {signal});
    const list = items(body);
    replace(box, list.length === 0 ? h('p', {class: 'muted'}, 'No artifacts yet: every finished job writes one.') :
      grid('artifact-table', ['Artifact', 'Parent', 'Level', 'Created', 'Data'], list.map(a => ({
        attrs: {'data-artifact-id': a.id},
        cells: [
          idLink(`#/artifacts/${a.id}`, a.id),
          a.parent_id ? idLink(`#/artifacts/${a.parent_id}`, a.parent_id) : h('span', {class: 'muted'}, '—'),
          String(a.level),
          fmtTime(a.created_at),
          preview(a.data),
        ],
      }))));
    const pages = body.pages || 1;
    replace(pager, pages > 1 ? [
      h('a', {class: 'button secondary', href: `#/artifacts?page=${page - 1}`, hidden: page <= 1}, '← Previous'),
      h('span', {class: 'muted'}, ` page ${page} of ${pages} (${body.total}) `),
      h('a', {class: 'button secondary', href: `#/artifacts?page=${page + 1}`, hidden: page >= pages}, 'Next →'),
    ] : null);
  } catch (err) {
    if (!signal.aborted) replace(box, problemBox(err));
  }
}

/** preview names what an artifact holds without printing all of it. */
function preview(data) {
  if (data && typeof data === 'object' && !Array.isArray(data)) {
    const keys = Object.keys(data);
    const what = data.job_id ? `job ${short(data.job_id)}` : '';
    return h('span', {class: 'muted', title: keys.join(', ')}, [what, `{${keys.slice(0, 6).join(', ')}${keys.length > 6 ? ', …' : ''}}`].filter(Boolean).join(' '));
  }
  const s = JSON.stringify(data);
  return h('code', {class: 'compact'}, s.length > 60 ? s.slice(0, 57) + '…' : s);
}

export async function artifactView(root, {params: [id], signal}) {
  const meta = h('div', {class: 'details'}, h('p', {class: 'muted'}, 'Loading…'));
  const output = h('div', {});
  const data = h('div', {id: 'artifact-data'});
  const tree = h('div', {id: 'artifact-tree'}, h('p', {class: 'muted'}, 'Loading…'));
  replace(root,
    h('h1', {}, 'Artifact ', idText(id)),
    h('section', {class: 'card'}, meta),
    output,
    h('section', {class: 'card'}, h('h2', {}, 'Data'), data),
    h('section', {class: 'card'}, h('h2', {}, 'Tree'), tree));

  const [a, t] = await Promise.allSettled([get(`artifacts/${encodeURIComponent(id)}`, {signal}), get(`artifacts/${encodeURIComponent(id)}/$tree`, {signal})]);
  if (signal.aborted) return;
  if (a.status === 'rejected') {
    replace(meta, problemBox(a.reason));
    replace(data);
  } else {
    const art = a.value;
    const d = art.data;
    replace(meta, h('dl', {},
      h('dt', {}, 'ID'), h('dd', {}, h('code', {class: 'id full-id'}, art.id)),
      h('dt', {}, 'Parent'), h('dd', {}, art.parent_id ? idLink(`#/artifacts/${art.parent_id}`, art.parent_id) : 'none (a root)'),
      h('dt', {}, 'Level'), h('dd', {}, String(art.level)),
      d && d.job_id ? [h('dt', {}, 'Job'), h('dd', {}, idLink(`#/jobs/${d.job_id}`, d.job_id))] : null,
      h('dt', {}, 'Created'), h('dd', {}, fmtTime(art.created_at)),
      h('dt', {}, 'Updated'), h('dd', {}, fmtTime(art.updated_at))));
    // A job's artifact holds its output as JSON strings; show it as text
    // too, where newlines read as newlines.
    if (d && typeof d === 'object' && (typeof d.stdout === 'string' || typeof d.stderr === 'string')) {
      replace(output, h('section', {class: 'card'}, h('h2', {}, 'Output'),
        typeof d.stdout === 'string' && d.stdout ? [h('h3', {}, 'stdout', d.stdout_truncated ? ' (truncated: the tail is kept)' : ''), h('pre', {class: 'log'}, d.stdout.replace(/\n$/, ''))] : null,
        typeof d.stderr === 'string' && d.stderr ? [h('h3', {}, 'stderr', d.stderr_truncated ? ' (truncated: the tail is kept)' : ''), h('pre', {class: 'log stderr'}, d.stderr.replace(/\n$/, ''))] : null,
        !d.stdout && !d.stderr ? h('p', {class: 'muted'}, 'No output.') : null));
    }
    replace(data, jsonView(d));
  }
  if (t.status === 'rejected') {
    replace(tree, problemBox(t.reason));
  } else {
    replace(tree, h('ul', {class: 'tree'}, treeNode(t.value, id)));
  }
}

function treeNode(n, current) {
  const kids = n.children || [];
  return h('li', {},
    n.id === current ? h('strong', {class: 'id', title: n.id}, short(n.id)) : idLink(`#/artifacts/${n.id}`, n.id),
    h('span', {class: 'muted'}, ` level ${n.level}${kids.length ? `, ${kids.length} child${kids.length === 1 ? '' : 'ren'}` : ''} — `),
    preview(n.data),
    kids.length ? h('ul', {}, kids.map(k => treeNode(k, current))) : null);
}
