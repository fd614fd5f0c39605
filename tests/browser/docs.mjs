// Real-browser check of the Swagger UI served at /docs.
//
//   BASE_URL=http://127.0.0.1:3333 EMAIL=admin@example.com PASSWORD='...' \
//   SCREENSHOT=target/browser/docs.png node tests/browser/docs.mjs
//
// Opens /docs in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core), authorizes through the OAuth2 password flow, runs
// "GET /v1/users/me" with "Try it out" / "Execute", and requires a 200 whose
// body contains EMAIL. The page must not request any other host: the docs have
// to work without internet access. Prints one JSON line and exits 0 on
// success; on failure says which step failed, saves <SCREENSHOT>-failure.png
// and exits 1.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const STEP_TIMEOUT_MS = 15_000; // every single wait is bounded by this (<= 30 s)
const OVERALL_TIMEOUT_MS = 90_000; // hard stop for the whole run

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`docs.mjs: environment variable ${name} is required`);
    process.exit(1);
  }
  return value;
}

const BASE_URL = requireEnv('BASE_URL').replace(/\/+$/, '');
const EMAIL = requireEnv('EMAIL');
const PASSWORD = requireEnv('PASSWORD');
const SCREENSHOT = resolve(requireEnv('SCREENSHOT'));
const FAILURE_SCREENSHOT = SCREENSHOT.replace(/(\.png)?$/i, '-failure.png');
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';

let baseHost;
try {
  baseHost = new URL(BASE_URL).host;
} catch {
  console.error(`docs.mjs: BASE_URL is not a URL: ${BASE_URL}`);
  process.exit(1);
}

let step = 'start';
let browser;
let page;
const foreignRequests = [];
const pageErrors = [];
let tokenRequest; // { fields, headers, status }

function fail(message) {
  throw new Error(message);
}

async function run() {
  step = 'launch chromium';
  browser = await chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: STEP_TIMEOUT_MS,
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);

  // Every request the page (or a popup of it) makes must stay on BASE_URL's
  // host. Others are recorded and aborted, so an offline machine behaves the
  // same as this one and the run fails fast instead of waiting on a timeout.
  const isForeign = (url) => {
    let u;
    try {
      u = new URL(url);
    } catch {
      return false;
    }
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) return false; // data:, blob:, ...
    return u.host !== baseHost;
  };
  context.on('request', (request) => {
    if (isForeign(request.url())) foreignRequests.push(`${request.method()} ${request.url()}`);
  });
  await context.route(
    (url) => isForeign(url.href),
    (route) => route.abort('blockedbyclient'),
  );

  page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));

  // The OAuth2 token request Swagger UI sends: field names only, never values.
  page.on('request', (request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/v1/auth/token') {
      const fields = [...new URLSearchParams(request.postData() ?? '').keys()];
      tokenRequest = { fields, headers: Object.keys(request.headers()).sort(), status: null };
    }
  });

  step = `open ${BASE_URL}/docs`;
  const response = await page.goto(`${BASE_URL}/docs`, { waitUntil: 'domcontentloaded' });
  if (!response || response.status() !== 200) {
    fail(`GET /docs answered ${response ? response.status() : 'nothing'}`);
  }

  step = 'wait for Swagger UI to render the operations';
  const authorizeButton = page.locator('.scheme-container button.btn.authorize');
  await authorizeButton.waitFor({ state: 'visible' });
  const operation = page
    .locator('.opblock.opblock-get')
    .filter({ has: page.locator('.opblock-summary-path[data-path="/v1/users/me"]') });
  await operation.waitFor({ state: 'visible' });

  step = 'open the Authorize dialog';
  await authorizeButton.click();
  const modal = page.locator('.dialog-ux .modal-ux');
  await modal.waitFor({ state: 'visible' });

  step = 'fill the OAuth2 password flow form';
  await modal.locator('#oauth_username').fill(EMAIL);
  await modal.locator('#oauth_password').fill(PASSWORD);

  step = 'authorize (POST /v1/auth/token)';
  const tokenResponse = page.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/v1/auth/token',
  );
  await modal.locator('.auth-btn-wrapper button.authorize', { hasText: 'Authorize' }).click();
  const token = await tokenResponse;
  const tokenStatus = token.status();
  if (tokenRequest) tokenRequest.status = tokenStatus;
  if (tokenStatus !== 200) {
    // The OAuth2 error code only (RFC 6749 §5.2), never the token or the password.
    const code = await token.json().then((b) => b && b.error, () => undefined);
    fail(`POST /v1/auth/token answered ${tokenStatus}${code ? ` (error "${code}")` : ''}`);
  }

  step = 'confirm the dialog shows the scheme as authorized';
  await modal.locator('.auth-btn-wrapper button', { hasText: 'Logout' }).waitFor({ state: 'visible' });
  await modal.locator('h6', { hasText: 'Authorized' }).waitFor({ state: 'visible' });
  const errors = (await modal.locator('.errors').allInnerTexts()).join(' ').trim();
  if (errors) fail(`the Authorize dialog shows an error: ${errors}`);

  step = 'close the Authorize dialog';
  await modal.locator('.auth-btn-wrapper button.btn-done', { hasText: 'Close' }).click();
  await modal.waitFor({ state: 'detached' });
  // The padlock on the Authorize button closes once a scheme is authorized.
  await page.locator('.scheme-container button.btn.authorize.locked').waitFor({ state: 'visible' });

  step = 'expand GET /v1/users/me';
  await operation.locator('button.opblock-summary-control').click();
  await operation.locator('.opblock-body').waitFor({ state: 'visible' });

  step = 'click "Try it out"';
  // The UI is configured with tryItOutEnabled, so the toggle may already read
  // "Cancel"; click it only when it still offers "Try it out".
  const tryOut = operation.locator('button.try-out__btn');
  await tryOut.waitFor({ state: 'visible' });
  if ((await tryOut.innerText()).trim() === 'Try it out') await tryOut.click();
  const execute = operation.locator('button.execute', { hasText: 'Execute' });
  await execute.waitFor({ state: 'visible' });

  step = 'click "Execute" (GET /v1/users/me)';
  const meResponse = page.waitForResponse(
    (r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/v1/users/me',
  );
  await execute.click();
  const meRequest = (await meResponse).request();
  if (!/^Bearer \S+/.test(meRequest.headers()['authorization'] ?? '')) {
    fail('the page sent GET /v1/users/me without a Bearer token');
  }

  step = 'read the live response from the page';
  const live = operation.locator('table.live-responses-table tr.response');
  await live.waitFor({ state: 'visible' });
  const statusText = (await live.locator('td.response-col_status').innerText()).trim();
  const status = Number.parseInt(statusText, 10);
  const bodyLocator = live.locator('td.response-col_description .highlight-code pre').first();
  await bodyLocator.waitFor({ state: 'visible' });
  const body = await bodyLocator.innerText();
  if (status !== 200) fail(`the page shows status ${JSON.stringify(statusText)}, expected 200; body: ${body.slice(0, 500)}`);
  if (!body.includes(EMAIL)) fail(`the response body shown does not contain ${EMAIL}: ${body.slice(0, 500)}`);

  step = 'check that no other host was contacted';
  if (foreignRequests.length) {
    fail(`the page requested other hosts than ${baseHost}: ${foreignRequests.join(', ')}`);
  }

  step = 'save the screenshot';
  await live.scrollIntoViewIfNeeded();
  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: STEP_TIMEOUT_MS });

  return { ok: true, status, email: EMAIL, tokenRequest, pageErrors, screenshot: SCREENSHOT };
}

