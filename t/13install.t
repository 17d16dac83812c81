#!/usr/bin/env python3
# make install and the systemd unit: installing into a DESTDIR gives the
# expected tree with paths for the target system; installing with a PREFIX
# of its own (here a temporary directory) gives a unit whose command lines
# are then run by hand as systemd would run them: ExecStartPre (-t), ExecStart
# with $NOTIFY_SOCKET (READY=1, MAINPID, STATUS), ExecReload (RELOADING=1,
# then READY=1; a broken file is refused and nothing is signalled), SIGTERM
# (STOPPING=1).  A second install keeps an edited configuration; make
# uninstall removes everything else.  The unit passes systemd-analyze
# verify and the logrotate file logrotate's debug run, when installed.
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TMP = tempfile.mkdtemp(prefix="portico-t-install-")


def make(*args):
    r = subprocess.run(["make", "-s", "-C", ROOT] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600)
    return r.returncode, r.stdout.decode()


def files_under(d):
    out = set()
    for base, dirs, files in os.walk(d):
        for f in files:
            out.add(os.path.relpath(os.path.join(base, f), d))
    return out


def test_destdir():
    dest = os.path.join(TMP, "dest")
    rc, out = make("install", "DESTDIR=" + dest, "PREFIX=/usr/local")
    is_(rc, 0, "make install DESTDIR=... PREFIX=/usr/local")
    got = files_under(dest)
    want = ["usr/local/sbin/portico", "usr/local/share/man/man8/portico.8",
            "usr/local/share/man/man5/portico.ini.5", "usr/local/lib/systemd/system/portico.service",
            "etc/portico/portico.ini", "etc/logrotate.d/portico",
            "usr/local/share/portico/www/index.html", "usr/local/share/portico/www/chat.html",
            "usr/local/share/doc/portico/examples/origin.ini", "usr/local/share/doc/portico/examples/edge.ini",
            "usr/local/share/doc/portico/examples/portico.service"]
    is_([w for w in want if w not in got], [], "the tree has the binary, man pages, unit, config, logrotate, "
        "demo site and examples")
    ok(os.access(os.path.join(dest, "usr/local/sbin/portico"), os.X_OK), "the binary is executable")
    unit = open(os.path.join(dest, "usr/local/lib/systemd/system/portico.service")).read()
    ok("ExecStart=/usr/local/sbin/portico -c /etc/portico/portico.ini" in unit and dest not in unit,
       "the unit names the target's paths, not DESTDIR's")
    conf = open(os.path.join(dest, "etc/portico/portico.ini")).read()
    ok(re.search(r"^root = /usr/local/share/portico/www$", conf, re.M) and
       re.search(r"^pid_file = /run/portico/portico.pid$", conf, re.M),
       "the configuration serves the installed demo site and writes the pid file systemd's RuntimeDirectory holds")
    analyze = shutil.which("systemd-analyze")
    if analyze:
        r = subprocess.run([analyze, "verify", "--man=no", os.path.join(dest, "usr/local/lib/systemd/system/portico.service")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        # It checks the command lines against the real file system, where
        # /usr/local/sbin/portico need not be: only that complaint is allowed.
        bad = [l for l in r.stdout.decode().splitlines() if l.strip() and "/usr/local/sbin/portico" not in l]
        is_(bad, [], "systemd-analyze verify finds nothing wrong with the unit")
    else:
        skip("systemd-analyze is not installed")
    lr = shutil.which("logrotate") or ("/usr/sbin/logrotate" if os.path.exists("/usr/sbin/logrotate") else None)
    if lr:
        r = subprocess.run([lr, "--debug", "--state", os.path.join(TMP, "lr.state"),
                            os.path.join(dest, "etc/logrotate.d/portico")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        is_(r.returncode, 0, "logrotate --debug accepts the logrotate file")
    else:
        skip("logrotate is not installed")


class Notify:
    """The service manager's end of $NOTIFY_SOCKET."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.path = path
        self.got = []

    def wait(self, key, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            for m in self.got:
                if key in m:
                    self.got.remove(m)
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(4096).decode()
            except socket.timeout:
                return None
            self.got.append(dict(l.split("=", 1) for l in d.split("\n") if "=" in l))


def http_get(port, path):
    with Conn("127.0.0.1", port) as c:
        c.send(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode())
        return c.read_response()


def unit_lines(unit):
    return {k: v for k, v in re.findall(r"^(Exec\w+)=(.*)$", unit, re.M)}


def test_service():
    pre = os.path.join(TMP, "p")
    rc, out = make("install", "PREFIX=%s/usr" % pre, "SYSCONFDIR=%s/etc" % pre, "RUNDIR=%s/run" % pre)
    is_(rc, 0, "make install with a PREFIX, SYSCONFDIR and RUNDIR of its own")
    unit = open(os.path.join(pre, "usr/lib/systemd/system/portico.service")).read()
    ex = unit_lines(unit)
    like(unit, r"(?m)^Type=notify$", "the unit is Type=notify")
    ok(all(k in ex for k in ("ExecStartPre", "ExecStart", "ExecReload")), "ExecStartPre, ExecStart and ExecReload")
    like(ex.get("ExecStartPre", ""), r" -t -c ", "ExecStartPre checks the file (-t)")
    like(ex.get("ExecReload", ""), r" -s reload -c ", "ExecReload is -s reload")
    like(unit, r"(?m)^LimitNOFILE=\d+$", "LimitNOFILE")
    like(unit, r"(?m)^NoNewPrivileges=yes$", "hardening options (NoNewPrivileges, ProtectSystem...)")
    conf_path = os.path.join(pre, "etc/portico/portico.ini")
    conf = open(conf_path).read()
    # Free ports instead of the example's 8081; the rest as installed.
    p4, p6 = free_port(), ipv6_free_port()
    conf = conf.replace("127.0.0.1:8081", "127.0.0.1:%d" % p4)
    conf = conf.replace("[::1]:8081", "[::1]:%d" % p6) if p6 else re.sub(r"(?ms)^\[listen:v6\].*?(?=^\[)", "", conf)
    with open(conf_path, "w") as f:
        f.write(conf)
    os.makedirs(os.path.join(pre, "run"), exist_ok=True)  # systemd's RuntimeDirectory=
    r = subprocess.run(ex["ExecStartPre"].split(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    is_(r.returncode, 0, "ExecStartPre: the installed configuration is valid")

    n = Notify(os.path.join(TMP, "notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=n.path)
    logf = open(os.path.join(TMP, "service.log"), "w")
    proc = subprocess.Popen(ex["ExecStart"].split(), env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        m = n.wait("READY")
        ok(m is not None and m.get("READY") == "1", "ExecStart: READY=1 on $NOTIFY_SOCKET")
        is_(m and m.get("MAINPID"), str(proc.pid), "... with MAINPID, the process systemd started")
        like(m and m.get("STATUS") or "", r"^serving: \d+ workers?", "... and a STATUS line")
        r = http_get(p4, "/")
        ok(r is not None and r.status == 200 and b"portico" in r.body, "the installed demo site is served")
        r = http_get(p4, "/chat.html")
        is_(r and r.status, 200, "... chat.html included")
        ok(os.path.exists(os.path.join(pre, "run/portico.pid")), "the pid file is in RUNDIR")

        r = subprocess.run(ex["ExecReload"].split(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        is_(r.returncode, 0, "ExecReload: -s reload sent SIGHUP")
        m1 = n.wait("RELOADING")
        ok(m1 is not None and m1.get("RELOADING") == "1" and m1.get("MONOTONIC_USEC", "").isdigit(),
           "RELOADING=1 with MONOTONIC_USEC")
        m2 = n.wait("READY")
        like(m2 and m2.get("STATUS") or "", r"generation 2 in service$", "then READY=1: generation 2 in service")

        with open(conf_path, "a") as f:
            f.write("\n[route:broken]\nnonsense = 1\n")
        r = subprocess.run(ex["ExecReload"].split(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        ok(r.returncode != 0 and "nonsense" in r.stdout.decode(), "ExecReload with a broken file: refused, saying why")
        is_(n.wait("RELOADING", 1), None, "... and the server was not signalled")
        with open(conf_path, "w") as f:
            f.write(conf)

        proc.send_signal(signal.SIGTERM)
        m = n.wait("STOPPING")
        ok(m is not None and m.get("STOPPING") == "1", "SIGTERM: STOPPING=1")
        is_(proc.wait(30), 0, "... and it exits 0")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        logf.close()

    # An abstract socket name, as systemd may pass ("@...").
    name = "portico-t-%d" % os.getpid()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(10)
    proc = subprocess.Popen(ex["ExecStart"].split(), env=dict(os.environ, NOTIFY_SOCKET="@" + name),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        d = s.recv(4096).decode()
        like(d, r"(?m)^READY=1$", "an abstract NOTIFY_SOCKET (@name) gets READY=1 too")
    except socket.timeout:
        ok(False, "an abstract NOTIFY_SOCKET (@name) gets READY=1 too")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        s.close()

    # Again: an edited configuration is kept.
    with open(conf_path, "a") as f:
        f.write("; edited by the admin\n")
    rc, out = make("install", "PREFIX=%s/usr" % pre, "SYSCONFDIR=%s/etc" % pre, "RUNDIR=%s/run" % pre)
    ok(rc == 0 and open(conf_path).read().endswith("; edited by the admin\n") and "kept " + conf_path in out,
       "a second make install keeps the edited configuration, and says so")
    rc, out = make("uninstall", "PREFIX=%s/usr" % pre, "SYSCONFDIR=%s/etc" % pre, "RUNDIR=%s/run" % pre)
    left = files_under(pre)
    is_((rc, sorted(left)), (0, ["etc/portico/portico.ini", "run/portico.pid"] if "run/portico.pid" in left
                             else ["etc/portico/portico.ini"]),
        "make uninstall removes everything but the configuration")


def main():
    try:
        test_destdir()
        test_service()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


run(main)
