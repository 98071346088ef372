// The dashboard of a running cluster — one `firetower topicmanager` and two
// `firetower gateway` processes on loopback — in chromium: login with the
// API key, both gateways' cards following the websocket clients of each
// node, topic search and detail, and unauthenticated access refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  artifactsDir, buildServer, freePort, Server, launchBrowser, newPage, waitFor, screenshot, WAIT, TEST_TIMEOUT,
} from './helpers.mjs';

const KEY = 'browser-dashboard-key-0123456789';

let browser;
let manager;
let gwA;
let gwB;

// startProcess runs the binary with args and waits until /healthz answers
// on httpPort (Server of helpers.mjs, with arguments of our own).
async function startProcess(bin, httpPort, args) {
  const srv = new Server(bin, httpPort);
  srv.args = args;
  return srv.start();
}

before(async () => {
  const bin = await buildServer();
  browser = await launchBrowser();
  const tmPort = await freePort();
  const tmHTTP = await freePort();
  manager = await startProcess(bin, tmHTTP, [
    'topicmanager', '--addr', `127.0.0.1:${tmPort}`, '--http-addr', `127.0.0.1:${tmHTTP}`, '--node-id', 'tm-1',
  ]);
  const gateway = async (id, clusterID) => {
    const port = await freePort();
    return startProcess(bin, port, [
      'gateway', '--addr', `127.0.0.1:${port}`, '--drain-window', '100ms',
      '--broker', `tm://tm-1@127.0.0.1:${tmPort}`, '--node-id', id, '--cluster-id', String(clusterID),
      '--node-info-interval', '1s', '--api-key', KEY,
    ]);
  };
  gwA = await gateway('gw-a', 1);
  gwB = await gateway('gw-b', 2);
}, { timeout: 300_000 });

// withLogs runs fn, saving the processes' logs to test-artifacts/ if it
// fails.
async function withLogs(name, fn) {
  try {
    await fn();
  } catch (err) {
    for (const [p, who] of [[gwA, 'gw-a'], [gwB, 'gw-b'], [manager, 'tm-1']]) if (p) p.saveLog(`${name}-${who}`);
    throw err;
  }
}

after(async () => {
  if (browser) await browser.close();
  for (const p of [gwA, gwB, manager]) if (p) await p.stop();
});

// fullScreenshot saves the whole page (not only the viewport) as
// test-artifacts/NAME.png.
async function fullScreenshot(page, name) {
  fs.mkdirSync(artifactsDir, { recursive: true });
  await page.screenshot({ path: path.join(artifactsDir, `${name}.png`), fullPage: true });
}

// pageErrors are page.errors but for the 401 of the login page, which
// chromium logs as a failed resource.
const pageErrors = (page) => page.errors.filter((e) => !/status of 401/.test(e));

// card returns the text of a field of a node's card on a dashboard page.
async function field(page, node, name) {
  return page.textContent(`#nodes article[data-node="${node}"] dd[data-field="${name}"]`, { timeout: 1000 });
}

async function waitField(page, node, name, want) {
  try {
    await waitFor(async () => (await field(page, node, name)) === String(want), {
      timeout: WAIT,
      what: `${node}'s ${name} = ${want} on the dashboard`,
    });
  } catch (err) {
    await screenshot(page, 'dashboard-failed');
    const live = await page.textContent('#live').catch(() => '?');
    throw new Error(`${err.message} (it shows ${await field(page, node, name).catch(() => '?')}; the stream is ${live}; page errors: ${pageErrors(page).join('; ')})`);
  }
}

// login opens the dashboard of srv in a fresh context and logs in.
async function login(srv) {
  const page = await newPage(browser, { viewport: { width: 1400, height: 1300 } });
  const res = await page.goto(`${srv.base}/dashboard`);
  assert.equal(res.status(), 401);
  await page.fill('#key', KEY);
  await Promise.all([page.waitForURL(`${srv.base}/dashboard`), page.click('#login button[type=submit]')]);
  await page.locator('#live[data-state="live"]').waitFor();
  return page;
}

// chatPage opens srv's chat page: one websocket client subscribed to its
// room, and a page of srv's own origin for more clients.
async function chatPage(srv) {
  const page = await newPage(browser);
  await page.goto(`${srv.base}/`);
  await page.locator('#status[data-state="connected"]').waitFor();
  return page;
}

