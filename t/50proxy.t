#!/usr/bin/env python3
# Proxy: balancing (round_robin, least_conn, ip_hash, hash, backup), the
# headers a backend sees, path mapping, upstream keep-alive, bodiless answers.
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403

# Exact round-robin order and upstream keep-alive over one connection hold
# within one worker (cursors and idle connections are per worker), so this
# server runs with exactly one even under PORTICO_MIN_WORKERS.
CONF = """\
[global]
workers = 1

[listen:http]
address = 127.0.0.1:{port}

[pool:rr3]
server = {a}
server = {b}
server = {c}

[pool:rrw]
server = {a} weight=5
server = {b}
server = {c}

[pool:lc]
balance = least_conn
server = {a}
server = {b}

[pool:ip]
balance = ip_hash
server = {a}
server = {b}
server = {c}

[pool:hash]
balance = hash X-User
server = {a}
server = {b}
server = {c}

[pool:bk]
fail_timeout = 1s
server = {d}
server = {e} backup

[pool:one]
server = {f}

[pool:nb]
server = {g}

[pool:ka]
server = {h}

[route:rr3]
path = /rr3/
pool = rr3
strip_prefix = yes

[route:rrw]
path = /rrw/
pool = rrw
strip_prefix = yes

[route:lc]
path = /lc/
pool = lc
strip_prefix = yes

[route:ip]
path = /ip/
pool = ip
strip_prefix = yes

[route:hash]
path = /hash/
pool = hash
strip_prefix = yes

[route:bk]
path = /bk/
pool = bk
strip_prefix = yes

[route:hdr]
path = /hdr/
pool = one

[route:trust]
path = /trust/
pool = one
trusted_proxies = 10.9.9.9, 127.0.0.0/8
forwarded = on

[route:hb]
path = /hb/
pool = one
host_header = backend

[route:app]
path = /app/
pool = one
strip_prefix = yes

[route:ka]
path = /ka/
pool = ka

[route:nb]
path = /nb/
pool = nb
strip_prefix = yes

[route:star]
host = star.test
path = /
pool = one
"""

HASH_ONLY = """\
[global]
workers = 1

[listen:http]
address = 127.0.0.1:{port}

[pool:hash]
balance = hash X-User
server = %s
server = %s

[route:hash]
path = /hash/
pool = hash
strip_prefix = yes
"""


def names(srv, path, n, headers=()):
    out = []
    for _ in range(n):
        r = srv.get(path, headers=headers)
        out.append(r.header("X-Backend") if r is not None and r.status == 200 else r and r.status)
    return out


def test_round_robin(srv):
    is_(" ".join(names(srv, "/rr3/echo", 9)), "a b c a b c a b c",
        "round_robin, equal weights: a b c a b c a b c")
    is_(" ".join(names(srv, "/rrw/echo", 14)), "a a b a c a a a a b a c a a",
        "round_robin, weights 5:1:1: smooth, a a b a c a a twice")


def test_least_conn(srv, be):
    slow = srv.connect(timeout=10)
    slow.send(request_bytes("GET", "/lc/slow?delay=2", close=True))
    busy = wait_for(lambda: [x for x in (be["a"], be["b"]) if x.paths["/slow"] > 0], 3)
    if not ok(len(busy) == 1, "least_conn: the slow request reached one backend"):
        return
    idle = "b" if busy[0].name == "a" else "a"
    got = names(srv, "/lc/echo", 10)
    is_(got, [idle] * 10, "least_conn: while %s is busy, all 10 requests go to the idle %s" % (busy[0].name, idle))
    r = slow.read_response(timeout=5)
    is_((r and r.status, r and r.header("X-Backend")), (200, busy[0].name), "least_conn: the slow request is answered")
    slow.close()


def test_ip_hash(srv):
    seen = {}
    consistent = True
    for i in range(2, 22):
        src = "127.0.0.%d" % i
        got = set()
        for _ in range(3):
            c = source_conn(Conn, src, srv.port)
            try:
                r = exchange(c, "GET", "/ip/echo", headers=["Connection: close"])
                got.add(r.header("X-Backend") if r is not None and r.status == 200 else None)
                d = echoed(r)
                if d is None or ("X-Forwarded-For", src) not in [tuple(h) for h in d["headers"]]:
                    consistent = False
            finally:
                c.close()
        seen[src] = got
    ok(all(len(v) == 1 and None not in v for v in seen.values()),
       "ip_hash: each of 20 client addresses always reaches the same server (3 requests each)")
    if not consistent:
        diag(repr(seen))
    ok(consistent, "ip_hash: the backend saw each client's own address in X-Forwarded-For")
    used = set().union(*seen.values())
    ok(len(used) >= 2, "ip_hash: 20 addresses spread over more than one server (%s)" % sorted(used, key=str))


