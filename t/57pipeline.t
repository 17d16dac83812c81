#!/usr/bin/env python3
# The pipeline's phases, through the test suite's own middleware (`type =
# test`, there only with PORTICO_TEST_MODULES set; see common/mw_test.h):
# body filters on static files (in memory and sent from the file),
# proxied Content-Length, chunked and close-delimited responses, HTTP/1.0
# clients, HEAD, 204, 304, ranges and a stream of events (the flush); a
# paused request phase (order kept, a body behind it, the client leaving
# while paused); short-circuit; the log phase, once per exchange; and a
# filter that shrinks a large file sharing the worker with other clients.
import hashlib
import json
import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403

os.environ["PORTICO_TEST_MODULES"] = "1"

CONF = """\
[global]
workers = 1
error_log = {dir}/error.log
access_log = {dir}/access.log
access_log_format = json

[listen:http]
address = 127.0.0.1:{port}

[pool:app]
server = %(a)s
max_fails = 0

[middleware:up]
type = test
upper = on

[middleware:dbl]
type = test
expand = on

[middleware:shrink]
type = test
shrink = on

[middleware:wait]
type = test
delay = 200ms

[middleware:slow]
type = test
delay = 5s

[middleware:broken]
type = test
upper = on
fail = 100k

[middleware:brittle]
type = test
fail = 10

[middleware:late]
type = test
delay = 100ms
answer = 429

[middleware:stop]
type = test
answer = 403

[middleware:ha]
type = headers
request_add = X-Trace: ha
response_add = X-Trace: ha

[middleware:hb]
type = headers
request_add = X-Trace: hb
response_add = X-Trace: hb

[route:st-up]
host = up.test
root = {dir}/root
middleware = up

[route:st-dbl]
host = dbl.test
root = {dir}/root
middleware = dbl

[route:st-shrink]
host = shrink.test
root = {dir}/root
middleware = shrink

[route:st-broken]
host = broken.test
root = {dir}/root
middleware = broken

[route:broken]
path = /broken/
pool = app
strip_prefix = yes
middleware = broken

[route:brittle]
path = /brittle/
pool = app
strip_prefix = yes
middleware = brittle

[route:st-plain]
host = plain.test
root = {dir}/root

[route:up]
path = /up/
pool = app
strip_prefix = yes
middleware = up

[route:dbl]
path = /dbl/
pool = app
strip_prefix = yes
middleware = dbl

[route:both]
path = /both/
pool = app
strip_prefix = yes
middleware = up, dbl

[route:chain]
path = /chain/
pool = app
strip_prefix = yes
middleware = ha, wait, hb

[route:slow]
path = /slow/
pool = app
strip_prefix = yes
middleware = slow

[route:late]
path = /late/
pool = app
strip_prefix = yes
middleware = ha, late, hb

[route:stop]
path = /stop/
pool = app
strip_prefix = yes
middleware = ha, stop, hb
"""

MiB = 1024 * 1024
SMALL = b"Hello, filtered world: abc xyz 0123.\n" * 20          # 740 bytes: kept in memory
ZEROS = 64 * MiB                                                 # sparse, through `shrink`
BIG = bytes((i * 7 + (i >> 9)) % 251 for i in range(1 * MiB + 3))  # sent from the file


def doubled(b):
    return bytes(x for c in b for x in (c, c))


def raw_get(srv, path, host="localhost", version="1.1", method="GET", headers=(), timeout=10):
    """Sends one request, closing after it; returns (status line, headers dict, body, raw head)."""
    c = srv.connect(timeout=timeout)
    try:
        req = "%s %s HTTP/%s\r\nHost: %s\r\n" % (method, path, version, host)
        for h in headers:
            req += h + "\r\n"
        if version == "1.1":
            req += "Connection: close\r\n"
        c.send(req + "\r\n")
        data = c.read_until_close(timeout)
    finally:
        c.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hs.setdefault(k.strip().lower(), []).append(v.strip())
    return lines[0], hs, body


def dechunk(body):
    out, i = b"", 0
    while True:
        j = body.index(b"\r\n", i)
        n = int(body[i:j].split(b";")[0], 16)
        if n == 0:
            return out
        out += body[j + 2:j + 2 + n]
        i = j + 2 + n + 2


