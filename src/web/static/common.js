// Stalk — Celery monitoring server.
// Helpers shared by every dashboard page: API fetches and control POSTs, DOM building (text only:
// task data is never parsed as HTML), formatting, the current user's role, confirmation dialogs,
// the live feed (server-sent events) and the nav bar.
// Every URL is relative: the page's <base href> carries --url_prefix.
'use strict';

const Stalk = (() => {
  const TASK_STATES = ['PENDING', 'RECEIVED', 'STARTED', 'SUCCESS', 'FAILURE', 'RETRY', 'REVOKED', 'REJECTED'];

  // GET a JSON API path ("api/tasks") with query params; throws Error(message) on HTTP errors.
  async function api(path, params) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== '') query.set(k, v);
    }
    const qs = query.toString();
    let resp = null;
    // A 503 with Retry-After is the server saying "busy, ask again" (control calls that wait on
    // workers are limited): ask again twice before showing the error.
    for (let attempt = 0; ; ++attempt) {
      resp = await fetch(path + (qs ? '?' + qs : ''), {headers: {Accept: 'application/json'}});
      const retryAfter = parseFloat(resp.headers.get('Retry-After'));
      if (resp.status !== 503 || !(retryAfter >= 0) || attempt >= 2) break;
      await new Promise((resolve) => setTimeout(resolve, Math.min(retryAfter, 5) * 1000));
    }
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const err = new Error((body && body.error) || ('HTTP ' + resp.status));
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  // POST a control route ("api/worker/pool/grow/<w>") with form parameters; resolves to the reply's
  // JSON, throws Error(message) on HTTP errors. The pages are served with Referrer-Policy
  // no-referrer, under which a browser sends `Origin: null` on a POST, and the server refuses a
  // state change whose Origin (else Referer) does not match its Host (CSRF). `same-origin` here
  // makes the browser send the real Origin and Referer for this same-origin request only.
  async function post(path, params) {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null) body.set(k, v);  // '' is meaningful (no rate limit)
    }
    const resp = await fetch(path, {
      method: 'POST', body, referrerPolicy: 'same-origin', credentials: 'same-origin',
      headers: {Accept: 'application/json'},
    });
    let reply = null;
    try { reply = await resp.json(); } catch (e) { reply = null; }
    if (!resp.ok) {
      const err = new Error((reply && (reply.error || reply.message)) || ('HTTP ' + resp.status));
      err.status = resp.status;
      throw err;
    }
    return reply;
  }

  // The current principal, asked once per page: {user, role, auth_enabled}. On failure: a viewer
  // (buttons stay hidden; the server decides anyway).
  let whoamiPromise = null;
  function whoami() {
    if (!whoamiPromise) {
      whoamiPromise = api('api/stalk/whoami').catch(() => ({user: null, role: 'viewer', auth_enabled: true}));
    }
    return whoamiPromise;
  }
  async function canOperate() {
    const me = await whoami();
    return me.role === 'operator' || me.role === 'admin';
  }

  // An in-page confirmation (a <dialog>, not window.confirm: it can be styled, tested and says what
  // will happen). Resolves true when the user confirms.
  function confirmAction(title, detail, confirmLabel) {
    return new Promise((resolve) => {
      const ok = el('button', {type: 'button', className: 'danger', text: confirmLabel || 'Confirm'});
      const cancel = el('button', {type: 'button', text: 'Cancel'});
      const dialog = el('dialog', {className: 'confirm'}, [
        el('h2', {text: title}), el('p', {text: detail || ''}), el('div', {className: 'actions'}, [cancel, ok]),
      ]);
      const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
      ok.addEventListener('click', () => done(true));
      cancel.addEventListener('click', () => done(false));
      dialog.addEventListener('cancel', (ev) => { ev.preventDefault(); done(false); });  // Escape
      document.body.append(dialog);
      dialog.showModal();
      cancel.focus();
    });
  }

  // el('a', {href: 'x', className: 'c', text: 'label'}, [children]): attributes as DOM properties,
  // text as textContent. Never parses HTML.
  function el(tag, props, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'text') node.textContent = String(v);
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else node[k] = v;
    }
    for (const child of children || []) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function pad(n, w) { return String(n).padStart(w || 2, '0'); }

  // Epoch seconds -> "2024-05-01 12:03:04.123" in local time; '' for null/0.
  function fmtTime(ts) {
    if (!ts) return '';
    const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
           `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function fmtDuration(s) {
    if (s === null || s === undefined || s < 0) return '';
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms';
    if (s < 120) return s.toFixed(s < 10 ? 3 : 1) + ' s';
    if (s < 7200) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }

  function fmtAgo(ts, now) {
    if (!ts) return 'never';
    const s = Math.max(0, (now || Date.now() / 1000) - ts);
    if (s < 1) return 'just now';
    if (s < 90) return Math.round(s) + ' s ago';
    if (s < 5400) return Math.round(s / 60) + ' min ago';
    if (s < 172800) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' days ago';
  }

  function fmtNumber(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return '–';
    return Number(n).toLocaleString('en-US');
  }

  function stateBadge(state) {
    const cls = 'badge state-' + String(state || '').toLowerCase().replace(/[^a-z0-9_-]/g, '');
    return el('span', {className: cls, text: state || 'UNKNOWN'});
  }

  function taskHref(id) { return 'task/' + encodeURIComponent(id); }
  function workerHref(name) { return 'worker/' + encodeURIComponent(name); }
  function taskLink(id, text) { return el('a', {href: taskHref(id), className: 'mono', text: text || id}); }
  function workerLink(name) { return el('a', {href: workerHref(name), text: name}); }

  // The path after the page's base: "task/<id>" -> param('task') === id.
  function pathParam(kind) {
    const basePath = new URL(document.baseURI).pathname;
    let rest = location.pathname.startsWith(basePath) ? location.pathname.slice(basePath.length) : location.pathname;
    rest = rest.replace(/^\/+/, '');
    const prefix = kind + '/';
    if (!rest.startsWith(prefix)) return '';
    return decodeURIComponent(rest.slice(prefix.length).replace(/\/+$/, ''));
  }

  function showError(message) {
    const box = document.getElementById('error');
    if (!box) return;
    box.textContent = message || '';
    box.hidden = !message;
  }

  // The outcome of a control action, as text, in the page's #control-result box.
  function showControlResult(ok, text) {
    const box = document.getElementById('control-result');
    box.hidden = false;
    box.classList.toggle('ok', ok);
    box.classList.toggle('failed', !ok);
    box.textContent = text;
  }

  // ---- live feed: one EventSource per page, shared by every subscriber --------------------------
  const subscribers = [];
  let source = null;
  let lastMessageAt = 0;

  function setLive(on, text) {
    const badge = document.getElementById('live');
    if (!badge) return;
    badge.classList.toggle('on', on);
    badge.classList.toggle('off', !on);
    badge.textContent = text;
  }

  function connect() {
    source = new EventSource('api/events/stream');
    source.onopen = () => setLive(true, 'live');
    source.onerror = () => setLive(false, 'reconnecting');  // EventSource retries by itself
    source.onmessage = (ev) => {
      lastMessageAt = Date.now();
      setLive(true, 'live');
      let data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      for (const fn of subscribers) {
        try { fn(data); } catch (e) { console.warn('live update failed', e); }
      }
    };
  }

  // fn(message) for every live-feed message (about once a second).
  function onLive(fn) {
    subscribers.push(fn);
    if (!source) connect();
  }

  // Runs fn at most once per `ms`, and once more after a burst (trailing call); skips while a
  // previous async fn is still running.
  function throttle(fn, ms) {
    let last = 0, timer = null, running = false;
    const run = async () => {
      timer = null;
      if (running) { timer = setTimeout(run, ms); return; }
      running = true;
      last = Date.now();
      try { await fn(); } finally { running = false; }
    };
    return () => {
      if (timer) return;
      const wait = Math.max(0, last + ms - Date.now());
      timer = setTimeout(run, wait);
    };
  }

  function markNav() {
    const page = document.body.dataset.page;
    const active = page === 'worker' ? 'workers' : page === 'task' ? 'tasks' : page;
    for (const a of document.querySelectorAll('header.top nav a')) {
      a.classList.toggle('active', a.dataset.nav === active);
    }
  }
  markNav();
  setInterval(() => {
    if (source && lastMessageAt && Date.now() - lastMessageAt > 5000) setLive(false, 'stalled');
  }, 2000);

  return {
    TASK_STATES, api, post, whoami, canOperate, confirmAction, el, fmtTime, fmtDuration, fmtAgo, fmtNumber,
    stateBadge, taskHref, workerHref, taskLink, workerLink, pathParam, showError, showControlResult, onLive,
    throttle,
  };
})();
