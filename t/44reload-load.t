#!/usr/bin/env python3
# Reloads under load and over time: 20 reloads alternating two
# configurations while 50 keep-alive connections keep requests going, with
# no request failed and no connection reset; and memory after 200 reloads
# within 512 KiB of memory after 10 (old snapshots, their TLS contexts and
# pools included, are freed once unused).
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import Backend  # noqa: E402

CONF = """\
[global]
workers = 2
keepalive_requests = 1000000
keepalive_timeout = 30s

[listen:main]
address = 127.0.0.1:{port}

[pool:app]
server = %(backend)s
keepalive = 32

[route:status]
path = /status
status = json

[route:proxied]
path = /p/
pool = app

[route:answer]
path = /
return = 200 %(answer)s
"""

CLIENTS = 50
RELOADS = 20


class LogWatch:
    """Reads a server's stderr as it grows, to wait for a line without
    rereading the whole file each time."""

    def __init__(self, srv):
        self.path = srv.stderr_path
        self.off = 0
        self.buf = ""

    def wait(self, pattern, timeout):
        rx = re.compile(pattern, re.M)
        for _ in deadline_loop(timeout, 0.005):
            with open(self.path, "rb") as f:
                f.seek(self.off)
                more = f.read().decode("utf-8", "replace")
            self.off += len(more.encode("utf-8"))
            self.buf += more
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return True
        return False


def reload_to(srv, watch, text, gen):
    tmp = srv.conf_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text.replace("{port}", str(srv.port)))
    os.replace(tmp, srv.conf_path)
    srv.signal(signal.SIGHUP)
    return watch.wait(r"reload: configuration generation %d in service$|reload failed" % gen, 10) and \
        "reload failed" not in srv.stderr()


class Load:
    """CLIENTS raw keep-alive connections in one select loop, each sending
    a request as soon as the last response is whole."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.done = 0
        self.failures = []
        self.bodies = {}
        self.reconnects = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def request(self, i):
        path = "/p/x" if i % 5 == 0 else "/"
        return ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()

    def connect(self, i):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.setblocking(False)
        s.sendall(self.request(i))
        return s

    def run(self):
        socks = {i: self.connect(i) for i in range(CLIENTS)}
        bufs = {i: b"" for i in range(CLIENTS)}
        by_fd = {s.fileno(): i for i, s in socks.items()}
        end = time.monotonic() + 40
        while not self.stop.is_set() and time.monotonic() < end:
            r, _, _ = select.select(list(socks.values()), [], [], 0.2)
            for s in r:
                i = by_fd[s.fileno()]
                try:
                    data = s.recv(65536)
                except OSError as e:
                    self.failures.append("conn %d: %s" % (i, e))
                    data = None
                if not data:
                    if data is not None:
                        self.failures.append("conn %d: closed by the server%s" % (i, " mid-response" if bufs[i] else ""))
                    del by_fd[s.fileno()]
                    s.close()
                    socks[i] = self.connect(i)
                    by_fd[socks[i].fileno()] = i
                    bufs[i] = b""
                    continue
                bufs[i] += data
                while True:
                    head_end = bufs[i].find(b"\r\n\r\n")
                    if head_end < 0:
                        break
                    head = bufs[i][:head_end].decode("latin-1")
                    m = re.search(r"^content-length:\s*(\d+)", head, re.I | re.M)
                    n = int(m.group(1)) if m else 0
                    if len(bufs[i]) < head_end + 4 + n:
                        break
                    body = bufs[i][head_end + 4:head_end + 4 + n]
                    bufs[i] = bufs[i][head_end + 4 + n:]
                    status = head.split(" ", 2)[1]
                    self.done += 1
                    key = "proxied" if i % 5 == 0 else body.decode("latin-1")
                    self.bodies[key] = self.bodies.get(key, 0) + 1
                    if status != "200":
                        self.failures.append("conn %d: status %s" % (i, status))
                    if re.search(r"^connection:\s*close", head, re.I | re.M):
                        self.reconnects += 1
                    else:
                        socks[i].sendall(self.request(i))
        for s in socks.values():
            s.close()


def under_load():
    b = Backend("b")
    try:
        conf = [CONF % {"backend": b.addr, "answer": x} for x in ("one", "two")]
        with Server(conf[0]) as srv:
            watch = LogWatch(srv)
            load = Load(srv.port)
            load.thread.start()
            ok(wait_for(lambda: load.done > 200, 10), "load running: %d responses" % load.done)
            good = 0
            for k in range(RELOADS):
                good += reload_to(srv, watch, conf[(k + 1) % 2], k + 2)
                time.sleep(0.05)
            is_(good, RELOADS, "%d reloads, alternating two configurations, each in service" % RELOADS)
            n = load.done
            ok(wait_for(lambda: load.done > n + 200, 10), "requests go on after the last reload")
            load.stop.set()
            load.thread.join(10)
            is_(load.failures[:5], [], "%d requests on %d keep-alive connections: none failed, none reset, none "
                "closed" % (load.done, CLIENTS))
            is_(load.reconnects, 0, "no response said Connection: close")
            ok(load.bodies.get("one", 0) > 0 and load.bodies.get("two", 0) > 0 and load.bodies.get("proxied", 0) > 0,
               "both answers, and proxied ones, were served (%r)" % sorted(load.bodies.items()))
            st = srv.status_json()
            is_((st["reloads"], st["config_generation"]), (RELOADS, RELOADS + 1), "/status: reloads and generation")
    finally:
        b.stop()


TLS_CONF = """\
[global]
workers = 2

