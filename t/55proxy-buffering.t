#!/usr/bin/env python3
# Proxy request buffering (request_buffer): a body that fits is read and
# its framing checked before a server is picked, goes out whole with
# Content-Length, and can be sent again to another server; larger bodies
# stream.  Chunk extensions count against max_body_size.
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1
max_body_size = 4m

[listen:http]
address = 127.0.0.1:{port}

[pool:one]
server = {a}

[pool:two]
server = {dead}
server = {a}
max_fails = 0

[route:small]
path = /small/
pool = one
request_buffer = 4k

[route:big]
path = /big/
pool = two
request_buffer = 1m

[route:stream]
path = /stream/
pool = two
request_buffer = 0

[route:default]
path = /
pool = one
"""


def chunked(data, size=1000, ext=b""):
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x%s\r\n%s\r\n" % (len(part), ext, part)
    return out + b"0\r\n\r\n"


def bad_framing(srv, a):
    a.reset_counters()
    c = srv.connect()
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    time.sleep(0.3)  # the head alone first: the server must not see it
    c.send(b"zz\r\nhello\r\n0\r\n\r\n")
    r = c.read_response()
    is_(r and r.status, 400, "a chunked POST with a bad chunk size after the head: 400")
    is_((a.connections, a.requests), (0, 0), "  and no server saw a connection or the request")
    c.close()


def chunked_whole(srv, a):
    a.reset_counters()
    body = gen_bytes(3000, 7)
    c = srv.connect()
    r = exchange(c, "POST", "/echo", headers=("Transfer-Encoding: chunked",), body=chunked(body))
    e = echoed(r)
    is_(r and r.status, 200, "a small chunked POST: 200")
    is_(e and (echoed_headers(r, "content-length"), echoed_headers(r, "transfer-encoding")),
        (["3000"], []), "  goes out whole with Content-Length: 3000, not chunked")
    is_(e and e["sha256"], hashlib.sha256(body).hexdigest(), "  body byte-exact")
    # Bigger than request_buffer (4k on /small/): streamed, chunked.
    body = gen_bytes(20000, 8)
    r = exchange(c, "POST", "/small/echo", headers=("Transfer-Encoding: chunked",), body=chunked(body))
    e = echoed(r)
    is_(e and (echoed_headers(r, "content-length"), echoed_headers(r, "transfer-encoding")),
        ([], ["chunked"]), "a chunked body past request_buffer streams chunked")
    is_(e and e["sha256"], hashlib.sha256(body).hexdigest(), "  body byte-exact")
    c.close()


def expect_continue(srv, a):
    c = srv.connect()
    body = b"x" * 500
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\nExpect: 100-continue\r\n\r\n")
    r = c.read_response()
    is_(r and r.status, 100, "Expect: 100-continue: portico answers 100 before the body")
    c.send(body)
    r = c.read_response()
    e = echoed(r)
    is_((r and r.status, e and e["body_len"], echoed_headers(r, "expect") if e else None), (200, 500, []),
        "  then 200, the whole body at the server, no Expect sent on")
    c.close()


def retry_whole(srv, a):
    # /big/ (request_buffer 1m) goes to [dead, a]: the first server refuses,
    # and the request goes to the second with its whole body.
    body = gen_bytes(300000, 9)
    c = srv.connect()
    r = exchange(c, "POST", "/big/echo", body=body, timeout=10)
    e = echoed(r)
    is_((r and r.status, e and e["sha256"]), (200, hashlib.sha256(body).hexdigest()),
        "a 300 KB POST read whole (request_buffer = 1m) goes to the next server when the first refuses")
    c.close()


def extension_bytes(srv):
    # 2 KB of data with about 5 MB of chunk extensions: max_body_size is 4m.
    c = srv.connect(timeout=10)
    ext = b";" + b"e" * 2400
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    status = None
    for _ in range(2100):
        if not c.send(b"1%s\r\nx\r\n" % ext):
            break
        if c.readable(0):
            break
    try:
        r = c.read_response(timeout=5)
        status = r and r.status
    except (OSError, ServerError):
        pass
    is_(status, 413, "chunk extensions count against max_body_size: 413")
    c.close()


def main():
    a = Backend("a")
    dead = Backend("dead")
    dead.stop()  # its port refuses connections
    conf = CONF.replace("{a}", a.addr).replace("{dead}", dead.addr)
    try:
        with Server(conf) as srv:
            bad_framing(srv, a)
            chunked_whole(srv, a)
            expect_continue(srv, a)
            retry_whole(srv, a)
            extension_bytes(srv)
    finally:
        a.stop()


run(main)
