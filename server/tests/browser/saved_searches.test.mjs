// Saved searches in the log explorer, in headless Chromium: save the current search
// (shared, with a description), see it in the list, open it from the list from another
// search and find the same entries with the same filters filled in, delete it; and a
// screenshot of the list for docs/images.
//
//   cargo build -p log_ingestion_server
//   (cd server/tests/browser && npm ci && node saved_searches.test.mjs)
//
// Environment: as explorer.test.mjs (EXPLORER_SERVER_BIN, DATABASE_URL, CHROMIUM);
// SCREENSHOT_DIR defaults to docs/images.

import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { repo, prepareDatabase, startServer, postLogs, adminGet, openPage, noteFailure } from './harness.mjs';

const INGEST_KEY = `ingest-${randomUUID()}`;
const ADMIN_KEY = `admin-${randomUUID()}`;
const TIMEOUT = 15_000;
const NAME = 'Checkout errors';
const SEARCH = 'since=1h&service=checkout&level=ERROR';

function fail(message) {
  throw new Error(`saved searches browser test: ${message}`);
}

/** Entries of the last half hour: checkout and api, INFO and ERROR. */
function entries() {
  const now = Date.now();
  return Array.from({ length: 40 }, (_, i) => ({
    timestamp: new Date(now - 30_000 - i * 40_000).toISOString(),
    service: i % 2 ? 'checkout' : 'api',
    level: i % 3 ? 'INFO' : 'ERROR',
    message: `${i % 3 ? 'handled' : 'failed'} request ${i}`,
    metadata: { request_id: `req-${i}`, user_id: 40 + (i % 5) },
  }));
}

const rowMessages = (page) => page.$$eval('#rows tr.log-row td.message .message-text', (cells) => cells.map((c) => c.textContent));

async function main() {
  const database = prepareDatabase('saved_searches_browser');
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
    const expected = (await adminGet(base, ADMIN_KEY, `/api/v1/logs?${SEARCH}`)).logs.map((log) => log.message);
    if (expected.length !== 7) fail(`the data set has ${expected.length} checkout errors, not 7`);

    browser = await openPage('saved-searches', base);
    const { page, problems } = browser;

    // 1. Search, then save that search, shared, with a description.
    await page.goto(`${base}/?range=1h&service=checkout&level=ERROR`);
    await page.waitForSelector('#key-dialog[open]', { timeout: TIMEOUT });
    await page.fill('#key-input', ADMIN_KEY);
    await page.click('#key-submit');
    await page.waitForFunction((n) => document.querySelectorAll('#rows tr.log-row').length === n, expected.length, { timeout: TIMEOUT });
    await page.click('#save-search');
    await page.waitForSelector('#save-dialog[open]', { timeout: TIMEOUT });
    const shownSearch = await page.textContent('#save-query');
    if (shownSearch !== SEARCH) fail(`the dialog saves ${shownSearch}, not ${SEARCH}`);
    await page.fill('#save-name', NAME);
    await page.fill('#save-description', 'Failed checkouts in the last hour, for the on-call engineer.');
    await page.check('#save-shared');
    await page.click('#save-submit');
    await page.locator('#saved-rows tr.saved-row', { hasText: NAME }).waitFor({ timeout: TIMEOUT });
    if (!(await page.textContent('#saved-status')).includes(NAME)) fail('saving does not say so');

    // Two more, saved through the API, so the list looks like a team's.
    await page.evaluate(async (key) => {
      for (const body of [
        { name: 'Slow API requests', search: 'since=6h&service=api&meta.user_id=42', description: 'user 42 reports slowness' },
        { name: 'Everything of the payment incident', search: 'since=2026-12-01T10:00:00Z&until=2026-12-01T11:00:00Z', shared: true },
      ]) {
        await fetch('/api/v1/saved-searches', {
          method: 'POST', headers: { 'X-API-Key': key, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
        });
      }
    }, ADMIN_KEY);
    await page.click('#saved-toggle');
    await page.click('#saved-toggle');
    await page.waitForFunction(() => document.querySelectorAll('#saved-rows tr.saved-row').length === 3, null, { timeout: TIMEOUT });
    const names = await page.$$eval('#saved-rows .saved-open', (links) => links.map((a) => a.textContent));
    if (names.join('|') !== `Everything of the payment incident|Slow API requests|${NAME}`) fail(`the list reads ${names}`);
    const directory = process.env.SCREENSHOT_DIR || path.join(repo, 'docs/images');
    await page.locator('#saved-panel').screenshot({ path: path.join(directory, 'saved-searches.png') });

    // 2. From another search, open it from the list: the same entries, the same filters.
    await page.goto(`${base}/?range=15m&service=api`);
    await page.waitForSelector('#rows tr.log-row', { timeout: TIMEOUT });
    await page.click('#saved-toggle');
    await page.locator('#saved-rows .saved-open', { hasText: NAME }).click();
    await page.waitForURL((url) => url.search === `?${SEARCH}`, { timeout: TIMEOUT });
    await page.waitForFunction((n) => document.querySelectorAll('#rows tr.log-row').length === n, expected.length, { timeout: TIMEOUT });
    const opened = await rowMessages(page);
    if (opened.join('|') !== expected.join('|')) fail(`the saved search shows ${opened}, not ${expected}`);
    const form = await page.evaluate(() => ({
      range: document.querySelector('#range').value,
      service: document.querySelector('#service').value,
      levels: [...document.querySelectorAll('input[name="level"]:checked')].map((box) => box.value),
    }));
    if (form.range !== '1h' || form.service !== 'checkout' || form.levels.join() !== 'ERROR') {
      fail(`the form reads ${JSON.stringify(form)}`);
    }

    // 3. Delete it from the list (after confirming).
    page.once('dialog', (dialog) => dialog.accept());
    await page.click('#saved-toggle');
    await page.locator('#saved-rows tr.saved-row', { hasText: NAME }).locator('.saved-delete').click();
    await page.locator('#saved-rows tr.saved-row', { hasText: NAME }).waitFor({ state: 'detached', timeout: TIMEOUT });
    const left = (await adminGet(base, ADMIN_KEY, '/api/v1/saved-searches')).saved_searches.map((s) => s.name);
    if (left.includes(NAME)) fail('the deleted search is still listed by the API');

    if (problems.length) fail(problems.join('\n'));
    console.log(`saved searches browser test passed; screenshot in ${directory}`);
  } catch (error) {
    await noteFailure(browser && browser.context, error, 'saved-searches');
    throw error;
  } finally {
    if (browser) await browser.close();
    await server.stop();
    database.drop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
