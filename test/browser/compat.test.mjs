// The compatibility page /static/compat-v01.html uses only the API of the
// original firetower_v0.1.js over protocol v1. Two such pages and the chat
// page talk to each other through the real server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildServer, startServer, launchBrowser, newPage, waitFor, WAIT, TEST_TIMEOUT } from './helpers.mjs';

let browser;
// Build the server and start chromium once per file, before the per-test
// time limits start counting.
before(async () => {
  await buildServer();
  browser = await launchBrowser();
}, { timeout: 300_000 });
after(async () => { if (browser) await browser.close(); });

async function openCompat(srv, user) {
  const page = await newPage(browser);
  page.heartbeats = 0;
  page.on('websocket', (ws) => {
    ws.on('framereceived', (f) => { if (f.payload === 'heartbeat') page.heartbeats++; });
  });
  await page.goto(`${srv.base}/static/compat-v01.html?user=${encodeURIComponent(user)}`);
  await page.locator('#state[data-state="connected"]').waitFor();
  return page;
}

async function logTexts(page) {
  return page.$$eval('#log li', (els) => els.map((e) => e.textContent));
}

async function waitLog(page, line) {
  await waitFor(async () => (await logTexts(page)).includes(line), { what: `"${line}" in the log` });
}

async function waitCount(page, sel, n) {
  await waitFor(async () => (await page.textContent(sel)) === String(n), { what: `count ${n} at ${sel}` });
}

async function sendCompat(page, text) {
  await page.fill('#msg', text);
  await page.click('#form button[type=submit]');
}

test('pages using only the original v0.1 API exchange messages', { timeout: TEST_TIMEOUT }, async () => {
  // A fast heartbeat: the pages must never see it.
  const srv = await startServer(['--heartbeat', '200ms']);
  try {
    const one = await openCompat(srv, 'one');
    const two = await openCompat(srv, 'two');
    await waitCount(one, '#count', 2);
    await waitCount(two, '#count', 2);

    // The original API shape.
    const shape = await one.evaluate(() => ({
      instance: bt instanceof firetower,
      methods: ['publish', 'subscribe', 'unsubscribe'].map((m) => typeof bt[m]),
      keys: [bt.subscribeKey, bt.unSubscribeKey, bt.publishKey],
      emptyTopic: bt.publish('', { a: 1 }),
      emptyData: bt.publish('/chat/world', ''),
      withoutNew: (() => {
        const c = firetower('/ws', null);
        c.close();
        return c instanceof firetower && c.url === `ws://${location.host}/ws`;
      })(),
    }));
    assert.deepEqual(shape.methods, ['function', 'function', 'function']);
    assert.equal(shape.instance, true);
    assert.equal(shape.withoutNew, true);
    assert.deepEqual(shape.keys, ['subscribe', 'unSubscribe', 'publish']);
    assert.equal(shape.emptyTopic.type, 'error');
    assert.equal(shape.emptyData.type, 'error');

    await sendCompat(one, 'from one <b>x</b>');
    await waitLog(two, 'one: from one <b>x</b>');
    await waitLog(one, 'one: from one <b>x</b>');
    await sendCompat(two, 'from two');
    await waitLog(one, 'two: from two');

    // The chat page and the compat page are in the same world room.
    const chat = await newPage(browser);
    await chat.goto(`${srv.base}/`);
    await chat.locator('#status[data-state="connected"]').waitFor();
    await waitCount(one, '#count', 3);
    await chat.fill('#text', 'from the chat page');
    await chat.press('#text', 'Enter');
    await waitLog(one, `${await chat.textContent('#me')}: from the chat page`);
    await sendCompat(two, 'to the chat page');
    await chat.waitForFunction(() => [...document.querySelectorAll('#messages .text')].some((e) => e.textContent === 'to the chat page'));

    // Heartbeat frames reached the socket but never onmessage: every .data
    // the page got is JSON.
    await waitFor(() => one.heartbeats >= 2, { what: 'two heartbeat frames on the wire' });
    const received = await one.evaluate(() => received.slice());
    assert.ok(received.length >= 5, `only ${received.length} messages`);
    for (const data of received) {
      assert.equal(typeof data, 'string');
      assert.notEqual(data, 'heartbeat');
      JSON.parse(data);
    }

    // unsubscribe through the old API: the others see the count drop.
    await one.click('#leave');
    await waitCount(two, '#count', 2);
    await waitFor(async () => (await chat.textContent('#count')) === '2', { what: 'the chat page count 2' });
    await sendCompat(two, 'after one left');
    await waitLog(two, 'two: after one left');
    assert.ok(!(await logTexts(one)).includes('two: after one left'), 'an unsubscribed page got a message');

    // onclose fires when the server goes away (no reconnect in the original API).
    await srv.stop();
    await waitFor(async () => (await one.textContent('#state')) === 'closed', { timeout: WAIT, what: 'onclose' });
    assert.deepEqual(one.errors, []);
    assert.deepEqual(two.errors, []);
  } catch (err) {
    srv.saveLog('compat');
    throw err;
  } finally {
    await srv.stop();
  }
});
