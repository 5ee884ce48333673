// Stalk — Celery monitoring server.
// Queues page: messages waiting per queue (/api/queues/length), largest first, with a bar for scale.
'use strict';

(() => {
  const {el, api, fmtNumber, onLive, showError, throttle} = Stalk;
  const tbody = document.querySelector('#queues tbody');

  async function refresh() {
    try {
      const data = await api('api/queues/length');
      showError('');
      const queues = (data.active_queues || []).slice().sort((a, b) => b.messages - a.messages || a.name.localeCompare(b.name));
      const total = queues.reduce((s, q) => s + q.messages, 0);
      const most = Math.max(1, ...queues.map((q) => q.messages));
      document.getElementById('queues-hint').textContent = `${fmtNumber(total)} messages in ${queues.length} queues`;
      if (!queues.length) {
        tbody.replaceChildren(el('tr', {}, [el('td', {className: 'empty', colSpan: 3, text: 'No queue known yet.'})]));
        return;
      }
      tbody.replaceChildren(...queues.map((q) => {
        const bar = el('meter', {min: 0, max: most, value: q.messages});
        return el('tr', {}, [el('td', {className: 'mono', text: q.name}), el('td', {className: 'num', text: fmtNumber(q.messages)}),
          el('td', {}, [bar])]);
      }));
    } catch (e) {
      showError('Cannot load queue lengths: ' + e.message);
    }
  }

  refresh();
  setInterval(refresh, 5000);
  const refreshSoon = throttle(refresh, 5000);
  onLive(() => refreshSoon());
})();
