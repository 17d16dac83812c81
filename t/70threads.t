#!/usr/bin/env python3
"""What crosses threads, under load on two workers: everything the main
thread changes while the workers use it, at the same time as they use it.

  - SIGUSR1 reopening both logs while every request writes to them: no
    line lost, none cut, none sent to a client (the error log's fd was
    once closed under the workers);
  - SIGHUP swapping an HTTPS listener's certificates and session ticket
    keys rotating every 100ms, during handshakes that resume sessions;
  - health checks marking a server down and up every 100ms, and names
    looked up again every 100ms, while workers pick servers; /status
    summing the workers' counters meanwhile.

Every check holds for any build; under `make tsan` (ThreadSanitizer) this
file is where those hand-overs get exercised, and a report fails the
server's "stopped cleanly" test."""

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403

CLIENTS = 4
LINE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \[(error|warn|info|debug)\] \S")


class Load:
    """Calls fn(i) in a loop in nthreads threads, from entering the with
    block until leaving it; .results holds what each call returned, or
    ("exception", repr) for a call that raised."""

    def __init__(self, fn, nthreads=CLIENTS):
        self.fn = fn
        self.nthreads = nthreads
        self.results = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []

    def _loop(self, i):
        while not self._stop.is_set():
            try:
                r = self.fn(i)
            except Exception as e:  # every failure is a result to report
                r = ("exception", repr(e))
            with self._lock:
                self.results.append(r)

    def __enter__(self):
        # Daemons, so a test that fails half-way cannot leave the script hanging.
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True)
                         for i in range(self.nthreads)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        for t in self._threads:
            t.join(30)
        return False


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------
# logs

LOGS_CONF = """\
[global]
workers = 2
log_level = debug
error_log = {dir}/error.log
access_log = {dir}/access.log

[listen:http]
address = 127.0.0.1:{port}

[route:hello]
return = 200 hi
"""

ROUNDS = 15
REOPENED = "SIGUSR1: log files reopened"


def test_logs():
    with Server(LOGS_CONF) as srv:
        def one(i):
            r = srv.get("/t%d" % i)
            return r and (r.status, r.body)
        with Load(one) as ld:
            for n in range(1, ROUNDS + 1):
                time.sleep(0.1)
                os.rename(srv.path("error.log"), srv.path("error.log.%d" % n))
                os.rename(srv.path("access.log"), srv.path("access.log.%d" % n))
                srv.signal(signal.SIGUSR1)
                # Said in the new error log once both files are new.
                if not wait_for(lambda: REOPENED in read(srv.path("error.log")), 10):
                    break
            time.sleep(0.1)
        got = ld.results
        bad = [r for r in got if r != (200, b"hi")]
        ok(len(got) > 0 and not bad, "SIGUSR1 x %d under load: %d requests, each a 200 \"hi\"%s"
           % (ROUNDS, len(got), "" if not bad else " (not: %r)" % bad[:3]))
        # Stopped by hand, to read the files before stop() removes them.
        srv.signal(signal.SIGTERM)
        is_(srv.wait(20), 0, "SIGTERM: exit 0, once the workers have written out their access log lines")
        names = ["error.log"] + ["error.log.%d" % n for n in range(1, ROUNDS + 1)]
        elines = [ln for nm in names for ln in read(srv.path(nm)).splitlines()]
        cut = [ln for ln in elines if not LINE_RE.match(ln)]
        ok(not cut, "error logs: %d lines, every one whole%s" % (len(elines), "" if not cut else " (not: %r)" % cut[:3]))
        is_(sum(1 for ln in elines if ln.endswith(REOPENED)), ROUNDS,
            "error logs: each reopen said so")
        # debug: one "closed" line per connection, so each request is in there once.
        closed = sum(1 for ln in elines if re.search(r"\[debug\] conn \d+ from 127\.0\.0\.1 closed: ", ln))
        ok(closed >= len(got), "error logs: a line for each of the %d connections (%d)" % (len(got), closed))
        names = ["access.log"] + ["access.log.%d" % n for n in range(1, ROUNDS + 1)]
        alines = [ln for nm in names for ln in read(srv.path(nm)).splitlines()]
        is_(len(alines), len(got), "access logs: one line per request, none lost over %d reopens" % ROUNDS)
        cut = [ln for ln in alines if not re.search(r'"GET /t\d HTTP/1\.1" 200 2 ', ln)]
        ok(not cut, "access logs: every line whole%s" % ("" if not cut else " (not: %r)" % cut[:3]))
        srv.stop()


# --------------------------------------------------------------------------
# TLS: certificates reloaded, ticket keys rotated

