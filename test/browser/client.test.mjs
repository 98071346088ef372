// firetower.js in v2 mode, imported as an ES module in chromium, against the
// real server: acknowledgements, error frames, per-topic handlers, the
// close-code policy, and reconnecting with re-subscription.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildServer, startServer, launchBrowser, newPage, RECONNECT_WAIT, TEST_TIMEOUT } from './helpers.mjs';

let browser;
// Build the server and start chromium once per file, before the per-test
// time limits start counting.
before(async () => {
  await buildServer();
  browser = await launchBrowser();
}, { timeout: 300_000 });
after(async () => { if (browser) await browser.close(); });

// blankPage opens a same-origin page without the chat (no CSP: /healthz)
// and imports the client as a module into window.ft.
async function blankPage(srv) {
  const page = await newPage(browser);
  await page.goto(`${srv.base}/healthz`);
  await page.evaluate(async () => {
    window.ft = await import('/static/firetower.mjs');
  });
  return page;
}

test('v2: acks, error frames, per-topic handlers, direct module use', { timeout: TEST_TIMEOUT }, async () => {
  const srv = await startServer(['--max-message-size', '1000']);
  try {
    const page = await blankPage(srv);
    const out = await page.evaluate(async () => {
      const { FireTower, FireTowerError, firetower } = window.ft;
      const states = [];
      const a = new FireTower('/ws', { backoffBase: 50, backoffCap: 500 });
      a.on('state', (s) => states.push(s));
      const got = { one: [], two: [], all: [] };
      const isChat = (d) => d && d.type !== 'onSubscribe' && d.type !== 'onUnsubscribe';
      // Subscribing before the connection is open: the request waits.
      await a.subscribe(['/t/one'], (d, meta) => { if (isChat(d)) got.one.push([d, meta.topic, typeof meta.id]); });
      await a.subscribe('/t/two', (d) => { if (isChat(d)) got.two.push(d); });
      a.onmessage = (e) => { const d = JSON.parse(e.data); if (isChat(d)) got.all.push([e.topic, d]); };

      const b = new FireTower('/ws');
      await b.publish('/t/one', { n: 1 });
      await b.publish('/t/two', 'two');
      await b.publish('/t/three', 3); // nobody listens: still acknowledged
      const until = async (fn) => { for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 25)); };
      await until(() => got.all.length >= 2);

      const errOf = async (p) => { try { await p; return 'resolved'; } catch (e) { return [e instanceof FireTowerError, e.code, e.message]; } };
      const badTopic = await errOf(a.subscribe(['ok-topic', 'bad\ntopic']));
      const tooBig = await errOf(b.publish('/t/one', 'x'.repeat(2000)));
      const topicsAfter = a.topics();

      await a.unsubscribe(['/t/two']);
      await b.publish('/t/two', 'after unsubscribe');
      await b.publish('/t/one', { n: 2 });
      await until(() => got.one.length >= 2);

      a.close();
      const closedErr = await errOf(a.publish('/t/one', 1));
      b.close();
      return {
        states, got, badTopic, tooBig, topicsAfter, closedErr,
        globals: typeof window.FireTower === 'function' && typeof window.firetower === 'function',
        legacy: typeof firetower,
        state: a.state,
      };
    });
    assert.deepEqual(out.states, ['connecting', 'connected', 'closed']);
    assert.deepEqual(out.got.one, [[{ n: 1 }, '/t/one', 'string'], [{ n: 2 }, '/t/one', 'string']]);
    assert.deepEqual(out.got.two, ['two']);
    assert.deepEqual(out.got.all.slice(0, 2), [['/t/one', { n: 1 }], ['/t/two', 'two']]);
    assert.deepEqual(out.badTopic.slice(0, 2), [true, 422]);
    assert.deepEqual(out.tooBig.slice(0, 2), [true, 413]);
    assert.deepEqual(out.topicsAfter, ['/t/one', '/t/two'], 'a refused subscription was kept');
    assert.deepEqual(out.closedErr.slice(0, 2), [true, 'closed']);
    assert.equal(out.state, 'closed');
    assert.equal(out.globals, true);
    // /healthz has no icon link: the browser's /favicon.ico request is 404.
    assert.deepEqual(page.errors.filter((e) => !/status of 404/.test(e)), []);
    await page.context().close();
  } catch (err) {
    srv.saveLog('client-v2');
    throw err;
  } finally {
    await srv.stop();
  }
});

