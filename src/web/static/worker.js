// Stalk — Celery monitoring server.
// Worker page: every field Stalk has for one worker, its tasks by state, its most recent tasks.
'use strict';

(() => {
  const {el, api, fmtNumber, fmtTime, fmtAgo, fmtDuration, onLive, showError, throttle, pathParam, taskLink, stateBadge, TASK_STATES} = Stalk;
  const $ = (id) => document.getElementById(id);
  const name = pathParam('worker');
  $('worker-name').textContent = name;
  document.title = name + ' — Stalk';
  $('worker-all-tasks').href = 'tasks?workername=' + encodeURIComponent(name);

  const TIME_FIELDS = new Set(['last_heartbeat', 'offline_since']);

  function valueCell(key, v, now) {
    if (v === null || v === undefined || v === '') return el('td', {className: 'null', text: 'null'});
    if (key === 'status') {
      return el('td', {}, [el('span', {className: 'badge ' + (v ? 'status-online' : 'status-offline'), text: v ? 'online' : 'offline'})]);
    }
    if (TIME_FIELDS.has(key)) return el('td', {text: `${fmtTime(v)} (${fmtAgo(v, now)})`});
    if (key === 'freq') return el('td', {text: fmtDuration(v)});
    if (Array.isArray(v) && key === 'loadavg') return el('td', {className: 'mono', text: v.map((x) => Number(x).toFixed(2)).join(' ')});
    if (typeof v === 'object') return el('td', {}, [el('pre', {text: JSON.stringify(v, null, 2)})]);
    return el('td', {text: typeof v === 'number' ? fmtNumber(v) : String(v)});
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
      $('inspected').replaceChildren(...blocks);
      $('inspected-section').hidden = !blocks.length;
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

  const refreshSoon = throttle(refresh, 2000);
  refresh();
  onLive(() => refreshSoon());
})();
