#!/usr/bin/env python3
# Full reload (SIGHUP, portico -s reload): new requests get the new
# configuration, a request in flight finishes on the one it started under, a
# keep-alive connection takes the new one at its next request; a bad file is
# reported line by line and changes nothing; -s finds the server through
# pid_file; listeners that stay keep their sockets, new ones open, removed
# ones refuse new connections while their connections finish; pools keep
# the health and idle connections of servers that stayed; TLS certificates
# are read again while sessions made before resume after.  Load and memory
# across many reloads are in t/44reload-load.t.
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import Backend  # noqa: E402
from ws import EchoServer, Frame, WSClient  # noqa: E402

BASE = """\
[global]
workers = 2
pid_file = {dir}/portico.pid
keepalive_timeout = 30s

[listen:main]
address = 127.0.0.1:{port}

[route:status]
path = /status
status = json

[route:answer]
path = /
return = 200 %(answer)s
"""


def fill(srv, text):
    """The placeholders Server fills, filled the same way for a new file."""
    return text.replace("{port}", str(srv.port)).replace("{port2}", str(srv.port2)).replace("{dir}", srv.dir)


def write_conf(srv, text):
    tmp = srv.conf_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(fill(srv, text))
    os.chmod(tmp, 0o644)
    os.replace(tmp, srv.conf_path)


def reload_to(srv, text, gen, timeout=10.0):
    """Writes text as srv's file, sends SIGHUP and waits until generation
    gen is in service (or the reload failed)."""
    write_conf(srv, text)
    srv.signal(signal.SIGHUP)
    pat = re.compile(r"reload: configuration generation %d in service$|reload failed" % gen, re.M)
    m = wait_for(lambda: pat.findall(srv.stderr()), timeout)
    return bool(m) and "generation %d in service" % gen in m[-1]


def body(r):
    return r.body.decode("latin-1") if r is not None else None


