#!/usr/bin/env python3
# health = on | pools | NAME...: 200 while every named pool has a server in
# service, 503 ("unhealthy") when one has none (active checks or passive
# health marked them down), the per-pool counts in the body; shutdown_delay:
# after SIGTERM the health routes answer 503 on new connections while
# everything else is still served, then the listeners close and the process
# exits 0; a second SIGTERM cuts the delay short.  Bad values are refused
# with file:line.
import json
import os
import re
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import Backend  # noqa: E402

CONF = """\
[global]
workers = 2
shutdown_delay = %(delay)s
error_log = {dir}/error.log

[listen:http]
address = 127.0.0.1:{port}

[pool:app]
server = %(app)s
max_fails = 1
fail_timeout = 1s

[pool:dead]
server = 127.0.0.1:%(deadport)d
health_check = GET /health every 200ms
fall = 1

[route:plain]
path = /healthz
health = on

[route:all]
path = /healthz/pools
health = pools

[route:app]
path = /healthz/app
health = app

[route:both]
path = /healthz/both
health = app, dead, app

[route:proxy]
path = /hangup
pool = app

[route:hello]
path = /
return = 200 hello
"""


def health(srv, path):
    r = srv.get(path)
    if r is None:
        return None, None
    try:
        return r.status, json.loads(r.body)
    except ValueError:
        return r.status, r.body


def test_pools(srv, be):
    st, body = health(srv, "/healthz")
    is_((st, body.get("status")), (200, "healthy"), "health = on: 200 healthy")
    ok("pools" not in body, "... without pools")
    ok(wait_for(lambda: health(srv, "/healthz/pools")[0] == 503, 5),
       "health = pools: 503 once the checks mark the dead pool's only server down")
    st, body = health(srv, "/healthz/pools")
    is_((body.get("status"), body.get("pools")), ("unhealthy", {"app": 1, "dead": 0}),
        "... status unhealthy, and the servers in service of each pool")
    st, body = health(srv, "/healthz/app")
    is_((st, body.get("status"), body.get("pools")), (200, "healthy", {"app": 1}),
        "health = app: 200 while app has a server")
    st, body = health(srv, "/healthz/both")
    is_((st, body.get("pools")), (503, {"app": 1, "dead": 0}), "health = app, dead, app: each once, 503")
    r = srv.get("/healthz/app", method="HEAD")
    is_(r and (r.status, r.body), (200, b""), "HEAD: the status without a body")
    # Passive health: the backend closes without answering; max_fails = 1
    # marks app's only server down for fail_timeout.
    r = srv.get("/hangup")
    ok(r is not None and r.status in (502, 504), "a proxied request fails (%s)" % (r and r.status))
    st, body = health(srv, "/healthz/app")
    is_((st, body.get("pools")), (503, {"app": 0}), "passive health marked app's server down: 503")
    ok(wait_for(lambda: health(srv, "/healthz/app")[0] == 200, 5), "... and 200 again after fail_timeout")
    r = srv.get("/healthz/app", method="POST")
    is_(r and r.status, 405, "POST: 405")


def test_delay():
    be = Backend("d")
    srv = Server(CONF % {"delay": "1500ms", "app": be.addr, "deadport": free_port()})
    is_(health(srv, "/healthz")[0], 200, "before the stop: 200")
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    ok(wait_for(lambda: health(srv, "/healthz")[0] == 503, 2), "SIGTERM with shutdown_delay: /healthz 503 at once")
    st, body = health(srv, "/healthz/app")
    is_((st, body.get("status")), (503, "draining"), "... every health route, status draining")
    r = srv.get("/")
    is_(r and r.status, 200, "... while other routes are served, on new connections")
    def refused():
        try:
            return srv.get("/") is None
        except OSError:
            return True
    closed = wait_for(refused, 5)
    dt = time.monotonic() - t0
    ok(closed and 1.3 < dt < 4.0, "the listeners close once the delay has passed (%.2fs)" % dt)
    is_(srv.proc.wait(10), 0, "... and the process exits 0")
    like(open(srv.path("error.log")).read(), r"health checks fail for shutdown_delay \(1500 ms\)",
         "the error log says what is happening")
    srv.stop()
    # A second SIGTERM cuts it short.
    srv = Server(CONF % {"delay": "30s", "app": be.addr, "deadport": free_port()})
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    ok(wait_for(lambda: health(srv, "/healthz")[0] == 503, 2), "shutdown_delay 30s: failing health")
    srv.signal(signal.SIGTERM)
    is_(srv.proc.wait(10), 0, "a second SIGTERM: the stop goes on at once, exit 0")
    ok(time.monotonic() - t0 < 8, "... well before the 30s delay")
    srv.stop()
    be.stop()


def test_errors():
    d = tempfile.mkdtemp(prefix="portico-t-health-")
    cases = [
        ("health = off", r'health: expected on, pools or pool names, not "off"'),
        ("health = nosuch", r'health: no \[pool:nosuch\] for "nosuch"'),
        ("health = pools", None),
    ]
    for line, pat in cases:
        path = os.path.join(d, "x.ini")
        with open(path, "w") as f:
            f.write("[listen:a]\naddress = 127.0.0.1:1\n[route:h]\npath = /h\n%s\n" % line)
        rc, out, err = portico(["-t", "-c", path])
        if pat is None:
            pat = r"health: pools: the file has no \[pool:NAME\] section"
        ok(rc == 1 and re.search(re.escape(path) + r":5: \[route:h\] " + pat, out + err),
           "portico -t: %s refused, with file:line and why" % line)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    os.rmdir(d)


def main():
    be = Backend("a")
    srv = Server(CONF % {"delay": "0s", "app": be.addr, "deadport": free_port()})
    test_pools(srv, be)
    srv.stop()
    be.stop()
    test_delay()
    test_errors()


run(main)
