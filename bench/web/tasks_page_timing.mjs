// Stalk — Celery monitoring server.
// The browser half of bench/dashboard_1m.sh: opens the tasks page of a running Stalk in Debian's
// headless chromium (playwright-core) and prints how long the user waits, measured inside the page:
//  - first load, RUNS times: first contentful paint, and when the first rows reached the DOM (the
//    `stalk-tasks-rendered` mark tasks.js sets after each render), both from navigation start; plus
//    the /api/tasks request's own time from Resource Timing;
//  - each filter change the page offers, RUNS times each (alternating with "no filter"): from the
//    change event to the next rendered mark, and that request's Resource Timing duration.
// Prints one line per measurement (median, max over RUNS) and a verdict against 200 ms. Never
// asserts: it is a measurement, not a test.
//
//   node tasks_page_timing.mjs BASE_URL [RUNS]
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, dirname} from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';

// playwright-core lives in tests/integration/web/node_modules (installed by the browser test).
const here = dirname(fileURLToPath(import.meta.url));
const pw = join(here, '..', '..', 'tests', 'integration', 'web', 'node_modules', 'playwright-core', 'index.mjs');
const {chromium} = await import(pathToFileURL(pw).href);

const base = process.argv[2].endsWith('/') ? process.argv[2] : process.argv[2] + '/';
const runs = parseInt(process.argv[3] || '5', 10);
const userDataDir = mkdtempSync(join(tmpdir(), 'stalk-bench-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: {width: 1280, height: 800},
});
const page = await context.newPage();
const errors = [];
page.on('pageerror', (e) => errors.push(e.message));
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

const median = (xs) => { const s = xs.slice().sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const results = [];
function report(label, values, apiValues) {
  const line = `${label.padEnd(44)} median ${median(values).toFixed(1).padStart(7)} ms  max ${Math.max(...values).toFixed(1).padStart(7)} ms` +
      (apiValues ? `   (/api/tasks request: median ${median(apiValues).toFixed(1)} ms)` : '');
  console.log(line);
  results.push({label, max: Math.max(...values)});
}

// Waits (in the page) for the rows rendered mark that follows the change `apply` makes.
async function timeChange(apply) {
  return page.evaluate(async (step) => {
    performance.clearResourceTimings();
    const rendered = new Promise((resolve) => {
      const obs = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          if (e.name === 'stalk-tasks-rendered') { obs.disconnect(); resolve(e.startTime); }
        }
      });
      obs.observe({type: 'mark'});
    });
    const $ = (id) => document.getElementById(id);
    const t0 = performance.now();
    if (step.kind === 'select') {
      $(step.id).value = step.value;
      $(step.id).dispatchEvent(new Event('change'));
    } else if (step.kind === 'range') {
      $('f-range').value = 'custom';
      $('f-from').value = step.from;
      $('f-to').value = step.to;
      $('f-to').dispatchEvent(new Event('change'));
    } else if (step.kind === 'search') {
      $('f-search').value = step.value;
      $('filters').requestSubmit();  // what Enter does; typing waits 400 ms for the user to stop
    }
    const t1 = await rendered;
    const api = performance.getEntriesByType('resource').filter((r) => r.name.includes('/api/tasks?'));
    return {total: t1 - t0, api: api.length ? api[api.length - 1].duration : NaN};
  }, await apply);
}