def test_static(srv):
    r = srv.get("/small.txt", host="up.test")
    is_(r and (r.status, r.body, r.header("Content-Length"), r.header_all("X-Trace")),
        (200, SMALL.upper(), str(len(SMALL)), ["up"]),
        "static, in memory: upper-cased, same Content-Length")
    c = srv.connect(timeout=20)
    c.send(request_bytes("GET", "/big.bin", host="up.test"))
    st, hs, body, chunked = read_large_response(c, 20)
    h = dict((k.lower(), v) for k, v in hs)
    is_((st, h.get("content-length"), chunked, body == BIG.upper()), (200, str(len(BIG)), False, True),
        "static, from the file (no sendfile): 1 MiB upper-cased, same Content-Length")
    r = exchange(c, "GET", "/small.txt", host="up.test")
    is_(r and (r.status, r.body), (200, SMALL.upper()), "keep-alive: the next request after a filtered file")
    c.send(request_bytes("GET", "/big.bin", host="dbl.test"))
    st, hs, body, chunked = read_large_response(c, 20)
    h = dict((k.lower(), v) for k, v in hs)
    is_((st, h.get("content-length"), chunked, len(body), body == doubled(BIG)),
        (200, None, True, 2 * len(BIG), True),
        "static, length changed: chunked, no Content-Length, every byte twice")
    c.close()

    line, hs, body = raw_get(srv, "/big.bin", host="dbl.test", version="1.0", timeout=20)
    is_((line, "content-length" in hs, "transfer-encoding" in hs, hs.get("connection"), body == doubled(BIG)),
        ("HTTP/1.1 200 OK", False, False, ["close"], True),
        "HTTP/1.0 client, length changed: close-delimited, Connection: close, the body ends at the close")

    line, hs, body = raw_get(srv, "/big.bin", host="dbl.test", method="HEAD")
    is_((line, hs.get("transfer-encoding"), "content-length" in hs, body),
        ("HTTP/1.1 200 OK", ["chunked"], False, b""),
        "HEAD, length changed: the head a GET would get, no body")
    line, hs, body = raw_get(srv, "/big.bin", host="up.test", method="HEAD")
    is_((line, hs.get("content-length"), body), ("HTTP/1.1 200 OK", [str(len(BIG))], b""),
        "HEAD, same length: Content-Length kept, no body")

    r = srv.get("/small.txt", host="plain.test")
    etag = r.header("ETag") if r else None
    r = srv.get("/small.txt", host="dbl.test", headers=["If-None-Match: %s" % etag])
    is_(r and (r.status, r.header("Content-Length"), r.header("Transfer-Encoding"), r.body),
        (304, None, None, b""), "304: no body, no framing headers added")

    r = srv.get("/big.bin", host="up.test", headers=["Range: bytes=10-1009"])
    is_(r and (r.status, r.header("Content-Length"), r.body), (206, "1000", BIG[10:1010].upper()),
        "206 (one range): through the filter like any body (the module decides)")
    rng = ["Range: bytes=0-99,500000-699999"]
    plain = srv.get("/big.bin", host="plain.test", headers=rng)
    c = srv.connect(timeout=20)
    c.send(request_bytes("GET", "/big.bin", host="dbl.test", headers=rng))
    st, hs, body, chunked = read_large_response(c, 20)
    c.close()
    ok(plain is not None and plain.status == 206 and st == 206 and body == doubled(plain.body),
       "multipart ranges, length changed: part heads and file bytes through the filter, in order")


