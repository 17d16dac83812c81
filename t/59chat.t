#!/usr/bin/env python3
# Origin: chat rooms (websocket = chat) through the real binary, two
# workers.  20 clients x 10 messages in one room: everyone gets all 200
# exactly once, in one order, their own included; rooms are separate; join
# and leave notices; a member that never reads is dropped with 1008 while
# the others get every message; max_message (1009) and binary messages
# (1003); room names (404 for a bad one); /status counts; a reload with
# members connected (rooms carried over), and one that changes a chat key;
# a graceful stop (1001); configuration errors.
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from ws import *  # noqa: E402,F403

CONF = """\
[global]
workers = 2
shutdown_timeout = 3s
linger_time = 1s
error_log = {dir}/error.log

[listen:http]
address = 127.0.0.1:{port}

[route:status]
path = /status
status = json

[route:chat]
path = /chat/
websocket = chat
max_message = 4k
ping_interval = 0

[route:news]
path = /news/
websocket = chat
notices = %(notices)s
ping_interval = 0

[route:slow]
path = /slow/
websocket = chat
max_backlog = 64k
compression = off
ping_interval = 0
"""


def rx(c, timeout=5.0):
    try:
        return c.recv(timeout)
    except (WSClosed, socket.timeout, OSError, ProtocolError) as e:
        return e


def texts(c, n, timeout=10.0):
    """The next n messages' texts (a repr of whatever ends them early)."""
    out = []
    end = time.monotonic() + timeout
    while len(out) < n:
        f = rx(c, max(0.01, end - time.monotonic()))
        if not isinstance(f, Frame):
            out.append(repr(f))
            break
        if f.opcode == OP_CLOSE:
            out.append("close %s" % f.close_code)
            break
        out.append(f.payload.decode("utf-8", "replace"))
    return out


def close_code(c, timeout=5.0):
    """The code of the next close frame (data skipped), and whether TCP closed."""
    end = time.monotonic() + timeout
    while True:
        f = rx(c, max(0.01, end - time.monotonic()))
        if not isinstance(f, Frame):
            return (repr(f), True)
        if f.opcode == OP_CLOSE:
            return (f.close_code, c.closed_within(max(0.5, end - time.monotonic())))


def client(srv, path, **kw):
    return WSClient("127.0.0.1", srv.port, path, **kw)


def test_one_order(srv):
    n, m = 20, 10
    cs = [client(srv, "/chat/big") for _ in range(n)]
    is_([c.status for c in cs], [101] * n, "20 clients join room big")
    ok(wait_for(lambda: srv.status_json()["websocket"]["chat"]["by_room"].get("big") == n, 5),
       "/status counts 20 members in room big")
    got = [None] * n
    start = threading.Barrier(n)

    def member(i):
        start.wait()
        for j in range(m):
            cs[i].send_text("c%d-%d" % (i, j))
        got[i] = texts(cs[i], n * m, 20)

    ts = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    want = sorted("c%d-%d" % (i, j) for i in range(n) for j in range(m))
    is_([sorted(g) if g else g for g in got].count(want), n,
        "each of the 20 received all 200 messages exactly once, its own included")
    ok(all(g == got[0] for g in got), "all 20 received them in one order")
    firsts = [[x for x in got[0] if x.startswith("c%d-" % i)] for i in range(n)] if got[0] else []
    ok(firsts and all(f == ["c%d-%d" % (i, j) for j in range(m)] for i, f in enumerate(firsts)),
       "each sender's messages in the order it sent them")
    for c in cs:
        c.is_open_after(0)
        c.close()
    ok(wait_for(lambda: srv.status_json()["websocket"]["chat"]["rooms"] == 0, 5),
       "the room is gone once its members are")


def test_rooms(srv):
    a, b, a2 = client(srv, "/chat/a"), client(srv, "/chat/b"), client(srv, "/chat/a")
    a.send_text("to a")
    is_(texts(a, 1), ["to a"], "the sender receives its own message")
    is_(texts(a2, 1), ["to a"], "another member of room a receives it")
    is_(b.is_open_after(0.3), True, "a member of room b does not")
    b.send_text("to b")
    is_(texts(b, 1), ["to b"], "room b has its own messages")
    is_(a.is_open_after(0.2) and a2.is_open_after(0), True, "which room a does not see")
    # Unicode through percent-encoding, as a browser's encodeURIComponent.
    e = client(srv, "/chat/%C3%A9t%C3%A9")
    is_(e.status, 101, "a room named by percent-encoded UTF-8 (été)")
    st = srv.status_json()["websocket"]["chat"]
    is_((st["rooms"], st["members"], st["backplane"], sorted(st["by_room"].items())),
        (3, 4, "off", [("a", 2), ("b", 1), ("\u00e9t\u00e9", 1)]),
        "/status: rooms, members, backplane off, members by room")
    for c in (a, b, a2, e):
        c.close()


