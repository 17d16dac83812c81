#!/usr/bin/env python3
# Active health checks and the answers they read: the head is parsed as a
# proxied response's is (before, sscanf read "HTTP/1.x %3d" out of the first
# bytes and passed status lines and heads the proxy refuses), interim 1xx
# heads are skipped, and an answer coming a byte at a time, over plain TCP
# or in one-byte TLS records, is read whole.
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import shutil
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403
import backend as backend_mod  # noqa: E402

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

# path -> (answer, expected state, what the log says when down)
CASES = {
    # Status lines the old sscanf("HTTP/1.%*1[01] %3d") read as 200.
    "/st-4digits": (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", "down", "malformed status line"),
    "/st-2spaces": (b"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n", "down", "malformed status line"),
    "/st-glued": (b"HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n", "down", "malformed status line"),
    "/st-newline": (b"HTTP/1.1\n200 OK\r\nContent-Length: 0\r\n\r\n", "down", "malformed status line"),
    # A good status line and a head the proxy would answer 502 for.
    "/hd-folded": (b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\n\r\n", "down", "obsolete line folding"),
    "/hd-cl-te": (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
                  "down", "both Content-Length and Transfer-Encoding"),
    # Interim heads come before the answer (RFC 9110 15.2); before, 103 was the status.
    "/early-hints": (b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" + OK_HEAD, "up", None),
    "/continue": (b"HTTP/1.1 100 Continue\r\n\r\n" + OK_HEAD, "up", None),
    "/hints-forever": (b"HTTP/1.1 103 Early Hints\r\n\r\n" * 17 + OK_HEAD, "down", "too many interim responses"),
    # A byte at a time.
    "/tiny-ok": (OK_HEAD, "up", None),
    "/tiny-503": (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", "down", "status 503"),
    # The status line cut short, then nothing.
    "/stall": (b"HTTP/1.1 2", "down", "read timed out"),
}


def answer(path):
    data, _, _ = CASES[path]

    def fn(h, req):
        if path.startswith("/tiny-"):
            for i in range(len(data)):
                h.send(data[i:i + 1])
                time.sleep(0.002)
        elif path == "/stall":
            h.send(data)
            h.be._stopping.wait(3)
        else:
            h.send(data)
        return False
    return fn


def pool_name(path):
    return path.strip("/")


CONF_HEAD = """\
[global]
workers = 1

[listen:http]
address = 127.0.0.1:{port}

[route:status]
path = /status
status = json
"""

POOL = """
[pool:%(name)s]
server = %(addr)s%(tls)s
health_check = GET %(path)s every 500ms
rise = 1
fall = 1
"""


def states(srv):
    try:
        d = srv.status_json()["pools"]
        return {name: [s["state"] for s in p["servers"]] for name, p in d.items()}
    except (ServerError, KeyError, ValueError, TypeError, OSError) as e:
        return {"error": str(e)}


def check_cases(srv, be, paths, label, extra=""):
    """Each path's pool ends in its expected state, with the log line that says why."""
    ok(wait_for(lambda: all(be.paths[p] >= 3 for p in paths), 15),
       "%s: every server answered at least 3 checks (%s)" % (label, {p: be.paths[p] for p in paths}))
    st = states(srv)
    log = srv.stderr()
    for p in paths:
        _, want, why = CASES[p]
        name = pool_name(p) + extra
        is_(st.get(name), [want], "%s %s: the server is %s" % (label, p, want))
        esc = re.escape(be.addr)
        if why is None:
            unlike(log, r"\[pool:%s\] server %s is down" % (re.escape(name), esc),
                   "%s %s: never marked down" % (label, p))
        else:
            like(log, r"\[pool:%s\] server %s is down: %s \(1 check failed\)" % (re.escape(name), esc, re.escape(why)),
                 "%s %s: logged: is down: %s" % (label, p, why))


def test_plain():
    be = Backend("hc")
    for p in CASES:
        be.on(p, answer(p))
    conf = CONF_HEAD
    for p in CASES:
        conf += POOL % {"name": pool_name(p), "addr": be.addr, "tls": "", "path": p}
    try:
        with Server(conf) as srv:
            check_cases(srv, be, list(CASES), "plain")
            r = be.log[-1] if be.log else None
            is_((r and r.method, r and r.header("Connection"), r and r.header("User-Agent")),
                ("GET", "close", "portico-health-check"), "the check is still GET, Connection: close, ours")
    finally:
        be.stop()


# --------------------------------------------------------------------------
# over TLS: one-byte records, read through OpenSSL's buffer

class _TLSServer(backend_mod._Server):
    def get_request(self):
        sock, addr = super().get_request()
        return self.backend.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def finish_request(self, request, client_address):
        try:
            request.settimeout(5)
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


class TLSBackend(Backend):
    def __init__(self, name, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        super().__init__(name, start=False)
        self.start()

    def start(self):
        srv = _TLSServer((self.host, self.port), backend_mod._Handler, bind_and_activate=False)
        srv.backend = self
        srv.server_bind()
        srv.server_activate()
        self.port = srv.server_address[1]
        self._srv = srv
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self


def test_tls():
    d = tempfile.mkdtemp(prefix="portico-t-")
    cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                       capture_output=True)
    if r.returncode != 0:
        skip("openssl cannot make a certificate: %s" % r.stderr.decode(errors="replace").strip(), 9)
        shutil.rmtree(d, ignore_errors=True)
        return
    paths = ["/tiny-ok", "/tiny-503", "/early-hints", "/st-4digits"]
    be = TLSBackend("hcs", cert, key)
    for p in paths:
        be.on(p, answer(p))
    conf = CONF_HEAD
    for p in paths:
        conf += POOL % {"name": pool_name(p) + "-tls", "addr": be.addr, "tls": " tls", "path": p}
        conf += "tls_verify = off\n"
    try:
        with Server(conf) as srv:
            check_cases(srv, be, paths, "TLS", "-tls")
    finally:
        be.stop()
        shutil.rmtree(d, ignore_errors=True)


def main():
    test_plain()
    test_tls()


run(main)
