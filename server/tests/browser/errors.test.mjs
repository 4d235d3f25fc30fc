// The explorer's Errors page in headless Chromium: exceptions raised in the spec Rails app
// (spec/rails/app) and sent by the real gem to the real server are listed as one group;
// its page shows the backtrace with the app's frames marked and occurrences that link to
// the request's view; resolving, a regression, merging; server text never becomes HTML;
// screenshots for docs/errors.md.
//
//   cargo build -p log_ingestion_server && rake compile:test
//   (cd server/tests/browser && npm ci && node errors.test.mjs)
//
// Environment: EXPLORER_SERVER_BIN, DATABASE_URL, CHROMIUM as for explorer.test.mjs;
// SCREENSHOT_DIR (default docs/images). Exits non-zero on the first failed expectation.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { repo, prepareDatabase, startServer, postLogs, adminGet, openPage, noteFailure } from './harness.mjs';

const INGEST_KEY = `ingest-${randomUUID()}`;
const ADMIN_KEY = `admin-${randomUUID()}`;
const TOKEN = randomUUID().slice(0, 8);
const SERVICE = `shop-${TOKEN}`;
const TIMEOUT = 15_000;
const BOOMS = 3;
const HOSTILE = '<img src=x onerror="window.__pwned=1">';

function fail(message) {
  throw new Error(`errors browser test: ${message}`);
}

/** Runs the spec Rails app with the gem delivering to `base`; answers the request ids it used. */
async function sendRailsErrors(base) {
  const { stdout } = await promisify(execFile)(
    process.env.RUBY || 'ruby',
    ['-I', path.join(repo, 'lib'), path.join(repo, 'server/tests/browser/send_rails_errors.rb'), `req-${TOKEN}`, String(BOOMS)],
    {
      cwd: repo,
      timeout: 120_000,
      env: { ...process.env, LOG_INGESTION_URL: base, LOG_INGESTION_API_KEY: INGEST_KEY, LOG_INGESTION_SERVICE: SERVICE,
        DATABASE_URL: '' },
    },
  );
  return JSON.parse(stdout.trim().split('\n').pop());
}