def test_names(srv):
    bad = ["/chat/", "/chat/a/b", "/chat/%FF", "/chat/a%2Fb", "/chat/a%01",
           "/chat/" + "x" * 201, "/chat/%C3"]
    got = []
    for p in bad:
        c = client(srv, p)
        got.append(c.status)
        c.close()
    is_(got, [404] * len(bad), "no room or a bad name: 404 (empty, a/b, not UTF-8, an encoded / "
        "or control character, 201 bytes, a cut UTF-8 sequence)")
    got = []
    for p in ("/chat/%ZZ", "/chat/a%00"):
        c = client(srv, p)
        got.append(c.status)
        c.close()
    is_(got, [400, 400], "a bad escape or an encoded NUL in any path: 400, from the request parser")
    c = client(srv, "/chat/" + "x" * 200)
    is_(c.status, 101, "a 200-byte name is a room")
    c.close()
    c = client(srv, "/chat/q?x=1")
    is_(c.status, 101, "the query is not part of the name")
    c.close()


def test_limits(srv):
    c = client(srv, "/chat/lim")
    c.send_text("x" * 5000)
    is_(close_code(c), (1009, True), "max_message 4k on a chat route: 1009")
    c.close()
    c = client(srv, "/chat/lim")
    c.send_binary(b"\x00\x01")
    is_(close_code(c), (1003, True), "a binary message: 1003 (only text is relayed)")
    c.close()


def test_notices(srv):
    a = client(srv, "/news/r")
    is_(texts(a, 1), ['{"type":"join","room":"r","members":1}'], "notices = on: its own join notice first")
    b = client(srv, "/news/r")
    want = '{"type":"join","room":"r","members":2}'
    is_((texts(a, 1), texts(b, 1)), ([want], [want]), "the next join goes to both")
    b.send_text("hi")
    is_(texts(a, 1), ["hi"], "messages between notices")
    b.close()
    is_(texts(a, 1), ['{"type":"leave","room":"r","members":1}'], "a leave notice when one goes")
    a.close()


def test_slow_member(srv):
    fast = [client(srv, "/slow/s") for _ in range(2)]
    slow = client(srv, "/slow/s", rcvbuf=65536)
    n, size = 3000, 4000  # 12 MB to each member: more than the kernel's buffers hold
    body = "m" * (size - 6)
    got = [[], []]

    def reader(i):
        end = time.monotonic() + 30
        while len(got[i]) < n and time.monotonic() < end:
            t = texts(fast[i], 1, max(0.01, end - time.monotonic()))
            got[i].append(t[0])
            if not t[0][:5].isdigit():
                break

    ts = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(2)]
    for t in ts:
        t.start()
    t0 = time.monotonic()
    # The sender keeps 8 messages ahead of the members that read (so they
    # keep up); the one that does not read falls behind by all the rest.
    for i in range(n):
        fast[0].send_text("%05d %s" % (i, body))
        if i % 8 == 7 and not wait_for(lambda: min(len(g) for g in got) > i - 8, 10):
            break
    for t in ts:
        t.join(40)
    el = time.monotonic() - t0
    ok(got[0] is not None and got[0] == got[1] and len(got[0]) == n and
       all(x[:5] == "%05d" % i for i, x in enumerate(got[0])),
       "the two members that read get all %d messages, in order, while one never reads" % n)
    if got[0] is None or len(got[0]) != n:
        diag("got %r and %r" % ([x[:20] for x in (got[0] or [])[-3:]], [x[:20] for x in (got[1] or [])[-3:]]))
    ok(el < 20, "in time (%.1fs)" % el)
    frames = 0
    while True:
        f = rx(slow, 10)
        if not isinstance(f, Frame) or f.opcode == OP_CLOSE:
            break
        frames += 1
    is_(f.close_code if isinstance(f, Frame) else repr(f), 1008,
        "the member that did not read is dropped with 1008 (after %d whole messages)" % frames)
    ok(frames < n, "before it got them all")
    like(open(srv.path("error.log")).read(), r"\[info\] conn \d+ from 127\.0\.0\.1: websocket: chat member dropped: "
         r"it does not read \(backlog over max_backlog\); closing with 1008", "and that is logged at info")
    st = srv.status_json()["websocket"]["slow"]
    is_(st["by_room"].get("s"), 2, "/status: two members left in the room")
    for c in fast + [slow]:
        c.close()


