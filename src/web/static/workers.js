// Stalk — Celery monitoring server.
// Workers page: every worker Stalk knows, with status, counts, load and last heartbeat; refreshed
// from the live feed.
'use strict';

(() => {
  const {el, api, fmtNumber, fmtAgo, onLive, showError, throttle, workerLink} = Stalk;
  const tbody = document.querySelector('#workers tbody');

  async function refresh() {
    try {
      const [workers, summary] = await Promise.all([api('api/workers'), api('api/stalk/summary')]);
      showError('');
      const now = Date.now() / 1000;
      const names = Object.keys(workers).sort();
      const counts = summary.by_worker || {};
      document.getElementById('workers-count').textContent =
          `${summary.workers.online} online, ${summary.workers.offline} offline`;
      if (!names.length) {
        tbody.replaceChildren(el('tr', {}, [el('td', {className: 'empty', colSpan: 9, text: 'No worker has sent an event yet.'})]));
        return;
      }
      tbody.replaceChildren(...names.map((name) => {
        const w = workers[name];
        const c = counts[name] || {};
        const online = w.status === true || w.status === 'online';
        return el('tr', {}, [
          el('td', {}, [workerLink(name)]),
          el('td', {}, [el('span', {className: 'badge ' + (online ? 'status-online' : 'status-offline'), text: online ? 'online' : 'offline'})]),
          el('td', {className: 'num', text: fmtNumber(Array.isArray(w.active) ? w.active.length : w.active)}),
          el('td', {className: 'num', text: fmtNumber(w.processed)}),
          el('td', {className: 'num', text: fmtNumber(c.SUCCESS || 0)}),
          el('td', {className: 'num', text: fmtNumber(c.FAILURE || 0)}),
          el('td', {className: 'num mono', text: Array.isArray(w.loadavg) ? w.loadavg.map((v) => Number(v).toFixed(2)).join(' ') : ''}),
          el('td', {text: fmtAgo(w.last_heartbeat, now)}),
          el('td', {text: [w.sw_ident, w.sw_ver].filter(Boolean).join(' ')}),
        ]);
      }));
    } catch (e) {
      showError('Cannot load workers: ' + e.message);
    }
  }

  const refreshSoon = throttle(refresh, 2000);
  refresh();
  onLive(() => refreshSoon());
})();
