// End-to-end tests of `holdfast demo` in headless Chromium: the live Q&A board with three
// participants (join, ask, upvote and re-order, answer, delete, rename room and theme, rename
// user, late join, reload, a restart of the demo), the board's header on 320 and 390 px phones
// with long names, the chat in two windows with a forced reconnect, and the chat as a newcomer
// sees it (the list follows the conversation, fast typing stays in order, a failed send is
// retried). Every step asserts what the *other* window shows, within a bounded wait; no page
// may get a 404.
//
// Usage: node demo.test.mjs   (env: HOLDFAST_BIN, default ../../target/debug/holdfast;
//        CHROMIUM, default /usr/bin/chromium; OUT_DIR for screenshots, default ../../target/browser)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const BIN = process.env.HOLDFAST_BIN || path.join(repo, 'target/debug/holdfast');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.OUT_DIR || path.join(repo, 'target/browser');
/// How long another window may take to show a change.
const WAIT_MS = 5000;
/// The whole run is bounded.
const RUN_MS = 180_000;

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

// ---------------------------------------------------------------------------------------------
// holdfast demo as a user runs it

class Holdfast {
  constructor(dir) {
    this.dir = dir;
    this.port = 0;
    this.proc = null;
    this.output = '';
  }

  /// Starts `holdfast demo` (on the same port as before after a restart).
  async start() {
    const args = ['--listen', `127.0.0.1:${this.port}`, '--publish-listen', '127.0.0.1:0',
      '--workers', '2', 'demo', '--db', path.join(this.dir, 'demo.db')];
    const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
    this.proc = proc;
    const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    this.exited = exited;
    const port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`holdfast demo did not start:\n${this.output}`)), 15000);
      const onData = (d) => {
        this.output += d;
        const m = /proxy on port (\d+)/.exec(this.output);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      };
      proc.stdout.on('data', onData);
      proc.stderr.on('data', (d) => { this.output += d; });
      exited.then((code) => { clearTimeout(timer); reject(new Error(`holdfast exited (${code}):\n${this.output}`)); });
    });
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    return this;
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    const code = await Promise.race([this.exited, new Promise((r) => setTimeout(() => r('timeout'), 10000))]);
    if (code === 'timeout') { this.proc.kill('SIGKILL'); throw new Error('holdfast did not stop on SIGTERM'); }
  }
}

