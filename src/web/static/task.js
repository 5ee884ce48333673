// Stalk — Celery monitoring server.
// Task page: every field of one task, the timeline of its timestamps, links to its parent, root and
// children, and its traceback — all as text. Re-fetched when the live feed reports it changed.
// Operators also get Revoke and Terminate (with a signal): Flower's POST /api/task/revoke/<id>.
'use strict';

(() => {
  const {el, api, post, canOperate, confirmAction, fmtTime, fmtDuration, onLive, showError, showControlResult, throttle, pathParam, taskLink, workerLink, stateBadge} = Stalk;
  const $ = (id) => document.getElementById(id);
  const id = pathParam('task');
  $('task-uuid').textContent = id;

  // Timestamps in the order a task lives them.
  const EVENTS = [
    ['sent', 'Sent'], ['received', 'Received'], ['started', 'Started'], ['retried', 'Retried'],
    ['succeeded', 'Succeeded'], ['failed', 'Failed'], ['rejected', 'Rejected'], ['revoked', 'Revoked'],
    ['lost_at', 'Lost'],
  ];
  const TIME_FIELDS = new Set(EVENTS.map((e) => e[0]).concat(['timestamp']));
  const CODE_FIELDS = new Set(['args', 'kwargs', 'result', 'exception', 'eta', 'expires']);
  const SHOWN_ELSEWHERE = new Set(['traceback', 'children', 'task-id', 'custom_events', 'custom_events_total']);

  function renderCustom(t) {
    const events = t.custom_events || [];
    $('custom-section').hidden = !events.length;
    const total = t.custom_events_total || events.length;
    $('custom-progress').textContent = (t.progress !== null && t.progress !== undefined ? `progress ${Math.round(t.progress)}% · ` : '') +
        (total > events.length ? `last ${events.length} of ${total}` : `${total}`);
    $('custom-events').tBodies[0].replaceChildren(...events.map((e) => el('tr', {}, [
      el('td', {text: fmtTime(e.timestamp)}),
      el('td', {text: e.type}),
      el('td', {}, [e.hostname ? workerLink(e.hostname) : '']),
      el('td', {}, [el('pre', {text: JSON.stringify(Object.fromEntries(Object.entries(e.fields || {}).filter(([k]) =>
          !['type', 'uuid', 'hostname', 'timestamp', 'clock', 'pid', 'utcoffset', 'local_received'].includes(k))))})]),
    ])));
  }

  function renderTimeline(t) {
    const events = EVENTS.filter(([key]) => t[key]).map(([key, label]) => [t[key], key, label]);
    events.sort((a, b) => a[0] - b[0]);
    const first = events.length ? events[0][0] : 0;
    $('timeline').replaceChildren(...events.map(([ts, key, label]) => el('li', {className: 'ev-' + key.replace('_at', '')}, [
      el('span', {className: 'what', text: label}),
      el('span', {className: 'when', text: fmtTime(ts)}),
      el('span', {className: 'delta', text: ts === first ? 'start' : '+' + fmtDuration(ts - first)}),
    ])));
    if (!events.length) $('timeline').replaceChildren(el('li', {text: 'No timestamps yet.'}));
  }

  function fieldValue(key, v) {
    if (v === null || v === undefined) return el('td', {className: 'null', text: 'null'});
    if (key === 'state') return el('td', {}, [stateBadge(v)]);
    if (key === 'worker' || key === 'client') return el('td', {}, [key === 'worker' ? workerLink(v) : String(v)]);
    if (key === 'uuid' || key === 'root' || key === 'root_id' || key === 'parent' || key === 'parent_id') {
      return el('td', {}, [taskLink(v)]);
    }
    if (TIME_FIELDS.has(key)) return el('td', {text: `${fmtTime(v)}  (${v})`});
    if (key === 'runtime') return el('td', {text: fmtDuration(v)});
    if (CODE_FIELDS.has(key) || typeof v === 'object') {
      return el('td', {}, [el('pre', {text: typeof v === 'object' ? JSON.stringify(v) : String(v)})]);
    }
    return el('td', {text: String(v)});
  }

  function render(t) {
    $('task-name').textContent = t.name || '(unknown name)';
    document.title = (t.name || id) + ' — Stalk';
    $('task-state').replaceChildren(stateBadge(t.state), t.lost ? el('span', {className: 'badge lost', text: 'lost'}) : '');
    renderTimeline(t);
    renderCustom(t);
    $('traceback-section').hidden = !t.traceback;
    $('traceback').textContent = t.traceback || '';
    const rel = [];
    if (t.parent_id) rel.push(el('tr', {}, [el('th', {text: 'Parent'}), el('td', {}, [taskLink(t.parent_id)])]));
    if (t.root_id) {
      rel.push(el('tr', {}, [el('th', {text: 'Root'}), el('td', {},
          t.root_id === t.uuid ? [el('span', {className: 'null', text: 'this task'})] : [taskLink(t.root_id)])]));
    }
    const kids = t.children || [];
    rel.push(el('tr', {}, [el('th', {text: `Children (${kids.length})`}), el('td', {},
        kids.length ? kids.flatMap((c, i) => (i ? [' ', taskLink(c)] : [taskLink(c)])) : [el('span', {className: 'null', text: 'none'})])]));
    $('relations').tBodies[0].replaceChildren(...rel);
    $('task-fields').tBodies[0].replaceChildren(...Object.keys(t).filter((k) => !SHOWN_ELSEWHERE.has(k)).map((key) =>
      el('tr', {}, [el('th', {text: key}), fieldValue(key, t[key])])));
  }

  async function refresh() {
    try {
      render(await api('api/task/info/' + encodeURIComponent(id)));
      showError('');
    } catch (e) {
      showError(e.status === 404 ? `Unknown task "${id}" (not seen yet, or evicted).` : 'Cannot load the task: ' + e.message);
    }
  }

  // ---- revoke / terminate -------------------------------------------------------------------------

  async function revoke(terminate) {
    const signal = $('c-signal').value;
    const label = terminate ? `Terminate (${signal})` : 'Revoke';
    const ok = await confirmAction(terminate ? `Terminate task ${id}?` : `Revoke task ${id}?`,
        terminate ? `Workers discard it, and the process running it now gets ${signal}.`
                  : 'Workers discard it if it has not started yet; a running task keeps running.',
        label);
    if (!ok) {
      showControlResult(true, label + ': cancelled');
      return;
    }
    showControlResult(true, label + ': sending…');
    try {
      const params = terminate ? {terminate: 'true', signal} : {};
      const reply = await post('api/task/revoke/' + encodeURIComponent(id), params);
      showControlResult(true, `${label}: ${(reply && reply.message) || JSON.stringify(reply)}`);
      refreshSoon();
    } catch (e) {
      showControlResult(false, `${label} failed (${e.status || 'network'}): ${e.message}`);
    }
  }
  $('c-revoke').addEventListener('click', () => revoke(false));
  $('c-terminate').addEventListener('click', () => revoke(true));

  const refreshSoon = throttle(refresh, 500);
  refresh();
  canOperate().then((yes) => { $('controls').hidden = !yes; });
  onLive((m) => {
    if (m.changed_overflow || (m.changed && m.changed.includes(id))) refreshSoon();
  });
})();
