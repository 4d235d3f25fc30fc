// The log explorer in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): load the page, enter the admin key, search, see an entry ingested a
// moment earlier, open its metadata, see a request's canonical fields in its rows and its
// entries oldest first, and save screenshots for the README.
//
//   cargo build -p log_ingestion_server
//   (cd server/tests/browser && npm ci && node explorer.test.mjs)
//
// Environment:
//   EXPLORER_SERVER_BIN  the server to start (default: target/debug/log-ingestion-server)
//   DATABASE_URL         the PostgreSQL server to use (otherwise bin/postgres-dev starts the
//                        private cluster); a fresh database is created on it and dropped
//   CHROMIUM             the browser (default /usr/bin/chromium)
//   SCREENSHOT_DIR       where screenshots go (default server/assets/explorer)
//
// Exits non-zero on the first failed expectation, printing what was expected.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repo, prepareDatabase, startServer, postLogs, openPage, noteFailure } from './harness.mjs';

const INGEST_KEY = `ingest-${randomUUID()}`;
const ADMIN_KEY = `admin-${randomUUID()}`;
const TOKEN = `checkout-${randomUUID().slice(0, 8)}`;
const TIMEOUT = 15_000;

function fail(message) {
  throw new Error(`explorer browser test: ${message}`);
}

/** Realistic entries over the last hour, plus the one the test looks for, newest. */
function entries() {
  const now = Date.now();
  const templates = [
    ['api-gateway', 'INFO', () => 'GET /api/v1/cart 200',
      (i) => ({ kind: 'request', method: 'GET', path: '/api/v1/cart', status: 200, duration_ms: 20 + (i % 40) + 0.37 })],
    ['api-gateway', 'INFO', () => 'POST /api/v1/orders 201',
      (i) => ({ kind: 'request', method: 'POST', path: '/api/v1/orders', status: 201, duration_ms: 80 + (i % 90) + 0.5 })],
    ['checkout', 'INFO', (i) => `Order ord_${7000 + i} placed`],
    ['checkout', 'WARN', () => 'Payment provider timeout, retrying (attempt 2)'],
    ['billing-worker', 'INFO', () => 'ChargeCustomerJob performed',
      (i) => ({ kind: 'job', job_class: 'ChargeCustomerJob', queue: 'billing', outcome: 'performed', duration_ms: 400 + (i % 600) })],
    ['billing-worker', 'ERROR', () => 'Job ChargeCustomer failed: card_declined'],
    ['search', 'DEBUG', (i) => `cache miss for product:${1000 + (i % 900)}`],
    ['search', 'WARN', (i) => `slow query: SELECT * FROM products WHERE ... (${1000 + (i % 800)}ms)`],
    ['api-gateway', 'INFO', () => 'GET /health 200 in 1ms'],
    ['search', 'INFO', (i) => `Reindexed ${100 + (i % 300)} products`],
  ];
  const logs = [];
  for (let i = 0; i < 400; i += 1) {
    // More traffic in some minutes than in others, so the histogram has a shape.
    const minute = Math.floor(60 * Math.sqrt(((i * 7919) % 400) / 400));
    const [service, level, message, canonical] = templates[(i * 7) % templates.length];
    logs.push({
      timestamp: new Date(now - 60_000 - minute * 58_000 - ((i * 1237) % 50_000)).toISOString(),
      service,
      level,
      message: message(i),
      metadata: { request_id: `req-${10000 + i}`, user_id: 40 + (i % 7), ...(canonical ? canonical(i) : {}) },
    });
  }
  logs.push({
    timestamp: new Date(now - 500).toISOString(),
    service: 'checkout',
    level: 'ERROR',
    message: `Order ${TOKEN} failed: card declined`,
    metadata: {
      request_id: `req-${TOKEN}`,
      user_id: 42,
      order: { id: 'ord_9f3k2', total_cents: 12999, currency: 'EUR' },
      http: { method: 'POST', path: '/api/v1/orders', status: 402 },
    },
  });
  // A job that request enqueued, run by a worker: linked only by parent_request_id.
  logs.push({
    timestamp: new Date(now - 400).toISOString(),
    service: 'worker',
    level: 'INFO',
    message: 'Refund job started', // not found by a search for TOKEN
    metadata: { job_id: 'job-1', job_class: 'RefundJob', parent_request_id: `req-${TOKEN}` },
  });
  return logs;
}

