// The chat room page at /, used the way a person uses it, in chromium,
// against the real firetower binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildServer, startServer, launchBrowser, newPage, waitFor, screenshot, WAIT, RECONNECT_WAIT, TEST_TIMEOUT,
} from './helpers.mjs';

// A short heartbeat, so that heartbeat frames flow during the tests and must
// stay invisible.
const SERVER_ARGS = ['--heartbeat', '1s'];

let browser;
// Build the server and start chromium once per file, before the per-test
// time limits start counting.
before(async () => {
  await buildServer();
  browser = await launchBrowser();
}, { timeout: 300_000 });
after(async () => { if (browser) await browser.close(); });

// withServer runs fn with a fresh server and stops it afterwards, saving its
// log when fn fails.
async function withServer(name, fn) {
  const srv = await startServer(SERVER_ARGS);
  try {
    await fn(srv);
  } catch (err) {
    srv.saveLog(name);
    throw err;
  } finally {
    await srv.stop();
  }
}

// join opens the chat page in its own browser context and waits until it is
// connected and subscribed (it has received its room's online count).
async function join(srv, options = {}) {
  const page = await newPage(browser, { viewport: { width: 1280, height: 800 }, ...options });
  const res = await page.goto(`${srv.base}/`);
  assert.equal(res.status(), 200);
  await page.locator('#status[data-state="connected"]').waitFor();
  await waitFor(async () => /^\d+$/.test(await page.textContent('#count')), { what: 'the online count' });
  return page;
}

async function countOf(page) {
  return page.textContent('#count');
}

async function waitCount(page, n, timeout = WAIT) {
  await waitFor(async () => (await countOf(page)) === String(n), {
    timeout, what: `online count ${n} (it shows ${await countOf(page).catch(() => '?')})`,
  });
}

async function setName(page, name) {
  await page.fill('#name-input', name);
  await page.click('#name-form button');
  await waitFor(async () => (await page.textContent('#me')) === name, { what: `nickname ${name}` });
}

async function send(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
  await waitFor(async () => (await page.inputValue('#text')) === '', { what: 'the composer to clear (message sent)' });
}

// texts returns the text of every chat message (not system lines) on page.
async function texts(page) {
  return page.$$eval('#messages li.msg:not(.system) .text', (els) => els.map((e) => e.textContent));
}

async function waitText(page, text, timeout = WAIT) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages li.msg:not(.system) .text')].some((e) => e.textContent === t),
    text, { timeout },
  );
}

async function switchRoom(page, room) {
  await page.fill('#room-input', room);
  await page.click('#room-form button');
  await waitFor(async () => (await page.textContent('#room')) === room, { what: `room ${room}` });
}

function noErrors(...pages) {
  for (const p of pages) assert.deepEqual(p.errors, [], 'page errors or console errors');
}

