#!/usr/bin/env python3
# `type = ratelimit`, local store: exact counts over a burst with two
# workers sharing one table, Retry-After and the RateLimit headers, a
# header key (and its shared bucket for requests without it), the client
# address behind trusted proxies, delay queueing (order and timing, a
# client leaving while queued), max_conns against a stalled backend, the
# state starting afresh at a reload, and load-time errors.
#
# Rates are per minute where counts must be exact: nothing refills
# during a test, however slow the build (sanitizers).
import json
import shutil
import tempfile
import math
import os
import re
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403

CONF = """\
[global]
workers = 2
error_log = {dir}/error.log
access_log = {dir}/access.log
access_log_format = json

[listen:http]
address = 127.0.0.1:{port}

[pool:app]
server = %(backend)s
max_fails = 0

[middleware:burst]
type = ratelimit
rate = 10/m
burst = 5

[middleware:apikey]
type = ratelimit
rate = 10/m
burst = 1
key = header:X-Api-Key

[middleware:behind]
type = ratelimit
rate = 10/m
key = addr
trusted_proxies = 127.0.0.0/8, ::1

[middleware:queue]
type = ratelimit
rate = 5/s
delay = 3

[middleware:leave]
type = ratelimit
rate = 1/s
delay = 5

[middleware:conns]
type = ratelimit
max_conns = 2

[middleware:tiny]
type = ratelimit
max_conns = 1
key = header:X-Key
max_keys = 8

[route:stallfull]
path = /stall/full
pool = app
middleware = tiny

[route:probefull]
path = /probefull/
return = 200 hello
middleware = tiny

[route:burst]
path = /burst/
return = 200 hello
middleware = burst

[route:apikey]
path = /apikey/
return = 200 hello
middleware = apikey

[route:behind]
path = /behind/
return = 200 hello
middleware = behind

[route:queue]
path = /queue/
return = 200 hello
middleware = queue

[route:leave]
path = /leave/
return = 200 hello
middleware = leave

[route:stall]
path = /stall
pool = app
middleware = conns

[route:probe]
path = /probe/
return = 200 hello
middleware = conns
"""


def statuses(srv, path, n, headers=()):
    return [r.status if r is not None else None for r in (srv.get(path, headers=headers) for _ in range(n))]


def access_lines(srv, pred, want, timeout=5):
    """The access log's json lines for which pred holds, once there are want of them."""
    def lines():
        try:
            text = open(srv.path("access.log")).read()
        except OSError:
            return None
        got = [o for o in (json.loads(l) for l in text.splitlines()) if pred(o)]
        return got if len(got) >= want else None
    return wait_for(lines, timeout) or []


def burst(srv):
    t0 = time.monotonic()
    first = srv.get("/burst/index.html")
    rest = [srv.get("/burst/index.html") for _ in range(19)]
    elapsed = time.monotonic() - t0
    got = [first.status] + [r.status for r in rest]
    is_(got, [200] * 6 + [429] * 14,
        "rate 10/m burst 5, two workers: of 20 immediate requests exactly the first 6 pass")
    is_(first.header("RateLimit-Policy"), '"burst";q=10;w=60', "RateLimit-Policy: the rate, named after the block")
    is_(first.header("RateLimit"), '"burst";r=5;t=6', "RateLimit of the first: 5 more at once, full again in 6s")
    is_(rest[4].header("RateLimit"), '"burst";r=0;t=36', "RateLimit of the sixth: none left, full in 36s")
    last = rest[-1]
    ra = int(last.header("Retry-After") or "0")
    ok(math.ceil(6 - elapsed) <= ra <= 6,
       "429: Retry-After %d is the seconds until the next would pass, rounded up" % ra)
    like(last.header("RateLimit") or "", r'^"burst";r=0;t=3[56]$', "429: RateLimit r=0, t: until full")
    like(last.body.decode(), r"<h1>429 Too Many Requests</h1>", "429: the standard error page")
    is_(statuses(srv, "/burst/index.html", 1), [429], "still refused")


def header_key(srv):
    a = statuses(srv, "/apikey/index.html", 3, ["X-Api-Key: alice"])
    b = statuses(srv, "/apikey/index.html", 3, ["X-Api-Key: bob"])
    is_(a, [200, 200, 429], "key = header:X-Api-Key, burst 1: two of alice's pass")
    is_(b, [200, 200, 429], "bob has a bucket of his own")
    none = statuses(srv, "/apikey/index.html", 3)
    is_(none, [200, 200, 429], "requests without the header share one bucket")
    long_key = "k" * 4000
    is_(statuses(srv, "/apikey/index.html", 3, ["X-Api-Key: " + long_key]), [200, 200, 429],
        "a 4000-byte key is a key like any")