/// A TCP forwarder between one browser window and holdfast: `cut()` drops every connection and
/// refuses new ones (the network goes away), `restore()` brings it back. It also records the
/// head of every request that went through.
class Link {
  constructor(target) {
    this.target = target;
    this.up = true;
    this.sockets = new Set();
    this.requests = [];
    this.failing = false;
    this.server = net.createServer((client) => {
      if (this.failing) {
        // An error answer: EventSource gives up on it instead of retrying.
        client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      if (!this.up) { client.destroy(); return; }
      const origin = net.connect(target, '127.0.0.1');
      this.sockets.add(client).add(origin);
      let first = true;
      client.on('data', (d) => {
        if (first) { this.requests.push(d.toString('latin1').split('\r\n\r\n')[0]); first = false; }
        // Keep-alive connections carry more requests: record each head.
        else if (/^(GET|POST) /.test(d.toString('latin1', 0, 5))) this.requests.push(d.toString('latin1').split('\r\n\r\n')[0]);
      });
      client.pipe(origin).pipe(client);
      const close = () => { client.destroy(); origin.destroy(); this.sockets.delete(client); this.sockets.delete(origin); };
      client.on('error', close).on('close', close);
      origin.on('error', close).on('close', close);
    });
  }

  async listen() {
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  cut() {
    this.up = false;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /// Drops every connection and answers new ones with 502.
  fail() {
    this.cut();
    this.failing = true;
  }

  restore() { this.up = true; this.failing = false; }

  close() { this.cut(); this.server.close(); }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Retries `check` (which throws while the condition is false) until it passes or `ms` is up.
async function eventually(what, check, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try { return await check(); } catch (e) { last = e; }
    if (Date.now() > deadline) {
      throw new Error(`not within ${ms} ms: ${what}\n  last: ${last && last.message}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const questionTexts = (page) => page.$$eval('#questions > li .text', (els) => els.map((e) => e.textContent));
const question = (page, text) => page.locator('#questions > li', { has: page.locator('.text', { hasText: text }) });
async function votesOf(page, text) {
  return Number(await question(page, text).locator('.count').textContent({ timeout: WAIT_MS }));
}

async function joinBoard(page, url, name, room, asHost = false) {
  await page.goto(`${url}/qa/`);
  await page.fill('#join-name', name);
  await page.fill('#join-room', room);
  if (asHost) await page.check('#join-host');
  await page.click('#join button[type=submit]');
  await page.locator('#board').waitFor({ state: 'visible', timeout: WAIT_MS });
  await connected(page);
}

/// The board's socket is open and the room's state loaded.
async function connected(page) {
  await page.locator('body[data-live="true"]').waitFor({ state: 'attached', timeout: WAIT_MS });
}

async function ask(page, text) {
  await page.fill('#ask-text', text);
  await page.click('#ask button[type=submit]');
}

// ---------------------------------------------------------------------------------------------
// The Q&A board

async function qaBoard(browser, hf) {
  const laptop = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const phone = await browser.newContext({ viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const late = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const ann = await laptop.newPage();
  const bob = await phone.newPage();
  const cy = await late.newPage();
  watch('ann', ann);
  watch('bob', bob);
  watch('cy', cy);

  log('qa: Ann creates the room, Bob joins by name');
  await joinBoard(ann, hf.url, 'Ann', 'All Hands');
  assert.equal(await ann.textContent('#room-name'), 'All Hands');
  assert.ok(await ann.isVisible('#me-host'), 'the creator is a host');
  assert.ok(await ann.isVisible('#edit-room'), 'a host has the pencil');
  await joinBoard(bob, hf.url, 'Bob', 'all hands');
  assert.equal(new URL(bob.url()).searchParams.get('room'), 'all-hands');
  assert.ok(!(await bob.isVisible('#me-host')), 'Bob is not a host');
  assert.ok(!(await bob.isVisible('#edit-room')), 'no pencil for Bob');

  log('qa: ask, and each window sees the other\'s question');
  await ask(ann, 'When does the beta open?');
  await eventually('Bob sees Ann\'s question with one vote', async () => {
    assert.deepEqual(await questionTexts(bob), ['When does the beta open?']);
    assert.equal(await votesOf(bob, 'beta open'), 1);
  });
  await ask(bob, 'Will the slides be shared?');
  await eventually('Ann sees Bob\'s question, below hers (same votes, older first)', async () => {
    assert.deepEqual(await questionTexts(ann), ['When does the beta open?', 'Will the slides be shared?']);
  });
  assert.ok(await question(bob, 'slides').locator('.vote.voted').isVisible(), 'a question starts with its poster\'s vote');

  log('qa: upvote re-orders; a second tap takes the vote back');
  await question(ann, 'slides').locator('.vote').click();
  await eventually('Bob sees the slides question first with 2 votes', async () => {
    assert.deepEqual(await questionTexts(bob), ['Will the slides be shared?', 'When does the beta open?']);
    assert.equal(await votesOf(bob, 'slides'), 2);
  });
  await question(ann, 'slides').locator('.vote').click();
  await eventually('Bob sees Ann\'s vote taken back and the order restored', async () => {
    assert.equal(await votesOf(bob, 'slides'), 1);
    assert.deepEqual(await questionTexts(bob), ['When does the beta open?', 'Will the slides be shared?']);
  });
  await question(ann, 'slides').locator('.vote').click();
  await eventually('Bob sees the vote again', async () => assert.equal(await votesOf(bob, 'slides'), 2));

  log('qa: only the host answers and deletes');
  assert.ok(!(await question(bob, 'slides').locator('.answer-btn').isVisible()), 'Bob has no Answer button');
  assert.ok(!(await question(bob, 'slides').locator('.delete-btn').isVisible()), 'Bob has no Delete button');
  await question(ann, 'slides').locator('.answer-btn').click();
  await question(ann, 'slides').locator('.answer-form textarea').fill('Yes, right after the talk.');
  await question(ann, 'slides').locator('.answer-form button').click();
  await eventually('Bob sees the answer under the question', async () => {
    const a = question(bob, 'slides').locator('.answer');
    assert.equal(await a.locator('.answer-text').textContent(), 'Yes, right after the talk.');
    assert.equal(await a.locator('.label').textContent(), 'Answer from Ann');
  });
  await ask(bob, 'Is there a recording?');
  await ask(ann, 'Any questions about the roadmap?');
  await eventually('Ann sees four questions', async () => assert.equal((await questionTexts(ann)).length, 4));
  await question(ann, 'beta open').locator('.delete-btn').click();
  await eventually('the deleted question is gone for Bob', async () => {
    assert.deepEqual(await questionTexts(bob), ['Will the slides be shared?', 'Is there a recording?', 'Any questions about the roadmap?']);
  });

  log('qa: the host renames the room and changes its theme');
  await ann.click('#edit-room');
  await ann.fill('#room-input', 'All Hands · November');
  await ann.click('#swatches span[data-theme="rose"]');
  await ann.click('#room-save');
  await eventually('Bob sees the new name and colour', async () => {
    assert.equal(await bob.textContent('#room-name'), 'All Hands · November');
    assert.equal(await bob.getAttribute('body', 'data-theme'), 'rose');
    const bar = await bob.$eval('.bar', (e) => getComputedStyle(e).backgroundColor);
    assert.equal(bar, 'rgb(209, 52, 107)');
  });

  log('qa: Bob changes his name; his questions show it everywhere');
  await bob.click('#me-button');
  await bob.click('#rename-open');
  await bob.fill('#rename-input', 'Robert');
  await bob.click('#rename-save');
  await eventually('Ann sees Robert as the author', async () => {
    const meta = await question(ann, 'recording').locator('.meta').textContent();
    assert.match(meta, /^Robert · /);
  });
  await eventually('Bob\'s own menu shows the new name', async () => assert.equal(await bob.textContent('#me-name'), 'Robert'));

  log('qa: a late joiner sees the current state; Bob reloads');
  await joinBoard(cy, hf.url, 'Cy', 'All Hands');
  assert.deepEqual(await questionTexts(cy), ['Will the slides be shared?', 'Is there a recording?', 'Any questions about the roadmap?']);
  assert.equal(await cy.textContent('#room-name'), 'All Hands · November');
  assert.equal(await cy.getAttribute('body', 'data-theme'), 'rose');
  assert.equal(await question(cy, 'slides').locator('.answer-text').textContent(), 'Yes, right after the talk.');
  await question(cy, 'roadmap').locator('.vote').click();
  await question(cy, 'recording').locator('.vote').click();
  await eventually('Ann and Bob see Cy\'s votes re-order the list', async () => {
    for (const p of [ann, bob]) {
      assert.deepEqual(await questionTexts(p), ['Will the slides be shared?', 'Is there a recording?', 'Any questions about the roadmap?']);
      assert.equal(await votesOf(p, 'recording'), 2);
      assert.equal(await votesOf(p, 'roadmap'), 2);
    }
  });
  await bob.reload();
  await connected(bob);
  await eventually('Bob sees the state after a reload', async () => {
    assert.deepEqual(await questionTexts(bob), ['Will the slides be shared?', 'Is there a recording?', 'Any questions about the roadmap?']);
    assert.equal(await bob.textContent('#me-name'), 'Robert');
    assert.ok(await question(bob, 'recording').locator('.vote.voted').isVisible(), 'Bob\'s own vote is remembered');
  });

  fs.mkdirSync(OUT, { recursive: true });
  const shot = path.join(OUT, 'board.png');
  const phoneShot = path.join(OUT, 'board-phone.png');
  await ann.screenshot({ path: shot });
  await bob.screenshot({ path: phoneShot });
  log(`qa: screenshots ${shot} (host, laptop) and ${phoneShot} (participant, phone)`);

  log('qa: the demo restarts; the windows reconnect and the state is still there');
  await hf.stop();
  await eventually('Ann\'s page notices the lost connection', async () => assert.match(await ann.textContent('#status'), /reconnecting/));
  await hf.start();
  await eventually('Ann\'s page reconnects', async () => assert.equal(await ann.textContent('#status'), 'Live'), 15000);
  await eventually('Bob\'s page reconnects', async () => assert.equal(await bob.textContent('#status'), 'Live'), 15000);
  await ask(ann, 'Does this survive a restart?');
  await eventually('Bob sees a question asked after the restart', async () => {
    assert.deepEqual(await questionTexts(bob), ['Will the slides be shared?', 'Is there a recording?', 'Any questions about the roadmap?', 'Does this survive a restart?']);
  }, 10000);
  await cy.reload();
  await connected(cy);
  await eventually('Cy reloads after the restart and sees everything', async () => {
    assert.equal((await questionTexts(cy)).length, 4);
    assert.equal(await cy.textContent('#room-name'), 'All Hands · November');
  });
  await Promise.all([laptop.close(), phone.close(), late.close()]);
}

// ---------------------------------------------------------------------------------------------
// The chat

const messageIds = (page) => page.$$eval('#messages > li', (els) => els.map((e) => Number(e.dataset.id)));
const messageTexts = (page) => page.$$eval('#messages > li .what', (els) => els.map((e) => e.textContent));

async function joinChat(page, url, name, room) {
  await page.goto(`${url}/chat/`);
  await page.fill('#join-name', name);
  await page.fill('#join-room', room);
  await page.click('#join button[type=submit]');
  await eventually(`${name}'s stream is live`, async () => assert.equal(await page.textContent('#status'), 'live'));
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.click('#send button[type=submit]');
}

async function chatWithReconnect(browser, hf) {
  const link = await new Link(hf.port).listen();
  const ctxA = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const ctxB = await browser.newContext({ viewport: { width: 390, height: 700 }, isMobile: true });
  const dee = await ctxA.newPage();
  const eve = await ctxB.newPage();
  watch('dee', dee);
  watch('eve', eve);

  log('chat: two windows in one room (Eve through a link the test can cut)');
  await joinChat(dee, hf.url, 'Dee', 'Lobby');
  await joinChat(eve, link.url, 'Eve', 'lobby');
  await say(dee, 'hi Eve');
  await eventually('Eve gets Dee\'s message', async () => assert.deepEqual(await messageTexts(eve), ['hi Eve']));
  await say(eve, 'hi Dee');
  await eventually('Dee gets Eve\'s message', async () => assert.deepEqual(await messageTexts(dee), ['hi Eve', 'hi Dee']));
  assert.ok(await eve.locator('#messages > li.mine', { hasText: 'hi Dee' }).isVisible(), 'own messages are marked');

  log('chat: Eve\'s connection is cut; Dee keeps talking');
  link.cut();
  await eventually('Eve\'s page shows it is reconnecting', async () => assert.equal(await eve.textContent('#status'), 'reconnecting…'));
  for (const t of ['one', 'two', 'three']) await say(dee, `while you were away: ${t}`);
  await eventually('Dee sees her messages', async () => assert.equal((await messageIds(dee)).length, 5));
  await new Promise((r) => setTimeout(r, 1500)); // at least one refused reconnect attempt
  assert.deepEqual(await messageIds(eve), [1, 2], 'nothing reaches Eve while cut off');

  log('chat: the link comes back; the browser resumes with Last-Event-ID');
  link.restore();
  await eventually('Eve gets exactly the missed messages, in order, once', async () => {
    assert.deepEqual(await messageIds(eve), [1, 2, 3, 4, 5]);
    assert.equal(await eve.textContent('#status'), 'live');
  }, 10000);
  const resumes = link.requests.filter((h) => h.startsWith('GET /rooms/lobby/events/'));
  assert.ok(resumes.some((h) => /\r\nlast-event-id: 2\r\n/i.test(h)), `a reconnect carried Last-Event-ID: 2:\n${resumes.join('\n---\n')}`);
  await say(eve, 'back!');
  await eventually('both windows agree after the reconnect', async () => {
    assert.deepEqual(await messageIds(dee), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(await messageIds(eve), [1, 2, 3, 4, 5, 6]);
  });
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(await messageIds(eve), [1, 2, 3, 4, 5, 6], 'no duplicates arrived late');

  log('chat: Eve\'s connection drops and the reconnect gets 502: the page starts a new stream');
  link.fail();
  await eventually('Eve\'s page shows it is reconnecting', async () => assert.equal(await eve.textContent('#status'), 'reconnecting…'));
  await say(dee, 'seven');
  await say(dee, 'eight');
  await eventually('Dee sees her messages', async () => assert.equal((await messageIds(dee)).length, 8));
  await new Promise((r) => setTimeout(r, 1000));
  link.restore();
  await eventually('Eve gets the two missed messages once', async () => {
    assert.deepEqual(await messageIds(eve), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(await eve.textContent('#status'), 'live');
  }, 10000);
  const restarts = link.requests.filter((h) => h.startsWith('GET /rooms/lobby/events/?lastEventId=6 '));
  assert.ok(restarts.length > 0, 'the new stream said where the page was');
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(await messageIds(eve), [1, 2, 3, 4, 5, 6, 7, 8], 'no duplicates arrived late');

  await eve.reload();
  await eventually('a reload shows the history', async () => assert.deepEqual(await messageIds(eve), [1, 2, 3, 4, 5, 6, 7, 8]));
  const shot = path.join(OUT, 'chat.png');
  await dee.screenshot({ path: shot });
  log(`chat: screenshot ${shot}`);
  link.close();
  await Promise.all([ctxA.close(), ctxB.close()]);
}

// ---------------------------------------------------------------------------------------------
// The board's header on a phone, with the longest names the forms take in practice

/// Whether two boxes overlap (touching edges do not count).
const overlaps = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;

async function phoneHeader(browser, hf) {
  const room = 'Engineering all-hands, December';
  const name = 'Alexandra Konstant'; // 18 characters
  for (const width of [320, 390]) {
    const ctx = await browser.newContext({ viewport: { width, height: 700 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const page = await ctx.newPage();
    watch(`phone-${width}`, page);
    log(`header: the board at ${width} px with a long room name and display name`);
    await joinBoard(page, hf.url, name, room, true);
    assert.equal(await page.textContent('#room-name'), room);
    const boxes = await page.evaluate(() => ['#room-name', '#edit-room', '#me-button'].map((sel) => {
      const r = document.querySelector(sel).getBoundingClientRect();
      return { sel, left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width };
    }));
    for (const b of boxes) {
      assert.ok(b.width > 0, `${b.sel} is drawn at ${width} px`);
      assert.ok(b.left >= 0 && b.right <= width + 0.5, `${b.sel} is inside the ${width} px screen: ${JSON.stringify(b)}`);
    }
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        assert.ok(!overlaps(boxes[i], boxes[j]), `${boxes[i].sel} and ${boxes[j].sel} overlap at ${width} px: ${JSON.stringify(boxes)}`);
      }
    }
    const title = await page.$eval('#room-name', (e) => ({ shown: e.clientWidth, full: e.scrollWidth, ellipsis: getComputedStyle(e).textOverflow }));
    assert.ok(title.shown >= 60, `some of the title shows: ${JSON.stringify(title)}`);
    assert.ok(title.full <= title.shown || title.ellipsis === 'ellipsis', 'a cut title ends in an ellipsis');
    // Every control still works.
    await page.click('#me-button');
    assert.ok(await page.isVisible('#rename-open'), `the name menu opens at ${width} px`);
    await page.click('#me-button');
    await page.click('#edit-room');
    assert.ok(await page.isVisible('#room-dialog'), `the room editor opens at ${width} px`);
    await page.click('#room-dialog button[value=cancel]');
    const shot = path.join(OUT, `board-phone-${width}.png`);
    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: shot });
    log(`header: screenshot ${shot}`);
    await ctx.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The chat as a newcomer sees it

/// The newest message is on screen: below the bar and above the message box.
async function newestInView(page) {
  return page.evaluate(() => {
    const items = document.querySelectorAll('#messages > li');
    const last = items[items.length - 1];
    if (!last) return false;
    const r = last.getBoundingClientRect();
    const bar = document.querySelector('.bar').getBoundingClientRect();
    const box = document.querySelector('#send').getBoundingClientRect();
    return r.height > 0 && r.top >= bar.bottom - 1 && r.bottom <= box.top + 1;
  });
}

const scrollTop = (page) => page.$eval('#chat', (s) => s.scrollTop);

async function chatAsANewcomerSeesIt(browser, hf) {
  const link = await new Link(hf.port).listen();
  const laptop = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const phone = await browser.newContext({ viewport: { width: 390, height: 700 }, isMobile: true });
  const fay = await laptop.newPage();
  const gus = await phone.newPage();
  watch('fay', fay);
  watch('gus', gus);

  log('chat: 30 messages; both windows follow the newest one');
  await joinChat(fay, hf.url, 'Fay', 'Long Talk');
  await joinChat(gus, link.url, 'Gus', 'long talk');
  for (let i = 1; i <= 30; i++) await say(fay, `message ${i} of a long conversation`);
  await eventually('both windows have the 30 messages', async () => {
    for (const p of [fay, gus]) assert.equal((await messageIds(p)).length, 30);
  }, 10000);
  await eventually('the newest message is in view in the sender\'s and the other window', async () => {
    assert.ok(await newestInView(fay), 'Fay (laptop) sees her newest message');
    assert.ok(await newestInView(gus), 'Gus (phone) sees the newest message');
  });

  log('chat: a reader who scrolled up is not yanked down; a hint says there is more');
  await gus.$eval('#chat', (s) => { s.scrollTop = 0; });
  await say(fay, 'are you reading the history?');
  await eventually('Gus gets the message', async () => assert.equal((await messageIds(gus)).length, 31));
  assert.ok((await scrollTop(gus)) < 5, 'Gus stays where he was reading');
  assert.ok(await gus.isVisible('#new-hint'), 'the "new messages" hint shows');
  await gus.click('#new-hint');
  await eventually('the hint takes Gus to the newest message', async () => {
    assert.ok(await newestInView(gus));
    assert.ok(!(await gus.isVisible('#new-hint')));
  });

  log('chat: a reconnect lands at the newest message');
  await gus.$eval('#chat', (s) => { s.scrollTop = 0; });
  link.cut();
  await eventually('Gus\'s page shows it is reconnecting', async () => assert.equal(await gus.textContent('#status'), 'reconnecting…'));
  assert.equal(await gus.getAttribute('#status', 'data-state'), 'wait');
  await say(fay, 'missed one');
  await say(fay, 'missed two');
  await new Promise((r) => setTimeout(r, 1200));
  link.restore();
  await eventually('Gus is back, with the newest message in view', async () => {
    assert.equal((await messageIds(gus)).length, 33);
    assert.equal(await gus.textContent('#status'), 'live');
    assert.ok(await newestInView(gus));
  }, 10000);
  const status = await gus.$eval('#status', (e) => ({ px: parseFloat(getComputedStyle(e).fontSize), w: e.getBoundingClientRect().width }));
  assert.ok(status.px >= 12 && status.w >= 40, `the connection status is noticeable: ${JSON.stringify(status)}`);

  log('chat: a newcomer joins a room with history and lands at the newest message');
  const late = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const hal = await late.newPage();
  watch('hal', hal);
  await joinChat(hal, hf.url, 'Hal', 'long talk');
  await eventually('Hal sees the history, scrolled to the newest message', async () => {
    assert.equal((await messageIds(hal)).length, 33);
    assert.ok(await newestInView(hal));
  });

  log('chat: 20 messages typed 30 ms apart arrive in the order typed, in every window');
  for (let i = 0; i < 20; i++) {
    await fay.fill('#text', `fast ${i}`);
    await fay.press('#text', 'Enter');
    await new Promise((r) => setTimeout(r, 30));
  }
  const typed = [...Array(20).keys()].map((i) => `fast ${i}`);
  await eventually('every window shows the 20 in typing order, once', async () => {
    for (const p of [fay, gus, hal]) {
      assert.deepEqual((await messageTexts(p)).filter((t) => t.startsWith('fast ')), typed);
    }
    assert.equal(await fay.$$eval('#pending > li', (els) => els.length), 0, 'nothing left pending');
  }, 15000);
  for (const p of [fay, gus, hal]) assert.ok(await newestInView(p), 'still at the newest message');

  log('chat: a send that fails is shown and retried, in order, not lost');
  link.fail();
  await say(gus, 'sent while offline');
  await say(gus, 'and another');
  await eventually('Gus sees his first message marked as not sent', async () => {
    assert.ok(await gus.isVisible('#pending > li.failed'), 'a failed send is shown');
    assert.match(await gus.textContent('#pending > li.failed .who'), /not sent/);
  });
  assert.deepEqual((await messageTexts(fay)).slice(-2), ['fast 18', 'fast 19'], 'nothing reached Fay yet');
  link.restore();
  await eventually('the retried messages reach Fay once, in order', async () => {
    assert.deepEqual((await messageTexts(fay)).slice(-2), ['sent while offline', 'and another']);
    assert.deepEqual((await messageTexts(gus)).slice(-2), ['sent while offline', 'and another']);
    assert.equal(await gus.$$eval('#pending > li', (els) => els.length), 0);
  }, 15000);
  await new Promise((r) => setTimeout(r, 500));
  const all = await messageTexts(fay);
  assert.equal(all.filter((t) => t === 'sent while offline').length, 1, 'stored once despite the retries');

  const shot = path.join(OUT, 'chat-long.png');
  const phoneShot = path.join(OUT, 'chat-long-phone.png');
  await fay.screenshot({ path: shot });
  await gus.screenshot({ path: phoneShot });
  log(`chat: screenshots ${shot} (laptop) and ${phoneShot} (phone)`);
  link.close();
  await Promise.all([laptop.close(), phone.close(), late.close()]);
}

// ---------------------------------------------------------------------------------------------

const pages = [];
/// Every 404 any page got (the favicon included): there must be none.
const notFound = [];

/// Keeps a page for failure screenshots and records its 404s.
function watch(name, page) {
  pages.push([name, page]);
  page.on('response', (r) => { if (r.status() === 404) notFound.push(`${name}: ${r.url()}`); });
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-browser-'));
  const hf = await new Holdfast(dir).start();
  log(`holdfast demo on ${hf.url} (${BIN})`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  log(`chromium ${browser.version()}`);
  let failed = false;
  try {
    await qaBoard(browser, hf);
    await phoneHeader(browser, hf);
    await chatWithReconnect(browser, hf);
    await chatAsANewcomerSeesIt(browser, hf);
    assert.deepEqual(notFound, [], 'no page got a 404');
  } catch (e) {
    failed = true;
    console.error(`FAILED: ${e.stack || e}`);
    fs.mkdirSync(OUT, { recursive: true });
    for (const [name, page] of pages) {
      if (page.isClosed()) continue;
      const p = path.join(OUT, `failure-${name}.png`);
      await page.screenshot({ path: p }).catch(() => {});
      console.error(`  screenshot: ${p}`);
    }
    console.error(`holdfast output:\n${hf.output}`);
  } finally {
    await browser.close().catch(() => {});
    await hf.stop().catch((e) => console.error(e.message));
    fs.rmSync(dir, { recursive: true, force: true });
  }
  log(failed ? 'browser tests FAILED' : 'browser tests passed');
  process.exit(failed ? 1 : 0);
}

setTimeout(() => { console.error(`browser tests did not finish within ${RUN_MS / 1000} s`); process.exit(1); }, RUN_MS).unref();
main();
