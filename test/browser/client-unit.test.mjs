// Unit tests of web/static/firetower.js in Node, with a fake WebSocket and
// fake timers: the reconnect policy for every close code, backoff bounds,
// re-subscription, request correlation, timeouts and the v1 API shape. The
// browser tests cover the same code against the real server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { repoRoot } from './helpers.mjs';

const source = fs.readFileSync(path.join(repoRoot, 'web', 'static', 'firetower.js'), 'utf8');

// load evaluates firetower.js in a fresh context with a fake WebSocket and
// a manual clock, and returns the context plus controls.
function load() {
  const sockets = [];
  const timers = new Map();
  let now = 0;
  let nextTimer = 1;

  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.protocol = '';
      this.sent = [];
      sockets.push(this);
    }
    send(text) {
      if (this.readyState !== 1) throw new Error('InvalidStateError: not open');
      this.sent.push(text);
    }
    close(code = 1000, reason = '') {
      if (this.readyState >= 2) return;
      this.readyState = 2;
      this.closedWith = code;
      queueMicrotask(() => this.serverClose(code, reason));
    }
    // Test controls, playing the server.
    accept(protocol = this.protocols === 'firetower.v2' ? 'firetower.v2' : '') {
      this.readyState = 1;
      this.protocol = protocol;
      this.onopen({ type: 'open' });
    }
    deliver(data) {
      this.onmessage({ type: 'message', data: typeof data === 'string' ? data : JSON.stringify(data) });
    }
    serverClose(code, reason = '') {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose({ type: 'close', code, reason, wasClean: code !== 1006 });
    }
    frames() {
      return this.sent.map((s) => JSON.parse(s));
    }
  }

  const clock = {
    setTimeout(fn, ms) {
      const id = nextTimer++;
      timers.set(id, { at: now + (ms || 0), fn });
      return id;
    },
    clearTimeout(id) { timers.delete(id); },
    // advance runs the timers due within ms, in order.
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let due = null;
        for (const [id, t] of timers) if (t.at <= end && (!due || t.at < due[1].at)) due = [id, t];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = end;
    },
    pending() { return [...timers.values()].map((t) => t.at - now); },
    now() { return now; },
  };

  const thrown = [];
  const ctx = vm.createContext({
    WebSocket: FakeWebSocket,
    setTimeout: (fn, ms) => clock.setTimeout(() => { try { fn(); } catch (e) { thrown.push(e); } }, ms),
    clearTimeout: clock.clearTimeout,
    Date: { now: () => clock.now() },
    console,
    URL,
    Promise,
  });
  vm.runInContext(source, ctx, { filename: 'firetower.js' });
  return { ctx, sockets, clock, thrown, last: () => sockets[sockets.length - 1] };
}

const tick = () => new Promise((r) => setImmediate(r));

// plain copies a value made inside the vm context into this realm, so that
// deepEqual does not trip over the other realm's prototypes.
const plain = (v) => (v === undefined ? v : JSON.parse(JSON.stringify(v)));

test('v1: the original API shape, heartbeat hidden, the raw event handed over', () => {
  const { ctx, sockets } = load();
  let opened = 0;
  const bt = new ctx.firetower('ws://h/ws', function () { opened++; });
  assert.ok(bt instanceof ctx.firetower);
  assert.ok(ctx.firetower('ws://h/ws') instanceof ctx.firetower, 'callable without new');
  const ws = sockets[0];
  assert.equal(ws.protocols, undefined, 'v1 offers no subprotocol');
  // Subscribing before the open is remembered and sent on open.
  bt.subscribe('/early');
  ws.accept();
  assert.equal(opened, 1);
  bt.subscribe(['/chat/world', '/chat/7']);
  assert.deepEqual(plain(bt.publish('/chat/world', { from: 'u', data: 'hi', type: 'publish' })), { type: 'success', info: 'sent' });
  bt.unsubscribe(['/chat/7']);
  assert.deepEqual(ws.frames(), [
    { type: 'subscribe', topic: '/early', data: '' },
    { type: 'subscribe', topic: '/chat/world,/chat/7', data: '' },
    { type: 'publish', topic: '/chat/world', data: { from: 'u', data: 'hi', type: 'publish' } },
    { type: 'unSubscribe', topic: '/chat/7', data: '' },
  ]);
  assert.equal(bt.publish('', 1).type, 'error');
  assert.equal(bt.publish('/t', '').type, 'error');

  const events = [];
  bt.onmessage = (e) => events.push(e);
  ws.deliver('heartbeat');
  const ev = { type: 'message', data: '{"type":"onSubscribe","data":2}' };
  ws.onmessage(ev);
  assert.equal(events.length, 1, 'heartbeat reached onmessage');
  assert.equal(events[0], ev, 'onmessage gets the MessageEvent itself');
  assert.equal(JSON.parse(events[0].data).data, 2);

  // No reconnect by default in the original API: onclose, then closed.
  let closed = 0;
  bt.onclose = () => closed++;
  ws.serverClose(1006);
  assert.equal(closed, 1);
  assert.equal(bt.state, 'closed');
  assert.equal(sockets.length, 2); // bt and the one made without new: no reconnect
  assert.deepEqual(plain(bt.publish('/t', 1)), { type: 'error', info: 'not_connected' });
  assert.throws(() => bt.subscribe(['/x'], () => {}), /need protocol v2/);
});

