// The explorer's Alerts page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): from a search on the Logs page, "Alert on this search" opens the
// rule form prefilled with the search; the form shows the 24-hour preview, saves the
// rule, which is listed, fires (evaluated by the server) and is delivered to a webhook
// this test runs, and the history shows the delivery. A rule from the rules file is
// listed read-only; hostile labels and annotations stay text. Saves docs/images/alerts.png
// (the page, and alerts-dark.png) and alerts-rule.png (the form with its preview).
//
//   cargo build -p log_ingestion_server
//   (cd server/tests/browser && npm ci && node alerts.test.mjs)
//
// Environment: EXPLORER_SERVER_BIN, DATABASE_URL, CHROMIUM, SCREENSHOT_DIR (default
// docs/images), as explorer.test.mjs. Exits non-zero on the first failed expectation.

import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repo, prepareDatabase, startServer, postLogs, adminGet, openPage, noteFailure } from './harness.mjs';

const INGEST_KEY = `ingest-${randomUUID()}`;
const ADMIN_KEY = `admin-${randomUUID()}`;
const TIMEOUT = 15_000;
const HOSTILE = '<img src=x onerror="window.__pwned=1">';

function fail(message) {
  throw new Error(`alerts browser test: ${message}`);
}

/** ERROR entries from checkout over the last three hours, in bursts, and some INFO. */
function entries() {
  const now = Date.now();
  const logs = [];
  for (let i = 0; i < 120; i += 1) {
    const burst = i % 3 === 0 ? 0 : 1; // two bursts of errors, an hour apart
    const minutesAgo = burst === 0 ? 150 + (i % 20) : 40 + (i % 10);
    logs.push({
      timestamp: new Date(now - minutesAgo * 60_000 - (i % 50) * 1000).toISOString(),
      service: 'checkout',
      level: i % 4 === 0 ? 'INFO' : 'ERROR',
      message: `Payment failed for order ord_${7000 + i}`,
      metadata: { request_id: `req-${i}` },
    });
  }
  // What the rule sees as soon as it is evaluated (windows end 30 s ago).
  for (let i = 0; i < 3; i += 1) {
    logs.push({ timestamp: new Date(now - 90_000 - i * 1000).toISOString(), service: 'checkout', level: 'ERROR',
      message: 'Payment provider timeout', metadata: { request_id: `req-now-${i}` } });
  }
  return logs;
}

