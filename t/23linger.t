#!/usr/bin/env python3
# Closing without losing what was sent (RFC 9112 9.6): requests pipelined
# past keepalive_requests get a close after the last answer, not a reset
# that destroys the answers in flight; and lingering after an error answer
# has an overall cap (linger_time) however the client trickles bytes.
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1
keepalive_requests = 1000
linger_timeout = 1s
linger_time = 2s

[listen:http]
address = 127.0.0.1:{port}

[route:fixed]
path = /
return = 200 %s
""" % ("x" * 150)


def pipelined_past_keepalive_requests(srv):
    # 2000 requests in one go; a client that reads slowly (small receive
    # buffer, a pause before reading).
    c = srv.connect(timeout=20, rcvbuf=4096)
    reqs = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
    t = threading.Thread(target=c.send, args=(reqs,), daemon=True)
    t.start()
    time.sleep(0.5)
    got, closes, err = 0, 0, None
    try:
        while True:
            r = c.read_response(timeout=10)
            if r is None:
                break
            if r.status == 200 and len(r.body) == 150:
                got += 1
            if (r.header("Connection") or "").lower() == "close":
                closes += 1
    except (OSError, ServerError, socket.timeout) as e:
        err = e
    t.join(5)
    is_(got, 1000, "2000 pipelined requests, keepalive_requests = 1000: 1000 whole responses")
    is_(closes, 1, "  the last one says Connection: close")
    is_(repr(err) if err else None, None, "  then a clean close, no reset")
    c.close()


def linger_cap(srv):
    c = srv.connect(timeout=5)
    c.send(b"GET / HTTP/1.1\r\n\r\n")  # no Host: 400, then lingering
    r = c.read_response(timeout=5)
    is_(r and r.status, 400, "a request without Host: 400")
    t0 = time.monotonic()
    closed = None
    # One byte every 0.4s: linger_timeout (1s) alone would never end it.
    # Our side reads EOF at once (portico stopped sending); once portico
    # closes the socket, the next byte draws a reset.
    c.sock.setblocking(False)
    while closed is None and time.monotonic() - t0 < 6:
        try:
            c.sock.send(b"x")
            time.sleep(0.4)
            while c.sock.recv(4096):
                pass
        except BlockingIOError:
            pass
        except OSError:
            closed = time.monotonic() - t0
    ok(closed is not None and 1.8 <= closed <= 3.5,
       "a client trickling a byte every 0.4s is closed after linger_time (2s): %s" %
       ("%.2fs" % closed if closed is not None else "still open after 6s"))
    c.close()


def main():
    with Server(CONF) as srv:
        pipelined_past_keepalive_requests(srv)
        linger_cap(srv)


run(main)
