'use strict';
// The peer spoken to in raw Engine.IO v4 / Socket.IO v5 frames over a plain WebSocket, as the
// Rust load generator does: this pins down every frame README.md documents.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const WebSocket = require('ws');
const { startPeer, token } = require('./helpers');

const PING_INTERVAL_MS = 200;
let peer;
const sockets = [];

before(async () => {
  // A short ping interval, so that the ping/pong exchange is seen without a long wait.
  peer = await startPeer({ PING_INTERVAL_MS: String(PING_INTERVAL_MS) });
});

after(async () => {
  for (const ws of sockets) ws.terminate();
  if (peer) await peer.stop();
});

/** A raw socket with a queue of incoming text frames; pings are answered unless `manualPong`. */
async function open({ manualPong = false } = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${peer.port}/socket.io/?EIO=4&transport=websocket`);
  sockets.push(ws);
  const queue = [];
  const waiters = [];
  ws.on('message', (data) => {
    const frame = data.toString();
    if (frame === '2' && !manualPong) return ws.send('3');
    const waiter = waiters.shift();
    return waiter ? waiter(frame) : queue.push(frame);
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const next = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)));
  return { ws, next, send: (frame) => ws.send(frame) };
}

/** Opens and authenticates: returns the socket after the server's `40{"sid":…}`. */
async function connect(userId) {
  const s = await open();
  assert.match(await s.next(), /^0\{/);
  s.send(`40${JSON.stringify({ token: token(userId) })}`);
  assert.match(await s.next(), /^40\{"sid":"[^"]+"\}$/);
  return s;
}

/** `42<ackId>["event", payload]` → the payload of `43<ackId>[…]`. */
async function call(s, ackId, event, payload) {
  s.send(`42${ackId}${JSON.stringify([event, payload])}`);
  const frame = await s.next();
  assert.ok(frame.startsWith(`43${ackId}[`), `expected an ack ${ackId}, got ${frame}`);
  return JSON.parse(frame.slice(`43${ackId}`.length))[0];
}

function event(frame) {
  assert.ok(frame.startsWith('42['), `expected an event, got ${frame}`);
  return JSON.parse(frame.slice(2));
}

test('the open packet states the session and the heartbeat', async (t) => {
  if (!peer) return t.skip('Postgres is unreachable');
  const s = await open();
  const frame = await s.next();
  assert.equal(frame[0], '0');
  const handshake = JSON.parse(frame.slice(1));
  assert.equal(typeof handshake.sid, 'string');
  assert.deepEqual(handshake.upgrades, []);
  assert.equal(handshake.pingInterval, PING_INTERVAL_MS);
  assert.equal(typeof handshake.pingTimeout, 'number');
  assert.equal(typeof handshake.maxPayload, 'number');
});

test('a CONNECT without a valid token gets a CONNECT_ERROR', async (t) => {
  if (!peer) return t.skip('Postgres is unreachable');
  for (const connectFrame of ['40', '40{}', `40${JSON.stringify({ token: token('ada', 'wrong secret') })}`]) {
    const s = await open();
    assert.match(await s.next(), /^0\{/);
    s.send(connectFrame);
    assert.equal(await s.next(), '44{"message":"unauthorized"}', connectFrame);
  }
});

test('join, send, broadcast and acks in raw frames', async (t) => {
  if (!peer) return t.skip('Postgres is unreachable');
  const ada = await connect('ada');
  const bob = await connect('bob');
  const cyd = await connect('cyd');
  assert.deepEqual(await call(ada, 0, 'join_conversation', { conversationId: 'general' }), { ok: true });
  assert.deepEqual(await call(bob, 0, 'join_conversation', { conversationId: 'general' }), { ok: true });
  assert.deepEqual(await call(cyd, 0, 'join_conversation', { conversationId: 'random' }), { ok: true });

  ada.send(`421${JSON.stringify(['send_message', { conversationId: 'general', content: 'hello' }])}`);
  // The sender is in the room: its broadcast comes first, then its ack.
  const [name, message] = event(await ada.next());
  assert.equal(name, 'message:new');
  const ack = await ada.next();
  assert.equal(ack, `431${JSON.stringify([{ id: message.id }])}`);
  assert.deepEqual(Object.keys(message).sort(), ['content', 'conversationId', 'createdAt', 'id', 'senderId']);
  assert.equal(message.senderId, 'ada');
  assert.deepEqual(event(await bob.next()), ['message:new', message]);

  // Cyd's first frame is the broadcast of her own send: nothing from `general` came before it.
  cyd.send(`421${JSON.stringify(['send_message', { conversationId: 'random', content: 'elsewhere' }])}`);
  const [, own] = event(await cyd.next());
  assert.deepEqual([own.conversationId, own.senderId, own.content], ['random', 'cyd', 'elsewhere']);
  assert.equal(await cyd.next(), `431${JSON.stringify([{ id: own.id }])}`);

  const { rows } = await peer.db.query('SELECT id, sender_id, content FROM messages WHERE id = ANY($1) ORDER BY content', [
    [message.id, own.id],
  ]);
  assert.deepEqual(rows, [
    { id: own.id, sender_id: 'cyd', content: 'elsewhere' },
    { id: message.id, sender_id: 'ada', content: 'hello' },
  ]);

  assert.deepEqual(await call(ada, 2, 'send_message', { content: 'no conversation' }), {
    error: 'conversationId is required',
  });
});

test('the server pings with 2 and a client that answers 3 stays connected', async (t) => {
  if (!peer) return t.skip('Postgres is unreachable');
  const s = await open({ manualPong: true });
  assert.match(await s.next(), /^0\{/);
  s.send(`40${JSON.stringify({ token: token('eve') })}`);
  assert.match(await s.next(), /^40\{/);
  for (let i = 0; i < 3; i += 1) {
    assert.equal(await s.next(), '2');
    s.send('3');
  }
  assert.deepEqual(await call(s, 7, 'join_conversation', { conversationId: 'general' }), { ok: true });
});