test('v1 with reconnect: every topic subscribed again, one frame per topic', () => {
  const { ctx, sockets, clock, last } = load();
  let opens = 0;
  const bt = ctx.firetower('ws://h/ws', () => opens++, { reconnect: true, backoffBase: 100, backoffCap: 1000, random: () => 0.5 });
  last().accept();
  bt.subscribe(['/a', '/b']);
  bt.subscribe(['/c']);
  bt.unsubscribe('/b');
  last().serverClose(1006);
  assert.equal(bt.state, 'reconnecting');
  assert.deepEqual(clock.pending(), [50]); // 0.5 * min(1000, 100 * 2^0)
  bt.subscribe('/d'); // while disconnected: remembered
  assert.equal(bt.publish('/a', 1).type, 'error');
  clock.advance(50);
  assert.equal(sockets.length, 2);
  last().accept();
  assert.equal(opens, 2, 'onopen runs on every open');
  assert.deepEqual(last().frames(), ['/a', '/c', '/d'].map((t) => ({ type: 'subscribe', topic: t, data: '' })));
  assert.deepEqual(plain(bt.topics()), ['/a', '/c', '/d']);
});

test('reconnect policy: final close codes stop, the others retry', () => {
  const final = [1000, 1002, 1007, 1009, 4500, 4503, 4999];
  const retry = [1001, 1005, 1006, 1011, 1012, 4000, 4008, 4009, 4499, 3000];
  for (const code of [...final, ...retry]) {
    const { ctx, sockets, clock, last } = load();
    const ft = new ctx.FireTower('ws://h/ws', { backoffBase: 10, backoffCap: 10 });
    const closes = [];
    ft.on('close', (e, info) => closes.push(info.reconnecting));
    last().accept();
    last().serverClose(code);
    clock.advance(100);
    const shouldRetry = retry.includes(code);
    assert.equal(ctx.FireTower.shouldReconnect(code), shouldRetry, `policy for ${code}`);
    assert.deepEqual(closes, [shouldRetry], `close info for ${code}`);
    assert.equal(sockets.length, shouldRetry ? 2 : 1, `sockets after close ${code}`);
    assert.equal(ft.state, shouldRetry ? 'reconnecting' : 'closed', `state after close ${code}`);
  }
  // A custom policy replaces the default.
  const { ctx, sockets, clock, last } = load();
  new ctx.FireTower('ws://h/ws', { shouldReconnect: (code) => code === 4503, backoffCap: 1 });
  last().accept();
  last().serverClose(4503);
  clock.advance(10);
  assert.equal(sockets.length, 2);
});

