// The live Q&A board in the browser: plain JavaScript, no build step.
// State comes from GET /api/rooms/{id}; every change after that arrives on the room's WebSocket,
// each carrying the room's version: the next one is applied, older ones are ignored, and a gap
// (a change missed while reconnecting) makes the page fetch the state again.
'use strict';

const THEMES = ['indigo', 'teal', 'rose', 'amber', 'emerald', 'slate'];
const $ = (sel) => document.querySelector(sel);

function randomId() {
  // crypto.getRandomValues works on plain http too (randomUUID needs a secure context).
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const me = {
  // The secret this page acts with; others only see `publicId`, which the origin assigns.
  id: localStorage.getItem('qa.userId') || randomId(),
  publicId: null,
  name: localStorage.getItem('qa.name') || '',
  host: false,
};
localStorage.setItem('qa.userId', me.id);

const board = {
  roomId: null,
  room: null,
  version: -1,
  questions: new Map(),
  ws: null,
  loading: false,
  buffered: [],
  retryMs: 500,
  elements: new Map(),
};

// ---------------------------------------------------------------------------------------------
// Joining

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || `${res.status} ${res.statusText}`);
  return data;
}

async function join(room, name, asHost) {
  const joined = await api('POST', '/api/join', { room, name, userId: me.id, host: asHost });
  me.name = name;
  me.host = joined.host;
  me.publicId = joined.me;
  localStorage.setItem('qa.name', name);
  board.roomId = joined.roomId;
  history.replaceState(null, '', `/qa/?room=${encodeURIComponent(joined.roomId)}`);
  showRoom(joined.room);
  $('#join').hidden = true;
  $('#board').hidden = false;
  $('#ask').hidden = false;
  $('#me').hidden = false;
  document.body.classList.toggle('is-host', me.host);
  $('#me-host').hidden = !me.host;
  $('#me-name').textContent = me.name;
  connect();
}

$('#join').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    await join($('#join-room').value, $('#join-name').value, $('#join-host').checked);
  } catch (err) {
    toast(`Could not join: ${err.message}`);
  }
});

// ---------------------------------------------------------------------------------------------
// The socket and the state

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = `roomId=${encodeURIComponent(board.roomId)}&userId=${encodeURIComponent(me.id)}`;
  const ws = new WebSocket(`${proto}//${location.host}/api/websocket?${q}`);
  board.ws = ws;
  ws.onopen = () => {
    board.retryMs = 500;
    status('Live');
    // The origin subscribed this socket in its answer to the opening, so the state fetched now
    // is followed by every later change (one missed anyway shows as a version gap).
    loadState();
  };
  ws.onmessage = (m) => {
    let event;
    try { event = JSON.parse(m.data); } catch { return; }
    if (event.type === 'error') { toast(event.message); return; }
    receive(event);
  };
  ws.onclose = () => {
    if (board.ws !== ws) return;
    document.body.dataset.live = 'false';
    status('Connection lost, reconnecting…', true);
    setTimeout(connect, board.retryMs);
    board.retryMs = Math.min(board.retryMs * 2, 8000);
  };
}

async function loadState() {
  if (board.loading) return;
  board.loading = true;
  try {
    const state = await api('GET', `/api/rooms/${encodeURIComponent(board.roomId)}`);
    board.version = state.room.version;
    // "live": connected and up to date (tests wait for it; nothing else reads it).
    document.body.dataset.live = String(board.ws && board.ws.readyState === WebSocket.OPEN);
    board.questions = new Map(state.questions.map((q) => [q.id, q]));
    showRoom(state.room);
  } catch (err) {
    status(`Could not load the room: ${err.message}`, true);
    board.loading = false;
    setTimeout(loadState, 2000);
    return;
  }
  board.loading = false;
  const pending = board.buffered;
  board.buffered = [];
  renderQuestions();
  for (const event of pending) receive(event);
}

function receive(event) {
  if (board.loading) { board.buffered.push(event); return; }
  if (event.version <= board.version) return;
  if (event.version > board.version + 1) {
    // A change went by unseen (a reconnect): the state is fetched again.
    board.buffered.push(event);
    loadState();
    return;
  }
  board.version = event.version;
  apply(event);
}

function apply(event) {
  switch (event.type) {
    case 'question':
      board.questions.set(event.question.id, event.question);
      break;
    case 'deleted':
      board.questions.delete(event.id);
      break;
    case 'room':
      showRoom(event.room);
      return;
    case 'user':
      for (const q of board.questions.values()) {
        if (q.authorId === event.userId) q.author = event.name;
        if (q.answer && q.answer.authorId === event.userId) q.answer.author = event.name;
      }
      if (event.userId === me.publicId) {
        me.name = event.name;
        localStorage.setItem('qa.name', me.name);
        $('#me-name').textContent = me.name;
      }
      break;
    default:
      return;
  }
  renderQuestions();
}

function send(action) {
  if (!board.ws || board.ws.readyState !== WebSocket.OPEN) {
    toast('Not connected yet, try again in a moment');
    return false;
  }
  board.ws.send(JSON.stringify(action));
  return true;
}

// ---------------------------------------------------------------------------------------------
// Rendering

function showRoom(room) {
  board.room = room;
  $('#room-name').textContent = room.name;
  $('#room-sub').textContent = `Live Q&A · room “${room.id}”`;
  document.title = `${room.name} · Live Q&A`;
  document.body.dataset.theme = THEMES.includes(room.theme) ? room.theme : 'indigo';
}