def basics(d):
    conf_a = BASE % {"answer": "one"}
    with Server(conf_a) as srv:
        before = srv.status_json()
        is_(body(srv.get("/")), "one", "before the reload: the first answer")
        is_((before["reloads"], before["config_generation"]), (0, 1), "/status: reloads 0, config_generation 1")
        keep = srv.connect()
        keep.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        is_(body(keep.read_response()), "one", "keep-alive connection: first request on the first configuration")

        ok(reload_to(srv, BASE % {"answer": "two"}, 2), "SIGHUP: configuration generation 2 in service")
        is_(body(srv.get("/")), "two", "after the reload: new requests get the new answer")
        keep.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        r = keep.read_response()
        is_((r and r.status, body(r), r and r.header("Connection")), (200, "two", None),
            "the keep-alive connection's next request runs on the new configuration, and it stays open")
        after = srv.status_json()
        is_((after["reloads"], after["config_generation"]), (1, 2), "/status: reloads 1, config_generation 2")
        is_(after["start_time"], before["start_time"], "/status: start_time unchanged by the reload")
        ok(after["requests_total"] >= 4, "/status: the counters kept counting (%d requests)" % after["requests_total"])

        # Several errors: every one is logged with its file and line, and
        # nothing changes.
        bad = (BASE % {"answer": "three"}).replace("keepalive_timeout = 30s", "keepalive_timeout = soon\nworkerz = 2") \
            + "[route:broken]\npath = /b\nreturn = 999 nope\n"
        write_conf(srv, bad)
        rc, out, err = portico(["-s", "reload", "-c", srv.conf_path])
        is_(rc, 1, "portico -s reload with a bad file: exit 1")
        like(err, r"not signalling \(the running configuration stays\)", "... saying it did not signal, and why")
        errs = [l for l in err.splitlines() if l.startswith(srv.conf_path + ":")]
        is_(len(errs), 3, "... and printing each of the 3 errors as FILE:LINE: ...")
        n_failed = srv.stderr().count("reload failed")
        srv.signal(signal.SIGHUP)
        ok(wait_for(lambda: srv.stderr().count("reload failed") > n_failed, 5), "SIGHUP with the bad file: \"reload failed\" logged")
        logged = re.findall(r"\[error\] reload: (%s:\d+: .*)$" % re.escape(srv.conf_path), srv.stderr(), re.M)
        is_(sorted(logged), sorted(errs), "the error log holds the same 3 errors with file and line")
        like(srv.stderr(), r"reload failed: \S+ has 3 errors; configuration generation 2 stays in service",
             "... and says the running configuration stays")
        is_(body(srv.get("/")), "two", "the old configuration keeps serving")
        is_(srv.status_json()["config_generation"], 2, "/status: still generation 2")

        # Keys that need a restart keep their running values, each named.
        write_conf(srv, (BASE % {"answer": "four"}).replace("workers = 2", "workers = 3\nmax_headers = 50"))
        rc, out, err = portico(["-s", "reload", "-c", srv.conf_path])
        is_((rc, bool(re.search(r"-s reload: SIGHUP sent to process %d$" % srv.proc.pid, err, re.M))), (0, True),
            "portico -s reload with a good file: exit 0, \"SIGHUP sent to process PID\"")
        ok(wait_for(lambda: "generation 3 in service" in srv.stderr(), 5), "... and the server reloads")
        is_(body(srv.get("/")), "four", "... to the new answer")
        like(srv.stderr(), r"\[warn\] reload: \S+:2: \[global\] workers: cannot change without a restart; the running value stays",
             "workers changed: a warning with file and line, the running value stays")
        like(srv.stderr(), r"\[warn\] reload: \S+:\d+: \[global\] max_headers: cannot change without a restart",
             "max_headers changed: the same")
        is_(srv.status_json()["workers"], max(2, MIN_WORKERS), "/status: the worker count did not change")

        # -s quit: graceful, through pid_file, which goes at exit.
        pidfile = srv.path("portico.pid")
        is_(open(pidfile).read(), "%d\n" % srv.proc.pid, "pid_file holds the server's pid")
        slow = srv.connect()
        slow.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        is_(body(slow.read_response()), "four", "a keep-alive connection open before -s quit")
        rc, out, err = portico(["-s", "quit", "-c", srv.conf_path])
        is_(rc, 0, "portico -s quit: exit 0")
        is_(srv.wait(10), 0, "... the server finishes and exits 0")
        like(srv.stderr(), r"signal 3: finishing in-flight requests", "... gracefully (SIGQUIT)")
        ok(not os.path.exists(pidfile), "... and removes its pid_file")
        rc, out, err = portico(["-s", "reload", "-c", srv.conf_path])
        is_(rc, 1, "-s reload with no server running: exit 1")
        like(err, r"-s reload: cannot read pid_file \S+portico\.pid: No such file or directory \(is portico running\?\)",
             "... saying the pid_file cannot be read")

    with Server(conf_a) as srv:
        # A file broken since the start: -s stop needs only its pid_file line.
        write_conf(srv, conf_a + "\n[route:bad]\nnot a line\n")
        rc, out, err = portico(["-s", "stop", "-c", srv.conf_path])
        is_(rc, 0, "portico -s stop with a broken file: exit 0 (only pid_file is needed)")
        like(err, r"has errors; signalling the process in its pid_file \S+ all the same",
             "... saying the file has errors")
        write_conf(srv, conf_a)
        is_(srv.wait(10), 0, "... the server exits 0")
        like(srv.stderr(), r"signal 2: stopping now", "... at once (SIGINT)")
        # A pid nobody has: stale.
        pid = 4000000
        while pid > 1000:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                pass
            pid -= 1
        with open(srv.path("portico.pid"), "w") as f:
            f.write("%d\n" % pid)
        rc, out, err = portico(["-s", "quit", "-c", srv.conf_path])
        is_((rc, err.strip()), (1, "portico: -s quit: no process %d (from pid_file %s): is portico running?"
                                % (pid, srv.path("portico.pid"))), "-s quit with a stale pid_file: exit 1, and why")
        with open(srv.path("nopid.ini"), "w") as f:
            f.write(srv.conf.replace("pid_file = %s/portico.pid\n" % srv.dir, ""))
        rc, out, err = portico(["-s", "reload", "-c", srv.path("nopid.ini")])
        is_((rc, err.strip()), (1, "portico: -s reload: %s sets no pid_file in [global]: cannot find the running server"
                                % srv.path("nopid.ini")), "-s with no pid_file in the file: exit 1, and why")
    rc, out, err = portico(["-s", "restart"])
    is_((rc, err.strip()), (64, "portico: -s takes reload, stop, quit or reopen, not \"restart\""), "-s restart: a usage error")


PROXY = """\
[global]
workers = 2
keepalive_timeout = 30s

[listen:main]
address = 127.0.0.1:{port}
%(more_listen)s
[pool:app]
%(servers)s
health_check = GET /hc every 200ms
fall = 1
read_timeout = 2s
keepalive = 8

[pool:slow]
server = %(slow)s

[route:status]
path = /status
status = json

[route:slow]
path = /slow
pool = slow

[route:app]
path = /
pool = app
"""