def proxies(srv):
    xff = lambda v: ["X-Forwarded-For: " + v]
    is_(statuses(srv, "/behind/index.html", 1, xff("203.0.113.7")), [200],
        "trusted_proxies: the peer 127.0.0.1 is trusted, the client is 203.0.113.7")
    is_(statuses(srv, "/behind/index.html", 1, xff("198.51.100.1, 203.0.113.7")), [429],
        "the right-most untrusted entry is the client: the same bucket, refused")
    is_(statuses(srv, "/behind/index.html", 1, ["X-Forwarded-For: 198.51.100.1", "X-Forwarded-For: 203.0.113.7, 127.0.0.9"]),
        [429], "trusted hops on the right are skipped, over several header lines")
    is_(statuses(srv, "/behind/index.html", 1, xff("203.0.113.7, 10.9.9.9")), [200],
        "an untrusted hop right of it is the client (no spoofing from the left)")
    is_(statuses(srv, "/behind/index.html", 1, xff("127.0.0.2, 127.0.0.3")), [200],
        "every entry trusted: the left-most is the client")
    is_(statuses(srv, "/behind/index.html", 1, xff("127.0.0.2")), [429], "... and keeps its bucket")
    is_(statuses(srv, "/behind/index.html", 2, xff("not-an-address")), [200, 429],
        "an entry that is no address: the last trusted hop (the peer) is the key")
    is_(statuses(srv, "/behind/index.html", 1), [429], "no header: the peer, the same bucket")


