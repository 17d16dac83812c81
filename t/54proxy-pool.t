#!/usr/bin/env python3
# Pool health and accounting: the backend log budget, per-server counters
# summed over workers, health checks with long paths, and the panic
# threshold with its log lines.
import os
import re
import shutil
import socket
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403


def conf_with(text, backends, routes):
    for n, b in backends.items():
        text = text.replace("{%s}" % n, b.addr)
    for name in routes:
        text += "\n[route:%s]\npath = /%s/\npool = %s\nstrip_prefix = yes\n" % (name, name, name)
    return text


def wait_log(srv, pattern, timeout=3):
    """True once the server's stderr matches pattern (a regex), within timeout."""
    return wait_for(lambda: re.search(pattern, srv.stderr(), re.M) is not None, timeout)


LOG_BUDGET_CONF = """\
[global]
workers = 1
log_level = info

[listen:http]
address = 127.0.0.1:{port}

[pool:gone]
max_fails = 0
server = {dead}
"""


def test_log_budget():
    # Garbage from a client uses up the 20 lines a second for client errors;
    # the failure of a server right after must still be logged (before, both
    # shared one budget and the warning was dropped).
    # The budget is per worker: the 30 bad requests must all meet one, so
    # exactly one even under PORTICO_MIN_WORKERS.
    dead = Backend("dead")
    addr = dead.addr
    dead.stop()
    with Server(conf_with(LOG_BUDGET_CONF, {"dead": dead}, ["gone"]), exact_workers=True) as srv:
        for _ in range(30):
            c = srv.connect(timeout=3)
            c.send(b"BAD\x01 REQUEST\r\n\r\n")
            try:
                c.read_response(timeout=3)
            except (ServerError, socket.timeout, OSError):
                pass
            c.close()
        r = srv.get("/gone/echo")
        is_(r and r.status, 502, "log budget: a refused connect after a client flood: 502")
        ok(wait_log(srv, r"more client errors? in the last second not logged"),
           "log budget: the client flood was cut short")
        esc = re.escape(addr)
        ok(wait_log(srv, r"\[warn\] proxy \[pool:gone\] server %s: Connection refused$" % esc),
           "log budget: the server's failure is logged all the same")
        ok(wait_log(srv, r"\[warn\] proxy \[pool:gone\] GET /gone/echo HTTP/1.1: 502: Connection refused$"),
           "log budget: and the request's 502")


LONG_PATH = "/health/" + "p" * 162   # 170 bytes: as long as a config line allows

HC_LONG_CONF = """\
[global]
workers = 1

[listen:http]
address = 127.0.0.1:{port}

[pool:hc]
health_check=GET %s every 1s
server = {h}
""" % LONG_PATH


def test_long_health_path():
    # Before, the path was scanned into 160 bytes (a longer one was refused
    # with a misleading message) and the request built in 256 (a request
    # that did not fit was never sent, and the check timed out silently).
    h = Backend("h")
    try:
        with Server(conf_with(HC_LONG_CONF, {"h": h}, ["hc"])) as srv:
            ok(wait_for(lambda: h.paths[LONG_PATH] >= 1, 3), "health_check: a 170-byte path is sent")
            last = h.log[-1] if h.log else None
            is_((last and last.method, last and last.target, last and last.header("Host")),
                ("GET", LONG_PATH, h.addr), "health_check: the backend sees it whole, with the server as Host")
            r = srv.get("/hc/echo")
            is_(r and r.status, 200, "health_check: the server stays in service")
    finally:
        h.stop()


COUNTERS_CONF = """\
[global]
workers = 2

[listen:http]
address = 127.0.0.1:{port}

[route:status]
path = /status
status = json

[pool:app]
server = {a}
server = {b}

[pool:gone]
max_fails = 0
retries = 0
server = {dead}
"""


def server_status(srv, pool, i):
    return srv.status_json()["pools"][pool]["servers"][i]


def test_counters():
    # Each worker counts its own requests; /status sums the workers.  Forty
    # connections spread over both workers' listening sockets.
    be = {"a": Backend("a"), "b": Backend("b"), "dead": Backend("dead")}
    be["dead"].stop()
    try:
        with Server(conf_with(COUNTERS_CONF, be, ["app", "gone"])) as srv:
            got = [srv.get("/app/echo") for _ in range(40)]
            is_([r and r.status for r in got], [200] * 40, "counters: 40 proxied GETs with workers = 2")
            slow = [srv.get("/app/slow?delay=0.1") for _ in range(4)]
            is_([r and r.status for r in slow], [200] * 4, "counters: and 4 that take 100ms")
            bad = [srv.get("/gone/echo") for _ in range(7)]
            is_([r and r.status for r in bad], [502] * 7, "counters: 7 to a server that refuses")
            st = srv.status_json()
            a, b = st["pools"]["app"]["servers"]
            is_((a["requests"], b["requests"]), (be["a"].requests, be["b"].requests),
                "counters: requests per server are what each backend saw")
            is_(a["requests"] + b["requests"], 44, "counters: 44 in all, summed over the workers")
            is_((a["failures"], b["failures"], a["active"], b["active"]), (0, 0, 0, 0),
                "counters: no failures, nothing in flight")
            mean = (a["avg_latency_ms"] * a["requests"] + b["avg_latency_ms"] * b["requests"]) / 44
            ok(400 / 44 <= mean < 400 / 44 + 50, "counters: mean latency %.3fms covers the 4 slow ones" % mean)
            d = st["pools"]["gone"]["servers"][0]
            is_((d["requests"], d["failures"], d["active"]), (0, 7, 0),
                "counters: the refusing server has 7 failures and no requests")
    finally:
        for b in be.values():
            b.stop()


