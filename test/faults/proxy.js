#!/usr/bin/env node
// A fault-injecting TCP proxy on loopback for the fault suite: it stands
// between libesp and the mock server and breaks connections on command
// (stall, slow bandwidth, cuts and resets on either side, at any phase).
//
//   node proxy.js --target PORT      prints {"port":N} once listening
//
// Commands arrive one JSON object per line on stdin; each gets one JSON line
// back on stdout:
//   {"mode":"pass"|"stall"|"slow"|"cut_response"|"reset_response"|"cut_request"|
//           "reset_request"|"cut_after_ms"|"reset_after_ms", "after":N, "bps":BYTES_PER_S}
//       how connections accepted from now on behave ("after": response bytes
//       let through before a response-side fault, or the milliseconds after
//       the accept for the *_after_ms ones; "bps": for "slow")
//   {"cmd":"arm_pooled","action":"cut"|"reset"}  open connections pass the
//       next request bytes they carry to the server, then fail (pooled
//       connections cut while idle, noticed only once the client sent on them)
//   {"cmd":"drop_all"}  close every open connection
//   {"cmd":"down"} / {"cmd":"up"}  refuse / accept connections (server down)
//   {"cmd":"stats"}  {"accepted":N,"open":N}
// The proxy exits when stdin closes.
'use strict';
const net = require('net');

const args = process.argv.slice(2);
const targetPort = Number(args[args.indexOf('--target') + 1]);
let mode = { mode: 'pass' };
let accepted = 0;
const open = new Set();
let listening = true;
let port = 0;

function kill(sock, how) {
  if (how === 'reset') sock.resetAndDestroy();
  else sock.destroy();
}

function onConnection(client) {
  if (!listening) return client.resetAndDestroy();
  accepted++;
  const m = { ...mode };
  const conn = { client, upstream: null, armed: null };
  open.add(conn);
  client.setNoDelay(true);
  client.on('error', () => {});
  const done = () => {
    open.delete(conn);
    client.destroy();
    if (conn.upstream) conn.upstream.destroy();
  };
  client.on('close', done);
  if (m.mode === 'stall') return;  // accepted, never answered
  if (m.mode === 'cut_after_ms' || m.mode === 'reset_after_ms') {
    const timer = setTimeout(() => kill(client, m.mode === 'reset_after_ms' ? 'reset' : 'cut'), m.after || 0);
    client.on('close', () => clearTimeout(timer));
  }
  if (m.mode === 'cut_request' || m.mode === 'reset_request') {
    client.once('data', () => kill(client, m.mode === 'reset_request' ? 'reset' : 'cut'));
    return;
  }
  const up = net.connect(targetPort, '127.0.0.1');
  conn.upstream = up;
  up.setNoDelay(true);
  up.on('error', () => client.destroy());
  up.on('close', () => client.end());
  client.pause();
  up.on('connect', () => client.resume());
  client.on('data', (d) => {
    up.write(d);
    if (conn.armed) {
      // the request reaches the server first; then the client's connection dies
      const how = conn.armed;
      conn.armed = null;
      conn.doomed = true;  // its response never reaches the client
      setTimeout(() => kill(client, how), 20);
    }
  });
  client.on('end', () => up.end());
  let passed = 0;
  const limit = m.after || 0;
  up.on('data', (d) => {
    if (conn.doomed) return;
    if (m.mode === 'cut_response' || m.mode === 'reset_response') {
      const room = limit - passed;
      if (room > 0) client.write(d.subarray(0, room));
      passed += Math.min(room > 0 ? room : 0, d.length);
      if (d.length >= room) {
        const how = m.mode === 'reset_response' ? 'reset' : 'cut';
        // let the bytes let through leave first
        if (how === 'reset') setImmediate(() => kill(client, how));
        else client.end(() => client.destroy());
        up.destroy();
      }
      return;
    }
    if (m.mode === 'slow') {
      up.pause();
      const bps = m.bps || 1000;
      let off = 0;
      const piece = Math.max(1, Math.floor(bps / 20));
      const drip = () => {
        if (client.destroyed) return;
        client.write(d.subarray(off, off + piece));
        off += piece;
        if (off < d.length) setTimeout(drip, 50);
        else up.resume();
      };
      return drip();
    }
    client.write(d);
  });
}

const server = net.createServer({ pauseOnConnect: false }, onConnection);

function reply(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

function command(line) {
  let c;
  try { c = JSON.parse(line); } catch (e) { return reply({ error: 'bad json' }); }
  if (c.mode) { mode = c; return reply({ ok: true }); }
  switch (c.cmd) {
    case 'arm_pooled':
      for (const conn of open) conn.armed = c.action === 'reset' ? 'reset' : 'cut';
      return reply({ ok: true, armed: open.size });
    case 'down':
      listening = false;
      for (const conn of open) conn.client.resetAndDestroy();
      return server.close(() => reply({ ok: true }));
    case 'up':
      listening = true;
      return server.listen(port, '127.0.0.1', () => reply({ ok: true }));
    case 'drop_all':
      for (const conn of open) conn.client.destroy();
      return reply({ ok: true });
    case 'stats':
      return reply({ accepted, open: open.size });
    default:
      return reply({ error: 'unknown command' });
  }
}

server.listen(0, '127.0.0.1', () => {
  port = server.address().port;
  reply({ port });
  let buf = '';
  process.stdin.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) command(line);
    }
  });
  process.stdin.on('end', () => process.exit(0));
});
