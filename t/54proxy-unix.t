#!/usr/bin/env python3
# Pool servers on Unix sockets (server = unix:/PATH): requests and bodies
# through them, upstream keep-alive, the Host they are sent (the client's,
# or "localhost" with host_header = backend and in health checks), the
# access log's upstream address, health checks taking one out and back, a
# missing socket file as a failed connection (502, then the other
# server), and the configuration's refusals.
import json
import os
import re
import shutil
import socket
import socketserver
import sys
import tempfile
import threading

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403


class UnixBackend:
    """An HTTP/1.1 server on a Unix socket: /echo answers JSON with what it
    got (method, target, Host, body), keep-alive; /healthz 200."""

    def __init__(self, path):
        self.path = path
        self.requests = []
        self.connections = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                with outer.lock:
                    outer.connections += 1
                self.connection.settimeout(10)
                try:
                    while outer.one(self.rfile, self.wfile):
                        pass
                except (OSError, ValueError):
                    pass

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.srv = Server(path, Handler)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def one(self, rfile, wfile):
        line = rfile.readline(65536)
        if not line:
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers = {}
        while True:
            h = rfile.readline(65536).decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            k, v = h.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        body = rfile.read(n) if n > 0 else b""
        with self.lock:
            self.requests.append((method, target, headers))
        if target == "/healthz":
            out = b"ok"
        else:
            out = json.dumps({"method": method, "target": target, "host": headers.get("host"),
                              "body": body.decode("latin-1")}).encode()
        wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                    % len(out) + out)
        wfile.flush()
        return headers.get("connection", "").lower() != "close"

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


CONF = """\
[global]
workers = 1
access_log = {dir}/access.log
access_log_format = json

[listen:http]
address = 127.0.0.1:{port}

[pool:app]
server = unix:%(sock)s
keepalive = 8

[pool:checked]
server = unix:%(sock2)s
health_check = GET /healthz every 200ms
rise = 1
fall = 1

[pool:gone]
server = unix:%(missing)s
server = unix:%(sock)s backup
max_fails = 1

[route:status]
path = /status
status = json

[route:app]
path = /app/
pool = app
strip_prefix = yes

[route:named]
path = /named/
pool = app
strip_prefix = yes
host_header = backend

[route:checked]
path = /checked/
pool = checked
strip_prefix = yes

[route:gone]
path = /gone/
pool = gone
strip_prefix = yes
"""


def states(srv):
    try:
        return {n: [s["state"] for s in p["servers"]] for n, p in srv.status_json()["pools"].items()}
    except (ServerError, KeyError, ValueError, TypeError, OSError) as e:
        return {"error": str(e)}


def json_body(r):
    try:
        return json.loads(r.body) if r is not None and r.status == 200 else None
    except ValueError:
        return None


def proxying(srv, be, d):
    r = srv.get("/app/echo?x=1", host="www.example")
    d1 = json_body(r) or {}
    is_((r and r.status, d1.get("target"), d1.get("host")), (200, "/echo?x=1", "www.example"),
        "GET through a unix: server: 200, the target, the client's Host")
    r = srv.request(b"POST /app/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world")
    is_((json_body(r) or {}).get("body"), "hello world", "POST: the body reaches the Unix-socket server")
    r = srv.get("/named/echo")
    is_((json_body(r) or {}).get("host"), "localhost", "host_header = backend: Host: localhost (a socket has no host)")
    before = be.connections
    c = srv.connect()
    got = []
    for i in range(5):
        c.send(b"GET /app/echo?k=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        got.append((json_body(c.read_response(timeout=5)) or {}).get("target"))
    c.close()
    is_((got, be.connections - before), (["/echo?k=%d" % i for i in range(5)], 0),
        "5 requests on one client connection: over the kept-alive upstream connection, none new")
    lines = wait_for(lambda: [json.loads(l) for l in open(srv.path("access.log")).read().splitlines()
                              if '"GET /app/echo?x=1' in l] or None, 5) or []
    is_(lines[0].get("upstream_addr") if lines else None, "unix:" + be.path,
        "access log: upstream_addr is unix:PATH")


def health(srv, be2, sock2):
    ok(wait_for(lambda: states(srv).get("checked") == ["up"], 5), "health check over the socket: up")
    hosts = [h.get("host") for m, t, h in be2.requests if t == "/healthz"]
    is_(sorted(set(hosts)), ["localhost"], "... its requests say Host: localhost")
    r = srv.get("/checked/echo")
    is_(r and r.status, 200, "... and it takes requests")
    be2.stop()
    ok(wait_for(lambda: states(srv).get("checked") == ["down"], 5),
       "the socket file removed: the check fails, the server is down (%r)" % states(srv).get("checked"))
    r = srv.get("/checked/echo")
    is_(r and r.status, 503, "... no server in service: 503")
    be2b = UnixBackend(sock2)
    ok(wait_for(lambda: states(srv).get("checked") == ["up"], 5), "a server on the socket again: up")
    be2b.stop()


def missing(srv):
    r = srv.get("/gone/echo")
    d = json_body(r) or {}
    is_((r and r.status, d.get("target")), (200, "/echo"),
        "a socket file that does not exist: a failed connection, the backup answers")
    ok(wait_for(lambda: re.search(r"No such file or directory", srv.stderr()) is not None, 5),
       "... and the error log says why (No such file or directory)")


def config_errors(d):
    cases = [
        ("server = unix:relative.sock", r"expected unix:/ABSOLUTE/PATH"),
        ("server = unix:/" + "a" * 120, r"a Unix socket path has at most 107 bytes"),
        ("server = unix:/run/app.sock tls", r"tls: not to a Unix socket"),
    ]
    for i, (line, pat) in enumerate(cases):
        path = os.path.join(d, "bad%d.ini" % i)
        with open(path, "w") as f:
            f.write("[listen:a]\naddress = 127.0.0.1:1\n[pool:p]\n%s\n[route:r]\npool = p\n" % line)
        rc, out, err = portico(["-t", "-c", path])
        is_(rc, 1, "portico -t refuses %s" % line[:40])
        like(out + err, re.escape(path) + r":\d+: \[pool:p\] server: " + pat, "... with file, line and reason")
    path = os.path.join(d, "good.ini")
    with open(path, "w") as f:
        f.write("[listen:a]\naddress = 127.0.0.1:1\n[pool:p]\nserver = unix:/run/app.sock weight=2\n[route:r]\npool = p\n")
    rc, out, err = portico(["-t", "-c", path])
    is_(rc, 0, "portico -t accepts server = unix:/run/app.sock weight=2 (the file need not exist yet)")


def main():
    # Short paths: sun_path holds 107 bytes.
    d = tempfile.mkdtemp(prefix="ptu-", dir="/tmp")
    sock, sock2 = d + "/app.sock", d + "/chk.sock"
    be = UnixBackend(sock)
    be2 = UnixBackend(sock2)
    srv = Server(CONF % {"sock": sock, "sock2": sock2, "missing": d + "/missing.sock"})
    try:
        proxying(srv, be, d)
        health(srv, be2, sock2)
        missing(srv)
        srv.stop()
    finally:
        be.stop()
        be2.stop()
    config_errors(d)
    shutil.rmtree(d, ignore_errors=True)


run(main)
