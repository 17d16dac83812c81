#!/usr/bin/env python3
"""The command line: --help and --version, usage errors in portico's own
words whatever path it was run by, quick-mode values that cannot be put in
a configuration line, and the access log of quick modes (standard output
by default, -a FILE, -a off)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

COMBINED = r'127\.0\.0\.1 - - \[[^\]]+\] "GET %s HTTP/1\.1" %d \d+ "-" "-"'


def run_as(argv0, args):
    """Runs the binary under the name argv0 (as a shell would from its
    directory); returns (rc, stdout, stderr)."""
    p = subprocess.run([argv0] + args, executable=BIN, cwd=REPO, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def connects(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def get(port, path):
    with Conn("127.0.0.1", port) as c:
        c.send(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        return c.read_response()


class Quick:
    """portico in a quick mode, its stdout and stderr in files."""

    def __init__(self, d, args):
        self.port = free_port()
        self.out_path, self.err_path = os.path.join(d, "out"), os.path.join(d, "err")
        self.out, self.err = open(self.out_path, "wb"), open(self.err_path, "wb")
        self.p = subprocess.Popen([BIN] + args + ["-l", str(self.port)], cwd=REPO,
                                  stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        self.up = wait_for(lambda: self.p.poll() is None and connects(self.port), 10)

    def stdout(self):
        return open(self.out_path, "rb").read().decode("utf-8", "replace")

    def stderr(self):
        return open(self.err_path, "rb").read().decode("utf-8", "replace")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.out.close()
        self.err.close()
        return self.p.returncode


def main():
    # --- help and version, long and short
    rc, out, err = portico(["--help"])
    is_((rc, err), (0, ""), "--help exits 0, nothing on stderr")
    like(out, r"\Ausage: portico ", "--help prints the usage on stdout")
    rc2, out2, _ = portico(["-h"])
    is_((rc2, out2), (rc, out), "-h prints the same")
    rc, out, err = portico(["--version"])
    is_(rc, 0, "--version exits 0")
    like(out, r"\Aportico \S+\nlibevent ", "--version prints the versions")
    is_(portico(["-V"])[1], out, "-V prints the same")

    # --- usage errors name "portico", not the path it was run by
    for args, msg in ((["-x"], "portico: unknown option -x"),
                      (["--frobnicate"], "portico: unknown option --frobnicate"),
                      (["-c"], "portico: option -c needs a value"),
                      (["extra"], 'portico: unexpected argument "extra"')):
        rc, out, err = run_as("./portico", args)
        is_(rc, 64, "%s: exit 64" % " ".join(args))
        is_(err.splitlines()[0] if err else "", msg, "%s: the message" % " ".join(args))
        unlike(err, r"\./portico:", "%s: no ./portico: prefix" % " ".join(args))

    # --- quick-mode values must be one clean value of a configuration line
    for args, msg in (
            (["-b", "127.0.0.1:9001 backup"], 'portico: -b "127.0.0.1:9001 backup" holds a blank'),
            (["-b", "127.0.0.1:9001\n[global]"], 'portico: -b "127.0.0.1:9001\n[global]" holds a control character'),
            (["-r", "/tmp\nuser = root"], "holds a control character"),
            (["-r", "/srv/a ;b"], "holds a blank followed by ';'"),
            (["-r", "."], None),
            (["-b", "127.0.0.1:9001", "-l", "80 81"], 'portico: -l "80 81" holds a blank'),
            (["-a", "log.txt"], "portico: -a needs -r or -b")):
        rc, out, err = portico(["-t"] + args)
        if msg is None:
            is_(rc, 0, "-t %s: valid" % " ".join(args))
            continue
        is_(rc, 64, "-t %s: exit 64" % " ".join(args).replace("\n", "\\n"))
        ok(msg in err, "-t %s: says %r" % (" ".join(args).replace("\n", "\\n"), msg))

    # --- -T shows the access log quick modes run with
    rc, out, err = portico(["-T", "-r", "."])
    like(out, r"(?m)^access_log = stdout$", "-r: access_log = stdout by default")
    rc, out, err = portico(["-T", "-r", ".", "-a", "off"])
    like(out, r"(?m)^access_log = off$", "-a off: no access log")
    rc, out, err = portico(["-T", "-b", "127.0.0.1:9", "-a", "-"])
    like(out, r"(?m)^access_log = stdout$", "-a -: standard output")

    d = tempfile.mkdtemp(prefix="portico-cmdline-")
    try:
        quick_modes(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)

    # --- one worker is "1 worker" (so exactly one, whatever PORTICO_MIN_WORKERS says)
    with Server("[global]\nworkers = 1\n[listen:a]\naddress = 127.0.0.1:{port}\n[route:r]\nreturn = 200 x\n",
                exact_workers=True) as srv:
        # The line may come just after the socket accepts: wait for it.
        wait_for(lambda: "started: " in srv.stderr(), 10)
        like(srv.stderr(), r"started: 1 worker, pid", "the start line says 1 worker")


def quick_modes(d):
    with open(os.path.join(d, "a.txt"), "w") as f:
        f.write("a\n")

    # --- -r prints each request on standard output, errors stay on stderr
    q = Quick(d, ["-r", d])
    ok(q.up, "portico -r DIR listens")
    r = get(q.port, "/a.txt")
    is_(r and r.status, 200, "GET /a.txt")
    r = get(q.port, "/missing")
    is_(r and r.status, 404, "GET /missing")
    ok(wait_for(lambda: "/missing" in q.stdout(), 5), "requests are printed on stdout")
    like(q.stdout(), COMBINED % ("/a\\.txt", 200), "in the combined format: the 200")
    like(q.stdout(), COMBINED % ("/missing", 404), "and the 404")
    unlike(q.stderr(), r"GET /a\.txt", "not on stderr")
    like(q.stderr(), r"started: \d+ workers?, pid", "the start line is on stderr")
    is_(q.stop(), 0, "exit 0 on SIGTERM")

    # --- -a FILE
    alog = os.path.join(d, "access.log")
    q = Quick(d, ["-r", d, "-a", alog])
    ok(q.up, "portico -r DIR -a FILE listens")
    get(q.port, "/a.txt")
    ok(wait_for(lambda: os.path.exists(alog) and "/a.txt" in open(alog).read(), 5), "-a FILE: the request is in FILE")
    is_(q.stdout(), "", "-a FILE: nothing on stdout")
    is_(q.stop(), 0, "exit 0")

    # --- -a off
    q = Quick(d, ["-r", d, "-a", "off"])
    ok(q.up, "portico -r DIR -a off listens")
    get(q.port, "/a.txt")
    is_(q.stop(), 0, "exit 0")
    is_(q.stdout(), "", "-a off: nothing on stdout, even after the final flush")

    # --- -b prints requests too
    backend = socket.socket()
    backend.bind(("127.0.0.1", 0))
    bport = backend.getsockname()[1]
    backend.close()  # nothing listens: the proxy answers 502
    q = Quick(d, ["-b", "127.0.0.1:%d" % bport])
    ok(q.up, "portico -b listens")
    r = get(q.port, "/app")
    is_(r and r.status, 502, "no backend: 502")
    ok(wait_for(lambda: "/app" in q.stdout(), 5), "-b: the request is printed on stdout")
    is_(q.stop(), 0, "exit 0")


run(main)