try {
  // ---- first load --------------------------------------------------------------------------------
  const fcp = [], rows = [], firstApi = [], html = [], dcl = [], apiStart = [];
  for (let i = 0; i < runs + 1; ++i) {
    await page.goto(base + 'tasks', {waitUntil: 'load'});
    const m = await page.evaluate(() => new Promise((resolve) => {
      const done = () => {
        const mark = performance.getEntriesByName('stalk-tasks-rendered')[0];
        const paint = performance.getEntriesByName('first-contentful-paint')[0];
        const api = performance.getEntriesByType('resource').find((r) => r.name.includes('/api/tasks?'));
        const nav = performance.getEntriesByType('navigation')[0];
        if (mark && paint && api) {
          resolve({rows: mark.startTime, fcp: paint.startTime, api: api.duration, html: nav.responseEnd,
                   dcl: nav.domContentLoadedEventEnd, apiStart: api.startTime});
        }
        else setTimeout(done, 20);
      };
      done();
    }));
    if (i === 0) continue;  // warm-up: the first navigation also starts the browser's caches
    fcp.push(m.fcp);
    rows.push(m.rows);
    firstApi.push(m.api);
    html.push(m.html);
    dcl.push(m.dcl);
    apiStart.push(m.apiStart);
  }
  const count = await page.locator('#tasks tbody tr[data-id]').count();
  console.log(`# ${base}tasks, ${runs} runs after one warm-up; first page shows ${count} rows; ` +
              `load ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  report('  page HTML received (from navigation)', html);
  report('  DOMContentLoaded: CSS + scripts run', dcl);
  report('  /api/tasks request sent', apiStart);
  report('first contentful paint (from navigation)', fcp);
  report('first rows in the table (from navigation)', rows, firstApi);

  // ---- filter changes ----------------------------------------------------------------------------
  const option = async (id) => page.evaluate((sel) => {
    const o = [...document.getElementById(sel).options].map((x) => x.value).filter(Boolean);
    return o[Math.floor(o.length / 2)] || '';
  }, id);
  await page.locator('#f-taskname option:nth-child(2)').waitFor({state: 'attached'});
  await page.locator('#f-workername option:nth-child(2)').waitFor({state: 'attached'});
  const name = await option('f-taskname'), worker = await option('f-workername');
  const newest = await page.evaluate(async () => {
    const r = await fetch('api/tasks?limit=1');
    const t = Object.values(await r.json())[0];
    return t.received || t.timestamp;
  });
  const local = (ts) => {
    const d = new Date(ts * 1000);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  };
  const changes = [
    ['state = FAILURE', {kind: 'select', id: 'f-state', value: 'FAILURE'}, {kind: 'select', id: 'f-state', value: ''}],
    ['state = REVOKED (no match: full scan)', {kind: 'select', id: 'f-state', value: 'REVOKED'}, {kind: 'select', id: 'f-state', value: ''}],
    [`name = ${name}`, {kind: 'select', id: 'f-taskname', value: name}, {kind: 'select', id: 'f-taskname', value: ''}],
    [`worker = ${worker.slice(0, 24)}`, {kind: 'select', id: 'f-workername', value: worker}, {kind: 'select', id: 'f-workername', value: ''}],
    ['time: last 15 min', {kind: 'select', id: 'f-range', value: '15m'}, {kind: 'select', id: 'f-range', value: ''}],
    ['time: between, around the newest task', {kind: 'range', from: local(newest - 3600), to: local(newest + 60)},
     {kind: 'select', id: 'f-range', value: ''}],
    ['time: between, a year before (full scan)', {kind: 'range', from: local(newest - 366 * 86400), to: local(newest - 365 * 86400)},
     {kind: 'select', id: 'f-range', value: ''}],
    ['search "acme"', {kind: 'search', value: 'acme'}, {kind: 'search', value: ''}],
    ['search "no-such-text" (full scan)', {kind: 'search', value: 'no-such-text'}, {kind: 'search', value: ''}],
  ];
  for (const [label, on, off] of changes) {
    const total = [], api = [];
    for (let i = 0; i < runs; ++i) {
      const m = await timeChange(on);
      total.push(m.total);
      api.push(m.api);
      await timeChange(off);
    }
    report('filter: ' + label, total, api);
  }
  const worst = results.reduce((a, b) => (b.max > a.max ? b : a));
  console.log(`worst max ${worst.max.toFixed(1)} ms (${worst.label}): ${worst.max <= 200 ? 'within' : 'OVER'} the 200 ms budget`);
  if (errors.length) console.log('browser errors: ' + errors.join('; '));
} finally {
  await context.close();
  rmSync(userDataDir, {recursive: true, force: true});
}