function ago(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/// One question's element, made once and kept (an answer being typed survives re-renders).
function questionElement(id) {
  let li = board.elements.get(id);
  if (li) return li;
  li = el('li', 'question card');
  li.dataset.id = id;
  const vote = el('button', 'vote');
  vote.append(el('span', 'arrow', '▲'), el('span', 'count', '0'));
  vote.addEventListener('click', () => send({ type: 'vote', id }));
  const body = el('div', 'body');
  const tools = el('div', 'tools host-only');
  const answerBtn = el('button', 'link answer-btn', 'Answer');
  const deleteBtn = el('button', 'link danger delete-btn', 'Delete');
  tools.append(answerBtn, deleteBtn);
  const form = el('form', 'answer-form');
  form.hidden = true;
  const input = el('textarea');
  input.rows = 2;
  input.maxLength = 2000;
  input.placeholder = 'Your answer…';
  input.setAttribute('aria-label', 'Answer');
  const post = el('button', 'primary', 'Post answer');
  form.append(input, post);
  answerBtn.addEventListener('click', () => {
    form.hidden = !form.hidden;
    const q = board.questions.get(id);
    if (!form.hidden) { input.value = q && q.answer ? q.answer.text : ''; input.focus(); }
  });
  deleteBtn.addEventListener('click', () => send({ type: 'delete', id }));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (input.value.trim() && send({ type: 'answer', id, text: input.value })) {
      form.hidden = true;
    }
  });
  body.append(el('p', 'text'), el('p', 'meta'), el('div', 'answer'), tools, form);
  li.append(vote, body);
  board.elements.set(id, li);
  return li;
}

function renderQuestion(q) {
  const li = questionElement(q.id);
  const voted = q.voters.includes(me.publicId);
  const vote = li.querySelector('.vote');
  vote.classList.toggle('voted', voted);
  vote.setAttribute('aria-pressed', String(voted));
  vote.title = voted ? 'Take your vote back' : 'Upvote';
  vote.querySelector('.count').textContent = q.votes;
  li.querySelector('.text').textContent = q.text;
  li.querySelector('.meta').textContent = `${q.authorId === me.publicId ? `${q.author} (you)` : q.author} · ${ago(q.createdAt)}`;
  const answer = li.querySelector('.answer');
  answer.hidden = !q.answer;
  answer.replaceChildren();
  if (q.answer) {
    answer.append(el('div', 'label', `Answer from ${q.answer.author}`), el('p', 'answer-text', q.answer.text));
    li.querySelector('.answer-btn').textContent = 'Edit answer';
  } else {
    li.querySelector('.answer-btn').textContent = 'Answer';
  }
  return li;
}

function renderQuestions() {
  const list = $('#questions');
  const sorted = [...board.questions.values()].sort((a, b) => b.votes - a.votes || a.id - b.id);
  sorted.forEach((q, i) => {
    const li = renderQuestion(q);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  for (const [id, li] of board.elements) {
    if (!board.questions.has(id)) { li.remove(); board.elements.delete(id); }
  }
  $('#empty').hidden = sorted.length > 0;
}

function status(text, warn) {
  const s = $('#status');
  s.textContent = text;
  s.classList.toggle('warn', Boolean(warn));
  s.classList.toggle('live', text === 'Live');
}

let toastTimer;
function toast(text) {
  let t = $('.toast');
  if (!t) { t = el('div', 'toast'); t.setAttribute('role', 'alert'); document.body.append(t); }
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

// ---------------------------------------------------------------------------------------------
// Asking, the room editor, the name menu

$('#ask').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('#ask-text');
  if (text.value.trim() && send({ type: 'ask', text: text.value })) text.value = '';
});
$('#ask-text').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('#ask').requestSubmit(); }
});

for (const theme of THEMES) {
  const label = el('label');
  const input = el('input');
  input.type = 'radio';
  input.name = 'theme';
  input.value = theme;
  const span = el('span', '', theme);
  span.dataset.theme = theme;
  label.append(input, span);
  $('#swatches').append(label);
}

$('#edit-room').addEventListener('click', () => {
  $('#room-input').value = board.room ? board.room.name : '';
  const theme = board.room ? board.room.theme : 'indigo';
  for (const r of document.querySelectorAll('#swatches input')) r.checked = r.value === theme;
  $('#room-dialog').showModal();
});
$('#room-dialog').addEventListener('close', () => {
  if ($('#room-dialog').returnValue !== 'save') return;
  const theme = document.querySelector('#swatches input:checked');
  send({ type: 'room', name: $('#room-input').value, theme: theme ? theme.value : 'indigo' });
});

$('#me-button').addEventListener('click', (e) => {
  e.stopPropagation();
  const menu = $('#me-menu');
  menu.hidden = !menu.hidden;
  $('#me-button').setAttribute('aria-expanded', String(!menu.hidden));
});
document.addEventListener('click', () => { $('#me-menu').hidden = true; });
$('#rename-open').addEventListener('click', () => {
  $('#rename-input').value = me.name;
  $('#rename-dialog').showModal();
});
$('#rename-dialog').addEventListener('close', () => {
  if ($('#rename-dialog').returnValue !== 'save') return;
  send({ type: 'rename', name: $('#rename-input').value });
});

// Relative times stay fresh.
setInterval(() => { if (board.questions.size) renderQuestions(); }, 30000);

// ---------------------------------------------------------------------------------------------
// Start: back into the room after a reload, else the join form.

(async () => {
  const room = new URLSearchParams(location.search).get('room');
  $('#join-name').value = me.name;
  if (room) $('#join-room').value = room;
  if (room && me.name) {
    try { await join(room, me.name, false); return; } catch (err) { toast(`Could not join: ${err.message}`); }
  }
  $('#join').hidden = false;
  (me.name ? $('#join-room') : $('#join-name')).focus();
})();
