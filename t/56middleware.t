#!/usr/bin/env python3
# Middleware: [middleware:NAME] blocks listed by routes, the request phase
# (headers a backend sees), the response-head phase (headers a client sees,
# on every response of the route: handler, proxy, error pages), the order
# of a chain, and configuration errors with their lines.
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import Backend, echoed_headers, exchange  # noqa: E402

CONF = """\
[global]
workers = 1

[listen:http]
address = 127.0.0.1:{port}

[pool:app]
server = %(a)s
max_fails = 0

[middleware:ident]
type = headers
request_set = X-User: alice
request_remove = Cookie
request_add = X-Via: one
request_add = X-Via: two
request_set = X-Seen-Host: $host
request_set = X-Order: ident

[middleware:secure]
type = headers
response_set = X-Frame-Options: DENY
response_remove = Server
response_add = Link: <https://$host/style.css>; rel=preload
response_set = X-Order: secure
request_set = X-Order: secure

[middleware:brand]
type = headers
response_set = Server: edge
response_remove = X-Backend
response_set = X-Order: brand

[route:app]
path = /app/
pool = app
middleware = ident, secure
middleware = brand

[route:status]
path = /status/
pool = app
middleware = secure

[route:hello]
path = /hello
return = 200 hi
middleware = secure

[route:plain]
path = /
return = 200 plain
"""


def hdrs(r, name):
    return r.header_all(name) if r is not None else None


def main():
    a = Backend("a")
    try:
        with Server(CONF % {"a": a.addr}) as srv:
            c = srv.connect()
            r = exchange(c, "GET", "/app/echo", headers=["X-User: mallory", "Cookie: s=1", "X-Order: client"])
            is_(r and r.status, 200, "proxied through three middleware: 200")
            is_(echoed_headers(r, "X-User"), ["alice"], "request_set replaced the client's X-User")
            is_(echoed_headers(r, "Cookie"), [], "request_remove: no Cookie reached the backend")
            is_(echoed_headers(r, "X-Via"), ["one", "two"], "request_add twice: two lines, in order")
            is_(echoed_headers(r, "X-Seen-Host"), ["localhost"], "request_set with $host")
            is_(echoed_headers(r, "X-Order"), ["secure"], "request phase in the route's order: the last set wins")
            is_(hdrs(r, "X-Frame-Options"), ["DENY"], "response_set reached the client")
            is_(hdrs(r, "Server"), [], "response phase last first: secure, listed first, removed the Server brand set")
            is_(hdrs(r, "X-Order"), ["secure"], "response phase last first: secure's set comes after brand's")
            is_(hdrs(r, "X-Backend"), [], "response_remove of a backend's header")
            is_(hdrs(r, "Link"), ["<https://localhost/style.css>; rel=preload"], "response_add with $host")

            # The same connection goes on: nothing was left behind.
            r = exchange(c, "GET", "/app/echo")
            is_(r and r.status, 200, "keep-alive: the next request on the connection")
            is_(echoed_headers(r, "X-User"), ["alice"], "... with its own request phase")

            # A backend's error and a 404 get the response rules too.
            r = exchange(c, "GET", "/status/503")
            is_(r and (r.status, hdrs(r, "X-Frame-Options")), (503, ["DENY"]), "a backend's 503: rules applied")
            r = srv.get("/hello")
            is_(r and (r.status, r.body), (200, b"hi"), "return behind middleware")
            is_(hdrs(r, "Server"), [], "response_remove = Server: no Server line")
            is_(hdrs(r, "X-Frame-Options"), ["DENY"], "and the other rules")
            ok(r is not None and r.header("Date") is not None, "Date stays")
            is_(r and r.header("Content-Length"), "2", "framing stays")
            r = srv.get("/plain")
            is_(r and (hdrs(r, "X-Frame-Options"), len(hdrs(r, "Server"))), ([], 1),
                "a route without middleware: untouched")

            # HEAD and a 304-style empty answer keep their framing.
            r = srv.get("/hello", method="HEAD")
            is_(r and (r.status, hdrs(r, "X-Frame-Options")), (200, ["DENY"]), "HEAD: rules applied")
    finally:
        a.stop()

    config_errors()


def config_errors():
    import tempfile
    d = tempfile.mkdtemp(prefix="portico-t-mw-")
    base = "[listen:a]\naddress = 127.0.0.1:1\n[route:r]\nreturn = 200 x\n"
    cases = [
        ("[middleware:m]\nrequest_set = X: 1\n", 5, "[middleware:m] type: missing: give one of headers"),
        ("[middleware:m]\ntype = gzip\n", 6, '[middleware:m] type: unknown middleware type "gzip"'),
        ("[middleware:m]\ntype = headers\n", 5, "[middleware:m] no rules: give request_set, request_add, "
         "request_remove, response_set, response_add or response_remove"),
        ("[middleware:m]\ntype = headers\nrequest_set = Host: evil\n", 7,
         "[middleware:m] request_set: Host cannot be changed: the request was framed and routed by it"),
        ("[middleware:m]\ntype = headers\nresponse_set = Content-Length: 1\n", 7,
         "[middleware:m] response_set: Content-Length cannot be changed: portico frames the response with it"),
        ("[middleware:m]\ntype = headers\nresponse_add = X-A\n", 7,
         '[middleware:m] response_add: expected "Name: value", not "X-A"'),
        ("[middleware:m]\ntype = headers\nresponse_add = X A: 1\n", 7,
         "[middleware:m] response_add: expected a header name (letters, digits and !#$%&'*+-.^_`|~, up to 256) "
         'in "X A: 1"'),
        ("[middleware:m]\ntype = headers\nresponse_add = X: $nope\n", 7,
         '[middleware:m] response_add: unknown variable at "$nope" (known: $scheme, $host, $request_uri, $uri, '
         "$args; $$ for a literal $)"),
        ("[middleware:m]\ntype = headers\nrespons_set = X: 1\n", 7,
         '[middleware:m] respons_set: unknown key (did you mean "response_set"?)'),
        ("[middleware:m]\ntype = headers\ntype = headers\n", 7, "[middleware:m] type: given twice (first on line 6)"),
    ]
    for i, (text, line, msg) in enumerate(cases):
        p = os.path.join(d, "c%d.ini" % i)
        with open(p, "w") as f:
            f.write(base + text)
        rc, out, err = portico(["-t", "-c", p])
        errs = [l for l in err.splitlines() if l.startswith(p + ":")]
        is_((rc, errs), (1, ["%s:%d: %s" % (p, line, msg)]), "config error: %s" % msg[:60])
    p = os.path.join(d, "route.ini")
    with open(p, "w") as f:
        f.write(base + "middleware = nosuch\n")
    rc, out, err = portico(["-t", "-c", p])
    errs = [l for l in err.splitlines() if l.startswith(p + ":")]
    is_((rc, errs), (1, ["%s:5: [route:r] middleware: no [middleware:nosuch] section" % p]),
        "a route naming a block that does not exist")
    with open(p, "w") as f:
        f.write(base + "middleware = m, m\n[middleware:m]\ntype = headers\nresponse_remove = Server\n")
    rc, out, err = portico(["-t", "-c", p])
    errs = [l for l in err.splitlines() if l.startswith(p + ":")]
    is_((rc, errs), (1, ['%s:5: [route:r] middleware: "m" listed twice' % p]), "a block listed twice")


run(main)