// After a message over --read-limit the gateway sends 1009 and lingers
// (FIN, then reads the rest of the message) before closing, so the close
// frame is not lost to a TCP reset and chromium reports 1009, not 1006.
test('v2: a message over the read limit closes with 1009 and the client does not reconnect', {
  timeout: TEST_TIMEOUT,
}, async () => {
  const srv = await startServer();
  try {
    const page = await blankPage(srv);
    let sockets = 0;
    page.on('websocket', () => { sockets++; });
    const out = await page.evaluate(async () => {
      const { FireTower } = window.ft;
      const a = new FireTower('/ws', { backoffBase: 10, backoffCap: 20 });
      window.a = a;
      const closes = [];
      a.on('close', (e, info) => closes.push([e.code, info.reconnecting]));
      await a.subscribe(['/t/big']);
      let err;
      try {
        await a.publish('/t/big', 'x'.repeat(70 * 1024)); // over the 64 KiB read limit
      } catch (e) {
        err = e.code;
      }
      for (let i = 0; i < 100 && !closes.length; i++) await new Promise((r) => setTimeout(r, 20));
      return { closes, err, state: a.state };
    });
    assert.deepEqual(out.closes, [[1009, false]]);
    assert.equal(out.state, 'closed');
    assert.ok(out.err === 'disconnected' || out.err === 'closed', `publish rejected with ${out.err}`);
    // A wrong retry would come within the 20 ms backoff cap.
    await page.evaluate(() => new Promise((r) => setTimeout(r, 200)));
    assert.equal(sockets, 1, 'the client reconnected after 1009');
    await page.context().close();
  } finally {
    await srv.stop();
  }
});

test('v2: reconnect with backoff after a server restart, every topic subscribed again', { timeout: TEST_TIMEOUT }, async () => {
  const srv = await startServer();
  try {
    const page = await blankPage(srv);
    await page.evaluate(async () => {
      const { FireTower } = window.ft;
      window.log = { states: [], got: [], closes: [] };
      const a = new FireTower('/ws', { backoffBase: 100, backoffCap: 1000 });
      window.a = a;
      a.on('state', (s, info) => window.log.states.push([s, info.delay]));
      a.on('close', (e, info) => window.log.closes.push([e.code, info.reconnecting]));
      for (const t of ['/r/1', '/r/2', '/r/3']) {
        await a.subscribe([t], (d, meta) => { if (d && d.x) window.log.got.push([meta.topic, d.x]); });
      }
    });
    await srv.stop('SIGKILL');
    await page.waitForFunction(() => window.a.state === 'reconnecting');
    await srv.start();
    await page.waitForFunction(() => window.a.state === 'connected', null, { timeout: RECONNECT_WAIT });
    const out = await page.evaluate(async () => {
      const { FireTower } = window.ft;
      const b = new FireTower('/ws');
      for (const t of ['/r/1', '/r/2', '/r/3']) await b.publish(t, { x: t });
      for (let i = 0; i < 200 && window.log.got.length < 3; i++) await new Promise((r) => setTimeout(r, 25));
      b.close();
      window.a.close();
      return window.log;
    });
    assert.deepEqual(out.got.sort(), [['/r/1', '/r/1'], ['/r/2', '/r/2'], ['/r/3', '/r/3']]);
    assert.equal(out.closes[0][0], 1006);
    assert.ok(out.closes.every(([, again]) => again), 'a lost connection was not retried');
    const names = out.states.map(([s]) => s);
    assert.deepEqual(names.slice(0, 3), ['connecting', 'connected', 'reconnecting']);
    assert.deepEqual(names.slice(-2), ['connected', 'closed']);
    // Each delay is within its full-jitter bound: attempt n waits < min(cap, base*2^n).
    const delays = out.states.filter(([s, d]) => s === 'reconnecting' && d !== undefined).map(([, d]) => d);
    assert.ok(delays.length >= 1);
    delays.forEach((d, n) => assert.ok(d >= 0 && d < Math.min(1000, 100 * 2 ** n), `delay ${d} of attempt ${n}`));
    await page.context().close();
  } catch (err) {
    srv.saveLog('client-reconnect');
    throw err;
  } finally {
    await srv.stop();
  }
});