/** A webhook receiver counting what it is sent. */
function receiver() {
  const received = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      received.push(JSON.parse(body));
      response.writeHead(200).end('ok');
    });
  });
  const url = new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}/hook`)));
  return { received, url, close: () => new Promise((resolve) => server.close(resolve)) };
}

async function adminSend(base, method, pathname, body) {
  const response = await fetch(`${base}${pathname}`, {
    method,
    headers: { 'content-type': 'application/json', 'x-api-key': ADMIN_KEY },
    body: JSON.stringify(body),
  });
  if (!response.ok) fail(`${method} ${pathname} answered ${response.status} ${await response.text()}`);
  return response.json();
}

async function main() {
  const hook = receiver();
  const rulesDirectory = mkdtempSync(path.join(tmpdir(), 'alerts-rules-'));
  const rulesFile = path.join(rulesDirectory, 'rules.yaml');
  writeFileSync(rulesFile, [
    'rules:',
    '  - name: nightly export heartbeat',
    '    kind: absence',
    '    search: {service: nightly-export}',
    '    window: 1d',
    '',
  ].join('\n'));
  process.env.LOG_INGESTION_ALERT_RULES_FILE = rulesFile;
  const database = prepareDatabase('alerts_browser');
  const server = startServer(database.url, { ingestKey: INGEST_KEY, adminKey: ADMIN_KEY,
    binary: process.env.EXPLORER_SERVER_BIN });
  const directory = process.env.SCREENSHOT_DIR || path.join(repo, 'docs/images');
  let browser;
  try {
    const base = await server.address;
    await postLogs(base, INGEST_KEY, entries());
    await adminSend(base, 'POST', '/api/v1/alerts/channels', { name: 'ops-webhook', kind: 'webhook', url: await hook.url });
    // A rule whose labels and annotations are markup, and a search on a service that is.
    await adminSend(base, 'POST', '/api/v1/alerts/rules', {
      name: 'hostile labels', kind: 'count', search: { service: `<b>${HOSTILE}</b>` }, op: '>', threshold: 100,
      window: '5m', labels: { team: HOSTILE }, annotations: { summary: HOSTILE },
    });

    browser = await openPage('alerts', base);
    const { page, problems } = browser;
    page.on('dialog', (dialog) => dialog.accept());

    // 1. A search on the Logs page, then "Alert on this search".
    await page.goto(`${base}/?range=6h&service=checkout&level=ERROR`);
    await page.waitForSelector('#key-dialog[open]', { timeout: TIMEOUT });
    await page.fill('#key-input', ADMIN_KEY);
    await page.click('#key-submit');
    await page.locator('#rows tr.log-row').first().waitFor({ timeout: TIMEOUT });
    await page.click('#alert-on-search');
    await page.waitForURL(/\/alerts\?new=1/, { timeout: TIMEOUT });
    await page.locator('#rule-editor:not([hidden])').waitFor({ timeout: TIMEOUT });
    if ((await page.inputValue('#search-service')) !== 'checkout') fail('the form did not take the search\'s service');
    if ((await page.inputValue('#search-level')) !== 'ERROR') fail('the form did not take the search\'s level');

    // 2. The rule: more than 5 ERROR entries from checkout in 5 minutes; the preview shows
    //    the two bursts before it is saved.
    await page.fill('#rule-name', 'checkout errors');
    await page.fill('#rule-threshold', '5');
    await page.fill('#rule-window', '5m');
    await page.fill('#rule-channels', 'ops-webhook');
    await page.fill('#rule-summary', 'More than 5 ERROR entries from checkout in 5 minutes');
    await page.waitForFunction(() => /Would have fired 2 times/.test(document.getElementById('preview-summary').textContent),
      null, { timeout: TIMEOUT }).catch(async () => fail(`the preview says: ${await page.textContent('#preview-summary')}`));
    if ((await page.locator('#preview-series .preview-firing').count()) !== 2) fail('the preview does not draw two firing periods');
    await page.locator('#rule-editor').screenshot({ path: path.join(directory, 'alerts-rule.png') });
    // The threshold is lowered so the three recent errors make it fire now.
    await page.fill('#rule-threshold', '2');
    await page.click('#rule-save');
    const row = page.locator('#rule-rows tr.rule-row', { hasText: 'checkout errors' });
    await row.waitFor({ timeout: TIMEOUT });
    if (!(await page.locator('#rule-editor').isHidden())) fail('the form stayed open after saving');
    const rule = (await adminGet(base, ADMIN_KEY, '/api/v1/alerts/rules')).rules.find((r) => r.name === 'checkout errors');
    if (!rule || rule.search.service !== 'checkout' || rule.search.level !== 'ERROR' || rule.threshold !== 2
        || rule.channels[0] !== 'ops-webhook') fail(`the stored rule is not the form's: ${JSON.stringify(rule)}`);

    // 3. The server evaluates it: it fires, the webhook receives it, the page shows both.
    const deadline = Date.now() + TIMEOUT;
    while (!hook.received.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    if (!hook.received.length) fail('the webhook received nothing');
    await page.reload();
    await page.locator('#firing-rows tr.state-firing', { hasText: 'checkout errors' }).waitFor({ timeout: TIMEOUT });
    const delivered = page.locator('#history-rows tr', { hasText: 'checkout errors' }).locator('.delivery-delivered');
    await delivered.first().waitFor({ timeout: TIMEOUT });
    if (!(await delivered.first().textContent()).includes('ops-webhook: delivered')) fail('the history does not show the delivery');

    // 4. The file rule is listed read-only; the API rules can be edited.
    const fileRow = page.locator('#rule-rows tr.rule-row', { hasText: 'nightly export heartbeat' });
    if (!(await fileRow.locator('.badge-file').count())) fail('the file rule is not marked read-only');
    if (await fileRow.getByRole('button', { name: 'Edit' }).count()) fail('the file rule offers Edit');
    await row.getByRole('button', { name: 'Edit' }).click();
    if ((await page.inputValue('#rule-threshold')) !== '2') fail('Edit did not fill the form with the rule');
    await page.click('#rule-cancel');

    // 5. Hostile text stays text.
    const hostileRow = page.locator('#rule-rows tr.rule-row', { hasText: 'hostile labels' });
    if (!(await hostileRow.textContent()).includes(HOSTILE)) fail('the hostile summary is not shown as text');
    if (await page.locator('#rule-rows img, #rule-rows b').count()) fail('server text became markup');
    if (await page.evaluate(() => window.__pwned)) fail('a hostile string ran');

    await page.screenshot({ path: path.join(directory, 'alerts.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    if (background === 'rgb(255, 255, 255)' || background === 'rgb(247, 248, 250)') fail(`dark mode kept a light background: ${background}`);
    await page.screenshot({ path: path.join(directory, 'alerts-dark.png'), fullPage: true });
    if (problems.length) fail(problems.join('\n'));
    console.log(`alerts browser test passed; screenshots in ${directory}`);
  } catch (error) {
    await noteFailure(browser && browser.context, error, 'alerts');
    throw error;
  } finally {
    if (browser) await browser.close();
    await server.stop();
    await hook.close();
    database.drop();
    rmSync(rulesDirectory, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error.stack || error.message);
  process.exit(1);
});