def test_proxy(srv, a):
    data = gen_bytes(100000, 3)
    c = srv.connect(timeout=20)
    r = exchange(c, "GET", "/up/fixed?size=100000&seed=3")
    is_(r and (r.status, r.header("Content-Length"), r.body == data.upper()), (200, "100000", True),
        "proxied, Content-Length: upper-cased, same length")
    r = exchange(c, "GET", "/dbl/chunked?size=100000&seed=3&chunk=777")
    is_(r and (r.status, r.header("Content-Length"), r.chunked, r.body == doubled(data)), (200, None, True, True),
        "proxied, chunked: de-chunked, filtered, chunked again")
    r = exchange(c, "GET", "/dbl/close?size=100000&seed=3")
    is_(r and (r.status, r.chunked, r.body == doubled(data)), (200, True, True),
        "proxied, close-delimited from the backend: chunked to a 1.1 client")
    r = exchange(c, "GET", "/dbl/fixed?size=100000&seed=3")
    is_(r and (r.status, r.chunked, r.body == doubled(data)), (200, True, True),
        "proxied, Content-Length, length changed: chunked")
    r = exchange(c, "GET", "/both/fixed?size=100000&seed=3")
    is_(r and (r.status, r.header_all("X-Trace"), r.body == doubled(data).upper()),
        (200, ["dbl", "up"], True), "two filters: both applied, response phase last first")
    for code in (204, 304):
        r = exchange(c, "GET", "/dbl/status/%d" % code)
        is_(r and (r.status, r.header("Transfer-Encoding"), r.header("Content-Length"), r.body),
            (code, None, None, b""), "proxied %d: no body, no framing" % code)
    r = exchange(c, "HEAD", "/up/fixed?size=100000")
    is_(r and (r.status, r.header("Content-Length"), r.body), (200, "100000", b""), "proxied HEAD: no body")
    c.close()

    line, hs, body = raw_get(srv, "/dbl/fixed?size=100000&seed=3", version="1.0")
    is_((line, "content-length" in hs, hs.get("connection"), body == doubled(data)),
        ("HTTP/1.1 200 OK", False, ["close"], True),
        "proxied to an HTTP/1.0 client, length changed: close-delimited")

    # Expansion under back-pressure: 8 MiB out of 4 MiB in, byte-exact.
    big = gen_bytes(4 * MiB, 5)
    c = srv.connect(timeout=30)
    c.send(request_bytes("GET", "/dbl/fixed?size=%d&seed=5" % len(big)))
    st, hs, body, chunked = read_large_response(c, 30)
    c.close()
    is_((st, chunked, hashlib.sha256(body).hexdigest()), (200, True, hashlib.sha256(doubled(big)).hexdigest()),
        "4 MiB doubled through the filter with back-pressure: byte-exact")

    # A stream of events: the filter holds bytes back (4k) until a flush,
    # which the proxy gives when the backend has sent nothing more.
    c = srv.connect(timeout=5)
    c.send(request_bytes("GET", "/up/sse?events=3&gate=g1"))
    first = None
    sent_then = None
    try:
        deadline = time.monotonic() + 3
        while c._take_line(deadline) != b"\r\n":
            pass
        size = int(c._take_line(deadline).split(b";")[0], 16)
        first = c._take(size + 2, deadline)[:-2]
        sent_then = a.events_sent
    except (socket.timeout, ServerError) as e:
        diag("event stream: %s" % e)
    a.release("g1")
    is_((first, sent_then), (b"DATA: EVENT 1\n\n", 1),
        "event stream: the first event, filtered, arrives before the backend sends the second (flush)")
    rest = b""
    try:
        deadline = time.monotonic() + 5
        while True:
            size = int(c._take_line(deadline).split(b";")[0], 16)
            if size == 0:
                c._take_line(deadline)
                break
            rest += c._take(size + 2, deadline)[:-2]
    except (socket.timeout, ServerError, ValueError) as e:
        diag("event stream: %s" % e)
    is_(rest, b"DATA: EVENT 2\n\nDATA: EVENT 3\n\n", "event stream: then the rest, and its end")
    c.close()


