#!/usr/bin/env python3
# `type = ratelimit` with `store = redis://`: two portico processes (two
# workers each) behind one Redis share one limit exactly; Redis stopped
# (SIGSTOP: no answer within store_timeout) and killed (connection
# refused): on_store_error allow lets requests through, deny answers
# 503, each incident logged once per block and process, and the limit
# back once Redis answers again.  Skipped when redis-server is missing
# (`make deps` installs it).
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from redis import REDIS, Redis  # noqa: E402


CONF = """\
[global]
workers = 2
error_log = {dir}/error.log

[listen:http]
address = 127.0.0.1:{port}

[middleware:fa]
type = ratelimit
rate = 10/m
burst = 5
key = header:X-K
store = redis://127.0.0.1:%(rport)d
store_timeout = 100ms
on_store_error = allow

[middleware:fd]
type = ratelimit
rate = 10/m
burst = 5
key = header:X-K
store = redis://127.0.0.1:%(rport)d
store_timeout = 100ms
on_store_error = deny

[middleware:fq]
type = ratelimit
rate = 5/s
delay = 2
key = header:X-K
store = redis://127.0.0.1:%(rport)d
store_timeout = 1s

[route:a]
path = /a/
return = 200 a
middleware = fa

[route:d]
path = /d/
return = 200 d
middleware = fd

[route:q]
path = /q/
return = 200 q
middleware = fq
"""


def status(srv, path, key):
    r = srv.get(path, headers=["X-K: " + key])
    return r.status if r is not None else None


def log_count(srv, text):
    try:
        return open(srv.path("error.log")).read().count(text)
    except OSError:
        return 0


def shared(a, b):
    got = [status(a if i % 2 == 0 else b, "/a/x", "shared") for i in range(20)]
    is_(got, [200] * 6 + [429] * 14,
        "two processes, one Redis, rate 10/m burst 5: of 20 requests alternating between them exactly 6 pass")
    r = a.get("/a/x", headers=["X-K: other"])
    is_(r.header("RateLimit"), '"fa";r=5;t=6', "RateLimit from the store's verdict")
    r = b.get("/a/x", headers=["X-K: shared"])
    ok(r.status == 429 and r.header("Retry-After") in ("5", "6"), "429 from the other process, Retry-After %s" % r.header("Retry-After"))


def queued(a, b):
    # 5/s, delay 2, through the store: one passes, two wait 200ms and 400ms more.
    conns = []
    t0 = time.monotonic()
    for i in range(4):
        c = (a if i % 2 == 0 else b).connect()
        c.send(b"GET /q/x HTTP/1.1\r\nHost: x\r\nX-K: q\r\nConnection: close\r\n\r\n")
        conns.append(c)
        time.sleep(0.04)
    done = []
    for c in conns:
        r = c.read_response(timeout=5)
        done.append((r.status if r else None, time.monotonic() - t0))
        c.close()
    is_([s for s, _ in done], [200, 200, 200, 429], "delay through the store: three pass, the fourth is refused")
    ok(0.17 <= done[1][1] <= 0.8 and 0.37 <= done[2][1] <= 1.0,
       "the queued ones released at about 200ms and 400ms (%.3f, %.3f)" % (done[1][1], done[2][1]))


def outage(a, rd, how, n):
    if how == "stop":
        rd.proc.send_signal(signal.SIGSTOP)
    else:
        rd.kill()
    t0 = time.monotonic()
    allowed = [status(a, "/a/x", "out-%s-%d" % (how, i)) for i in range(8)]
    denied = [a.get("/d/x", headers=["X-K: out"]) for i in range(4)]
    is_(allowed, [200] * 8, "Redis %s: on_store_error = allow lets every request through" % how)
    is_([r.status for r in denied], [503] * 4, "on_store_error = deny: 503")
    is_(denied[0].header("Retry-After"), "1", "... with Retry-After: 1")
    is_(denied[0].header("RateLimit"), None, "... and no RateLimit header: nothing is known")
    ok(time.monotonic() - t0 < 8, "never hung: each within store_timeout or at once")
    failed = "ratelimit %s: store redis://127.0.0.1:" + str(rd.port) + " failed ("
    is_((log_count(a, failed % "fa"), log_count(a, failed % "fd")), (n, n),
        "Redis %s: one line per incident and block (%d so far)" % (how, n))
    if how == "stop":
        # hiredis has no timeouts of its own: a watchdog gives the stalled
        # connection up after 4 x the longest store_timeout of the
        # address's blocks (fq's 1s), and connects again.
        gaveup = lambda: "store redis://127.0.0.1:%d: no answer for " % rd.port in open(a.path("error.log")).read()
        ok(wait_for(lambda: status(a, "/d/x", "wd") == 503 and gaveup(), 12),
           "Redis stopped: the unanswered connection is given up and made again (logged)")
        rd.proc.send_signal(signal.SIGCONT)
    else:
        rd.start()
    ok(wait_for(lambda: a.get("/d/x", headers=["X-K: back-%s" % how]).status == 200, 10),
       "Redis back: deny passes again")
    # Each worker's connection comes back on its own (one may wait out its
    # backoff): eight in a row decided by the store.
    ok(wait_for(lambda: all(a.get("/a/x", headers=["X-K: back-%s-%d" % (how, i)]).header("RateLimit") is not None
                            for i in range(8)), 10),
       "... and allow decides by the store again, on every worker")
    ok(wait_for(lambda: log_count(a, "ratelimit fa: store redis://127.0.0.1:%d answers again" % rd.port) == n, 5),
       "recovery logged once")
    got = [status(a, "/a/x", "fresh-%s" % how) for _ in range(7)]
    is_(got, [200] * 6 + [429], "the limit holds again")


def main():
    if REDIS is None:
        print("1..0 # SKIP redis-server is not installed (make deps installs it)")
        sys.exit(0)
    rd = Redis()
    try:
        conf = CONF % {"rport": rd.port}
        a = Server(conf)
        b = Server(conf)
        shared(a, b)
        queued(a, b)
        outage(a, rd, "stop", 1)
        outage(a, rd, "kill", 2)
        a.stop()
        b.stop()
    finally:
        rd.cleanup()


run(main)