test('backoff: exponential ceiling, full jitter, cap, reset after a stable connection', () => {
  const { ctx, clock, sockets, last } = load();
  assert.equal(ctx.FireTower.backoff(0, 500, 30000, () => 0.999999), 499);
  assert.equal(ctx.FireTower.backoff(3, 500, 30000, () => 0.5), 2000);
  assert.equal(ctx.FireTower.backoff(10, 500, 30000, () => 0.999999), 29999);
  assert.equal(ctx.FireTower.backoff(1000, 500, 30000, () => 0.5), 15000);
  assert.equal(ctx.FireTower.backoff(5, 500, 30000, () => 0), 0);

  let r = 0.999;
  const ft = new ctx.FireTower('ws://h/ws', { backoffBase: 100, backoffCap: 1000, random: () => r });
  const delays = [];
  ft.on('state', (s, info) => { if (s === 'reconnecting' && info.delay !== undefined) delays.push(info.delay); });
  last().accept();
  for (let i = 0; i < 6; i++) {
    last().serverClose(1006); // the attempt fails before opening
    clock.advance(2000);
  }
  assert.deepEqual(delays, [99, 199, 399, 799, 999, 999]);
  assert.equal(ft.attempt, 6);
  // A server that accepts and soon closes does not reset the backoff.
  last().accept();
  clock.advance(4999);
  last().serverClose(1011);
  assert.deepEqual(delays.slice(6), [999]);
  assert.equal(ft.attempt, 7);
  clock.advance(2000);
  // A connection that lasted stableAfter (5 s) does.
  last().accept();
  clock.advance(5000);
  r = 0.5;
  last().serverClose(1001);
  assert.deepEqual(clock.pending(), [50]);
  assert.equal(ft.attempt, 1);
  ft.close();
  assert.deepEqual(clock.pending(), [], 'close() cancels the reconnect');
  clock.advance(5000);
  assert.equal(sockets.length, 8); // the first and seven retries, none after close()
  assert.equal(ft.state, 'closed');
});

test('v2: requests answered by id, out of order; errors reject; state events', async () => {
  const { ctx, last } = load();
  const ft = new ctx.FireTower('ws://h/ws');
  const states = [];
  ft.on('state', (s) => states.push(s));
  await tick();
  const ws = last();
  assert.equal(ws.protocols, 'firetower.v2');
  const got = [];
  const sub = ft.subscribe(['/a', '/b'], (data, meta) => got.push([data, meta.topic, meta.id]));
  ws.accept();
  const [subFrame] = ws.frames();
  assert.deepEqual(subFrame, { type: 'subscribe', topics: ['/a', '/b'], id: subFrame.id });
  const p1 = ft.publish('/a', { n: 1 });
  const p2 = ft.publish('/a', { n: 2 });
  const [, f1, f2] = ws.frames();
  assert.deepEqual(f1, { type: 'publish', topic: '/a', data: { n: 1 }, id: f1.id });
  ws.deliver({ type: 'error', id: f2.id, error: { code: 413, message: 'too large' } });
  ws.deliver({ type: 'ack', id: f1.id });
  ws.deliver({ type: 'ack', id: subFrame.id });
  await sub;
  await p1;
  await assert.rejects(p2, (e) => e instanceof ctx.FireTowerError && e instanceof vm.runInContext('Error', ctx) && e.code === 413 && e.message === 'too large');

  ws.deliver({ type: 'ping' });
  ws.deliver({ type: 'message', topic: '/a', id: '99', data: { hi: 1 } });
  ws.deliver({ type: 'message', topic: '/other', id: '100', data: 'x' });
  assert.deepEqual(plain(got), [[{ hi: 1 }, '/a', '99']]);

  const all = [];
  ft.onmessage = (e) => all.push([e.type, e.topic, JSON.parse(e.data)]);
  ws.deliver({ type: 'direct', data: { from: 'u', type: 'timeout' } });
  ws.deliver({ type: 'message', topic: '/b', id: '101', data: [1, 2] });
  assert.deepEqual(plain(all), [['direct', null, { from: 'u', type: 'timeout' }], ['message', '/b', [1, 2]]]);

  // An error for no request (id null) goes to the error listeners.
  const errors = [];
  ft.onerror = (e) => errors.push(e.code);
  ws.deliver({ type: 'error', id: null, error: { code: 400, message: 'bad json' } });
  assert.deepEqual(errors, [400]);

  // A refused subscription forgets the topics it added.
  const bad = ft.subscribe(['/c', '/a']);
  const badFrame = ws.frames().pop();
  ws.deliver({ type: 'error', id: badFrame.id, error: { code: 422, message: 'invalid topic' } });
  await assert.rejects(bad, (e) => e.code === 422);
  assert.deepEqual(plain(ft.topics()), ['/a', '/b']);
  assert.deepEqual(states, ['connecting', 'connected']);
});