test('two people chat: online count, markup shown as text, leaving', { timeout: TEST_TIMEOUT }, async () => {
  await withServer('chat-two-people', async (srv) => {
    const alice = await join(srv);
    await waitCount(alice, 1);
    const bob = await join(srv);
    await waitCount(alice, 2);
    await waitCount(bob, 2);

    // The random user code of the original page, then chosen nicknames.
    assert.match(await alice.textContent('#me'), /^\d{7}$/);
    assert.notEqual(await alice.textContent('#me'), await bob.textContent('#me'));
    await setName(alice, 'Alice <i>');
    await setName(bob, 'Bob');

    const payload = 'hi <b>bold</b> <script>window.__xss = 1</script> <img src=x onerror="window.__xss = 2"> & "q"';
    await send(alice, payload);
    await waitText(bob, payload);
    await waitText(alice, payload);

    const seen = await bob.evaluate((p) => {
      const li = [...document.querySelectorAll('#messages li.msg')].find((l) => l.querySelector('.text')?.textContent === p);
      return {
        cls: li.className,
        from: li.querySelector('.from').textContent,
        time: li.querySelector('time').textContent,
        datetime: li.querySelector('time').dateTime,
        bold: document.querySelectorAll('#messages b').length,
        scripts: document.querySelectorAll('#messages script').length,
        imgs: document.querySelectorAll('#messages img, #messages i').length,
        children: li.querySelector('.text').children.length,
        xss: window.__xss,
      };
    }, payload);
    assert.equal(seen.from, 'Alice <i>');
    assert.match(seen.cls, /\bother\b/);
    assert.match(seen.time, /^\d\d:\d\d$/);
    assert.ok(!Number.isNaN(Date.parse(seen.datetime)));
    assert.equal(seen.bold, 0, 'a <b> element was created from the message');
    assert.equal(seen.scripts, 0);
    assert.equal(seen.imgs, 0);
    assert.equal(seen.children, 0, 'the message text has child elements');
    assert.equal(seen.xss, undefined, 'script from the message ran');
    // The sender sees it as their own.
    assert.equal(await alice.$$eval('#messages li.mine .text', (els) => els.map((e) => e.textContent).pop()), payload);

    await send(bob, 'hello Alice');
    await waitText(alice, 'hello Alice');

    await screenshot(alice, 'chat-desktop');
    noErrors(alice, bob);

    // Bob closes his tab: Alice's count drops to 1.
    await bob.context().close();
    await waitCount(alice, 1);

    // The same page on a phone-sized screen: no sideways scrolling and the
    // composer on screen.
    const phone = await join(srv, {
      viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    });
    await waitCount(alice, 2);
    await setName(phone, 'Phone');
    await send(alice, 'a message for the phone, long enough to wrap on a narrow screen like this one');
    await waitText(phone, 'a message for the phone, long enough to wrap on a narrow screen like this one');
    await send(phone, 'sent from a phone');
    await waitText(alice, 'sent from a phone');
    const layout = await phone.evaluate(() => {
      const r = document.getElementById('composer').getBoundingClientRect();
      return {
        scrollWidth: document.documentElement.scrollWidth,
        width: window.innerWidth,
        composerBottom: r.bottom,
        height: window.innerHeight,
      };
    });
    assert.ok(layout.scrollWidth <= layout.width, `page is ${layout.scrollWidth}px wide on a ${layout.width}px screen`);
    assert.ok(layout.composerBottom <= layout.height, 'the composer is below the screen');
    await screenshot(phone, 'chat-phone');
    noErrors(alice, phone);
    await phone.context().close();
    await alice.context().close();
  });
});

test('switching room: messages stay in their room', { timeout: TEST_TIMEOUT }, async () => {
  await withServer('chat-rooms', async (srv) => {
    const a = await join(srv);
    const b = await join(srv);
    await waitCount(a, 2);
    await setName(a, 'A');
    await setName(b, 'B');

    await switchRoom(a, '7');
    await waitCount(a, 1); // alone in /chat/7
    await waitCount(b, 1); // b was told that a left the world room

    // b's own copy comes back once the server has delivered it to every
    // subscriber of the world room: after that it can no longer reach a.
    await send(b, 'only for the world room');
    await waitText(b, 'only for the world room');

    await switchRoom(b, '7');
    await waitCount(a, 2);
    await waitCount(b, 2);
    await send(b, 'hello room 7');
    await waitText(a, 'hello room 7');
    assert.ok(!(await texts(a)).includes('only for the world room'), 'a message of the world room reached room 7');

    // Back to the world room with the /room command; room 7 keeps b.
    await send(a, '/room world');
    await waitFor(async () => (await a.textContent('#room')) === 'world', { what: 'a back in world' });
    await waitCount(a, 1);
    await waitCount(b, 1);
    await send(b, 'room 7 again');
    await waitText(b, 'room 7 again');
    await send(a, 'world again');
    await waitText(a, 'world again');
    assert.ok(!(await texts(a)).includes('room 7 again'), 'a message of room 7 reached the world room');
    assert.ok(!(await texts(b)).includes('world again'), 'a message of the world room reached room 7');
    noErrors(a, b);
    await a.context().close();
    await b.context().close();
  });
});

