#!/usr/bin/env python3
# WebSocket over HTTP/2 (RFC 8441): SETTINGS_ENABLE_CONNECT_PROTOCOL on h2c
# and over TLS; extended CONNECT to the origin's echo endpoint (messages of
# every kind and size echoed exactly, fragments with a ping between, ping
# and pong, the close handshake, permessage-deflate, subprotocols, the
# Origin allow-list, version 12, an unmasked frame, max_message); several
# WebSockets and plain GETs multiplexed on one connection; chat rooms with
# h2 and HTTP/1.1 members; the proxy (an HTTP/1.1 upgrade to the backend,
# echo, each side closing); flow control and memory with a client that
# does not read; the access log and status; Chromium over h2; a client
# RST_STREAM; a graceful stop (1001, GOAWAY, exit 0).
import base64
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
import h2  # noqa: E402
from h2 import H2Client, H2Closed  # noqa: E402
from ws import *  # noqa: E402,F403
from backend import Backend  # noqa: E402
from browser import Browser, JSError, find_chromium  # noqa: E402

os.environ["PORTICO_TEST_MODULES"] = "1"  # websocket = test-fanout

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEMO_CERT = os.path.join(ROOT, "build", "demo-cert.pem")
DEMO_KEY = os.path.join(ROOT, "build", "demo-key.pem")

CONF = """\
[global]
workers = 1
shutdown_timeout = 3s
linger_time = 1s
access_log = {dir}/access.log

[listen:h2c]
address = 127.0.0.1:{port}
http2 = on

[listen:https]
address = 127.0.0.1:{port2}
tls_cert = %(cert)s
tls_key = %(key)s

[pool:ws]
server = %(backend)s

; A plain HTTP/1.1 backend that ignores Upgrade and answers 200.
[pool:plain]
server = %(plain)s
max_fails = 0

[route:status]
path = /status
status = json

[route:hello]
path = /hello
return = 200 hello over h2

[route:page]
path = /echo.html
root = etc/www

[route:echo]
path = /ws/echo
websocket = echo
ping_interval = 0

[route:plain]
path = /ws/plain
websocket = echo
compression = off
ping_interval = 0

[route:small]
path = /ws/small
websocket = echo
max_message = 1k
ping_interval = 0

[route:proto]
path = /ws/proto
websocket = echo
subprotocols = chat, superchat
origins = https://good.example
ping_interval = 0

[route:chat]
path = /chat/
websocket = chat
ping_interval = 0

[route:proxy]
path = /px/
pool = ws

[route:plainpx]
path = /plainpx/
pool = plain

; The test suite's own mode (see t/59websocket.t): "N text" comes back N
; times; past max_backlog the client is dropped with 1008.
[route:fanout]
path = /ws/fanout
websocket = test-fanout
max_backlog = 64k
compression = off
ping_interval = 0
"""

AUTH = "localhost"


def sanitized():
    return "TSAN_OPTIONS" in os.environ or "ASAN_OPTIONS" in os.environ or \
        "asan" in os.environ.get("PORTICO_BIN", "")