async function saveFailureScreenshot() {
  if (!page) return null;
  try {
    mkdirSync(dirname(FAILURE_SCREENSHOT), { recursive: true });
    await page.screenshot({ path: FAILURE_SCREENSHOT, fullPage: true, timeout: 10_000 });
    return FAILURE_SCREENSHOT;
  } catch {
    return null;
  }
}

const started = Date.now();
let overallTimer;
const overall = new Promise((_, reject) => {
  overallTimer = setTimeout(
    () => reject(new Error(`gave up after ${OVERALL_TIMEOUT_MS / 1000} s`)),
    OVERALL_TIMEOUT_MS,
  );
});

let exitCode = 0;
try {
  const result = await Promise.race([run(), overall]);
  result.ms = Date.now() - started;
  console.log(JSON.stringify(result));
} catch (error) {
  exitCode = 1;
  const shot = await saveFailureScreenshot();
  // Playwright errors carry a call log; keep the first line and what it waited for.
  const text = error && error.message ? error.message : String(error);
  const lines = text.replace(/\u001b\[[0-9;]*m/g, '').split('\n');
  const waitedFor = lines.find((line) => /^\s*- waiting for /.test(line));
  const message = [lines[0], waitedFor && waitedFor.trim()].filter(Boolean).join(' ');
  console.error(`docs.mjs: FAILED at step "${step}": ${message}`);
  if (foreignRequests.length) console.error(`docs.mjs: requests to other hosts: ${foreignRequests.join(', ')}`);
  if (pageErrors.length) console.error(`docs.mjs: page errors: ${pageErrors.join(' | ')}`);
  console.error(shot ? `docs.mjs: failure screenshot: ${shot}` : 'docs.mjs: no failure screenshot could be saved');
  console.log(JSON.stringify({ ok: false, step, error: message }));
} finally {
  clearTimeout(overallTimer);
  if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 10_000))]);
}
process.exit(exitCode);
