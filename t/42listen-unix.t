#!/usr/bin/env python3
# Listeners on Unix sockets (address = unix:/PATH): the file and its
# unix_mode, HTTP/1.1 and keep-alive through it, "unix:" as the client
# address in the access log, an admin route there without the network
# warning, a reload that keeps the socket (same file, open connections
# answered), drops it (file removed) or brings it back, the file removed
# at stop, a dead socket left by a crash replaced at start, and the
# refusals: another process on the path, a file that is not a socket,
# bad addresses and modes.
import os
import re
import signal
import socket
import stat
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

BASE = """\
[global]
workers = 2
access_log = {dir}/access.log
log_level = info

[listen:tcp]
address = 127.0.0.1:{port}
%(unix)s
[route:status]
path = /status
status = json

[route:r]
path = /
return = 200 %(answer)s
"""

UNIX = """
[listen:u]
address = unix:{dir}/p.sock
unix_mode = 0600
"""


def fill(srv, text):
    return text.replace("{port}", str(srv.port)).replace("{dir}", srv.dir)


def reload_to(srv, text, gen, timeout=10.0):
    tmp = srv.conf_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(fill(srv, text))
    os.replace(tmp, srv.conf_path)
    srv.signal(signal.SIGHUP)
    pat = re.compile(r"reload: configuration generation %d in service$|reload failed" % gen, re.M)
    m = wait_for(lambda: pat.findall(srv.stderr()), timeout)
    return bool(m) and "generation %d in service" % gen in m[-1]


class UConn:
    """One client connection to a Unix socket, HTTP/1.1 read by Conn's reader."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def get(self, target, close=False):
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: u\r\n%s\r\n" %
                           (target, "Connection: close\r\n" if close else "")).encode())
        return self.read_response()

    def read_response(self):
        while b"\r\n\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                return None
            self.buf += d
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        n = int(hdrs.get("content-length", "0"))
        while len(rest) < n:
            d = self.sock.recv(65536)
            if not d:
                break
            rest += d
        self.buf = rest[n:]
        return status, rest[:n]

    def close(self):
        self.sock.close()


def one(path, target="/x"):
    try:
        c = UConn(path)
    except OSError as e:
        return "connect: %s" % e.strerror
    try:
        return c.get(target, close=True)
    finally:
        c.close()


def serving(srv):
    path = srv.path("p.sock")
    st = os.lstat(path)
    is_((stat.S_ISSOCK(st.st_mode), stat.S_IMODE(st.st_mode)), (True, 0o600),
        "unix:PATH: a socket file, mode 0600 as unix_mode says")
    is_(one(path), (200, b"one"), "GET over the Unix socket: 200")
    c = UConn(path)
    got = [c.get("/k%d" % i) for i in range(3)]
    c.close()
    is_(got, [(200, b"one")] * 3, "three requests on one connection: keep-alive")
    lines = wait_for(lambda: [l for l in open(srv.path("access.log")).read().splitlines() if "GET /k2 " in l] or None, 5)
    like(lines[0] if lines else "", r'^unix: - - \[', "access log: the client address is unix:")
    ok(re.search(r"\[listen:u\] listening on unix:\S+/p\.sock \(mode 0600\)", srv.stderr()) is not None,
       "the error log says where it listens")


def reloads(srv):
    path = srv.path("p.sock")
    ino = os.lstat(path).st_ino
    kept = UConn(path)
    is_(kept.get("/before"), (200, b"one"), "a connection opened before the reload")
    ok(reload_to(srv, BASE % {"unix": UNIX, "answer": "two"}, 2), "reload keeping the listener")
    is_((os.lstat(path).st_ino, one(path)), (ino, (200, b"two")),
        "... the same socket file, new requests get the new answer")
    r = kept.get("/after", close=True)
    ok(r is not None and r[0] == 200, "... the connection opened before is still answered (%r)" % (r,))
    kept.close()
    ok(reload_to(srv, BASE % {"unix": "", "answer": "three"}, 3), "reload without the listener")
    ok(not os.path.exists(path), "... its file is removed")
    ok(reload_to(srv, BASE % {"unix": UNIX, "answer": "four"}, 4), "reload with it again")
    is_(one(path), (200, b"four"), "... a new socket file, serving")


def refusals(srv):
    path = srv.path("p.sock")
    # A second process on the same path: refused, the first one's file kept.
    other = Server(fill(srv, BASE % {"unix": UNIX, "answer": "x"}).replace("127.0.0.1:%d" % srv.port,
                                                                        "127.0.0.1:{port}"),
                   start=False, check_exit=False)
    other.start_nowait()
    rc = other.wait(10)
    is_(rc, 1, "a second portico on the same unix:PATH does not start")
    like(other.stderr(), r"cannot bind unix:\S+/p\.sock: address already in use \(another process listens there\)",
         "... and says why")
    other.stop()
    is_(one(path), (200, b"four"), "... the first one's socket is untouched")


def stale_and_stop():
    d = tempfile.mkdtemp(prefix="ptu-", dir="/tmp")
    sock = d + "/s.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(sock)
    dead.close()  # a crash: the file stays, no one listens
    conf = BASE % {"unix": "[listen:u]\naddress = unix:%s\n" % sock, "answer": "fresh"}
    srv = Server(conf)
    ok(re.search(r"removed the stale socket", srv.stderr()) is not None, "a dead socket file at start: removed")
    is_(one(sock), (200, b"fresh"), "... and a new one serves")
    is_(stat.S_IMODE(os.lstat(sock).st_mode), 0o660, "unix_mode's default: 0660")
    srv.stop()
    ok(not os.path.exists(sock), "stopped: the socket file is removed")
    # A file that is not a socket is never removed.
    with open(sock, "w") as f:
        f.write("keep me")
    srv = Server(conf, start=False, check_exit=False)
    srv.start_nowait()
    is_(srv.wait(10), 1, "a regular file at the path: portico does not start")
    like(srv.stderr(), r"cannot bind unix:\S+: the file exists and is not a socket", "... and says why")
    with open(sock) as f:
        is_(f.read(), "keep me", "... and the file is left as it was")
    srv.stop()
    os.unlink(sock)
    os.rmdir(d)


def ownership_and_theft():
    """user = nobody: the file is nobody's.  A file that another process
    put at the path while portico ran is not removed at stop."""
    import pwd
    d = tempfile.mkdtemp(prefix="ptu-", dir="/tmp")
    os.chmod(d, 0o755)
    sock = d + "/o.sock"
    conf = BASE % {"unix": "[listen:u]\naddress = unix:%s\n" % sock, "answer": "own"}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        srv = Server(conf.replace("[global]\n", "[global]\nuser = nobody\n", 1))
        st = os.lstat(sock)
        is_((st.st_uid, stat.S_IMODE(st.st_mode)), (nobody.pw_uid, 0o660),
            "user = nobody: the socket file is nobody's, mode 0660")
        is_(one(sock), (200, b"own"), "... and serves")
        srv.stop()
    else:
        ok(True, "# SKIP not root: user = cannot be tried")
        ok(True, "# SKIP not root")
    srv = Server(conf)
    os.unlink(sock)
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    squatter.bind(sock)
    squatter.listen(1)
    srv.proc.send_signal(signal.SIGTERM)
    srv.wait(10)
    ok(os.path.exists(sock), "a socket another process made at the path meanwhile: not removed at stop")
    like(srv.stderr(), r"no longer the socket portico made: left in place", "... and the log says so")
    srv.stop()
    squatter.close()
    os.unlink(sock)
    os.rmdir(d)


def forwarding():
    """A proxied request from a Unix-socket client: X-Forwarded-For says
    unix: (as nginx's $remote_addr), Forwarded says for=unknown (RFC 7239
    6: the client has no address)."""
    from backend import Backend
    import json
    b = Backend("f")
    d = tempfile.mkdtemp(prefix="ptu-", dir="/tmp")
    sock = d + "/f.sock"
    srv = Server("""[global]