def hash_map(srv, keys):
    m = {}
    c = srv.connect()
    try:
        for k in keys:
            r = exchange(c, "GET", "/hash/echo", headers=["X-User: " + k])
            m[k] = r.header("X-Backend") if r is not None and r.status == 200 else None
    finally:
        c.close()
    return m


def test_hash(srv, be):
    keys = ["user-%d" % i for i in range(200)]
    first = hash_map(srv, keys)
    again = hash_map(srv, keys)
    is_(sum(1 for k in keys if first[k] != again[k] or first[k] is None), 0,
        "hash X-User: every one of 200 keys reaches the same server twice")
    counts = {n: sum(1 for k in keys if first[k] == n) for n in "abc"}
    ok(all(v >= 30 for v in counts.values()), "hash X-User: 200 keys spread over a, b, c (%r)" % counts)

    # The same pool without c: only c's keys may move (rendezvous hashing).
    with Server(HASH_ONLY % (be["a"].addr, be["b"].addr)) as s2:
        after = hash_map(s2, keys)
    moved = [k for k in keys if after[k] != first[k]]
    is_(len(moved), counts["c"], "hash X-User: with c removed, exactly c's %d keys move" % counts["c"])
    is_(sorted(set(first[k] for k in moved)), ["c"] if moved else [], "hash X-User: every key that moved was on c")
    ok(all(after[k] in ("a", "b") for k in keys), "hash X-User: all keys now on a or b")


def test_backup(srv, d, e):
    is_(names(srv, "/bk/echo", 6), ["d"] * 6, "backup: while the primary is up, it serves everything")
    is_(e.requests, 0, "backup: the backup server saw no request")
    d.stop()
    is_(names(srv, "/bk/echo", 6), ["e"] * 6, "backup: with the primary killed, the backup serves everything")
    d.start()
    t0 = time.monotonic()
    back = wait_for(lambda: srv.get("/bk/echo").header("X-Backend") == "d", 4, 0.1)
    ok(back, "backup: the primary serves again once fail_timeout (1s) has passed (%.1fs)" % (time.monotonic() - t0))
    e_before = e.requests
    is_(names(srv, "/bk/echo", 6), ["d"] * 6, "backup: and keeps serving everything")
    is_(e.requests, e_before, "backup: the backup is idle again")


