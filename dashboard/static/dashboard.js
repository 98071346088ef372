// The firetower dashboard page: renders the snapshots the node streams over
// Server-Sent Events (/dashboard/events) and calls the dashboard's JSON API
// for search, topic detail, connection lookup and disconnect. Data is only
// ever put in the page as text (textContent), never as HTML.
import { drawChart } from './chart.js';

const $ = (sel) => document.querySelector(sel);

const state = {
  self: '',
  canAct: false,
  interval: 1000,
  historyMax: 600,
  samples: [], // {t, node, cluster}
  snapshot: null,
  scope: 'cluster',
  tab: 'subs',
  query: '',
  searchResult: null,
  detail: '', // the topic whose detail is open
  es: null,
};

// ---- formatting ----

function fmtNum(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(a >= 1e10 ? 0 : 1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(a >= 1e5 ? 0 : 1)}k`;
  if (Number.isInteger(n)) return String(n);
  return a >= 10 ? n.toFixed(0) : n.toFixed(1);
}

function fmtBytes(n) {
  if (!(n > 0)) return '0 B';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
}

function fmtDuration(s) {
  s = Math.max(0, Math.floor(s));
  const d = Math.floor(s / 86400); s %= 86400;
  const h = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60); s %= 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

// ---- live connection ----

function setLive(st, text) {
  const live = $('#live');
  live.dataset.state = st;
  live.textContent = text;
}

function connect() {
  if (state.es) state.es.close();
  setLive('connecting', 'connecting…');
  const es = new EventSource('/dashboard/events');
  state.es = es;
  es.addEventListener('hello', (ev) => {
    const h = JSON.parse(ev.data);
    state.self = h.self;
    state.canAct = h.canAct;
    state.interval = h.interval || 1000;
    state.historyMax = h.keep || 600;
    state.samples = h.history || [];
    renderAccess(h);
    if (h.snapshot) onSnapshot(h.snapshot, false);
    setLive('live', 'live');
  });
  es.addEventListener('snapshot', (ev) => {
    onSnapshot(JSON.parse(ev.data), true);
    setLive('live', 'live');
  });
  es.addEventListener('bye', () => {
    es.close();
    setLive('down', 'the node is shutting down; retrying…');
    setTimeout(connect, 3000);
  });
  es.onerror = async () => {
    if (es.readyState === EventSource.CLOSED) {
      // Refused (401 after a logout or a key change, 503 when full):
      // find out which.
      try {
        const res = await fetch('/dashboard/api/snapshot', { credentials: 'same-origin' });
        if (res.status === 401) { window.location.reload(); return; }
      } catch { /* the node is down */ }
      setLive('down', 'disconnected; retrying…');
      setTimeout(connect, 3000);
    } else {
      setLive('connecting', 'reconnecting…');
    }
  };
}

function renderAccess(h) {
  $('#self').textContent = h.self;
  $('#logout').hidden = !h.canAct;
  $('#login-link').hidden = h.canAct;
  $('#access').textContent = h.canAct ? '' : 'read-only (open dashboard)';
  $('#lookup').hidden = !h.canAct;
  if (!h.canAct) {
    $('#lookup-note').textContent = 'Looking up and disconnecting connections needs the API key: log in.';
  }
}

function onSnapshot(s, isNew) {
  state.snapshot = s;
  if (isNew && s.sample) {
    const last = state.samples[state.samples.length - 1];
    if (!last || last.t < s.sample.t) state.samples.push(s.sample);
    if (state.samples.length > state.historyMax) state.samples.splice(0, state.samples.length - state.historyMax);
  }
  renderNodes(s);
  renderManagers(s);
  renderCharts();
  if (!state.query) renderTopicTable(state.tab === 'subs' ? s.bySubscribers : s.byRate);
}

// ---- cluster ----

const CARD_FIELDS = [
  // [field, label, value(node), class(node)]
  ['connections', 'connections', (n) => fmtNum(n.stats.connections), () => 'big'],
  ['topics', 'topics', (n) => fmtNum(n.stats.topics)],
  ['messagesIn', 'messages in/s', (n) => fmtNum(n.rates.messagesIn)],
  ['messagesOut', 'messages out/s', (n) => fmtNum(n.rates.messagesOut)],
  ['bytesIn', 'bytes in/s', (n) => fmtBytes(n.rates.bytesIn)],
  ['bytesOut', 'bytes out/s', (n) => fmtBytes(n.rates.bytesOut)],
  ['connects', 'connects/s', (n) => fmtNum(n.rates.connects)],
  ['disconnects', 'disconnects/s', (n) => fmtNum(n.rates.disconnects)],
  ['dropped', 'slow-consumer drops', (n) => fmtNum(n.stats.dropped), (n) => (n.stats.dropped ? 'alert' : '')],
  ['slowDisconnects', 'slow-consumer closes', (n) => fmtNum(n.stats.slowDisconnects), (n) => (n.stats.slowDisconnects ? 'alert' : '')],
  ['readTimeouts', 'read timeouts', (n) => fmtNum(n.stats.readTimeouts), (n) => (n.stats.readTimeouts ? 'alert' : '')],
  ['panics', 'panics', (n) => fmtNum(n.stats.panics), (n) => (n.stats.panics ? 'alert' : '')],
  ['protocolErrors', 'protocol errors', (n) => fmtNum(n.stats.protocolErrors)],
  ['publishErrors', 'publish errors', (n) => fmtNum(n.stats.publishErrors), (n) => (n.stats.publishErrors ? 'alert' : '')],
];

function nodeCard(id) {
  let card = document.querySelector(`#nodes article[data-node="${CSS.escape(id)}"]`);
  if (card) return card;
  const dl = el('dl');
  for (const [field, label] of CARD_FIELDS) {
    dl.append(el('dt', { text: label }), el('dd', { 'data-field': field }));
  }
  card = el('article', { class: 'node', 'data-node': id },
    el('h3', {}, el('span', { class: 'name', text: id }), el('span', { class: 'state' })),
    el('p', { class: 'meta' }),
    dl,
    el('p', { class: 'broker-error', hidden: true }));
  $('#nodes').append(card);
  return card;
}