def rss(srv):
    try:
        with open("/proc/%d/status" % srv.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class WS2:
    """One WebSocket on an HTTP/2 stream: frames go out masked in DATA,
    come back parsed from the stream's body."""

    def __init__(self, c, sid):
        self.c, self.sid, self.pos = c, sid, 0

    @property
    def st(self):
        return self.c.streams[self.sid]

    def send(self, op, payload=b"", mask=True, fin=True, rsv=0, end_stream=False):
        self.c.send_data(self.sid, encode_frame(op, payload, mask=mask, fin=fin, rsv=rsv), end_stream)

    def send_raw(self, data, end_stream=False):
        self.c.send_data(self.sid, data, end_stream)

    def recv(self, timeout=5.0):
        """The next frame, or a string saying why there is none."""
        end = time.monotonic() + timeout
        while True:
            try:
                f, n = decode_frame(self.st.body[self.pos:])
            except ProtocolError as e:
                return "protocol error %s" % e
            if f is not None:
                self.pos += n
                return f
            st = self.st
            if st.ended:
                return "ended"
            if st.reset is not None:
                return "reset %d" % st.reset
            left = end - time.monotonic()
            if left <= 0:
                return "timeout"
            try:
                self.c.read_frame(left)
            except H2Closed:
                return "connection closed"

    def wait_end(self, timeout=5.0):
        """Reads until the stream ends or is reset: 'ended', 'reset N', or why not."""
        st = self.st
        ok_ = self.c.wait_for(lambda f: st.ended or st.reset is not None, timeout, past=True)
        if st.ended:
            return "ended"
        if st.reset is not None:
            return "reset %s" % h2.ERROR_NAMES[st.reset]
        return "closed" if self.c.closed else ("timeout" if ok_ is None else "?")


def summary(f):
    if not isinstance(f, Frame):
        return f
    return (f.fin, f.rsv, f.opcode, f.masked, f.payload)


def open_ws(c, path, headers=(), version="13", timeout=5.0):
    hs = [(":protocol", "websocket")]
    if version is not None:
        hs.append(("sec-websocket-version", version))
    hs += list(headers)
    sid = c.request("CONNECT", path, AUTH, headers=hs, end_stream=False)
    st = c.stream(sid)
    c.wait_for(lambda f: st.headers is not None or st.reset is not None, timeout, past=True)
    return WS2(c, sid)


def close_code(w, timeout=5.0):
    """(code of the next close frame, data skipped; how the stream ended)."""
    end = time.monotonic() + timeout
    while True:
        f = w.recv(max(0.01, end - time.monotonic()))
        if not isinstance(f, Frame):
            return (f, w.wait_end(0.01))
        if f.opcode == OP_CLOSE:
            return (f.close_code, w.wait_end(max(0.5, end - time.monotonic())))


def h2c(srv, **kw):
    return H2Client("127.0.0.1", srv.port, **kw)


def h2s(srv, **kw):
    return H2Client("127.0.0.1", srv.port2, tls=True, server_name="localhost", **kw)


def access_log(srv):
    p = srv.path("access.log")
    try:
        with open(p) as f:
            return f.read()
    except OSError:
        return ""


# ---------------------------------------------------------------------------


def test_settings(srv):
    for name, mk in (("h2c", h2c), ("TLS", h2s)):
        c = mk(srv)
        f = c.wait_for(lambda f: f.type == h2.SETTINGS and not f.ack, past=True)
        is_((c.alpn if name == "TLS" else "h2", f.settings.get(h2.ENABLE_CONNECT_PROTOCOL) if f else None),
            ("h2", 1), "%s: the server's SETTINGS carry ENABLE_CONNECT_PROTOCOL (0x8) = 1" % name)
        c.close()


def test_echo(srv, name, mk):
    c = mk(srv)
    w = open_ws(c, "/ws/echo")
    st = w.st
    is_(st.status, 200, "%s: extended CONNECT to /ws/echo: :status 200" % name)
    names = [k for k, _ in st.headers or ()]
    is_([n for n in names if n in ("sec-websocket-accept", "upgrade", "connection", "sec-websocket-extensions",
                                   "sec-websocket-protocol", "content-length")], [],
        "%s: no sec-websocket-accept, upgrade, connection, length; nothing negotiated that was not offered" % name)
    is_(st.ended, False, "%s: the stream stays open" % name)

    w.send(OP_TEXT, "h\u00e9llo over h2")
    is_(summary(w.recv()), (True, 0, OP_TEXT, False, "h\u00e9llo over h2".encode()),
        "%s: text echoed exactly, unmasked" % name)
    data = bytes(range(256)) * 4
    w.send(OP_BINARY, data)
    is_(summary(w.recv()), (True, 0, OP_BINARY, False, data), "%s: binary echoed exactly" % name)

    big = os.urandom(100 * 1024)
    n0 = sum(1 for f in c.frames if f.type == h2.DATA and f.stream_id == w.sid)
    w.send(OP_BINARY, big)
    f = w.recv(10)
    n1 = sum(1 for f_ in c.frames if f_.type == h2.DATA and f_.stream_id == w.sid)
    ok(isinstance(f, Frame) and f.payload == big and f.opcode == OP_BINARY and f.lenform == 64,
       "%s: a 100 KB message echoed exactly (%s)" % (name, len(f.payload) if isinstance(f, Frame) else f))
    ok(n1 - n0 >= 7, "%s: it came back in several DATA frames (%d)" % (name, n1 - n0))

    w.send(OP_TEXT, "Hel", fin=False)
    w.send(OP_PING, b"in between")
    w.send(OP_CONT, "lo, ", fin=False)
    w.send(OP_CONT, "world", fin=True)
    is_([summary(w.recv()), summary(w.recv())],
        [(True, 0, OP_PONG, False, b"in between"), (True, 0, OP_TEXT, False, b"Hello, world")],
        "%s: fragments with a ping between: pong first, then one message" % name)
    w.send(OP_PING, b"ping?")
    is_(summary(w.recv()), (True, 0, OP_PONG, False, b"ping?"), "%s: ping -> pong with its payload" % name)

    w.send(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
    f = w.recv()
    is_((f.opcode, f.close_code) if isinstance(f, Frame) else f, (OP_CLOSE, 1000),
        "%s: client close 1000 -> server close 1000" % name)
    end = w.wait_end()
    is_(end, "ended", "%s: then END_STREAM" % name)
    c.wait_for(lambda f: st.reset is not None, 2, past=True)
    is_(st.reset, h2.NO_ERROR, "%s: and RST_STREAM NO_ERROR, the client not having ended its side" % name)
    r = c.request("GET", "/hello", AUTH)
    s = c.read_response(r)
    is_((s.status, s.body), (200, b"hello over h2"), "%s: the connection goes on (a GET after)" % name)
    is_(c.errors, [], "%s: no framing errors seen by the client" % name)
    c.close()


def test_features(srv):
    c = h2c(srv)
    w = open_ws(c, "/ws/echo", [("sec-websocket-extensions", "permessage-deflate; client_max_window_bits")])
    like(w.st.header("sec-websocket-extensions") or "", r"^permessage-deflate",
         "permessage-deflate offered: negotiated (sec-websocket-extensions: %s)"
         % w.st.header("sec-websocket-extensions"))
    msg = "compress me " * 100
    w.send(OP_TEXT, pmd_compress(msg), rsv=4)
    f = w.recv()
    ok(isinstance(f, Frame) and f.rsv == 4 and f.opcode == OP_TEXT and pmd_decompress(f.payload) == msg.encode()
       and len(f.payload) < 100, "a compressed text echoed compressed (RSV1), same text")
    w.send(OP_BINARY, b"not compressed")
    f = w.recv()
    is_((f.rsv, pmd_decompress(f.payload)) if isinstance(f, Frame) else f, (4, b"not compressed"),
        "an uncompressed message comes back compressed")
    w.send(OP_CLOSE, struct.pack("!H", 1000), end_stream=True)
    is_(close_code(w), (1000, "ended"), "close with END_STREAM: close 1000, stream ended")

    w = open_ws(c, "/ws/proto", [("sec-websocket-protocol", "foo, superchat, chat"),
                                 ("origin", "https://good.example")])
    is_((w.st.status, w.st.header("sec-websocket-protocol")), (200, "superchat"),
        "subprotocol: the first offered one the route has (superchat)")
    w.send(OP_TEXT, "proto")
    is_(summary(w.recv()), (True, 0, OP_TEXT, False, b"proto"), "and it echoes")
    c.send(h2.rst_stream_frame(w.sid, h2.CANCEL))

    w = open_ws(c, "/ws/proto", [("origin", "https://evil.example")])
    end = w.wait_end()
    is_((w.st.status, end, w.st.header("sec-websocket-protocol")), (403, "ended", None),
        "Origin outside the allow-list: 403, the stream ends")
    ok(not w.st.body.startswith(b"\x81") and w.st.header("sec-websocket-extensions") is None,
       "and no tunnel")

    w = open_ws(c, "/ws/echo", version="12")
    end = w.wait_end()
    is_((w.st.status, end, w.st.header("sec-websocket-version")), (426, "ended", "13"),
        "sec-websocket-version 12: 426 with sec-websocket-version: 13")

    w = open_ws(c, "/ws/echo")
    w.send(OP_TEXT, "unmasked", mask=False)
    is_(close_code(w), (1002, "ended"), "an unmasked client frame: close 1002, the stream ends")

    w = open_ws(c, "/ws/small")
    w.send(OP_TEXT, "x" * 2000)
    is_(close_code(w), (1009, "ended"), "past max_message: close 1009, the stream ends")

    # An extended CONNECT to a route that is no WebSocket endpoint: its
    # handler answers the GET it stands for, 200 with a body; but a 2xx to
    # CONNECT means the tunnel is open (RFC 9110 9.3.6, which also forbids
    # content-length in it; RFC 8441 4), so portico says 501 (502 when a
    # backend did not switch), without the body.
    w = open_ws(c, "/hello")
    w.wait_end()
    is_((w.st.status, w.st.header("content-length"), w.st.body), (501, None, b""),
        "CONNECT :protocol websocket to a plain route (/hello): 501, no body")
    w = open_ws(c, "/echo.html")
    w.wait_end()
    ok(w.st.status is not None and not 200 <= w.st.status < 300,
       "nor to a static file (got %s)" % w.st.status)
    # The same through the proxy: a backend that ignores Upgrade and
    # answers 200 did not switch: 502.
    w = open_ws(c, "/plainpx/echo")
    w.wait_end()
    is_((w.st.status, w.st.body), (502, b""), "a backend that answers 200 instead of 101: 502, no body")

    r = c.request("GET", "/hello", AUTH)
    is_(c.read_response(r).status, 200, "the connection survives all of that")
    c.close()


def test_multiplex(srv):
    c = h2c(srv)
    ws = [open_ws(c, "/ws/echo") for _ in range(4)]
    is_([w.st.status for w in ws], [200] * 4, "four WebSockets on one h2 connection")
    gets = []
    for j in range(5):
        for i, w in enumerate(ws):
            w.send(OP_TEXT, "ws%d-msg%d" % (i, j))
        gets.append(c.request("GET", "/hello", AUTH))
        gets.append(c.request("GET", "/echo.html", AUTH))
    got = [[] for _ in ws]
    for i, w in enumerate(ws):
        for _ in range(5):
            f = w.recv()
            got[i].append(f.payload.decode() if isinstance(f, Frame) else f)
    is_(got, [["ws%d-msg%d" % (i, j) for j in range(5)] for i in range(4)],
        "each WebSocket gets its own messages, in order")
    with open(os.path.join(ROOT, "etc", "www", "echo.html"), "rb") as f:
        page = f.read()
    rs = [c.read_response(s) for s in gets]
    want = [(200, b"hello over h2"), (200, page)] * 5
    is_([(r.status, r.body) for r in rs], want, "ten GETs interleaved with them, all answered correctly")
    for w in ws:
        w.send(OP_PING, b"still")
    is_([summary(w.recv()) for w in ws], [(True, 0, OP_PONG, False, b"still")] * 4,
        "the WebSockets are still open after the GETs")
    for w in ws:
        w.send(OP_CLOSE, struct.pack("!H", 1000), end_stream=True)
    is_([close_code(w) for w in ws], [(1000, "ended")] * 4, "and each closes cleanly")
    c.close()


def texts(w, n, timeout=5.0):
    out = []
    end = time.monotonic() + timeout
    while len(out) < n:
        f = w.recv(max(0.01, end - time.monotonic()))
        if not isinstance(f, Frame):
            out.append(f)
            break
        out.append(f.payload.decode("utf-8", "replace") if f.opcode == OP_TEXT else (f.opcode, f.close_code))
    return out


def h1_texts(c, n, timeout=5.0):
    out = []
    end = time.monotonic() + timeout
    while len(out) < n:
        try:
            f = c.recv(max(0.01, end - time.monotonic()))
        except (WSClosed, socket.timeout, OSError, ProtocolError) as e:
            out.append(repr(e))
            break
        out.append(f.payload.decode("utf-8", "replace"))
    return out


def test_chat(srv):
    a, b = h2c(srv), h2s(srv)
    wa, wb = open_ws(a, "/chat/h2room"), open_ws(b, "/chat/h2room")
    is_((wa.st.status, wb.st.status), (200, 200), "chat: an h2c and a TLS h2 connection join room h2room")
    ok(wait_for(lambda: srv.status_json()["websocket"]["chat"]["by_room"].get("h2room") == 2, 5),
       "/status counts two members in h2room")
    wa.send(OP_TEXT, "a1")
    wb.send(OP_TEXT, "b1")
    wa.send(OP_TEXT, "a2")
    ga, gb = texts(wa, 3), texts(wb, 3)
    is_((sorted(ga), ga == gb), (["a1", "a2", "b1"], True),
        "both see all three messages, in the same order (%s)" % ga)
    ok(ga.index("a1") < ga.index("a2"), "a sender's messages in its order")

    h = WSClient("127.0.0.1", srv.port, "/chat/mixed")
    wm = open_ws(a, "/chat/mixed")
    is_((h.status, wm.st.status), (101, 200), "an HTTP/1.1 member (101) and an h2 member (200) in room mixed")
    ok(wait_for(lambda: srv.status_json()["websocket"]["chat"]["by_room"].get("mixed") == 2, 5),
       "/status counts both")
    h.send_text("from h1")
    is_(texts(wm, 1), ["from h1"], "the h2 member sees the HTTP/1.1 member's message")
    wm.send(OP_TEXT, "from h2")
    gm = texts(wm, 1)
    gh = h1_texts(h, 2)
    is_((gh, gm), (["from h1", "from h2"], ["from h2"]), "and both see both, in one order")
    h.close()
    for w in (wa, wb, wm):
        w.send(OP_CLOSE, struct.pack("!H", 1000), end_stream=True)
    is_([close_code(w)[0] for w in (wa, wb, wm)], [1000] * 3, "the h2 members close cleanly")
    a.close()
    b.close()


def test_proxy(srv, e):
    c = h2c(srv)
    n0 = len(e.upgrades)
    w = open_ws(c, "/px/echo?x=1", [("sec-websocket-extensions", "permessage-deflate")])
    is_(w.st.status, 200, "proxy: extended CONNECT to a pool: :status 200")
    is_([k for k, _ in w.st.headers or () if k in ("sec-websocket-accept", "upgrade", "connection")], [],
        "no sec-websocket-accept, upgrade or connection in the h2 response")
    up = e.upgrades[n0] if len(e.upgrades) > n0 else ("", [])
    hs = {k.lower(): v for k, v in up[1]}
    is_(up[0], "GET /px/echo?x=1 HTTP/1.1", "the backend saw an HTTP/1.1 GET for the path")
    is_((hs.get("upgrade", "").lower(), "upgrade" in hs.get("connection", "").lower().replace(" ", "").split(","),
         hs.get("sec-websocket-version")), ("websocket", True, "13"),
        "with Upgrade: websocket, Connection: upgrade, Sec-WebSocket-Version: 13")
    key = hs.get("sec-websocket-key", "")
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raw = b""
    is_((len(key), len(raw)), (24, 16), "and a made-up 24-character base64 Sec-WebSocket-Key (%r)" % key)
    w.send(OP_TEXT, "through the proxy")
    is_(summary(w.recv()), (True, 0, OP_TEXT, False, b"through the proxy"), "text echoed by the backend")
    big = os.urandom(70000)
    w.send(OP_BINARY, big)
    f = w.recv(10)
    ok(isinstance(f, Frame) and f.payload == big, "70000 bytes echoed by the backend")
    w.send(OP_CLOSE, struct.pack("!H", 1000))
    is_(close_code(w), (1000, "ended"), "client close 1000: the backend's close 1000, then END_STREAM")
    ok(wait_for(lambda: len(e._socks) == 0, 5), "and the backend connection is closed")

    w = open_ws(c, "/px/echo")
    w.send(OP_TEXT, "unmasked", mask=False)
    is_(close_code(w), (1002, "ended"), "the backend closing (1002 for an unmasked frame) ends the stream")

    w = open_ws(c, "/px/echo")
    w.send(OP_TEXT, "then half close")
    is_(summary(w.recv()), (True, 0, OP_TEXT, False, b"then half close"), "another tunnel echoes")
    c.send_data(w.sid, b"", end_stream=True)
    is_(w.wait_end(), "ended", "the client ending its stream: the backend sees EOF, closes, the stream ends")
    ok(wait_for(lambda: len(e._socks) == 0, 5), "and the backend connection is gone")

    # RST_STREAM on an open proxied WebSocket.
    w = open_ws(c, "/px/echo")
    w.send(OP_TEXT, "before cancel")
    is_(summary(w.recv()), (True, 0, OP_TEXT, False, b"before cancel"), "a tunnel open before RST_STREAM")
    ok(len(e._socks) == 1, "with one backend connection")
    c.send(h2.rst_stream_frame(w.sid, h2.CANCEL))
    ok(wait_for(lambda: len(e._socks) == 0, 5), "RST_STREAM CANCEL: the backend connection is closed within 5s")
    r = c.request("GET", "/hello", AUTH)
    is_(c.read_response(r).status, 200, "and the h2 connection still serves a GET")
    is_(e.errors, [], "no errors in the backend")
    c.close()


def nfds(srv):
    try:
        return len(os.listdir("/proc/%d/fd" % srv.proc.pid))
    except OSError:
        return -1


def test_rst_origin(srv):
    # The WebSocket's own end is one of a socketpair (two descriptors),
    # not counted as a connection by /status: its descriptors tell.
    c = h2c(srv)
    c.ping()
    base = nfds(srv)
    w = open_ws(c, "/ws/echo")
    w.send(OP_TEXT, "x")
    is_(summary(w.recv()), (True, 0, OP_TEXT, False, b"x"), "origin: a WebSocket open")
    up = nfds(srv)
    is_(up - base, 2, "its socketpair: two more descriptors in portico")
    c.send(h2.rst_stream_frame(w.sid, h2.CANCEL))
    ok(wait_for(lambda: nfds(srv) == base, 5),
       "RST_STREAM CANCEL: the WebSocket ends, both descriptors closed (%d -> %d, before it %d)"
       % (up, nfds(srv), base))
    r = c.request("GET", "/hello", AUTH)
    s = c.read_response(r)
    is_((s.status, s.body), (200, b"hello over h2"), "and the h2 connection still serves a GET")
    w2 = open_ws(c, "/ws/echo")
    w2.send(OP_TEXT, "again")
    is_(summary(w2.recv()), (True, 0, OP_TEXT, False, b"again"), "and a new WebSocket")
    c.send(h2.rst_stream_frame(w2.sid, h2.CANCEL))
    c.ping()
    ok(wait_for(lambda: nfds(srv) == base, 5), "which a RST_STREAM ends too")
    c.close()


def test_backpressure(srv):
    # The client reads frames but gives no window back: the server's echo
    # stops at the stream's window, then the WebSocket stops reading, then
    # the relay stops taking the client's DATA and its window closes.
    c = h2c(srv, window_updates=False)
    w = open_ws(c, "/ws/plain")
    is_(w.st.status, 200, "a WebSocket whose client gives no window back")
    chunk = os.urandom(65536)
    frame_ = encode_frame(OP_BINARY, chunk)
    rss0 = rss(srv)
    sent = 0
    stalled = None
    end = time.monotonic() + 15
    while sent < 64 * 1024 * 1024 and time.monotonic() < end:
        try:
            c.send_data(w.sid, frame_, timeout=1.0)
        except socket.timeout:
            stalled = "stalled"
            break
        except H2Closed:
            stalled = "closed"
            break
        sent += len(frame_)
    rss1 = rss(srv)
    ok(stalled is not None, "the client's sending stops (%s after %d KiB)" % (stalled, sent >> 10))
    ok(sent < 8 * 1024 * 1024, "bounded by the windows: %d KiB taken" % (sent >> 10))
    bound = (64 if sanitized() else 16) * 1024 * 1024
    ok(rss1 - rss0 < bound, "the server's memory stays bounded (%d KiB more, bound %d MiB)"
       % ((rss1 - rss0) // 1024, bound >> 20))
    c.wait_for(lambda f: False, 1.0)
    rss2 = rss(srv)
    ok(rss2 - rss1 < 4 * 1024 * 1024, "and does not grow while stalled (%d KiB)" % ((rss2 - rss1) // 1024))
    if stalled == "stalled":
        # Open the windows: everything sent comes back, in order.
        c.window_updates = True
        taken = len(w.st.body)
        c.send(h2.window_update_frame(0, 1 << 30), h2.window_update_frame(w.sid, 1 << 30 - 1))
        want = sent // len(frame_)
        good = 0
        for _ in range(want):
            f = w.recv(10)
            if not isinstance(f, Frame) or f.payload != chunk:
                break
            good += 1
        is_(good, want, "the windows opened, all %d messages come back (%d octets were held)" % (want, taken))
    else:
        skip("the connection was dropped")
    c.close()


def test_fanout_unread(srv):
    # The client grants huge windows and then reads nothing at all while
    # the server sends 3000 x 10000 bytes: the WebSocket's backlog, not
    # the relay or the h2 queue, must bound what the server holds.
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        enc = h2.Encoder()
        s.sendall(h2.PREFACE + h2.settings_frame({h2.INITIAL_WINDOW_SIZE: 2 ** 31 - 1, h2.ENABLE_PUSH: 0})
                  + h2.window_update_frame(0, 2 ** 31 - 1 - 65535)
                  + h2.headers_frame(1, enc.encode([(":method", "CONNECT"), (":scheme", "http"),
                                                    (":authority", AUTH), (":path", "/ws/fanout"),
                                                    (":protocol", "websocket"),
                                                    ("sec-websocket-version", "13")])))
        rss0 = rss(srv)
        s.sendall(h2.data_frame(1, encode_frame(OP_TEXT, "3000 " + "m" * 10000)))
        peak = rss0
        for _ in deadline_loop(1.5, 0.1):
            peak = max(peak, rss(srv))
        bound = (64 if sanitized() else 16) * 1024 * 1024
        ok(peak - rss0 < bound, "a client that reads nothing with windows wide open: memory bounded "
           "(%d KiB more, bound %d MiB)" % ((peak - rss0) // 1024, bound >> 20))
        buf = bytearray()
        body = bytearray()
        ended = False
        end = time.monotonic() + 10
        while not ended and time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                d = s.recv(1 << 20)
            except (socket.timeout, OSError):
                break
            if not d:
                break
            buf += d
            while True:
                f, n = h2.parse_frame(buf)
                if f is None:
                    break
                del buf[:n]
                if f.type == h2.SETTINGS and not f.ack:
                    s.sendall(h2.settings_frame(ack=True))
                if f.stream_id == 1 and f.type == h2.DATA:
                    body += f.data
                    ended = ended or f.end_stream
                if f.stream_id == 1 and f.type == h2.RST_STREAM:
                    ended = True
        frames, code, intact, pos = 0, None, True, 0
        while True:
            try:
                wf, n = decode_frame(bytes(body[pos:]))
            except ProtocolError:
                break
            if wf is None:
                break
            pos += n
            if wf.opcode == OP_CLOSE:
                code = wf.close_code
                break
            frames += 1
            intact = intact and wf.payload == b"m" * 10000
        is_((code, ended), (1008, True), "it is dropped with close 1008 (past max_backlog), the stream ends")
        ok(intact and 1 <= frames < 300, "after whole messages only (%d of 3000)" % frames)
    finally:
        s.close()


def test_log_status(srv):
    st0 = srv.status_json()
    c = h2c(srv)
    w = open_ws(c, "/ws/echo?logme")
    w.send(OP_TEXT, "log me")
    w.recv()
    w.send(OP_CLOSE, struct.pack("!H", 1000), end_stream=True)
    close_code(w)
    c.close()
    st1 = srv.status_json()
    ok(st1["requests_total"] >= st0["requests_total"] + 2 and st1["connections_total"] >= st0["connections_total"] + 1,
       "status counts the request and the connection (requests %d -> %d, connections %d -> %d)"
       % (st0["requests_total"], st1["requests_total"], st0["connections_total"], st1["connections_total"]))
    line = wait_for(lambda: re.search(r'^.*"GET /ws/echo\?logme HTTP/2\.0" \d+ .*$', access_log(srv), re.M), 3)
    like(line.group(0) if line else access_log(srv)[-2000:], r'"GET /ws/echo\?logme HTTP/2\.0" 200 ',
         "access log: \"GET /ws/echo?logme HTTP/2.0\" 200")


def test_chromium(srv):
    if find_chromium() is None:
        skip("no chromium", 3)
        return
    if not (os.path.exists(DEMO_CERT) and os.path.exists(DEMO_KEY)):
        skip("no demo certificate (make builds it)", 3)
        return
    state = body = proto = ""
    b = None
    try:
        b = Browser()
        p = b.page("https://localhost:%d/echo.html?say=over%%20h2%%20both%%20ways" % srv.port2)
        proto = p.eval("performance.getEntriesByType('navigation')[0].nextHopProtocol")
        state = p.wait_for("(() => { const s = document.getElementById('state').textContent;"
                           " return s.startsWith('open') ? s : null; })()", 15) or ""
        body = p.wait_for("(() => { const t = document.body.innerText;"
                          " return t.includes('\\u2190 ') ? t : null; })()", 15) or ""
    except (OSError, RuntimeError, JSError) as ex:
        state = body = repr(ex)
    finally:
        if b is not None:
            b.close()
    is_(proto, "h2", "chromium: echo.html came over h2")
    like(body, "\u2190 over h2 both ways", "chromium: the echoed message shows")
    line = wait_for(lambda: re.search(r'^.*"GET /ws/echo HTTP/2\.0" 200 .*HeadlessChrome.*$', access_log(srv),
                                      re.M), 3)
    ok(line is not None, "portico logged chromium's WebSocket as \"GET /ws/echo HTTP/2.0\" 200 (over h2)")
    if line is None:
        diag(access_log(srv)[-3000:])


def test_stop(srv):
    a, b = h2c(srv), h2s(srv)
    wa, wb = open_ws(a, "/ws/echo"), open_ws(b, "/ws/echo")
    for w in (wa, wb):
        w.send(OP_TEXT, "before stop")
        w.recv()
    srv.signal(signal.SIGTERM)
    got = [close_code(w, 6) for w in (wa, wb)]
    is_(got, [(1001, "ended")] * 2, "graceful stop: each h2 WebSocket gets close 1001, then its stream ends")
    ga = [c.read_until_goaway(5) for c in (a, b)]
    ok(all(g is not None for g in ga), "and each h2 connection gets GOAWAY (%s)"
       % [h2.ERROR_NAMES[g.error_code] if g else None for g in ga])
    for c in (a, b):
        c.close()
    is_(srv.wait(10), 0, "portico exits 0")


def main():
    tmp = tempfile.mkdtemp(prefix="portico-h2ws-")
    e = EchoServer()
    plain = Backend("plain")
    try:
        if os.path.exists(DEMO_CERT) and os.path.exists(DEMO_KEY):
            cert, key = DEMO_CERT, DEMO_KEY
        else:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-days", "1", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                            "-keyout", key, "-out", cert],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        with Server(CONF % {"cert": cert, "key": key, "backend": e.addr, "plain": plain.addr}) as srv:
            test_settings(srv)
            test_echo(srv, "h2c", h2c)
            test_echo(srv, "TLS", h2s)
            test_features(srv)
            test_multiplex(srv)
            test_chat(srv)
            test_proxy(srv, e)
            test_rst_origin(srv)
            test_backpressure(srv)
            test_fanout_unread(srv)
            test_log_status(srv)
            test_chromium(srv)
            test_stop(srv)
    finally:
        e.stop()
        plain.stop()
        shutil.rmtree(tmp, ignore_errors=True)


run(main)
