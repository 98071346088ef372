/*
 * firetower.js: the browser client of firetower. No dependencies, no build.
 *
 * Load it as a plain script (it defines the globals firetower, FireTower and
 * FireTowerError) or import it as an ES module from firetower.mjs. The API
 * is described in docs/client.md; the wire protocols in docs/protocol.md.
 *
 *   // The original firetower_v0.1.js API, protocol v1, unchanged:
 *   var bt = new firetower('ws://host:9999/ws', function () { bt.subscribe(['/chat/world']) })
 *   bt.onmessage = function (e) { var msg = JSON.parse(e.data) }
 *
 *   // Protocol v2: acknowledgements, per-topic handlers, reconnect by default.
 *   var ft = new FireTower('/ws')
 *   ft.subscribe(['/chat/world'], function (data, meta) {}).then(...)
 *   ft.publish('/chat/world', {text: 'hi'}).then(ok, function (err) { err.code })
 *
 * The file is written so that it is valid both as a classic script and as a
 * module (strict mode, no top-level `this`).
 */
(function (root) {
  'use strict';

  var VERSION = '1.0.0';
  var SUBPROTOCOL_V2 = 'firetower.v2';
  var HEARTBEAT_V1 = 'heartbeat';

  // Reconnect delays: the n-th attempt waits a random time in
  // [0, min(cap, base * 2^n)) ("full jitter"), so that the clients of a
  // restarted server do not all come back at the same instant.
  var DEFAULT_BACKOFF_BASE = 500; // ms
  var DEFAULT_BACKOFF_CAP = 30000; // ms
  // The backoff starts again only after a connection stayed open this long:
  // a server that accepts and at once closes must not get a retry storm.
  var DEFAULT_STABLE_AFTER = 5000; // ms
  // How long a v2 request (publish, subscribe, unsubscribe) may wait for
  // its acknowledgement, queue time included.
  var DEFAULT_TIMEOUT = 10000; // ms
  // Requests made while disconnected wait in a bounded queue.
  var DEFAULT_MAX_QUEUE = 1000;

  // Error codes of FireTowerError besides the server's numeric codes.
  var ERR_TIMEOUT = 'timeout';
  var ERR_DISCONNECTED = 'disconnected';
  var ERR_CLOSED = 'closed';
  var ERR_QUEUE_FULL = 'queue_full';
  var ERR_NOT_CONNECTED = 'not_connected';

  // FireTowerError is the rejection of a v2 request. code is the server's
  // error code (400, 403, 413, 422, 429, 500, 503: docs/protocol.md) or one
  // of the strings 'timeout', 'disconnected', 'closed', 'queue_full'.
  function FireTowerError(code, message, id) {
    var err = new Error(message);
    Object.setPrototypeOf(err, FireTowerError.prototype);
    err.name = 'FireTowerError';
    err.code = code;
    if (id !== undefined) err.id = id;
    return err;
  }
  FireTowerError.prototype = Object.create(Error.prototype, {
    constructor: { value: FireTowerError, writable: true, configurable: true }
  });

  // shouldReconnect is the default reconnect policy, from the close codes of
  // docs/protocol.md: 1000 (a normal close by the server), 1002, 1007 and
  // 1009 (the client is at fault: retrying sends the same thing again) and
  // 4500-4999 (the application said no) are final; every other close,
  // 1006 (connection lost) included, is worth another attempt.
  function shouldReconnect(code) {
    if (code === 1000 || code === 1002 || code === 1007 || code === 1009) return false;
    return !(code >= 4500 && code <= 4999);
  }

  // backoff returns the delay before reconnect attempt number attempt
  // (0-based).
  function backoff(attempt, base, cap, random) {
    var ceiling = Math.min(cap, base * Math.pow(2, Math.min(attempt, 30)));
    return Math.floor((random || Math.random)() * ceiling);
  }

  // topicList turns ['a', 'b'], 'a' or 'a,b' into a clean array of topics,
  // trimmed, without empty entries or duplicates, as the server parses it.
  function topicList(topics) {
    if (topics === undefined || topics === null) return [];
    if (!Array.isArray(topics)) topics = [topics];
    var out = [];
    for (var i = 0; i < topics.length; i++) {
      var parts = String(topics[i]).split(',');
      for (var j = 0; j < parts.length; j++) {
        var t = parts[j].trim();
        if (t !== '' && out.indexOf(t) < 0) out.push(t);
      }
    }
    return out;
  }

  // resolveURL accepts ws:, wss:, http:, https: or a path relative to the
  // page ('/ws').
  function resolveURL(addr) {
    addr = String(addr);
    if (/^wss?:\/\//i.test(addr)) return addr;
    var loc = root.location;
    if (!loc || typeof URL !== 'function') return addr;
    var u = new URL(addr, loc.href);
    if (u.protocol === 'https:') u.protocol = 'wss:';
    else if (u.protocol === 'http:') u.protocol = 'ws:';
    return u.href;
  }

  function num(v, dflt) {
    return typeof v === 'number' && isFinite(v) && v >= 0 ? v : dflt;
  }

  // rethrowLater reports an exception of a user callback outside the
  // client's call stack, so that it shows in the console without breaking
  // the client.
  function rethrowLater(err) {
    setTimeout(function () { throw err; }, 0);
  }

  // FireTower is a connection to a firetower server.
  //
  // opts:
  //   protocol      'v2' (default) or 'v1' (the original protocol)
  //   reconnect     reconnect after a lost connection (default true)
  //   backoffBase   first reconnect delay ceiling in ms (default 500)
  //   backoffCap    largest reconnect delay ceiling in ms (default 30000)
  //   stableAfter   ms a connection must last to reset the backoff (default 5000)
  //   timeout       v2 request timeout in ms (default 10000)
  //   maxQueue      requests held while disconnected (default 1000)
  //   shouldReconnect(code, reason) -> bool   replaces the close-code policy
  //   WebSocket     the WebSocket constructor (default the global one)
  //   random        () -> [0, 1), for the jitter (default Math.random)
  function FireTower(url, opts) {
    if (!(this instanceof FireTower)) return new FireTower(url, opts);
    opts = opts || {};
    this.url = resolveURL(url);
    this.protocol = opts.protocol === 'v1' ? 'v1' : 'v2';
    this.options = {
      reconnect: opts.reconnect === undefined ? true : !!opts.reconnect,
      backoffBase: num(opts.backoffBase, DEFAULT_BACKOFF_BASE),
      backoffCap: num(opts.backoffCap, DEFAULT_BACKOFF_CAP),
      stableAfter: num(opts.stableAfter, DEFAULT_STABLE_AFTER),
      timeout: num(opts.timeout, DEFAULT_TIMEOUT),
      maxQueue: num(opts.maxQueue, DEFAULT_MAX_QUEUE),
      shouldReconnect: typeof opts.shouldReconnect === 'function' ? opts.shouldReconnect : shouldReconnect,
      WebSocket: opts.WebSocket || root.WebSocket,
      random: typeof opts.random === 'function' ? opts.random : Math.random
    };
    // The original client's settable keys and log switch.
    this.subscribeKey = 'subscribe';
    this.unSubscribeKey = 'unSubscribe';
    this.publishKey = 'publish';
    this.logopen = false;
    // Handlers, as in the original: assign a function.
    this.onopen = null; // (event) on every (re)connection
    this.onmessage = null; // (event) every delivery; event.data is the JSON text
    this.onclose = null; // (closeEvent, {reconnecting, delay}) on every lost connection
    this.onstatechange = null; // (state, info)
    this.onerror = null; // (FireTowerError) v2 errors that answer no request

    this.state = 'idle'; // connecting, connected, reconnecting, closed
    this.attempt = 0; // failed or short-lived connections in a row
    this._openedAt = 0; // when the current connection opened (Date.now())
    this._ws = null;
    this._opened = false; // has any connection opened yet
    this._timer = null; // the pending reconnect
    this._stopped = false; // close() was called, or a final close code came
    this._topics = []; // every topic the caller wants, in subscription order
    this._handlers = Object.create(null); // topic -> [fn(data, meta)]
    this._listeners = Object.create(null); // event name -> [fn]
    this._pending = {}; // id -> request sent and not yet answered
    this._queue = []; // requests waiting for a connection
    this._nextId = 1;
    this._onOnline = null;
    this._quiet = false; // hold state events back (in the constructor)
    if (opts.connect !== false) {
      // The socket opens now, as in the original, but the first 'connecting'
      // event waits for a microtask so that handlers set right after the
      // constructor hear it.
      this._quiet = true;
      this.connect();
      this._quiet = false;
      var self = this;
      Promise.resolve().then(function () {
        if (self.state === 'connecting') self._emit('state', 'connecting', { attempt: 0 });
      });
    }
  }

  FireTower.VERSION = VERSION;
  FireTower.SUBPROTOCOL_V2 = SUBPROTOCOL_V2;
  FireTower.shouldReconnect = shouldReconnect;
  FireTower.backoff = backoff;
  FireTower.topicList = topicList;

  var proto = FireTower.prototype;

  // on adds a listener for 'open', 'message', 'close', 'state' or 'error'
  // and returns a function that removes it.
  proto.on = function (name, fn) {
    (this._listeners[name] = this._listeners[name] || []).push(fn);
    var self = this;
    return function () { self.off(name, fn); };
  };

  proto.off = function (name, fn) {
    var list = this._listeners[name];
    if (!list) return;
    var i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  };

  proto._emit = function (name, a, b) {
    var prop = this[name === 'state' ? 'onstatechange' : 'on' + name];
    var list = (this._listeners[name] || []).slice();
    if (typeof prop === 'function') list.unshift(prop);
    for (var i = 0; i < list.length; i++) {
      try {
        list[i].call(this, a, b);
      } catch (err) {
        rethrowLater(err);
      }
    }
  };

  proto._log = function (what) {
    if (this.logopen && root.console) root.console.log('[firetower] INFO', what);
  };

  // _setState records and announces a state. 'reconnecting' is announced
  // once per scheduled attempt (its info carries the delay), the other
  // states on change only.
  proto._setState = function (state, info) {
    if (this.state === state && !(state === 'reconnecting' && info && info.delay !== undefined)) return;
    this.state = state;
    if (!this._quiet) this._emit('state', state, info || {});
  };

  // connected reports whether frames can be sent now.
  proto.connected = function () {
    return this.state === 'connected' && !!this._ws && this._ws.readyState === 1;
  };

  // topics returns the topics the client is subscribed to (or will
  // subscribe to on the next connection).
  proto.topics = function () {
    return this._topics.slice();
  };

  // connect opens the connection. It is called by the constructor; call it
  // to reconnect at once while waiting for a reconnect, or to open again
  // after close().
  proto.connect = function () {
    if (this._ws && (this._ws.readyState === 0 || this._ws.readyState === 1)) return this;
    this._stopped = false;
    this._clearTimer();
    this._watchOnline();
    this._open();
    return this;
  };

  proto._open = function () {
    var self = this;
    var WS = this.options.WebSocket;
    this._setState(this._opened ? 'reconnecting' : 'connecting', { attempt: this.attempt });
    var ws;
    try {
      ws = this.protocol === 'v2' ? new WS(this.url, SUBPROTOCOL_V2) : new WS(this.url);
    } catch (err) {
      // A malformed URL cannot get better by waiting.
      this._stop({ code: 0, reason: String(err && err.message) });
      throw err;
    }
    this._ws = ws;
    ws.onopen = function (ev) {
      if (self._ws !== ws) return;
      self._onOpen(ev);
    };
    ws.onmessage = function (ev) {
      if (self._ws !== ws) return;
      self._onMessage(ev);
    };
    ws.onclose = function (ev) {
      if (self._ws !== ws) return;
      self._onClose(ev);
    };
    ws.onerror = function () {}; // a close event always follows
  };

  proto._onOpen = function (ev) {
    if (this.protocol === 'v2' && this._ws.protocol !== SUBPROTOCOL_V2) {
      // The server does not speak v2: waiting will not change that.
      this._ws.close(1000);
      this._stop({ code: 0, reason: 'the server did not accept the ' + SUBPROTOCOL_V2 + ' subprotocol' });
      return;
    }
    this._opened = true;
    this._openedAt = Date.now();
    this._setState('connected', {});
    // Re-subscribe first, one frame per topic: one refused topic (an
    // invalid name, a permission) must not take the others with it. Topics
    // that a waiting subscribe request names are left to that request.
    var queue = this._queue;
    var waiting = [];
    for (var q = 0; q < queue.length; q++) {
      if (queue[q].frame.type === 'subscribe') waiting = waiting.concat(queue[q].frame.topics);
    }
    for (var i = 0; i < this._topics.length; i++) {
      if (waiting.indexOf(this._topics[i]) < 0) this._sendSubscribe([this._topics[i]]);
    }
    this._queue = [];
    for (var j = 0; j < queue.length; j++) this._send(queue[j]);
    this._emit('open', ev);
  };

  // _sendSubscribe sends a subscription frame that answers no caller (the
  // re-subscription after a reconnect). In v2 a refusal drops the topic.
  proto._sendSubscribe = function (topics) {
    if (this.protocol === 'v1') {
      this._raw({ type: this.subscribeKey, topic: topics.join(','), data: '' });
      return;
    }
    var self = this;
    this._request({ type: 'subscribe', topics: topics }).then(null, function (err) {
      if (typeof err.code === 'number') {
        self._forget(topics);
        self._emit('error', err);
      }
    });
  };

  proto._onMessage = function (ev) {
    var text = ev.data;
    if (this.protocol === 'v1') {
      this._log('new message:' + JSON.stringify(text));
      if (text === HEARTBEAT_V1) return;
      this._emit('message', ev);
      return;
    }
    if (typeof text !== 'string') return;
    var frame;
    try {
      frame = JSON.parse(text);
    } catch (err) {
      return; // not a v2 frame
    }
    if (!frame || typeof frame !== 'object') return;
    this._log('new message:' + text);
    switch (frame.type) {
      case 'ping':
        return; // the browser answers the websocket ping itself
      case 'ack':
        this._settle(frame.id, null);
        return;
      case 'error': {
        var e = frame.error || {};
        var err = FireTowerError(e.code, e.message || 'error', frame.id);
        if (frame.id === null || frame.id === undefined || !this._settle(frame.id, err)) this._emit('error', err);
        return;
      }
      case 'message':
      case 'direct':
        this._deliver(frame, ev);
        return;
    }
  };

  // _deliver hands a v2 delivery to the topic's handlers (parsed data) and
  // to onmessage (an event whose data is the JSON text, as in v1).
  proto._deliver = function (frame, ev) {
    var meta = { type: frame.type, topic: frame.topic, id: frame.id };
    if (frame.type === 'message') {
      var handlers = (this._handlers[frame.topic] || []).slice();
      for (var i = 0; i < handlers.length; i++) {
        try {
          handlers[i].call(this, frame.data, meta);
        } catch (err) {
          rethrowLater(err);
        }
      }
    }
    this._emit('message', {
      type: frame.type,
      topic: frame.topic,
      id: frame.id,
      data: JSON.stringify(frame.data),
      value: frame.data,
      event: ev
    });
  };

  proto._onClose = function (ev) {
    this._ws = null;
    if (this._openedAt && Date.now() - this._openedAt >= this.options.stableAfter) this.attempt = 0;
    this._openedAt = 0;
    // Sent requests may or may not have been applied: let the caller decide.
    this._failPending(ERR_DISCONNECTED, 'the connection was lost before the server answered');
    var reconnect = !this._stopped && this.options.reconnect &&
      !!this.options.shouldReconnect(ev.code, ev.reason);
    var delay = reconnect ? backoff(this.attempt, this.options.backoffBase, this.options.backoffCap, this.options.random) : 0;
    this._emit('close', ev, { reconnecting: reconnect, delay: delay });
    if (!reconnect) {
      this._stop({ code: ev.code, reason: ev.reason });
      return;
    }
    var self = this;
    this.attempt++;
    this._setState('reconnecting', { attempt: this.attempt, delay: delay, code: ev.code, reason: ev.reason });
    this._timer = setTimeout(function () {
      self._timer = null;
      self._open();
    }, delay);
  };

  // _stop makes the client final: no reconnect, every request rejected.
  proto._stop = function (info) {
    this._stopped = true;
    this._clearTimer();
    this._unwatchOnline();
    this._failPending(ERR_CLOSED, 'the client is closed');
    var queue = this._queue;
    this._queue = [];
    for (var i = 0; i < queue.length; i++) this._fail(queue[i], ERR_CLOSED, 'the client is closed');
    this._setState('closed', info || {});
  };

  // close closes the connection for good (code 1000 unless given).
  proto.close = function (code, reason) {
    var ws = this._ws;
    this._stop({ code: code || 1000, reason: reason || '' });
    if (ws && ws.readyState < 2) ws.close(code || 1000, reason || '');
  };

  proto._clearTimer = function () {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  };

  // A browser that comes back online retries at once instead of waiting
  // out the backoff.
  proto._watchOnline = function () {
    if (this._onOnline || typeof root.addEventListener !== 'function') return;
    var self = this;
    this._onOnline = function () {
      if (self._timer !== null) self.connect();
    };
    root.addEventListener('online', this._onOnline);
  };

  proto._unwatchOnline = function () {
    if (!this._onOnline) return;
    root.removeEventListener('online', this._onOnline);
    this._onOnline = null;
  };

  // _raw sends a frame now if the socket is open; it reports whether it did.
  proto._raw = function (obj) {
    if (!this.connected()) return false;
    this._ws.send(JSON.stringify(obj));
    return true;
  };

  // _request sends a v2 frame with a fresh id and returns a promise settled
  // by the answer with that id. While disconnected the request waits.
  proto._request = function (frame) {
    var self = this;
    return new Promise(function (resolve, reject) {
      if (self.state === 'closed') {
        reject(FireTowerError(ERR_CLOSED, 'the client is closed'));
        return;
      }
      var id = self._nextId++;
      frame.id = id;
      var req = { id: id, frame: frame, resolve: resolve, reject: reject, timer: null };
      if (self.options.timeout > 0) {
        req.timer = setTimeout(function () {
          req.timer = null;
          var i = self._queue.indexOf(req);
          if (i >= 0) self._queue.splice(i, 1);
          delete self._pending[id];
          reject(FireTowerError(ERR_TIMEOUT, 'no answer within ' + self.options.timeout + ' ms', id));
        }, self.options.timeout);
      }
      if (self.connected()) {
        self._send(req);
      } else if (self._queue.length >= self.options.maxQueue) {
        self._fail(req, ERR_QUEUE_FULL, 'too many requests waiting for a connection');
      } else {
        self._queue.push(req);
      }
    });
  };

  proto._send = function (req) {
    this._pending[req.id] = req;
    this._ws.send(JSON.stringify(req.frame));
  };

  // _settle answers the request with id; it reports whether there was one.
  proto._settle = function (id, err) {
    var req = this._pending[id];
    if (!req) return false;
    delete this._pending[id];
    if (req.timer !== null) clearTimeout(req.timer);
    if (err) req.reject(err);
    else req.resolve();
    return true;
  };

  proto._fail = function (req, code, message) {
    if (req.timer !== null) clearTimeout(req.timer);
    req.reject(FireTowerError(code, message, req.id));
  };

  proto._failPending = function (code, message) {
    var pending = this._pending;
    this._pending = {};
    for (var id in pending) {
      if (Object.prototype.hasOwnProperty.call(pending, id)) this._fail(pending[id], code, message);
    }
  };

  // _forget removes topics from the wanted set and their handlers.
  proto._forget = function (topics) {
    for (var i = 0; i < topics.length; i++) {
      var k = this._topics.indexOf(topics[i]);
      if (k >= 0) this._topics.splice(k, 1);
      delete this._handlers[topics[i]];
    }
  };

  // publish sends data (any JSON value) to every subscriber of topic.
  // v1: returns {type: 'success'|'error', info} like the original; a publish
  // while disconnected is not sent and returns an error.
  // v2: returns a promise resolved by the server's acknowledgement; while
  // disconnected the publish waits for the connection (up to `timeout`).
  proto.publish = function (topic, data) {
    this._log('publish topic:"' + topic + '", data:' + JSON.stringify(data));
    if (this.protocol === 'v1') {
      if (topic === undefined || topic === null || topic === '' || data === undefined || data === '') {
        return { type: 'error', info: 'topic and data must not be empty' };
      }
      if (!this._raw({ type: this.publishKey, topic: topic, data: data })) {
        return { type: 'error', info: ERR_NOT_CONNECTED };
      }
      return { type: 'success', info: 'sent' };
    }
    return this._request({ type: this.publishKey, topic: String(topic), data: data === undefined ? null : data });
  };

  // subscribe subscribes to topics (an array, one topic, or 'a,b'); they
  // are subscribed again after every reconnect. In v2, handler (optional)
  // receives (data, {topic, id}) for each message on these topics and the
  // result is a promise resolved by the acknowledgement; a refused
  // subscription rejects it and forgets the topics.
  proto.subscribe = function (topics, handler) {
    var list = topicList(topics);
    this._log('subscribe:"' + list.join(',') + '"');
    if (handler !== undefined && typeof handler !== 'function') throw new TypeError('firetower: handler must be a function');
    if (handler && this.protocol === 'v1') throw new Error('firetower: per-topic handlers need protocol v2 (v1 deliveries carry no topic)');
    var added = [];
    for (var i = 0; i < list.length; i++) {
      var t = list[i];
      if (this._topics.indexOf(t) < 0) {
        this._topics.push(t);
        added.push(t);
      }
      if (handler) (this._handlers[t] = this._handlers[t] || []).push(handler);
    }
    if (this.protocol === 'v1') {
      if (list.length) this._raw({ type: this.subscribeKey, topic: list.join(','), data: '' });
      return undefined;
    }
    if (!list.length) return Promise.reject(FireTowerError(422, 'no topic given'));
    var self = this;
    return this._request({ type: 'subscribe', topics: list }).then(null, function (err) {
      if (typeof err.code === 'number') self._forget(added);
      throw err;
    });
  };

  // unsubscribe leaves topics and drops their handlers. v2: returns a
  // promise resolved by the acknowledgement.
  proto.unsubscribe = function (topics) {
    var list = topicList(topics);
    this._log('unSubscribe:"' + list.join(',') + '"');
    this._forget(list);
    if (this.protocol === 'v1') {
      if (list.length) this._raw({ type: this.unSubscribeKey, topic: list.join(','), data: '' });
      return undefined;
    }
    if (!list.length) return Promise.resolve();
    return this._request({ type: 'unsubscribe', topics: list });
  };

  // refresh (v2) sends a new token for the open connection
  // ({type:'refresh'}; the server checks it and moves the connection's
  // expiry) and puts it in the URL's token parameter, so that later
  // reconnections present it too. It returns a promise of the server's ack.
  proto.refresh = function (token) {
    token = String(token);
    this.url = withParam(this.url, 'token', token);
    if (this.protocol === 'v1') {
      return Promise.reject(FireTowerError(400, 'refresh needs protocol v2; v1 reconnects with the new URL'));
    }
    return this._request({ type: 'refresh', token: token });
  };

  // withParam sets query parameter name of url to value.
  function withParam(url, name, value) {
    var hash = '';
    var i = url.indexOf('#');
    if (i >= 0) {
      hash = url.slice(i);
      url = url.slice(0, i);
    }
    var q = url.indexOf('?');
    var base = q >= 0 ? url.slice(0, q) : url;
    var params = q >= 0 ? url.slice(q + 1).split('&').filter(function (p) {
      return p !== '' && p.split('=')[0] !== name;
    }) : [];
    params.push(name + '=' + encodeURIComponent(value));
    return base + '?' + params.join('&') + hash;
  }

  // firetower is the original firetower_v0.1.js entry point, with or
  // without `new`: protocol v1 and no reconnect unless opts say otherwise.
  // onopen runs on every (re)connection, after the topics were subscribed
  // again.
  function firetower(addr, onopen, opts) {
    var o = {};
    for (var k in opts || {}) {
      if (Object.prototype.hasOwnProperty.call(opts, k)) o[k] = opts[k];
    }
    if (o.protocol === undefined) o.protocol = 'v1';
    if (o.reconnect === undefined) o.reconnect = false;
    var client = new FireTower(addr, o);
    if (typeof onopen === 'function') client.onopen = onopen;
    return client;
  }
  firetower.prototype = FireTower.prototype; // so that `bt instanceof firetower` holds
  firetower.FireTower = FireTower;
  firetower.FireTowerError = FireTowerError;
  firetower.VERSION = VERSION;

  root.firetower = firetower;
  root.FireTower = FireTower;
  root.FireTowerError = FireTowerError;
})(typeof globalThis !== 'undefined' ? globalThis : typeof self !== 'undefined' ? self : window);