async function main() {
  const database = prepareDatabase('errors_browser');
  const server = startServer(database.url, { ingestKey: INGEST_KEY, adminKey: ADMIN_KEY });
  const directory = process.env.SCREENSHOT_DIR || path.join(repo, 'docs/images');
  let browser;
  try {
    const base = await server.address;
    const requestIds = await sendRailsErrors(base);
    const listed = await adminGet(base, ADMIN_KEY, `/api/v1/errors?service=${SERVICE}&since=1h`);
    const boom = listed.groups.find((g) => g.exception_class === 'WidgetsController::Boom');
    if (!boom || boom.count !== BOOMS) fail(`the server has no group of ${BOOMS} booms: ${JSON.stringify(listed)}`);

    // A second, hostile group: its class and frame are markup that must stay text.
    await postLogs(base, INGEST_KEY, [{
      timestamp: new Date().toISOString(),
      service: SERVICE,
      level: 'ERROR',
      message: `${HOSTILE}: bad`,
      metadata: { request_id: `req-${TOKEN}-hostile`, user_id: 7,
        exception: { class: HOSTILE, message: 'bad', backtrace: [`app/models/${HOSTILE}.rb:1:in \`x'`] } },
    }]);

    browser = await openPage('errors', base);
    const { page, problems } = browser;
    page.on('dialog', (dialog) => dialog.accept());

    // 1. The Errors page, filtered by service in the URL, lists the gem's group.
    await page.goto(`${base}/errors?range=1h&service=${SERVICE}`);
    await page.waitForSelector('#key-dialog[open]', { timeout: TIMEOUT });
    await page.fill('#key-input', ADMIN_KEY);
    await page.click('#key-submit');
    const row = page.locator('#group-rows tr.group-row', { hasText: 'WidgetsController::Boom' });
    await row.waitFor({ timeout: TIMEOUT });
    if ((await page.inputValue('#service')) !== SERVICE) fail('the service filter was not read from the URL');
    const rowText = await row.textContent();
    if (!rowText.includes(SERVICE)) fail(`the row does not name the service: ${rowText}`);
    if ((await row.locator('.count-range').textContent()) !== String(BOOMS)) fail(`the row counts ${await row.locator('td.count').textContent()}`);
    if (!(await row.locator('.badge-new').count())) fail('the new group has no "new" badge');
    if (!(await row.locator('.badge-unresolved').count())) fail('the group has no status badge');
    if (!(await row.locator('svg.sparkline polyline').count())) fail('the row has no sparkline');
    if ((await page.locator('#group-rows tr.group-row').count()) !== 2) fail('expected the gem group and the hostile one');

    // Sorting is in the URL too.
    await page.selectOption('#sort', 'count');
    await page.waitForURL(/sort=count/, { timeout: TIMEOUT });
    await row.waitFor({ timeout: TIMEOUT });
    await page.screenshot({ path: path.join(directory, 'errors-list.png') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: path.join(directory, 'errors-list-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });

    // 2. The group page: title, backtrace with the app's frame marked, occurrences newest first.
    await row.locator('a.group-link').click();
    await page.waitForURL(/group=/, { timeout: TIMEOUT });
    await page.waitForFunction(() => document.querySelectorAll('#backtrace li.frame').length > 1, null, { timeout: TIMEOUT });
    const title = await page.textContent('#group-title');
    if (!title.startsWith('WidgetsController::Boom')) fail(`the group's title reads ${title}`);
    const frames = await page.$$eval('#backtrace li.frame', (items) => items.map((li) => ({
      text: li.querySelector('.frame-text').textContent, app: li.classList.contains('in-app'),
    })));
    const appFrame = frames.find((f) => f.text.startsWith('app/controllers/widgets_controller.rb:'));
    if (!appFrame || !appFrame.app) fail(`the controller's frame is not marked as the app's: ${JSON.stringify(frames.slice(0, 5))}`);
    if (!frames.some((f) => !f.app && /^actionpack \(/.test(f.text))) fail('no framework frame is shown unmarked');
    await page.check('#app-only');
    if ((await page.locator('#backtrace li.frame:not(.in-app)').count()) !== 0) fail('"app frames only" kept other frames');
    await page.uncheck('#app-only');
    await page.waitForFunction((n) => document.querySelectorAll('#occurrence-rows tr.occurrence-row').length === n, BOOMS, { timeout: TIMEOUT });
    const links = await page.$$eval('#occurrence-rows a.request-link', (as) => as.map((a) => a.textContent));
    const booms = requestIds.slice(0, BOOMS);
    if (JSON.stringify(links) !== JSON.stringify([...booms].reverse())) fail(`occurrences are not newest first: ${JSON.stringify(links)}`);
    const affected = await page.textContent('#group-facts');
    if (!affected.includes(`Requests affected${BOOMS}`)) fail(`the affected requests read ${affected}`);
    await page.screenshot({ path: path.join(directory, 'errors-group.png'), fullPage: true });

    // 3. Resolve; a new occurrence (the same class and app frame) makes it regressed.
    await page.click('#resolve-button');
    await page.locator('#group-badges .badge-resolved').waitFor({ timeout: TIMEOUT });
    await postLogs(base, INGEST_KEY, [{
      timestamp: new Date().toISOString(),
      service: SERVICE,
      level: 'ERROR',
      message: 'WidgetsController::Boom: widget exploded',
      metadata: { kind: 'exception', request_id: `req-${TOKEN}-again`,
        exception: { class: 'WidgetsController::Boom', message: 'widget exploded', backtrace: [appFrame.text] } },
    }]);
    await page.reload();
    await page.locator('#group-badges .badge-regressed').waitFor({ timeout: TIMEOUT });

    // 4. An occurrence links to everything its request logged, on the logs page.
    const first = page.locator('#occurrence-rows a.request-link', { hasText: booms[0] });
    await first.click();
    await page.waitForURL(/request_id=/, { timeout: TIMEOUT });
    await page.waitForFunction(
      () => [...document.querySelectorAll('#rows tr.log-row')].some((r) => r.textContent.includes('WidgetsController::Boom')),
      null,
      { timeout: TIMEOUT },
    );
    if ((await page.textContent('#request-filter-id')) !== booms[0]) fail('the request view shows another request');
    // ... and the exception's entry there links back to its group.
    await page.locator('#rows tr.log-row', { hasText: 'WidgetsController::Boom: widget exploded' }).click();
    await page.locator('#rows tr.log-details a.group-link').click();
    await page.waitForURL(/\/errors\?/, { timeout: TIMEOUT });
    await page.waitForFunction(
      () => [...document.querySelectorAll('#group-rows tr.group-row')].map((r) => r.textContent).join('|').includes('WidgetsController::Boom'),
      null,
      { timeout: TIMEOUT },
    );
    if ((await page.locator('#group-rows tr.group-row').count()) !== 1) fail('the entry\'s group link lists more than its group');

    // 5. Merge the hostile group into the gem's; nothing of it became HTML.
    await page.goto(`${base}/errors?range=1h&service=${SERVICE}`);
    const hostile = page.locator('#group-rows tr.group-row', { hasText: HOSTILE });
    await hostile.waitFor({ timeout: TIMEOUT });
    await hostile.locator('a.group-link').click();
    await page.locator('#backtrace li.frame.in-app', { hasText: HOSTILE }).waitFor({ timeout: TIMEOUT });
    const injected = await page.evaluate(() => document.querySelectorAll('img').length + (window.__pwned ? 1 : 0));
    if (injected) fail('server text was rendered as HTML');
    await page.fill('#merge-into', String(boom.id));
    await page.click('#merge-button');
    await page.waitForURL(new RegExp(`group=${boom.id}(&|$)`), { timeout: TIMEOUT });
    await page.waitForFunction((n) => document.querySelectorAll('#occurrence-rows tr.occurrence-row').length === n, BOOMS + 2, { timeout: TIMEOUT });

    // 6. Occurrences page newest first: 50 more make two pages.
    const more = 50;
    const start = Date.now() - 5_000;
    await postLogs(base, INGEST_KEY, Array.from({ length: more }, (_, i) => ({
      timestamp: new Date(start + i).toISOString(),
      service: SERVICE,
      level: 'ERROR',
      message: 'WidgetsController::Boom: widget exploded',
      metadata: { kind: 'exception', request_id: `req-${TOKEN}-page-${i}`,
        exception: { class: 'WidgetsController::Boom', message: 'widget exploded', backtrace: [appFrame.text] } },
    })));
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('#occurrence-rows tr.occurrence-row').length === 50, null, { timeout: TIMEOUT });
    // Every load the reload started has ended: a later one would put the first page back over the second.
    await page.waitForLoadState('networkidle');
    await page.click('#more-occurrences');
    const total = BOOMS + 2 + more;
    await page.waitForFunction((n) => document.querySelectorAll('#occurrence-rows tr.occurrence-row').length === n, total, { timeout: TIMEOUT });
    const times = await page.$$eval('#occurrence-rows tr.occurrence-row td.time', (cells) => cells.map((c) => Date.parse(c.title)));
    if (times.some((t, i) => i > 0 && t > times[i - 1])) fail('the occurrences are not newest first across pages');
    if (!(await page.isHidden('#more-occurrences'))) fail('"Load older occurrences" is offered after the last page');

    if (problems.length) fail(problems.join('\n'));
    console.log(`errors browser test passed; screenshots in ${directory}`);
  } catch (error) {
    await noteFailure(browser && browser.context, error, 'errors');
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