workers = 1
[listen:tcp]
address = 127.0.0.1:{port}
[listen:u]
address = unix:%s
[pool:be]
server = %s
[route:be]
pool = be
forwarded = on
""" % (sock, b.addr))
    c = UConn(sock)
    c.sock.sendall(b"GET /echo HTTP/1.1\r\nHost: u\r\nConnection: close\r\n\r\n")
    r = c.read_response()
    c.close()
    hs = json.loads(r[1])["headers"] if r and r[0] == 200 else []
    got = {k.lower(): v for k, v in hs if k.lower() in ("x-forwarded-for", "forwarded")}
    is_(got, {"x-forwarded-for": "unix:", "forwarded": 'for=unknown;proto=http;host="u"'},
        "proxied from a Unix-socket client: X-Forwarded-For unix:, Forwarded for=unknown")
    srv.stop()
    b.stop()
    os.rmdir(d)


def config():
    d = tempfile.mkdtemp(prefix="ptu-", dir="/tmp")
    cases = [
        ("address = unix:relative.sock", r"address: expected unix:/ABSOLUTE/PATH of at most 107 bytes"),
        ("address = unix:/" + "a" * 110, r"address: expected unix:/ABSOLUTE/PATH of at most 107 bytes"),
        ("address = 127.0.0.1:1\nunix_mode = 0600", r"unix_mode: only for a unix:PATH address"),
        ("address = unix:/tmp/x.sock\nunix_mode = 0999", r"unix_mode: expected an octal mode such as 0660"),
        ("address = unix:/tmp/x.sock\nunix_mode = 01777", r"unix_mode: expected an octal mode such as 0660"),
    ]
    for i, (body, pat) in enumerate(cases):
        path = os.path.join(d, "bad%d.ini" % i)
        with open(path, "w") as f:
            f.write("[listen:a]\n%s\n[route:r]\nreturn = 200\n" % body)
        rc, out, err = portico(["-t", "-c", path])
        is_(rc, 1, "portico -t refuses %s" % body.replace("\n", "; ")[:50])
        like(out + err, re.escape(path) + r":\d+: \[listen:a\] " + pat, "... with file, line and reason")
    tok = os.path.join(d, "token")
    with open(tok, "w") as f:
        f.write("s3cret-token-of-enough-length-1234567890\n")
    os.chmod(tok, 0o600)
    path = os.path.join(d, "admin.ini")
    with open(path, "w") as f:
        f.write("[listen:a]\naddress = unix:/tmp/adm.sock\nunix_mode = 0600\n"
                "[route:admin]\npath = /admin/\nadmin = on\nadmin_token_file = %s\n" % tok)
    rc, out, err = portico(["-t", "-c", path])
    ok(rc == 0 and "reachable from the network" not in out + err,
       "an admin route on a unix:PATH listener: valid, no warning that the network reaches it (%d %r)" % (rc, (out + err)[-200:]))
    for n in os.listdir(d):
        os.unlink(os.path.join(d, n))
    os.rmdir(d)


def main():
    srv = Server(BASE % {"unix": UNIX, "answer": "one"})
    serving(srv)
    reloads(srv)
    refusals(srv)
    path = srv.path("p.sock")
    srv.check_exit = True
    srv.proc.send_signal(signal.SIGTERM)
    srv.wait(10)
    ok(not os.path.exists(path), "stopped: the socket file is removed")
    srv.stop()
    stale_and_stop()
    ownership_and_theft()
    forwarding()
    config()


run(main)
