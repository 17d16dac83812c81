#!/usr/bin/env python3
# Listeners belong to one process: a second portico on the same address
# exits 1 instead of sharing it through SO_REUSEPORT.
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

CONF = """\
[global]
workers = 2

[listen:http]
address = ADDRESS

[route:hello]
path = /
return = 200 BODY
"""


def conf(address, body):
    return CONF.replace("ADDRESS", address).replace("BODY", body)


def bodies(host, port, n):
    """n fresh connections, one request each; the bodies in order."""
    out = []
    for _ in range(n):
        try:
            with Conn(host, port) as c:
                c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                r = c.read_response()
                out.append(r.body.decode() if r else None)
        except Exception as e:
            out.append(str(e))
    return out


def second_instance(label, host, first_addr):
    with Server(conf(first_addr, "first")) as first:
        port = first.port6 if host == "::1" else first.port
        addr = ("[::1]:%d" if host == "::1" else "127.0.0.1:%d") % port
        second = Server(conf(addr, "second"), start=False, expect_rc=1)
        second.start_nowait()
        rc = second.wait(5)
        is_(rc, 1, label + "a second portico on the same address exits 1")
        like(second.stderr(), r"\[listen:http\] cannot bind %s: address already in use" % re.escape(addr),
             label + "it names the listener, the address and why")
        # Were it still running, the kernel would hand it about half of these.
        is_(bodies(host, port, 20), ["first"] * 20, label + "the first answers 20 fresh connections")
        second.stop()
        ok(first.alive(), label + "the first is still running")


def main():
    second_instance("IPv4: ", "127.0.0.1", "127.0.0.1:{port}")
    if have_ipv6():
        second_instance("IPv6: ", "::1", "[::1]:{port6}")
    else:
        skip("no IPv6 loopback on this machine", 6)

    # --- one process may have overlapping listeners: the wildcard and loopback
    two = """\
[global]
workers = 2

[listen:any]
address = :{port}

[listen:lo]
address = 127.0.0.1:{port}

[route:any]
listen = any
path = /
return = 200 any

[route:lo]
listen = lo
path = /
return = 200 lo
"""
    with Server(two) as srv:
        # The harness is content once 127.0.0.1:{port} accepts, which the
        # wildcard listener (bound first) does alone: a connection made
        # before the loopback one listens is the wildcard's.  The start line
        # comes after every listener is up: wait for it.
        wait_for(lambda: "started: " in srv.stderr(), 10)
        is_(bodies("127.0.0.1", srv.port, 4), ["lo"] * 4,
            "overlapping listeners of one process: both bound, 127.0.0.1 goes to the specific one")

    # --- a restart right after connections the server closed (TIME_WAIT on
    # its side) binds the same port again
    srv = Server(conf("127.0.0.1:{port}", "one"))
    port = srv.port
    is_(bodies("127.0.0.1", port, 5), ["one"] * 5, "restart: the first run serves")
    srv.stop()
    # A literal port: the harness does not wait for it, so wait here.
    with Server(conf("127.0.0.1:%d" % port, "two")) as again:
        wait_for(lambda: not again.alive() or bodies("127.0.0.1", port, 1) == ["two"], 5)
        ok(again.alive(), "restart: the second run is up")
        is_(bodies("127.0.0.1", port, 3), ["two"] * 3, "restart: the same port binds again at once")


run(main)
