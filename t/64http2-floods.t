#!/usr/bin/env python3
# HTTP/2 under attack (RFC 9113 10.5 and the known floods): each attack
# on its own connection, asserting (a) what the attacker gets (the GOAWAY
# or RST_STREAM error code, the 431, or a close within a bounded time),
# (b) that a new connection is served at once afterwards and (c) for the
# floods, that the server's CPU time on the attack stays bounded.  Then
# frames written by hand that no client sends, judged by RFC 9113, and
# the memory of idle h2 connections.
#
# Floods: PING, SETTINGS (unread ACKs), PRIORITY, WINDOW_UPDATE, empty
# DATA, rapid reset (by hand and with Node's http2 client), CONTINUATION,
# HPACK bomb; stalls: zero window, request body; stream ids: 2^31-1,
# going backwards; max concurrent streams.
#
# h2c (prior knowledge) on a plain listener for most, TLS (ALPN h2) for
# two.  The Node cases (t/lib/h2flood.js) are skipped without node.
#
# Where nghttp2 picks another outcome than the first one RFC 9113 names
# but one it allows (a stream error made a connection error, 5.4.1), the
# comment says so and either is accepted.
import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from h2 import *  # noqa: E402,F403

NODE = shutil.which("node") or ("/usr/bin/node" if os.path.exists("/usr/bin/node") else None)
OPENSSL = shutil.which("openssl")
FLOOD_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "h2flood.js")
SANITIZED = any(k in os.environ for k in ("ASAN_OPTIONS", "TSAN_OPTIONS")) or \
    any(s in BIN for s in ("build-asan", "build-tsan"))
# CPU seconds an attack may cost, generously (a sanitizer build is slower).
CPU_BOUND = 8.0 if SANITIZED else 2.0

SMALL = b"small file for h2 floods\n"
BIG = bytes(range(256)) * 4096  # 1 MiB

CONF = """\
[global]
workers = 1
log_level = info
send_timeout = 1s
body_timeout = 1s
header_timeout = 2s
keepalive_timeout = 30s

[listen:h2c]
address = 127.0.0.1:{port}
http2 = on

[listen:tls]
address = 127.0.0.1:{port2}
tls_cert = {dir}/cert.pem
tls_key = {dir}/key.pem

[route:files]
path = /
root = {dir}/root
"""

# h2_max_concurrent_streams = 4, for the stream limit only.
CONF_STREAMS = """\
[global]
workers = 1
send_timeout = 5s
h2_max_concurrent_streams = 4

[listen:h2c]
address = 127.0.0.1:{port}
http2 = on

[route:files]
path = /
root = {dir}/root
"""


def make_root(d):
    os.makedirs(os.path.join(d, "root"))
    with open(os.path.join(d, "root", "small.txt"), "wb") as f:
        f.write(SMALL)
    with open(os.path.join(d, "root", "big.bin"), "wb") as f:
        f.write(BIG)


