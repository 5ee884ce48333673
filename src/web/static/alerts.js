// Stalk — Celery monitoring server.
// Alerts page: alerts from the rules (--alerts_config) with their state, and the silences — listed,
// added and removed through /api/alerts/silences (operator role).
'use strict';

(() => {
  const {el, api, fmtTime, onLive, showError, throttle} = Stalk;
  const $ = (id) => document.getElementById(id);
  const labelsText = (labels) => Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(', ');

  async function send(method, path, body) {
    const resp = await fetch(path, {method, headers: {'Content-Type': 'application/json', Accept: 'application/json'},
                                    body: body ? JSON.stringify(body) : undefined});
    if (!resp.ok) {
      let msg = 'HTTP ' + resp.status;
      try { msg = (await resp.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
  }

  async function refresh() {
    try {
      const [alerts, silences] = await Promise.all([api('api/alerts'), api('api/alerts/silences')]);
      showError('');
      const order = {firing: 0, pending: 1, resolved: 2};
      const list = alerts.alerts.slice().sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3));
      $('alerts-hint').textContent = `${alerts.firing} firing · ${alerts.rules.length} rules`;
      $('alerts').tBodies[0].replaceChildren(...(list.length ? list.map((a) => el('tr', {}, [
        el('td', {}, [el('span', {className: 'badge ' + (a.state === 'firing' ? 'status-offline' : 'status-online'), text: a.state})]),
        el('td', {text: a.severity}),
        el('td', {text: a.rule}),
        el('td', {text: a.summary}),
        el('td', {className: 'mono', text: labelsText(a.labels)}),
        el('td', {text: fmtTime(a.fired_at || a.active_since)}),
        el('td', {text: a.silenced_by ? 'yes' : ''}),
      ])) : [el('tr', {}, [el('td', {className: 'empty', colSpan: 7, text: 'No alert.'})])]));
      $('silences').tBodies[0].replaceChildren(...silences.silences.map((s) => el('tr', {}, [
        el('td', {className: 'mono', text: labelsText(s.matchers)}),
        el('td', {text: s.state}),
        el('td', {text: fmtTime(s.ends_at)}),
        el('td', {text: s.created_by || ''}),
        el('td', {text: s.comment || ''}),
        el('td', {}, [el('button', {type: 'button', text: 'Remove', onclick: async () => {
          try { await send('DELETE', 'api/alerts/silences/' + encodeURIComponent(s.id)); refresh(); } catch (e) { showError(e.message); }
        }})]),
      ])));
    } catch (e) {
      showError(e.status === 404 ? 'Alerting is off: start Stalk with --alerts_config.' : 'Cannot load alerts: ' + e.message);
    }
  }

  $('silence-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const matchers = {};
    for (const part of $('silence-matchers').value.split(',')) {
      const [k, ...v] = part.split('=');
      if (k.trim()) matchers[k.trim()] = v.join('=').trim();
    }
    try {
      await send('POST', 'api/alerts/silences', {matchers, duration: $('silence-duration').value, comment: $('silence-comment').value});
      $('silence-form').reset();
      refresh();
    } catch (e) {
      showError('Cannot add the silence: ' + e.message);
    }
  });

  refresh();
  setInterval(refresh, 5000);
  const refreshSoon = throttle(refresh, 3000);
  onLive(() => refreshSoon());
})();
