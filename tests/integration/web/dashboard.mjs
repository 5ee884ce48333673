// Stalk — Celery monitoring server.
// Browser half of tests/integration/test_dashboard.py: drives Debian's headless chromium through
// playwright-core against a running stalk and checks the dashboard like a user would. The Python side
// starts everything (redis, Celery worker, stalk), seeds tasks, and answers requests on stdin.
//
//   node dashboard.mjs CONFIG.json
// CONFIG: {base, mode: "full"|"prefix", shots_dir, ids: {fail, xss, echo}, seeded, failed}
// Protocol on stdout: lines "NEED <what>" (the test replies one JSON line on stdin), "STEP <name>",
// and a last line "OK" — any failed check throws, prints "FAIL <message>" and exits 1.
import {readFileSync, mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {createInterface} from 'node:readline';
import {chromium} from 'playwright-core';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const base = config.base;  // ends with "/"
const stdinLines = createInterface({input: process.stdin})[Symbol.asyncIterator]();

async function need(what) {
  console.log('NEED ' + what);
  const {value, done} = await stdinLines.next();
  if (done) throw new Error('test closed stdin while we waited for ' + what);
  return JSON.parse(value);
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

const problems = [];  // console errors, page errors, CSP violations, dialogs
const userDataDir = mkdtempSync(join(tmpdir(), 'stalk-chromium-'));
// TEST-SERVERS.md's flags; Playwright passes the fresh --user-data-dir itself.
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: {width: 1400, height: 900},
});

async function shot(page, name) {
  await page.screenshot({path: join(config.shots_dir, `${config.mode}-${name}.png`), fullPage: true});
}