function renderNodes(s) {
  const ids = new Set();
  let conns = 0;
  for (const n of s.nodes) {
    ids.add(n.id);
    conns += n.stats.connections;
    const card = nodeCard(n.id);
    card.classList.toggle('self', n.self);
    card.dataset.state = n.state;
    card.querySelector('.state').textContent = n.self ? `${n.state} · this node` : n.state;
    const meta = [`up ${fmtDuration(n.uptime)}`, n.version || 'no version', n.broker];
    if (!n.self) meta.push(`figures ${fmtDuration(n.age)} old`);
    card.querySelector('.meta').textContent = meta.join(' · ');
    for (const [field, , value, cls] of CARD_FIELDS) {
      const dd = card.querySelector(`dd[data-field="${field}"]`);
      dd.textContent = value(n);
      dd.className = cls ? cls(n) : '';
    }
    const be = card.querySelector('.broker-error');
    be.hidden = !n.brokerError;
    be.textContent = n.brokerError || '';
  }
  for (const card of document.querySelectorAll('#nodes article')) {
    if (!ids.has(card.dataset.node)) card.remove();
  }
  $('#cluster-summary').textContent = `${s.nodes.length} gateway${s.nodes.length === 1 ? '' : 's'} · ${fmtNum(conns)} connections`;
}

function renderManagers(s) {
  const box = $('#managers-box');
  box.hidden = !s.managers || s.managers.length === 0;
  if (box.hidden) return;
  const body = $('#managers tbody');
  body.replaceChildren(...s.managers.map((m) => el('tr', { 'data-manager': m.key },
    el('td', { text: m.key }),
    el('td', { text: m.addr }),
    el('td', { class: m.up ? '' : 'error', text: m.up ? 'connected' : 'down' }),
    el('td', { text: m.managerId || '–' }),
    el('td', { class: 'num', text: String(m.connects) }))));
}

// ---- charts ----