def make_cert(d):
    subprocess.run([OPENSSL, "req", "-x509", "-nodes", "-days", "2", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", d + "/key.pem",
                    "-out", d + "/cert.pem", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=30)


# --------------------------------------------------------------------------
# helpers


def proc_stat(srv):
    """The server's CPU seconds: the sum of its threads' schedstat run
    times (nanoseconds), else utime+stime from /proc/PID/stat (ticks)."""
    pid = srv.proc.pid
    try:
        total = 0
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(srv):
    with open("/proc/%d/status" % srv.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def client(srv, tls=False, **kw):
    kw.setdefault("timeout", 5.0)
    return H2Client("127.0.0.1", srv.port2 if tls else srv.port, tls=tls, **kw)


def req_fields(path="/small.txt", method="GET", authority="localhost", scheme="http"):
    return [(":method", method), (":scheme", scheme), (":authority", authority), (":path", path)]


def healthy(srv, what, tls=False):
    """(b): a new connection, a GET, 200 and the body, within 2 s."""
    t0 = time.monotonic()
    st, err = None, None
    try:
        with client(srv, tls=tls, timeout=2.0) as c:
            sid = c.request("GET", "/small.txt", "localhost")
            st = c.read_response(sid, timeout=2.0)
    except (OSError, H2Error) as e:
        err = e
    dt = time.monotonic() - t0
    good = st is not None and st.status == 200 and st.body == SMALL and dt < 2.0
    ok(good, "%s: then a new connection is served (200, the body) within 2 s" % what)
    if not good:
        diag("stream %r, error %r, %.2fs, server alive: %s" % (st, err, dt, srv.alive()))


class Cpu:
    """(c): the server's CPU time over an attack."""

    def __init__(self, srv):
        self.srv, self.t0 = srv, proc_stat(srv)

    def check(self, what):
        d = proc_stat(self.srv) - self.t0
        diag("CPU for %s: %.1f ms" % (what, d * 1000))
        ok(d < CPU_BOUND, "%s: server CPU %.2f s < %.0f s" % (what, d, CPU_BOUND))
        return d


def goaway_code(c, timeout=5.0):
    try:
        g = c.read_until_goaway(timeout)
    except (OSError, H2Error):
        g = None
    return None if g is None else g.error_code


def expect_goaway(c, code, what, close=True):
    got = goaway_code(c)
    is_(code_name(got), code_name(code), "%s: GOAWAY %s" % (what, code_name(code)))
    if close:
        ok(c.closed_within(3.0), "%s: and the connection is closed" % what)
    return got


def expect_rst(c, sid, code, what):
    """A stream error: RST_STREAM code on sid, the connection goes on."""
    f = c.wait_for(lambda f: (f.stream_id == sid and f.type in (RST_STREAM, HEADERS))
                   or f.type == GOAWAY, 3.0, past=True)
    got = None if f is None else ("RST_STREAM " + str(code_name(f.error_code)) if f.type == RST_STREAM
                                  else "GOAWAY " + str(code_name(f.error_code)) if f.type == GOAWAY
                                  else "HEADERS " + str(dict(f.headers or ()).get(":status")))
    is_(got, "RST_STREAM " + code_name(code), "%s: RST_STREAM %s on stream %d" % (what, code_name(code), sid))
    pong = None
    try:
        pong = c.ping(b"stillhr!", 2.0)
    except (OSError, H2Error):
        pass
    ok(pong is not None, "%s: the connection lives on (PING answered)" % what)


def send_flood(c, chunks, per_write=200):
    """Writes the frames, per_write at a time; stops when the server has
    closed (False then)."""
    for i in range(0, len(chunks), per_write):
        try:
            if not c.send(*chunks[i:i + per_write]):
                return False
        except (socket.timeout, OSError):
            return False
    return True


def run_node(mode, url, n):
    try:
        p = subprocess.run([NODE, FLOOD_JS, mode, url, str(n)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
    except subprocess.TimeoutExpired:
        return {"error": "node timed out"}
    try:
        return json.loads(p.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no JSON from node: %r %r" % (p.stdout[-300:], p.stderr[-500:])}


# --------------------------------------------------------------------------
# sanity


def test_sanity(srv):
    with client(srv) as c:
        sid = c.request("GET", "/small.txt", "localhost")
        st = c.read_response(sid, 2.0)
        is_((st.status, st.body), (200, SMALL), "h2c: GET /small.txt is 200 with the body")
        sid = c.request("GET", "/big.bin", "localhost")
        st = c.read_response(sid, 5.0)
        ok(st.status == 200 and st.body == BIG, "h2c: 1 MiB over the windows (WINDOW_UPDATEs sent)")
    healthy(srv, "TLS (ALPN h2)", tls=True)


# --------------------------------------------------------------------------
# floods of frames that do no work: the glitch budget (1000, 100/s)


def test_ping_flood(srv, tls=False):
    what = "PING flood%s (3000, ACKs read)" % (" over TLS" if tls else "")
    cpu = Cpu(srv)
    with client(srv, tls=tls) as c:
        send_flood(c, [ping_frame(i.to_bytes(8, "big")) for i in range(3000)])
        expect_goaway(c, ENHANCE_YOUR_CALM, what)
        acks = sum(1 for f in c.frames if f.type == PING and f.ack)
        diag("%s: %d PING ACKs before the GOAWAY" % (what, acks))
    cpu.check(what)
    healthy(srv, what, tls=tls)


def test_ping_under_budget(srv):
    # 500 PINGs are within the burst: a chatty client is not cut off.
    with client(srv) as c:
        send_flood(c, [ping_frame(i.to_bytes(8, "big")) for i in range(500)])
        acks = c.wait_for(lambda f: f.type == PING and f.ack and f.opaque == (499).to_bytes(8, "big"), 5.0)
        ok(acks is not None and c.goaway is None, "500 PINGs (within the burst): all answered, no GOAWAY")
        sid = c.request("GET", "/small.txt", "localhost")
        is_(c.read_response(sid, 2.0).status, 200, "500 PINGs: the connection still serves requests")


def test_settings_flood_unread(srv):
    # SETTINGS ACKs queue while the client does not read: at most 1000
    # (max_outbound_ack), and the frames cost a token each anyway.
    what = "SETTINGS flood (3000, ACKs not read)"
    cpu = Cpu(srv)
    with client(srv, ack_settings=False) as c:
        send_flood(c, [settings_frame({ENABLE_PUSH: 0})] * 3000)
        expect_goaway(c, ENHANCE_YOUR_CALM, what)
    cpu.check(what)
    healthy(srv, what)


def test_priority_flood(srv):
    what = "PRIORITY flood (3000)"
    cpu = Cpu(srv)
    with client(srv) as c:
        send_flood(c, [priority_frame(2 * i + 1, 0, 16) for i in range(3000)])
        expect_goaway(c, ENHANCE_YOUR_CALM, what)
    cpu.check(what)
    healthy(srv, what)


def test_window_update_flood(srv):
    what = "WINDOW_UPDATE flood (3000 of 1 octet)"
    cpu = Cpu(srv)
    with client(srv) as c:
        send_flood(c, [window_update_frame(0, 1)] * 3000)
        expect_goaway(c, ENHANCE_YOUR_CALM, what)
    cpu.check(what)
    healthy(srv, what)


def test_empty_data_flood(srv):
    what = "empty DATA flood (3000 on an open stream)"
    cpu = Cpu(srv)
    with client(srv) as c:
        c.send(headers_frame(1, c.encoder.encode(req_fields(method="POST"))))
        send_flood(c, [data_frame(1, b"")] * 3000)
        expect_goaway(c, ENHANCE_YOUR_CALM, what)
    cpu.check(what)
    healthy(srv, what)


# --------------------------------------------------------------------------
# rapid reset (CVE-2023-44487)


def test_rapid_reset(srv):
    what = "rapid reset by hand (2000 HEADERS + RST_STREAM)"
    cpu = Cpu(srv)
    with client(srv) as c:
        block = c.encoder.encode(req_fields())
        frames = []
        for i in range(2000):
            sid = 2 * i + 1
            frames.append(headers_frame(sid, block, end_stream=True) + rst_stream_frame(sid, CANCEL))
        send_flood(c, frames, per_write=100)
        got = goaway_code(c)
        diag("%s: GOAWAY %s, last stream id %s" % (what, code_name(got),
                                                    c.goaway.last_stream_id if c.goaway else None))
        # nghttp2's stream reset limit ends the session with GOAWAY
        # INTERNAL_ERROR (nghttp2_session.c, session_update_stream_reset_ratelim);
        # ENHANCE_YOUR_CALM would say more, either is allowed (RFC 9113 5.4.1).
        ok(got in (INTERNAL_ERROR, ENHANCE_YOUR_CALM), "%s: GOAWAY (INTERNAL_ERROR or ENHANCE_YOUR_CALM): %s"
           % (what, code_name(got)))
        ok(c.goaway is not None and c.goaway.last_stream_id < 2 * 2000 - 1,
           "%s: not every stream was taken (last stream id %s)"
           % (what, c.goaway.last_stream_id if c.goaway else None))
        ok(c.closed_within(3.0), "%s: and the connection is closed" % what)
    cpu.check(what)
    healthy(srv, what)


def test_rapid_reset_node(srv):
    what = "rapid reset with Node's http2 client (5000 requests cancelled)"
    if NODE is None:
        skip("no node", 4)
        return
    cpu = Cpu(srv)
    r = run_node("rapid-reset", "http://127.0.0.1:%d/" % srv.port, 5000)
    diag("%s: %s" % (what, json.dumps(r)))
    ok(r.get("goaway") in (INTERNAL_ERROR, ENHANCE_YOUR_CALM) or r.get("error") in
       ("ERR_HTTP2_SESSION_ERROR", "ERR_HTTP2_GOAWAY_SESSION"),
       "%s: the server ends the session (GOAWAY %s)" % (what, code_name(r.get("goaway"))))
    ok(r.get("sent", 0) < 5000 or r.get("closed"), "%s: well before all were sent, or closed" % what)
    cpu.check(what)
    healthy(srv, what)


def test_multiplex_node(srv):
    what = "Node's http2 client, 100 GETs multiplexed"
    if NODE is None:
        skip("no node", 2)
        return
    r = run_node("multiplex", "http://127.0.0.1:%d/small.txt" % srv.port, 100)
    diag("%s: %s" % (what, json.dumps(r)))
    is_((r.get("statuses"), r.get("bodies"), r.get("error")), ({"200": 100}, 100 * len(SMALL), None),
        "%s: 100 answers 200 with their bodies, no error" % what)
    is_(r.get("goaway"), None, "%s: no GOAWAY" % what)


# --------------------------------------------------------------------------
# CONTINUATION flood, HPACK bomb


def split_block(block, parts):
    n = -(-len(block) // parts)
    return [block[i:i + n] for i in range(0, len(block), n)]


def test_continuations_allowed(srv):
    # HEADERS + 8 CONTINUATIONs (the limit) is a request like any other.
    with client(srv) as c:
        block = c.encoder.encode(req_fields() + [("x-pad", "p" * 1800)])
        parts = split_block(block, 9)
        c.send(headers_frame(1, parts[0], end_stream=True, end_headers=False),
               *[continuation_frame(1, p, i == len(parts) - 2) for i, p in enumerate(parts[1:])])
        st = c.read_response(1, 3.0)
        is_((len(parts), st.status, st.body), (9, 200, SMALL), "HEADERS + 8 CONTINUATION frames: served")


def test_continuation_flood(srv, tls=False):
    what = "CONTINUATION flood%s (5000 one-octet CONTINUATIONs)" % (" over TLS" if tls else "")
    cpu = Cpu(srv)
    with client(srv, tls=tls) as c:
        block = c.encoder.encode(req_fields())
        frames = [headers_frame(1, block, end_stream=True, end_headers=False)]
        frames += [continuation_frame(1, b"\x00" if i % 2 else b"\x01", end_headers=False) for i in range(5000)]
        send_flood(c, frames, per_write=500)
        got = goaway_code(c)
        diag("%s: GOAWAY %s" % (what, code_name(got)))
        # nghttp2 returns NGHTTP2_ERR_TOO_MANY_CONTINUATIONS; portico ends
        # the session.  RFC 9113 names no code for it: PROTOCOL_ERROR or
        # ENHANCE_YOUR_CALM are both fair.
        ok(got in (PROTOCOL_ERROR, ENHANCE_YOUR_CALM), "%s: GOAWAY PROTOCOL_ERROR or ENHANCE_YOUR_CALM (%s)"
           % (what, code_name(got)))
        ok(c.closed_within(3.0), "%s: and the connection is closed" % what)
        is_(c.streams.get(1) and c.streams[1].status, None, "%s: the request was not served" % what)
    cpu.check(what)
    healthy(srv, what, tls=tls)


def test_hpack_bomb(srv):
    what = "HPACK bomb (4000-octet entry indexed 1000 times)"
    cpu = Cpu(srv)
    with client(srv) as c:
        e = c.encoder
        bomb = e.literal("x-big", "A" * 4000, "incremental") + e.indexed(62) * 1000
        c.send(headers_frame(1, e.encode(req_fields()) + bomb, end_stream=True))
        st = c.read_response(1, 3.0)
        is_(st.status, 431, "%s: 431 on that stream" % what)
        c.next_stream_id = 3
        sid = c.request("GET", "/small.txt", "localhost")
        st = c.read_response(sid, 3.0)
        is_((st.status, st.body), (200, SMALL), "%s: the connection lives: next GET is 200" % what)
        # Each refused block costs 10 tokens: 150 more run the budget out.
        frames = [headers_frame(2 * i + 5, e.encode(req_fields()) + e.indexed(62) * 1000, end_stream=True)
                  for i in range(150)]
        send_flood(c, frames, per_write=10)
        n431 = sum(1 for s in c.streams.values() if s.status == 431)
        got = goaway_code(c)
        n431 = sum(1 for s in c.streams.values() if s.status == 431)
        diag("%s: %d answered 431, then GOAWAY %s" % (what, n431, code_name(got)))
        is_(code_name(got), "ENHANCE_YOUR_CALM", "%s, 150 more: GOAWAY ENHANCE_YOUR_CALM" % what)
        ok(c.closed_within(3.0), "%s: and the connection is closed" % what)
    cpu.check(what)
    healthy(srv, what)


# --------------------------------------------------------------------------
# stalls


def test_zero_window(srv):
    what = "zero window (1 MiB GET, no WINDOW_UPDATE)"
    with client(srv, window_updates=False) as c:
        t0 = time.monotonic()
        sid = c.request("GET", "/big.bin", "localhost")
        closed = c.closed_within(6.0)
        dt = time.monotonic() - t0
        st = c.streams[sid]
        diag("%s: %d octets of body, closed after %.2f s" % (what, len(st.body), dt))
        is_(len(st.body), 65535, "%s: the body stops at the initial window" % what)
        ok(closed and dt < 4.0, "%s: closed within 4 s with send_timeout = 1s (%.2f s)" % (what, dt))
    healthy(srv, what)


def test_body_stall(srv):
    # body_timeout is per stream: the stalled one is answered 408, the
    # connection stays for its other streams (t/63http2.t checks that a
    # client's other frames do not hold the stall open).
    what = "request body stall (HEADERS without END_STREAM, then nothing)"
    with client(srv) as c:
        t0 = time.monotonic()
        c.send(headers_frame(1, c.encoder.encode(req_fields(method="POST")), end_stream=False))
        st = c.read_response(1, 6.0)
        dt = time.monotonic() - t0
        diag("%s: answered after %.2f s" % (what, dt))
        ok(st.status == 408 and dt < 4.0,
           "%s: 408 on the stream within 4 s with body_timeout = 1s (%r after %.2f s)" % (what, st.status, dt))
    healthy(srv, what)


# --------------------------------------------------------------------------
# stream ids and the stream limit


def test_stream_ids(srv):
    what = "stream id 2^31-1"
    with client(srv) as c:
        c.send(headers_frame(0x7FFFFFFF, c.encoder.encode(req_fields()), end_stream=True))
        st = c.read_response(0x7FFFFFFF, 3.0)
        is_((st.status, st.body), (200, SMALL), "%s: answered 200" % what)
        # No stream id is larger: any new HEADERS goes backwards.
        # RFC 9113 5.1.1: "An endpoint that receives an unexpected
        # stream identifier MUST respond with a connection error of type
        # PROTOCOL_ERROR" (and a lower id than one already used is one:
        # 5.1.1, "MUST be numerically greater than all streams that the
        # initiating endpoint has opened or reserved").  nghttp2 alone
        # ignores such a HEADERS (it cannot tell a skipped id from a
        # closed stream it forgot); h2.c remembers the skipped ids.
        c.send(headers_frame(1, c.encoder.encode(req_fields()), end_stream=True))
        got = goaway_code(c, 2.0)
        is_(c.streams.get(1) and c.streams[1].status, None, "%s, then HEADERS on stream 1: not served" % what)
        is_(code_name(got), "PROTOCOL_ERROR", "%s, then HEADERS on stream 1: GOAWAY PROTOCOL_ERROR" % what)
    with client(srv) as c:
        c.send(headers_frame(5, c.encoder.encode(req_fields()), end_stream=True))
        st = c.read_response(5, 3.0)
        c.send(headers_frame(3, c.encoder.encode(req_fields()), end_stream=True))
        got = goaway_code(c, 2.0)
        # As above (RFC 9113 5.1.1): stream 3 was skipped when 5 came.
        is_(code_name(got), "PROTOCOL_ERROR", "stream 5 then stream 3 (backwards): GOAWAY PROTOCOL_ERROR")
    healthy(srv, "stream ids")


def test_max_streams():
    what = "h2_max_concurrent_streams = 4"
    srv = Server(CONF_STREAMS, start=False)
    make_root(srv.dir)
    srv.start()
    with srv:
        # The limit not yet acknowledged (the client has not ACKed the
        # server's SETTINGS): the streams past it are refused, the others
        # served (RFC 9113 5.1.2: stream error REFUSED_STREAM).
        with client(srv, ack_settings=False) as c:
            is_(c.server_settings.get(MAX_CONCURRENT_STREAMS), 4, "SETTINGS_MAX_CONCURRENT_STREAMS 4 announced")
            block = c.encoder.encode(req_fields())
            c.send(*[headers_frame(2 * i + 1, block, end_stream=True) for i in range(6)])
            # /small.txt is answered at once: send all six in one write, so
            # the first four are still open when the fifth comes.
            c.wait_for(lambda f: c.goaway is not None or all(
                c.streams.get(s) is not None and c.streams[s].state != "open" for s in (1, 3, 5, 7, 9, 11)), 3.0)
            got = {s: (c.streams[s].status or code_name(c.streams[s].reset)) for s in sorted(c.streams)}
            diag("%s, not acknowledged: %r, GOAWAY %r" % (what, got, c.goaway))
            is_(got, {1: 200, 3: 200, 5: 200, 7: 200, 9: "REFUSED_STREAM", 11: "REFUSED_STREAM"},
                "%s, SETTINGS not ACKed, 6 streams in one write: 4 served, 2 RST_STREAM REFUSED_STREAM" % what)
        # Acknowledged: the client knew.  RFC 9113 5.1.2 asks for a stream
        # error (PROTOCOL_ERROR or REFUSED_STREAM); nghttp2 makes it a
        # connection error PROTOCOL_ERROR ("request HEADERS: max concurrent
        # streams exceeded"), which 5.4.1 allows.
        with client(srv, window_updates=False) as c:
            c.ping(b"acked!!!", 2.0)  # our ACK of its SETTINGS is in
            block = c.encoder.encode(req_fields())
            c.send(*[headers_frame(2 * i + 1, block, end_stream=True) for i in range(6)])
            c.wait_for(lambda f: c.goaway is not None or all(
                c.streams.get(s) is not None and c.streams[s].state != "open" for s in (1, 3, 5, 7, 9, 11)), 3.0)
            got = {s: (c.streams[s].status or code_name(c.streams[s].reset)) for s in sorted(c.streams)}
            diag("%s, acknowledged: %r, GOAWAY %r%s" % (what, got, c.goaway,
                                                         " last %d" % c.goaway.last_stream_id if c.goaway else ""))
            refused = c.goaway is not None and c.goaway.error_code == PROTOCOL_ERROR or \
                all(c.streams.get(s) and c.streams[s].reset in (REFUSED_STREAM, PROTOCOL_ERROR) for s in (9, 11))
            ok(refused, "%s, SETTINGS ACKed, 6 streams: the 5th is refused (RST_STREAM or GOAWAY PROTOCOL_ERROR)"
               % what)
            ok(all(c.streams.get(s) is None or c.streams[s].status is None for s in (9, 11)),
               "%s: streams 9 and 11 are not served" % what)
        healthy(srv, what)


# --------------------------------------------------------------------------
# frames no client sends (RFC 9113)


def conn_error(srv, what, frames, code, pre=()):
    with client(srv) as c:
        for p in pre:
            c.send(p(c) if callable(p) else p)
        c.send(*[f(c) if callable(f) else f for f in frames])
        expect_goaway(c, code, what)


def stream_error(srv, what, build, code, sid=1):
    with client(srv) as c:
        c.send(*build(c))
        expect_rst(c, sid, code, what)


def hdr(fields, sid=1, end_stream=True):
    return lambda c: headers_frame(sid, c.encoder.encode(fields), end_stream=end_stream)


def test_hand_frames(srv):
    # 6.1: DATA on stream 0 is a connection error PROTOCOL_ERROR.
    conn_error(srv, "DATA on stream 0", [data_frame(0, b"x")], PROTOCOL_ERROR)
    # 5.1.1: a client's stream id is odd; an even one is a connection error.
    conn_error(srv, "HEADERS on stream 2", [hdr(req_fields(), sid=2)], PROTOCOL_ERROR)
    # 6.9: increment 0 on the connection: connection error PROTOCOL_ERROR.
    conn_error(srv, "WINDOW_UPDATE 0 on the connection", [window_update_frame(0, 0)], PROTOCOL_ERROR)
    # 6.9: increment 0 on a stream is a stream error PROTOCOL_ERROR;
    # nghttp2 ends the connection instead (session_on_window_update_received),
    # which 5.4.1 allows ("MAY choose to treat a stream error as a
    # connection error"): either is accepted.
    with client(srv) as c:
        c.send(hdr(req_fields(method="POST"), end_stream=False)(c), window_update_frame(1, 0))
        f = c.wait_for(lambda f: f.type == GOAWAY or (f.type == RST_STREAM and f.stream_id == 1), 3.0)
        got = None if f is None else (f.name, code_name(f.error_code))
        ok(got in (("GOAWAY", "PROTOCOL_ERROR"), ("RST_STREAM", "PROTOCOL_ERROR")),
           "WINDOW_UPDATE 0 on an open stream: RST_STREAM or GOAWAY PROTOCOL_ERROR (%r)" % (got,))
    # 6.5.2: INITIAL_WINDOW_SIZE above 2^31-1: connection error FLOW_CONTROL_ERROR.
    conn_error(srv, "SETTINGS_INITIAL_WINDOW_SIZE 2^31", [settings_frame({INITIAL_WINDOW_SIZE: 1 << 31})],
               FLOW_CONTROL_ERROR)
    # One SETTINGS frame of 100 entries: past nghttp2's max_settings (32),
    # ended as a flood.
    conn_error(srv, "SETTINGS with 100 entries", [settings_frame([(ENABLE_PUSH, 0)] * 100)], ENHANCE_YOUR_CALM)
    # 4.2: a frame above SETTINGS_MAX_FRAME_SIZE (16384) that carries a field
    # block: connection error FRAME_SIZE_ERROR.
    conn_error(srv, "HEADERS of 16385 octets",
               [lambda c: headers_frame(1, c.encoder.encode(req_fields() + [("x-pad", "p" * 16400)])[:16385],
                                        end_stream=True)], FRAME_SIZE_ERROR)
    # 8.4: a client cannot push: connection error PROTOCOL_ERROR.
    conn_error(srv, "PUSH_PROMISE from the client",
               [hdr(req_fields(), end_stream=False),
                lambda c: push_promise_frame(1, 2, c.encoder.encode(req_fields()))], PROTOCOL_ERROR)
    # 8.2.1, 8.1.1: malformed requests are stream errors PROTOCOL_ERROR.
    stream_error(srv, "uppercase header name", lambda c: [hdr(req_fields() + [("X-Upper", "1")])(c)],
                 PROTOCOL_ERROR)
    # 8.2.2: connection-specific fields.
    stream_error(srv, "connection: keep-alive", lambda c: [hdr(req_fields() + [("connection", "keep-alive")])(c)],
                 PROTOCOL_ERROR)
    stream_error(srv, "te: gzip", lambda c: [hdr(req_fields() + [("te", "gzip")])(c)], PROTOCOL_ERROR)
    with client(srv) as c:
        sid = c.request("GET", "/small.txt", "localhost", headers=[("te", "trailers")])
        is_(c.read_response(sid, 3.0).status, 200, "te: trailers is allowed (8.2.2): 200")
    # 8.3: pseudo-headers come first.
    stream_error(srv, "pseudo-header after a regular field",
                 lambda c: [hdr([(":method", "GET"), (":scheme", "http"), (":authority", "localhost"),
                                 ("x-a", "1"), (":path", "/small.txt")])(c)], PROTOCOL_ERROR)
    # 8.3.1: :path is required (not CONNECT).
    stream_error(srv, "no :path", lambda c: [hdr([(":method", "GET"), (":scheme", "http"),
                                                  (":authority", "localhost")])(c)], PROTOCOL_ERROR)
    # 8.3.1: Host and :authority differ: malformed; a 400 is fair (8.1.1).
    with client(srv) as c:
        sid = c.request("GET", "/small.txt", "localhost", headers=[("host", "other.example")])
        st = c.read_response(sid, 3.0)
        is_(st.status, 400, ":authority and host differ: 400")
        sid = c.request("GET", "/small.txt", "localhost")
        is_(c.read_response(sid, 3.0).status, 200, ":authority and host differ: the connection goes on")
    # 8.1.1: content-length that disagrees with the DATA: stream error PROTOCOL_ERROR.
    stream_error(srv, "content-length 10, 5 octets of DATA",
                 lambda c: [hdr(req_fields(method="POST") + [("content-length", "10")], end_stream=False)(c),
                            data_frame(1, b"hello", end_stream=True)], PROTOCOL_ERROR)
    stream_error(srv, "content-length 2, 5 octets of DATA",
                 lambda c: [hdr(req_fields(method="POST") + [("content-length", "2")], end_stream=False)(c),
                            data_frame(1, b"hello", end_stream=True)], PROTOCOL_ERROR)
    healthy(srv, "frames written by hand")


# --------------------------------------------------------------------------
# memory


def test_idle_memory(srv):
    n = 300
    conns = []
    rss0 = rss(srv)
    try:
        for _ in range(n):
            conns.append(client(srv, timeout=3.0))
        # Each has had its SETTINGS ACKed: the server has read them.
        for c in conns[-5:]:
            c.ping(b"settled!", 2.0)
        time.sleep(0.2)
        rss1 = rss(srv)
    finally:
        for c in conns:
            c.close()
    per = (rss1 - rss0) / max(1, len(conns))
    diag("idle h2 connections: %d, %.0f bytes each (RSS growth %d)" % (len(conns), per, rss1 - rss0))
    is_(len(conns), n, "%d idle h2 connections open" % n)
    if SANITIZED:
        skip("a sanitizer's allocator and shadow memory count in RSS")
    else:
        ok(per < 64 * 1024, "idle h2 connection: under 64 KiB each (%.0f)" % per)
    healthy(srv, "idle connections")


def main():
    if OPENSSL is None:
        diag("no openssl: the TLS cases are skipped")
    srv = Server(CONF if OPENSSL else CONF.split("[listen:tls]")[0] + "[route:files]" +
                 CONF.split("[route:files]")[1], start=False)
    make_root(srv.dir)
    if OPENSSL:
        make_cert(srv.dir)
    srv.start()
    t0 = time.monotonic()
    with srv:
        test_sanity(srv)
        test_ping_under_budget(srv)
        test_ping_flood(srv)
        test_settings_flood_unread(srv)
        test_priority_flood(srv)
        test_window_update_flood(srv)
        test_empty_data_flood(srv)
        test_rapid_reset(srv)
        test_rapid_reset_node(srv)
        test_multiplex_node(srv)
        test_continuations_allowed(srv)
        test_continuation_flood(srv)
        test_hpack_bomb(srv)
        if OPENSSL:
            test_ping_flood(srv, tls=True)
            test_continuation_flood(srv, tls=True)
        test_zero_window(srv)
        test_body_stall(srv)
        test_stream_ids(srv)
        test_hand_frames(srv)
        test_idle_memory(srv)
        ok(srv.alive(), "the server is still running after all that")
    test_max_streams()
    diag("run time %.1f s" % (time.monotonic() - t0))


run(main)
