// The console's entry point: a hash router over the views.
//
// Hash routing (#/tasks, #/jobs/{id}, …) keeps every view on the one page
// the server serves at "/", so the server needs no route per view and a
// reload or a shared link still lands on the right view.

import {askForKey, get} from './api.js';
import {h, replace} from './dom.js';
import {overviewView} from './overview.js';
import {tasksView} from './tasks.js';
import {jobsView, jobView} from './jobs.js';
import {artifactsView, artifactView} from './artifacts.js';

const routes = [
  {re: /^\/overview$/, nav: 'overview', view: overviewView},
  {re: /^\/tasks$/, nav: 'tasks', view: tasksView},
  {re: /^\/jobs$/, nav: 'jobs', view: jobsView},
  {re: /^\/jobs\/([^/]+)$/, nav: 'jobs', view: jobView},
  {re: /^\/artifacts$/, nav: 'artifacts', view: artifactsView},
  {re: /^\/artifacts\/([^/]+)$/, nav: 'artifacts', view: artifactView},
];

const app = document.getElementById('app');
let current = null; // the AbortController of the view on screen

/** parseHash splits "#/jobs?status=failed" into a path and its query. */
function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  return {path, query};
}

function route() {
  const {path, query} = parseHash();
  if (path === '/' || path === '') {
    location.replace('#/overview');
    return;
  }
  // Each view gets a signal that aborts when the user leaves it, which stops
  // its timers and closes its streams; and a fresh container, so a late
  // answer for a view already left lands in a detached node, not on screen.
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  const root = h('div', {class: 'view'});
  replace(app, root);
  let match = null;
  let r = null;
  for (r of routes) {
    match = r.re.exec(path);
    if (match) break;
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', Boolean(match) && a.dataset.nav === r.nav);
  }
  if (!match) {
    replace(root, h('h1', {}, 'Not found'), h('p', {}, 'There is no view at ', h('code', {}, '#' + path), '. ', h('a', {href: '#/tasks'}, 'Go to tasks'), '.'));
    return;
  }
  const params = match.slice(1).map(decodeURIComponent);
  Promise.resolve(r.view(root, {params, query, signal})).catch((err) => {
    if (signal.aborted) return;
    console.error(err);
    root.append(h('div', {class: 'problem', role: 'alert'}, h('strong', {}, String(err && err.message || err))));
  });
}

async function loadInfo() {
  try {
    const info = await get('info');
    if (info && info.display_name) {
      document.getElementById('service-name').textContent = info.display_name;
      document.title = `${info.display_name} — console`;
      if (info.version) document.getElementById('service-version').textContent = `v${info.version}`;
    }
  } catch { /* the views show API errors; the name is decoration */ }
}

document.getElementById('key-button').addEventListener('click', () => {
  askForKey('Enter the API key for this server. It is kept in this browser (localStorage) and sent as X-API-Key.', {force: true})
    .then(() => route(), () => {});
});

window.addEventListener('hashchange', route);
route();
loadInfo();
