// The firetower chat room: the original example page's behaviour over
// protocol v1 (random 7-digit user code or a chosen nickname, the world
// room /chat/world, the online count from onSubscribe/onUnsubscribe, room
// switching, a retry link on a "timeout" notice), plus reconnecting.
//
// Everything that comes from the network or from a user is put into the
// page with textContent: never as HTML.
(function () {
  'use strict';

  var MAX_MESSAGES = 500; // older entries are removed from the list
  var ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
  var NAME_MAX = 32;
  var NAME_KEY = 'firetower.chat.nickname';

  var $ = function (id) { return document.getElementById(id); };
  var list = $('messages');
  var statusEl = $('status');
  var countEl = $('count');
  var roomEl = $('room');
  var meEl = $('me');
  var textEl = $('text');

  var STATUS_TEXT = {
    idle: 'connecting…',
    connecting: 'connecting…',
    connected: 'connected',
    reconnecting: 'reconnecting…',
    closed: 'disconnected'
  };

  function randomCode(n) {
    var s = '';
    for (var i = 0; i < n; i++) s += Math.floor(Math.random() * 10);
    return s;
  }

  function loadName() {
    try {
      var saved = window.localStorage.getItem(NAME_KEY);
      if (saved) return saved.slice(0, NAME_MAX);
    } catch (e) { /* storage may be disabled */ }
    return randomCode(7);
  }

  function saveName(name) {
    try {
      window.localStorage.setItem(NAME_KEY, name);
    } catch (e) { /* storage may be disabled */ }
  }

  function roomTopic(room) {
    return '/chat/' + room;
  }

  var user = loadName();
  var room = 'world';
  var topic = roomTopic(room);
  meEl.textContent = user;
  $('name-input').value = user;

  function clock(d) {
    return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
  }

  function asText(v) {
    if (typeof v === 'string') return v;
    if (v === undefined) return '';
    try {
      return JSON.stringify(v);
    } catch (e) {
      return String(v);
    }
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  // append adds an entry to the message list and keeps it bounded; it
  // follows new messages only when the reader is at the bottom.
  function append(li) {
    var follow = nearBottom();
    list.appendChild(li);
    while (list.children.length > MAX_MESSAGES) list.removeChild(list.firstElementChild);
    if (follow) list.scrollTop = list.scrollHeight;
  }

  function entry(kind, from, text) {
    var now = new Date();
    var li = document.createElement('li');
    li.className = 'msg ' + kind;
    var meta = document.createElement('div');
    meta.className = 'meta';
    var who = document.createElement('span');
    who.className = 'from';
    who.textContent = from;
    var time = document.createElement('time');
    time.dateTime = now.toISOString();
    time.textContent = clock(now);
    meta.appendChild(who);
    meta.appendChild(time);
    var body = document.createElement('div');
    body.className = 'text';
    body.textContent = text;
    li.appendChild(meta);
    li.appendChild(body);
    return li;
  }

  function showMessage(from, text) {
    from = asText(from);
    append(entry(from === user ? 'mine' : 'other', from, asText(text)));
  }

  function system(text) {
    var li = document.createElement('li');
    li.className = 'msg system';
    li.textContent = text;
    append(li);
  }

  // showTimeout shows the server's "timeout" notice (the message was
  // dropped because the server was busy) with a link to send it again.
  function showTimeout(msg) {
    var text = asText(msg.data);
    var li = entry('mine notice', asText(msg.from), text);
    var why = document.createElement('span');
    why.className = 'why';
    why.textContent = 'not delivered: the server was busy.';
    var retry = document.createElement('button');
    retry.type = 'button';
    retry.className = 'retry';
    retry.textContent = 'Retry';
    retry.addEventListener('click', function () {
      var res = bt.publish(topic, { from: msg.from, data: msg.data, type: 'publish' });
      if (res.type === 'success') {
        retry.disabled = true;
        retry.textContent = 'sent again';
      } else {
        system('Not sent: you are not connected.');
      }
    });
    li.querySelector('.meta').appendChild(why);
    li.querySelector('.meta').appendChild(retry);
    append(li);
  }

  function setCount(n) {
    countEl.textContent = typeof n === 'number' && isFinite(n) ? String(n) : '–';
  }

  var wsURL = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  var welcomed = false;

  var bt = firetower(wsURL, function () {
    // The client subscribed the room again by itself after a reconnect;
    // subscribing here once more is harmless.
    bt.subscribe([topic]);
    if (!welcomed) {
      welcomed = true;
      system('Connected. Welcome to the firetower chat room: what you send reaches everyone in this room. ' +
        'Commands: /name NAME to change your nickname, /room ROOM to switch room.');
    } else {
      system('Reconnected.');
    }
  }, { reconnect: true });

  bt.onstatechange = function (state) {
    statusEl.dataset.state = state;
    statusEl.textContent = STATUS_TEXT[state] || state;
    if (state === 'reconnecting' || state === 'closed') setCount(undefined);
  };

  var reported = false; // the current outage was reported in the list
  bt.on('open', function () { reported = false; });
  bt.onclose = function (ev, info) {
    if (info && info.reconnecting) {
      // Report an outage once, not every failed attempt.
      if (!reported) system(welcomed ? 'Connection lost. Reconnecting…' : 'Cannot reach the server. Retrying…');
      reported = true;
    } else {
      system('Disconnected (code ' + ev.code + '). Reload the page to connect again.');
    }
  };

  bt.onmessage = function (e) {
    var msg;
    try {
      msg = JSON.parse(e.data);
    } catch (err) {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'onSubscribe':
      case 'onUnsubscribe':
        setCount(msg.data);
        break;
      case 'publish':
        showMessage(msg.from, msg.data);
        break;
      case 'timeout':
        showTimeout(msg);
        break;
    }
  };

  function setName(name) {
    name = String(name).trim().slice(0, NAME_MAX);
    if (!name) return false;
    user = name;
    meEl.textContent = name;
    $('name-input').value = name;
    saveName(name);
    system('You are now ' + name + '.');
    return true;
  }

  function switchRoom(next) {
    next = String(next).trim();
    if (!ROOM_RE.test(next)) {
      system('A room name is 1 to 64 letters, digits, "-" or "_".');
      return false;
    }
    if (next === room) return true;
    bt.unsubscribe([topic]);
    room = next;
    topic = roomTopic(room);
    bt.subscribe([topic]);
    roomEl.textContent = room;
    setCount(undefined);
    system('You joined room ' + room + '.');
    return true;
  }

  $('composer').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = textEl.value;
    if (!text.trim()) return;
    var cmd = /^\/(name|room)\s+(.+)$/.exec(text.trim());
    if (cmd) {
      if (cmd[1] === 'name' ? setName(cmd[2]) : switchRoom(cmd[2])) textEl.value = '';
      return;
    }
    var res = bt.publish(topic, { from: user, data: text, type: 'publish' });
    if (res.type === 'success') {
      textEl.value = '';
    } else {
      system('Not sent: you are not connected. Your message is still in the box.');
    }
  });

  $('room-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var input = $('room-input');
    if (switchRoom(input.value)) input.value = '';
  });

  $('name-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    setName($('name-input').value);
  });

  // The original page followed the newest message when the window resized
  // (a phone keyboard opening).
  window.addEventListener('resize', function () {
    list.scrollTop = list.scrollHeight;
  });
})();