/** One request's canonical entries and its job, a second apart, posted newest first. */
const REQUEST = `req-canon-${TOKEN}`;
const HOSTILE_PATH = '/orders/<img src=x onerror="window.__pwned=1">';
function requestEntries() {
  const start = Date.now() - 10_000;
  const at = (seconds) => new Date(start + seconds * 1000).toISOString();
  return [
    {
      timestamp: at(5),
      service: 'shop',
      level: 'INFO',
      message: 'GET /long 200',
      metadata: { kind: 'request', request_id: REQUEST, status: 200, method: 'GET', path: `/${'a'.repeat(10_000)}` },
    },
    {
      timestamp: at(4),
      service: 'worker',
      level: 'INFO',
      message: 'ExportJob performed',
      // As the gem sends a job run: in the job's context, linked by parent_request_id.
      metadata: {
        kind: 'job', job_class: 'ExportJob', job_id: 'job-canon', queue: 'default', outcome: 'performed',
        duration_ms: 45.06, parent_request_id: REQUEST, enqueued_by_request_id: REQUEST,
      },
    },
    {
      timestamp: at(3),
      service: 'shop',
      level: 'WARN',
      message: 'Request error',
      // An older entry: the exception under `error`, a hostile path.
      metadata: { request_id: REQUEST, status: 404, method: 'GET', path: HOSTILE_PATH, duration_ms: 3,
        error: { class: 'ActionController::RoutingError', message: 'No route' } },
    },
    {
      timestamp: at(2),
      service: 'shop',
      level: 'ERROR',
      message: "NoMethodError: undefined method 'total'",
      metadata: { kind: 'exception', request_id: REQUEST, exception: { class: 'NoMethodError', message: "undefined method 'total'",
        backtrace: ['app/models/order.rb:12'] } },
    },
    {
      timestamp: at(1),
      service: 'shop',
      level: 'INFO',
      message: 'GET /orders 200',
      metadata: { kind: 'request', request_id: REQUEST, status: 200, method: 'GET', path: '/orders',
        duration_ms: 12.34, controller: 'OrdersController#index' },
    },
  ];
}

/** One trace across two services (one sent as the JSON API's metadata, two as OTLP/JSON
 *  records), and an entry of another trace that the trace view must leave out. */