def test_headers(srv, f):
    ua = ["X-Forwarded-For: 1.2.3.4", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example"]

    r = srv.get("/hdr/echo", host="front.example", headers=ua)
    d = echoed(r)
    is_(echoed_headers(r, "X-Forwarded-For"), ["127.0.0.1"],
        "X-Forwarded-For from an untrusted peer is replaced with the peer address")
    is_(echoed_headers(r, "X-Forwarded-Proto"), ["http"], "X-Forwarded-Proto: http (the client's value replaced)")
    is_(echoed_headers(r, "X-Forwarded-Host"), ["front.example"], "X-Forwarded-Host: the client's Host (its own value replaced)")
    is_(echoed_headers(r, "Host"), ["front.example"], "Host is the client's by default")
    is_(d and d["target"], "/hdr/echo", "without strip_prefix the path goes out as sent")
    rid = echoed_headers(r, "X-Request-Id")
    ok(rid is not None and len(rid) == 1 and re.fullmatch(r"[0-9a-f]{16}", rid[0]) is not None,
       "X-Request-Id generated: 16 hex digits (%r)" % (rid,))
    rid2 = echoed_headers(srv.get("/hdr/echo"), "X-Request-Id")
    ok(rid2 is not None and rid is not None and rid2 != rid, "X-Request-Id differs between requests (%r, %r)" % (rid, rid2))
    # A client that is not one of trusted_proxies does not choose its id
    # (request_id = trusted); t/54proxy-headers.t has the other settings.
    rid3 = echoed_headers(srv.get("/hdr/echo", headers=["X-Request-Id: req-abc-123"]), "X-Request-Id")
    ok(rid3 is not None and len(rid3) == 1 and re.fullmatch(r"[0-9a-f]{16}", rid3[0]) is not None,
       "X-Request-Id from an untrusted client replaced with a new one (%r)" % (rid3,))
    is_(echoed_headers(srv.get("/trust/echo", headers=["X-Request-Id: req-abc-123"]), "X-Request-Id"), ["req-abc-123"],
        "X-Request-Id kept when a trusted peer gives one")
    is_(echoed_headers(r, "Forwarded"), [], "no Forwarded header without forwarded = on")
    r = srv.get("/hdr/echo", headers=["Forwarded: for=6.6.6.6"])
    is_(echoed_headers(r, "Forwarded"), [], "without forwarded = on an untrusted client's Forwarded is dropped")

    r = srv.get("/trust/echo", host="front.example", headers=["X-Forwarded-For: 1.2.3.4", "Forwarded: for=6.6.6.6"])
    is_(echoed_headers(r, "X-Forwarded-For"), ["1.2.3.4, 127.0.0.1"],
        "X-Forwarded-For from a trusted peer is appended to")
    is_(echoed_headers(r, "Forwarded"), ['for=6.6.6.6, for=127.0.0.1;proto=http;host="front.example"'],
        "forwarded = on, trusted peer: our element appended to its Forwarded list (RFC 7239 4)")
    r = srv.get("/trust/echo", host="front.example",
                headers=["X-Forwarded-Proto: HTTPS", "X-Forwarded-Host: www.example"])
    is_((echoed_headers(r, "X-Forwarded-Proto"), echoed_headers(r, "X-Forwarded-Host")), (["https"], ["www.example"]),
        "trusted peer (a TLS offloader): its X-Forwarded-Proto (in lower case) and -Host are kept")
    is_(echoed_headers(srv.get("/trust/echo", headers=["X-Forwarded-Proto: gopher"]), "X-Forwarded-Proto"), ["http"],
        "trusted peer: an X-Forwarded-Proto other than http or https is replaced")
    is_(echoed_headers(srv.get("/trust/echo"), "X-Forwarded-For"), ["127.0.0.1"],
        "trusted peer without X-Forwarded-For: just its address")
    # Field lines of one name are one list (RFC 9110 5.3); fixed in 99450a1,
    # before which only the last line was kept.
    is_(echoed_headers(srv.get("/trust/echo", headers=["X-Forwarded-For: 1.1.1.1", "X-Forwarded-For: 2.2.2.2"]),
                       "X-Forwarded-For"), ["1.1.1.1, 2.2.2.2, 127.0.0.1"],
        "X-Forwarded-For over two lines from a trusted peer: both kept, peer appended")

    hop = ["Connection: keep-alive, X-Secret", "X-Secret: s", "Keep-Alive: timeout=5", "TE: trailers",
           "Trailer: X-T", "Upgrade: h2c", "Proxy-Connection: keep-alive", "Proxy-Authorization: Basic eDp5",
           "X-Keep: yes"]
    r = srv.get("/hdr/echo", headers=hop)
    got = sorted(k.lower() for k, _ in (echoed(r) or {"headers": []})["headers"])
    is_(got, sorted(["host", "x-keep", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"]),
        "hop-by-hop fields removed (Connection, what it names, Keep-Alive, TE, Trailer, Upgrade, Proxy-*), others kept")
    # Every Proxy-* field, not only the three registered ones (fixed in 99450a1).
    is_(echoed_headers(srv.get("/hdr/echo", headers=["Proxy-Foo: bar"]), "Proxy-Foo"), [],
        "a Proxy-Foo field is not forwarded (Proxy-*)")

    is_(echoed_headers(srv.get("/hb/echo", host="front.example"), "Host"), [f.addr],
        "host_header = backend: Host is the server's HOST:PORT")

    # Max-Forwards (RFC 9110 7.6.2): on TRACE and OPTIONS, 0 means we answer,
    # anything else goes on one less; other methods pass it as it is.
    r = srv.request(b"TRACE /hdr/echo HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\nCookie: secret=1\r\nX-A: b\r\n\r\n")
    is_(r and (r.status, r.header("Content-Type")), (200, "message/http"), "TRACE with Max-Forwards: 0: answered here, message/http")
    is_(r and r.body, b"TRACE /hdr/echo HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\nX-A: b\r\n\r\n",
        "  the request head echoed, without its Cookie")
    r = srv.request(b"OPTIONS /hdr/echo HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n\r\n")
    is_(r and (r.status, r.body, r.header("X-Backend")), (200, b"", None), "OPTIONS with Max-Forwards: 0: an empty 200 from portico")
    r = srv.get("/hdr/echo", method="OPTIONS", headers=["Max-Forwards: 3"])
    is_((echoed_headers(r, "Max-Forwards"), echoed_headers(r, "X-Forwarded-For")), (["2"], ["127.0.0.1"]),
        "OPTIONS with Max-Forwards: 3 goes on with 2 (and the other fields intact)")
    r = srv.request(b"OPTIONS http://star.test HTTP/1.1\r\nHost: star.test\r\nConnection: close\r\n\r\n")
    d = echoed(r)
    is_((d and d["method"], d and d["target"]), ("OPTIONS", "*"), "OPTIONS http://host goes to the server as OPTIONS * (RFC 9112 3.2.4)")
    r = srv.request(b"GET http://star.test HTTP/1.1\r\nHost: star.test\r\nConnection: close\r\n\r\n")
    is_(echoed(r) and echoed(r)["target"], "/", "GET http://host goes as GET /")
    r = srv.get("/hdr/echo", headers=["Max-Forwards: 0"])
    is_(echoed_headers(r, "Max-Forwards"), ["0"], "GET with Max-Forwards: 0 goes on untouched")


def test_paths(srv):
    cases = [
        ("/app/x/y?q=1&r=%20", "/x/y?q=1&r=%20"),
        ("/app/", "/"),
        ("/app/a%20b/c", "/a%20b/c"),
        ("/app/./x//y?", "/x/y?"),
    ]
    for sent, want in cases:
        d = echoed(srv.get(sent))
        is_(d and d["target"], want, "strip_prefix: %s goes out as %s" % (sent, want))


def test_keepalive(srv, f):
    st = [srv.get("/ka/echo").status for _ in range(100)]
    is_(st, [200] * 100, "keep-alive: 100 sequential requests (each on its own client connection) all 200")
    is_(f.requests, 100, "keep-alive: the backend saw 100 requests")
    is_(f.connections, 1, "keep-alive: over one upstream connection")


def test_bodiless(srv, g):
    g.reset_counters()
    c = srv.connect()
    r = exchange(c, "HEAD", "/nb/fixed?size=1234")
    is_((r and r.status, r and r.header("Content-Length"), r and r.body), (200, "1234", b""),
        "HEAD: 200, the backend's Content-Length, no body")
    r = exchange(c, "HEAD", "/nb/chunked?size=5000")
    is_((r and r.status, r and r.body), (200, b""), "HEAD of a chunked resource: no body")
    r = exchange(c, "GET", "/nb/status/204")
    is_((r and r.status, r and r.header("Content-Length"), r and r.header("Transfer-Encoding")), (204, None, None),
        "204: no Content-Length, no Transfer-Encoding")
    r = exchange(c, "GET", "/nb/status/304")
    is_((r and r.status, r and r.header("ETag"), r and r.header("Transfer-Encoding")), (304, '"v1"', None),
        "304: ETag kept, no Transfer-Encoding")
    r = exchange(c, "GET", "/nb/cl304")
    is_((r and r.status, r and r.header("Content-Length"), r and r.body), (304, "100", b""),
        "304 with the size a 200 would have: Content-Length passed on (RFC 9110 8.6), no body")
    ok(c.is_open_after(0.2), "no stray body bytes after the bodiless responses")
    r = exchange(c, "GET", "/nb/fixed?size=10")
    is_((r and r.status, r and r.body), (200, gen_bytes(10)), "the client connection goes on with the next response")
    c.close()
    is_((g.requests, g.connections), (6, 1), "the backend saw 6 requests over one connection")


def main():
    be = {n: Backend(n) for n in "abcdefgh"}
    try:
        be["g"].on("/cl304", lambda h, req: h.send(
            b'HTTP/1.1 304 Not Modified\r\nETag: "v2"\r\nContent-Length: 100\r\n\r\n') or True)
        conf = CONF
        for n, b in be.items():
            conf = conf.replace("{%s}" % n, b.addr)
        with Server(conf, exact_workers=True) as srv:
            test_round_robin(srv)
            test_least_conn(srv, be)
            test_ip_hash(srv)
            test_hash(srv, be)
            test_backup(srv, be["d"], be["e"])
            test_headers(srv, be["f"])
            test_paths(srv)
            test_keepalive(srv, be["h"])
            test_bodiless(srv, be["g"])
    finally:
        for b in be.values():
            b.stop()


run(main)
