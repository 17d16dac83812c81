// A real HTTP/2 client (Node's built-in http2) for t/64http2-floods.t.
//
//   node h2flood.js rapid-reset URL N     N requests, each cancelled at once
//                                         (RST_STREAM CANCEL), as the
//                                         CVE-2023-44487 attack does
//   node h2flood.js multiplex URL N       N GETs of URL on one connection
//
// Prints one JSON line: what the client saw.  Every wait has a deadline
// (DEADLINE_MS); the process exits however the session ends.
'use strict';
const http2 = require('http2');

const [mode, url, nArg] = process.argv.slice(2);
const N = parseInt(nArg || '100', 10);
const DEADLINE_MS = 15000;
const out = { mode, sent: 0, reset_sent: 0, goaway: null, goaway_last: null, error: null,
  closed: false, statuses: {}, bodies: 0, ms: 0 };
const t0 = Date.now();
let finished = false;

function finish() {
  if (finished) return;
  finished = true;
  out.ms = Date.now() - t0;
  process.stdout.write(JSON.stringify(out) + '\n');
  try { client.destroy(); } catch (e) { /* gone already */ }
  process.exit(0);
}

const timer = setTimeout(() => { out.error = out.error || 'deadline'; finish(); }, DEADLINE_MS);
timer.unref();

const client = http2.connect(url);
client.on('error', (e) => { out.error = String(e.code || e.message); });
client.on('goaway', (code, last) => { out.goaway = code; out.goaway_last = last; });
client.on('close', () => { out.closed = true; if (mode === 'rapid-reset') finish(); });

function rapidReset() {
  // Batches: a request and its reset written in the same tick may never
  // leave the client (its nghttp2 drops the HEADERS of a stream reset
  // before it was sent), so each batch of HEADERS goes out first and is
  // cancelled on the next turn of the loop.
  const BATCH = 50;
  function batch() {
    if (client.destroyed || client.closed || out.goaway !== null) {
      // The server said stop: wait (bounded) for it to close.
      setTimeout(finish, 3000).unref();
      return;
    }
    if (out.sent >= N) {
      // All sent and the server still talks: see if it answers a ping.
      client.ping((err) => { out.error = out.error || (err ? String(err.code) : null);
        setTimeout(finish, 200).unref(); });
      return;
    }
    const reqs = [];
    for (let i = 0; i < BATCH && out.sent < N; i++) {
      let req;
      try {
        req = client.request({ ':path': '/small.txt' });
      } catch (e) {
        out.error = String(e.code || e.message);
        setTimeout(finish, 3000).unref();
        return;
      }
      req.on('error', () => {});
      req.on('response', () => {});
      req.resume();
      out.sent++;
      reqs.push(req);
    }
    setImmediate(() => {
      for (const req of reqs) {
        if (!req.destroyed) { req.close(http2.constants.NGHTTP2_CANCEL); out.reset_sent++; }
      }
      setImmediate(batch);
    });
  }
  batch();
}

function multiplex() {
  let done = 0;
  for (let i = 0; i < N; i++) {
    const req = client.request({ ':path': new URL(url).pathname });
    out.sent++;
    let status = 0;
    const chunks = [];
    req.on('response', (h) => { status = h[':status']; });
    req.on('data', (d) => chunks.push(d));
    req.on('error', (e) => { out.error = String(e.code || e.message); });
    req.on('close', () => {
      out.statuses[status] = (out.statuses[status] || 0) + 1;
      out.bodies += Buffer.concat(chunks).length;
      if (++done === N) { client.close(); finish(); }
    });
    req.end();
  }
}

client.on('connect', () => {
  if (mode === 'rapid-reset') rapidReset();
  else if (mode === 'multiplex') multiplex();
  else { out.error = 'unknown mode ' + mode; finish(); }
});
