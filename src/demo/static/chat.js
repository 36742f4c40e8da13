// The chat in the browser: plain JavaScript, no build step.
// Messages arrive over Server-Sent Events. When the connection drops, the browser reconnects by
// itself and sends Last-Event-ID; the origin sends what was missed, then holds the stream again.
'use strict';

const $ = (sel) => document.querySelector(sel);
const chat = { room: null, name: localStorage.getItem('chat.name') || '', source: null, lastId: 0 };

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
  status('connecting…');
  source.onopen = () => status('live');
  source.onerror = () => {
    status('reconnecting…');
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
  const list = $('#messages');
  const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
  const li = el('li', m.name === chat.name ? 'message mine' : 'message');
  li.dataset.id = m.id;
  chat.lastId = Math.max(chat.lastId, m.id);
  li.title = new Date(m.at).toLocaleString();
  li.append(el('div', 'who', m.name), el('p', 'what', m.text));
  list.append(li);
  $('#empty').hidden = true;
  if (nearBottom) li.scrollIntoView({ block: 'end' });
}

function status(text) {
  $('#status').textContent = text;
}

$('#join').addEventListener('submit', (e) => {
  e.preventDefault();
  start($('#join-room').value, $('#join-name').value);
});

$('#send').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('#text');
  const text = input.value;
  if (!text.trim()) return;
  input.value = '';
  try {
    const res = await fetch(`/rooms/${encodeURIComponent(chat.room)}/messages/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: chat.name, text }),
    });
    if (!res.ok) {
      const data = await res.json().catch(() => ({}));
      throw new Error(data.error || res.statusText);
    }
  } catch (err) {
    input.value = text;
    status(`not sent: ${err.message}`);
  }
});

(() => {
  const room = new URLSearchParams(location.search).get('room');
  $('#join-name').value = chat.name;
  if (room) $('#join-room').value = room;
  if (room && chat.name) { start(room, chat.name); return; }
  $('#join').hidden = false;
  (chat.name ? $('#join-room') : $('#join-name')).focus();
})();