// Polls `probe` (Node side: page.evaluate / locators, never waitForFunction, whose string eval the
// page's CSP would rightly refuse) until it returns a truthy value; throws `what` with the last value.
async function until(probe, what, timeout = 10000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e.message.split('\n')[0];
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitText(page, selector, pred, what, timeout = 10000) {
  return until(async () => pred(await page.locator(selector).first().textContent()), what, timeout);
}

try {
  // Recorded before any page script runs; CSP blocks page-inline code, not this (CDP-injected).
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error on ${page.url()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error on ${page.url()}: ${e.message}`));
  page.on('dialog', async (d) => { problems.push(`dialog fired (${d.type()}): ${d.message()}`); await d.dismiss(); });
  const cspViolations = async () => page.evaluate(() => window.__csp || []);
  const step = (name) => console.log('STEP ' + name);
  const tbodyRows = (p) => p.locator('#tasks tbody tr[data-id]');

  // ---- overview ------------------------------------------------------------------------------------
  step('overview');
  await page.goto(base, {waitUntil: 'load'});
  await waitText(page, '#tasks-total', (t) => parseInt(t.replace(/,/g, ''), 10) >= config.seeded, 'overview shows the tracked tasks');
  await waitText(page, '#workers-online', (t) => parseInt(t, 10) >= 1, 'overview shows the online worker');
  await page.waitForSelector('#live.on', {timeout: 10000});
  const failureTile = await page.locator('#states a', {hasText: 'FAILURE'}).textContent();
  check(failureTile.includes(String(config.failed)), `overview FAILURE tile shows ${config.failed}: ${failureTile}`);
  await waitText(page, '#throughput', (t) => t !== '–', 'overview computes a throughput from two live messages');
  await shot(page, 'overview');

  // ---- navigation through links (relative to <base>, so this also checks --url_prefix) ------------
  step('workers');
  await page.click('header nav a[data-nav="workers"]');
  await page.waitForURL(base + 'workers');
  const workerRow = page.locator('#workers tbody tr', {hasText: 'w1@stalktest'});
  await workerRow.waitFor({timeout: 10000});
  check((await workerRow.locator('.badge').textContent()) === 'online', 'worker w1 is shown online');
  await shot(page, 'workers');
  await workerRow.locator('a').click();
  await page.waitForURL(base + 'worker/w1%40stalktest');
  await page.locator('#worker-fields th', {hasText: 'processed'}).waitFor();
  await page.locator('#worker-tasks tbody tr a.mono').first().waitFor();
  await shot(page, 'worker');

  if (config.mode === 'full') {
    // ---- tasks: paging ---------------------------------------------------------------------------
    step('tasks paging');
    await page.goto(base + 'tasks?limit=15');
    await until(async () => (await tbodyRows(page).count()) === 15, 'page 1 shows 15 rows');
    const firstPage = await tbodyRows(page).evaluateAll((rows) => rows.map((r) => r.dataset.id));
    check(await page.isEnabled('#next'), 'a next page exists');
    check(await page.isDisabled('#prev'), 'no previous page on page 1');
    await page.click('#next');
    await waitText(page, '#page-info', (t) => t.startsWith('16–'), 'page 2 shows rows 16–');
    const secondPage = await tbodyRows(page).evaluateAll((rows) => rows.map((r) => r.dataset.id));
    check(secondPage.length > 0 && !secondPage.some((id) => firstPage.includes(id)), 'page 2 has other tasks than page 1');
    check(page.url().includes('offset=15'), 'the address bar keeps the page: ' + page.url());
    await page.click('#prev');
    await waitText(page, '#page-info', (t) => t.startsWith('1–'), 'back on page 1');

    // ---- tasks: filters ---------------------------------------------------------------------------
    step('tasks filters');
    await page.selectOption('#f-state', 'FAILURE');
    let states = [];
    await until(async () => {
      states = await tbodyRows(page).evaluateAll((rows) => rows.map((r) => r.querySelector('.badge').textContent));
      return states.length === config.failed && states.every((x) => x === 'FAILURE');
    }, `state filter shows exactly the ${config.failed} failed tasks`).catch((e) => { throw new Error(e.message + ' ' + states); });
    await shot(page, 'tasks-failed');
    await page.selectOption('#f-state', '');
    await page.selectOption('#f-taskname', 'app.echo');
    await until(async () => {
      const v = await tbodyRows(page).evaluateAll((rows) => rows.map((r) => r.cells[0].textContent));
      return v.length > 0 && v.every((x) => x === 'app.echo');
    }, 'name filter shows only app.echo');
    await page.selectOption('#f-taskname', '');
    await page.selectOption('#f-workername', 'w1@stalktest');
    await until(async () => (await tbodyRows(page).count()) > 0, 'rows on the tasks page');

    // ---- tasks: sorting ---------------------------------------------------------------------------
    step('tasks sorting');
    await page.goto(base + 'tasks?limit=100');
    await until(async () => (await tbodyRows(page).count()) > 0, 'rows on the tasks page');
    const names = async () => tbodyRows(page).evaluateAll((rows) => rows.map((r) => r.cells[0].textContent));
    await page.click('#tasks thead th:has-text("Name")');
    await page.waitForURL(/sort_by=name/);
    await page.locator('#tasks thead th.sorted-asc').waitFor();
    await until(async () => {
      const v = await names();
      return v.length > 1 && v.every((x, i) => i === 0 || v[i - 1] <= x) && v[0] !== v[v.length - 1];
    }, 'rows ascending by name');
    await page.click('#tasks thead th:has-text("Name")');
    await page.waitForURL(/sort_by=-name/);
    await until(async () => {
      const v = await names();
      return v.length > 1 && v.every((x, i) => i === 0 || v[i - 1] >= x) && v[0] !== v[v.length - 1];
    }, 'rows descending by name');

    // ---- hostile task data is text --------------------------------------------------------------
    step('xss');
    await page.goto(base + 'tasks?search=' + encodeURIComponent('alert'));
    const xssRow = page.locator(`#tasks tbody tr[data-id="${config.ids.xss}"]`);
    await xssRow.waitFor({timeout: 10000});
    const rowText = await xssRow.textContent();
    check(rowText.includes('<script>alert(1)</script>') && rowText.includes('<img src=x onerror=alert(1)>'),
          'the hostile args are visible as text: ' + rowText);
    check(await page.locator('#tasks tbody img, #tasks tbody script').count() === 0, 'no element was created from task data');
    await shot(page, 'tasks-xss');
    await page.goto(base + 'task/' + config.ids.xss);
    const argsRow = page.locator('#task-fields tr', {has: page.locator('th', {hasText: /^args$/})});
    await argsRow.waitFor();
    const argsText = await argsRow.textContent();
    check(argsText.includes('<img src=x onerror=alert(1)>'), 'task page shows the hostile args as text: ' + argsText);
    check(await page.locator('main img, main script').count() === 0, 'no element was created from task data on the task page');

    // ---- failed task page: traceback ------------------------------------------------------------
    step('task page');
    await page.goto(base + 'task/' + config.ids.fail);
    await page.waitForSelector('#traceback-section:not([hidden])', {timeout: 10000});
    const tb = await page.locator('#traceback').textContent();
    check(tb.includes('Traceback') && tb.includes('ValueError') && tb.includes('boom from the dashboard test'),
          'the traceback of the failed task is shown: ' + tb.slice(0, 300));
    check((await page.locator('#task-state .badge').first().textContent()) === 'FAILURE', 'state badge FAILURE');
    check(await page.locator('#timeline li').count() >= 3, 'timeline has sent/received/started/failed');
    await shot(page, 'task-failed');
  }

  // ---- live: a task sent after the page loaded appears without a reload -------------------------
  step('live update');
  await page.goto(base + 'tasks');
  await until(async () => (await tbodyRows(page).count()) > 0, 'rows on the tasks page');
  await page.waitForSelector('#live.on', {timeout: 10000});
  await page.evaluate(() => { window.__sameDocument = true; window.scrollTo(0, 120); });
  const scrollBefore = await page.evaluate(() => window.scrollY);
  const {id: liveId} = await need('send_task');
  await page.locator(`#tasks tbody tr[data-id="${liveId}"]`).waitFor({timeout: 15000})
      .catch(() => { throw new Error(`task ${liveId} sent after load did not appear live`); });
  check(await page.evaluate(() => window.__sameDocument === true), 'the page was not reloaded');
  check(Math.abs((await page.evaluate(() => window.scrollY)) - scrollBefore) < 2, 'scroll position kept');
  await shot(page, 'tasks-live');
  // follow the row's link (relative URL under <base>)
  await page.locator(`#tasks tbody tr[data-id="${liveId}"] a.mono`).first().click();
  await page.waitForURL(base + 'task/' + liveId);
  await waitText(page, '#task-name', (t) => t === 'app.add', 'task page of the live task');
  await shot(page, 'task');

  // ---- the other pages: queues, cost, audit log render from their APIs ----------------------------
  step('queues, cost, audit');
  await page.click('header nav a[data-nav="queues"]');
  await page.waitForURL(base + 'queues');
  await until(async () => (await page.locator('#queues tbody tr td.mono').count()) > 0, 'queue rows');
  await page.click('header nav a[data-nav="cost"]');
  await page.waitForURL(base + 'cost');
  await page.locator('#cost tbody tr', {hasText: 'app.add'}).waitFor({timeout: 10000})
      .catch(() => { throw new Error('the cost page does not list app.add'); });
  await page.selectOption('#cost-group', 'worker');
  await page.locator('#cost tbody tr', {hasText: 'w1@stalktest'}).waitFor({timeout: 10000})
      .catch(() => { throw new Error('the cost page grouped by worker does not list w1@stalktest'); });
  await shot(page, 'cost');
  await page.click('header nav a[data-nav="audit"]');
  await page.waitForURL(base + 'audit');
  await until(async () => (await page.locator('#audit tbody tr').count()) > 0, 'audit table rendered');
  await shot(page, 'audit');

  const csp = await cspViolations();
  check(csp.length === 0, 'CSP violations: ' + csp.join('; '));
  check(problems.length === 0, 'browser problems:\n' + problems.join('\n'));
  console.log('OK');
  await context.close();
  rmSync(userDataDir, {recursive: true, force: true});
  process.exit(0);
} catch (e) {
  console.log('FAIL ' + e.message + (problems.length ? '\nbrowser problems:\n' + problems.join('\n') : ''));
  await context.close().catch(() => {});
  rmSync(userDataDir, {recursive: true, force: true});
  process.exit(1);
}
