'use strict';
// Test support: a fresh Postgres database per test file and the peer started on it (PORT=0),
// both torn down by `stop()`. Postgres is `TEST_DATABASE_URL` (default: the local server);
// when it is unreachable the tests skip, unless CHAT_REQUIRE_SERVICES=1 makes that a failure.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const path = require('node:path');
const readline = require('node:readline');
const jwt = require('jsonwebtoken');
const { Client } = require('pg');

const ADMIN_URL = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const SECRET = crypto.randomBytes(32).toString('hex');

async function admin(fn) {
  const client = new Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates a database; `null` when Postgres is unreachable (and that is allowed). */
async function freshDatabase() {
  const name = `socketio_peer_test_${crypto.randomBytes(8).toString('hex')}`;
  try {
    await admin((c) => c.query(`CREATE DATABASE "${name}"`));
  } catch (err) {
    const unreachable = ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET'].includes(err.code);
    // Reached but refused is always a failure; unreachable only when services are required.
    if (!unreachable || process.env.CHAT_REQUIRE_SERVICES === '1') throw err;
    console.error(`skipped: Postgres is unreachable (${err.code}); set CHAT_REQUIRE_SERVICES=1 to fail`);
    return null;
  }
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return { name, url: url.toString() };
}

/** Starts the peer on a fresh database; resolves once it printed `listening <port>`. */
async function startPeer(extraEnv = {}) {
  const db = await freshDatabase();
  if (!db) return null;
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'server.js')], {
    env: { ...process.env, PORT: '0', DATABASE_URL: db.url, JWT_SECRET: SECRET, ...extraEnv },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = /^listening (\d+)$/.exec(line);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`the peer exited with ${code} before listening`)));
  });
  const pool = new Client({ connectionString: db.url });
  await pool.connect();
  return {
    port,
    db: pool,
    async stop() {
      await pool.end();
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      await admin((c) => c.query(`DROP DATABASE IF EXISTS "${db.name}" WITH (FORCE)`));
    },
  };
}

/** An access token for `userId`, signed like the server expects (or with `secret`). */
function token(userId, secret = SECRET) {
  return jwt.sign({ sub: userId }, secret, { algorithm: 'HS256', expiresIn: '1h' });
}

module.exports = { startPeer, token };
