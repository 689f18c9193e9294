// The console's client for servicekit's JSON API (/api/v1).
//
// Auth: when the server has API keys, any call may answer 401. The console
// then asks for a key once (one dialog, however many calls were waiting),
// keeps it in localStorage so a reload does not ask again, and sends it as
// X-API-Key on every call. The key is only ever sent to this origin.
//
// Streams: EventSource cannot send headers, so the job stream is read with
// fetch() and a small server-sent-events parser instead; that way the same
// X-API-Key header works for it too, and resuming sends Last-Event-ID the
// way EventSource would.

const KEY_STORAGE = 'servicekit.apiKey';

// Relative to the page, so a console mounted under a path prefix calls the
// API under the same prefix.
const apiBase = new URL('api/v1/', document.baseURI);

/** ApiError is a failed call; problem is the RFC 9457 body when there was one. */
export class ApiError extends Error {
  constructor(status, problem, fallback) {
    super((problem && (problem.detail || problem.title)) || fallback || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem;
  }
}

export function getKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || '';
  } catch {
    return ''; // storage disabled: the key lives only as long as the page
  }
}

let memoryKey = '';

function currentKey() {
  return getKey() || memoryKey;
}

export function setKey(k) {
  memoryKey = k;
  try {
    if (k) localStorage.setItem(KEY_STORAGE, k);
    else localStorage.removeItem(KEY_STORAGE);
  } catch { /* see getKey */ }
}

// The dialog is shared: concurrent 401s wait for the same answer, and once
// the user has dismissed it the console stops asking on its own (a list
// that refreshes every few seconds would otherwise re-open it forever);
// the header's "API key" button asks again.
let pendingAsk = null;
let declined = false;

/**
 * askForKey shows the key dialog and resolves with the key entered, or
 * rejects when the user cancels. reason is shown as the dialog's message.
 */
export function askForKey(reason, {force = false} = {}) {
  if (pendingAsk) return pendingAsk;
  if (declined && !force) return Promise.reject(new ApiError(401, null, 'An API key is required: use the "API key" button to enter one.'));
  const dialog = document.getElementById('key-dialog');
  const form = document.getElementById('key-form');
  const input = document.getElementById('key-input');
  const message = document.getElementById('key-message');
  const cancel = document.getElementById('key-cancel');
  const forget = document.getElementById('key-forget');
  message.textContent = reason;
  input.value = currentKey();
  forget.hidden = !currentKey();
  pendingAsk = new Promise((resolve, reject) => {
    const done = (fn, v) => {
      form.removeEventListener('submit', onSubmit);
      cancel.removeEventListener('click', onCancel);
      forget.removeEventListener('click', onForget);
      dialog.removeEventListener('cancel', onCancel);
      dialog.close();
      pendingAsk = null;
      fn(v);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      const k = input.value.trim();
      if (!k) return;
      setKey(k);
      declined = false;
      done(resolve, k);
    };
    const onCancel = (e) => {
      e.preventDefault();
      declined = true;
      done(reject, new ApiError(401, null, 'An API key is required: use the "API key" button to enter one.'));
    };
    const onForget = (e) => {
      e.preventDefault();
      setKey('');
      declined = true;
      done(reject, new ApiError(401, null, 'The API key was removed.'));
    };
    form.addEventListener('submit', onSubmit);
    cancel.addEventListener('click', onCancel);
    forget.addEventListener('click', onForget);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    input.focus();
  });
  return pendingAsk;
}

function apiURL(path) {
  return new URL(path.replace(/^\/+/, ''), apiBase);
}

function headers(extra) {
  const hd = new Headers(extra);
  const k = currentKey();
  if (k) hd.set('X-API-Key', k);
  return hd;
}

async function toError(res) {
  const ct = res.headers.get('Content-Type') || '';
  let problem = null;
  let text = '';
  try {
    if (ct.includes('json')) problem = await res.json();
    else text = (await res.text()).trim();
  } catch { /* a body that does not parse is no more help than none */ }
  return new ApiError(res.status, problem, text ? `${res.status} ${res.statusText}: ${text.slice(0, 200)}` : `${res.status} ${res.statusText}`);
}

/**
 * send fetches path with the API key, asking for a key on 401 (and again,
 * with a different message, when the key sent was rejected).
 */
async function send(path, init) {
  for (let attempt = 0; ; attempt++) {
    const sentKey = currentKey();
    const res = await fetch(apiURL(path), {...init, headers: headers(init.headers)});
    if (res.status !== 401 || attempt >= 3) return res;
    const err = await toError(res);
    if (sentKey && currentKey() === sentKey) setKey('');
    await askForKey(sentKey
      ? `The server rejected the API key (${err.message}). Enter another one.`
      : 'This server needs an API key. It is kept in this browser (localStorage) and sent as X-API-Key.');
  }
}

/**
 * api calls the JSON API and returns the decoded body (null for 204).
 * A non-2xx answer throws an ApiError carrying the problem.
 */
export async function api(method, path, body, {signal} = {}) {
  const init = {method, signal, headers: {Accept: 'application/json'}};
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await send(path, init);
  if (!res.ok) throw await toError(res);
  if (res.status === 204) return null;
  const ct = res.headers.get('Content-Type') || '';
  return ct.includes('json') ? res.json() : res.text();
}

export const get = (path, opts) => api('GET', path, undefined, opts);

/** items accepts a list endpoint's array or page object and returns the array. */
export function items(body) {
  return Array.isArray(body) ? body : (body && body.items) || [];
}

/**
 * stream reads a server-sent-events endpoint and calls onEvent({event,
 * data, id}) for each event. It resolves when the server closes the
 * stream and rejects on an HTTP error; state.lastEventId is kept up to
 * date so a caller can resume where it stopped.
 */
export async function stream(path, onEvent, {signal, state = {}} = {}) {
  const hd = {Accept: 'text/event-stream'};
  if (state.lastEventId) hd['Last-Event-ID'] = state.lastEventId;
  const res = await send(path, {method: 'GET', headers: hd, signal, cache: 'no-store'});
  if (!res.ok) throw await toError(res);
  const parser = new SSEParser((ev) => {
    if (ev.id !== undefined) state.lastEventId = ev.id;
    onEvent(ev);
  });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      parser.push(value);
    }
    parser.end();
  } finally {
    reader.releaseLock();
  }
}

/**
 * SSEParser implements the event-stream format of the HTML standard: lines
 * end in \n, \r\n or \r (possibly split across chunks), "field: value"
 * lines accumulate until a blank line dispatches the event, "data" lines
 * join with \n, lines starting with ":" are comments (keep-alives).
 */
export class SSEParser {
  constructor(dispatch) {
    this.dispatch = dispatch;
    this.buf = '';
    this.reset();
    this.lastId = undefined;
  }

  reset() {
    this.event = '';
    this.data = [];
    this.sawId = false;
  }

  push(chunk) {
    this.buf += chunk;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) return;
      // A lone \r at the very end may be the first half of \r\n.
      if (m[0] === '\r' && m.index === this.buf.length - 1) return;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line);
    }
  }

  end() {
    if (this.buf) this.line(this.buf.replace(/\r$/, ''));
    this.buf = '';
    // An event without its closing blank line is incomplete: dropped, as a browser would.
  }

  line(line) {
    if (line === '') {
      if (this.data.length) {
        this.dispatch({event: this.event || 'message', data: this.data.join('\n'), id: this.sawId ? this.lastId : undefined});
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) {
      this.lastId = value;
      this.sawId = true;
    }
  }
}