function renderCharts() {
  const samples = state.samples;
  if (!samples.length) return;
  const times = samples.map((s) => s.t);
  const end = Math.max(Date.now(), times[times.length - 1]);
  // The window grows with the data, from one minute to the whole history.
  const full = state.historyMax * state.interval;
  const windowMs = Math.min(full, Math.max(60_000, Math.ceil((end - times[0]) / 60_000) * 60_000));
  const pick = (f) => samples.map((s) => (s[state.scope] ? s[state.scope][f] : 0));
  const c1 = getComputedStyle(document.documentElement).getPropertyValue('--series-1').trim() || '#d4480f';
  const c2 = getComputedStyle(document.documentElement).getPropertyValue('--series-2').trim() || '#1a66d6';
  $('#window').textContent = `one point per ${state.interval / 1000} s, up to the last ${Math.round(full / 60000)} minutes`;
  const base = { times, windowMs, end };
  drawChart($('#chart-connections'), { ...base, format: fmtNum, series: [{ label: 'open', color: c1, values: pick('connections') }] });
  drawChart($('#chart-churn'), { ...base, format: fmtNum, series: [
    { label: 'connects', color: c1, values: pick('connects') },
    { label: 'disconnects', color: c2, values: pick('disconnects') }] });
  drawChart($('#chart-messages'), { ...base, format: fmtNum, series: [
    { label: 'in', color: c1, values: pick('messagesIn') },
    { label: 'out', color: c2, values: pick('messagesOut') }] });
  drawChart($('#chart-bytes'), { ...base, format: fmtBytes, series: [
    { label: 'in', color: c1, values: pick('bytesIn') },
    { label: 'out', color: c2, values: pick('bytesOut') }] });
}

for (const b of document.querySelectorAll('[data-scope]')) {
  b.addEventListener('click', () => {
    state.scope = b.dataset.scope;
    for (const o of document.querySelectorAll('[data-scope]')) o.setAttribute('aria-pressed', String(o === b));
    renderCharts();
  });
}
window.addEventListener('resize', renderCharts);

// ---- topics ----

function renderTopicTable(rows) {
  const body = $('#topic-table tbody');
  if (!rows || rows.length === 0) {
    body.replaceChildren(el('tr', {}, el('td', { colSpan: 4, class: 'muted', text: state.query ? 'no topic matches' : 'no topics yet' })));
    return;
  }
  body.replaceChildren(...rows.map((t) => {
    const tr = el('tr', { 'data-topic': t.topic },
      el('td', {}, el('code', { text: t.topic })),
      el('td', { class: 'num', 'data-field': 'subscribers', text: fmtNum(t.subscribers) }),
      el('td', { class: 'num', text: fmtNum(t.rate) }),
      el('td', { text: (t.nodes || []).join(', ') }));
    tr.addEventListener('click', () => openDetail(t.topic));
    return tr;
  }));
}

function selectTab(tab) {
  state.tab = tab;
  $('#tab-subs').setAttribute('aria-selected', String(tab === 'subs'));
  $('#tab-rate').setAttribute('aria-selected', String(tab === 'rate'));
  if (state.query) renderSearch();
  else if (state.snapshot) renderTopicTable(tab === 'subs' ? state.snapshot.bySubscribers : state.snapshot.byRate);
}
$('#tab-subs').addEventListener('click', () => selectTab('subs'));
$('#tab-rate').addEventListener('click', () => selectTab('rate'));

