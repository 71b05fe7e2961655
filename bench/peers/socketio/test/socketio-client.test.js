'use strict';
// The peer through the official client: auth, rooms, insert-then-broadcast, acks.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { io } = require('socket.io-client');
const { startPeer, token } = require('./helpers');

let peer;
const sockets = [];

before(async () => {
  peer = await startPeer();
});

after(async () => {
  for (const s of sockets) s.close();
  if (peer) await peer.stop();
});

function connect(auth) {
  const socket = io(`http://127.0.0.1:${peer.port}`, {
    transports: ['websocket'],
    auth,
    reconnection: false,
    forceNew: true,
  });
  sockets.push(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

/** Resolves with the next `message:new` the socket receives. */
function nextMessage(socket) {
  return new Promise((resolve) => socket.once('message:new', resolve));
}

test('a connection without a valid token is refused', async (t) => {
  if (!peer) return t.skip('Postgres is unreachable');
  await assert.rejects(connect({}), { message: 'unauthorized' });
  await assert.rejects(connect({ token: token('ada', 'another secret') }), { message: 'unauthorized' });
  await assert.rejects(connect({ token: 'not a jwt' }), { message: 'unauthorized' });
});

test('a message is stored, then reaches every socket of its conversation and no other', async (t) => {
  if (!peer) return t.skip('Postgres is unreachable');
  const ada = await connect({ token: token('ada') });
  const bob = await connect({ token: token('bob') });
  const cyd = await connect({ token: token('cyd') });
  assert.deepEqual(await ada.emitWithAck('join_conversation', { conversationId: 'general' }), { ok: true });
  assert.deepEqual(await bob.emitWithAck('join_conversation', { conversationId: 'general' }), { ok: true });
  assert.deepEqual(await cyd.emitWithAck('join_conversation', { conversationId: 'random' }), { ok: true });

  const toAda = nextMessage(ada);
  const toBob = nextMessage(bob);
  const toCyd = nextMessage(cyd);
  const ack = await ada.emitWithAck('send_message', { conversationId: 'general', content: 'hello' });
  assert.match(ack.id, /^[0-9a-f-]{36}$/);
  for (const received of [await toAda, await toBob]) {
    assert.equal(received.id, ack.id);
    assert.equal(received.conversationId, 'general');
    assert.equal(received.senderId, 'ada');
    assert.equal(received.content, 'hello');
    assert.ok(!Number.isNaN(Date.parse(received.createdAt)));
  }
  // Cyd's first message is her own: the one in `general` never reached her.
  const own = await cyd.emitWithAck('send_message', { conversationId: 'random', content: 'elsewhere' });
  assert.equal((await toCyd).id, own.id);

  const { rows } = await peer.db.query(
    'SELECT id, conversation_id, sender_id, content FROM messages ORDER BY created_at, id',
  );
  const byId = Object.fromEntries(rows.map((r) => [r.id, r]));
  assert.deepEqual(byId[ack.id], { id: ack.id, conversation_id: 'general', sender_id: 'ada', content: 'hello' });
  assert.deepEqual(byId[own.id], { id: own.id, conversation_id: 'random', sender_id: 'cyd', content: 'elsewhere' });
});

test('a malformed send is acknowledged with an error and stores nothing', async (t) => {
  if (!peer) return t.skip('Postgres is unreachable');
  const dan = await connect({ token: token('dan') });
  const before = (await peer.db.query('SELECT count(*)::int AS n FROM messages')).rows[0].n;
  assert.ok((await dan.emitWithAck('send_message', { content: 'no conversation' })).error);
  assert.ok((await dan.emitWithAck('send_message', { conversationId: 'general', content: 42 })).error);
  assert.ok((await dan.emitWithAck('join_conversation', {})).error);
  const afterwards = (await peer.db.query('SELECT count(*)::int AS n FROM messages')).rows[0].n;
  assert.equal(afterwards, before);
});
