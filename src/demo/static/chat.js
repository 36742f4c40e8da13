// The chat in the browser: plain JavaScript, no build step.
// Messages arrive over Server-Sent Events. When the connection drops, the browser reconnects by
// itself and sends Last-Event-ID; the origin sends what was missed, then holds the stream again.
// Sends go out one at a time, in the order typed, each with an id of its own: a send that fails
// is shown and retried (the id keeps a retry from being stored twice), and later ones wait.
'use strict';

const $ = (sel) => document.querySelector(sel);
const chat = {
  room: null, name: localStorage.getItem('chat.name') || '', source: null, lastId: 0,
  // Messages typed and not yet stored, oldest first; only the first is being sent.
  outbox: [], sending: false, window: Math.random().toString(36).slice(2, 10), typed: 0,
  // Until then, arriving messages keep the list at the newest (a join or reconnect lands there).
  stickUntil: 0,
};
/// A reader this close to the bottom is "at the newest message" and is kept there.
const NEAR_BOTTOM_PX = 48;
/// Retry delays of a failed send: 1 s, doubling, at most 15 s.
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 15000;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function slug(name) {
  // The origin makes the same id; this only keeps the address bar tidy.
  return name.trim().toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || name.trim();
}

// ---------------------------------------------------------------------------------------------
// Scrolling: the list follows the conversation while the reader is at the newest message.

const scroller = () => $('#chat');

function atBottom() {
  const s = scroller();
  return s.scrollHeight - s.scrollTop - s.clientHeight <= NEAR_BOTTOM_PX;
}

function toBottom() {
  const s = scroller();
  s.scrollTop = s.scrollHeight;
  $('#new-hint').hidden = true;
}

/// Adds to the list, then keeps the reader where they were: at the newest message if they were
/// there (or just joined, reconnected or sent it), else where they are reading, with a hint.
function appending(add, mine) {
  const follow = mine || atBottom() || Date.now() < chat.stickUntil;
  add();
  if (follow) toBottom();
  else $('#new-hint').hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Receiving

function start(room, name) {
  chat.room = slug(room);
  chat.name = name.trim();
  localStorage.setItem('chat.name', chat.name);
  history.replaceState(null, '', `/chat/?room=${encodeURIComponent(chat.room)}`);
  $('#room-name').textContent = `# ${chat.room}`;
  document.title = `# ${chat.room} · Chat`;
  $('#me-name').textContent = chat.name;
  $('#join').hidden = true;
  $('#chat').hidden = false;
  $('#send').hidden = false;
  $('#me').hidden = false;
  listen();
  $('#text').focus();
}

function listen() {
  // A new EventSource cannot send Last-Event-ID: after the first, the last id goes in the URL
  // (the browser's own reconnects send the header, which the origin prefers).
  const resume = chat.lastId ? `?lastEventId=${chat.lastId}` : '';
  const source = new EventSource(`/rooms/${encodeURIComponent(chat.room)}/events/${resume}`);
  chat.source = source;
  status('connecting…', 'wait');
  source.onopen = () => {
    status('live', 'live');
    // What was missed (or the history) comes right after: land at the newest message.
    chat.stickUntil = Date.now() + 1500;
    toBottom();
  };
  source.onerror = () => {
    status('reconnecting…', 'wait');
    // The browser retries a dropped connection by itself, but gives up on an error answer
    // (e.g. 502 while the origin restarts): then start again.
    if (source.readyState === EventSource.CLOSED) setTimeout(() => { if (chat.source === source) listen(); }, 2000);
  };
  source.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    show(m);
  };
}

