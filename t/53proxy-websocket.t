#!/usr/bin/env python3
# Proxy: WebSocket through a 101 Switching Protocols tunnel.  The handshake
# both ways, echo of every frame kind and length form byte-exact, ordering,
# the close handshake, half-close, concurrent tunnels, the idle limit
# (tunnel_timeout), a 101 not asked for, and the rest of the server going on
# while tunnels are open.
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import gen_bytes  # noqa: E402
from ws import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1
shutdown_timeout = 2s

[listen:http]
address = 127.0.0.1:{port}

[pool:ws]
server = {e}

[pool:wsidle]
server = {e}
tunnel_timeout = 1s

; A backend that answers 101 unasked fails a request; passive health would
; take it out (503 after): its own pool, with that turned off.
[pool:force]
server = {e}
max_fails = 0

[route:status]
path = /status
status = json

[route:ws]
path = /ws/
pool = ws

[route:idle]
path = /idle/
pool = wsidle

[route:force]
path = /force101
pool = force
"""


def fsum(f):
    """(fin, rsv, opcode, masked, payload) of a frame, or the reason there is none."""
    return (f.fin, f.rsv, f.opcode, f.masked, f.payload)


def rx(c, timeout=5.0):
    try:
        return c.recv(timeout)
    except (WSClosed, socket.timeout, OSError, ProtocolError) as e:
        return e


def rxs(c, timeout=5.0):
    f = rx(c, timeout)
    return fsum(f) if isinstance(f, Frame) else repr(f)


def client(srv, path, **kw):
    return WSClient("127.0.0.1", srv.port, path, **kw)


def test_codec():
    # RFC 6455 section 1.3 and 5.7 examples.
    is_(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "ws.py: accept key of the RFC example")
    is_(encode_frame(OP_TEXT, b"Hello", mask=False), bytes.fromhex("810548656c6c6f"), "ws.py: unmasked 'Hello'")
    m = encode_frame(OP_TEXT, b"Hello", mask=bytes.fromhex("37fa213d"))
    is_(m, bytes.fromhex("818537fa213d7f9f4d5158"), "ws.py: masked 'Hello'")
    f, n = decode_frame(m + b"x")
    is_((fsum(f), f.lenform, n), ((True, 0, OP_TEXT, True, b"Hello"), 7, 11), "ws.py: decodes it back, 11 bytes used")
    is_(encode_frame(OP_BINARY, bytes(256), mask=False)[:4], bytes.fromhex("827e0100"), "ws.py: 16-bit length")
    big = encode_frame(OP_BINARY, bytes(65536), mask=False)
    is_(big[:10], bytes.fromhex("827f0000000000010000"), "ws.py: 64-bit length")
    is_([decode_frame(big[:k]) for k in (1, 9, 65545)], [(None, 0)] * 3, "ws.py: a partial frame is not decoded")
    f, n = decode_frame(encode_frame(OP_CLOSE, struct.pack("!H", 1001) + b"bye", mask=True))
    is_((f.opcode, f.close_code, f.payload[2:], f.masked), (OP_CLOSE, 1001, b"bye", True), "ws.py: close code decoded")


def test_handshake(srv, e):
    n0 = len(e.upgrades)
    c = client(srv, "/ws/hs", headers=("Sec-WebSocket-Protocol: chat",))
    try:
        is_(c.status_line, "HTTP/1.1 101 Switching Protocols", "101: status line")
        is_(c.header_all("Upgrade"), ["websocket"], "101: Upgrade: websocket, once")
        is_(c.header_all("Connection"), ["upgrade"], "101: Connection: upgrade, once")
        is_(c.header_all("Sec-WebSocket-Accept"), [accept_key(c.key)], "101: Sec-WebSocket-Accept matches the key")
        is_([c.header(h) for h in ("Content-Length", "Transfer-Encoding")], [None, None],
            "101: no Content-Length, no Transfer-Encoding")
        is_(c.buf, b"", "101: nothing after the head")
        ups = e.upgrades[n0:]
        is_(len(ups), 1, "the backend saw one upgrade request")
        line, hs = ups[0] if ups else ("", [])
        low = [(k.lower(), v) for k, v in hs]
        is_(line, "GET /ws/hs HTTP/1.1", "backend: request line")
        is_([v for k, v in low if k == "connection"], ["upgrade"], "backend: Connection: upgrade")
        is_([v for k, v in low if k == "upgrade"], ["websocket"], "backend: Upgrade: websocket")
        is_([[v for k, v in low if k == h] for h in ("sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol")],
            [[c.key], ["13"], ["chat"]], "backend: the client's Sec-WebSocket-Key, -Version and -Protocol, unchanged")
    finally:
        c.close()


def test_echo(srv, e):
    c = client(srv, "/ws/echo")
    try:
        is_(c.status, 101, "echo tunnel: 101")
        text = "héllo, wörld ☃"
        c.send_text(text)
        f = rx(c)
        is_(fsum(f) if isinstance(f, Frame) else f, (True, 0, OP_TEXT, False, text.encode()), "text frame echoed (unmasked from the server)")

        data = bytes(range(256)) * 2
        c.send_binary(data)
        f = rx(c)
        is_((fsum(f), f.lenform) if isinstance(f, Frame) else f, ((True, 0, OP_BINARY, False, data), 16),
            "512-byte binary frame echoed byte-exact (16-bit length)")

        data = gen_bytes(70 * 1024, 53)
        c.send_binary(data)
        f = rx(c, 10)
        got = (f.opcode, f.lenform, len(f.payload), f.payload == data) if isinstance(f, Frame) else repr(f)
        is_(got, (OP_BINARY, 64, len(data), True), "70 KiB binary frame echoed byte-exact (64-bit length)")

        msgs = ["message %03d %s" % (i, "x" * (i % 37)) for i in range(200)]
        c.send_raw(b"".join(encode_frame(OP_TEXT, m) for m in msgs))
        got = []
        for _ in range(200):
            f = rx(c, 10)
            if not isinstance(f, Frame):
                got.append(repr(f))
                break
            got.append(f.text if f.opcode == OP_TEXT else repr(f))
        is_(got, msgs, "200 frames sent back-to-back are echoed in order")

        c.ping(b"ping-\x00\xff-payload")
        is_(rxs(c), (True, 0, OP_PONG, False, b"ping-\x00\xff-payload"), "ping answered by a pong with its payload")

        # Fragments pass as they are: the proxy does not look at frames.
        c.send_raw(encode_frame(OP_TEXT, "frag-", fin=False) + encode_frame(OP_CONT, "ment", fin=True))
        is_([rxs(c), rxs(c)], [(False, 0, OP_TEXT, False, b"frag-"), (True, 0, OP_CONT, False, b"ment")],
            "a fragmented message is relayed frame by frame")

        # Close handshake, with a large frame still in flight before it: the
        # client gets every byte, then the close, then the TCP close.
        data = gen_bytes(256 * 1024, 54)
        c.send_raw(encode_frame(OP_BINARY, data) + encode_frame(OP_CLOSE, struct.pack("!H", 1000) + b"done"))
        f = rx(c, 10)
        is_((f.opcode, f.payload == data) if isinstance(f, Frame) else repr(f), (OP_BINARY, True),
            "256 KiB frame queued before the close is echoed whole")
        is_(rxs(c), (True, 0, OP_CLOSE, False, struct.pack("!H", 1000)), "close 1000 echoed")
        t0 = time.monotonic()
        closed = c.closed_within(3)
        ok(closed and c.buf == b"", "then the TCP connection closes (in %.2fs), nothing more sent" % (time.monotonic() - t0))
    finally:
        c.close()


def test_early_bytes(srv):
    # The client's first frame in the same write as the handshake, and the
    # backend's first frame in the same write as its 101.
    c = client(srv, "/ws/early?hello=welcome", early=encode_frame(OP_TEXT, "first"))
    try:
        is_(c.status, 101, "early bytes: 101")
        is_([rxs(c), rxs(c)], [(True, 0, OP_TEXT, False, b"welcome"), (True, 0, OP_TEXT, False, b"first")],
            "a frame sent with the 101 and one sent with the request both get through")
    finally:
        c.close()


def test_half_close(srv):
    c = client(srv, "/ws/half")
    try:
        c.send_text("last words")
        c.shutdown_write()
        is_(rxs(c), (True, 0, OP_TEXT, False, b"last words"), "half-close: the frame sent before it is still echoed")
        ok(c.closed_within(3), "then the backend's close reaches the client")
    finally:
        c.close()


def test_concurrent(srv, e):
    n0 = e.connections
    a = client(srv, "/ws/a")
    b = client(srv, "/ws/b")
    try:
        is_((a.status, b.status, a.accept_ok, b.accept_ok), (101, 101, True, True), "two clients: both upgraded")
        ga, gb = [], []
        for i in range(20):
            a.send_text("A%d" % i)
            b.send_binary(b"B%d" % i)
            if i % 5 == 4:
                ga += [rxs(a) for _ in range(5)]
                gb += [rxs(b) for _ in range(5)]
        is_(ga, [(True, 0, OP_TEXT, False, b"A%d" % i) for i in range(20)], "client A gets exactly its own 20 echoes")
        is_(gb, [(True, 0, OP_BINARY, False, b"B%d" % i) for i in range(20)], "client B gets exactly its own 20 echoes")
        is_(e.connections - n0, 2, "over two backend connections")
        a.close_frame(1000)
        is_(rxs(a), (True, 0, OP_CLOSE, False, struct.pack("!H", 1000)), "A closes")
        ok(a.closed_within(3), "A's connection ends")
        b.send_text("still here")
        is_(rxs(b), (True, 0, OP_TEXT, False, b"still here"), "B goes on after A has gone")
    finally:
        a.close()
        b.close()


def test_others_meanwhile(srv, e):
    t1 = client(srv, "/ws/t1")
    t2 = client(srv, "/ws/t2")
    try:
        is_((t1.status, t2.status), (101, 101), "two tunnels open")
        r = srv.get("/ws/plain?x=1")
        is_((r and r.status, r and r.body), (200, b"plain GET /ws/plain?x=1\n"),
            "a plain GET on the WebSocket route works on another connection")
        line, hs = e.plain[-1] if e.plain else ("", [])
        is_((line, [v for k, v in hs if k.lower() == "upgrade"]), ("GET /ws/plain?x=1 HTTP/1.1", []),
            "  and reaches the backend without an Upgrade")

        def status():
            r = srv.get("/status")
            try:
                return json.loads(r.body) if r is not None and r.status == 200 else None
            except ValueError:
                return None
        st = status()
        ok(isinstance(st, dict), "/status answers 200 JSON while tunnels are open")
        # The connections closed just before (test_concurrent's B, the plain
        # GET's) count until their worker has seen them go; with two workers
        # (make tsan) under load that can be after this request is answered.
        # Asked again until it settles, with a deadline.
        last = [st]

        def settled():
            last[0] = status()
            return last[0] and last[0].get("active_connections") == 3
        if isinstance(st, dict) and st.get("active_connections") != 3:
            diag("active_connections %r at first; asking again" % st.get("active_connections"))
            wait_for(settled, 5, 0.1)
            st = last[0]
        is_(st and st.get("active_connections"), 3, "/status: active_connections 3 (two tunnels and itself)")
        for i, t in enumerate((t1, t2)):
            t.send_text("after status %d" % i)
        is_([rxs(t1), rxs(t2)], [(True, 0, OP_TEXT, False, b"after status 0"), (True, 0, OP_TEXT, False, b"after status 1")],
            "the tunnels still work after")
    finally:
        t1.close()
        t2.close()


def test_unasked_101(srv, e):
    n0 = len(e.plain)
    c = srv.connect()
    try:
        c.send(b"GET /force101 HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            r = c.read_response()
        except (ServerError, socket.timeout) as ex:
            r = ex
        is_(r.status if isinstance(r, Response) else repr(r), 502, "a 101 not asked for: 502 to the client")
        is_(len(e.plain) - n0, 1, "  the backend did get the request")
    finally:
        c.close()
    # Asked for by a client that sends Upgrade without Connection: upgrade:
    # not an upgrade request either.
    c = srv.connect()
    try:
        c.send(b"GET /force101 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
        try:
            r = c.read_response()
        except (ServerError, socket.timeout) as ex:
            r = ex
        is_(r.status if isinstance(r, Response) else repr(r), 502,
            "Upgrade without Connection: upgrade, answered 101: 502")
    finally:
        c.close()
    c = client(srv, "/ws/after502")
    try:
        c.send_text("ok")
        is_((c.status, rxs(c)), (101, (True, 0, OP_TEXT, False, b"ok")), "WebSocket still works after the 502s")
    finally:
        c.close()


def test_idle(srv):
    idle = client(srv, "/idle/quiet")
    busy = client(srv, "/idle/busy")
    talk = client(srv, "/idle/talk")
    other = client(srv, "/ws/long")
    try:
        is_((idle.status, busy.status, talk.status, other.status), (101, 101, 101, 101), "idle tests: four tunnels")
        idle.send_text("one")
        is_(rxs(idle), (True, 0, OP_TEXT, False, b"one"), "idle tunnel echoes first")
        t0 = time.monotonic()
        # busy: a ping and its pong every 0.3 s (bytes both ways);
        # talk: an unsolicited pong every 0.3 s (bytes client -> backend only).
        bres, tres = [], []
        idle_closed_at = None
        for i in range(8):
            busy.ping(b"b%d" % i)
            tres.append(talk.pong(b"t%d" % i))
            bres.append(rxs(busy))
            end = time.monotonic() + 0.3
            if idle_closed_at is None:
                if idle.closed_within(max(0.001, end - time.monotonic())):
                    idle_closed_at = time.monotonic() - t0
            time.sleep(max(0.0, end - time.monotonic()))
        if idle_closed_at is None and idle.closed_within(1.0):
            idle_closed_at = time.monotonic() - t0
        ok(idle_closed_at is not None and 0.8 <= idle_closed_at <= 2.2,
           "tunnel_timeout = 1s: an idle tunnel is closed within ~2 s (after %s s)"
           % (None if idle_closed_at is None else "%.2f" % idle_closed_at))
        is_(idle.buf, b"", "  with no bytes sent to it")
        is_(bres, [(True, 0, OP_PONG, False, b"b%d" % i) for i in range(8)],
            "a tunnel with bytes both ways every 0.3 s stays open past it (2.4 s)")
        talk.send_text("are you there")
        # BUG: proxy/proxy.c u_arm arms tunnel_timeout on the backend read
        # event only (the client's read event has no timeout in a tunnel),
        # so bytes going client -> backend alone do not count as activity,
        # against portico.ini.5 ("idle, with no byte going either way").
        is_((tres, rxs(talk)), ([True] * 8, (True, 0, OP_TEXT, False, b"are you there")),
            "a tunnel with bytes only client -> backend every 0.3 s is not idle: still open (2.4 s)")
        other.send_text("hello after 2.4 s")
        is_(rxs(other), (True, 0, OP_TEXT, False, b"hello after 2.4 s"),
            "a tunnel in a pool with the default tunnel_timeout stays open")
    finally:
        for c in (idle, busy, talk, other):
            c.close()


def main():
    test_codec()
    e = EchoServer()
    try:
        with Server(CONF.replace("{e}", e.addr)) as srv:
            test_handshake(srv, e)
            test_echo(srv, e)
            test_early_bytes(srv)
            test_half_close(srv)
            test_concurrent(srv, e)
            test_others_meanwhile(srv, e)
            test_unasked_101(srv, e)
            test_idle(srv)
            # SIGTERM with a tunnel open: shutdown_timeout (2s) ends it.
            last = client(srv, "/ws/last")
            is_(last.status, 101, "a tunnel open at SIGTERM")
            t0 = time.monotonic()
            srv.stop()
            el = time.monotonic() - t0
            ok(el < 4.0, "SIGTERM with a tunnel open: exits within shutdown_timeout (%.2fs)" % el)
            ok(last.closed_within(1), "  and the tunnel's client connection is closed")
            last.close()
        is_(e.errors, [], "the echo backend saw no errors")
    finally:
        e.stop()


run(main)
