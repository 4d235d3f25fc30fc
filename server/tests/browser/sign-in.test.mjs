// Signing in through the explorer's page in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core): the logs page without a key offers the sign-in page, a wrong
// password is refused on the page, the right one lands back on the logs as that person
// (named in the header, no key stored, the session cookie out of the page's reach), the
// page's changes carry the CSRF token, and "Sign out" ends the session. Saves a screenshot
// of the sign-in page for docs/server.md.
//
//   cargo build -p log_ingestion_server
//   (cd server/tests/browser && npm ci && node sign-in.test.mjs)
//
// Environment: EXPLORER_SERVER_BIN, DATABASE_URL, CHROMIUM as for explorer.test.mjs;
// SCREENSHOT_DIR (default docs/images). Exits non-zero on the first failed expectation.

import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { repo, prepareDatabase, startServer, postLogs, openPage, noteFailure } from './harness.mjs';

const INGEST_KEY = `ingest-${randomUUID()}`;
const ADMIN_KEY = `admin-${randomUUID()}`;
const EMAIL = 'dana@example.com';
const PASSWORD = `pw-${randomUUID()}`;
const TIMEOUT = 15_000;

function fail(message) {
  throw new Error(`sign-in browser test: ${message}`);
}

async function addEditor(base) {
  const response = await fetch(`${base}/api/v1/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': ADMIN_KEY },
    body: JSON.stringify({ email: EMAIL, role: 'editor', password: PASSWORD }),
  });
  if (response.status !== 201) fail(`adding the user answered ${response.status} ${await response.text()}`);
}

async function main() {
  const database = prepareDatabase('sign_in_browser');
  const server = startServer(database.url, {
    ingestKey: INGEST_KEY,
    adminKey: ADMIN_KEY,
    binary: process.env.EXPLORER_SERVER_BIN,
    echoLog: Boolean(process.env.EXPLORER_SERVER_LOG),
  });
  let browser;
  try {
    const base = await server.address;
    await addEditor(base);
    await postLogs(base, INGEST_KEY, [{
      timestamp: new Date(Date.now() - 5_000).toISOString(),
      service: 'checkout',
      level: 'INFO',
      message: 'Order placed by a signed-in reader',
      metadata: {},
    }]);

    // Asking who is signed in before anyone is, and the wrong password, answer 401;
    // the change sent without its token below answers 403, and with it 404.
    browser = await openPage('sign-in', base, { deliberate: ['status of 401', 'status of 403', 'status of 404'] });
    const { page, problems } = browser;

    // 1. Without a key or a session the logs page offers the sign-in page.
    await page.goto(`${base}/?range=1h`);
    await page.waitForSelector('#key-dialog[open]', { timeout: TIMEOUT });
    await page.click('#sign-in-link');
    await page.waitForURL((url) => url.pathname === '/sign-in', { timeout: TIMEOUT });
    if (new URL(page.url()).searchParams.get('next') !== '/?range=1h') fail(`no way back: ${page.url()}`);

    // 2. A wrong password is refused on the page.
    await page.fill('#email', EMAIL);
    await page.fill('#password', 'not the password');
    await page.click('#sign-in-submit');
    await page.waitForSelector('#sign-in-error:not([hidden])', { timeout: TIMEOUT });
    if (!(await page.textContent('#sign-in-error')).includes('Wrong email or password')) fail('no wrong-password message');
    const directory = process.env.SCREENSHOT_DIR || path.join(repo, 'docs/images');
    await page.fill('#password', 'correct horse battery');
    await page.screenshot({ path: path.join(directory, 'sign-in.png') });

    // 3. The right one lands back on the logs as that person.
    await page.fill('#password', PASSWORD);
    await page.click('#sign-in-submit');
    await page.waitForURL((url) => url.pathname === '/' && url.searchParams.get('range') === '1h', { timeout: TIMEOUT });
    await page.locator('#rows tr.log-row', { hasText: 'signed-in reader' }).waitFor({ timeout: TIMEOUT });
    const who = await page.textContent('#who');
    if (!who.includes(EMAIL) || !who.includes('editor')) fail(`the header says ${JSON.stringify(who)}`);
    if (await page.locator('#sign-out').isHidden()) fail('no sign-out button');
    if (!(await page.locator('#forget-key').isHidden())) fail('"Forget key" shown without a key');
    const state = await page.evaluate(() => ({ cookie: document.cookie, session: Object.values(sessionStorage) }));
    if (state.cookie.includes('log_ingestion_session')) fail('the session cookie is readable by the page');
    if (state.session.length) fail(`something was stored in sessionStorage: ${state.session}`);

    // 4. The page's changes carry the CSRF token (a missing group: 404, not 403).
    const statuses = await page.evaluate(async () => {
      const send = (headers) => fetch('/api/v1/errors/999999/status', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...headers },
        body: JSON.stringify({ status: 'resolved' }),
      }).then((r) => r.status);
      return [await send(window.Explorer.authHeaders('POST')), await send({})];
    });
    if (statuses[0] !== 404 || statuses[1] !== 403) fail(`with and without the token: ${statuses}`);

    // 5. Sign out ends the session.
    await page.click('#sign-out');
    await page.waitForURL((url) => url.pathname === '/sign-in', { timeout: TIMEOUT });
    const after = await page.evaluate(() => fetch('/api/v1/session').then((r) => r.status));
    if (after !== 401) fail(`after signing out /api/v1/session answered ${after}`);

    if (problems.length) fail(problems.join('\n'));
    console.log('sign-in browser test: ok');
  } catch (error) {
    await noteFailure(browser && browser.context, error, 'sign-in');
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