function show(m) {
  // Delivery is in order and exactly once; this only guards the page against a replay.
  if (m.id <= chat.lastId) return;
  chat.lastId = m.id;
  const mine = m.name === chat.name;
  const li = el('li', mine ? 'message mine' : 'message');
  li.dataset.id = m.id;
  li.title = new Date(m.at).toLocaleString();
  li.append(el('div', 'who', m.name), el('p', 'what', m.text));
  const pending = m.clientId && chat.outbox.find((p) => p.clientId === m.clientId);
  appending(() => {
    $('#messages').append(li);
    // This window's own message arrived: its "sending" bubble is done.
    if (pending) pending.li.remove();
    const stored = chat.outbox.findIndex((p) => p.clientId === m.clientId && p.stored);
    if (stored >= 0) chat.outbox.splice(stored, 1);
    $('#empty').hidden = true;
  }, mine && !!pending);
}

function status(text, state) {
  const s = $('#status');
  s.textContent = text;
  s.dataset.state = state;
}

// ---------------------------------------------------------------------------------------------
// Sending, in the order typed

function enqueue(text) {
  const item = {
    text, clientId: `${chat.window}-${++chat.typed}`, li: el('li', 'message mine pending'),
    stored: false, delayMs: RETRY_FIRST_MS,
  };
  item.li.append(el('div', 'who', 'sending…'), el('p', 'what', text));
  chat.outbox.push(item);
  appending(() => { $('#pending').append(item.li); $('#empty').hidden = true; }, true);
  pump();
}

/// Sends the oldest unsent message, then the next: never two at once, so the origin stores
/// them (and every window shows them) in the order typed.
async function pump() {
  if (chat.sending) return;
  chat.sending = true;
  try {
    for (;;) {
      const item = chat.outbox.find((p) => !p.stored);
      if (!item) return;
      const outcome = await post(item);
      if (outcome === 'stored') {
        item.stored = true;
        item.li.querySelector('.who').textContent = 'sent';
        // Received already (the stream was faster than the answer): nothing left to show.
        if (!item.li.isConnected) chat.outbox.splice(chat.outbox.indexOf(item), 1);
      } else if (outcome === 'refused') {
        chat.outbox.splice(chat.outbox.indexOf(item), 1);
      } else {
        await new Promise((r) => setTimeout(r, item.delayMs));
        item.delayMs = Math.min(item.delayMs * 2, RETRY_MAX_MS);
      }
    }
  } finally {
    chat.sending = false;
  }
}

/// One attempt: 'stored', 'refused' (the origin said no: shown, not retried) or 'retry'.
async function post(item) {
  let res;
  try {
    res = await fetch(`/rooms/${encodeURIComponent(chat.room)}/messages/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: chat.name, text: item.text, clientId: item.clientId }),
    });
  } catch (err) {
    return failed(item, 'no connection');
  }
  if (res.ok) {
    item.li.classList.remove('failed');
    return 'stored';
  }
  const data = await res.json().catch(() => ({}));
  if (res.status >= 400 && res.status < 500) {
    item.li.classList.add('failed');
    item.li.querySelector('.who').textContent = `not sent: ${data.error || res.statusText}`;
    return 'refused';
  }
  return failed(item, data.error || `${res.status} ${res.statusText}`);
}

function failed(item, why) {
  item.li.classList.add('failed');
  item.li.querySelector('.who').textContent = `not sent (${why}): retrying in ${Math.round(item.delayMs / 1000)} s`;
  return 'retry';
}

// ---------------------------------------------------------------------------------------------

$('#join').addEventListener('submit', (e) => {
  e.preventDefault();
  start($('#join-room').value, $('#join-name').value);
});

$('#send').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('#text');
  const text = input.value;
  if (!text.trim()) return;
  input.value = '';
  enqueue(text);
});

$('#chat').addEventListener('scroll', () => { if (atBottom()) $('#new-hint').hidden = true; });
$('#new-hint').addEventListener('click', toBottom);

(() => {
  const room = new URLSearchParams(location.search).get('room');
  $('#join-name').value = chat.name;
  if (room) $('#join-room').value = room;
  if (room && chat.name) { start(room, chat.name); return; }
  $('#join').hidden = false;
  (chat.name ? $('#join-room') : $('#join-name')).focus();
})();
