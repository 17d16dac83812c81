#!/usr/bin/env python3
# The access log's fields beyond combined: request id, upstream address and
# timings, TLS version and cipher, and the termination reason of every
# exchange (json and main formats); combined stays the standard format.
# Certificates are made here with `openssl req` in a temp dir.
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import Backend, echoed_headers  # noqa: E402

TMP = tempfile.mkdtemp(prefix="portico-logfields-")

CONF = """
[global]
workers = 1
access_log = %(log)s
access_log_format = %(fmt)s
header_timeout = 1s
shutdown_timeout = 500ms

[listen:http]
address = 127.0.0.1:{port}
%(tls)s
[pool:be]
server = %(be)s
read_timeout = 1s
retries = 0

[pool:refused]
server = 127.0.0.1:%(dead)d
retries = 0

[pool:none]
server = %(be)s down

[middleware:cors]
type = headers
cors_origins = https://ok.example

[route:be]
path = /be/
pool = be
strip_prefix = yes

[route:refused]
path = /refused/
pool = refused

[route:none]
path = /none/
pool = none

[route:cors]
path = /cors/
middleware = cors
return = 200 fine

[route:hello]
path = /
return = 200 hello
"""


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return [l for l in f.read().decode("utf-8", "replace").split("\n") if l]
    except OSError:
        return []


def wait_lines(path, n, timeout=5):
    return wait_for(lambda: len(read_lines(path)) >= n and read_lines(path), timeout, 0.05) or read_lines(path)


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def conf(fmt, be, tls=""):
    """The configuration and its access log (in TMP: read after the server's temp dir is gone)."""
    log = tempfile.mktemp(dir=TMP, suffix=".log")
    return CONF % {"fmt": fmt, "be": be.addr, "dead": dead_port(), "tls": tls, "log": log}, log


def json_lines(path, n):
    out = []
    for l in wait_lines(path, n):
        try:
            out.append(json.loads(l))
        except ValueError:
            diag("not JSON: %r" % l)
            out.append({})
    return out