PANIC_CONF = """\
[global]
workers = 2
log_level = info

[listen:http]
address = 127.0.0.1:{port}

[route:status]
path = /status
status = json

[pool:two]
fail_timeout = 1s
server = {a}
server = {b}

[pool:one]
server = {c}

[pool:off]
panic_threshold = 0%
server = {d}
server = {e}

[pool:bk]
server = {f}
server = {g} backup
"""


def fail_once(srv, path, backends):
    """One GET that every backend of the list answers by hanging up."""
    for b in backends:
        b.mode = "hangup"
    r = srv.get(path)
    for b in backends:
        b.mode = None
    return r and r.status


def panic_of(srv, pool):
    p = srv.status_json()["pools"][pool]
    return p.get("panic"), [x["state"] for x in p["servers"]]


def test_panic():
    names = "abcdefg"
    be = {n: Backend(n) for n in names}
    try:
        with Server(conf_with(PANIC_CONF, be, ["two", "one", "off", "bk"])) as srv:
            addr = {n: re.escape(b.addr) for n, b in be.items()}
            is_(panic_of(srv, "two"), (False, ["up", "up"]), "panic: none to begin with")

            # Two servers, max_fails = 1: one failure each took both out; the
            # next request goes to one of them anyway (before: 503 for 1s).
            is_(fail_once(srv, "/two/echo", [be["a"], be["b"]]), 502, "panic: both servers fail once: 502")
            # Ten connections: both workers see the panic, one logs it.
            got = [srv.get("/two/echo") for _ in range(10)]
            is_([(r and r.status, r and r.header("X-Backend") in ("a", "b")) for r in got], [(200, True)] * 10,
                "panic: the next requests still reach a server, not 503")
            is_(panic_of(srv, "two"), (True, ["failed", "failed"]), "panic: /status says so, both servers failed")
            for n in "ab":
                ok(re.search(r"^\S+ \[warn\] \[pool:two\] server %s marked down for 1s after 1 failure$" % addr[n],
                             srv.stderr(), re.M), "panic: server %s marked down: logged" % n)
            ok(re.search(r"^\S+ \[warn\] \[pool:two\] panic: 0 of 2 servers in service, under panic_threshold "
                         r"50%; passive health is ignored until more come back$", srv.stderr(), re.M),
               "panic: entering it is logged")
            # After fail_timeout both are back, and the panic is over.
            ok(wait_for(lambda: panic_of(srv, "two") == (False, ["up", "up"]), 3),
               "panic: over once fail_timeout has passed")
            for n in "ab":
                ok(wait_log(srv, r"^\S+ \[info\] \[pool:two\] server %s back in service$" % addr[n]),
                   "panic: server %s back in service: logged" % n)
            # Either server's return ends it (1 of 2 is not under 50%); which
            # one is seen first depends on when the pool is next looked at.
            ok(wait_log(srv, r"^\S+ \[info\] \[pool:two\] panic over: [12] of 2 servers in service$"),
               "panic: leaving it is logged")
            log = srv.stderr()
            is_((len(re.findall(r"\[pool:two\] panic: ", log)), len(re.findall(r"\[pool:two\] panic over", log))),
                (1, 1), "panic: one line for each change")

            # A pool of one server is never locked out by its failure.
            is_(fail_once(srv, "/one/echo", [be["c"]]), 502, "single server: fails once: 502")
            r = srv.get("/one/echo")
            is_((r and r.status, r and r.header("X-Backend")), (200, "c"),
                "single server: the next request still goes to it")
            is_(panic_of(srv, "one"), (True, ["failed"]), "single server: /status shows panic")

            # panic_threshold = 0%: as before, a pool of failed servers answers 503.
            is_(fail_once(srv, "/off/echo", [be["d"], be["e"]]), 502, "panic_threshold = 0%: both servers fail once")
            r = srv.get("/off/echo")
            is_((r and r.status, r and r.header("Retry-After")), (503, "1"), "panic_threshold = 0%: then 503")
            is_(panic_of(srv, "off"), (False, ["failed", "failed"]), "panic_threshold = 0%: no panic")
            unlike(srv.stderr(), r"\[pool:off\] panic", "panic_threshold = 0%: nothing logged about panic")

            # A backup in service serves before the pool panics over its primaries.
            is_(fail_once(srv, "/bk/echo?x=1", [be["f"]]), 200, "backup: the primary fails, the backup answers")
            got = [srv.get("/bk/echo") for _ in range(3)]
            is_([r and r.header("X-Backend") for r in got], ["g"] * 3, "backup: it keeps serving while the primary is out")
            is_(panic_of(srv, "bk"), (False, ["failed", "up"]), "backup: no panic while a backup is in service")
    finally:
        for b in be.values():
            b.stop()


def test_panic_conf():
    d = tempfile.mkdtemp(prefix="portico-t-")
    try:
        for value, want in (("50", None), ("101%", None), ("%", None), ("-1%", None), ("0%", 0), ("100%", 0)):
            path = os.path.join(d, "p.ini")
            with open(path, "w") as f:
                f.write("[listen:h]\naddress = 127.0.0.1:1\n\n[pool:app]\nserver = 127.0.0.1:9\n"
                        "panic_threshold = %s\n\n[route:r]\npath = /\npool = app\n" % value)
            rc, out, err = portico(["-t", "-c", path])
            if want is None:
                is_((rc, err.splitlines()[0] if err else None), (1, "%s:6: [pool:app] panic_threshold: expected a percentage from 0%% to 100%% "
                                            "such as 50%%, not \"%s\"" % (path, value)),
                    "panic_threshold = %s: refused, with file and line" % value)
            else:
                is_(rc, 0, "panic_threshold = %s: valid" % value)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    test_log_budget()
    test_long_health_path()
    test_counters()
    test_panic()
    test_panic_conf()


run(main)
