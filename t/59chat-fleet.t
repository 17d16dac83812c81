#!/usr/bin/env python3
# Chat rooms across a fleet: two portico processes (two workers each) with
# `backplane = redis://` on one redis-server of the test's own.  A message
# sent on one reaches the room's members on both, in one order on both;
# rooms stay apart; Redis killed: each process delivers in itself only
# (logged once), then, Redis back on its port, the backplane comes up again
# (logged) and messages cross again.  Skipped when redis-server is missing
# (`make deps` installs it).
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from redis import REDIS, Redis  # noqa: E402
from ws import *  # noqa: E402,F403


CONF = """\
[global]
workers = 2
error_log = {dir}/error.log

[listen:http]
address = 127.0.0.1:{port}

[route:status]
path = /status
status = json

[route:chat]
path = /chat/
websocket = chat
ping_interval = 0
backplane = redis://127.0.0.1:%(rport)d
backplane_prefix = t59:%(pid)d:
"""


def rx(c, timeout=5.0):
    try:
        return c.recv(timeout)
    except (WSClosed, socket.timeout, OSError, ProtocolError) as e:
        return e


def texts(c, n, timeout=10.0):
    out = []
    end = time.monotonic() + timeout
    while len(out) < n:
        f = rx(c, max(0.01, end - time.monotonic()))
        if not isinstance(f, Frame):
            out.append(repr(f))
            break
        out.append(f.payload.decode("utf-8", "replace") if f.opcode == OP_TEXT else "op %d" % f.opcode)
    return out


def backplane(srv):
    try:
        return srv.status_json()["websocket"]["chat"]["backplane"]
    except (ServerError, KeyError, OSError, ValueError):
        return None


def log(srv):
    try:
        return open(srv.path("error.log")).read()
    except OSError:
        return ""


def fleet_order(a, b):
    ca = [WSClient("127.0.0.1", a.port, "/chat/fleet") for _ in range(3)]
    cb = [WSClient("127.0.0.1", b.port, "/chat/fleet") for _ in range(3)]
    other = WSClient("127.0.0.1", b.port, "/chat/other")
    ok(wait_for(lambda: all(s.status_json()["websocket"]["chat"]["by_room"].get("fleet") == 3 for s in (a, b)), 5),
       "three members of room fleet on each process")
    cs = ca + cb
    n = 20
    got = [None] * len(cs)
    go = threading.Barrier(len(cs))

    def member(i):
        go.wait()
        for j in range(n):
            cs[i].send_text("m%d-%d" % (i, j))
        got[i] = texts(cs[i], n * len(cs), 20)

    ts = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(len(cs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    want = sorted("m%d-%d" % (i, j) for i in range(len(cs)) for j in range(n))
    is_([sorted(g) == want for g in got], [True] * len(cs),
        "6 members on two processes, 20 messages each: each member received all 120 exactly once")
    ok(all(g == got[0] for g in got), "in one order on both processes")
    is_(other.is_open_after(0.3), True, "a member of another room received none of them")
    for c in cs + [other]:
        c.close()


def outage(a, b, rd):
    x = WSClient("127.0.0.1", a.port, "/chat/out")
    y = WSClient("127.0.0.1", b.port, "/chat/out")
    ok(wait_for(lambda: all(s.status_json()["websocket"]["chat"]["members"] == 1 for s in (a, b)), 5),
       "one member of room out on each process")
    x.send_text("while up")
    is_((texts(x, 1), texts(y, 1)), (["while up"], ["while up"]), "while Redis is up, a message crosses")
    rd.kill()
    ok(wait_for(lambda: backplane(a) == "down" and backplane(b) == "down", 10),
       "Redis killed: /status says the backplane is down on both")
    down = "backplane redis://127.0.0.1:%d: " % rd.port
    ok(wait_for(lambda: "rooms deliver in this process only until it is back" in log(a), 5),
       "and the outage is logged")
    x.send_text("local to a")
    is_(texts(x, 1), ["local to a"], "while it is down, a member still receives its own process's messages")
    is_(y.is_open_after(0.5), True, "and the other process does not get them")
    y.send_text("local to b")
    is_((texts(y, 1), x.is_open_after(0.3)), (["local to b"], True), "the same the other way")
    is_(log(a).count(down), 1, "the outage is logged once, however long it lasts")
    rd.start()
    ok(wait_for(lambda: backplane(a) == "up" and backplane(b) == "up", 15),
       "Redis back on its port: the backplane is up again on both")
    like(log(a), r"backplane redis://127\.0\.0\.1:\d+: up again after [\d.]+s; 1 message was delivered in "
         r"this process only meanwhile", "and that is logged, with what was delivered locally")
    x.send_text("after")
    is_((texts(x, 1), texts(y, 1)), (["after"], ["after"]), "messages cross again")
    x.close()
    y.close()


def main():
    if REDIS is None:
        print("1..0 # SKIP redis-server is not installed (make deps installs it)")
        sys.exit(0)
    rd = Redis()
    try:
        conf = CONF % {"rport": rd.port, "pid": os.getpid()}
        a = Server(conf)
        b = Server(conf)
        ok(wait_for(lambda: backplane(a) == "up" and backplane(b) == "up", 10),
           "both processes' backplanes are up")
        fleet_order(a, b)
        outage(a, b, rd)
        a.stop()
        b.stop()
    finally:
        rd.cleanup()


run(main)
