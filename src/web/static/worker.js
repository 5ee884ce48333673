// Stalk — Celery monitoring server.
// Worker page: every field Stalk has for one worker, its tasks by state, its most recent tasks, the
// inspection replies (registered/active/reserved/scheduled, conf on demand) and, for operators, the
// remote-control buttons (Flower's POST /api/worker/... and /api/task/{rate-limit,timeout}/...).
'use strict';

(() => {
  const {el, api, post, canOperate, confirmAction, fmtNumber, fmtTime, fmtAgo, fmtDuration, onLive, showError, showControlResult, throttle,
    pathParam, taskLink, stateBadge, TASK_STATES} = Stalk;
  const $ = (id) => document.getElementById(id);
  const name = pathParam('worker');
  $('worker-name').textContent = name;
  document.title = name + ' — Stalk';
  $('worker-all-tasks').href = 'tasks?workername=' + encodeURIComponent(name);

  const TIME_FIELDS = new Set(['last_heartbeat', 'offline_since', 'timestamp']);
  // Identifiers and counters that read wrong with thousands separators.
  const PLAIN_NUMBERS = new Set(['pid', 'clock', 'utcoffset']);

  function valueCell(key, v, now) {
    if (v === null || v === undefined || v === '') return el('td', {className: 'null', text: 'null'});
    if (key === 'status') {
      return el('td', {}, [el('span', {className: 'badge ' + (v ? 'status-online' : 'status-offline'), text: v ? 'online' : 'offline'})]);
    }
    if (TIME_FIELDS.has(key)) return el('td', {text: `${fmtTime(v)} (${fmtAgo(v, now)})`});
    if (key === 'freq') return el('td', {text: fmtDuration(v)});
    if (Array.isArray(v) && key === 'loadavg') return el('td', {className: 'mono', text: v.map((x) => Number(x).toFixed(2)).join(' ')});
    if (typeof v === 'object') return el('td', {}, [el('pre', {text: JSON.stringify(v, null, 2)})]);
    if (typeof v === 'number' && !PLAIN_NUMBERS.has(key)) return el('td', {text: fmtNumber(v)});
    return el('td', {text: String(v)});
  }

  async function refresh() {
    try {
      const [workers, summary, tasks] = await Promise.all([
        api('api/workers', {workername: name}),
        api('api/stalk/summary'),
        api('api/tasks', {workername: name, limit: 20}),
      ]);
      showError('');
      const w = workers[name] || {};
      const now = Date.now() / 1000;
      // Plain values in the table; structured ones (inspection replies) in collapsible blocks.
      const structured = (key) => w[key] !== null && typeof w[key] === 'object' && key !== 'loadavg';
      $('worker-fields').tBodies[0].replaceChildren(...Object.keys(w).filter((k) => !structured(k)).map((key) =>
        el('tr', {}, [el('th', {text: key}), valueCell(key, w[key], now)])));
      const open = new Set([...document.querySelectorAll('#inspected details[open]')].map((d) => d.dataset.key));
      const blocks = Object.keys(w).filter(structured).map((key) => {
        const v = w[key];
        const size = Array.isArray(v) ? `${v.length} items` : `${Object.keys(v).length} keys`;
        return el('details', {className: 'inspected', open: open.has(key), dataset: {key}}, [
          el('summary', {}, [key, el('span', {className: 'hint', text: size})]),
          el('pre', {text: JSON.stringify(v, null, 2)}),
        ]);
      });
      $('inspected').replaceChildren(...(blocks.length ? blocks :
          [el('p', {className: 'null', text: 'No inspection replies yet.'})]));
      fillChoices(w);
      const counts = (summary.by_worker || {})[name] || {};
      const states = TASK_STATES.concat(Object.keys(counts).filter((s) => !TASK_STATES.includes(s)));
      $('worker-states').replaceChildren(...states.map((state) => el('a', {
        href: 'tasks?workername=' + encodeURIComponent(name) + '&state=' + encodeURIComponent(state),
      }, [stateBadge(state), el('span', {className: 'count', text: fmtNumber(counts[state] || 0)})])));
      const rows = Object.entries(tasks).map(([id, t]) => el('tr', {}, [
        el('td', {text: t.name || ''}),
        el('td', {}, [taskLink(id)]),
        el('td', {}, [stateBadge(t.state)]),
        el('td', {text: fmtTime(t.received)}),
        el('td', {className: 'num', text: fmtDuration(t.runtime)}),
      ]));
      $('worker-tasks').tBodies[0].replaceChildren(...(rows.length ? rows :
          [el('tr', {}, [el('td', {className: 'empty', colSpan: 5, text: 'No tasks on this worker.'})])]));
    } catch (e) {
      showError(e.status === 404 ? `Unknown worker "${name}".` : 'Cannot load the worker: ' + e.message);
    }
  }

  // Names for the control inputs: the queues the worker consumes, the tasks it registered.
  function fillChoices(w) {
    const queues = (Array.isArray(w.active_queues) ? w.active_queues : []).map((q) => q && q.name).filter(Boolean);
    $('c-queue-names').replaceChildren(...queues.map((q) => el('option', {value: q})));
    const tasks = (Array.isArray(w.registered) ? w.registered : []).map((t) => String(t).split(' ')[0]);
    $('c-task-names').replaceChildren(...tasks.map((t) => el('option', {value: t})));
  }

  // ---- remote control ----------------------------------------------------------------------------
  const target = encodeURIComponent(name);


  // Runs one control call: confirmation first when `confirm` is given, the reply shown as text.
  async function control(label, path, params, confirm) {
    if (confirm && !(await confirmAction(confirm.title, confirm.detail, confirm.button))) {
      showControlResult(true, label + ': cancelled');
      return;
    }
    showControlResult(true, label + ': sending…');
    try {
      const reply = await post(path, params);
      const text = reply && typeof reply === 'object' ? (reply.message || JSON.stringify(reply)) : String(reply);
      showControlResult(true, `${label}: ${text}`);
      refreshSoon();
    } catch (e) {
      showControlResult(false, `${label} failed (${e.status || 'network'}): ${e.message}`);
    }
  }

  function wireControls() {
    const n = () => $('c-pool-n').value;
    const on = (id, fn) => $(id).addEventListener('click', fn);
    on('c-pool-grow', () => control('Grow pool', 'api/worker/pool/grow/' + target, {n: n()}));
    on('c-pool-shrink', () => control('Shrink pool', 'api/worker/pool/shrink/' + target, {n: n()}));
    on('c-autoscale', () => control('Autoscale', 'api/worker/pool/autoscale/' + target,
        {min: $('c-as-min').value, max: $('c-as-max').value}));
    on('c-pool-restart', () => control('Restart pool', 'api/worker/pool/restart/' + target, {}, {
      title: `Restart the pool of ${name}?`, button: 'Restart pool',
      detail: 'Every pool process is replaced; tasks running in them are interrupted.',
    }));
    const queue = () => $('c-queue').value.trim();
    on('c-add-consumer', () => control('Add consumer', 'api/worker/queue/add-consumer/' + target, {queue: queue()}));
    on('c-cancel-consumer', () => control('Cancel consumer', 'api/worker/queue/cancel-consumer/' + target,
        {queue: queue()}, {title: `Stop ${name} consuming from "${queue()}"?`, button: 'Cancel consumer',
                           detail: 'The worker takes no more tasks from this queue until a consumer is added again.'}));
    const task = () => $('c-task').value.trim();
    on('c-rate-apply', () => control('Rate limit', 'api/task/rate-limit/' + encodeURIComponent(task()),
        {workername: name, ratelimit: $('c-rate').value.trim()}));
    on('c-timeout-apply', () => control('Time limits', 'api/task/timeout/' + encodeURIComponent(task()),
        {workername: name, soft: $('c-soft').value, hard: $('c-hard').value}));
    on('c-shutdown', () => control('Shut down', 'api/worker/shutdown/' + target, {}, {
      title: `Shut down ${name}?`, button: 'Shut down',
      detail: 'The worker finishes no new tasks and exits; it must be started again outside Stalk.',
    }));
  }

  // Inspection on demand (GET: any role): ask the worker again; its configuration.
  $('inspect-refresh').addEventListener('click', async () => {
    try {
      await api('api/workers', {workername: name, refresh: 1});
      showError('');
      refresh();
    } catch (e) {
      showError('Cannot inspect the worker: ' + e.message);
    }
  });
  $('inspect-conf').addEventListener('click', async () => {
    try {
      const replies = await api('api/stalk/inspect/conf', {workername: name});
      const conf = replies[name] || {};
      $('conf').textContent = JSON.stringify(conf, null, 2);
      $('conf-size').textContent = `${Object.keys(conf).length} keys`;
      $('conf-block').hidden = false;
      $('conf-block').open = true;
      showError('');
    } catch (e) {
      showError('Cannot read the configuration: ' + e.message);
    }
  });

  const refreshSoon = throttle(refresh, 2000);
  refresh();
  wireControls();
  canOperate().then((yes) => { $('controls').hidden = !yes; });
  onLive(() => refreshSoon());
})();
