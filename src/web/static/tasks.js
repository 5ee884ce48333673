// Stalk — Celery monitoring server.
// Tasks page: server-side paging, sorting and filtering over /api/tasks, the column choice of
// Flower's --tasks_columns (the default comes from the server; the user's choice is kept in
// localStorage), a time range (last 15 min / hour / 24 h, sliding with each refresh, or between two
// local times; on the received or started timestamp, Flower's received_start/_end and
// started_start/_end), and live updates: when the feed reports changed tasks, the current page is
// re-fetched in place — filters, page and scroll position stay as they are.
'use strict';

(() => {
  const {el, api, fmtTime, fmtDuration, onLive, showError, throttle, taskLink, workerLink, stateBadge, TASK_STATES} = Stalk;
  const $ = (id) => document.getElementById(id);

  // Every column the table can show. `sort` is the /api/tasks sort key, where the API has one.
  const COLUMNS = [
    {key: 'name', title: 'Name', sort: 'name'},
    {key: 'uuid', title: 'UUID', kind: 'task'},
    {key: 'state', title: 'State', sort: 'state', kind: 'state'},
    {key: 'args', title: 'args', kind: 'code'},
    {key: 'kwargs', title: 'kwargs', kind: 'code'},
    {key: 'result', title: 'Result', kind: 'code'},
    {key: 'exception', title: 'Exception', kind: 'code'},
    {key: 'sent', title: 'Sent', kind: 'time'},
    {key: 'received', title: 'Received', sort: 'received', kind: 'time'},
    {key: 'started', title: 'Started', sort: 'started', kind: 'time'},
    {key: 'succeeded', title: 'Succeeded', sort: 'succeeded', kind: 'time'},
    {key: 'failed', title: 'Failed', kind: 'time'},
    {key: 'retried', title: 'Retried', kind: 'time'},
    {key: 'revoked', title: 'Revoked', kind: 'time'},
    {key: 'rejected', title: 'Rejected', kind: 'time'},
    {key: 'timestamp', title: 'Timestamp', sort: 'timestamp', kind: 'time'},
    {key: 'runtime', title: 'Runtime', sort: 'runtime', kind: 'duration'},
    {key: 'worker', title: 'Worker', kind: 'worker'},
    {key: 'retries', title: 'Retries', kind: 'num'},
    {key: 'eta', title: 'ETA', kind: 'code'},
    {key: 'expires', title: 'Expires', kind: 'code'},
    {key: 'queue', title: 'Queue'},
    {key: 'exchange', title: 'Exchange'},
    {key: 'routing_key', title: 'Routing key'},
    {key: 'client', title: 'Client'},
    {key: 'root_id', title: 'Root', kind: 'task'},
    {key: 'parent_id', title: 'Parent', kind: 'task'},
    {key: 'clock', title: 'Clock', kind: 'num'},
  ];
  const BY_KEY = Object.fromEntries(COLUMNS.map((c) => [c.key, c]));
  const STORAGE_KEY = 'stalk.tasks.columns';
  const defaultColumns = (document.body.dataset.columns || '').split(',').map((s) => s.trim()).filter((k) => BY_KEY[k]);

  function loadColumns() {
    try {
      const saved = localStorage.getItem(STORAGE_KEY);
      if (saved) {
        const cols = saved.split(',').filter((k) => BY_KEY[k]);
        if (cols.length) return cols;
      }
    } catch (e) { /* storage disabled: use the default */ }
    return defaultColumns.length ? defaultColumns : ['name', 'uuid', 'state', 'received', 'worker'];
  }

  // ---- query state: mirrored in the address bar, so reload and links keep it ---------------------
  // Time range in the URL: `range=15m|1h|24h` (relative to each refresh), or Flower's
  // `received_start`/`received_end` (or `started_…`) as "YYYY-MM-DD HH:MM" local time (epoch seconds
  // are accepted too); `time_by=started` picks the started timestamp for a relative range.
  const RANGES = {'15m': 15 * 60, '1h': 3600, '24h': 86400};
  const params = new URLSearchParams(location.search);
  const pad = (n) => String(n).padStart(2, '0');
  // Date -> "YYYY-MM-DD HH:MM" in local time (Flower's format).
  const localText = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  // "YYYY-MM-DD HH:MM", "YYYY-MM-DDTHH:MM" or epoch seconds -> epoch seconds; null when not a time.
  function epochOf(text) {
    if (!text) return null;
    if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
    const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})/.exec(text);
    if (!m) return null;
    return new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]).getTime() / 1000;
  }
  const normalTime = (text) => { const e = epochOf(text); return e === null ? '' : localText(new Date(e * 1000)); };
  const customBy = params.has('started_start') || params.has('started_end') ? 'started' : 'received';
  const customStart = normalTime(params.get(customBy + '_start') || '');
  const customEnd = normalTime(params.get(customBy + '_end') || '');
  const query = {
    state: params.get('state') || '',
    taskname: params.get('taskname') || '',
    workername: params.get('workername') || '',
    search: params.get('search') || '',
    range: RANGES[params.get('range')] ? params.get('range') : (customStart || customEnd ? 'custom' : ''),
    time_by: params.get('time_by') === 'started' || customBy === 'started' ? 'started' : 'received',
    start: customStart,
    end: customEnd,
    sort_by: params.get('sort_by') || '',
    offset: Math.max(0, parseInt(params.get('offset') || '0', 10) || 0),
    limit: Math.min(500, Math.max(1, parseInt(params.get('limit') || '30', 10) || 30)),
  };
  let columns = loadColumns();

  function syncAddressBar() {
    const out = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (k === 'start' || k === 'end' || k === 'range' || k === 'time_by') continue;
      if (v !== '' && !(k === 'offset' && v === 0) && !(k === 'limit' && v === 30)) out.set(k, v);
    }
    if (RANGES[query.range]) out.set('range', query.range);
    if (query.range && query.time_by !== 'received') out.set('time_by', query.time_by);
    if (query.range === 'custom') {
      if (query.start) out.set(query.time_by + '_start', query.start);
      if (query.end) out.set(query.time_by + '_end', query.end);
    }
    const qs = out.toString();
    history.replaceState(null, '', 'tasks' + (qs ? '?' + qs : ''));
  }

  // ---- filters -----------------------------------------------------------------------------------
  function setOptions(select, values, current) {
    const keep = select.options[0];
    const all = values.slice();
    if (current && !all.includes(current)) all.push(current);
    select.replaceChildren(keep, ...all.map((v) => el('option', {value: v, text: v})));
    select.value = current;
  }

  async function loadFilterChoices() {
    setOptions($('f-state'), TASK_STATES, query.state);
    try {
      const [types, workers] = await Promise.all([api('api/task/types'), api('api/workers', {status: 1})]);
      setOptions($('f-taskname'), (types['task-types'] || []).slice().sort(), query.taskname);
      setOptions($('f-workername'), Object.keys(workers).sort(), query.workername);
    } catch (e) {
      showError('Cannot load filter choices: ' + e.message);
    }
  }

  function readForm() {
    query.state = $('f-state').value;
    query.taskname = $('f-taskname').value;
    query.workername = $('f-workername').value;
    query.search = $('f-search').value.trim();
    query.range = $('f-range').value;
    query.time_by = $('f-time-by').value;
    query.start = normalTime($('f-from').value);
    query.end = normalTime($('f-to').value);
    showCustomRange();
    query.limit = parseInt($('f-limit').value, 10) || 30;
    query.offset = 0;
  }

  function showCustomRange() {
    for (const label of document.querySelectorAll('.range-custom')) label.hidden = query.range !== 'custom';
  }

  // The API's time bounds (epoch seconds) for the current range; a relative range ends now.
  function timeBounds() {
    const out = {};
    if (RANGES[query.range]) {
      out[query.time_by + '_start'] = (Date.now() / 1000 - RANGES[query.range]).toFixed(3);
    } else if (query.range === 'custom') {
      const start = epochOf(query.start), end = epochOf(query.end);
      // The end minute is included: "to 12:05" means up to 12:05:59.
      if (start !== null) out[query.time_by + '_start'] = String(start);
      if (end !== null) out[query.time_by + '_end'] = String(end + 59.999);
    }
    return out;
  }

  // ---- table -------------------------------------------------------------------------------------
  function renderHead() {
    const row = $('tasks').tHead.rows[0];
    row.replaceChildren(...columns.map((key) => {
      const c = BY_KEY[key];
      const th = el('th', {text: c.title, className: c.kind === 'num' || c.kind === 'duration' ? 'num' : ''});
      if (c.sort) {
        th.classList.add('sortable');
        if (query.sort_by === c.sort) th.classList.add('sorted-asc');
        if (query.sort_by === '-' + c.sort) th.classList.add('sorted-desc');
        th.title = 'Sort by ' + c.title;
        th.addEventListener('click', () => {
          // unsorted -> ascending -> descending -> unsorted (newest first)
          query.sort_by = query.sort_by === c.sort ? '-' + c.sort : query.sort_by === '-' + c.sort ? '' : c.sort;
          query.offset = 0;
          renderHead();
          refresh();
        });
      }
      return th;
    }));
  }

  function cell(c, t, id) {
    const v = c.key === 'uuid' ? id : t[c.key];
    if (v === null || v === undefined || v === '') return el('td', {});
    switch (c.kind) {
      case 'task': return el('td', {className: 'nowrap'}, [taskLink(v)]);
      case 'state': return el('td', {className: 'nowrap'}, [stateBadge(v), t.lost ? el('span', {className: 'badge lost', text: 'lost'}) : null]);
      case 'worker': return el('td', {className: 'nowrap'}, [workerLink(v)]);
      case 'time': return el('td', {className: 'nowrap', text: fmtTime(v)});
      case 'duration': return el('td', {className: 'num nowrap', text: fmtDuration(v)});
      case 'num': return el('td', {className: 'num', text: String(v)});
      case 'code': return el('td', {className: 'mono clip', text: String(v), title: String(v)});
      default: return el('td', {text: String(v)});
    }
  }

  let lastFetch = 0;
  async function refresh() {
    syncAddressBar();
    const fetchNo = ++lastFetch;
    let tasks;
    try {
      tasks = await api('api/tasks', {
        state: query.state, taskname: query.taskname, workername: query.workername, search: query.search,
        sort_by: query.sort_by, offset: query.offset, limit: query.limit + 1, ...timeBounds(),
      });
    } catch (e) {
      showError('Cannot load tasks: ' + e.message);
      return;
    }
    if (fetchNo !== lastFetch) return;  // a newer request is on its way
    showError('');
    const entries = Object.entries(tasks);
    const hasNext = entries.length > query.limit;
    const rows = entries.slice(0, query.limit).map(([id, t]) => {
      const tr = el('tr', {dataset: {id}}, columns.map((key) => cell(BY_KEY[key], t, id)));
      return tr;
    });
    const tbody = $('tasks').tBodies[0];
    if (!rows.length) {
      rows.push(el('tr', {}, [el('td', {className: 'empty', colSpan: columns.length, text: 'No tasks match.'})]));
    }
    tbody.replaceChildren(...rows);  // one synchronous swap: the scroll position stays
    const first = entries.length ? query.offset + 1 : 0;
    $('page-info').textContent = entries.length
        ? `${first}–${query.offset + Math.min(entries.length, query.limit)}` : 'no tasks';
    $('prev').disabled = query.offset === 0;
    $('next').disabled = !hasNext;
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    // For measurements (bench/dashboard_1m.sh): when each set of rows reached the DOM.
    performance.clearMarks('stalk-tasks-rendered');  // keep one: a page may stay open for days
    performance.mark('stalk-tasks-rendered');
  }

  function renderColumnChoices() {
    $('column-choices').replaceChildren(...COLUMNS.map((c) => {
      const box = el('input', {type: 'checkbox', checked: columns.includes(c.key), value: c.key});
      box.addEventListener('change', () => {
        const chosen = COLUMNS.map((x) => x.key).filter((k) => k === c.key ? box.checked : columns.includes(k));
        if (!chosen.length) { box.checked = true; return; }
        columns = chosen;
        try { localStorage.setItem(STORAGE_KEY, columns.join(',')); } catch (e) { /* not kept */ }
        renderHead();
        refresh();
      });
      return el('label', {}, [box, ' ' + c.title]);
    }), el('button', {type: 'button', text: 'Default columns', onclick: () => {
      try { localStorage.removeItem(STORAGE_KEY); } catch (e) { /* ignore */ }
      columns = loadColumns();
      renderColumnChoices();
      renderHead();
      refresh();
    }}));
  }

  // ---- wiring ------------------------------------------------------------------------------------
  $('f-search').value = query.search;
  $('f-range').value = query.range;
  $('f-time-by').value = query.time_by;
  $('f-from').value = query.start.replace(' ', 'T');
  $('f-to').value = query.end.replace(' ', 'T');
  showCustomRange();
  $('f-limit').value = String(query.limit);
  if ($('f-limit').value !== String(query.limit)) {
    $('f-limit').append(el('option', {text: String(query.limit)}));
    $('f-limit').value = String(query.limit);
  }
  $('filters').addEventListener('submit', (ev) => { ev.preventDefault(); readForm(); refresh(); });
  for (const id of ['f-state', 'f-taskname', 'f-workername', 'f-limit', 'f-range', 'f-time-by', 'f-from', 'f-to']) {
    $(id).addEventListener('change', () => { readForm(); refresh(); });
  }
  let searchTimer = null;
  $('f-search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { readForm(); refresh(); }, 400);
  });
  $('prev').addEventListener('click', () => { query.offset = Math.max(0, query.offset - query.limit); refresh(); });
  $('next').addEventListener('click', () => { query.offset += query.limit; refresh(); });

  renderColumnChoices();
  renderHead();
  loadFilterChoices();
  refresh();
  const refreshSoon = throttle(refresh, 1000);
  const refreshChoices = throttle(loadFilterChoices, 10000);
  onLive((m) => {
    if ((m.changed && m.changed.length) || m.changed_overflow) refreshSoon();
    if (m.workers_changed) refreshChoices();
  });
})();
