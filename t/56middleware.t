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

[middleware:cors]
type = headers
cors_origins = https://app.example.com
cors_origins = https://Admin.example.com:8443
cors_methods = GET, POST PUT
cors_headers = Content-Type, Authorization
cors_max_age = 10m
cors_credentials = on

[middleware:leak]
type = headers
response_set = Access-Control-Allow-Origin: https://evil.example
response_set = X-Leak: yes

[middleware:open]
type = headers
cors_origins = *

[route:api]
path = /api/
pool = app
middleware = cors

[route:spoof]
path = /spoof
return = 200 spoof
middleware = cors, leak

[route:public]
path = /public
return = 200 public
middleware = open

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
            cors(srv, a)
    finally:
        a.stop()

    config_errors()


def cors(srv, a):
    app = "https://app.example.com"
    pre = ["Origin: %s" % app, "Access-Control-Request-Method: PUT",
           "Access-Control-Request-Headers: content-type"]
    before = a.requests
    c = srv.connect()
    r = exchange(c, "OPTIONS", "/api/things", headers=pre)
    is_(r and r.status, 204, "CORS preflight from an allowed origin: 204, answered by portico")
    is_(r and [r.header(h) for h in ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
                                      "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
                                      "Access-Control-Max-Age", "Vary")],
        [app, "true", "GET, POST, PUT", "Content-Type, Authorization", "600", "Origin"],
        "preflight: origin echoed, credentials, methods, headers, max-age, Vary")
    r = exchange(c, "OPTIONS", "/api/things", headers=["Origin: https://Admin.example.com:8443",
                                                       "Access-Control-Request-Method: GET"])
    is_(r and (r.status, r.header("Access-Control-Allow-Origin")), (204, "https://Admin.example.com:8443"),
        "preflight: origins compared without case, the client's spelling echoed")
    r = exchange(c, "OPTIONS", "/api/things", headers=["Origin: https://evil.example",
                                                       "Access-Control-Request-Method: PUT"])
    is_(r and (r.status, r.header("Access-Control-Allow-Origin")), (403, None),
        "preflight from another origin: 403, no Allow-Origin")
    is_(a.requests, before, "no preflight reached the backend (the chain stopped)")
    r = exchange(c, "GET", "/api/echo", headers=["Origin: %s" % app])
    is_(r and (r.status, r.header("Access-Control-Allow-Origin"), r.header("Access-Control-Allow-Credentials")),
        (200, app, "true"), "a request from an allowed origin: proxied, the origin allowed")
    is_(echoed_headers(r, "Origin"), [app], "the backend still sees Origin")
    r = exchange(c, "GET", "/api/echo", headers=["Origin: https://app.example.com.evil.example"])
    is_(r and (r.status, r.header("Access-Control-Allow-Origin"), r.header("Vary")), (200, None, "Origin"),
        "another origin: served, never allowed, Vary: Origin")
    r = exchange(c, "OPTIONS", "/api/echo")
    is_(r and (r.status, r.header("Access-Control-Allow-Origin")), (200, None),
        "OPTIONS without Origin is no preflight: it goes on to the backend")
    r = exchange(c, "GET", "/spoof", headers=["Origin: https://evil.example"])
    is_(r and (r.status, r.header("Access-Control-Allow-Origin"), r.header("X-Leak")), (200, None, "yes"),
        "an Allow-Origin set by another block is removed: the preset decides")
    r = exchange(c, "GET", "/spoof", headers=["Origin: %s" % app])
    is_(r and r.header_all("Access-Control-Allow-Origin"), [app], "and replaced for an allowed origin")
    r = exchange(c, "GET", "/public", headers=["Origin: https://anyone.example"])
    is_(r and (r.header("Access-Control-Allow-Origin"), r.header("Vary")), ("*", None),
        "cors_origins = *: Allow-Origin *, no Vary")


def config_errors():
    import tempfile
    d = tempfile.mkdtemp(prefix="portico-t-mw-")
    base = "[listen:a]\naddress = 127.0.0.1:1\n[route:r]\nreturn = 200 x\n"
    cases = [
        ("[middleware:m]\nrequest_set = X: 1\n", 5, "[middleware:m] type: missing: give one of headers, jwt, basic, compress, ratelimit"),
        ("[middleware:m]\ntype = gzip\n", 6, '[middleware:m] type: unknown middleware type "gzip"'),
        ("[middleware:m]\ntype = headers\n", 5, "[middleware:m] no rules: give request_set, request_add, "
         "request_remove, response_set, response_add, response_remove or cors_origins"),
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
        ("[middleware:m]\ntype = headers\ncors_origins = *\ncors_credentials = on\n", 8,
         "[middleware:m] cors_credentials: cannot go with cors_origins = * (line 7): list the origins"),
        ("[middleware:m]\ntype = headers\ncors_origins = example.com\n", 7,
         '[middleware:m] cors_origins: expected * or origins such as https://example.com, not "example.com"'),
        ("[middleware:m]\ntype = headers\ncors_methods = GET\n", 5,
         "[middleware:m] cors_origins: missing: the other cors_ keys need it"),
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
