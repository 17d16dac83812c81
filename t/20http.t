#!/usr/bin/env python3
# HTTP/1.1 basics: methods, keep-alive, pipelining, versions, routing, bodies.
import email.utils
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1
keepalive_requests = 20
header_timeout = 5s
body_timeout = 5s
keepalive_timeout = 10s

[listen:http]
address = 127.0.0.1:{port}

[route:status]
path = /status
status = json

[route:health]
path = /healthz
health = on

[route:hello]
path = /hello
return = 200 hello world

[route:old]
path = /old
return = 301 https://example.com/

[route:empty]
path = /empty
return = 204

[route:blank]
path = /blank
return = 200

[route:nocontent]
path = /nocontent
return = 204 ignored text

[route:esc]
path = /esc
return = 302 https://example.com/?a=1&b="x"<y>'z

[route:typed]
path = /typed
return = 200 {"ok":true}
return_type = application/json

[route:vhtml]
path = /vhtml/
return = 200 <p class="q">You asked for $request_uri ($args) on ${host}, path $uri & more</p>
return_type = Text/HTML; charset=utf-8

[route:vxhtml]
path = /vxhtml/
return = 200 <p>$request_uri</p>
return_type = application/xhtml+xml

[route:vsvg]
path = /vsvg/
return = 200 <text>$args</text>
return_type = image/svg+xml

[route:vplain]
path = /vplain/
return = 200 <p>$request_uri</p>

[route:vjson]
path = /vjson/
return = 200 {"uri":"$request_uri"}
return_type = application/json

