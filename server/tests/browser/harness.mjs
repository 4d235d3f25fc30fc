// What a browser test of the explorer needs around the page: the server and its database
// (../js-support/server.mjs, shared with the OpenTelemetry SDK test) and headless Chromium
// (Debian's /usr/bin/chromium, driven by playwright-core).

import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export { repo, prepareDatabase, startServer, postLogs, adminGet } from '../js-support/server.mjs';

/** Headless Chromium with a throwaway profile in `userDataDir`. */
export function launchBrowser(userDataDir) {
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