[listen:main]
address = 127.0.0.1:{port}

[listen:tls]
address = 127.0.0.1:%(tls_port)d
tls_cert = %(dir)s/cert.pem
tls_key = %(dir)s/key.pem

[pool:app%(n)d]
server = 127.0.0.1:9
server = localhost:9 weight=%(n)d

[route:status]
path = /status
status = json

[route:files]
path = /files/
root = %(dir)s

[route:proxied]
path = /p/
pool = app%(n)d

[route:answer]
path = /
return = 200 %(n)d
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def memory():
    sanitized = "san" in os.path.basename(os.path.dirname(os.path.abspath(os.path.join(REPO, BIN))))
    d = tempfile.mkdtemp(prefix="portico-t-rss-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-keyout", os.path.join(d, "key.pem"),
                    "-out", os.path.join(d, "cert.pem")], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    with open(os.path.join(d, "f.txt"), "w") as f:
        f.write("x" * 1024)
    tls_port = free_port()
    confs = [TLS_CONF % {"tls_port": tls_port, "dir": d, "n": n} for n in (1, 2)]
    with Server(confs[0]) as srv:
        watch = LogWatch(srv)

        def exercise():
            for path in ("/", "/files/f.txt", "/status"):
                srv.get(path)

        rss = {}
        good = 0
        for k in range(200):
            good += reload_to(srv, watch, confs[(k + 1) % 2], k + 2)
            exercise()
            if k + 1 in (10, 200):
                # The old snapshots go once each worker has switched: wait
                # for two readings 50 ms apart to agree.
                def settled():
                    now = rss_kib(srv.proc.pid)
                    time.sleep(0.05)
                    return rss_kib(srv.proc.pid) == now
                wait_for(settled, 2)
                rss[k + 1] = rss_kib(srv.proc.pid)
        is_(good, 200, "200 reloads, each in service")
        diag("VmRSS after 10 reloads: %d KiB, after 200: %d KiB" % (rss[10], rss[200]))
        if sanitized:
            skip("memory is not measured under a sanitizer (its quarantine holds freed memory)")
        else:
            ok(rss[200] - rss[10] <= 512, "VmRSS after 200 reloads within 512 KiB of VmRSS after 10 (%+d KiB)"
               % (rss[200] - rss[10]))
        r = srv.get("/")
        is_(r and r.body, b"1", "still serving")
    shutil.rmtree(d, ignore_errors=True)


def main():
    under_load()
    memory()


run(main)
