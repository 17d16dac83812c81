#!/usr/bin/env python3
"""Log files: rotation by SIGUSR1, again and again, for the error log and the
access log; files handed to `user` when started as root, so a rotation
still works after privileges are dropped; a failed reopen is reported as
one and never as a success."""

import os
import re
import pwd
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1
error_log = {dir}/logs/error.log
access_log = {dir}/logs/access.log
{user}

[listen:http]
address = 127.0.0.1:{port}

[route:hello]
return = 200 hi
"""

REOPENED = "SIGUSR1: log files reopened"


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def server(user=None, dir_owner=None):
    srv = Server(CONF.replace("{user}", "user = %s" % user if user else ""), start=False)
    os.mkdir(srv.path("logs"), 0o755)
    if dir_owner is not None:
        # The way systemd's LogsDirectory= or a package sets it up.
        os.chmod(srv.dir, 0o755)
        os.chown(srv.path("logs"), dir_owner.pw_uid, dir_owner.pw_gid)
    elif user is not None:
        os.chmod(srv.dir, 0o755)
    return srv


def rotate(srv, rounds, tag):
    """Renames both logs away and sends SIGUSR1, `rounds` times; after each,
    new lines must land in new files and never in the renamed ones."""
    elog, alog = srv.path("logs/error.log"), srv.path("logs/access.log")
    for i in range(1, rounds + 1):
        os.rename(elog, "%s.%d" % (elog, i))
        os.rename(alog, "%s.%d" % (alog, i))
        srv.signal(signal.SIGUSR1)
        ok(wait_for(lambda: REOPENED in read(elog), 5),
           "%s rotation %d: a new error log, and the reopen said so in it" % (tag, i))
        r = srv.get("/round-%d" % i)
        is_(r and r.status, 200, "%s rotation %d: still serving" % (tag, i))
        ok(wait_for(lambda: "/round-%d " % i in read(alog), 5),
           "%s rotation %d: the request is in the new access log" % (tag, i))
        unlike(read("%s.%d" % (alog, i)), r"/round-%d " % i,
               "%s rotation %d: and not in the renamed one" % (tag, i))
        is_(read("%s.%d" % (elog, i)).count(REOPENED), 0 if i == 1 else 1,
            "%s rotation %d: the renamed error log holds only the lines written before it" % (tag, i))
    return elog, alog


def cut_short():
    """A request the client gives up on, and a response cut by the backend,
    each leave their access log line (nginx's 499 for no answer)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
    from backend import Backend
    b = Backend("a")
    try:
        conf = ("[global]\nworkers = 1\naccess_log = {dir}/access.log\n[listen:http]\naddress = 127.0.0.1:{port}\n"
                "[pool:p]\nserver = %s\nmax_fails = 0\nread_timeout = 30s\n[route:r]\npool = p\n" % b.addr)
        with Server(conf) as srv:
            alog = srv.path("access.log")
            c = srv.connect()
            c.send(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
            ok(wait_for(lambda: b.requests >= 1, 5), "the request reached the backend")
            c.close()
            ok(wait_for(lambda: '"GET /stall HTTP/1.1" 499 0 ' in read(alog), 5),
               "a client that closed before the answer: logged as 499")
            c = srv.connect()
            c.send(b"GET /midclose?size=100000&send=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
            c.read_until_close(timeout=5)
            ok(wait_for(lambda: re.search(r'"GET /midclose\?size=100000&send=1000 HTTP/1\.1" 200 \d+ ', read(alog)),
                        5), "a response the backend cut: logged with the status sent")
    finally:
        b.stop()


def main():
    cut_short()

    # --- three rotations in a row, both logs (the second used to go to the renamed file)
    with server() as srv:
        srv.start()
        r = srv.get("/before")
        is_(r and r.status, 200, "serving")
        elog, alog = rotate(srv, 3, "plain")
        is_(read(elog).count(REOPENED), 1, "the current error log holds the last reopen only")
        unlike(read(elog) + read(elog + ".3"), r"cannot reopen", "no reopen failed")

    if os.geteuid() != 0:
        skip("not root: user = nobody needs root", 16)
        return
    nobody = pwd.getpwnam("nobody")

    # --- started as root with user = nobody: the files are nobody's, old ones too
    with server(user="nobody", dir_owner=nobody) as srv:
        # Files left by an earlier run as root, which nobody could not reopen.
        for name in ("error.log", "access.log"):
            with open(srv.path("logs/" + name), "w") as f:
                f.write("")
            os.chmod(srv.path("logs/" + name), 0o640)
        srv.start()
        elog, alog = srv.path("logs/error.log"), srv.path("logs/access.log")
        for p in (elog, alog):
            st = os.stat(p)
            is_((st.st_uid, st.st_gid, st.st_mode & 0o777), (nobody.pw_uid, nobody.pw_gid, 0o640),
                "%s is nobody's, mode 0640" % os.path.basename(p))
        # "started:" comes once signals are handled, after privileges went.
        ok(wait_for(lambda: "running as user nobody" in read(elog) and "started:" in read(elog), 10),
           "privileges dropped, signals handled")
        srv.signal(signal.SIGUSR1)
        ok(wait_for(lambda: REOPENED in read(elog), 5), "SIGUSR1 without a rotation: reopened")
        unlike(read(elog), r"Permission denied", "without Permission denied")
        # Rotation: new files are created by nobody.
        with open(elog, "a"):
            pass
        os.rename(elog, elog + ".0")
        os.rename(alog, alog + ".0")
        srv.signal(signal.SIGUSR1)
        ok(wait_for(lambda: REOPENED in read(elog), 5), "a rotation as nobody: new error log")
        r = srv.get("/as-nobody")
        ok(wait_for(lambda: "/as-nobody " in read(alog), 5), "a rotation as nobody: new access log")
        for p in (elog, alog):
            st = os.stat(p)
            is_((st.st_uid, st.st_mode & 0o777), (nobody.pw_uid, 0o640),
                "the new %s is nobody's, mode 0640" % os.path.basename(p))

    # --- a directory nobody cannot write to: the reopen fails and says so
    with server(user="nobody") as srv:
        srv.start()
        elog, alog = srv.path("logs/error.log"), srv.path("logs/access.log")
        # "started:" comes once signals are handled, after privileges went.
        ok(wait_for(lambda: "running as user nobody" in read(elog) and "started:" in read(elog), 10),
           "privileges dropped, signals handled")
        os.rename(elog, elog + ".1")
        os.rename(alog, alog + ".1")
        srv.signal(signal.SIGUSR1)
        ok(wait_for(lambda: "cannot reopen access_log" in read(elog + ".1"), 10),
           "a reopen that fails is logged, in the file still in use")
        text = read(elog + ".1")
        like(text, r"\[error\] SIGUSR1: cannot reopen error_log %s: Permission denied; the old file stays in use"
             % re.escape(elog), "error_log: the reason, at level error")
        like(text, r"\[error\] SIGUSR1: cannot reopen access_log %s: Permission denied" % re.escape(alog),
             "access_log: the reason, at level error")
        unlike(text, REOPENED, "and no claim of success")
        ok(not os.path.exists(elog), "no new error log")
        r = srv.get("/still")
        is_(r and r.status, 200, "still serving")
        ok(wait_for(lambda: "/still " in read(alog + ".1"), 5), "lines go on to the old access log")

    # --- user = nobody given to a server not started as root: ignored, logged
    # (covered by the plain case above when the suite runs unprivileged)


run(main)
