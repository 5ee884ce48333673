// Stalk — Celery monitoring server.
// Cost page ("top consumers"): worker time by task name, queue or worker from /api/stalk/cost, with
// money when Stalk runs with --cost_per_worker_hour.
'use strict';

(() => {
  const {el, api, fmtDuration, fmtNumber, onLive, showError, throttle} = Stalk;
  const tbody = document.querySelector('#cost tbody');
  const group = document.getElementById('cost-group');

  async function refresh() {
    try {
      const cost = await api('api/stalk/cost', {group: group.value, limit: 100});
      showError('');
      const total = cost.rows.reduce((s, r) => s + r.worker_seconds, 0);
      document.getElementById('cost-hint').textContent = `${fmtDuration(total)} in all` +
          (cost.cost_per_worker_hour ? ` · ${(total / 3600 * cost.cost_per_worker_hour).toFixed(2)} at ${cost.cost_per_worker_hour}/worker-hour` : '');
      if (!cost.rows.length) {
        tbody.replaceChildren(el('tr', {}, [el('td', {className: 'empty', colSpan: 5, text: 'No finished task yet.'})]));
        return;
      }
      tbody.replaceChildren(...cost.rows.map((r) => el('tr', {}, [
        el('td', {text: r.key || '(none)'}),
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
  const refreshSoon = throttle(refresh, 5000);
  refresh();
  onLive(() => refreshSoon());
})();
