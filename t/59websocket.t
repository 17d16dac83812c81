#!/usr/bin/env python3
# Origin: WebSocket endpoints (websocket = echo).  The handshake (RFC 6455
# section 4) and each way it is refused, subprotocols, the Origin
# allow-list, permessage-deflate negotiation (RFC 7692); frames: masking,
# length forms, RSV bits, opcodes, control frames, fragmentation with
# control frames between fragments, max_message (1009, from the header),
# UTF-8 across fragments (1007), the close handshake and its code checks
# (1002, 1007); compressed messages and a decompression bomb; pings and the
# idle timeout; a client that does not read; TLS; 200 concurrent clients;
# a graceful stop (1001).
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from ws import *  # noqa: E402,F403
from browser import Browser, JSError, find_chromium  # noqa: E402

os.environ["PORTICO_TEST_MODULES"] = "1"  # websocket = test-fanout

CONF = """\
[global]
workers = 2
shutdown_timeout = 3s
linger_time = 1s
access_log = {dir}/access.log

[listen:http]
address = 127.0.0.1:{port}

[listen:https]
address = 127.0.0.1:{port2}
tls_cert = %(t)s/cert.pem
tls_key = %(t)s/key.pem

[route:echo]
path = /ws/echo
websocket = echo
ping_interval = 0

[route:small]
path = /ws/small
websocket = echo
max_message = 1k
ping_interval = 0

[route:plain]
path = /ws/plain
websocket = echo
compression = off
ping_interval = 0

[route:proto]
path = /ws/proto
websocket = echo
subprotocols = chat, superchat
subprotocols = v2.chat
origins = https://good.example, http://localhost:8080

[route:ping]
path = /ws/ping
websocket = echo
ping_interval = 300ms
idle_timeout = 5s

; The test suite's own mode (PORTICO_TEST_MODULES, see origin/websocket.c):
; "N text" comes back N times from one shared encoding, as a room sends.
[route:fanout]
path = /ws/fanout
websocket = test-fanout
max_backlog = 64k
ping_interval = 0

[route:page]
path = /echo.html
root = etc/www

[route:idle]
path = /ws/idle
websocket = echo
ping_interval = 0
idle_timeout = 500ms
"""

CLOSED = "closed"


def rx(c, timeout=5.0):
    try:
        return c.recv(timeout)
    except (WSClosed, socket.timeout, OSError, ProtocolError) as e:
        return e


def close_code(c, timeout=5.0):
    """The code of the next close frame from the server, skipping data; then
    whether TCP closed: (code, closed)."""
    end = time.monotonic() + timeout
    while True:
        f = rx(c, max(0.01, end - time.monotonic()))
        if not isinstance(f, Frame):
            return (repr(f), True)
        if f.opcode == OP_CLOSE:
            return (f.close_code, c.closed_within(max(0.5, end - time.monotonic())))


def client(srv, path="/ws/echo", **kw):
    return WSClient("127.0.0.1", srv.port, path, **kw)


def raw_request(srv, head):
    c = srv.connect()
    c.send(head)
    r = c.read_response()
    c.close()
    return r


def summary(f):
    if not isinstance(f, Frame):
        return repr(f)
    return (f.fin, f.rsv, f.opcode, f.payload)


