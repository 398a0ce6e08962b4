// End-to-end test of the web client in real headless Chromium (Debian's `chromium`),
// driven by playwright-core. Started by tests/tests/web_client.rs, which runs the API,
// two gateways and a worker on private PostgreSQL and Redis, and passes:
//
//   CHAT_E2E_BASE_URL      the API serving /chat/
//   CHAT_E2E_GATEWAY_PIDS  {"<gateway id>": <pid>}, so a gateway can be killed mid-test
//   CHAT_E2E_ARTIFACTS     where to write a screenshot of each page when a step fails
//   CHAT_E2E_SCREENSHOTS   (optional) where to write the documentation screenshots
//   CHROMIUM               (optional) the browser binary, /usr/bin/chromium by default
//
// Exits non-zero on the first failed check. No page may log a console error, except the
// browser's own report of the connection refused by the gateway this test kills.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.CHAT_E2E_BASE_URL;
assert.ok(BASE, 'CHAT_E2E_BASE_URL is required');
const GATEWAY_PIDS = JSON.parse(process.env.CHAT_E2E_GATEWAY_PIDS || '{}');
const ARTIFACTS = process.env.CHAT_E2E_ARTIFACTS || 'e2e/artifacts';
const SCREENSHOTS = process.env.CHAT_E2E_SCREENSHOTS;
const TIMEOUT = 30_000;
const PASSWORD = 'correct horse battery';
const run = Math.random().toString(36).slice(2, 8);

const consoleErrors = [];
let gatewayKilled = false;
const pages = [];

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** Checks the page against WCAG 2 A and AA with axe-core; fails on any violation. */
async function audit(page, what) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(violations, [], `accessibility of ${what}`);
}

function log(step) {
  console.log(`- ${step}`);
}

async function newPage(browser, name, viewport = { width: 1280, height: 800 }, { expected = null } = {}) {
  const context = await browser.newContext({ viewport, baseURL: BASE, isMobile: viewport.width < 500, hasTouch: viewport.width < 500 });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    // Chromium logs every 4xx answer; a page that is meant to get one allows it.
    if (expected?.test(text)) return;
    // Chromium itself reports each refused WebSocket attempt to the dead gateway.
    if (gatewayKilled && /WebSocket connection to .* failed/.test(text)) return;
    consoleErrors.push(`${name}: ${text}`);
  });
  page.on('pageerror', (err) => consoleErrors.push(`${name}: uncaught ${err.message}`));
  page.on('dialog', (dialog) => dialog.accept());
  pages.push({ name, page });
  return page;
}

async function signUp(page, username, displayName) {
  await page.goto('/chat/');
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Display name').fill(displayName);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.getByTestId('me').filter({ hasText: displayName }).waitFor();
  await connected(page);
}

async function connected(page) {
  await page.locator('.connection.online').waitFor();
}

/** The message whose text is exactly `text`. */
function messageWithText(page, text) {
  const exact = new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  return page.locator('.message-list > li').filter({ has: page.locator('.text', { hasText: exact }) });
}