def test_reload(srv, conf_notices_on):
    a = client(srv, "/chat/r")
    srv.signal(signal.SIGHUP)
    ok(wait_for(lambda: "generation 2 in service" in open(srv.path("error.log")).read(), 10),
       "SIGHUP, the chat keys unchanged: the configuration reloads")
    b = client(srv, "/chat/r")
    ok(wait_for(lambda: srv.status_json()["websocket"]["chat"]["by_room"].get("r") == 2, 5),
       "the new snapshot's route sees the member who joined before the reload")
    a.send_text("from before")
    b.send_text("from after")
    ga, gb = texts(a, 2), texts(b, 2)
    ok(sorted(ga) == ["from after", "from before"] and ga == gb,
       "a member from before the reload and one from after chat in one room, in one order")
    # A chat key changed: the route gets a new hub; who was in the old one
    # stays there until it reconnects, and that is logged.
    n = open(srv.path("error.log")).read().count("its chat settings changed")
    with open(srv.conf_path, "w") as f:
        f.write(conf_notices_on)
    srv.signal(signal.SIGHUP)
    ok(wait_for(lambda: "generation 3 in service" in open(srv.path("error.log")).read(), 10),
       "a reload with notices turned on")
    like(open(srv.path("error.log")).read(), r"reload: .*:\d+: \[route:news\] websocket: its chat settings "
         "changed: members who joined before are in rooms of their own until they reconnect",
         "says that the route's members from before are in rooms of their own")
    c = client(srv, "/news/n")
    is_(texts(c, 1), ['{"type":"join","room":"n","members":1}'], "the new hub has notices on")
    a.send_text("still here")
    is_((texts(a, 1), texts(b, 1)), (["still here"], ["still here"]), "the unchanged route's room goes on")
    for x in (a, b, c):
        x.close()


def test_stop(srv):
    cs = [client(srv, "/chat/stop") for _ in range(4)]
    cs[0].send_text("before stop")
    for c in cs:
        texts(c, 1)
    srv.signal(signal.SIGTERM)
    is_([close_code(c) for c in cs], [(1001, True)] * 4,
        "graceful stop: every member gets close 1001, then TCP closes")
    for c in cs:
        c.close()
    srv.wait(10)
    is_(srv.rc, 0, "and the server exits 0")


def test_config():
    bad = """\
[listen:http]
address = 127.0.0.1:1

[route:a]
path = /a/
websocket = chat
notices = maybe
backplane = http://127.0.0.1:6379
backplane_prefix = %s

[route:b]
path = /b/
websocket = echo
notices = on
""" % ("p" * 129)
    d = tempfile.mkdtemp(prefix="portico-chat-")
    try:
        p = os.path.join(d, "bad.ini")
        with open(p, "w") as f:
            f.write(bad)
        rc, out, err = portico(["-t", "-c", p])
        is_(rc, 1, "bad chat keys: -t exits 1")
        for line, key, what in ((7, "notices", "expected on or off"),
                                (8, "backplane", "expected redis://HOST:PORT"),
                                (9, "backplane_prefix", "longer than 128 bytes"),
                                (13, "websocket", "notices, backplane and backplane_prefix go with "
                                 "websocket = chat only")):
            like(err, r"bad\.ini:%d: \[route:\w\] %s: %s" % (line, key, what), "%s refused at line %d" % (key, line))
        with open(p, "w") as f:
            f.write("[listen:http]\naddress = 127.0.0.1:1\n[route:a]\npath = /a/\nwebsocket = chat\n"
                    "backplane = redis://127.0.0.1:1\n")
        t0 = time.monotonic()
        rc, out, err = portico(["-t", "-c", p])
        is_((rc, "backplane" in err), (0, False), "-t with a backplane: valid, and Redis is not tried")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    srv = Server(CONF % {"notices": "off"})
    test_one_order(srv)
    test_rooms(srv)
    test_names(srv)
    test_limits(srv)
    test_notices_srv = Server(CONF % {"notices": "on"})
    test_notices(test_notices_srv)
    test_notices_srv.stop()
    test_slow_member(srv)
    test_reload(srv, srv.conf.replace("notices = off", "notices = on"))
    test_stop(srv)
    test_config()


run(main)
