#!/usr/bin/env python3
# Timeouts: header (idle and absolute), body, keep-alive, and a silent connection.
import os
import select
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1
header_timeout = 1s
body_timeout = 1s
keepalive_timeout = 1s
linger_timeout = 500ms

[listen:http]
address = 127.0.0.1:{port}

[route:hello]
path = /
return = 200 hello
"""

# Slack for a loaded machine or a sanitizer build.
SLACK = 1.5


def expect_408(c, t0, what, limit):
    try:
        r = c.read_response(timeout=limit + SLACK)
    except Exception as e:
        r = None
        diag("%s: %s" % (what, e))
    took = time.monotonic() - t0
    is_(r and r.status, 408, "%s: 408" % what)
    is_(r and (r.header("Connection"), r.body), ("close", error_body(408)), "%s: Connection: close and the 408 page" % what)
    ok(0.8 <= took <= limit + SLACK, "%s: answered after %.2fs (expected 1s..%.1fs)" % (what, took, limit + SLACK))
    try:
        is_(c.read_until_close(2), b"", "%s: then closed" % what)
    except socket.timeout:
        ok(False, "%s: then closed" % what)


def main():
    with Server(CONF) as srv:
        # --- half a head, then nothing
        c = srv.connect()
        t0 = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        expect_408(c, t0, "half a head, stalled", 1.0)

        c = srv.connect()
        t0 = time.monotonic()
        c.send(b"GE")
        expect_408(c, t0, "two bytes of a request line, stalled", 1.0)

        # --- slowloris: a byte every 300 ms never lets the idle timer fire; the
        # absolute header deadline must still cut it off.
        c = srv.connect()
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200 + b"\r\n\r\n"
        t0 = time.monotonic()
        sent = 0
        answered = False
        while time.monotonic() - t0 < 6 and sent < len(head):
            if not c.send(head[sent:sent + 1]):
                break
            sent += 1
            if c.readable(0.3):
                answered = True
                break
        ok(answered, "slowloris: the server answers before the head is complete (sent %d of %d bytes)" % (sent, len(head)))
        if answered:
            expect_408(c, t0, "slowloris", 1.6)
        else:
            skip("slowloris got no answer", 4)

        # --- stalled body
        c = srv.connect()
        t0 = time.monotonic()
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"b" * 10)
        expect_408(c, t0, "body stalled after 10 of 100 bytes", 1.0)

        c = srv.connect()
        t0 = time.monotonic()
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
        expect_408(c, t0, "chunked body stalled mid-chunk", 1.0)

        # A body that keeps trickling in within body_timeout is fine.
        c = srv.connect()
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
        for ch in b"abcd":
            time.sleep(0.4)  # pacing the client, not waiting for the server
            c.send(bytes([ch]))
        r = c.read_response(timeout=3)
        is_(r and r.status, 200, "body sent a byte every 0.4s (under body_timeout each) completes: 200")

        # --- keep-alive timeout
        c = srv.connect()
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        is_(r and r.status, 200, "keep-alive: first request answered")
        t0 = time.monotonic()
        ok(c.is_open_after(0.5), "keep-alive: still open after 0.5s idle")
        try:
            rest = c.read_until_close(1.0 + SLACK)
            took = time.monotonic() - t0
            is_(rest, b"", "keep-alive: closed without a byte")
            ok(0.8 <= took <= 1.0 + SLACK, "keep-alive: closed after %.2fs idle (keepalive_timeout = 1s)" % took)
        except socket.timeout:
            ok(False, "keep-alive: closed without a byte")
            ok(False, "keep-alive: closed within %.1fs" % (1.0 + SLACK))

        # A keep-alive connection that is used again in time stays.
        c = srv.connect()
        for i in range(3):
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
            is_(r and r.status, 200, "keep-alive reuse after 0.6s idle, round %d" % (i + 1))
            time.sleep(0.6)  # idle, but under keepalive_timeout
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        is_(r and r.status, 200, "keep-alive timer restarts with each request")

        # --- on a keep-alive connection the header deadline starts at the next request's first byte
        c = srv.connect()
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        ok(c.is_open_after(0.7), "keep-alive then partial head: idle 0.7s (under keepalive_timeout)")
        t0 = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\n")
        expect_408(c, t0, "partial head after 0.7s of keep-alive idle", 1.0)

        # --- a fresh connection that sends nothing is closed, silently
        c = srv.connect()
        t0 = time.monotonic()
        try:
            rest = c.read_until_close(1.0 + SLACK)
            took = time.monotonic() - t0
            is_(rest, b"", "silent connection: closed without an answer")
            ok(0.8 <= took <= 1.0 + SLACK, "silent connection: closed after %.2fs (header_timeout = 1s)" % took)
        except socket.timeout:
            ok(False, "silent connection: closed without an answer")
            ok(False, "silent connection: closed within %.1fs" % (1.0 + SLACK))

        # --- an error answer lingers at most linger_timeout for a client that never closes
        c = srv.connect()
        c.send(b"GET / HTTP/1.1\r\n\r\n")
        r = c.read_response()
        is_(r and r.status, 400, "linger: 400 for a request without Host")
        t0 = time.monotonic()
        c.send(b"more bytes the server reads and drops")
        try:
            c.read_until_close(0.5 + SLACK)
            ok(time.monotonic() - t0 <= 0.5 + SLACK, "linger: connection closed within linger_timeout")
        except socket.timeout:
            ok(False, "linger: connection closed within linger_timeout")

        ok(srv.alive(), "server still running")

    # --- keepalive_timeout = 0: no keep-alive at all; the response says so
    with Server(CONF.replace("keepalive_timeout = 1s", "keepalive_timeout = 0")) as srv:
        c = srv.connect()
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        is_(r and (r.status, r.header("Connection")), (200, "close"), "keepalive_timeout = 0: 200 with Connection: close")
        try:
            is_(c.read_until_close(1), b"", "keepalive_timeout = 0: closed at once")
        except socket.timeout:
            ok(False, "keepalive_timeout = 0: closed at once")
        c = srv.connect()
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        is_(r and r.header("Connection"), "close", "keepalive_timeout = 0: a pipelined pair gets close on the first")
        try:
            is_(c.read_until_close(1), b"", "keepalive_timeout = 0: the second is not answered")
        except socket.timeout:
            ok(False, "keepalive_timeout = 0: the second is not answered")

    # --- send_timeout: a client that stops reading a large response is dropped
    srv = Server(CONF.replace("linger_timeout = 500ms", "linger_timeout = 500ms\nsend_timeout = 1s").replace("workers = 1", "workers = 1\nlog_level = debug") +
                 "\n[route:big]\npath = /big\nreturn = 200\nreturn_file = {dir}/big.bin\n", start=False)
    size = 8 << 20
    with open(srv.path("big.bin"), "wb") as f:
        f.write(b"B" * size)
    with srv.start():
        c = srv.connect(rcvbuf=4096)
        c.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        ok(c.readable(2), "send_timeout: the response starts")
        t0 = time.monotonic()
        # Do not read for longer than send_timeout; then read what is left.
        time.sleep(1.0 + 2 * SLACK)  # the client stalls on purpose
        total = 0
        try:
            c.sock.settimeout(3)
            while True:
                d = c.sock.recv(1 << 20)
                if not d:
                    break
                total += len(d)
            closed = True
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            closed = False
        ok(closed, "send_timeout: the server closed the stalled connection")
        ok(total < size, "send_timeout: the response was cut short (%d of %d body bytes)" % (total, size))
        like(srv.stderr(), r"closed: send timed out", "send_timeout: the close is logged as a send timeout")


run(main)
