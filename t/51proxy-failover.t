#!/usr/bin/env python3
# Proxy failover: dead servers, no server at all, timeouts, broken and
# invalid responses, passive health (max_fails, fail_timeout), and which
# requests may be replayed.
import hashlib
import os
import socket
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1

[listen:http]
address = 127.0.0.1:{port}

[pool:kill]
server = {k1}
server = {k2}
server = {k3}

[pool:dead]
panic_threshold = 0%
server = {d1}
server = {d2}

[pool:cfgdown]
server = {k1} down
server = {k2} down

[pool:single]
read_timeout = 1s
max_fails = 0
server = {x}

[pool:double]
read_timeout = 1s
max_fails = 0
server = {x}
server = {y}

[pool:mf]
max_fails = 1
fail_timeout = 2s
server = {p}
server = {q}

[pool:post]
server = {r}
server = {s}

[pool:getretry]
server = {r}
server = {s}

[pool:postka]
max_fails = 0
read_timeout = 2s
server = {t}

[pool:hc]
max_fails = 0
health_check = GET /healthz every 200ms
rise = 2
fall = 2
server = {h1}
server = {h2}

[pool:putka]
max_fails = 0
read_timeout = 2s
server = {u}
"""

ROUTES = ["kill", "dead", "cfgdown", "single", "double", "mf", "post", "getretry", "postka", "putka", "hc"]

SLACK = 1.0


def reset_after_body(h, req):
    """Reads the whole request (body included), then resets: no response byte."""
    h.reset()
    return False


def timed_get(srv, path, timeout=8):
    t0 = time.monotonic()
    try:
        r = srv.request(request_bytes("GET", path, close=True), timeout=timeout)
    except (socket.timeout, ServerError, OSError) as e:
        diag("%s: %s" % (path, e))
        r = None
    return r, time.monotonic() - t0


def test_killed(srv, be):
    warm = [srv.get("/kill/echo").status for _ in range(6)]
    is_(warm, [200] * 6, "kill: 6 requests over 3 servers before the kill")
    be["k2"].stop()
    st = [srv.get("/kill/echo") for _ in range(50)]
    bad = [r and r.status for r in st if r is None or r.status != 200]
    is_(bad, [], "kill: 50 GETs with one server killed: no errors")
    served = sorted(set(r.header("X-Backend") for r in st if r is not None))
    is_(served, ["k1", "k3"], "kill: the survivors served them")


def test_none_left(srv):
    got = []
    for _ in range(3):
        r, took = timed_get(srv, "/dead/echo")
        got.append((r and r.status, took < 1.0))
    # Both connects refused: the first request answers 502 (spec: "connect
    # refused: retried on another server, else 502"); both are then down.
    is_(got, [(502, True), (503, True), (503, True)],
        "all servers refusing: 502 for the request that tried both, then 503s, each within 1s")
    r, took = timed_get(srv, "/dead/echo")
    is_((r and r.status, r and r.header("Retry-After")), (503, "1"), "no server available: 503 with Retry-After")
    r, took = timed_get(srv, "/cfgdown/echo")
    is_((r and r.status, r and r.header("Retry-After"), took < 1.0), (503, "1", True),
        "every server marked down in the config: 503 with Retry-After at once")


def test_timeouts(srv):
    # With one server, a retry finds no server left: the answer is still the
    # timeout's 504, not 503 (fixed in 99450a1).
    r, took = timed_get(srv, "/single/slow?delay=6")
    is_(r and r.status, 504, "read_timeout = 1s, one slow server: 504")
    ok(0.9 <= took <= 1 + SLACK, "read_timeout = 1s, one slow server: answered after %.2fs (1s..%.1fs)" % (took, 1 + SLACK))
    r, took = timed_get(srv, "/double/slow?delay=6")
    is_(r and r.status, 504, "read_timeout = 1s, two slow servers: 504")
    ok(0.9 <= took <= 2 + SLACK, "read_timeout = 1s, two slow servers: answered after %.2fs (1s..%.1fs)" % (took, 2 + SLACK))
    r, _ = timed_get(srv, "/single/echo")
    is_(r and r.status, 200, "the slow server still takes requests afterwards (max_fails = 0)")


def test_midclose(srv):
    c = srv.connect(timeout=5)
    c.send(request_bytes("GET", "/single/midclose?size=100000&send=1000"))
    t0 = time.monotonic()
    try:
        r = c.read_response(timeout=5)
        err = "complete response %r" % (r,)
    except ServerError as e:
        err = str(e)
    except socket.timeout:
        err = "timeout"
    took = time.monotonic() - t0
    like(err, r"connection closed with 1000 of 100000 bytes read",
         "backend closes mid-response (Content-Length): the client connection is closed after the bytes sent")
    is_(c.buf, gen_bytes(100000)[:1000], "the bytes before the cut are relayed exactly")
    ok(took < 3, "and it closes within %.2fs, not hung" % took)
    c.close()

    c = srv.connect(timeout=5)
    c.send(request_bytes("GET", "/single/midclose?size=100000&send=1000&framing=chunked"))
    try:
        r = c.read_response(timeout=5)
        err = "complete response %r" % (r,)
    except ServerError as e:
        err = str(e)
    except socket.timeout:
        err = "timeout"
    like(err, r"connection closed", "backend closes mid-response (chunked): the client connection is closed, no last chunk")
    c.close()


def test_invalid(srv, x, y):
    # As with timeouts: the last failure's 502, not 503 (fixed in 99450a1).
    r, _ = timed_get(srv, "/single/garbage")
    is_(r and r.status, 502, "garbage from the only server: 502")
    bad = [
        ("not HTTP", "THIS IS NOT HTTP\r\n\r\n"),
        ("both Content-Length and Transfer-Encoding",
         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("a four-digit status", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
        ("HTTP/2 in the status line", "HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ("space before a colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"),
        ("two different Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        ("obsolete line folding", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
        # codings the client could not undo once the hop-by-hop field is gone
        ("gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        ("gzip alone", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nxyz"),
        ("Transfer-Encoding in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ]
    for what, text in bad:
        r, _ = timed_get(srv, "/double/garbage?text=" + urllib.parse.quote(text))
        is_((r and r.status, r and r.header("X-Backend")), (502, None), "invalid response (%s) from both servers: 502" % what)
    # Bad chunked framing after the head was accepted: the client is cut off
    # (with or without the part before it), never sent a complete response.
    c = srv.connect(timeout=5)
    c.send(request_bytes("GET", "/double/garbage?text=" + urllib.parse.quote(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nZZ\r\n")))
    try:
        r = c.read_response(timeout=5)
        err = "closed" if r is None else "complete response %r" % (r,)
    except ServerError as e:
        err = "closed" if c.eof else str(e)
    except socket.timeout:
        err = "timeout"
    is_(err, "closed", "bad chunk size mid-response: the client connection is closed")
    c.close()

    # What is valid passes as it came: the reason phrase, and a header value
    # far longer than any fixed buffer (the head fits max_header_size).
    big = "v" * 12000
    r, _ = timed_get(srv, "/single/bighead")
    is_((r and r.status, r and r.reason, r and r.body), (299, "Weird Thing", b"ok"),
        "the backend's status line is relayed with its own reason phrase")
    is_(r and r.header("X-Big"), big, "a 12000-byte header value is relayed whole")

    # Interim responses: 103 goes on to an HTTP/1.1 client (RFC 9110 15.2),
    # the backend's 100 does not (portico answers Expect itself), and an
    # HTTP/1.0 client gets none at all.
    for version, want in ((b"1.1", [b"HTTP/1.1 103 Early Hints", b"HTTP/1.1 200 OK"]), (b"1.0", [b"HTTP/1.1 200 OK"])):
        c = srv.connect(timeout=5)
        c.send(b"GET /single/early HTTP/" + version + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = c.read_until_close(5)
        c.close()
        heads = [blk.split(b"\r\n")[0] for blk in raw.split(b"\r\n\r\n") if blk.startswith(b"HTTP/")]
        is_(heads, want, "1xx from the backend to an HTTP/%s client: %s" % (version.decode(), b", ".join(want).decode()))
        if version == b"1.1":
            ok(b"\r\nLink: </a.css>; rel=preload\r\n\r\n" in raw, "  the 103 keeps its Link header")
            ok(raw.endswith(b"\r\n\r\nok"), "  and the final response follows whole")
    # A server that keeps sending interim heads is cut off: 502 after 16.
    c = srv.connect(timeout=5)
    c.send(b"GET /single/early-flood HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = c.read_until_close(5)
    c.close()
    heads = [blk.split(b"\r\n")[0] for blk in raw.split(b"\r\n\r\n") if blk.startswith(b"HTTP/")]
    is_((heads.count(b"HTTP/1.1 103 Early Hints"), heads[-1] if heads else None), (16, b"HTTP/1.1 502 Bad Gateway"),
        "40 interim heads from the server: 16 relayed, then 502")


def long_status(split):
    """A status line of exactly max_request_line (8k) bytes; split: the CR
    ends one write, the LF starts the next."""
    def fn(h, req):
        line = b"HTTP/1.1 200 " + b"R" * (8192 - 13)
        rest = b"\nContent-Length: 2\r\n\r\nok"
        if split:
            h.send(line + b"\r")
            time.sleep(0.3)
            h.send(rest)
        else:
            h.send(line + b"\r" + rest)
        return True
    return fn


def test_long_status(srv):
    r, _ = timed_get(srv, "/single/longstatus")
    is_((r and r.status, r and r.body), (200, b"ok"), "a status line of exactly max_request_line bytes is taken")
    # Before 7e2b739 the CR ending a read counted as content: "status line
    # too long", 502.
    r, _ = timed_get(srv, "/single/longstatus-split")
    is_((r and r.status, r and r.body), (200, b"ok"),
        "the same status line with its CR and LF in different reads is taken too")


def test_max_fails(srv, p, q):
    p.mode = "hangup"
    r = srv.get("/mf/echo")
    t_fail = time.monotonic()
    is_((r and r.status, r and r.header("X-Backend")), (200, "q"),
        "max_fails: a server closing without answering: the GET is retried on the other")
    is_(p.connections, 1, "max_fails: the failing server got one connection")
    p.mode = None
    got = [srv.get("/mf/echo") for _ in range(10)]
    still_window = time.monotonic() - t_fail < 2.0
    is_([r and r.header("X-Backend") for r in got], ["q"] * 10, "max_fails = 1: the failed server is skipped")
    ok(still_window, "(those 10 requests came within fail_timeout)")
    is_(p.connections, 1, "max_fails = 1: no connection attempt to it within fail_timeout (2s)")
    time.sleep(max(0.0, t_fail + 2.2 - time.monotonic()))  # the window is the thing under test
    got = [srv.get("/mf/echo") for _ in range(2)]
    ok("p" in [r and r.header("X-Backend") for r in got], "max_fails: after fail_timeout the server takes requests again")
    is_(p.connections, 2, "max_fails: with a new connection")


def test_replay(srv, be):
    r_, s_, t_ = be["r"], be["s"], be["t"]
    body = b"x" * 1000
    r = srv.request(request_bytes("POST", "/post/flaky", body=body, close=True))
    is_(r and r.status, 502, "POST whose body was sent, then the backend reset: 502")
    is_((r_.methods["POST"], s_.methods["POST"]), (1, 0), "that POST was not replayed (one POST seen, none on the other server)")

    r = srv.get("/getretry/flaky")
    is_((r and r.status, r and r.header("X-Backend")), (200, "s"), "GET reset before any response byte: retried on the other server")
    is_(r_.paths["/flaky"], 2, "(the first server saw it once: one POST, one GET in all)")

    # The same on a kept-alive upstream connection.  Idle upstream
    # connections are the worker's own: one client connection keeps the
    # GET and the POST in one worker, however many there are.
    c = srv.connect(timeout=8)
    st = exchange(c, "GET", "/postka/echo")
    is_(st and st.status, 200, "postka: a GET leaves an idle upstream connection")
    r, took = timed_post(srv, "/postka/flaky", body, conn=c)
    c.close()
    # Before 99450a1 the "idle connection closed under us" path replayed it on
    # a fresh connection without its body: two POSTs, then 504.
    is_((r and r.status, t_.methods["POST"]), (502, 1),
        "POST on a reused upstream connection, body sent, then reset: 502 and not replayed")
    ok(took < 1.5, "and answered at once (%.2fs)" % took)


def test_reused_closed(srv, u):
    # A kept-alive connection the backend closes when the next request comes:
    # the request is retried once on a fresh connection, body and all.
    # One client connection throughout, so one worker, whose idle upstream
    # connection each request finds.
    u.close_after = 1
    c = srv.connect(timeout=8)
    st = exchange(c, "GET", "/putka/echo")
    is_(st and st.status, 200, "putka: a GET leaves an idle upstream connection")
    body = gen_bytes(1000, 7)
    r, took = timed_post(srv, "/putka/echo", body, method="PUT", conn=c)
    d = echoed(r)
    # Before 99450a1 the retry sent the head (Content-Length: 1000) without
    # the body, and the client got 504 after read_timeout.
    is_((r and r.status, d and d["body_len"], d and d["sha256"]), (200, 1000, hashlib.sha256(body).hexdigest()),
        "PUT on a reused connection the backend closed: retried on a fresh one with its whole body")
    is_((u.methods["PUT"], u.connections), (2, 2), "the backend saw the PUT on the old and on a new connection")
    ok(took < 1.5, "and answered at once (%.2fs)" % took)

    # Past the 64 KiB the proxy keeps for a replay, a body already sent cannot
    # be sent again: 502, not a retry with a truncated body.  The backend
    # closes only once the whole body has had time to go out.
    u.close_delay = 0.3
    body = gen_bytes(200 * 1024, 8)
    r, took = timed_post(srv, "/putka/echo", body, method="PUT", conn=c)
    c.close()
    is_((r and r.status, u.methods["PUT"]), (502, 3),
        "PUT of 200 KiB on a reused connection closed after the body went out: 502, not replayed")
    ok(took < 1.5, "and answered at once (%.2fs)" % took)


class Health:
    """A /healthz answering with .status; counts answers per status."""

    def __init__(self):
        self.status = 200
        self.answers = []

    def __call__(self, h, req):
        st = self.status
        self.answers.append(st)
        return h.respond(req, st, "health\n", ctype="text/plain")

    def count(self, st):
        return sum(1 for x in self.answers if x == st)


def test_health_checks(srv, h1, h2, hc):
    # Checks run one after another per server, so the third answer of a
    # kind being asked for means the proxy has taken in the second.
    ok(wait_for(lambda: hc.count(200) >= 2 and h2.paths["/healthz"] >= 2, 3),
       "health_check: both servers are checked every 200ms")
    last = h1.log[-1] if h1.log else None
    is_((last and last.method, last and last.path, last and last.header("Host")), ("GET", "/healthz", h1.addr),
        "health_check: GET /healthz with the server as Host")
    is_(sorted(set(names(srv, "/hc/echo", 4))), ["h1", "h2"], "health_check: both healthy servers serve")
    hc.status = 503
    n0 = hc.count(503)
    ok(wait_for(lambda: hc.count(503) >= n0 + 3, 3), "health_check: h1 answers its checks with 503")
    before = h1.paths["/echo"]
    is_(names(srv, "/hc/echo", 6), ["h2"] * 6, "health_check: after fall = 2 failed checks h1 is out of rotation")
    is_(h1.paths["/echo"], before, "health_check: h1 got no request meanwhile")
    hc.status = 200
    n0 = hc.count(200)
    ok(wait_for(lambda: hc.count(200) >= n0 + 3, 3), "health_check: h1 answers 200 again")
    is_(sorted(set(names(srv, "/hc/echo", 4))), ["h1", "h2"], "health_check: after rise = 2 passed checks h1 serves again")


def names(srv, path, n):
    out = []
    for _ in range(n):
        r = srv.get(path)
        out.append(r.header("X-Backend") if r is not None and r.status == 200 else r and r.status)
    return out


def timed_post(srv, path, body, method="POST", conn=None):
    """The request on a connection of its own, or on conn (kept alive)."""
    t0 = time.monotonic()
    try:
        if conn is None:
            r = srv.request(request_bytes(method, path, body=body, close=True), timeout=8)
        else:
            r = exchange(conn, method, path, body=body, timeout=8)
    except (socket.timeout, ServerError, OSError) as e:
        diag("%s %s: %s" % (method, path, e))
        r = None
    return r, time.monotonic() - t0


def main():
    names = ["k1", "k2", "k3", "d1", "d2", "x", "y", "p", "q", "r", "s", "t", "u", "h1", "h2"]
    be = {n: Backend(n) for n in names}
    try:
        be["d1"].stop()
        be["d2"].stop()
        be["x"].on("/longstatus", long_status(False))
        be["x"].on("/longstatus-split", long_status(True))
        be["x"].on("/early", lambda h, req: h.send(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") or True)
        be["x"].on("/early-flood", lambda h, req: h.send(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" * 40
            + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") or True)
        be["x"].on("/bighead", lambda h, req: h.send(
            b"HTTP/1.1 299 Weird Thing\r\nX-Big: " + b"v" * 12000 + b"\r\nContent-Length: 2\r\n\r\nok") or True)
        hc = Health()
        be["h1"].on("/healthz", hc)
        for n in ("r", "t"):
            be[n].on("/flaky", reset_after_body)
        conf = CONF
        for n, b in be.items():
            conf = conf.replace("{%s}" % n, b.addr)
        for n in ROUTES:
            conf += "\n[route:%s]\npath = /%s/\npool = %s\nstrip_prefix = yes\n" % (n, n, n)
        with Server(conf) as srv:
            test_killed(srv, be)
            test_none_left(srv)
            test_timeouts(srv)
            test_midclose(srv)
            test_invalid(srv, be["x"], be["y"])
            test_long_status(srv)
            test_max_fails(srv, be["p"], be["q"])
            test_replay(srv, be)
            test_reused_closed(srv, be["u"])
            test_health_checks(srv, be["h1"], be["h2"], hc)
    finally:
        for b in be.values():
            b.stop()


run(main)