const TRACE_TOKEN = `trace-${randomUUID().slice(0, 8)}`;
const TRACE_ID = randomUUID().replace(/-/g, '');
const OTHER_TRACE_ID = randomUUID().replace(/-/g, '');
async function postTraceEntries(base) {
  const now = Date.now();
  await postLogs(base, INGEST_KEY, [
    { timestamp: new Date(now - 3_000).toISOString(), service: 'storefront', level: 'INFO',
      message: `Trace ${TRACE_TOKEN} page rendered`, metadata: { trace_id: TRACE_ID, span_id: '00f067aa0ba902b7' } },
    { timestamp: new Date(now - 2_500).toISOString(), service: 'storefront', level: 'INFO',
      message: `Trace ${TRACE_TOKEN} of another trace`, metadata: { trace_id: OTHER_TRACE_ID } },
  ]);
  const nanos = (ms) => `${BigInt(ms) * 1_000_000n}`;
  const record = (ms, severityNumber, text) => ({
    timeUnixNano: nanos(ms), severityNumber, body: { stringValue: text }, traceId: TRACE_ID, spanId: '53995c3f42cd8ad8',
  });
  const response = await fetch(`${base}/v1/logs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': INGEST_KEY },
    body: JSON.stringify({ resourceLogs: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'payments' } }] },
      scopeLogs: [{ logRecords: [
        record(now - 2_000, 9, `Trace ${TRACE_TOKEN} charge started`),
        record(now - 1_500, 17, `Trace ${TRACE_TOKEN} charge failed`),
      ] }],
    }] }),
  });
  const answer = await response.text();
  if (response.status !== 200 || answer !== '{}') fail(`OTLP ingest answered ${response.status} ${answer}`);
}

async function main() {
  const database = prepareDatabase('explorer_browser');
  const server = startServer(database.url, {
    ingestKey: INGEST_KEY,
    adminKey: ADMIN_KEY,
    binary: process.env.EXPLORER_SERVER_BIN,
    echoLog: Boolean(process.env.EXPLORER_SERVER_LOG),
  });
  let browser;
  try {
    const base = await server.address;
    await postLogs(base, INGEST_KEY, entries());
    await postLogs(base, INGEST_KEY, requestEntries());
    await postTraceEntries(base);

    // The one refused key and the one refused deep filter below are deliberate.
    browser = await openPage('explorer', base, { deliberate: ['status of 401', 'status of 400'] });
    const { context, page, problems } = browser;

    // 1. The page asks for the key once.
    await page.goto(`${base}/`);
    await page.waitForSelector('#key-dialog[open]', { timeout: TIMEOUT });
    await page.fill('#key-input', 'not-the-key');
    await page.click('#key-submit');
    await page.waitForSelector('#key-error:not([hidden])', { timeout: TIMEOUT });
    await page.fill('#key-input', ADMIN_KEY);
    await page.click('#key-submit');
    await page.waitForSelector('#key-dialog[open]', { state: 'detached', timeout: TIMEOUT });
    const stored = await page.evaluate(() => ({
      session: Object.values(sessionStorage),
      local: Object.values(localStorage),
    }));
    if (!stored.session.includes(ADMIN_KEY)) fail('the key is not in sessionStorage');
    if (stored.local.includes(ADMIN_KEY)) fail('the key leaked into localStorage');

    // 2. Search for the entry ingested a moment ago.
    await page.fill('#q', TOKEN);
    await page.click('#search-button');
    // The unfiltered first page already shows the entry; wait for the narrowed one.
    await page.waitForFunction(
      (token) => {
        const rows = document.querySelectorAll('#rows tr.log-row');
        return rows.length === 1 && rows[0].textContent.includes(token);
      },
      TOKEN,
      { timeout: TIMEOUT },
    );
    const row = page.locator('#rows tr.log-row', { hasText: TOKEN });
    if (!page.url().includes(`q=${TOKEN}`)) fail(`the filters are not in the URL: ${page.url()}`);
    if ((await row.locator('.level').textContent()) !== 'ERROR') fail('the level badge is missing');

    // 3. Open its metadata.
    await row.click();
    const details = page.locator('#rows tr.log-details pre');
    await details.waitFor({ timeout: TIMEOUT });
    const metadata = JSON.parse(await details.textContent());
    if (metadata.order?.id !== 'ord_9f3k2' || metadata.user_id !== 42) fail(`unexpected metadata ${JSON.stringify(metadata)}`);

    // 4. The shared URL restores the view in another tab (which, having its own
    //    session storage, asks for the key again).
    const shared = await context.newPage();
    await shared.goto(page.url());
    await shared.waitForSelector('#key-dialog[open]', { timeout: TIMEOUT });
    await shared.fill('#key-input', ADMIN_KEY);
    await shared.click('#key-submit');
    await shared.locator('#rows tr.log-row', { hasText: TOKEN }).waitFor({ timeout: TIMEOUT });
    if ((await shared.inputValue('#q')) !== TOKEN) fail('the shared URL did not restore the search box');
    await shared.close();

    // 5. Surrounding entries of that row.
    await page.locator('#rows tr.log-details .context-button').click();
    await page.locator('#context-rows tr.log-row.anchor', { hasText: TOKEN }).waitFor({ timeout: TIMEOUT });
    await page.click('#context-close');

    // 5b. Everything that request caused, the worker's job entry included.
    await page.locator('#rows tr.log-details .request-button').click();
    await page.waitForURL(/request_id=req-/, { timeout: TIMEOUT });
    await page.waitForFunction(
      (token) => {
        const rows = [...document.querySelectorAll('#rows tr.log-row')].map((r) => r.textContent);
        return rows.length === 2 && rows.some((t) => t.includes('Refund job started'))
          && rows.some((t) => t.includes(`Order ${token} failed`));
      },
      TOKEN,
      { timeout: TIMEOUT },
    );
    if (await page.locator('#request-filter').isHidden()) fail('the request view does not say which request');
    const caused = await page.$$eval('#rows tr.log-row td.message .message-text', (cells) => cells.map((c) => c.textContent));
    if (caused[0] !== `Order ${TOKEN} failed: card declined` || caused[1] !== 'Refund job started') {
      fail(`the request view is not oldest first: ${JSON.stringify(caused)}`);
    }
    if (!(await page.locator('#rows tr.log-row.job-row', { hasText: 'Refund job started' }).count())) {
      fail('the job entry of the request is not marked as a job');
    }
    await page.click('#request-filter-clear');
    await page.waitForFunction(() => !location.search.includes('request_id='), null, { timeout: TIMEOUT });

    // 5c. Canonical fields in the rows without expanding them, and a request's view
    //     oldest first with its job marked.
    await page.goto(`${base}/?range=1h&request_id=${encodeURIComponent(REQUEST)}`);
    await page.waitForFunction(() => document.querySelectorAll('#rows tr.log-row').length === 5, null, { timeout: TIMEOUT });
    const rows = await page.$$eval('#rows tr.log-row', (trs) => trs.map((tr) => ({
      message: tr.querySelector('.message-text').textContent,
      text: tr.querySelector('td.message').textContent,
      job: tr.classList.contains('job-row'),
      badge: tr.querySelector('.kind-badge') ? tr.querySelector('.kind-badge').textContent : null,
    })));
    const order = rows.map((r) => r.message);
    const expectedOrder = ['GET /orders 200', "NoMethodError: undefined method 'total'", 'Request error', 'ExportJob performed',
      'GET /long 200'];
    if (JSON.stringify(order) !== JSON.stringify(expectedOrder)) fail(`request view order ${JSON.stringify(order)}`);
    const expectText = (i, text) => {
      if (!rows[i].text.includes(text)) fail(`row ${i} reads ${JSON.stringify(rows[i].text)}, expected ${JSON.stringify(text)}`);
    };
    expectText(0, '200 GET /orders 12.3 ms');
    expectText(1, 'NoMethodError');
    expectText(2, `404 GET ${HOSTILE_PATH} 3.0 ms ActionController::RoutingError`);
    expectText(3, 'ExportJob queue default performed 45.1 ms');
    if (rows[3].badge !== 'job' || !rows[3].job) fail('the job entry is not marked as a job');
    if ([0, 1, 2, 4].some((i) => rows[i].job || rows[i].badge)) fail('a request entry is marked as a job');
    // A long value is cut to a short one in the row (the whole of it is in the expanded metadata).
    expectText(4, `200 GET /${'a'.repeat(118)}…`);
    if (rows[4].text.length > 200) fail(`a 10,000-character path made a row of ${rows[4].text.length} characters`);
    if (!(await page.textContent('#summary')).includes('oldest first')) fail('the summary does not say oldest first');
    const injected = await page.evaluate(() => document.querySelectorAll('#rows img').length + (window.__pwned ? 1 : 0));
    if (injected) fail('metadata was rendered as HTML');
    const directory = process.env.SCREENSHOT_DIR || path.join(repo, 'server/assets/explorer');
    await page.screenshot({ path: path.join(directory, 'screenshot-request.png') });
    await page.goto(`${base}/?range=1h`);
    await page.waitForSelector('#rows tr.log-row', { timeout: TIMEOUT });

    // 5d. Everything of one trace, from both services, from an entry's button; not the
    //     entry of another trace that the search found beside them.
    await page.goto(`${base}/?range=1h&q=${TRACE_TOKEN}`);
    await page.waitForFunction(() => document.querySelectorAll('#rows tr.log-row').length === 4, null, { timeout: TIMEOUT });
    await page.locator('#rows tr.log-row', { hasText: 'page rendered' }).click();
    const traceButton = page.locator('#rows tr.log-details .trace-button');
    if ((await traceButton.textContent()) !== `Everything of trace ${TRACE_ID}`) fail('the trace button does not name the trace');
    await traceButton.click();
    await page.waitForURL((url) => url.searchParams.get('trace_id') === TRACE_ID, { timeout: TIMEOUT });
    await page.waitForFunction(
      (token) => {
        const rows = [...document.querySelectorAll('#rows tr.log-row')];
        return rows.length === 3 && rows.every((r) => r.textContent.includes(token));
      },
      TRACE_TOKEN,
      { timeout: TIMEOUT },
    );
    const traced = await page.$$eval('#rows tr.log-row', (trs) => trs.map((tr) => [
      tr.querySelector('td.service') ? tr.querySelector('td.service').textContent : tr.textContent,
      tr.querySelector('.message-text').textContent,
    ]));
    const tracedMessages = traced.map(([, message]) => message).sort();
    const expectedTrace = ['charge failed', 'charge started', 'page rendered'].map((m) => `Trace ${TRACE_TOKEN} ${m}`);
    if (JSON.stringify(tracedMessages) !== JSON.stringify(expectedTrace)) fail(`the trace view shows ${JSON.stringify(traced)}`);
    if (!traced.some(([service]) => service.includes('payments')) || !traced.some(([service]) => service.includes('storefront'))) {
      fail(`the trace view is not from both services: ${JSON.stringify(traced)}`);
    }
    const traceUrl = new URL(page.url());
    if (traceUrl.searchParams.get('q')) fail(`the trace view kept the search: ${page.url()}`);
    if ((await page.textContent('#trace-filter-id')) !== TRACE_ID || await page.locator('#trace-filter').isHidden()) {
      fail('the trace view does not say which trace');
    }
    await page.click('#trace-filter-clear');
    await page.waitForFunction(() => !location.search.includes('trace_id='), null, { timeout: TIMEOUT });

    // 5e. A field's top values for the search, one of them clicked as a filter; then the
    // search exported as CSV holds exactly its entries.
    await page.goto(`${base}/?range=1h&service=checkout`);
    await page.waitForSelector('#rows tr.log-row', { timeout: TIMEOUT });
    await page.fill('#field-name', 'level');
    await page.click('#field-show');
    await page.waitForSelector('#field-panel:not([hidden]) .field-value', { timeout: TIMEOUT });
    const levelValues = await page.locator('#field-rows .field-value').allTextContents();
    if (!levelValues.includes('INFO') || !levelValues.includes('WARN')) {
      fail(`checkout's top levels: ${JSON.stringify(levelValues)}`);
    }
    if (!(await page.textContent('#field-note')).includes('in all')) fail('a small search says it was sampled');
    await page.locator('#field-rows .field-value', { hasText: 'WARN' }).first().click();
    await page.waitForURL(/level=WARN/, { timeout: TIMEOUT });
    await page.waitForFunction(() => {
      const levels = [...document.querySelectorAll('#rows tr.log-row .level')].map((node) => node.textContent);
      return levels.length > 0 && levels.every((level) => level === 'WARN');
    }, null, { timeout: TIMEOUT });
    if (!(await page.locator('#more').isHidden())) fail('the WARN entries of checkout fill more than a page');
    const warnRows = await page.locator('#rows tr.log-row').count();
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: TIMEOUT }),
      page.click('#export-csv'),
    ]);
    if (!/^logs-.*\.csv$/.test(download.suggestedFilename())) fail(`export file name ${download.suggestedFilename()}`);
    const csvLines = readFileSync(await download.path(), 'utf8').trim().split('\r\n');
    if (!csvLines[0].startsWith('id,timestamp,received_at,service,level,message')) fail(`CSV header: ${csvLines[0]}`);
    if (csvLines.length - 1 !== warnRows || csvLines.slice(1).some((line) => !line.includes(',checkout,WARN,'))) {
      fail(`the CSV export holds ${csvLines.length - 1} lines for ${warnRows} entries: ${csvLines.slice(0, 3).join(' | ')}`);
    }

    // 6. Live tail: an entry ingested while tailing appears at the top.
    await page.check('#live-toggle');
    await page.waitForSelector('#live-status.on', { timeout: TIMEOUT });
    const liveToken = `${TOKEN}-live`;
    await postLogs(base, INGEST_KEY, [{
      timestamp: new Date().toISOString(),
      service: 'checkout',
      level: 'WARN',
      message: `Order ${liveToken} needs review`,
      metadata: { request_id: `req-${liveToken}` },
    }]);
    await page.locator('#rows tr.log-row.fresh', { hasText: liveToken }).waitFor({ timeout: TIMEOUT });
    if (!page.url().includes('live=1')) fail('the live toggle is not in the URL');
    await page.uncheck('#live-toggle');

    // 7. Clicking a histogram bar zooms into its range.
    await page.goto(`${base}/?range=1h`);
    await page.waitForSelector('#histogram .bar', { timeout: TIMEOUT });
    await page.locator('#histogram .bar').nth(30).click();
    await page.waitForURL(/since=.*until=/, { timeout: TIMEOUT });
    if ((await page.inputValue('#range')) !== 'custom') fail('zooming did not switch to a custom range');

    // 8. A link whose metadata filter nests past the server's cap (30,000 segments, as
    //    a hostile link might) is refused with a 400 the page explains, for the list
    //    and for the live tail, which stops instead of retrying.
    const deepFilter = `meta.${Array(30_000).fill('a').join('.')}=1`;
    await page.goto(`${base}/?live=1&${deepFilter}`);
    await page.waitForFunction(
      () => document.querySelector('#error').textContent.startsWith('Live tail: Invalid query')
        && document.querySelector('#live-status').hidden,
      null,
      { timeout: TIMEOUT },
    );
    const explained = await page.textContent('#error');
    if (!explained.includes('nested') || explained.length > 2_000) fail(`the refusal reads ${explained.slice(0, 300)}`);

    // 9. Screenshots: the broader view with the histogram, the entry's metadata open.
    await page.goto(`${base}/?range=1h`);
    const newest = page.locator('#rows tr.log-row', { hasText: `Order ${TOKEN} failed` });
    await newest.waitFor({ timeout: TIMEOUT });
    await page.waitForSelector('#histogram .bar', { timeout: TIMEOUT });
    await newest.click();
    await page.locator('#rows tr.log-details pre').waitFor({ timeout: TIMEOUT });
    await page.screenshot({ path: path.join(directory, 'screenshot.png') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: path.join(directory, 'screenshot-dark.png') });

    if (problems.length) fail(problems.join('\n'));
    console.log(`explorer browser test passed; screenshots in ${directory}`);
  } catch (error) {
    await noteFailure(browser && browser.context, error, 'explorer');
    throw error;
  } finally {
    if (browser) await browser.close();
    await server.stop();
    database.drop();
  }
}

main().catch((error) => {
  console.error(error.message || error);
  process.exit(1);
});