def json_fields(be):
    text, log = conf("json", be)
    srv = Server(text)
    with srv:
        c = srv.connect()
        c.send(b"GET /be/echo HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        sent = {"x-request-id": (echoed_headers(r, "X-Request-Id") or [None])[0]}
        # A client closes while the backend has not answered: 499.
        c2 = srv.connect()
        seen = be.paths.get("/stall", 0)
        c2.send(b"GET /be/stall HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: be.paths.get("/stall", 0) > seen, 5)
        c2.close()
        # The backend is too slow (read_timeout 1s): 504.
        c.send(b"GET /be/stall HTTP/1.1\r\nHost: x\r\n\r\n")
        r504 = c.read_response(timeout=5)
        c.close()
        checks = [
            (b"GET /refused/x HTTP/1.1\r\nHost: x\r\n\r\n", 502),
            (b"GET /none/x HTTP/1.1\r\nHost: x\r\n\r\n", 503),
            (b"GET /be/midclose?size=100000&send=10 HTTP/1.1\r\nHost: x\r\n\r\n", 200),
            (b"OPTIONS /cors/ HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
             b"Access-Control-Request-Method: PUT\r\n\r\n", 403),
            (b"GET /cors/ HTTP/1.1\r\nHost: x\r\nOrigin: https://ok.example\r\n\r\n", 200),
            (b"GET /bad path HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ]
        for req, want in checks:
            cc = srv.connect()
            cc.send(req)
            try:
                rr = cc.read_response(timeout=5)
            except ServerError:
                rr = Response()
                rr.status = 200  # the head came, the body was cut: as expected for midclose
            if rr is None or rr.status != want:
                diag("%r: got %r" % (req[:40], rr and rr.status))
            cc.close()
        # A head that never ends: 408 after header_timeout.
        cc = srv.connect()
        cc.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        cc.read_until_close(5)
        cc.close()
        objs = json_lines(log, 10)
    is_(len(objs), 10, "json: one line per exchange, aborted ones included")
    # The line of the first exchange, by its request: each worker buffers its
    # own lines and writes them once a second (PORTICO_MIN_WORKERS may make
    # two), so the file's first line can be another connection's.
    o = ([x for x in objs if x.get("request") == "GET /be/echo HTTP/1.1"] or [{}])[0]
    is_(o.get("request_id"), sent.get("x-request-id"), "json: request_id is the X-Request-Id the backend got")
    is_(o.get("upstream_addr"), be.addr, "json: upstream_addr")
    ok(all(isinstance(o.get(k), int) and o[k] >= 0 for k in
           ("upstream_connect_us", "upstream_header_us", "upstream_response_us")),
       "json: upstream times are integers")
    us = [o.get(k) for k in ("upstream_connect_us", "upstream_header_us", "upstream_response_us")]
    ok(all(isinstance(v, int) for v in us) and us[0] <= us[1] <= us[2],
       "json: connect <= first byte <= whole response (%r)" % (us,))
    is_((o.get("termination"), o.get("tls_version"), o.get("tls_cipher")), (None, None, None),
        "json: a whole answer over plain HTTP: no termination, no TLS")
    by = {}
    for x in objs:
        by.setdefault((x.get("request") or "").split(" ")[1] if x.get("request") else None, []).append(x)
    def term(path, status, want, what):
        xs = [x for x in by.get(path, []) if x.get("status") == status]
        is_(xs and xs[0].get("termination"), want, "termination: %s (%d, %s)" % (what, status, want))
        return xs[0] if xs else {}
    x = term("/be/stall", 499, "client_closed", "the client went away first")
    is_(x.get("upstream_addr"), be.addr, "termination: the aborted request names its upstream")
    ok(x.get("upstream_header_us") is None, "termination: ... and no first byte time")
    term("/be/stall", 504, "upstream_timeout", "the backend too slow")
    term("/refused/x", 502, "upstream_refused", "connect refused")
    term("/none/x", 503, "no_server", "no server in service")
    term("/be/midclose?size=100000&send=10", 200, "upstream_reset", "the backend closed mid-body")
    term("/cors/", 403, "middleware", "a middleware answered (preflight refused)")
    xs = [x for x in by.get("/cors/", []) if x.get("status") == 200]
    is_(xs and xs[0].get("termination"), None, "termination: none when the handler answered after the middleware")
    term("/bad", 400, "bad_request", "a request refused before routing")
    xs = [x for x in objs if x.get("status") == 408]
    is_(xs and xs[0].get("termination"), "client_timeout", "termination: header_timeout (408, client_timeout)")
    ok(all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", x.get("time", "")) for x in objs),
       "json: every time is RFC 3339")


def shutdown_cut(be):
    text, log = conf("json", be)
    srv = Server(text)
    # A socket of our own: the test library's connections close before SIGTERM.
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    seen = be.paths.get("/stall", 0)
    c.sendall(b"GET /be/stall HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for(lambda: be.paths.get("/stall", 0) > seen, 5)
    srv.stop()
    c.close()
    objs = json_lines(log, 1)
    xs = [x for x in objs if (x.get("request") or "").startswith("GET /be/stall")]
    is_(xs and (xs[0].get("status"), xs[0].get("termination")), (499, "shutdown"),
        "a request cut at shutdown has its line: 499, termination shutdown")


def main_format(be):
    text, log = conf("main", be)
    srv = Server(text)
    with srv:
        c = srv.connect()
        c.send(b"GET /be/echo HTTP/1.1\r\nHost: x\r\nUser-Agent: t/1\r\n\r\n")
        r = c.read_response()
        rid = (echoed_headers(r, "X-Request-Id") or [None])[0]
        c.send(b"GET /hi HTTP/1.1\r\nHost: x\r\n\r\n")
        c.read_response()
        c.close()
        lines = wait_lines(log, 2)
    m = re.match(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /be/echo HTTP/1\.1" 200 \d+ "-" "t/1"'
                 r' rt=\d+\.\d{3} rid=(\S+) upstream=(\S+) uct=\d+\.\d{3} uht=\d+\.\d{3} urt=\d+\.\d{3}'
                 r' tls=- cipher=- term=-$', lines[0] if lines else "")
    ok(m, "main: combined, then rt rid upstream uct uht urt tls cipher term")
    if not m:
        diag(repr(lines[:1]))
    is_(m and (m.group(1), m.group(2)), (rid, be.addr), "main: the request id and upstream address")
    like(lines[1] if len(lines) > 1 else "", r'" 200 5 "-" "-" rt=\d+\.\d{3} rid=- upstream=- uct=- uht=- urt=- tls=- cipher=- term=-$',
         "main: a request not proxied has - for the upstream fields")


def combined_format(be):
    text, log = conf("combined", be)
    srv = Server(text)
    with srv:
        c = srv.connect()
        c.send(b"GET /be/echo HTTP/1.1\r\nHost: x\r\nReferer: http://r/\r\nUser-Agent: t/1\r\n\r\n")
        c.read_response()
        c.close()
        lines = wait_lines(log, 1)
    like(lines[0] if lines else "", r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /be/echo HTTP/1\.1" 200 \d+ "http://r/" "t/1"$',
         "combined: the standard format, nothing added")


def tls_fields(be):
    openssl = shutil.which("openssl")
    if openssl is None:
        skip("no openssl", 2)
        return
    cert, key = os.path.join(TMP, "c.pem"), os.path.join(TMP, "k.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=30)
    text, log = conf("json", be, tls="tls_cert = %s\ntls_key = %s\n" % (cert, key))
    srv = Server(text)
    with srv:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=5), server_hostname="localhost")
        s.sendall(b"GET /hi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass
        cipher = s.cipher()[0]
        s.close()
        objs = json_lines(log, 1)
    o = objs[0] if objs else {}
    is_(o.get("tls_version"), "TLSv1.2", "json: tls_version")
    is_(o.get("tls_cipher"), cipher, "json: tls_cipher is the negotiated suite")


def main():
    be = Backend("a")
    try:
        json_fields(be)
        shutdown_cut(be)
        main_format(be)
        combined_format(be)
        tls_fields(be)
    finally:
        be.stop()
        shutil.rmtree(TMP, ignore_errors=True)


run(main)