def queue(srv):
    # 5/s, no burst, delay 3: one passes, three wait 200ms more each, the
    # fifth is refused.  A gap between sends fixes the arrival order.
    conns, sent = [], []
    t0 = time.monotonic()
    for i in range(5):
        c = srv.connect()
        c.send(("GET /queue/index.html?n=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i).encode())
        sent.append(time.monotonic() - t0)
        conns.append(c)
        time.sleep(0.04)
    ok(conns[4].readable(0.15) and not conns[3].readable(0),
       "the refused one is answered at once, while the others wait")
    done = []
    for i, c in enumerate(conns):
        r = c.read_response(timeout=5)
        done.append((i, r.status if r else None, time.monotonic() - t0))
        c.close()
    is_([s for _, s, _ in done], [200, 200, 200, 200, 429], "delay 3: four pass, the fifth is refused")
    for k in range(1, 4):
        ok(0.2 * k - 0.03 <= done[k][2] <= 0.2 * k + 0.6,
           "request %d released after %.3fs (its slot: %.1fs)" % (k + 1, done[k][2], 0.2 * k))
    ok(done[1][2] < done[2][2] < done[3][2], "released in their order")
    lines = access_lines(srv, lambda o: (o.get("request") or "").startswith("GET /queue/"), 5)
    outcome = sorted((o.get("request"), (o.get("fields") or {}).get("queue")) for o in lines)
    is_([f for _, f in outcome], ["pass", "delayed", "delayed", "delayed", "refused"],
        "access log: the outcome of each (pass, delayed x3, refused)")


def leave(srv):
    is_(statuses(srv, "/leave/index.html", 1), [200], "1/s delay 5: the first passes")
    c = srv.connect()
    c.send(b"GET /leave/index.html?gone HTTP/1.1\r\nHost: x\r\n\r\n")
    ok(not c.readable(0.2), "the second is queued")
    c.close()
    lines = access_lines(srv, lambda o: (o.get("request") or "").startswith("GET /leave/index.html?gone"), 1)
    o = lines[0] if lines else {}
    is_((o.get("status"), (o.get("fields") or {}).get("leave")), (499, "delayed"),
        "the client left while queued: 499, its timer gone with it")
    t0 = time.monotonic()
    r = srv.get("/leave/index.html")
    ok(r is not None and r.status == 200 and time.monotonic() - t0 > 0.5,
       "the next waits for its slot (the one that left kept its own)")


def conns(srv, b):
    stalled = []
    for i in range(2):
        c = srv.connect()
        c.send(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
        stalled.append(c)
    ok(wait_for(lambda: b.paths["/stall"] >= 2, 5), "max_conns 2: two requests in progress at the backend")
    r = srv.get("/probe/index.html")
    is_(r.status if r else None, 429, "a third request of the same client (another route, same block): 429")
    is_(r.header("Retry-After"), None, "... without Retry-After: no one knows when a request ends")
    stalled.pop().close()
    ok(wait_for(lambda: (srv.get("/probe/index.html") or Response()).status == 200, 5),
       "one stalled client left: the next passes")
    c = srv.connect()
    c.send(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
    stalled.append(c)
    ok(wait_for(lambda: b.paths["/stall"] >= 3, 5), "a second one in progress again")
    r = srv.get("/probe/index.html")
    is_(r.status if r else None, 429, "two in progress: refused again")
    for c in stalled:
        c.close()


def table_full(srv, b):
    # max_keys = 8: one set of 8 entries.  Eight keys with a request in
    # progress each hold all of it; a ninth key finds no entry to take.
    stalled = []
    for i in range(8):
        c = srv.connect()
        c.send(b"GET /stall/full HTTP/1.1\r\nHost: x\r\nX-Key: k%d\r\n\r\n" % i)
        stalled.append(c)
    ok(wait_for(lambda: b.paths["/stall/full"] >= 8, 5), "max_keys 8: eight keys with a request in progress")
    r = srv.get("/probefull/index.html", headers=["X-Key: k9"])
    is_(r and (r.status, r.header("Retry-After")), (503, "1"),
        "a ninth key: no entry may be taken over, 503 with Retry-After: 1 (as nginx's limit_conn)")
    r = srv.get("/probefull/index.html", headers=["X-Key: k3"])
    is_(r and r.status, 429, "a key holding an entry: max_conns 1 refuses its second (429)")
    stalled.pop(3).close()
    ok(wait_for(lambda: (srv.get("/probefull/index.html", headers=["X-Key: k9"]) or Response()).status == 200, 5),
       "one of them ended: the ninth key takes its entry")
    for c in stalled:
        c.close()
    ok(wait_for(lambda: "ratelimit tiny: no room for a new key (max_keys 8): 503" in open(srv.path("error.log")).read(), 5),
       "the error log says why")


def reload_resets(srv):
    is_(statuses(srv, "/burst/index.html", 1), [429], "before the reload: refused")
    srv.signal(signal.SIGHUP)
    ok(wait_for(lambda: "generation 2 in service" in open(srv.path("error.log")).read(), 10), "reloaded")
    is_(statuses(srv, "/burst/index.html", 7), [200] * 6 + [429],
        "a reload starts the buckets afresh (documented): six pass again")


def claim_key():
    """key = claim:sub: one bucket per verified subject, behind a jwt block."""
    import base64, hashlib, hmac
    secret = "k" * 40
    def token(sub):
        def b64(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 600}).encode())
        sig = hmac.new(secret.encode(), ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
        return "%s.%s.%s" % (head, body, b64(sig))
    conf = """[global]
workers = 2
[listen:a]
address = 127.0.0.1:{port}
[middleware:auth]
type = jwt
algorithm = HS256
secret = %s
[middleware:per-user]
type = ratelimit
rate = 10/m
burst = 1
key = claim:sub
[route:r]
middleware = auth, per-user
return = 200 ok
""" % secret
    with Server(conf) as srv:
        alice = ["Authorization: Bearer " + token("alice")]
        bob = ["Authorization: Bearer " + token("bob")]
        is_(statuses(srv, "/", 3, alice), [200, 200, 429], "key = claim:sub: alice's burst, then 429")
        is_(statuses(srv, "/", 2, bob), [200, 200], "... bob has a bucket of his own")
        is_(statuses(srv, "/", 1), [401], "... no token: the jwt block answers first")


def load_errors():
    d = tempfile.mkdtemp(prefix="portico-t-")
    cases = [
        ("key = claim:", r"key: the name is empty"),
        ("rate = 10/h", r"rate: expected N/s or N/m"),
        ("rate = 0/s", r"rate: expected N/s or N/m"),
        ("rate = 10/s\nkey = header:X-Key\ntrusted_proxies = 10.0.0.0/8", r"trusted_proxies: only means something with key = addr"),
        ("rate = 10/s\ntrusted_proxies = 10.0.0.1/8", r"trusted_proxies: expected an address or ADDRESS/BITS"),
        ("burst = 5", r"rate: give rate, max_conns or both"),
        ("rate = 10/s\nstore = memcache://x", r"store: expected local or redis://HOST:PORT"),
        ("rate = 10/s\nmax_keys = 0", r"max_keys: must be at least 1"),
    ]
    for i, (body, pat) in enumerate(cases):
        path = os.path.join(d, "bad%d.ini" % i)
        with open(path, "w") as f:
            f.write("[listen:a]\naddress = 127.0.0.1:1\n[middleware:m]\ntype = ratelimit\n%s\n"
                    "[route:r]\nreturn = 200\nmiddleware = m\n" % body)
        rc, out, err = portico(["-t", "-c", path])
        is_(rc, 1, "portico -t: %s refused" % body.replace("\n", "; "))
        like(out + err, re.escape(path) + r":\d+: \[middleware:m\] " + pat, "... with file, line and reason")
    shutil.rmtree(d)


def main():
    b = Backend("a")
    srv = Server(CONF % {"backend": b.addr})
    burst(srv)
    header_key(srv)
    proxies(srv)
    queue(srv)
    leave(srv)
    conns(srv, b)
    reload_resets(srv)
    table_full(srv, b)
    srv.stop()
    b.stop()
    load_errors()
    claim_key()


run(main)
