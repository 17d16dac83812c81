#!/usr/bin/env python3
# Bad requests: each gets its precise status, Connection: close, and the close.
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1
max_request_line = 1k
max_header_size = 2k
max_headers = 20
max_body_size = 10k
header_timeout = 5s
body_timeout = 5s
linger_timeout = 1s

[listen:http]
address = 127.0.0.1:{port}

[route:hello]
path = /
return = 200 hello
"""


def req(head, body=b""):
    return b"POST / HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + body


def expect_error(srv, name, data, status, send_more=None):
    """Sends data; the answer must be exactly status, say Connection: close,
    carry the standard error body, and the server must close."""
    c = srv.connect()
    c.send(data)
    if send_more is not None:
        send_more(c)
    try:
        r = c.read_response(timeout=5)
    except Exception as e:
        r = None
        diag("%s: %s" % (name, e))
    is_(r and r.status, status, "%s: %d" % (name, status))
    if r is not None and r.status == status:
        is_((r.header("Connection"), r.header("Content-Type"), r.body),
            ("close", "text/html", error_body(status)),
            "%s: Connection: close and the %d page" % (name, status))
    else:
        ok(False, "%s: Connection: close and the %d page" % (name, status))
    try:
        rest = c.read_until_close(3)
        is_(rest, b"", "%s: connection closed, nothing after the answer" % name)
    except Exception as e:
        ok(False, "%s: connection closed, nothing after the answer (%s)" % (name, e))
    c.close()


def expect_ok(srv, name, data):
    c = srv.connect()
    c.send(data)
    r = c.read_response(timeout=5)
    is_(r and (r.status, r.body), (200, b"hello"), "%s: 200" % name)
    c.close()


def main():
    with Server(CONF) as srv:
        # --- 400: framing in doubt
        expect_error(srv, "Content-Length and Transfer-Encoding",
                     req(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), 400)
        expect_error(srv, "Transfer-Encoding then Content-Length",
                     req(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"), 400)
        expect_error(srv, "two differing Content-Length fields",
                     req(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"123456"), 400)
        expect_error(srv, "Content-Length: 5, 6", req(b"Content-Length: 5, 6\r\n", b"123456"), 400)
        expect_ok(srv, "Content-Length: 5, 5 (identical list)", req(b"Content-Length: 5, 5\r\n", b"12345"))
        expect_ok(srv, "two identical Content-Length fields",
                  req(b"Content-Length: 3\r\nContent-Length: 3\r\n", b"123"))
        for v in (b"abc", b"-1", b"+5", b"5 5", b"0x10", b"", b"99999999999999999999999"):
            expect_error(srv, "Content-Length: %r" % v.decode(), req(b"Content-Length: " + v + b"\r\n", b"12345"), 400)
        expect_error(srv, "bad chunk size",
                     req(b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"), 400)
        expect_error(srv, "chunk size with no digits",
                     req(b"Transfer-Encoding: chunked\r\n", b";ext\r\nhello\r\n0\r\n\r\n"), 400)
        expect_error(srv, "chunk data longer than its size",
                     req(b"Transfer-Encoding: chunked\r\n", b"3\r\nhello\r\n0\r\n\r\n"), 400)
        expect_error(srv, "chunk size overflowing 64 bits",
                     req(b"Transfer-Encoding: chunked\r\n", b"10000000000000000\r\nx\r\n0\r\n\r\n"), 400)
        expect_error(srv, "Transfer-Encoding: chunked, chunked",
                     req(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"), 400)
        expect_error(srv, "Transfer-Encoding: chunked, gzip (chunked not last)",
                     req(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"), 400)
        expect_error(srv, "Transfer-Encoding in HTTP/1.0",
                     b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
        expect_error(srv, "obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400)
        expect_error(srv, "obs-fold with a tab", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", 400)
        expect_error(srv, "NUL in a header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400)
        expect_error(srv, "NUL in the request line", b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        expect_error(srv, "bare CR in a header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400)
        expect_error(srv, "bare CR in the request line", b"GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        expect_error(srv, "space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400)
        expect_error(srv, "tab before colon", b"GET / HTTP/1.1\r\nHost: x\r\nX-A\t: b\r\n\r\n", 400)
        expect_error(srv, "header line without colon", b"GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", 400)
        expect_error(srv, "empty header name", b"GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400)
        expect_error(srv, "missing Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", 400)
        expect_error(srv, "two Host fields", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)
        expect_error(srv, "bad Host value", b"GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400)
        expect_error(srv, "malformed request line", b"GET /\r\nHost: x\r\n\r\n", 400)
        expect_error(srv, "two spaces in the request line", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        expect_error(srv, "lower-case version", b"GET / http/1.1\r\nHost: x\r\n\r\n", 400)
        expect_error(srv, "bad method character", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        expect_error(srv, "relative target", b"GET hello HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        expect_error(srv, "absolute-form with userinfo", b"GET http://u@x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        expect_error(srv, "asterisk-form with GET", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        # A HEAD answered with an error has the headers only.
        c = srv.connect()
        c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\nX-A: a\x00\r\n\r\n")
        r = c.read_response(head=True)
        is_(r and (r.status, r.header("Content-Length")), (400, str(len(error_body(400)))),
            "HEAD with a bad header: 400 with Content-Length")
        is_(c.read_until_close(3), b"", "HEAD with a bad header: no body, closed")

        # --- 414
        expect_error(srv, "request line over max_request_line",
                     b"GET /" + b"a" * 1100 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)
        expect_error(srv, "request line over max_request_line, not yet ended",
                     b"GET /" + b"a" * 1100, 414)
        expect_ok(srv, "request line just under max_request_line",
                  b"GET /" + b"a" * (1024 - 14) + b" HTTP/1.1\r\nHost: x\r\n\r\n")

        # --- 431
        expect_error(srv, "header section over max_header_size",
                     b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2100 + b"\r\n\r\n", 431)
        expect_error(srv, "header section over max_header_size, not yet ended",
                     b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2100, 431)
        expect_error(srv, "header section over max_header_size in many small fields",
                     b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Some-Long-Name: " + b"v" * 100 + b"\r\n" + b"Y: " + b"w" * 1990 + b"\r\n\r\n", 431)
        twenty = b"".join(b"X-F%d: v\r\n" % i for i in range(19))
        expect_ok(srv, "20 header fields (max_headers)", b"GET / HTTP/1.1\r\nHost: x\r\n" + twenty + b"\r\n")
        expect_error(srv, "21 header fields", b"GET / HTTP/1.1\r\nHost: x\r\n" + twenty + b"X-F99: v\r\n\r\n", 431)

        # --- 413
        expect_error(srv, "Content-Length over max_body_size",
                     req(b"Content-Length: 10241\r\n"), 413)
        expect_ok(srv, "Content-Length of exactly max_body_size",
                  req(b"Content-Length: 10240\r\n", b"b" * 10240))
        chunk = b"1000\r\n" + b"c" * 4096 + b"\r\n"
        expect_error(srv, "chunked body growing past max_body_size",
                     req(b"Transfer-Encoding: chunked\r\n", chunk * 3 + b"0\r\n\r\n"), 413)
        expect_ok(srv, "chunked body just under max_body_size",
                  req(b"Transfer-Encoding: chunked\r\n", chunk * 2 + b"800\r\n" + b"d" * 2048 + b"\r\n0\r\n\r\n"))
        expect_error(srv, "one chunk larger than max_body_size",
                     req(b"Transfer-Encoding: chunked\r\n", b"2801\r\n" + b"e" * 10241 + b"\r\n0\r\n\r\n"), 413)

        expect_error(srv, "Content-Length over max_body_size with the body sent anyway (answer not lost to a reset)",
                     req(b"Content-Length: 200000\r\n", b"f" * 200000), 413)
        expect_error(srv, "trailer section over max_header_size",
                     req(b"Transfer-Encoding: chunked\r\n", b"1\r\na\r\n0\r\nX-T: " + b"t" * 2100 + b"\r\n\r\n"), 400)

        # --- 501, 505, 417
        expect_error(srv, "Transfer-Encoding: gzip, chunked", req(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), 501)
        expect_error(srv, "HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505)
        expect_error(srv, "HTTP/0.9 style version", b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505)
        expect_error(srv, "Expect: something-else", b"GET / HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n", 417)

        # --- an error in a pipeline: the earlier answers arrive, nothing after the error
        c = srv.connect()
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET / HTTP/1.1\r\nHost : x\r\n\r\n" +
               b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        r1 = c.read_response()
        r2 = c.read_response()
        is_((r1 and r1.status, r2 and r2.status), (200, 400), "pipeline: 200, then 400 for the bad request")
        is_(c.read_until_close(3), b"", "pipeline: the request after the bad one is not answered")

        # --- the server survived all of it
        expect_ok(srv, "a good request after all the bad ones", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        st = srv.stderr()
        like(st, r"\[info\] conn \d+ from 127\.0\.0\.1: 400: ", "400s are logged with the peer and reason")


run(main)