def test_failure(srv):
    # A filter that fails cuts the response: the connection closes short of
    # the declared length, or without the last chunk; the server goes on.
    line, hs, body = raw_get(srv, "/big.bin", host="broken.test", timeout=10)
    ok(line == "HTTP/1.1 200 OK" and hs.get("content-length") == [str(len(BIG))] and len(body) < len(BIG)
       and BIG.upper().startswith(body),
       "a filter failing on a file: the body is cut (%d of %d bytes), what went out is right" % (len(body), len(BIG)))
    line, hs, body = raw_get(srv, "/broken/chunked?size=500000&chunk=10000", timeout=10)
    ok(line == "HTTP/1.1 200 OK" and hs.get("transfer-encoding") == ["chunked"] and not body.endswith(b"0\r\n\r\n"),
       "a filter failing on a proxied chunked body: cut, no last chunk")
    like(open(srv.path("error.log")).read(), r"middleware broken \(test\): body filter failed; cutting the response",
         "the failure is logged with the block's name")
    # A stream that pauses after the failure: the connection still closes
    # (the producer is not ending the response), and the backend is let go.
    c = srv.connect(timeout=10)
    c.send("GET /brittle/sse?events=3&gate=never HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.monotonic()
    closed = c.closed_within(5)
    ok(closed and time.monotonic() - t0 < 5,
       "a filter failing on a paused stream: the connection closes at once, not when the stream ends")
    c.close()
    r = srv.get("/small.txt", host="up.test")
    is_(r and (r.status, r.body), (200, SMALL.upper()), "and the server goes on")
    # A client that leaves while filtered file bytes are still queued: the
    # exchange is logged as cut, though the handler had ended it.
    c = srv.connect(timeout=10, rcvbuf=4096)
    c.send("GET /huge.bin?leave=1 HTTP/1.1\r\nHost: up.test\r\n\r\n")
    ok(c.readable(5), "a client reading a filtered file: the answer starts")
    c.sock.recv(1000)
    c.close()
    alog = srv.path("access.log")
    def cut_line():
        for l in open(alog).read().splitlines():
            o = json.loads(l)
            if (o.get("request") or "").startswith("GET /huge.bin?leave=1"):
                return o
        return None
    o = wait_for(cut_line, 10) or {}
    is_((o.get("status"), o.get("termination")), (200, "client_closed"),
        "... who leaves: the line says client_closed, not a whole answer")


def access_line(srv, prefix):
    for l in open(srv.path("access.log")).read().splitlines():
        o = json.loads(l)
        if (o.get("request") or "").startswith(prefix):
            return o
    return None


def test_fair(srv):
    # A filter that drops nearly every byte never brings the output to the
    # high-water mark: the pump must still stop now and then so that the
    # worker's other connections are heard (workers = 1).
    c = srv.connect(timeout=30)
    t0 = time.monotonic()
    c.send("GET /zeros.bin?big=1 HTTP/1.1\r\nHost: shrink.test\r\nConnection: close\r\n\r\n")
    ok(c.readable(30), "a large file through a shrinking filter: the answer starts")
    t1 = time.monotonic()
    r = srv.get("/small.txt?during=1", host="plain.test")
    t2 = time.monotonic()
    data = c.read_until_close(60)
    t3 = time.monotonic()
    c.close()
    head, _, body = data.partition(b"\r\n\r\n")
    is_((head.split(b"\r\n")[0], dechunk(body) if b"chunked" in head.lower() else body),
        (b"HTTP/1.1 200 OK", b"\0" * (ZEROS // 1024)),
        "the filtered file: one byte in 1024 of it, byte-exact")
    is_(r and (r.status, r.body), (200, SMALL), "another request meanwhile on the same worker: answered")
    diag("big %.3fs, the other request %.3fs" % (t3 - t0, t2 - t1))
    ok(t2 - t1 < (t3 - t0) / 2,
       "... promptly (%.3fs) while the big one took %.3fs" % (t2 - t1, t3 - t0))
    # The access log is written as each exchange ends: its order says which ended first.
    lines = wait_for(lambda: len([l for l in open(srv.path("access.log")).read().splitlines()
                                  if "?big=1" in l or "?during=1" in l]) == 2 and
                     [l for l in open(srv.path("access.log")).read().splitlines()
                      if "?big=1" in l or "?during=1" in l], 10) or []
    ok(len(lines) == 2 and "?during=1" in lines[0],
       "... and it ended before the big one did (the pump gave the worker back)")

    # HEAD: no body, no filter at work.
    st, hs, body = raw_get(srv, "/zeros.bin?head=1", host="shrink.test", method="HEAD")
    is_((st, body), ("HTTP/1.1 200 OK", b""), "HEAD of the shrunk file: no body")

    # A client that leaves between slices: the exchange goes, the next slice with it.
    c = srv.connect(timeout=30)
    c.send("GET /zeros.bin?leave=1 HTTP/1.1\r\nHost: shrink.test\r\n\r\n")
    ok(c.readable(30), "a client leaving a shrinking download: the answer starts")
    c.close()
    o = wait_for(lambda: access_line(srv, "GET /zeros.bin?leave=1"), 30) or {}
    is_((o.get("status"), o.get("termination")), (200, "client_closed"),
        "... who leaves: the line says client_closed")
    r = srv.get("/small.txt?after=1", host="plain.test")
    is_(r and (r.status, r.body), (200, SMALL), "... and the worker goes on answering")


def test_pause(srv, a):
    c = srv.connect(timeout=5)
    t0 = time.monotonic()
    r = exchange(c, "GET", "/chain/echo")
    dt = time.monotonic() - t0
    is_(r and r.status, 200, "paused chain: answered")
    ok(dt >= 0.2, "paused chain: after the delay (%.3fs)" % dt)
    is_(echoed_headers(r, "X-Trace"), ["ha", "wait", "hb"], "paused chain: request phase in order, the rest after the resume")
    is_(r and r.header_all("X-Trace"), ["hb", "wait", "ha"], "paused chain: response phase last first")

    body = gen_bytes(300000, 9)
    r = exchange(c, "POST", "/chain/sha256", body=body, timeout=10)
    d = echoed(r) if r else None
    is_(d and (d["len"], d["sha256"]), (len(body), hashlib.sha256(body).hexdigest()),
        "paused chain with a request body: the body reaches the backend whole after the resume")

    # Two pipelined requests behind a pause: both answered, in order.
    c.send(request_bytes("GET", "/chain/echo?n=1") + request_bytes("GET", "/chain/echo?n=2"))
    r1 = c.read_response(timeout=5)
    r2 = c.read_response(timeout=5)
    is_([echoed(r)["target"] if echoed(r) else None for r in (r1, r2)], ["/echo?n=1", "/echo?n=2"],
        "pipelined requests behind a paused one: answered in order")
    c.close()

    # The client leaves while paused: logged as 499, the backend never asked.
    before = a.paths["/gone"]
    c = srv.connect(timeout=5)
    c.send(request_bytes("GET", "/chain/gone"))
    wait_for(lambda: "test wait: request phase: /chain/gone" in open(srv.path("error.log")).read(), 5)
    c.close()
    alog = srv.path("access.log")
    got = wait_for(lambda: [l for l in open(alog).read().splitlines() if "/chain/gone" in l], 5)
    ok(got and '"status":499' in got[0] and '"termination":"client_closed"' in got[0],
       "client gone while paused: an access-log line with 499, client_closed (not middleware)")
    time.sleep(0.3)  # past the delay: the timer must be gone with the exchange
    is_(a.paths["/gone"], before, "client gone while paused: the handler never started")

    # ... noticed at once, not when the pause ends, with a body still to come too.
    for what, req in (("GET", request_bytes("GET", "/slow/gone-get")),
                      ("POST", request_bytes("POST", "/slow/gone-post", headers=["Content-Length: 100000"]) + b"x" * 1000)):
        c = srv.connect(timeout=5)
        c.send(req)
        path = "/slow/gone-%s" % what.lower()
        wait_for(lambda: "test slow: request phase: %s" % path in open(srv.path("error.log")).read(), 5)
        t0 = time.monotonic()
        c.close()
        # The error log is written at once (the access log is flushed later).
        got = wait_for(lambda: "log call 1: %s 499" % path in open(srv.path("error.log")).read(), 4)
        ok(got and time.monotonic() - t0 < 3.5,
           "client gone while paused (%s): the log phase ran with 499 before the 5 s pause ended" % what)


def test_short_circuit(srv, a):
    before = a.requests
    r = srv.get("/stop/echo")
    is_(r and (r.status, r.body), (403, b"answered by stop\n"), "a middleware answers: its status and body")
    is_(r and r.header_all("X-Trace"), ["stop", "ha"],
        "response phase only for those whose request phase ran (not hb), last first")
    is_(a.requests, before, "the handler (backend) never saw it")
    alog = srv.path("access.log")
    got = wait_for(lambda: [l for l in open(alog).read().splitlines() if "/stop/echo" in l], 5)
    ok(got and '"termination":"middleware"' in got[0], "the access log says a middleware answered")
    t0 = time.monotonic()
    r = srv.get("/late/echo")
    dt = time.monotonic() - t0
    is_(r and (r.status, r.body, r.header_all("X-Trace")), (429, b"answered by late\n", ["late", "ha"]),
        "a paused middleware answers when its delay is over: later ones and the handler never run")
    ok(dt >= 0.1 and a.requests == before, "... after the delay (%.3fs), the backend never asked" % dt)
    got = wait_for(lambda: [l for l in open(alog).read().splitlines() if "/late/echo" in l], 5)
    ok(got and '"status":429' in got[0] and '"termination":"middleware"' in got[0],
       "... and the access log says a middleware answered")


def test_log(srv):
    elog = srv.path("error.log")
    text = wait_for(lambda: "/chain/gone 499" in open(elog).read() and open(elog).read(), 5) or ""
    lines = [l for l in text.splitlines() if "] test " in l and ": log call " in l]
    calls = [re.search(r"test (\S+): log call (\d+): (\S+) (\d+):", l) for l in lines]
    ok(lines and all(calls), "log phase lines are there (%d)" % len(lines))
    ok(all(m.group(2) == "1" for m in calls if m), "the log phase ran once per exchange (never a second call)")
    per = {}
    for m in calls:
        if m:
            per.setdefault((m.group(1), m.group(3)), []).append(m.group(4))
    is_(per.get(("wait", "/chain/gone")), ["499"], "log phase for the exchange cut while paused: once, 499")
    is_(per.get(("stop", "/stop/echo")), ["403"], "log phase for a short-circuited exchange")
    is_(per.get(("up", "/small.txt")), ["200"] * 3, "log phase once per request, keep-alive or not")
    both = [l for l in lines if "test dbl: log call 1: /both/fixed" in l]
    like(both[0] if both else "", r"up=status=200 bytes=200000 flushes=\d+ dbl=status=200 bytes=200000 flushes=\d+$",
         "log fields: each middleware's, in the route's order, visible to the next")
    alog = srv.path("access.log")
    def both_line():
        for l in open(alog).read().splitlines():
            o = json.loads(l)
            if (o.get("request") or "").startswith("GET /both/fixed"):
                return o
        return None
    o = wait_for(both_line, 5) or {}
    f = o.get("fields") or {}
    is_(sorted(f.keys()), ["dbl", "up"], "access log (json): the middleware's fields, in an object of their own")
    like(f.get("up", ""), r"^status=200 bytes=200000 flushes=\d+$", "access log (json): a field's value")
    sse = [l for l in lines if "test up: log call 1: /up/sse" in l]
    like(sse[0] if sse else "", r"flushes=[1-9]", "the stream's filter got flushes")


def config_errors():
    import tempfile
    d = tempfile.mkdtemp(prefix="portico-t-pl-")
    p = os.path.join(d, "t.ini")
    with open(p, "w") as f:
        f.write("[listen:a]\naddress = 127.0.0.1:1\n[route:r]\nreturn = 200 x\nmiddleware = m\n"
                "[middleware:m]\ntype = test\nupper = maybe\n")
    rc, out, err = portico(["-t", "-c", p])
    is_((rc, [l for l in err.splitlines() if l.startswith(p)]),
        (1, ['%s:8: [middleware:m] upper: bad value "maybe"' % p]), "test module: bad values are reported")
    env = sanitizer_env()
    del env["PORTICO_TEST_MODULES"]
    import subprocess
    pr = subprocess.run([BIN, "-t", "-c", p], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    errs = [l for l in pr.stderr.decode().splitlines() if l.startswith(p)]
    is_((pr.returncode, errs), (1, ['%s:7: [middleware:m] type: unknown middleware type "test"' % p]),
        "without PORTICO_TEST_MODULES the test module does not exist")


def main():
    a = Backend("a")
    try:
        with Server(CONF % {"a": a.addr}, start=False) as srv:
            os.makedirs(srv.path("root"))
            with open(srv.path("root/small.txt"), "wb") as f:
                f.write(SMALL)
            with open(srv.path("root/big.bin"), "wb") as f:
                f.write(BIG)
            with open(srv.path("root/huge.bin"), "wb") as f:
                f.truncate(32 * MiB)  # more than the socket buffers can hold
            with open(srv.path("root/zeros.bin"), "wb") as f:
                f.truncate(ZEROS)
            srv.start()
            test_static(srv)
            test_proxy(srv, a)
            test_failure(srv)
            test_fair(srv)
            test_pause(srv, a)
            test_short_circuit(srv, a)
            test_log(srv)
    finally:
        a.stop()
    config_errors()


run(main)
