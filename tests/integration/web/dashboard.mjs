// Stalk — Celery monitoring server.
// Browser half of tests/integration/test_dashboard.py: drives Debian's headless chromium through
// playwright-core against a running stalk and checks the dashboard like a user would. The Python side
// starts everything (redis, Celery worker, stalk), seeds tasks, and answers requests on stdin.
//
//   node dashboard.mjs CONFIG.json
// CONFIG: {base, mode: "full"|"prefix"|"viewer"|"operator", shots_dir, ids: {fail, xss, echo}, seeded,
//          failed, user, password (Basic auth, for viewer/operator), readme_dir (full mode: also save
//          1280x800 screenshots of every page there, for README)}
// Modes: full and prefix walk the dashboard (full also drives the remote-control buttons, the time
// range, a revoke and a terminate); viewer and operator check who sees the control buttons.
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
  httpCredentials: config.user ? {username: config.user, password: config.password} : undefined,
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

let page = null;
try {
  // Recorded before any page script runs; CSP blocks page-inline code, not this (CDP-injected).
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error on ${page.url()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error on ${page.url()}: ${e.message}`));
  page.on('dialog', async (d) => { problems.push(`dialog fired (${d.type()}): ${d.message()}`); await d.dismiss(); });
  const cspViolations = async () => page.evaluate(() => window.__csp || []);
  const step = (name) => console.log('STEP ' + name);
  const tbodyRows = (p) => p.locator('#tasks tbody tr[data-id]');
  // Waits for a control call's reply in #control-result; returns its text.
  const controlResult = async (p, label) => {
    let text = '';
    await waitText(p, '#control-result', (t) => { text = t; return t && t.startsWith(label) && !t.endsWith('sending…'); },
                   `the reply to "${label}"`, 20000);
    return text;
  };

  if (config.mode === 'viewer' || config.mode === 'operator') {
    // ---- roles: the control buttons follow /api/stalk/whoami; the server decides regardless ----------
    step('role ' + config.mode);
    const worker = 'w1@stalktest';
    await page.goto(base + 'worker/' + encodeURIComponent(worker));
    await page.locator('#worker-fields th', {hasText: 'processed'}).waitFor();
    const me = await page.evaluate(() => Stalk.whoami());
    check(me.role === config.mode && me.user === config.user && me.auth_enabled === true, 'whoami: ' + JSON.stringify(me));
    if (config.mode === 'viewer') {
      check(await page.locator('#controls').isHidden(), 'a viewer sees no control buttons on the worker page');
      check(await page.locator('#c-shutdown').isHidden(), 'a viewer sees no shutdown button');
      // The button is hidden, and the route is refused anyway (same origin, right Origin header).
      const status = await page.evaluate(() => Stalk.post('api/worker/pool/grow/w1%40stalktest', {n: '1'})
          .then(() => 200, (e) => e.status));
      check(status === 403, 'the server refuses a viewer\'s control POST: ' + status);
      // Chromium logs the refused request as a console error: expected here, and only here.
      for (let i = problems.length - 1; i >= 0; --i) if (/status of 403/.test(problems[i])) problems.splice(i, 1);
      await page.goto(base + 'task/' + config.ids.task);
      await page.locator('#task-fields th').first().waitFor();
      check(await page.locator('#controls').isHidden(), 'a viewer sees no revoke/terminate buttons');
    } else {
      await page.locator('#controls').waitFor({state: 'visible'});
      await page.fill('#c-pool-n', '1');
      await page.click('#c-pool-grow');
      const grown = await controlResult(page, 'Grow pool');
      check(grown.includes("Growing 'w1@stalktest' worker's pool by 1"), 'an operator grows the pool: ' + grown);
      await page.click('#c-pool-shrink');
      const shrunk = await controlResult(page, 'Shrink pool');
      check(shrunk.includes('Shrinking'), 'an operator shrinks the pool: ' + shrunk);
      await page.goto(base + 'task/' + config.ids.task);
      await page.locator('#controls').waitFor({state: 'visible'});
      check(await page.locator('#c-revoke').isVisible() && await page.locator('#c-terminate').isVisible(),
            'an operator sees revoke and terminate');
    }
    const csp = await cspViolations();
    check(csp.length === 0, 'CSP violations: ' + csp.join('; '));
    check(problems.length === 0, 'browser problems:\n' + problems.join('\n'));
    console.log('OK');
    await context.close();
    rmSync(userDataDir, {recursive: true, force: true});
    process.exit(0);
  }

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
    // ---- worker page: remote control (open mode: every role) ------------------------------------------
    step('worker controls');
    await page.locator('#controls').waitFor({state: 'visible'});
    await page.fill('#c-pool-n', '1');
    await page.click('#c-pool-grow');
    let reply = await controlResult(page, 'Grow pool');
    check(reply === "Grow pool: Growing 'w1@stalktest' worker's pool by 1", 'grow reply: ' + reply);
    check(await page.locator('#control-result.ok').count() === 1, 'the reply is shown as a success');
    await page.click('#c-pool-shrink');
    reply = await controlResult(page, 'Shrink pool');
    check(reply.includes("Shrinking 'w1@stalktest' worker's pool by 1"), 'shrink reply: ' + reply);
    await page.fill('#c-queue', 'stalk-extra');
    await page.click('#c-add-consumer');
    reply = await controlResult(page, 'Add consumer');
    check(reply.includes('add consumer stalk-extra'), 'add consumer reply: ' + reply);
    // Destructive actions ask first: cancel keeps the worker consuming, confirm stops it.
    await page.click('#c-cancel-consumer');
    await page.locator('dialog.confirm').waitFor({state: 'visible'});
    check((await page.locator('dialog.confirm h2').textContent()).includes('stalk-extra'), 'the dialog names the queue');
    await page.click('dialog.confirm button:not(.danger)');
    reply = await controlResult(page, 'Cancel consumer');
    check(reply === 'Cancel consumer: cancelled', 'cancelling the dialog sends nothing: ' + reply);
    await page.click('#c-cancel-consumer');
    await page.click('dialog.confirm button.danger');
    reply = await controlResult(page, 'Cancel consumer');
    check(reply.includes('no longer consuming from stalk-extra'), 'cancel consumer reply: ' + reply);
    await page.fill('#c-task', 'app.echo');
    await page.fill('#c-rate', '100/m');
    await page.click('#c-rate-apply');
    reply = await controlResult(page, 'Rate limit');
    check(reply.includes('new rate limit set successfully'), 'rate limit reply: ' + reply);
    await page.fill('#c-soft', '30');
    await page.fill('#c-hard', '60');
    await page.click('#c-timeout-apply');
    reply = await controlResult(page, 'Time limits');
    check(reply.includes('time limits set successfully'), 'time limits reply: ' + reply);
    await page.fill('#c-as-min', '5');
    await page.fill('#c-as-max', '2');
    await page.click('#c-autoscale');
    reply = await controlResult(page, 'Autoscale');
    check(reply.includes('failed (400)') && reply.includes('min must not exceed max') &&
          await page.locator('#control-result.failed').count() === 1, 'a refused call shows the error as text: ' + reply);
    // Chromium logs the refused request as a console error: expected here, and only here.
    for (let i = problems.length - 1; i >= 0; --i) if (/status of 400/.test(problems[i])) problems.splice(i, 1);
    // A shutdown cancelled in the dialog is not sent.
    await page.click('#c-shutdown');
    await page.click('dialog.confirm button:not(.danger)');
    reply = await controlResult(page, 'Shut down');
    check(reply === 'Shut down: cancelled', 'shutdown cancelled: ' + reply);
    // Inspection: registered tasks from the worker, and its configuration on demand.
    // One control call waits on workers at a time (the default two HTTP threads): the configuration
    // is asked for once the refresh has answered, or it would be told to retry (503).
    const refreshed = page.waitForResponse((r) => r.url().includes('api/workers?') && r.url().includes('refresh=1'),
                                           {timeout: 15000});
    await page.click('#inspect-refresh');
    check((await refreshed).status() === 200, 'the inspection refresh answers 200');
    await page.locator('#inspected details[data-key="registered"]').waitFor({timeout: 15000});
    check((await page.locator('#inspected details[data-key="registered"] pre').textContent()).includes('app.add'),
          'registered tasks are shown');
    await page.click('#inspect-conf');
    await waitText(page, '#conf', (t) => t.includes('"worker_send_task_events": true'), 'the worker configuration')
        .catch(async (e) => { throw new Error(`${e.message}; conf: ${(await page.locator('#conf').textContent()).slice(0, 300)}; ` +
                                              `error bar: ${await page.locator('#error').textContent()}`); });
    await page.setViewportSize({width: 1400, height: 900});
    await shot(page, 'worker-controls');
  }

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

    // ---- tasks: time range -------------------------------------------------------------------------
    step('tasks time range');
    await page.goto(base + 'tasks?limit=100');
    await until(async () => (await tbodyRows(page).count()) >= config.seeded, 'all seeded tasks listed');
    const allRows = await tbodyRows(page).count();
    await page.selectOption('#f-range', '15m');
    await page.waitForURL(/range=15m/);
    await until(async () => (await tbodyRows(page).count()) === allRows, 'the last 15 min hold every task');
    await page.selectOption('#f-range', 'custom');
    check(await page.locator('#f-from').isVisible(), 'custom range inputs shown');
    await page.fill('#f-from', '2020-01-01T00:00');
    await page.fill('#f-to', '2020-01-02T00:00');
    await page.locator('#tasks tbody td.empty').waitFor({timeout: 10000});
    check(page.url().includes('received_start=2020-01-01+00%3A00') && page.url().includes('received_end=2020-01-02+00%3A00'),
          'the range is in the address bar, in Flower\'s names and format: ' + page.url());
    await page.reload();
    await page.locator('#tasks tbody td.empty').waitFor({timeout: 10000});
    check(await page.inputValue('#f-range') === 'custom' && await page.inputValue('#f-from') === '2020-01-01T00:00',
          'the range survives a reload');
    const localInput = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    await page.selectOption('#f-time-by', 'started');
    await page.fill('#f-from', localInput(new Date(Date.now() - 3600e3)));
    await page.fill('#f-to', localInput(new Date(Date.now() + 3600e3)));
    await until(async () => (await tbodyRows(page).count()) === allRows, 'started in the last hour: every task');
    check(page.url().includes('started_start=') && !page.url().includes('received_start'), 'started range in the URL: ' + page.url());
    await shot(page, 'tasks-range');

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

    // ---- task page: revoke a waiting task, terminate a running one (a real worker does both) -----
    step('revoke');
    const {id: etaId} = await need('send_countdown');
    await page.goto(base + 'task/' + etaId);
    await waitText(page, '#task-state .badge', (t) => t === 'RECEIVED', 'the countdown task is RECEIVED', 15000);
    await page.click('#c-revoke');
    await page.click('dialog.confirm button.danger');
    let revoked = await controlResult(page, 'Revoke');
    check(revoked === `Revoke: Revoked '${etaId}'`, 'revoke reply: ' + revoked);
    await waitText(page, '#task-state .badge', (t) => t === 'REVOKED', 'the revoked task turns REVOKED (live) at its ETA', 40000);
    step('terminate');
    const {id: sleepId} = await need('send_sleep');
    await page.goto(base + 'task/' + sleepId);
    await waitText(page, '#task-state .badge', (t) => t === 'STARTED', 'the sleeping task is STARTED', 15000);
    await page.selectOption('#c-signal', 'SIGKILL');
    await page.click('#c-terminate');
    check((await page.locator('dialog.confirm p').textContent()).includes('SIGKILL'), 'the dialog names the signal');
    await page.click('dialog.confirm button.danger');
    revoked = await controlResult(page, 'Terminate (SIGKILL)');
    check(revoked.includes(`Revoked '${sleepId}'`), 'terminate reply: ' + revoked);
    await waitText(page, '#task-state .badge', (t) => t === 'REVOKED', 'the terminated task turns REVOKED (live)', 30000);
    await shot(page, 'task-revoked');
  }

  // ---- live: a task sent after the page loaded appears without a reload -------------------------
  step('live update');
  await page.goto(base + 'tasks?range=1h');  // a relative range slides with each live refresh
  await until(async () => (await tbodyRows(page).count()) > 0, 'rows on the tasks page');
  await page.waitForSelector('#live.on', {timeout: 10000});
  await page.evaluate(() => { window.__sameDocument = true; window.scrollTo(0, 120); });
  const scrollBefore = await page.evaluate(() => window.scrollY);
  const {id: liveId} = await need('send_task');
  await page.locator(`#tasks tbody tr[data-id="${liveId}"]`).waitFor({timeout: 15000})
      .catch(() => { throw new Error(`task ${liveId} sent after load did not appear live`); });
  check(await page.evaluate(() => window.__sameDocument === true), 'the page was not reloaded');
  check(Math.abs((await page.evaluate(() => window.scrollY)) - scrollBefore) < 2, 'scroll position kept');
  check(page.url().endsWith('tasks?range=1h') && await page.inputValue('#f-range') === '1h', 'the time range stays: ' + page.url());
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

  if (config.readme_dir) {
    // ---- README screenshots: one per page, 1280x800, what a user first sees -----------------------
    step('readme screenshots');
    await page.setViewportSize({width: 1280, height: 800});
    const pages = [['overview', ''], ['workers', 'workers'], ['worker', 'worker/w1%40stalktest'], ['tasks', 'tasks'],
                   ['task', 'task/' + config.ids.fail], ['queues', 'queues'], ['alerts', 'alerts'], ['cost', 'cost'],
                   ['audit', 'audit']];
    for (const [name, path] of pages) {
      // Alerts from a Stalk started with --alerts_config for the picture (the module's has none).
      await page.goto((name === 'alerts' && config.alerts_base ? config.alerts_base : base) + path, {waitUntil: 'load'});
      await page.waitForSelector('#live.on', {timeout: 10000});
      await page.waitForTimeout(1500);  // charts need two live messages; this is a picture, not a check
      if (name === 'worker') {
        await page.locator('#controls').scrollIntoViewIfNeeded();
        await page.evaluate(() => window.scrollBy(0, -80));
      }
      await page.screenshot({path: join(config.readme_dir, name + '.png')});
    }
  }

  const csp = await cspViolations();
  check(csp.length === 0, 'CSP violations: ' + csp.join('; '));
  check(problems.length === 0, 'browser problems:\n' + problems.join('\n'));
  console.log('OK');
  await context.close();
  rmSync(userDataDir, {recursive: true, force: true});
  process.exit(0);
} catch (e) {
  const where = page ? `\nat ${page.url()}; error bar: ${await page.locator('#error').textContent().catch(() => '?')}` : '';
  console.log('FAIL ' + e.message + where + (problems.length ? '\nbrowser problems:\n' + problems.join('\n') : ''));
  await context.close().catch(() => {});
  rmSync(userDataDir, {recursive: true, force: true});
  process.exit(1);
}