async function shoot(page, name) {
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

/** A REST client with a bearer token, to fill a conversation quickly. */
async function apiLogin(username) {
  const res = await fetch(`${BASE}/api/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  assert.equal(res.status, 200);
  const { access_token } = await res.json();
  return async (method, path, body) => {
    const r = await fetch(`${BASE}${path}`, {
      method,
      headers: { Authorization: `Bearer ${access_token}`, 'Content-Type': 'application/json' },
      body: body && JSON.stringify(body),
    });
    const text = await r.text();
    assert.ok(r.ok, `${method} ${path}: ${r.status} ${text}`);
    return JSON.parse(text);
  };
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
    ],
  });
  try {
    await scenario(browser);
  } catch (err) {
    mkdirSync(ARTIFACTS, { recursive: true });
    for (const { name, page } of pages) {
      await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true }).catch(() => {});
    }
    throw err;
  } finally {
    await browser.close();
  }
  assert.deepEqual(consoleErrors, [], 'no console errors');
  console.log('all browser checks passed');
}

async function scenario(browser) {
  const alice = { username: `alice-${run}`, name: 'Alice Martins' };
  const bob = { username: `bob-${run}`, name: 'Bruno Costa' };
  const carol = { username: `carol-${run}`, name: 'Carla Dias' };

  // --- Sign-up and the login page -------------------------------------------------
  // A wrong password is an error on the form, not a session. (Chromium logs the 401
  // answer as a console error, which is expected on this page only.)
  const stranger = await newPage(browser, 'stranger', undefined, { expected: /status of 401/ });
  await stranger.goto('/chat/');
  await stranger.getByRole('heading', { name: 'Log in to Chat' }).waitFor();
  await shoot(stranger, 'login-desktop');
  await audit(stranger, 'the login page');
  await stranger.getByLabel('Username').fill('nobody-here');
  await stranger.getByLabel('Password').fill('wrong password');
  await stranger.getByRole('button', { name: 'Log in' }).click();
  await stranger.getByRole('alert').filter({ hasText: /invalid|incorrect|wrong/i }).waitFor();
  assert.equal(await stranger.getByTestId('me').count(), 0);
  log('a wrong password is refused on the form');

  const a = await newPage(browser, 'alice');
  const b = await newPage(browser, 'bob');
  await signUp(a, alice.username, alice.name);
  await signUp(b, bob.username, bob.name);
  log('two people signed up and are connected');

  // --- Alice finds Bob and starts a direct conversation -----------------------------
  await a.getByRole('button', { name: 'New conversation' }).click();
  await a.getByLabel('Find people').fill(bob.username);
  await a.getByRole('button', { name: `Message ${bob.name}` }).click();
  await a.waitForURL(/\/chat\/c\/[0-9a-f-]{36}$/);
  const conversationPath = new URL(a.url()).pathname;
  await a.getByRole('heading', { name: bob.name }).waitFor();

  // Bob's list shows the new conversation live; he opens it.
  await b.locator('.conversation', { hasText: alice.name }).click();
  await b.waitForURL(`**${conversationPath}`);
  log('a direct conversation appeared live in the other list');

  // --- Presence, typing, live messages, receipts ------------------------------------
  await a.getByTestId('presence').filter({ hasText: 'online' }).waitFor();
  await b.getByTestId('presence').filter({ hasText: 'online' }).waitFor();
  log('each sees the other online');

  await a.getByRole('textbox', { name: 'Message' }).fill('Hello Bruno');
  await a.getByRole('textbox', { name: 'Message' }).press('Space');
  await b.getByTestId('typing').filter({ hasText: `${alice.name} is typing` }).waitFor();
  log('typing is shown to the other');
  await a.getByRole('textbox', { name: 'Message' }).press('Enter');
  await messageWithText(b, 'Hello Bruno').waitFor();
  await b.getByTestId('typing').filter({ hasText: /^$/ }).waitFor();
  // Bob has it open: Alice's message goes to read.
  await messageWithText(a, 'Hello Bruno').and(a.locator('[data-status="read"]')).waitFor();
  log('a live message reached the other, and its sender saw it read');

  await b.getByRole('textbox', { name: 'Message' }).fill('Hi Alice! How are you?');
  await b.getByRole('button', { name: 'Send' }).click();
  await messageWithText(a, 'Hi Alice! How are you?').waitFor();
  await messageWithText(b, 'Hi Alice! How are you?').and(b.locator('[data-status="read"]')).waitFor();

  // --- Reply, reaction, edit, delete --------------------------------------------------
  const hers = messageWithText(b, 'Hello Bruno');
  await hers.hover();
  await hers.getByRole('button', { name: 'React', exact: true }).click();
  await hers.getByRole('button', { name: 'React 👍' }).click();
  await messageWithText(a, 'Hello Bruno').getByRole('button', { name: '👍 1' }).waitFor();
  log('a reaction showed on both sides');

  const his = messageWithText(a, 'Hi Alice! How are you?');
  await his.hover();
  await his.getByRole('button', { name: 'Reply' }).click();
  await a.getByRole('textbox', { name: 'Message' }).fill('Fine, and you?');
  await a.getByRole('textbox', { name: 'Message' }).press('Enter');
  const reply = messageWithText(b, 'Fine, and you?');
  await reply.locator('.reply-quote', { hasText: 'Hi Alice! How are you?' }).waitFor();
  log('a reply quotes its message');

  await a.getByRole('textbox', { name: 'Message' }).fill('Lunch at 12?');
  await a.getByRole('textbox', { name: 'Message' }).press('Enter');
  const lunch = messageWithText(a, 'Lunch at 12?');
  await lunch.waitFor();
  await lunch.hover();
  await lunch.getByRole('button', { name: 'Edit' }).click();
  await a.getByRole('textbox', { name: 'Message' }).fill('Lunch at 12:30?');
  await a.getByRole('button', { name: 'Save' }).click();
  await messageWithText(b, 'Lunch at 12:30?').locator('.edited').waitFor();
  log('an edit reached the other');

  await a.getByRole('textbox', { name: 'Message' }).fill('typo message');
  await a.getByRole('textbox', { name: 'Message' }).press('Enter');
  await messageWithText(b, 'typo message').waitFor();
  const typo = messageWithText(a, 'typo message');
  await typo.hover();
  await typo.getByRole('button', { name: 'Delete' }).click();
  await b.locator('.message-list .text.deleted', { hasText: 'This message was deleted' }).waitFor();
  assert.equal(await b.locator('.text', { hasText: 'typo message' }).count(), 0);
  log('a delete reached the other');

  // --- An image: upload progress, thumbnail on the other side -----------------------
  const image = await a.screenshot({ type: 'png' });
  await a.getByLabel('Attach a file').setInputFiles({ name: 'screen.png', mimeType: 'image/png', buffer: image });
  const thumb = b.locator('.message-list img.thumb[src*="/thumbnail"]');
  await thumb.waitFor();
  await b.waitForFunction((img) => img.complete && img.naturalWidth > 0, await thumb.elementHandle());
  const { width, height } = await thumb.evaluate((img) => ({ width: img.naturalWidth, height: img.naturalHeight }));
  assert.ok(width <= 256 && height <= 256 && width > 0, `thumbnail is at most 256×256 (${width}×${height})`);
  await a.locator('.message-list img.thumb[src*="/thumbnail"]').waitFor();
  // The image links to the original, which downloads byte for byte.
  const href = await b.locator('.message-list a.image').getAttribute('href');
  const download = await b.request.get(href);
  assert.equal(download.status(), 200);
  assert.ok((await download.body()).equals(image), 'the download is the uploaded file');
  assert.equal(await a.locator('.pending').count(), 0, 'nothing left pending');
  log(`an image was uploaded and its ${width}×${height} thumbnail shown to the other`);
  await shoot(a, 'conversation-desktop');

  // --- Unread counts and previews in the list ----------------------------------------
  await b.goto('/chat/');
  await connected(b);
  await a.getByRole('textbox', { name: 'Message' }).fill('Are you there?');
  await a.getByRole('textbox', { name: 'Message' }).press('Enter');
  const row = b.locator('.conversation', { hasText: alice.name });
  await row.locator('.preview', { hasText: 'Are you there?' }).waitFor();
  await row.getByTestId('unread').filter({ hasText: '1' }).waitFor();
  await messageWithText(a, 'Are you there?').and(a.locator('[data-status="delivered"]')).waitFor();
  log('the list shows the preview and the unread count; the sender sees delivered, not read');
  await row.click();
  await messageWithText(a, 'Are you there?').and(a.locator('[data-status="read"]')).waitFor();
  assert.equal(await row.getByTestId('unread').count(), 0);
  log('opening the conversation reads it');

  // --- History: reload keeps it; scrolling back loads older pages --------------------
  const rest = await apiLogin(alice.username);
  const conversationId = conversationPath.split('/').pop();
  for (let i = 1; i <= 45; i += 1) {
    await rest('POST', `/api/chat/conversations/${conversationId}/messages`, { text: `filler ${i}` });
  }
  await messageWithText(b, 'filler 45').waitFor();
  await b.reload();
  await connected(b);
  await messageWithText(b, 'filler 45').waitFor();
  assert.equal(await messageWithText(b, 'Hello Bruno').count(), 0, 'the first page holds only the newest messages');
  await b.locator('.messages').evaluate((el) => {
    el.scrollTop = 0;
  });
  await messageWithText(b, 'Hello Bruno').waitFor();
  await b.getByText('This is the beginning of the conversation.').waitFor();
  assert.equal(await messageWithText(b, 'filler 1').count(), 1);
  assert.equal(await b.locator('.message-list img.thumb').count(), 1);
  log('after a reload the history is there, and scrolling back loads the older page');

  // --- Failover: Bob's gateway dies; his page moves to the other one ----------------
  const status = b.getByRole('status').first();
  const before = await b.locator('.connection.online').getAttribute('data-gateway');
  assert.ok(GATEWAY_PIDS[before], `the page names its gateway (${before})`);
  gatewayKilled = true;
  process.kill(GATEWAY_PIDS[before], 'SIGKILL');
  // Sent by Bob right away, maybe before his page noticed: it waits and goes out once.
  await b.getByRole('textbox', { name: 'Message' }).fill('typed during the outage');
  await b.getByRole('textbox', { name: 'Message' }).press('Enter');
  await a.getByRole('textbox', { name: 'Message' }).fill('sent while your gateway was down');
  await a.getByRole('textbox', { name: 'Message' }).press('Enter');
  await messageWithText(b, 'sent while your gateway was down').waitFor({ timeout: 45_000 });
  await connected(b);
  const after = await b.locator('.connection.online').getAttribute('data-gateway');
  assert.notEqual(after, before, 'reconnected to the other gateway');
  await b.getByRole('textbox', { name: 'Message' }).fill('back online');
  await b.getByRole('textbox', { name: 'Message' }).press('Enter');
  await messageWithText(a, 'back online').waitFor();
  await messageWithText(a, 'typed during the outage').waitFor();
  for (const text of ['sent while your gateway was down', 'typed during the outage', 'Are you there?', 'filler 45', 'back online']) {
    assert.equal(await messageWithText(b, text).count(), 1, `"${text}" shown once to Bob`);
    assert.equal(await messageWithText(a, text).count(), 1, `"${text}" shown once to Alice`);
  }
  assert.equal(await b.locator('.pending').count(), 0, 'nothing left pending');
  log(`gateway ${before} was killed; the page resumed on ${after} and showed nothing twice (${await status.innerText()})`);

  // --- Draining: the next gateway is stopped (SIGTERM) and tells its clients to move ----
  process.kill(GATEWAY_PIDS[after], 'SIGTERM');
  await b.locator(`.connection.online:not([data-gateway="${after}"])`).waitFor({ timeout: 45_000 });
  const third = await b.locator('.connection.online').getAttribute('data-gateway');
  assert.ok(![before, after].includes(third), `moved to the last gateway (${third})`);
  await a.locator(`.connection.online:not([data-gateway="${after}"])`).waitFor({ timeout: 45_000 });
  await a.getByRole('textbox', { name: 'Message' }).fill('after the drain');
  await a.getByRole('textbox', { name: 'Message' }).press('Enter');
  await messageWithText(b, 'after the drain').waitFor();
  assert.equal(await messageWithText(b, 'after the drain').count(), 1);
  log(`gateway ${after} drained; both pages moved to ${third}`);

  // --- A third person cannot open the conversation ----------------------------------
  // The API answers 404 (Chromium logs it), the page says why.
  const c = await newPage(browser, 'carol', undefined, { expected: /status of 404/ });
  await signUp(c, carol.username, carol.name);
  await c.goto(conversationPath);
  await c.getByRole('alert').filter({ hasText: 'not one of its participants' }).waitFor();
  assert.equal(await c.locator('.message-list').count(), 0);
  assert.equal(await c.getByText('Hello Bruno').count(), 0);
  log('a third person gets "not found" at the conversation URL, and sees none of it');

  // --- A group -------------------------------------------------------------------------
  await a.getByRole('button', { name: 'New conversation' }).click();
  await a.getByLabel('Find people').fill(carol.username);
  await a.getByRole('checkbox', { name: `Add ${carol.name} to a group` }).check();
  await a.getByLabel('Find people').fill(bob.username);
  await a.getByRole('checkbox', { name: `Add ${bob.name} to a group` }).check();
  await a.getByLabel('Group name').fill('Weekend trip');
  await a.getByRole('button', { name: 'Create group' }).click();
  await a.getByRole('heading', { name: 'Weekend trip' }).waitFor();
  await a.getByText('3 participants').waitFor();
  await c.goto('/chat/');
  await c.locator('.conversation', { hasText: 'Weekend trip' }).click();
  await c.getByRole('textbox', { name: 'Message' }).fill('Count me in!');
  await c.getByRole('textbox', { name: 'Message' }).press('Enter');
  await b.locator('.conversation', { hasText: 'Weekend trip' }).locator('.preview', { hasText: `${carol.name}: Count me in!` }).waitFor();
  await messageWithText(a, 'Count me in!').locator('.sender', { hasText: carol.name }).waitFor();
  await a.getByRole('textbox', { name: 'Message' }).fill('Great, Saturday at 9 then');
  await a.getByRole('textbox', { name: 'Message' }).press('Enter');
  await messageWithText(c, 'Great, Saturday at 9 then').waitFor();
  await messageWithText(a, 'Count me in!').hover();
  await shoot(a, 'group-desktop');
  await audit(a, 'a conversation on a desktop screen');
  log('a group was created; its members see it live, with senders named');

  // --- Logging out ends the session ----------------------------------------------------
  await c.getByRole('button', { name: 'Log out' }).click();
  await c.getByRole('heading', { name: 'Log in to Chat' }).waitFor();
  await c.reload();
  await c.getByRole('heading', { name: 'Log in to Chat' }).waitFor();
  log('logging out returns to the login form and stays there after a reload');

  // --- A phone-sized screen ------------------------------------------------------------
  const phone = await newPage(browser, 'bob-phone', { width: 390, height: 844 });
  await phone.goto('/chat/');
  await phone.getByLabel('Username').fill(bob.username);
  await phone.getByLabel('Password').fill(PASSWORD);
  await phone.getByRole('button', { name: 'Log in' }).click();
  await connected(phone);
  await shoot(phone, 'conversations-phone');
  await phone.locator('.conversation', { has: phone.locator('.title', { hasText: alice.name }) }).click();
  await messageWithText(phone, 'back online').waitFor();
  assert.equal(await phone.locator('.sidebar').isVisible(), false, 'one column at a time on a phone');
  await phone.getByRole('button', { name: 'Back to conversations' }).waitFor();
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling on a phone (${overflow}px)`);
  await phone.getByRole('button', { name: 'Back to conversations' }).click();
  await phone.locator('.conversation', { has: phone.locator('.title', { hasText: alice.name }) }).waitFor();
  await phone.locator('.conversation', { hasText: 'Weekend trip' }).click();
  await messageWithText(phone, 'Great, Saturday at 9 then').waitFor();
  await shoot(phone, 'conversation-phone');
  await audit(phone, 'a conversation on a phone');
  log('on a phone-sized screen the list and the conversation each fill the screen');
  log('axe-core finds no WCAG 2.1 A/AA violation on the login page and on conversations (desktop, phone)');
}

main().catch((err) => {
  console.error(err);
  if (consoleErrors.length) console.error('console errors:', consoleErrors);
  process.exit(1);
});