TLS_CONF = """\
[global]
workers = 2
tls_ticket_rotate = 100ms

[listen:https]
address = 127.0.0.1:{port}
tls_cert = %(d)s/server.pem
tls_key = %(d)s/server.key

[route:ok]
path = /
return = 200 ok
"""


def make_cert(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", os.path.join(d, "server.key"), "-out", os.path.join(d, "server.pem")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_tls(d):
    make_cert(d)
    with Server(TLS_CONF % {"d": d}) as srv:
        versions = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
        ctxs, sessions, reused = [], [None] * CLIENTS, [0] * CLIENTS
        for i in range(CLIENTS):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.minimum_version = ctx.maximum_version = versions[i % 2]
            ctxs.append(ctx)

        def one(i):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                with ctxs[i].wrap_socket(s, session=sessions[i]) as t:
                    t.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    data = b""
                    while True:
                        b = t.recv(4096)
                        if not b:
                            break
                        data += b
                    reused[i] += t.session_reused
                    sessions[i] = t.session
            return data.split(b"\r\n", 1)[0] + data[-2:]
        with Load(one) as ld:
            for _ in range(10):
                time.sleep(0.2)
                srv.signal(signal.SIGHUP)
            time.sleep(0.2)
        got = ld.results
        bad = [r for r in got if r != b"HTTP/1.1 200 OKok"]
        ok(len(got) > 0 and not bad, "10 SIGHUPs, keys rotated every 100ms: %d HTTPS requests, each a 200%s"
           % (len(got), "" if not bad else " (not: %r)" % bad[:3]))
        ok(sum(reused) > 0, "and sessions resumed meanwhile (%d of %d)" % (sum(reused), len(got)))
        is_(len(re.findall(r"reload: configuration generation \d+ in service", srv.stderr())), 10,
            "each SIGHUP reloaded the configuration, certificates included")


# --------------------------------------------------------------------------
# pools: health flapping, names looked up again, /status summing

POOL_CONF = """\
[global]
workers = 2

[listen:http]
address = 127.0.0.1:{port}

[pool:app]
resolve = 100ms
health_check = GET /healthz every 100ms
rise = 1
fall = 1
server = localhost:%(a)d
server = localhost:%(b)d

[route:status]
path = /status
status = json

[route:app]
path = /
pool = app
"""


class Flapping:
    """A /healthz that answers 200 and 503 in turn."""

    def __init__(self):
        self.n = 0

    def __call__(self, h, req):
        self.n += 1
        return h.respond(req, 200 if self.n % 2 else 503, "health\n", ctype="text/plain")


def test_pools():
    a, b = Backend("a"), Backend("b")
    flap = Flapping()
    a.on("/healthz", flap)
    try:
        port = lambda be: int(be.addr.rsplit(":", 1)[1])  # noqa: E731
        with Server(POOL_CONF % {"a": port(a), "b": port(b)}) as srv:
            ok(wait_for(lambda: [s["state"] for s in srv.status_json()["pools"]["app"]["servers"]][1] == "up", 5),
               "pool app: localhost resolved, b up")
            n0 = a.paths["/echo"] + b.paths["/echo"]
            statuses = []

            def one(i):
                if i == 0:
                    st = srv.status_json()
                    statuses.append(st)
                    return 200
                r = srv.get("/echo")
                return r and r.status
            with Load(one) as ld:
                time.sleep(2.0)
            got = ld.results
            bad = [r for r in got if r != 200]
            ok(len(got) > 0 and not bad, "health flapping every 100ms, names looked up again: %d requests "
               "and /status reads, each a 200%s" % (len(got), "" if not bad else " (not: %r)" % bad[:3]))
            ok(flap.n >= 6, "a's health checks answered 200 and 503 in turn (%d)" % flap.n)
            like(srv.stderr(), r"\[pool:app\] server localhost:\d+ is down: status 503",
                 "a was marked down meanwhile")
            served = a.paths["/echo"] + b.paths["/echo"] - n0
            is_(served, sum(1 for r in got if r == 200) - len(statuses), "every proxied request reached a server once")
            quiet = srv.status_json()["pools"]["app"]["servers"]
            is_(sum(s["requests"] for s in quiet), a.paths["/echo"] + b.paths["/echo"],
                "/status: the workers' counters sum to what the servers saw")
            is_([s["active"] for s in quiet], [0, 0], "/status: nothing in flight once quiet")
            totals = [sum(s["requests"] for s in st["pools"]["app"]["servers"]) for st in statuses]
            is_(totals, sorted(totals), "/status under load: the sums never went back (%d reads)" % len(totals))
    finally:
        a.stop()
        b.stop()


def main():
    test_logs()
    d = tempfile.mkdtemp(prefix="portico-t-threads-")
    try:
        test_tls(d)
    finally:
        subprocess.run(["rm", "-rf", d])
    test_pools()


run(main)
