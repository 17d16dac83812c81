#!/usr/bin/env python3
# Proxy and client timers: once the request head is in, header_timeout no
# longer applies, nor body_timeout once the body is in; a slow backend is
# judged by the pool's own timeouts (read_timeout, retries), and an idle
# WebSocket tunnel by tunnel_timeout alone.
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403
from ws import WSClient, EchoServer, Frame  # noqa: E402

CONF = """\
[global]
workers = 1
header_timeout = 1s
body_timeout = 1s
keepalive_timeout = 1s

[listen:http]
address = 127.0.0.1:{port}

[pool:slow]
server = {a}
read_timeout = 5s

[pool:stall]
server = {b}
server = {c}
read_timeout = 800ms
retries = 1
max_fails = 0

[pool:ws]
server = {e}

[route:slow]
path = /slow
pool = slow

[route:stall]
path = /stall
pool = stall

[route:ws]
path = /ws/
pool = ws
"""


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def main():
    a, b, c = Backend("a"), Backend("b"), Backend("c")
    e = EchoServer()
    conf = CONF.replace("{a}", a.addr).replace("{b}", b.addr).replace("{c}", c.addr).replace("{e}", e.addr)
    try:
        with Server(conf) as srv:
            # The head in one read; the answer after header_timeout.
            conn = srv.connect(timeout=8)
            r, el = timed(lambda: exchange(conn, "GET", "/slow?delay=1.6", timeout=8))
            is_(r and r.status, 200, "a backend answering after header_timeout (1.6s > 1s): 200")
            ok(el >= 1.5, "  after the backend's delay (%.2fs)" % el)
            is_(echoed(r)["target"] if r else None, "/slow?delay=1.6", "  the backend's answer")
            # The same connection goes on (keep-alive after a long wait).
            r = exchange(conn, "GET", "/slow?delay=0", timeout=5)
            is_(r and r.status, 200, "  and the connection serves the next request")
            conn.close()

            # The head in two pieces (the slowloris deadline was armed) then a slow answer.
            conn = srv.connect(timeout=8)
            conn.send(b"GET /slow?delay=1.5 HTTP/1.1\r\n")
            time.sleep(0.3)
            conn.send(b"Host: localhost\r\n\r\n")
            r, el = timed(lambda: conn.read_response(timeout=8))
            is_(r and r.status, 200, "a head sent in two pieces, then a backend slower than header_timeout: 200")
            conn.close()

            # A body read within body_timeout, then a slow answer.
            conn = srv.connect(timeout=8)
            r = exchange(conn, "POST", "/slow?delay=1.5", body=b"x" * 1000, timeout=8)
            is_(r and r.status, 200, "a POST whose answer comes after body_timeout: 200")
            is_(echoed(r)["body_len"] if r else None, 1000, "  with the whole body at the backend")
            conn.close()

            # A body that stops coming: 408 after body_timeout.
            conn = srv.connect(timeout=8)
            conn.send(b"POST /slow?delay=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            r, el = timed(lambda: conn.read_response(timeout=8))
            is_(r and r.status, 408, "a proxied body that stops coming: 408")
            ok(0.9 <= el <= 3.0, "  after body_timeout (%.2fs)" % el)
            conn.close()

            # Two stalled servers, read_timeout 800ms, one retry: 504 after
            # about 1.6s, not a silent close at header_timeout (1s).
            conn = srv.connect(timeout=8)
            r, el = timed(lambda: exchange(conn, "GET", "/stall", timeout=8))
            is_(r and r.status, 504, "two stalled servers with a retry: 504")
            ok(1.4 <= el <= 4.0, "  after both read timeouts (%.2fs)" % el)
            conn.close()

            # An idle WebSocket tunnel outlives header, body and keep-alive timeouts.
            w = WSClient("127.0.0.1", srv.port, "/ws/idle")
            try:
                is_(w.status, 101, "tunnel: 101")
                time.sleep(1.5)
                w.send_text("after a pause")
                f = w.recv(5)
                is_(f.payload if isinstance(f, Frame) else f, b"after a pause",
                    "tunnel idle for 1.5s (> header, body and keep-alive timeouts) still echoes")
            finally:
                w.close()
            unlike(srv.stderr(), r"\[error\]", "no error logged")
    finally:
        for x in (a, b, c):
            x.stop()
        e.stop()


run(main)