def listeners_and_pools(d):
    a, b, c, s1, s2 = Backend("a"), Backend("b"), Backend("c"), Backend("s1"), Backend("s2")
    hc_a = {"status": 503}

    def health_a(h, req):
        if hc_a["status"] is None:
            time.sleep(3)       # no answer within read_timeout
            return False
        h.respond(req, hc_a["status"], b"hc")
        return True
    a.on("/hc", health_a)
    port3 = free_port()
    extra = "[listen:extra]\naddress = 127.0.0.1:{port2}\n"
    conf1 = PROXY % {"more_listen": extra, "servers": "server = %s\nserver = %s" % (a.addr, b.addr),
                     "slow": s1.addr}
    try:
        with Server(conf1) as srv:
            ok(wait_for(lambda: [x["state"] for x in srv.status_json()["pools"]["app"]["servers"]] == ["down", "up"], 5),
               "pool app: a down by its health checks (503), b up")
            hc_a["status"] = None  # from now on a's checks get no answer in time
            # A keep-alive client connection: its worker keeps b's idle upstream connection.
            kc = srv.connect()
            kc.send(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            r = kc.read_response()
            is_((r.status, r.header("X-Backend")), (200, "b"), "request to app: served by b")
            conn_b = r.header("X-Conn")
            # A slow request on the listener about to go, and one on the one that stays.
            on_extra = srv.connect(port=srv.port2)
            on_extra.send(b"GET /slow?delay=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            on_main = srv.connect()
            on_main.send(b"GET /slow?delay=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            ok(s1.wait_requests(2, 5), "two slow requests in flight at s1")
            conf2 = PROXY % {"more_listen": "[listen:new]\naddress = 127.0.0.1:%d\n" % port3,
                             "servers": "server = %s\nserver = %s" % (b.addr, c.addr), "slow": s2.addr}
            ok(reload_to(srv, conf2, 2), "reload: [listen:extra] removed, [listen:new] added, a removed, c added, "
               "slow now s2")
            is_([(x["name"], x["state"]) for x in srv.status_json()["pools"]["app"]["servers"]],
                [(b.addr, "up"), (c.addr, "up")], "/status: pool app is b and c, both up")
            r1, r2 = on_extra.read_response(timeout=5), on_main.read_response(timeout=5)
            is_((r1 and r1.status, r1 and r1.header("X-Backend"), r2 and r2.status, r2 and r2.header("X-Backend")),
                (200, "s1", 200, "s1"), "both slow requests finished on the old configuration (s1)")
            on_extra.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            r = on_extra.read_response(timeout=5)
            is_((r and r.status, r and r.header("X-Backend"), r and r.header("Connection")), (200, "s1", "close"),
                "the connection on the removed listener: its next request still on the old configuration, "
                "with Connection: close")
            ok(on_extra.closed_within(3), "... and then it closes")
            on_main.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            r = on_main.read_response(timeout=5)
            is_((r and r.status, r and r.header("X-Backend")), (200, "s2"),
                "the connection on the listener that stayed: its next request goes to s2")
            s = socket.socket()
            s.settimeout(2)
            is_(s.connect_ex(("127.0.0.1", srv.port2)), 111, "the removed listener refuses new connections")
            s.close()
            r = srv.get("/x", port=port3)
            is_((r and r.status, r and r.header("X-Backend") in ("b", "c")), (200, True), "the new listener serves")

            # b stayed: its idle connection from before the reload serves the next request.
            kc.send(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            r = kc.read_response()
            got = [(r.header("X-Backend"), r.header("X-Conn"))]
            kc.send(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            r = kc.read_response()
            got.append((r.header("X-Backend"), r.header("X-Conn")))
            ok(("b", conn_b) in got, "b's idle upstream connection from before the reload was used again "
               "(conn %s; got %r)" % (conn_b, got))

            # a comes back with its health state: down, as its checks left it.
            conf3 = PROXY % {"more_listen": "", "servers": "server = %s\nserver = %s\nserver = %s" % (a.addr, b.addr, c.addr),
                             "slow": s2.addr}
            ok(reload_to(srv, conf3, 3), "reload: a back in the pool")
            states = {x["name"]: x["state"] for x in srv.status_json()["pools"]["app"]["servers"]}
            is_(states[a.addr], "up", "a server removed and added again starts afresh (up)")
            hc_a["status"] = 503
            ok(wait_for(lambda: {x["name"]: x["state"] for x in srv.status_json()["pools"]["app"]["servers"]}[a.addr]
                        == "down", 5), "a's checks fail again: down")
            hc_a["status"] = None
            ok(reload_to(srv, conf3.replace("keepalive = 8", "keepalive = 9"), 4), "reload with a unchanged")
            states = {x["name"]: x["state"] for x in srv.status_json()["pools"]["app"]["servers"]}
            is_(states[a.addr], "down", "right after the reload a is still down: its health state carried over")
            seen = set()
            for _ in range(6):
                r = srv.get("/x")
                seen.add(r.header("X-Backend") if r else None)
            is_(sorted(seen), ["b", "c"], "requests go to b and c only")
    finally:
        for x in (a, b, c, s1, s2):
            x.stop()


TLS = """\
[global]
workers = 2

[listen:https]
address = 127.0.0.1:{port}
tls_cert = %(d)s/%(cert)s.pem
tls_key = %(d)s/%(cert)s.key

[route:r]
path = /
return = 200 %(cert)s
"""


def make_cert(d, name):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=%s" % name, "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", os.path.join(d, name + ".key"), "-out", os.path.join(d, name + ".pem")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tls_certs(d):
    make_cert(d, "first")
    make_cert(d, "second")
    with Server(TLS % {"d": d, "cert": "first"}) as srv:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2

        def get(session=None):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
                with ctx.wrap_socket(s, session=session) as t:
                    t.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    data = b""
                    while True:
                        b = t.recv(4096)
                        if not b:
                            break
                        data += b
                    return data.split(b"\r\n\r\n", 1)[-1].decode(), t.session, t.session_reused, t.getpeercert(True)

        first_der = ssl.PEM_cert_to_DER_cert(open(os.path.join(d, "first.pem")).read())
        second_der = ssl.PEM_cert_to_DER_cert(open(os.path.join(d, "second.pem")).read())
        text, sess, _, der = get()
        is_((text, der == first_der), ("first", True), "before the reload: the first certificate")
        ok(reload_to(srv, TLS % {"d": d, "cert": "second"}, 2), "reload with another certificate")
        text, _, reused, der = get()
        is_((text, reused, der == second_der), ("second", False, True), "a new handshake gets the new certificate")
        text, _, reused, der = get(sess)
        is_((text, reused), ("second", True), "a session from before the reload resumes after it, on the new configuration")


WS = """\
[global]
workers = 2

[listen:main]
address = 127.0.0.1:{port}

[pool:ws]
server = %(e)s
%(ws_route)s
[route:answer]
path = /
return = 200 %(answer)s
"""


def tunnels(d):
    with EchoServer() as e:
        route = "[route:ws]\npath = /ws/\npool = ws\n"
        with Server(WS % {"e": e.addr, "ws_route": route, "answer": "one"}) as srv:
            c = WSClient("127.0.0.1", srv.port, "/ws/chat")
            is_((c.status, c.accept_ok), (101, True), "a WebSocket tunnel through the proxy is open")
            c.send_text("before")
            f = c.recv(5)
            is_(isinstance(f, Frame) and f.payload, b"before", "it echoes")
            ok(reload_to(srv, WS % {"e": e.addr, "ws_route": "", "answer": "two"}, 2),
               "reload: the WebSocket route gone")
            is_(body(srv.get("/")), "two", "new requests get the new configuration")
            c.send_text("after")
            f = c.recv(5)
            is_(isinstance(f, Frame) and f.payload, b"after", "the open tunnel goes on, on the configuration it "
                "opened under")
            c.close()
            c2 = WSClient("127.0.0.1", srv.port, "/ws/chat")
            is_((c2.status, c2.accept_ok), (200, False),
                "a new WebSocket request gets the new configuration: the / route answers, no tunnel")
            c2.close()


def dropped_privileges(d):
    """Started as root with user = nobody and a pid_file only root may
    write: a reload must not check what it does not reopen."""
    if os.geteuid() != 0:
        skip("not root: user = cannot be tested", 2)
        return
    run_dir = os.path.join(d, "run")
    os.makedirs(run_dir, mode=0o755, exist_ok=True)
    text = BASE.replace("pid_file = {dir}/portico.pid", "pid_file = %s/portico.pid\nuser = nobody" % run_dir)
    with Server(text % {"answer": "one"}) as srv:
        # What a reload reads, it reads as nobody.
        os.chmod(srv.dir, 0o755)
        ok(reload_to(srv, text % {"answer": "two"}, 2, timeout=30),
           "user = nobody, a root-owned pid_file: the reload goes into service")
        if "generation 2 in service" not in srv.stderr():
            diag(srv.stderr()[-2000:])
        try:
            r = srv.get("/")
        except (OSError, ServerError) as e:
            r = None
            diag("GET / after the reload: %s" % e)
        is_(body(r), "two", "... and serves the new answer")


def main():
    d = tempfile.mkdtemp(prefix="portico-t-reload-")
    try:
        basics(d)
        dropped_privileges(d)
        listeners_and_pools(d)
        tls_certs(d)
        tunnels(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


run(main)