test('server restart: the page reconnects and receives again without a reload', { timeout: TEST_TIMEOUT }, async () => {
  await withServer('chat-restart', async (srv) => {
    const a = await join(srv);
    const b = await join(srv);
    await waitCount(a, 2);
    await a.evaluate(() => { window.__sameDocument = true; });
    await send(b, 'before the restart');
    await waitText(a, 'before the restart');

    await srv.stop('SIGKILL'); // a crash, not a graceful close
    for (const p of [a, b]) {
      await p.locator('#status[data-state="reconnecting"]').waitFor();
      assert.match(await p.textContent('#status'), /reconnecting/);
    }
    // While disconnected, a message is not lost silently.
    await a.fill('#text', 'while down');
    await a.press('#text', 'Enter');
    await a.waitForFunction(() => [...document.querySelectorAll('#messages li.system')].some((l) => l.textContent.includes('Not sent')));
    assert.equal(await a.inputValue('#text'), 'while down');
    await a.fill('#text', '');

    await srv.start(); // the same port
    for (const p of [a, b]) {
      await p.locator('#status[data-state="connected"]').waitFor({ timeout: RECONNECT_WAIT });
    }
    // Both re-subscribed by themselves: the count is back to 2.
    await waitCount(a, 2);
    await waitCount(b, 2);
    await send(b, 'after the restart');
    await waitText(a, 'after the restart');
    await send(a, 'a is back too');
    await waitText(b, 'a is back too');
    assert.equal(await a.evaluate(() => window.__sameDocument), true, 'the page was reloaded');
    assert.ok(srv.starts === 2);
    // The console may show the failed connection attempts; nothing else.
    for (const p of [a, b]) {
      const other = p.errors.filter((e) => !/WebSocket connection to .* failed/.test(e));
      assert.deepEqual(other, []);
    }
    await a.context().close();
    await b.context().close();
  });
});

test('the page is served with a strict CSP and runs under it', { timeout: TEST_TIMEOUT }, async () => {
  await withServer('chat-csp', async (srv) => {
    const page = await newPage(browser);
    const violations = [];
    await page.exposeFunction('__cspViolation', (v) => violations.push(v));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => window.__cspViolation(`${e.violatedDirective} ${e.blockedURI}`));
    });
    const res = await page.goto(`${srv.base}/`);
    const csp = res.headers()['content-security-policy'];
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(res.headers()['content-type'], /^text\/html; charset=utf-8$/);
    await page.locator('#status[data-state="connected"]').waitFor();
    // An inline script injected into the page is refused by the policy.
    await page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.__inline = 1';
      document.body.appendChild(s);
    });
    await waitFor(() => violations.length > 0, { what: 'the CSP to refuse an inline script' });
    assert.equal(await page.evaluate(() => window.__inline), undefined);
    assert.ok(violations.every((v) => v.startsWith('script-src')), violations.join('\n'));
    // Accessible names for every control.
    const unlabelled = await page.$$eval('input, button', (els) => els
      .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
      .map((e) => e.outerHTML));
    assert.deepEqual(unlabelled, []);
    await page.context().close();
  });
});

test('a timeout notice shows the message as text with a retry link that sends it again', { timeout: TEST_TIMEOUT }, async () => {
  await withServer('chat-timeout', async (srv) => {
    const page = await newPage(browser, { viewport: { width: 1280, height: 800 } });
    // Sit between the page and the real server to play the server's
    // read-timeout notice, which a real server sends only under overload.
    let route;
    await page.routeWebSocket(/\/ws$/, (ws) => {
      route = ws;
      ws.connectToServer(); // everything else passes through
    });
    await page.goto(`${srv.base}/`);
    await page.locator('#status[data-state="connected"]').waitFor();
    await waitCount(page, 1);
    await setName(page, 'me');
    const lost = 'lost <b>in</b> the rush';
    route.send(JSON.stringify({ from: 'me', data: lost, type: 'timeout' }));
    const notice = page.locator('#messages li.notice');
    await notice.waitFor();
    assert.equal(await notice.locator('.text').textContent(), lost);
    assert.match(await notice.textContent(), /not delivered/);
    assert.equal(await page.locator('#messages b').count(), 0);
    await notice.getByRole('button', { name: 'Retry' }).click();
    // The retried message comes back from the server as a normal message.
    await page.waitForFunction((t) => [...document.querySelectorAll('#messages li.mine:not(.notice) .text')]
      .some((e) => e.textContent === t), lost);
    assert.equal(await notice.locator('button.retry').textContent(), 'sent again');
    noErrors(page);
    await page.context().close();
  });
});