async function getJSON(url) {
  const res = await fetch(url, { credentials: 'same-origin' });
  if (res.status === 401) { window.location.reload(); throw new Error('unauthorized'); }
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

// renderSearch merges this node's matches (every local topic is searched)
// into the matches among the topics the nodes report.
function renderSearch() {
  const r = state.searchResult;
  if (!r) return;
  const rows = new Map(r.cluster.map((t) => [t.topic, { ...t, nodes: [...t.nodes] }]));
  for (const l of r.local) {
    const t = rows.get(l.topic);
    if (!t) rows.set(l.topic, { topic: l.topic, subscribers: l.subscribers, rate: l.rate, nodes: [r.node] });
    else if (!t.nodes.includes(r.node)) { t.subscribers += l.subscribers; t.rate = Math.max(t.rate, l.rate); t.nodes.push(r.node); }
  }
  const list = [...rows.values()];
  list.sort(state.tab === 'subs'
    ? (a, b) => b.subscribers - a.subscribers || a.topic.localeCompare(b.topic)
    : (a, b) => b.rate - a.rate || a.topic.localeCompare(b.topic));
  renderTopicTable(list);
  $('#topics-note').textContent = `${r.localMatched} topic${r.localMatched === 1 ? '' : 's'} of this node match` +
    (r.localMatched > r.local.length ? ` (the ${r.local.length} largest shown)` : '') +
    '; other nodes are searched among the topics they report.';
}

let searchTimer = 0;
async function search() {
  const q = state.query;
  if (!q) { state.searchResult = null; selectTab(state.tab); return; }
  try {
    const r = await getJSON(`/dashboard/api/topics?q=${encodeURIComponent(q)}`);
    if (q !== state.query) return; // typed on meanwhile
    state.searchResult = r;
    renderSearch();
  } catch (err) {
    $('#topics-note').textContent = `search failed: ${err.message}`;
  }
}
$('#topic-search').addEventListener('input', (ev) => {
  state.query = ev.target.value;
  clearTimeout(searchTimer);
  searchTimer = setTimeout(search, 250);
});
setInterval(() => { if (state.query) search(); }, 5000);

async function openDetail(topic) {
  state.detail = topic;
  $('#topic-detail').hidden = false;
  $('#detail-name').textContent = topic;
  await refreshDetail();
}

async function refreshDetail() {
  const topic = state.detail;
  if (!topic) return;
  try {
    const d = await getJSON(`/dashboard/api/topic?name=${encodeURIComponent(topic)}`);
    if (topic !== state.detail) return;
    $('#detail-total').textContent = `${fmtNum(d.total)} subscribers in the cluster` +
      (d.totalError ? ` (the broker could not be asked: ${d.totalError}; this node's count shown)` : '') +
      (d.unlisted > 0 ? `, ${fmtNum(d.unlisted)} of them on nodes that do not list it among their top topics` : '');
    $('#detail-nodes').replaceChildren(...d.nodes.map((n) => el('tr', { 'data-node': n.node },
      el('td', { text: n.node }),
      el('td', { class: 'num', text: n.exact || n.listed ? fmtNum(n.subscribers) : '?' }),
      el('td', { class: 'num', text: n.exact || n.listed ? fmtNum(n.rate) : '?' }),
      el('td', { class: 'num', text: n.exact || n.listed ? fmtNum(n.messages) : '?' }),
      el('td', { class: 'muted', text: n.exact ? 'exact, now' : (n.listed ? `its report, ${fmtDuration(n.age)} old` : 'not among its top topics') }))));
  } catch (err) {
    $('#detail-total').textContent = `failed: ${err.message}`;
  }
}
$('#detail-close').addEventListener('click', () => { state.detail = ''; $('#topic-detail').hidden = true; });
setInterval(refreshDetail, 2000);

// ---- connections ----

async function lookup() {
  const kind = $('#lookup-kind').value;
  const id = $('#lookup-id').value.trim();
  if (!id) return;
  const out = $('#lookup-result');
  try {
    const r = await getJSON(`/dashboard/api/connections?${kind}=${encodeURIComponent(id)}`);
    out.textContent = `${r.matched} connection${r.matched === 1 ? '' : 's'} on ${r.node}` +
      (r.matched > r.connections.length ? ` (the ${r.connections.length} oldest shown)` : '');
    $('#conn-table').hidden = r.connections.length === 0;
    $('#conn-table tbody').replaceChildren(...r.connections.map((c) => {
      const actions = el('td', { class: 'actions' },
        el('button', { type: 'button', class: 'danger', text: 'disconnect client', onclick: () => disconnect({ clientId: c.clientId }) }));
      if (c.userId) {
        actions.append(' ', el('button', { type: 'button', class: 'danger', text: 'disconnect user', onclick: () => disconnect({ userId: c.userId }) }));
      }
      return el('tr', { 'data-client': c.clientId },
        el('td', {}, el('code', { text: c.clientId })),
        el('td', { text: c.userId || '–' }),
        el('td', { text: c.remoteAddr }),
        el('td', { text: `v${c.protocol}` }),
        el('td', { text: `${fmtDuration((Date.now() - Date.parse(c.connectedAt)) / 1000)} ago` }),
        el('td', { text: c.topics.join(', ') }),
        el('td', { class: 'num', text: String(c.queued) }),
        actions);
    }));
  } catch (err) {
    out.textContent = `lookup failed: ${err.message}`;
  }
}

async function disconnect(which) {
  const what = which.clientId ? `client ${which.clientId}` : `user ${which.userId}`;
  if (!window.confirm(`Disconnect ${what} on every node?`)) return;
  const out = $('#lookup-result');
  try {
    const res = await fetch('/dashboard/api/disconnect', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(which),
    });
    const r = await res.json();
    out.textContent = `${what}: ${r.local} connection${r.local === 1 ? '' : 's'} closed on ${r.node}` +
      (r.error ? `; not sent to the other nodes: ${r.error}` : '; the other nodes close theirs');
    setTimeout(lookup, 500);
  } catch (err) {
    out.textContent = `disconnect failed: ${err.message}`;
  }
}

$('#lookup').addEventListener('submit', (ev) => { ev.preventDefault(); lookup(); });

connect();