// addClients opens n more websockets from page, each subscribed to topics.
async function addClients(page, n, topics) {
  await page.evaluate(async ({ n, topics }) => {
    window.socks = window.socks || [];
    await Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${location.host}/ws`);
      ws.onopen = () => { ws.send(JSON.stringify({ type: 'subscribe', topic: topics, data: '' })); resolve(); };
      ws.onerror = reject;
      window.socks.push(ws);
    })));
  }, { n, topics });
}

test('unauthenticated access is refused', { timeout: TEST_TIMEOUT }, async () => {
  for (const path of ['/dashboard', '/dashboard/events', '/dashboard/api/snapshot', '/dashboard/api/connections?client=1']) {
    const res = await fetch(`${gwA.base}${path}`);
    assert.equal(res.status, 401, path);
  }
  const wrongHeader = await fetch(`${gwA.base}/dashboard/api/snapshot`, { headers: { Authorization: 'Bearer nope' } });
  assert.equal(wrongHeader.status, 401);
  const withKey = await fetch(`${gwA.base}/dashboard/api/snapshot`, { headers: { Authorization: `Bearer ${KEY}` } });
  assert.equal(withKey.status, 200);

  const page = await newPage(browser);
  const res = await page.goto(`${gwA.base}/dashboard`);
  assert.equal(res.status(), 401);
  await page.locator('#login').waitFor();
  assert.equal(await page.isVisible('#error'), false);
  await page.fill('#key', 'not-the-key');
  await Promise.all([page.waitForLoadState(), page.click('#login button[type=submit]')]);
  await page.locator('#error').waitFor({ state: 'visible' });
  assert.equal(await page.isVisible('#nodes'), false);
  const cookies = await page.context().cookies();
  assert.equal(cookies.length, 0, 'a wrong key sets no cookie');
  assert.deepEqual(pageErrors(page), []);
  await page.context().close();
});

test('the dashboard shows both gateways and follows their clients', { timeout: TEST_TIMEOUT }, () => withLogs('dashboard', async () => {
  const chatA = await chatPage(gwA);
  const chatB = await chatPage(gwB);
  const dashA = await login(gwA);
  // The session cookie is HttpOnly, SameSite=Strict and holds no key.
  const [cookie] = await dashA.context().cookies();
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.ok(!cookie.value.includes(KEY));

  // Each chat page is one connection and one topic (its room).
  for (const node of ['gw-a', 'gw-b']) {
    await waitField(dashA, node, 'connections', 1);
    await waitField(dashA, node, 'topics', 1);
  }
  assert.equal(await dashA.textContent('#self'), 'gw-a');
  await dashA.locator('#managers tr[data-manager="tm-1"]').waitFor();
  assert.match(await dashA.textContent('#managers tr[data-manager="tm-1"]'), /connected/);

  // B's dashboard, in a context of its own, from its own login.
  const dashB = await login(gwB);

  await addClients(chatA, 3, 'dash-test,dash-a');
  await addClients(chatB, 2, 'dash-test');
  for (const page of [dashA, dashB]) {
    await waitField(page, 'gw-a', 'connections', 4);
    await waitField(page, 'gw-a', 'topics', 3);
    await waitField(page, 'gw-b', 'connections', 3);
    await waitField(page, 'gw-b', 'topics', 2);
  }
  // The cluster's top topics merge both nodes: 3 + 2 subscribers.
  await waitFor(async () => (await dashA.textContent('#topic-table tr[data-topic="dash-test"] [data-field="subscribers"]', { timeout: 1000 }).catch(() => '')) === '5',
    { what: 'dash-test with 5 subscribers in the topic table' });

  // Some traffic for the charts: each client of A publishes on dash-test.
  await chatA.evaluate(async () => {
    for (let i = 0; i < 40; i++) {
      for (const ws of window.socks) ws.send(JSON.stringify({ type: 'publish', topic: 'dash-test', data: { n: i } }));
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  // Search and detail.
  await dashA.fill('#topic-search', 'dash-');
  await waitFor(async () => (await dashA.$$eval('#topic-table tbody tr[data-topic]', (rows) => rows.map((r) => r.dataset.topic).sort().join(','))) === 'dash-a,dash-test',
    { what: 'the search results dash-a and dash-test' });
  await dashA.click('#topic-table tr[data-topic="dash-test"]');
  await waitFor(async () => (await dashA.textContent('#detail-nodes tr[data-node="gw-a"] td:nth-child(2)')) === '3', { what: 'gw-a: 3 subscribers of dash-test in the detail' });
  await waitFor(async () => (await dashA.textContent('#detail-nodes tr[data-node="gw-b"] td:nth-child(2)')) === '2', { what: 'gw-b: 2 subscribers of dash-test in the detail' });
  assert.match(await dashA.textContent('#detail-total'), /^5 subscribers in the cluster/);
  await fullScreenshot(dashA, 'dashboard');

  // A's clients leave: both dashboards see it.
  await chatA.evaluate(() => { for (const ws of window.socks) ws.close(); });
  for (const page of [dashA, dashB]) {
    await waitField(page, 'gw-a', 'connections', 1);
    await waitField(page, 'gw-a', 'topics', 1); // only the chat room is left
  }
  await fullScreenshot(dashB, 'dashboard-gw-b');

  for (const page of [dashA, dashB, chatA, chatB]) {
    assert.deepEqual(pageErrors(page), [], 'no script errors or CSP violations');
    await page.context().close();
  }
}));

test('logging out ends the session', { timeout: TEST_TIMEOUT }, async () => {
  const page = await login(gwA);
  await Promise.all([page.waitForLoadState(), page.click('#logout button')]);
  await page.locator('#login').waitFor();
  const res = await page.goto(`${gwA.base}/dashboard`);
  assert.equal(res.status(), 401);
  await page.context().close();
});