[route:vhost]
host = example.org
path = /
return = 200 vhost example.org
"""

V = version()
HELLO = ("HTTP/1.1 200 OK\r\nServer: portico/%s\r\nDate: DATE\r\n"
         "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 11\r\n\r\nhello world" % V).encode()
HELLO_HEAD = HELLO[:-len(b"hello world")]
NOT_FOUND_BODY = error_body(404)
NOT_FOUND = ("HTTP/1.1 404 Not Found\r\nServer: portico/%s\r\nDate: DATE\r\n"
             "Content-Type: text/html\r\nContent-Length: %d\r\n\r\n" % (V, len(NOT_FOUND_BODY))).encode() + NOT_FOUND_BODY
MOVED_BODY = b'<html><body><a href="https://example.com/">moved here</a></body></html>\n'
MOVED = ("HTTP/1.1 301 Moved Permanently\r\nServer: portico/%s\r\nDate: DATE\r\n"
         "Content-Type: text/html\r\nContent-Length: %d\r\nLocation: https://example.com/\r\n\r\n"
         % (V, len(MOVED_BODY))).encode() + MOVED_BODY
EMPTY = ("HTTP/1.1 204 No Content\r\nServer: portico/%s\r\nDate: DATE\r\n\r\n" % V).encode()


def get(path, host="localhost", extra=""):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, host, extra)).encode()


def raw_is(r, expected, name):
    if r is None:
        return ok(False, name + " (no response)")
    return is_(normalize_date(r.raw), expected, name)


def main():
    with Server(CONF) as srv:
        # --- GET and HEAD
        c = srv.connect()
        c.send(get("/hello"))
        r = c.read_response()
        raw_is(r, HELLO, "GET /hello: byte-exact response")
        is_(r.header("Server"), "portico/" + V, "Server header names portico and its version")
        like(r.header("Date") or "", r"^%s$" % DATE_RE, "Date header is an IMF-fixdate")
        try:
            skew = abs(email.utils.parsedate_to_datetime(r.header("Date")).timestamp() - time.time())
        except Exception:
            skew = 999
        ok(skew < 5, "Date header is the current time (off by %.1fs)" % skew)

        c.send(b"HEAD /hello HTTP/1.1\r\nHost: localhost\r\n\r\n" + get("/hello"))
        r = c.read_response(head=True)
        raw_is(r, HELLO_HEAD, "HEAD /hello: the GET headers, Content-Length 11, no body")
        r = c.read_response()
        raw_is(r, HELLO, "the GET pipelined after HEAD is intact (HEAD sent no body bytes)")
        ok(c.is_open_after(0.2), "nothing more arrives after the two responses")

        # --- keep-alive up to keepalive_requests
        c = srv.connect()
        statuses, closes = [], []
        for i in range(20):
            c.send(get("/hello"))
            r = c.read_response()
            statuses.append(r.status if r else None)
            closes.append(r.header("Connection") if r else "none")
        is_(statuses, [200] * 20, "20 requests on one keep-alive connection all get 200")
        is_(closes[:19], [None] * 19, "responses 1-19 carry no Connection header")
        is_(closes[19], "close", "response 20 (keepalive_requests = 20) says Connection: close")
        is_(c.read_until_close(3), b"", "and the server closes after it")

        # --- pipelining: five requests in one send, five byte-exact answers in order
        c = srv.connect()
        c.send(get("/hello") + get("/old") + get("/nope") + b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n" +
               get("/empty") + get("/hello", extra="Connection: close\r\n"))
        exp = [(HELLO, False), (MOVED, False), (NOT_FOUND, False), (HELLO_HEAD, True), (EMPTY, False)]
        for i, (e, head) in enumerate(exp):
            r = c.read_response(head=head)
            raw_is(r, e, "pipelined response %d is byte-exact" % (i + 1))
        r = c.read_response()
        raw_is(r, HELLO.replace(b"Content-Length: 11\r\n", b"Content-Length: 11\r\nConnection: close\r\n"),
               "pipelined response 6 (Connection: close) is byte-exact")
        is_(c.read_until_close(3), b"", "connection closed after the last pipelined response")

        # --- nothing is answered after a request that said Connection: close
        c = srv.connect()
        c.send(get("/hello", extra="Connection: close\r\n") + get("/old"))
        r = c.read_response()
        is_(r and (r.status, r.header("Connection")), (200, "close"), "Connection: close with a request behind it: 200, close")
        is_(c.read_until_close(3), b"", "the request behind it is not answered")

        # --- half-close: the client sends its request and shuts down writing
        c = srv.connect()
        c.send(get("/hello") + b"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n")
        c.shutdown_write()
        r1 = c.read_response()
        r2 = c.read_response()
        is_((r1 and r1.status, r2 and r2.status), (200, 200), "half-closed client: both requests answered")
        is_(c.read_until_close(3), b"", "half-closed client: then closed")

        # --- a client that goes away mid-body gets nothing, and nothing breaks
        c = srv.connect()
        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-some")
        c.shutdown_write()
        is_(c.read_until_close(3), b"", "client closing mid-body: closed without an answer")
        c = srv.connect()
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Partial")
        c.shutdown_write()
        is_(c.read_until_close(3), b"", "client closing mid-head: closed without an answer")

        # --- HTTP/1.0
        c = srv.connect()
        c.send(b"GET /hello HTTP/1.0\r\n\r\n")
        r = c.read_response()
        is_(r and r.status, 200, "HTTP/1.0 GET: 200")
        is_(r and r.version, "HTTP/1.1", "HTTP/1.0 request answered with HTTP/1.1 status line")
        is_(r and r.header("Connection"), "close", "HTTP/1.0 without keep-alive: Connection: close")
        is_(c.read_until_close(3), b"", "HTTP/1.0 without keep-alive: server closes")

        c = srv.connect()
        c.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        is_(r and r.header("Connection"), "keep-alive", "HTTP/1.0 keep-alive: Connection: keep-alive")
        is_(r and r.body, b"hello world", "HTTP/1.0 keep-alive: body")
        c.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        is_(r and r.status, 200, "HTTP/1.0 keep-alive: second request on the same connection")
        c.send(b"GET /hello HTTP/1.0\r\n\r\n")
        r = c.read_response()
        is_(r and r.header("Connection"), "close", "HTTP/1.0 third request without keep-alive: close")
        is_(c.read_until_close(3), b"", "... and closed")

        # --- Connection: close in HTTP/1.1
        c = srv.connect()
        c.send(get("/hello", extra="Connection: close\r\n"))
        r = c.read_response()
        is_(r and r.header("Connection"), "close", "HTTP/1.1 Connection: close is echoed")
        is_(c.read_until_close(3), b"", "HTTP/1.1 Connection: close: server closes")
        c = srv.connect()
        c.send(get("/hello", extra="Connection: keep-alive, Close\r\n"))
        r = c.read_response()
        is_(r and r.header("Connection"), "close", "Connection: keep-alive, Close: close wins (case-insensitive)")

        # --- routing by host, absolute-form
        r = srv.get("/anything", host="example.org")
        is_(r and r.body, b"vhost example.org", "Host: example.org reaches its route")
        r = srv.get("/anything", host="EXAMPLE.org:8080")
        is_(r and r.body, b"vhost example.org", "Host match ignores case and port")
        r = srv.get("/anything", host="example.org.")
        is_(r and r.body, b"vhost example.org", "Host match ignores a trailing dot")
        r = srv.get("/anything", host="other.example")
        is_(r and r.status, 404, "another host on the same path: 404")
        r = srv.request(b"GET http://example.org/anything HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n")
        is_(r and r.body, b"vhost example.org", "absolute-form target is routed by its host, not Host")
        r = srv.request(b"GET http://localhost:1234/hello?x=1 HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n")
        is_(r and r.body, b"hello world", "absolute-form http://localhost:1234/hello?x=1 reaches /hello")
        r = srv.request(b"GET http://example.org HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n")
        is_(r and r.body, b"vhost example.org", "absolute-form without a path means /")

        # --- 404, prefixes, 405
        c = srv.connect()
        c.send(get("/nope"))
        r = c.read_response()
        raw_is(r, NOT_FOUND, "unrouted path: byte-exact 404")
        c.send(get("/hellox"))
        r = c.read_response()
        is_(r and r.status, 404, "/hellox does not match the /hello prefix")
        c.send(get("/hello/sub?q=1"))
        r = c.read_response()
        is_(r and r.body, b"hello world", "/hello/sub?q=1 matches /hello; the connection survived the 404s")

        c = srv.connect()
        c.send(b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        r = c.read_response()
        is_(r and r.status, 405, "POST /status: 405")
        is_(r and r.header("Allow"), "GET, HEAD", "405 has Allow: GET, HEAD")
        is_(r and r.body, error_body(405), "405 body")
        c.send(get("/hello"))
        r = c.read_response()
        is_(r and r.status, 200, "connection usable after a 405")
        r = srv.request(b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        is_(r and (r.status, r.header("Allow")), (405, "GET, HEAD"), "DELETE /healthz: 405 with Allow")
        r = srv.request(b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        is_(r and (r.status, r.header("Allow")), (501, None), "an unknown method: 501 (RFC 9110 9.1)")
        r = srv.request(b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        is_(r and r.status, 501, "methods are case-sensitive: get is unknown, 501")

        # --- the server itself: OPTIONS * (RFC 9110 9.3.7); CONNECT, which we do not do
        c = srv.connect()
        c.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        is_(r and (r.status, r.header("Content-Length"), r.body), (200, "0", b""), "OPTIONS *: 200, empty")
        c.send(get("/hello"))
        r = c.read_response()
        is_(r and r.body, b"hello world", "the connection goes on after OPTIONS *")
        c.close()
        r = srv.request(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
        is_(r and (r.status, r.header("Connection")), (501, "close"), "CONNECT: 501, and the connection closes")

        # --- request bodies on a return route, then the next request on the same connection
        c = srv.connect()
        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nabcdefghijk")
        r = c.read_response()
        raw_is(r, HELLO, "POST with a Content-Length body: 200")
        c.send(get("/empty"))
        r = c.read_response()
        raw_is(r, EMPTY, "next request after a Content-Length body on the same connection")

        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6;name=value\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n" +
               get("/old"))
        r = c.read_response()
        raw_is(r, HELLO, "POST with a chunked body, extensions and trailers: 200")
        r = c.read_response()
        raw_is(r, MOVED, "request pipelined after the chunked body: answered")

        # body arriving in pieces
        c = srv.connect()
        c.send(b"PUT /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n")
        ok(c.is_open_after(0.2), "partial chunked body: no answer yet")
        c.send(b"abc\r\n")
        c.send(b"0\r\n")
        c.send(b"\r\n")
        r = c.read_response()
        is_(r and r.status, 200, "chunked body sent in pieces: 200")
        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 6000\r\n\r\n" + b"z" * 3000)
        ok(c.is_open_after(0.2), "half of a 6000-byte body: no answer yet")
        c.send(b"z" * 3000 + get("/empty"))
        r = c.read_response()
        is_(r and r.status, 200, "6000-byte body larger than the read buffer: 200")
        r = c.read_response()
        is_(r and r.status, 204, "request after it: 204")

        # --- a mixed pipeline sent in random pieces (fixed seed): the parser resumes anywhere
        import random
        rnd = random.Random(20)
        pipeline = (get("/hello") +
                    b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n" + b"p" * 300 +
                    b"PUT /old HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"1f;x=y\r\n" + b"q" * 31 + b"\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n" +
                    b"HEAD /hello HTTP/1.1\r\nHost: x\r\nX-Long: " + b"l" * 500 + b"\r\n\r\n" +
                    get("/nope") + get("/empty"))
        want = [(HELLO, False), (HELLO, False), (MOVED, False), (HELLO_HEAD, True), (NOT_FOUND, False), (EMPTY, False)]
        for rnd_round in range(3):
            c = srv.connect()
            pos = 0
            sizes = []
            while pos < len(pipeline):
                n = rnd.choice((1, 1, 2, 3, 7, 13, 64, 200))
                c.send(pipeline[pos:pos + n])
                sizes.append(n)
                pos += n
                if rnd.random() < 0.05:
                    time.sleep(0.01)  # let some pieces arrive alone
            got = []
            try:
                for e, head in want:
                    r = c.read_response(head=head)
                    got.append(normalize_date(r.raw) if r else None)
            except Exception as ex:
                diag(str(ex))
            is_(got, [e for e, _ in want], "mixed pipeline in %d random pieces (round %d): byte-exact answers in order"
                % (len(sizes), rnd_round + 1))
            c.close()

        # --- Expect: 100-continue
        c = srv.connect()
        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        r = c.read_response(timeout=3)
        is_(r and r.raw, b"HTTP/1.1 100 Continue\r\n\r\n", "Expect: 100-continue: HTTP/1.1 100 Continue first")
        c.send(b"12345")
        r = c.read_response()
        raw_is(r, HELLO, "then the final response once the body is sent")
        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n")
        r = c.read_response()
        is_(r and r.status, 200, "Expect: 100-continue with an empty body: final response only")
        c.send(b"POST /hello HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc")
        r = c.read_response()
        is_(r and r.status, 200, "Expect in HTTP/1.0 is ignored: no 100, final response")

        # --- redirects
        r = srv.get("/old")
        is_(r and r.status, 301, "return = 301: status")
        is_(r and r.header("Location"), "https://example.com/", "return = 301: Location")
        is_(r and r.body, MOVED_BODY, "return = 301: body links the target")

        # --- 204: no body, no length
        r = srv.get("/empty")
        is_(r and (r.status, r.header("Content-Length"), r.header("Content-Type"), r.body), (204, None, None, b""),
            "204: no Content-Length, no Content-Type, no body")

        # --- path normalization
        for path, body in (("/a/../healthz", None), ("/hello/./", b"hello world"), ("//hello", b"hello world"),
                           ("/hel%6Co", b"hello world"), ("/x/y/../../hello", b"hello world"),
                           ("/hello/..", None)):
            r = srv.get(path)
            if body is None and path == "/a/../healthz":
                ok(r is not None and r.status == 200 and json.loads(r.body).get("status") == "healthy",
                   "%s reaches the health route" % path)
            elif body is None:
                is_(r and r.status, 404, "%s normalizes to / (404)" % path)
            else:
                is_(r and r.body, body, "%s reaches /hello" % path)
        for path in ("/..", "/../hello", "/a/../../hello", "/%2e%2e/hello", "/hello%00", "/%zz"):
            c = srv.connect()
            c.send(get(path))
            r = c.read_response()
            is_(r and (r.status, r.header("Connection")), (400, "close"), "%s: 400 with Connection: close" % path)
            is_(c.read_until_close(3), b"", "%s: connection closed" % path)

        # --- HTTP/1.1 with minor version above 1 is served as 1.1
        r = srv.request(b"GET /hello HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n")
        is_(r and (r.version, r.status), ("HTTP/1.1", 200), "HTTP/1.2 request: served, answered as HTTP/1.1")

        # --- leading empty lines before the request line are ignored
        r = srv.request(b"\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        is_(r and r.status, 200, "empty lines before the request line are ignored")

        # --- return variants
        r = srv.get("/blank")
        is_(r and (r.status, r.header("Content-Length"), r.header("Content-Type"), r.body), (200, "0", None, b""),
            "return = 200 without text: Content-Length: 0, no Content-Type, empty body")
        r = srv.get("/nocontent")
        is_(r and (r.status, r.header("Content-Length"), r.raw.endswith(b"\r\n\r\n")), (204, None, True),
            "return = 204 with a text: no body, no length")
        r = srv.get("/esc")
        is_(r and r.header("Location"), "https://example.com/?a=1&b=\"x\"<y>'z", "redirect: Location as written")
        is_(r and r.body, b'<html><body><a href="https://example.com/?a=1&amp;b=&quot;x&quot;&lt;y&gt;&#39;z">moved here</a></body></html>\n',
            "redirect: the URL is HTML-escaped in the body")
        r = srv.get("/typed")
        is_(r and (r.header("Content-Type"), r.body), ("application/json", b'{"ok":true}'), "return_type sets Content-Type")

        # --- variables in an HTML or XML body are escaped; the configured text is not
        XSS = "/<script>alert('x')</script>?q=<b>&c=\"'"
        XSS_HTML = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;?q=&lt;b&gt;&amp;c=&quot;&#39;"
        r = srv.get("/vhtml" + XSS, host="Example.COM")
        is_(r and (r.status, r.header("Content-Type"), r.body.decode()),
            (200, "Text/HTML; charset=utf-8",
             '<p class="q">You asked for /vhtml/%s (q=&lt;b&gt;&amp;c=&quot;&#39;) on example.com, '
             "path /vhtml/%%3Cscript%%3Ealert(%%27x%%27)%%3C/script%%3E & more</p>" % XSS_HTML),
            "return_type text/html: $request_uri, $args escaped, the literal text as written")
        r = srv.get("/vxhtml" + XSS)
        is_(r and r.body.decode(), "<p>/vxhtml/%s</p>" % XSS_HTML, "return_type application/xhtml+xml: escaped")
        r = srv.get("/vsvg/?a=<script>'")
        is_(r and r.body.decode(), "<text>a=&lt;script&gt;&#39;</text>", "return_type image/svg+xml: escaped")
        r = srv.get("/vplain" + XSS)
        is_(r and r.body.decode(), "<p>/vplain%s</p>" % XSS, "text/plain (the default): values as they are")
        r = srv.get("/vjson/?<b>")
        is_(r and r.body.decode(), '{"uri":"/vjson/?<b>"}', "application/json: values as they are")

        r = srv.get("/nope", method="HEAD")
        is_(r and (r.status, r.header("Content-Length"), r.body), (404, str(len(NOT_FOUND_BODY)), b""),
            "HEAD of an unrouted path: 404 with its length, no body")

        # --- HTTP/1.0 without Host only matches routes without host
        c = srv.connect()
        c.send(b"GET /anything HTTP/1.0\r\n\r\n")
        r = c.read_response()
        is_(r and r.status, 404, "HTTP/1.0 without Host does not match a host route")
        c = srv.connect()
        c.send(b"GET /hello HTTP/1.0\r\n\r\n")
        r = c.read_response()
        is_(r and r.status, 200, "HTTP/1.0 without Host matches a route without host")

        ok(srv.alive(), "server still running")

    # keepalive_requests = 2000, server_tokens = off, a return_file route
    srv2 = Server(CONF.replace("keepalive_requests = 20", "keepalive_requests = 2000\nserver_tokens = off") +
                  "\n[route:file]\npath = /file\nreturn = 200\nreturn_file = {dir}/page.html\nreturn_type = text/html\n",
                  start=False)
    page = b"<!doctype html>\n<p>caf\xc3\xa9 \x00 binary-safe</p>\n" * 100
    with open(srv2.path("page.html"), "wb") as f:
        f.write(page)
    with srv2.start():
        r = srv2.get("/file")
        is_(r and (r.status, r.header("Content-Type"), r.header("Content-Length")), (200, "text/html", str(len(page))),
            "return_file: 200, return_type, Content-Length of the file")
        ok(r is not None and r.body == page, "return_file: the body is the file, byte for byte")
        is_(r and r.header("Server"), "portico", "server_tokens = off: Server: portico")
        r = srv2.get("/file", method="HEAD")
        is_(r and (r.header("Content-Length"), r.body), (str(len(page)), b""), "return_file HEAD: length, no body")

        # --- a long pipeline whose answers pass the output high-water mark
        n = 1000
        c = srv2.connect()
        c.send(get("/hello") * (n - 1) + get("/hello", extra="Connection: close\r\n"))
        got = []
        try:
            for i in range(n):
                r = c.read_response(timeout=5)
                if r is None:
                    break
                got.append((r.status, r.body))
        except Exception as e:
            diag("after %d responses: %s" % (len(got), e))
        is_(len(got), n, "%d pipelined requests in one send: %d responses" % (n, n))
        ok(all(g == (200, b"hello world") for g in got), "... all 200 hello world")


run(main)
