// Stalk — Celery monitoring server.
// Cost page ("top consumers"): worker time by task name, queue or worker from /api/stalk/cost, with
// money when Stalk runs with --cost_per_worker_hour; a window selector (since start, 1 h, 24 h, 7 d);
// task names link to their task-type page.
'use strict';

(() => {
  const {el, api, fmtDuration, fmtNumber, onLive, showError, throttle} = Stalk;
  const tbody = document.querySelector('#cost tbody');
  const group = document.getElementById('cost-group');
  const windowSel = document.getElementById('cost-window');

  async function refresh() {
    try {
      const cost = await api('api/stalk/cost', {group: group.value, limit: 100, window: windowSel.value});
      showError('');
      const total = cost.rows.reduce((s, r) => s + r.worker_seconds, 0);
      document.getElementById('cost-hint').textContent = `${fmtDuration(total)} in all` +
          (cost.cost_per_worker_hour ? ` · ${(total / 3600 * cost.cost_per_worker_hour).toFixed(2)} at ${cost.cost_per_worker_hour}/worker-hour` : '');
      if (!cost.rows.length) {
        tbody.replaceChildren(el('tr', {}, [el('td', {className: 'empty', colSpan: 5, text: 'No finished task yet.'})]));
        return;
      }
      tbody.replaceChildren(...cost.rows.map((r) => el('tr', {}, [
        el('td', {}, [group.value === 'name' && r.key
          ? el('a', {href: 'task-type/' + encodeURIComponent(r.key), text: r.key})
          : el('span', {text: r.key || '(none)'})]),
        el('td', {className: 'num', text: fmtDuration(r.worker_seconds)}),
        el('td', {className: 'num', text: fmtNumber(r.tasks)}),
        el('td', {className: 'num', text: total ? (100 * r.worker_seconds / total).toFixed(1) + '%' : ''}),
        el('td', {className: 'num', text: cost.cost_per_worker_hour ? r.cost.toFixed(2) : '—'}),
      ])));
    } catch (e) {
      showError('Cannot load the cost view: ' + e.message);
    }
  }

  group.addEventListener('change', refresh);
  windowSel.addEventListener('change', refresh);
  const refreshSoon = throttle(refresh, 5000);
  refresh();
  onLive(() => refreshSoon());
})();
