'use strict';
// The seed's own stack, as a benchmark peer: a Socket.IO v4 server that authenticates each
// connection with an HS256 JWT, keeps a room per conversation, inserts every message into
// Postgres with one `INSERT … RETURNING` through a `pg.Pool`, then broadcasts it to the room
// and acknowledges the sender. Nothing is cached, batched or skipped: this is what a
// straightforward Node implementation of the seed's job costs. See README.md for the contract
// and the raw Engine.IO frames a non-JS client exchanges with it.
//
// Environment: PORT (0 = any free port), DATABASE_URL (postgres://…), JWT_SECRET.
// Optional, for tests only: PING_INTERVAL_MS (Socket.IO's default, 25000, when unset).
// Prints `listening <port>` on stdout once it accepts connections.

const http = require('node:http');
const jwt = require('jsonwebtoken');
const { Pool } = require('pg');
const { Server } = require('socket.io');

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS messages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  conversation_id text NOT NULL,
  sender_id text NOT NULL,
  content text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)`;

const INSERT_MESSAGE = `INSERT INTO messages (conversation_id, sender_id, content)
VALUES ($1, $2, $3) RETURNING id, created_at`;

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} must be set`);
    process.exit(2);
  }
  return value;
}

function reply(ack, payload) {
  if (typeof ack === 'function') ack(payload);
}

function isId(value) {
  return typeof value === 'string' && value.length > 0;
}

async function main() {
  const port = Number(process.env.PORT ?? '0');
  const databaseUrl = required('DATABASE_URL');
  const secret = required('JWT_SECRET');

  const pool = new Pool({ connectionString: databaseUrl, max: 16 });
  // An idle client's error (server restart…) must not crash the process.
  pool.on('error', (err) => console.error(`pg pool: ${err.message}`));
  await pool.query(CREATE_TABLE);

  const httpServer = http.createServer();
  const options = { transports: ['websocket'], perMessageDeflate: false, serveClient: false };
  if (process.env.PING_INTERVAL_MS) options.pingInterval = Number(process.env.PING_INTERVAL_MS);
  const io = new Server(httpServer, options);

  // JWT on connect: `auth: {token}` of the CONNECT packet, HS256 only, `sub` = the user id.
  io.use((socket, next) => {
    const token = socket.handshake.auth && socket.handshake.auth.token;
    if (typeof token !== 'string') return next(new Error('unauthorized'));
    try {
      const claims = jwt.verify(token, secret, { algorithms: ['HS256'] });
      if (!isId(claims.sub)) return next(new Error('unauthorized'));
      socket.data.userId = claims.sub;
      return next();
    } catch {
      return next(new Error('unauthorized'));
    }
  });

  io.on('connection', (socket) => {
    socket.on('join_conversation', (payload, ack) => {
      const conversationId = payload && payload.conversationId;
      if (!isId(conversationId)) return reply(ack, { error: 'conversationId is required' });
      socket.join(conversationId);
      return reply(ack, { ok: true });
    });

    socket.on('send_message', async (payload, ack) => {
      const conversationId = payload && payload.conversationId;
      const content = payload && payload.content;
      if (!isId(conversationId)) return reply(ack, { error: 'conversationId is required' });
      if (typeof content !== 'string') return reply(ack, { error: 'content must be a string' });
      const senderId = socket.data.userId;
      let row;
      try {
        ({ rows: [row] } = await pool.query(INSERT_MESSAGE, [conversationId, senderId, content]));
      } catch (err) {
        console.error(`insert failed: ${err.message}`);
        return reply(ack, { error: 'internal error' });
      }
      io.to(conversationId).emit('message:new', {
        id: row.id,
        conversationId,
        senderId,
        content,
        createdAt: row.created_at.toISOString(),
      });
      return reply(ack, { id: row.id });
    });
  });

  const shutdown = () => {
    io.close();
    pool.end().finally(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  httpServer.listen(port, () => {
    console.log(`listening ${httpServer.address().port}`);
  });
}

main().catch((err) => {
  console.error(`socket.io peer failed to start: ${err.message}`);
  process.exit(1);
});
