// Stalk — Celery monitoring server.
// Task-type page (/task-type/<name>): one task name's SLA figures (/api/stalk/sla) and its worker time
// since start and over the last hour, day and week (/api/stalk/cost). All text, no markup from data.
'use strict';

(() => {
  const {el, api, fmtDuration, fmtNumber, onLive, pathParam, showError, throttle} = Stalk;
  const name = pathParam('task-type');
  document.getElementById('tt-name').textContent = name;
  document.getElementById('tt-tasks').href = 'tasks?taskname=' + encodeURIComponent(name);
  const slaBody = document.querySelector('#tt-sla tbody');
  const costBody = document.querySelector('#tt-cost tbody');
  const WINDOWS = [['since_start', 'Since start'], ['1h', 'Last hour'], ['24h', 'Last 24 h'], ['7d', 'Last 7 days']];

  async function refreshSla() {
    const sla = await api('api/stalk/sla', {name});
    const row = sla.tasks[0];
    if (!row) {
      slaBody.replaceChildren(el('tr', {}, [el('td', {className: 'empty', colSpan: 6,
        text: sla.targets ? 'No finished run with a target yet.' : 'No SLA target is configured.'})]));
      return;
    }
    slaBody.replaceChildren(el('tr', {}, [
      el('td', {className: 'num', text: fmtDuration(row.target_seconds)}),
      el('td', {className: 'num', text: fmtNumber(row.runs)}),
      el('td', {className: 'num', text: fmtNumber(row.within)}),
      el('td', {className: 'num', text: fmtNumber(row.over)}),
      el('td', {className: 'num', text: fmtNumber(row.failed)}),
      el('td', {className: 'num', text: (100 * row.ratio).toFixed(1) + '%'}),
    ]));
  }

  async function refreshCost() {
    const rows = [];
    for (const [window, label] of WINDOWS) {
      let cells;
      try {
        const cost = await api('api/stalk/cost', {group: 'name', limit: 10000, window});
        const r = cost.rows.find((x) => x.key === name) || {worker_seconds: 0, tasks: 0, cost: 0};
        cells = [fmtDuration(r.worker_seconds), fmtNumber(r.tasks),
          cost.cost_per_worker_hour ? r.cost.toFixed(2) : '—'];
      } catch (e) {
        cells = ['unavailable', '', ''];  // windows need the store
      }
      rows.push(el('tr', {}, [el('td', {text: label}), ...cells.map((t) => el('td', {className: 'num', text: t}))]));
    }
    costBody.replaceChildren(...rows);
  }

  async function refresh() {
    try {
      await Promise.all([refreshSla(), refreshCost()]);
      showError('');
    } catch (e) {
      showError('Cannot load the task type: ' + e.message);
    }
  }

  const refreshSoon = throttle(refresh, 5000);
  refresh();
  onLive(() => refreshSoon());
})();
