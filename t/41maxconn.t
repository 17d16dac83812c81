#!/usr/bin/env python3
# max_connections: accept pauses at the limit and resumes when a slot frees; IPv6 listener.
import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1
max_connections = 5
header_timeout = 20s
keepalive_timeout = 20s

[listen:http]
address = 127.0.0.1:{port}

[route:hello]
path = /
return = 200 hello
"""

REQ = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
REQ_CLOSE = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def main():
    for workers in (1, 2):
        limit_test(workers)
    listener_tests()
    ipv6_test()


def limit_test(workers):
    W = "workers = %d: " % workers
    with Server(CONF.replace("workers = 1", "workers = %d" % workers)) as srv:
        # Five connections, each used once so we know it was accepted, then idle.
        held = []
        for i in range(5):
            c = srv.connect()
            c.send(REQ)
            r = c.read_response(timeout=5)
            is_(r and r.status, 200, W + "connection %d of 5 is served" % (i + 1))
            held.append(c)

        sixth = srv.connect()  # the kernel completes the handshake; portico must not accept
        sixth.send(REQ)
        ok(sixth.is_open_after(1.0), W + "a 6th connection gets no answer while 5 are open")
        ok(all(c.is_open_after(0) for c in held), W + "the 5 held connections are still open")
        like(srv.stderr(), r"not accepting for now: max_connections reached", W + "the pause is logged")

        # A held connection is still served while accept is paused.
        held[0].send(REQ)
        r = held[0].read_response()
        is_(r and r.status, 200, W + "a held connection is still served while accept is paused")

        t0 = time.monotonic()
        held.pop().close()
        try:
            r = sixth.read_response(timeout=3)
        except Exception as e:
            r = None
            diag(str(e))
        is_(r and (r.status, r.body), (200, b"hello"),
            W + "the 6th is answered once one of the 5 closes (%.2fs)" % (time.monotonic() - t0))
        like(srv.stderr(), r"accepting again", W + "the resume is logged")
        # now 5 again: 4 held + the sixth

        # A crowd beyond the limit: each one is served once slots free up.
        crowd = []
        for i in range(12):
            c = srv.connect()
            c.send(REQ_CLOSE)
            crowd.append(c)
        ok(all(c.is_open_after(0.3) for c in crowd[:1]), W + "the crowd waits while 5 are held")
        sixth.close()
        for c in held:
            c.close()
        held = []
        answers = []
        for c in crowd:
            try:
                r = c.read_response(timeout=5)
                answers.append(r.status if r else None)
            except Exception as e:
                answers.append(str(e))
            c.close()
        is_(answers, [200] * 12, W + "12 queued connections are all served once the held ones close")

        # Back to normal: five at once again, and the status of the server is fine.
        again = [srv.connect() for _ in range(5)]
        for c in again:
            c.send(REQ)
        is_([(c.read_response(timeout=5) or Response()).status for c in again], [200] * 5,
            W + "5 concurrent connections work after all that")
        for c in again:
            c.close()
        ok(srv.alive(), W + "the server never crashed")


def listener_tests():
    # --- port 0: the kernel picks a port, every worker shares it, the log names it
    srv = Server(CONF.replace("address = 127.0.0.1:{port}", "address = 127.0.0.1:0").replace("workers = 1", "workers = 2"),
                 start=False)
    with srv.start():
        m = wait_for(lambda: re.search(r"\[listen:http\] listening on 127\.0\.0\.1:0 \(port (\d+)\)", srv.stderr()), 5)
        ok(m, "port 0: the log names the port the kernel picked")
        if m:
            port = int(m.group(1))
            statuses = []
            for i in range(8):
                c = srv.connect(port=port)
                c.send(REQ_CLOSE)
                r = c.read_response()
                statuses.append(r.status if r else None)
                c.close()
            is_(statuses, [200] * 8, "port 0: served on that port (2 workers share it)")
        else:
            skip("no port in the log", 1)

    # --- a port already in use: log why, exit 1
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    busy = holder.getsockname()[1]
    try:
        srv = Server(CONF.replace("{port}", str(busy)), start=False, expect_rc=1)
        srv.start_nowait()
        rc = srv.wait(10)
        is_(rc, 1, "a listener that cannot be bound: exit 1")
        like(srv.stderr(), r"\[listen:http\] cannot bind 127\.0\.0\.1:%d" % busy, "a listener that cannot be bound: logged")
        srv.stop()
    finally:
        holder.close()

    # --- an access log that cannot be opened: a configuration error, exit 78
    srv = Server(CONF.replace("[global]\n", "[global]\naccess_log = /nonexistent-dir/access.log\n"), start=False, expect_rc=78)
    srv.start_nowait()
    rc = srv.wait(10)
    is_(rc, 78, "an access log in a missing directory: exit 78")
    like(srv.stderr(), r"\[global\] access_log: directory /nonexistent-dir: No such file or directory",
         "an access log that cannot be opened: said so, as a configuration error")
    srv.stop()


def ipv6_test():
    if not have_ipv6():
        skip("no IPv6 loopback on this machine", 4)
    else:
        conf6 = CONF.replace("address = 127.0.0.1:{port}", "address = [::1]:{port6}") \
            .replace("max_connections = 5", "max_connections = 100")
        with Server(conf6) as srv:
            c = srv.connect(port=srv.port6, host="::1")
            c.send(b"GET / HTTP/1.1\r\nHost: [::1]:%d\r\n\r\n" % srv.port6)
            r = c.read_response()
            is_(r and (r.status, r.body), (200, b"hello"), "IPv6 [::1] listener: 200 hello")
            c.send(REQ)
            r = c.read_response()
            is_(r and r.status, 200, "IPv6: keep-alive works")
            s = socket.socket()
            s.settimeout(1)
            try:
                s.connect(("127.0.0.1", srv.port6))
                ok(False, "IPv6 listener does not take IPv4 (V6ONLY)")
            except OSError:
                ok(True, "IPv6 listener does not take IPv4 (V6ONLY)")
            finally:
                s.close()


run(main)
