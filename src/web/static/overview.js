// Stalk — Celery monitoring server.
// Overview page: workers online/offline, tasks by state, throughput and failure rate (deltas of the
// live feed's cumulative transition counts, kept in memory for the chart), queue depth.
'use strict';

(() => {
  const {el, api, fmtNumber, onLive, showError, TASK_STATES} = Stalk;
  const $ = (id) => document.getElementById(id);

  const throughputChart = new StalkChart($('throughput-chart'), [
    {name: 'succeeded/s', color: '#1a7f37'},
    {name: 'failed/s', color: '#cf222e'},
    {name: 'retried/s', color: '#bc4c00'},
  ], {windowSeconds: 300});
  const queueChart = new StalkChart($('queue-chart'), [], {windowSeconds: 300});
  const QUEUE_COLORS = ['#1f6feb', '#8250df', '#bf8700', '#1a7f37', '#cf222e', '#57606a'];

  let previous = null;
  const window60 = [];  // [time, succeeded delta, failed delta] over the last minute

  function renderStates(byState) {
    const box = $('states');
    const names = TASK_STATES.concat(Object.keys(byState).filter((s) => !TASK_STATES.includes(s)));
    box.replaceChildren(...names.map((state) => el('a', {href: 'tasks?state=' + encodeURIComponent(state)}, [
      Stalk.stateBadge(state),
      el('span', {className: 'count', text: fmtNumber(byState[state] || 0)}),
    ])));
  }

  function onMessage(m) {
    $('workers-online').textContent = fmtNumber(m.workers.online);
    $('workers-offline').textContent = fmtNumber(m.workers.offline);
    $('tasks-total').textContent = fmtNumber(m.tasks.total);
    renderStates(m.tasks.by_state);
    if (previous && m.time > previous.time) {
      const dt = m.time - previous.time;
      const d = (state) => Math.max(0, m.transitions[state] - previous.transitions[state]);
      const ok = d('SUCCESS'), failed = d('FAILURE'), retried = d('RETRY');
      const finished = ok + failed + d('REVOKED') + d('REJECTED');
      throughputChart.push(m.time, [ok / dt, failed / dt, retried / dt]);
      $('throughput').textContent = (finished / dt).toFixed(finished / dt < 10 ? 1 : 0);
      window60.push([m.time, ok, failed]);
      while (window60.length && window60[0][0] < m.time - 60) window60.shift();
      const okSum = window60.reduce((a, s) => a + s[1], 0), failSum = window60.reduce((a, s) => a + s[2], 0);
      $('failure-rate').textContent = okSum + failSum ? ((100 * failSum) / (okSum + failSum)).toFixed(1) + ' %' : '–';
      if (m.events_ingested !== undefined) {
        $('events-rate').textContent = fmtNumber(Math.round((m.events_ingested - previous.events_ingested) / dt));
      }
    }
    previous = m;
  }

  async function refreshQueues() {
    const tbody = $('queues').tBodies[0];
    try {
      const reply = await api('api/queues/length');
      const queues = reply.active_queues || [];
      tbody.replaceChildren(...queues.map((q) => el('tr', {}, [
        el('td', {text: q.name}),
        el('td', {className: 'num', text: fmtNumber(q.messages)}),
      ])));
      if (!queues.length) tbody.replaceChildren(el('tr', {}, [el('td', {className: 'empty', colSpan: 2, text: 'no queues seen yet'})]));
      $('queues-note').textContent = '';
      const shown = queues.slice(0, QUEUE_COLORS.length);
      if (queueChart.series.length !== shown.length || shown.some((q, i) => queueChart.series[i].name !== q.name)) {
        queueChart.points = [];
        queueChart.setSeries(shown.map((q, i) => ({name: q.name, color: QUEUE_COLORS[i]})));
      }
      queueChart.push(Date.now() / 1000, shown.map((q) => q.messages));
    } catch (e) {
      $('queues-note').textContent = 'Queue lengths unavailable: ' + e.message;
    }
  }

  onLive(onMessage);
  refreshQueues();
  setInterval(refreshQueues, 5000);
  api('api/stalk/summary').then(onMessage).catch((e) => showError('Cannot load the summary: ' + e.message));
})();
