// Stalk — Celery monitoring server.
// Audit page: the control actions recorded by /api/admin/audit (newest first), refreshed when the
// live feed reports activity.
'use strict';

(() => {
  const {el, api, fmtTime, onLive, showError, throttle} = Stalk;
  const tbody = document.querySelector('#audit tbody');

  async function refresh() {
    try {
      const audit = await api('api/admin/audit', {limit: 200});
      showError('');
      document.getElementById('audit-source').textContent =
          audit.source === 'memory' ? 'since Stalk started (no store)' : 'with history from the store';
      if (!audit.entries.length) {
        tbody.replaceChildren(el('tr', {}, [el('td', {className: 'empty', colSpan: 8, text: 'No control action yet.'})]));
        return;
      }
      tbody.replaceChildren(...audit.entries.map((e) => el('tr', {}, [
        el('td', {text: fmtTime(e.at)}),
        el('td', {text: e.actor}),
        el('td', {text: e.role}),
        el('td', {className: 'mono', text: e.remote}),
        el('td', {text: e.action}),
        el('td', {className: 'mono', text: e.target}),
        el('td', {className: 'mono', text: e.params}),
        el('td', {}, [el('span', {className: 'badge ' + (e.result === 'ok' ? 'status-online' : 'status-offline'),
                                  text: e.message ? `${e.result}: ${e.message}` : e.result})]),
      ])));
    } catch (e) {
      showError('Cannot load the audit log: ' + e.message);
    }
  }

  const refreshSoon = throttle(refresh, 5000);
  refresh();
  onLive(() => refreshSoon());
})();