def test_handshake(srv):
    c = client(srv)
    is_(c.status_line, "HTTP/1.1 101 Switching Protocols", "101 Switching Protocols")
    is_((c.header("Upgrade"), c.header("Connection"), c.accept_ok), ("websocket", "Upgrade", True),
        "Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Accept from the key")
    is_([c.header(h) for h in ("Content-Length", "Transfer-Encoding", "Sec-WebSocket-Protocol",
                               "Sec-WebSocket-Extensions")], [None] * 4,
        "no length, no protocol or extension not offered")
    c.close()

    key = new_key()
    base = ("GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % key)
    r = raw_request(srv, "GET /ws/echo HTTP/1.1\r\nHost: x\r\n\r\n")
    is_((r.status, r.header("Upgrade")), (426, "websocket"), "plain GET: 426 with Upgrade: websocket")
    r = raw_request(srv, base.replace("GET", "POST", 1) + "Content-Length: 0\r\n\r\n")
    is_(r.status, 400, "POST with Upgrade: 400")
    r = raw_request(srv, base.replace("HTTP/1.1", "HTTP/1.0", 1) + "\r\n")
    is_(r.status, 400, "HTTP/1.0 with Upgrade: 400")
    r = raw_request(srv, base.replace("Connection: Upgrade", "Connection: keep-alive") + "\r\n")
    is_(r.status, 400, "Connection without upgrade: 400")
    r = raw_request(srv, base.replace("Version: 13", "Version: 8") + "\r\n")
    is_((r.status, r.header("Sec-WebSocket-Version")), (426, "13"), "version 8: 426 with Sec-WebSocket-Version: 13")
    r = raw_request(srv, base.replace("Sec-WebSocket-Version: 13\r\n", "") + "\r\n")
    is_(r.status, 400, "no version: 400")
    for name, k in (("not base64", "!!!!!!!!!!!!!!!!!!!!!A=="), ("15 bytes", "AAAAAAAAAAAAAAAAAAAA"),
                    ("17 bytes", "AAAAAAAAAAAAAAAAAAAAAAA="), ("empty", "")):
        r = raw_request(srv, base.replace(key, k) + "\r\n")
        is_(r.status, 400, "key %s: 400" % name)
    r = raw_request(srv, base.replace("Sec-WebSocket-Key: %s\r\n" % key, "") + "\r\n")
    is_(r.status, 400, "no key: 400")
    r = raw_request(srv, base + "Sec-WebSocket-Key: %s\r\n\r\n" % new_key())
    is_(r.status, 400, "two keys: 400")
    c = client(srv, headers=("Connection: keep-alive, UPGRADE",))
    is_(c.status, 101, "Connection list with upgrade in any case: 101")
    c.close()
    c = WSClient("127.0.0.1", srv.port, "/ws/echo", early=encode_frame(OP_TEXT, "early"))
    is_(summary(rx(c)), (True, 0, OP_TEXT, b"early"), "a frame sent with the handshake is echoed")
    c.close()
    def log():
        p = srv.path("access.log")
        return open(p).read() if os.path.exists(p) else ""
    like(wait_for(lambda: '" 101 ' in log() and log(), 3) or log(), r'"GET /ws/echo HTTP/1.1" 101 ',
         "the 101 is in the access log (written once a second)")


def test_subprotocols_origins(srv):
    c = client(srv, "/ws/proto", headers=("Sec-WebSocket-Protocol: foo, superchat, chat",))
    is_((c.status, c.header("Sec-WebSocket-Protocol")), (101, "superchat"), "first offered protocol the route has")
    c.close()
    c = client(srv, "/ws/proto", headers=("Sec-WebSocket-Protocol: foo", "Sec-WebSocket-Protocol: v2.chat"))
    is_(c.header("Sec-WebSocket-Protocol"), "v2.chat", "offers over two header lines, from the second key line")
    c.close()
    c = client(srv, "/ws/proto", headers=("Sec-WebSocket-Protocol: foo, bar",))
    is_((c.status, c.header("Sec-WebSocket-Protocol")), (101, None), "nothing in common: no protocol named")
    c.close()
    c = client(srv, "/ws/echo", headers=("Sec-WebSocket-Protocol: chat",))
    is_(c.header("Sec-WebSocket-Protocol"), None, "no subprotocols configured: none named")
    c.close()
    c = client(srv, "/ws/proto", headers=("Origin: https://evil.example",))
    is_(c.status, 403, "Origin outside the list: 403")
    c.close()
    c = client(srv, "/ws/proto", headers=("Origin: HTTPS://good.example",))
    is_(c.status, 101, "Origin in the list (any case): 101")
    c.close()
    c = client(srv, "/ws/echo", headers=("Origin: https://evil.example",))
    is_(c.status, 101, "no origins configured: any Origin")
    c.close()


def ext(srv, offer, path="/ws/echo"):
    hs = tuple("Sec-WebSocket-Extensions: " + o for o in offer) if isinstance(offer, tuple) else \
        ("Sec-WebSocket-Extensions: " + offer,)
    c = client(srv, path, headers=hs)
    st, e = c.status, c.header("Sec-WebSocket-Extensions")
    c.close()
    return st, e


def test_extensions(srv):
    base = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    is_(ext(srv, "permessage-deflate"), (101, base), "permessage-deflate accepted, no context takeover both ways")
    is_(ext(srv, "permessage-deflate; client_max_window_bits"), (101, base),
        "client_max_window_bits without value: accepted")
    is_(ext(srv, "permessage-deflate; client_max_window_bits=10"), (101, base + "; client_max_window_bits=10"),
        "client_max_window_bits=10 kept")
    is_(ext(srv, "permessage-deflate; server_max_window_bits=10"), (101, base + "; server_max_window_bits=10"),
        "server_max_window_bits=10 answered")
    is_(ext(srv, 'permessage-deflate; server_max_window_bits="12"'), (101, base + "; server_max_window_bits=12"),
        "a quoted value")
    is_(ext(srv, "permessage-deflate; server_max_window_bits=8"), (101, None),
        "server_max_window_bits=8 declined (zlib cannot)")
    is_(ext(srv, "permessage-deflate; server_max_window_bits=16, permessage-deflate"), (101, base),
        "an invalid offer passed over for the next")
    is_(ext(srv, "permessage-deflate; foo, permessage-deflate; server_no_context_takeover=1"), (101, None),
        "an unknown parameter, a value where none goes: declined")
    is_(ext(srv, "permessage-deflate; client_no_context_takeover; client_no_context_takeover"), (101, None),
        "a repeated parameter: declined")
    is_(ext(srv, "permessage-deflate; server_max_window_bits=010"), (101, None), "a leading zero: declined")
    is_(ext(srv, "x-webkit-deflate-frame"), (101, None), "another extension: not answered")
    is_(ext(srv, ("x-foo", "permessage-deflate")), (101, base), "offers over two header lines")
    is_(ext(srv, "permessage-deflate", "/ws/plain"), (101, None), "compression = off: not answered")
    is_(ext(srv, "permessage-deflate; =")[0], 400, "a malformed header: 400")


def test_frames(srv):
    c = client(srv)
    c.send_text("héllo ☃")
    is_(summary(rx(c)), (True, 0, OP_TEXT, "héllo ☃".encode()), "text echoed as one text message")
    c.send_binary(bytes(range(256)))
    f = rx(c)
    is_((summary(f), f.lenform), ((True, 0, OP_BINARY, bytes(range(256))), 16), "binary echoed, 16-bit length")
    data = os.urandom(70000)
    c.send_binary(data)
    f = rx(c)
    is_((f.payload == data, f.lenform, f.masked), (True, 64, False), "70000 bytes: 64-bit length, unmasked")
    c.send(OP_TEXT, b"")
    is_(summary(rx(c)), (True, 0, OP_TEXT, b""), "empty message echoed")
    c.send_raw(encode_frame(OP_TEXT, b"short", lenform=64))
    f = rx(c)
    is_((summary(f), f.lenform), ((True, 0, OP_TEXT, b"short"), 7), "non-minimal length from the client taken; ours minimal")
    c.send(OP_TEXT, "Hel", fin=False)
    c.ping(b"in between")
    c.send(OP_CONT, "lo, ", fin=False)
    c.send(OP_CONT, b"", fin=False)
    c.send(OP_CONT, "world", fin=True)
    is_([summary(rx(c)), summary(rx(c))], [(True, 0, OP_PONG, b"in between"), (True, 0, OP_TEXT, b"Hello, world")],
        "fragments with a ping between: pong first, then one message")
    c.pong(b"unasked")
    c.ping(b"")
    is_(summary(rx(c)), (True, 0, OP_PONG, b""), "unsolicited pong ignored; empty ping answered")
    c.close_frame(1000, b"bye")
    is_(close_code(c), (1000, True), "close 1000 echoed, then TCP closed")
    c.close()

    def fails(frames, code, name, path="/ws/echo", headers=()):
        c = client(srv, path, headers=headers)
        c.send_raw(b"".join(frames))
        is_(close_code(c), (code, True), name)
        c.close()

    fails([encode_frame(OP_TEXT, b"x", mask=False)], 1002, "unmasked client frame: 1002")
    fails([encode_frame(OP_TEXT, b"x", rsv=4)], 1002, "RSV1 without permessage-deflate: 1002")
    fails([encode_frame(OP_TEXT, b"x", rsv=2)], 1002, "RSV2: 1002")
    fails([encode_frame(OP_TEXT, b"x", rsv=1)], 1002, "RSV3: 1002")
    fails([encode_frame(3, b"x")], 1002, "reserved data opcode 3: 1002")
    fails([encode_frame(0xB, b"x")], 1002, "reserved control opcode 0xB: 1002")
    fails([encode_frame(OP_PING, b"x" * 126)], 1002, "ping of 126 bytes: 1002")
    fails([encode_frame(OP_PING, b"x", fin=False)], 1002, "fragmented ping: 1002")
    fails([encode_frame(OP_CONT, b"x")], 1002, "continuation with no message: 1002")
    fails([encode_frame(OP_TEXT, b"a", fin=False), encode_frame(OP_TEXT, b"b")], 1002,
          "new message inside a fragmented one: 1002")
    fails([encode_frame(OP_BINARY, b"", lenform=64, length=1 << 63)], 1002, "64-bit length with the top bit: 1002")
    fails([encode_frame(OP_BINARY, b"", length=1025)], 1009,
          "a 1025-byte frame over max_message 1k: 1009 from its header alone", "/ws/small")
    fails([encode_frame(OP_BINARY, b"a" * 600, fin=False), encode_frame(OP_CONT, b"", length=600)], 1009,
          "fragments adding up past max_message: 1009", "/ws/small")
    c = client(srv, "/ws/small")
    c.send_binary(b"b" * 1024)
    is_(len(rx(c).payload), 1024, "exactly max_message: echoed")
    c.close()

    # UTF-8
    fails([encode_frame(OP_TEXT, b"\xff")], 1007, "text with 0xFF: 1007")
    fails([encode_frame(OP_TEXT, b"\xc0\xaf")], 1007, "overlong '/': 1007")
    fails([encode_frame(OP_TEXT, b"\xed\xa0\x80")], 1007, "surrogate U+D800: 1007")
    fails([encode_frame(OP_TEXT, b"\xf4\x90\x80\x80")], 1007, "above U+10FFFF: 1007")
    fails([encode_frame(OP_TEXT, b"ab\xe2\x82")], 1007, "message ending inside a character: 1007")
    fails([encode_frame(OP_TEXT, b"a\xe0", fin=False), encode_frame(OP_CONT, b"\x80\x80")], 1007,
          "overlong split across fragments: 1007")
    fails([encode_frame(OP_TEXT, b"\xce", fin=False), encode_frame(OP_CONT, b"\xba\xe1\xbd", fin=False),
           encode_frame(OP_CONT, b"\xb9\xcf\x83\xce\xbc\xce\xb5\xff")], 1007,
          "valid across fragments, then 0xFF: 1007")
    c = client(srv)
    c.send_raw(encode_frame(OP_TEXT, b"\xce", fin=False) + encode_frame(OP_CONT, b"\xba\xe1\xbd", fin=False)
               + encode_frame(OP_CONT, b"\xb9\xcf\x83\xce\xbc\xce\xb5"))
    is_(summary(rx(c)), (True, 0, OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
        "characters split across fragments: echoed")
    c.send_binary(b"\xff\xfe")
    is_(summary(rx(c)), (True, 0, OP_BINARY, b"\xff\xfe"), "binary is not UTF-8 checked")
    c.close()

    # close frames
    def closes(payload, code, name):
        c = client(srv)
        c.send(OP_CLOSE, payload)
        is_(close_code(c), (code, True), name)
        c.close()

    closes(b"", 1000, "empty close: 1000 back")
    closes(struct.pack("!H", 1001), 1001, "close 1001: echoed")
    closes(struct.pack("!H", 3000) + b"app", 3000, "close 3000: echoed")
    closes(struct.pack("!H", 4999), 4999, "close 4999: echoed")
    closes(b"\x03", 1002, "one-byte close payload: 1002")
    for code in (999, 1004, 1005, 1006, 1015, 1016, 2999, 5000):
        closes(struct.pack("!H", code), 1002, "close %d may not be sent: 1002" % code)
    closes(struct.pack("!H", 1000) + b"\xc3\x28", 1007, "close reason not UTF-8: 1007")
    c = client(srv)
    c.send_text("last")
    c.close_frame(1000)
    c.send_text("after close")
    got = [summary(rx(c)), close_code(c)]
    is_(got, [(True, 0, OP_TEXT, b"last"), (1000, True)], "a message before the close echoed, nothing after it")
    c.close()


PMD = ("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",)


def test_deflate(srv):
    c = client(srv, headers=PMD)
    msg = "compress me " * 100
    c.send_raw(encode_frame(OP_TEXT, pmd_compress(msg), rsv=4))
    f = rx(c)
    ok(isinstance(f, Frame) and f.rsv == 4 and f.opcode == OP_TEXT and pmd_decompress(f.payload) == msg.encode(),
       "compressed text echoed compressed (RSV1), same text")
    ok(isinstance(f, Frame) and len(f.payload) < 100, "and it is smaller (%s bytes)" % (len(f.payload) if isinstance(f, Frame) else f))
    c.send_binary(b"not compressed")
    f = rx(c)
    is_((f.rsv, pmd_decompress(f.payload)), (4, b"not compressed"), "an uncompressed message is echoed compressed too")
    comp = pmd_compress(os.urandom(3000))
    c.send_raw(encode_frame(OP_BINARY, comp[:1000], rsv=4, fin=False) + encode_frame(OP_PING, b"p")
               + encode_frame(OP_CONT, comp[1000:]))
    p, f = rx(c), rx(c)
    is_((summary(p), f.rsv, len(pmd_decompress(f.payload))), ((True, 0, OP_PONG, b"p"), 4, 3000),
        "a fragmented compressed message with a ping between")
    for i in range(3):
        c.send_raw(encode_frame(OP_TEXT, pmd_compress("again %d" % i), rsv=4))
    is_([pmd_decompress(rx(c).payload) for _ in range(3)], [b"again 0", b"again 1", b"again 2"],
        "each message on its own (no context takeover)")
    big = b"z" * 100000
    comp = encode_frame(OP_BINARY, pmd_compress(big), rsv=4)
    c.send_raw(comp * 100)
    got = [rx(c, 20) for _ in range(100)]
    is_(sum(1 for f in got if isinstance(f, Frame) and pmd_decompress(f.payload) == big), 100,
        "100 small frames inflating to 100000 bytes each, in one burst: all echoed")
    c.send_raw(encode_frame(OP_TEXT, pmd_compress(""), rsv=4))
    f = rx(c)
    is_((f.opcode, pmd_decompress(f.payload)), (OP_TEXT, b""), "an empty compressed message")
    c.close()

    def fails(frames, code, name, path="/ws/echo"):
        c = client(srv, path, headers=PMD)
        c.send_raw(b"".join(frames))
        is_(close_code(c), (code, True), name)
        c.close()

    comp = pmd_compress(b"x" * 100)
    fails([encode_frame(OP_TEXT, comp[:5], rsv=4, fin=False), encode_frame(OP_CONT, comp[5:], rsv=4)], 1002,
          "RSV1 on a continuation frame: 1002")
    fails([encode_frame(OP_PING, b"", rsv=4)], 1002, "RSV1 on a ping: 1002")
    fails([encode_frame(OP_BINARY, b"\xff\xff\xff\xff", rsv=4)], 1007, "bad compressed data: 1007")
    fails([encode_frame(OP_TEXT, pmd_compress(b"ok \xff"), rsv=4)], 1007, "compressed text not UTF-8: 1007")
    bomb = pmd_compress(bytes(10 * 1024 * 1024))
    fails([encode_frame(OP_BINARY, bomb, rsv=4)], 1009,
          "a bomb (%d bytes inflating to 10 MiB) over max_message 1m: 1009" % len(bomb))
    fails([encode_frame(OP_BINARY, pmd_compress(bytes(2000)), rsv=4)], 1009,
          "2000 bytes inflated over max_message 1k: 1009", "/ws/small")
    c = client(srv, "/ws/small", headers=PMD)
    c.send_raw(encode_frame(OP_BINARY, pmd_compress(bytes(1024)), rsv=4))
    f = rx(c)
    is_(len(pmd_decompress(f.payload)) if isinstance(f, Frame) else f, 1024, "1024 bytes inflated on a 1k route: echoed")
    c.close()
    c = client(srv, "/ws/echo", headers=("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9",))
    big = os.urandom(100) * 50
    c.send_binary(big)
    f = rx(c)
    is_(pmd_decompress(f.payload, 9), big, "server_max_window_bits=9: inflates with a 512-byte window")
    c.close()


def test_fanout(srv):
    c = client(srv, "/ws/fanout", headers=PMD)
    c.send_text("5 shared")
    got = []
    for _ in range(5):
        f = rx(c)
        got.append((f.rsv, pmd_decompress(f.payload)) if isinstance(f, Frame) else repr(f))
    is_(got, [(4, b"shared")] * 5, "one compressed encoding queued five times by reference")
    c.close()
    c = client(srv, "/ws/fanout")
    c.send_text("3000 " + "m" * 1000)
    frames, code, intact = 0, None, True
    while True:
        f = rx(c, 10)
        if not isinstance(f, Frame):
            code = repr(f)
            break
        if f.opcode == OP_CLOSE:
            code = f.close_code
            break
        intact = intact and f.payload == b"m" * 1000
        frames += 1
    is_(code, 1008, "past max_backlog (64k) the client is dropped with 1008")
    ok(intact and 60 <= frames < 200, "after whole frames only: %d of 3000, none cut" % frames)
    ok(c.closed_within(3), "and TCP closes")
    c.close()


def test_timers(srv):
    c = client(srv, "/ws/ping")
    f = rx(c, 2)
    is_(summary(f), (True, 0, OP_PING, b""), "ping_interval 300ms: a ping comes")
    c.pong(f.payload if isinstance(f, Frame) else b"")
    c.close()
    c = client(srv, "/ws/idle")
    t0 = time.monotonic()
    code = close_code(c, 5)
    el = time.monotonic() - t0
    is_(code, (1001, True), "idle_timeout 500ms: close 1001")
    ok(0.3 < el < 3, "after about 500ms (%.2fs)" % el)
    c.close()
    c = client(srv, "/ws/idle")
    for i in range(6):
        time.sleep(0.15)
        c.ping(b"%d" % i)
        rx(c)
    is_(c.is_open_after(0.2), True, "frames keep an idle_timeout connection open")
    c.close()


def test_slow_reader(srv):
    c = client(srv, "/ws/plain")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    chunk = os.urandom(65536)
    n = 480  # 30 MiB each way: more than the kernel's buffers hold
    rss0 = rss(srv)
    done = threading.Event()

    def writer():
        for _ in range(n):
            if not c.send_binary(chunk):
                break
        done.set()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(1.0)
    sent_all = done.is_set()
    rss1 = rss(srv)
    ok(not sent_all, "the server stops reading from a client that does not read")
    # A sanitizer's quarantine and shadow memory grow RSS on their own.
    sanitized = "TSAN_OPTIONS" in os.environ or "ASAN_OPTIONS" in os.environ
    bound = (64 if sanitized else 16) * 1024 * 1024
    ok(rss1 - rss0 < bound, "its memory stays bounded (%d KiB more, bound %d MiB)" % ((rss1 - rss0) // 1024,
                                                                                        bound >> 20))
    got = 0
    good = True
    for _ in range(n):
        f = rx(c, 20)
        if not isinstance(f, Frame):
            good = False
            break
        good = good and f.payload == chunk
        got += 1
    t.join(10)
    is_((got, good), (n, True), "then every message comes back, in order, once it reads")
    c.close()


def rss(srv):
    try:
        with open("/proc/%d/status" % srv.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def test_tls(srv):
    ctx = ssl.create_default_context(cafile=os.path.join(TLS_DIR, "cert.pem"))
    c = WSClient("127.0.0.1", srv.port2, "/ws/echo", ssl_context=ctx, headers=PMD)
    is_(c.status, 101, "TLS: 101")
    c.send_text("over tls")
    f = rx(c)
    is_(pmd_decompress(f.payload) if isinstance(f, Frame) else f, b"over tls", "TLS: compressed echo")
    data = os.urandom(200000)
    c.send_binary(data)
    f = rx(c)
    is_(pmd_decompress(f.payload) == data if isinstance(f, Frame) else f, True, "TLS: 200000 bytes echoed")
    c.close_frame(1000)
    is_(close_code(c)[0], 1000, "TLS: close handshake")
    c.close()


def test_concurrent(srv):
    n, rounds = 200, 20
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(n, timeout=30)

    def one(i):
        try:
            c = client(srv, "/ws/echo", timeout=20, headers=PMD if i % 2 else ())
            if c.status != 101:
                raise RuntimeError("status %s" % c.status)
            start.wait()
            for k in range(rounds):
                msg = "client %d message %d %s" % (i, k, "x" * (k * 37))
                c.send_text(msg)
                f = c.recv(20)
                got = pmd_decompress(f.payload) if f.rsv else f.payload
                if got != msg.encode():
                    raise RuntimeError("client %d round %d: %r" % (i, k, got[:60]))
            c.close_frame(1000)
            f = c.recv(20)
            if f.opcode != OP_CLOSE:
                raise RuntimeError("no close")
            c.close()
        except Exception as e:
            with lock:
                errors.append(repr(e))

    t0 = time.monotonic()
    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(0.1, 60 - (time.monotonic() - t0)))
    alive = sum(t.is_alive() for t in ts)
    is_((errors[:3], alive), ([], 0), "200 clients x 20 round trips: no error (%.1fs)" % (time.monotonic() - t0))


def test_idle_memory(srv):
    # Bytes per idle connection: RSS growth over many open, idle WebSocket
    # connections (the kernel's socket buffers are not in it).
    n = 1000
    socks = []
    rss0 = rss(srv)
    for i in range(n):
        c = client(srv, "/ws/plain")
        if c.status != 101:
            break
        socks.append(c)
    time.sleep(0.3)
    rss1 = rss(srv)
    per = (rss1 - rss0) / max(1, len(socks))
    diag("idle WebSocket connections: %d, %.0f bytes each (RSS growth)" % (len(socks), per))
    is_(len(socks), n, "%d idle connections open" % n)
    if "TSAN_OPTIONS" in os.environ or "ASAN_OPTIONS" in os.environ:
        skip("a sanitizer's allocator and shadow memory count in RSS")
    else:
        ok(per < 2048, "under 2 KiB each (%.0f)" % per)
    for c in socks:
        c.close()


def test_reload(srv):
    c = client(srv, headers=PMD)
    c.send_text("before reload")
    rx(c)
    srv.signal(signal.SIGHUP)
    ok(wait_for(lambda: "generation 2 in service" in srv.stderr(), 10), "SIGHUP: the configuration reloads")
    c.send_text("after reload")
    f = rx(c)
    is_(pmd_decompress(f.payload) if isinstance(f, Frame) else f, b"after reload",
        "an open WebSocket connection goes on across a reload")
    c2 = client(srv)
    c2.send_text("new")
    is_(summary(rx(c2)), (True, 0, OP_TEXT, b"new"), "and new ones are served")
    c.close()
    c2.close()


def test_browser(srv):
    # The demo page in a real browser, when there is one: Chromium opens
    # /ws/echo from etc/www/echo.html, negotiates permessage-deflate, sends
    # ?say=... and shows the echo.  Driven over DevTools with real
    # deadlines: --dump-dom's virtual time budget ran out before the
    # handshake on a slow (sanitizer) build.
    if find_chromium() is None:
        skip("no chromium", 2)
        return
    state = body = ""
    b = None
    try:
        b = Browser()
        p = b.page("http://127.0.0.1:%d/echo.html?say=h%%C3%%A9llo%%20from%%20chromium" % srv.port)
        state = p.wait_for("(() => { const s = document.getElementById('state').textContent;"
                           " return s.startsWith('open') ? s : null; })()", 20) or ""
        body = p.wait_for("(() => { const t = document.body.innerText;"
                          " return t.includes('\\u2190 ') ? t : null; })()", 20) or ""
    except (OSError, RuntimeError, JSError) as e:
        state = body = repr(e)
    finally:
        if b is not None:
            b.close()
    is_(state, "open (permessage-deflate; server_no_context_takeover; client_no_context_takeover)",
        "chromium: echo.html opens /ws/echo with permessage-deflate")
    like(body, "\u2190 h\u00e9llo from chromium", "chromium: the message comes back")


def test_stop(srv):
    cs = [client(srv) for _ in range(4)]
    for c in cs:
        c.send_text("before stop")
        rx(c)
    srv.signal(signal.SIGTERM)
    got = [close_code(c, 5) for c in cs]
    is_(got, [(1001, True)] * 4, "graceful stop: every connection gets close 1001, then TCP closes")
    for c in cs:
        c.close()
    srv.wait(10)
    is_(srv.rc, 0, "and the server exits 0")


TLS_DIR = None


def main():
    global TLS_DIR
    TLS_DIR = tempfile.mkdtemp(prefix="portico-ws-")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", os.path.join(TLS_DIR, "key.pem"), "-out", os.path.join(TLS_DIR, "cert.pem")],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        with Server(CONF % {"t": TLS_DIR}) as srv:
            test_handshake(srv)
            test_subprotocols_origins(srv)
            test_extensions(srv)
            test_frames(srv)
            test_deflate(srv)
            test_fanout(srv)
            test_timers(srv)
            test_slow_reader(srv)
            test_tls(srv)
            test_concurrent(srv)
            test_idle_memory(srv)
            test_reload(srv)
            test_browser(srv)
            test_stop(srv)
        test_config()
    finally:
        shutil.rmtree(TLS_DIR, ignore_errors=True)


def test_config():
    bad = """\
[listen:http]
address = 127.0.0.1:1

[route:a]
path = /a
websocket = chatter
max_message = 0
ping_interval = soon
compression = maybe
max_backlog = 1k
subprotocols = a/b
"""
    d = tempfile.mkdtemp(prefix="portico-ws-")
    try:
        p = os.path.join(d, "bad.ini")
        with open(p, "w") as f:
            f.write(bad)
        rc, out, err = portico(["-t", "-c", p])
        is_(rc, 1, "bad websocket keys: -t exits 1")
        for line, key in ((6, "websocket"), (7, "max_message"), (8, "ping_interval"), (9, "compression"),
                          (10, "max_backlog"), (11, "subprotocols")):
            like(err, r"bad\.ini:%d: \[route:a\] %s: " % (line, key), "%s refused at line %d" % (key, line))
    finally:
        shutil.rmtree(d, ignore_errors=True)


run(main)