test('v2: waiting while disconnected, timeouts, losing in-flight requests, re-subscription', async () => {
  const { ctx, clock, last } = load();
  const ft = new ctx.FireTower('ws://h/ws', { timeout: 1000, backoffBase: 100, random: () => 0 });
  // Made before the open: sent once it is open, topics not subscribed twice.
  const sub = ft.subscribe(['/a']);
  const early = ft.publish('/a', 1);
  last().accept();
  let frames = last().frames();
  assert.deepEqual(frames.map((f) => f.type), ['subscribe', 'publish']);
  last().deliver({ type: 'ack', id: frames[0].id });
  last().deliver({ type: 'ack', id: frames[1].id });
  await sub;
  await early;

  // Sent but unanswered when the connection drops: rejected as disconnected.
  const inflight = ft.publish('/a', 2);
  last().serverClose(1006);
  await assert.rejects(inflight, (e) => e.code === 'disconnected');
  // Made while reconnecting: waits, then times out.
  const late = ft.publish('/a', 3);
  clock.advance(1000);
  await assert.rejects(late, (e) => e.code === 'timeout');
  // The reconnect (delay 0) re-subscribes /a.
  const queued = ft.publish('/a', 4);
  assert.equal(ft.state, 'reconnecting');
  last().accept();
  frames = last().frames();
  assert.deepEqual(frames.map((f) => [f.type, f.topics || f.topic]), [['subscribe', ['/a']], ['publish', '/a']]);
  last().deliver({ type: 'ack', id: frames[1].id });
  await queued;
  // A refused re-subscription drops the topic and is reported.
  const errors = [];
  ft.on('error', (e) => errors.push(e.code));
  last().deliver({ type: 'error', id: frames[0].id, error: { code: 403, message: 'subscription refused' } });
  await tick();
  assert.deepEqual(errors, [403]);
  assert.deepEqual(plain(ft.topics()), []);

  // close() rejects what waits and refuses new requests.
  last().serverClose(1006);
  const pending = ft.publish('/a', 5);
  ft.close();
  await assert.rejects(pending, (e) => e.code === 'closed');
  await assert.rejects(ft.publish('/a', 6), (e) => e.code === 'closed');
  assert.equal(ft.state, 'closed');
});

test('v2: refresh sends the new token and keeps it for reconnections', async () => {
  const { ctx, last } = load();
  const ft = new ctx.FireTower('ws://h/ws?token=old&room=1#x', { random: () => 0 });
  await tick();
  const ws = last();
  ws.accept();
  const p = ft.refresh('new token');
  const frame = ws.frames().pop();
  assert.deepEqual(frame, { type: 'refresh', token: 'new token', id: frame.id });
  ws.deliver({ type: 'ack', id: frame.id });
  await p;
  assert.equal(ft.url, 'ws://h/ws?room=1&token=new%20token#x');
  const bad = ft.refresh('forged');
  const badFrame = ws.frames().pop();
  ws.deliver({ type: 'error', id: badFrame.id, error: { code: 401, message: 'token refused' } });
  await assert.rejects(bad, (e) => e.code === 401);
});

test('v2: a server that does not accept the v2 subprotocol is final', () => {
  const { ctx, sockets, clock, last } = load();
  const ft = new ctx.FireTower('ws://h/ws');
  last().accept('');
  clock.advance(60_000);
  assert.equal(ft.state, 'closed');
  assert.equal(sockets.length, 1);
  assert.equal(last().closedWith, 1000);
});

test('an exception in a handler does not break the client', () => {
  const { ctx, thrown, clock, last } = load();
  const bt = ctx.firetower('ws://h/ws');
  last().accept();
  const seen = [];
  bt.on('message', () => { throw new Error('boom'); });
  bt.on('message', (e) => seen.push(e.data));
  last().deliver('"one"');
  last().deliver('"two"');
  assert.deepEqual(seen, ['"one"', '"two"']);
  clock.advance(1);
  assert.equal(thrown.length, 2);
  assert.equal(thrown[0].message, 'boom');
});

test('topic lists are cleaned like the server does', () => {
  const { ctx } = load();
  assert.deepEqual(plain(ctx.FireTower.topicList(' a , b,,a ')), ['a', 'b']);
  assert.deepEqual(plain(ctx.FireTower.topicList(['x', 'y,z', 'x'])), ['x', 'y', 'z']);
  assert.deepEqual(plain(ctx.FireTower.topicList(undefined)), []);
});
