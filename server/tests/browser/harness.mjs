// What a browser test of the explorer needs around the page: the server and its database
// (../js-support/server.mjs, shared with the OpenTelemetry SDK test) and headless Chromium
// (Debian's /usr/bin/chromium, driven by playwright-core).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export { repo, prepareDatabase, startServer, postLogs, adminGet } from '../js-support/server.mjs';

/** Headless Chromium with a throwaway profile in `userDataDir`. */
function launchBrowser(userDataDir) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1440, height: 900 },
    colorScheme: 'light',
  });
}

/** Adds to `error`'s message where a screenshot of the page at failure went. */
export async function noteFailure(context, error, name) {
  const page = context && context.pages()[0];
  if (!page) return;
  const where = path.join(tmpdir(), `${name}-failure.png`);
  await page.screenshot({ path: where }).catch(() => {});
  error.message += `\n(page at failure: ${where}; URL ${page.url()})`;
}

/**
 * A page in headless Chromium with a throwaway profile, watched for what no explorer page
 * may do: console errors (except those whose text holds one of `deliberate`, e.g. a
 * `status of 401` the test provokes), uncaught page errors, and requests leaving `base`.
 * Answers `{ context, page, problems, close }`; `close()` also removes the profile.
 */
export async function openPage(name, base, { deliberate = [] } = {}) {
  const userDataDir = mkdtempSync(path.join(tmpdir(), `${name}-chromium-`));
  const remove = () => rmSync(userDataDir, { recursive: true, force: true });
  let context;
  try {
    context = await launchBrowser(userDataDir);
  } catch (error) {
    remove();
    throw error;
  }
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on('console', (message) => {
    const expected = deliberate.some((text) => message.text().includes(text));
    if (message.type() === 'error' && !expected) problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('request', (request) => {
    if (!request.url().startsWith(base)) problems.push(`request outside the server: ${request.url()}`);
  });
  const close = async () => {
    await context.close();
    remove();
  };
  return { context, page, problems, close };
}
