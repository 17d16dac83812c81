#!/usr/bin/env python3
"""What a configuration needs of the machine, checked by -t as at start:
users and groups that exist, log files whose directory exists and can be
written, a tls_ticket_key the user can read; start-up refusing any of them
exits 78 (EX_CONFIG, which the shipped unit does not restart); what only
fails later (a log directory the user cannot create files in) is a warning,
printed by -t and logged at start."""

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

TMP = tempfile.mkdtemp(prefix="portico-t-runenv-")
os.chmod(TMP, 0o755)

HEAD = "[global]\nworkers = 1\n"
TAIL = "\n[listen:http]\naddress = 127.0.0.1:{port}\n[route:r]\nreturn = 200 x\n"


def write(name, text):
    p = os.path.join(TMP, name)
    with open(p, "w") as f:
        f.write(text.replace("{port}", str(free_port())))
    return p


def only_error(name, body, line, msg, tail=TAIL):
    """-t exits 1 with exactly this error; a start exits 78 with it too."""
    p = write(name + ".ini", HEAD + body + tail)
    rc, out, err = portico(["-t", "-c", p])
    errs = [l for l in err.splitlines() if l.startswith(p + ":")]
    is_((rc, errs), (1, ["%s:%d: %s" % (p, line, msg)]), "%s: -t exits 1 with the error" % name)
    rc, out, err = portico(["-c", p], timeout=10)
    is_(rc, 78, "%s: a start exits 78" % name)
    ok(("%s:%d: %s" % (p, line, msg)) in err, "%s: with the same error" % name)
    unlike(err, r"started:", "%s: nothing started" % name)


def main():
    # --- users and groups
    only_error("nosuchuser", "user = nosuchuser-portico\n", 3,
               '[global] user: no such user "nosuchuser-portico"')
    only_error("nosuchgroup", "user = nobody\ngroup = nosuchgroup-portico\n", 4,
               '[global] group: no such group "nosuchgroup-portico"')
    only_error("grouponly", "group = nogroup\n", 3, "[global] group: only goes with user")

    # --- log files
    only_error("nodir", "error_log = %s/missing/error.log\n" % TMP, 3,
               "[global] error_log: directory %s/missing: No such file or directory" % TMP)
    only_error("nodir-access", "access_log = %s/missing/access.log\n" % TMP, 3,
               "[global] access_log: directory %s/missing: No such file or directory" % TMP)
    os.mkdir(os.path.join(TMP, "adir"))
    only_error("isdir", "access_log = %s/adir\n" % TMP, 3, "[global] access_log: %s/adir is a directory" % TMP)
    write("afile", "")
    only_error("notdir", "error_log = %s/afile/error.log\n" % TMP, 3,
               "[global] error_log: %s/afile is not a directory" % TMP)

    p = write("good.ini", HEAD + "error_log = %s/logs-e.log\naccess_log = %s/logs-a.log\n" % (TMP, TMP) + TAIL)
    rc, out, err = portico(["-t", "-c", p])
    is_((rc, err), (0, "portico: configuration file %s is valid\n" % p), "log files in a directory that exists: valid")
    ok(not os.path.exists(os.path.join(TMP, "logs-e.log")), "-t creates no log file")

    if os.geteuid() != 0:
        os.chmod(os.path.join(TMP, "adir"), 0o555)
        only_error("readonly", "access_log = %s/adir/access.log\n" % TMP, 3,
                   "[global] access_log: %s/adir: Permission denied" % TMP)
        skip("not root: user = nobody needs root", 13)
        return
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrgid(nobody.pw_gid)

    # --- root with user = nobody: a log directory nobody cannot write is a warning
    ldir = os.path.join(TMP, "rootlogs")
    os.mkdir(ldir, 0o755)
    p = write("rotate.ini", HEAD + "user = nobody\naccess_log = %s/access.log\n" % ldir + TAIL)
    rc, out, err = portico(["-t", "-c", p])
    warn = ("portico: [warn] %s:4: [global] access_log: user nobody cannot create files in %s: once a rotation "
            "renames %s/access.log, SIGUSR1 cannot make a new one (give the directory to nobody)" % (p, ldir, ldir))
    is_((rc, err.splitlines()), (0, [warn, "portico: configuration file %s is valid" % p]),
        "-t: valid, with a warning about rotation")
    os.chown(ldir, nobody.pw_uid, nobody.pw_gid)
    rc, out, err = portico(["-t", "-c", p])
    is_((rc, err), (0, "portico: configuration file %s is valid\n" % p), "the directory given to nobody: no warning")
    os.chown(ldir, 0, 0)

    # The warning is logged at start too, in the error log.
    with Server(HEAD + "user = nobody\naccess_log = %s/access.log\n" % ldir + TAIL) as srv:
        like(srv.stderr(), r"\[warn\] %s:4: \[global\] access_log: user nobody cannot create files in %s"
             % (re.escape(srv.conf_path), re.escape(ldir)), "start-up logs the warning")
        like(srv.stderr(), r"running as user nobody, group %d" % nobody.pw_gid, "running as nobody, its group")

    # --- group = names the group privileges go to; the log files get it
    gdir = os.path.join(TMP, "glogs")
    os.mkdir(gdir, 0o755)
    os.chown(gdir, nobody.pw_uid, 0)
    with Server(HEAD + "user = nobody\ngroup = %s\naccess_log = %s/access.log\n" % (nogroup.gr_name, gdir)
                + TAIL) as srv:
        st = os.stat(os.path.join(gdir, "access.log"))
        is_((st.st_uid, st.st_gid), (nobody.pw_uid, nogroup.gr_gid), "the access log is nobody:%s" % nogroup.gr_name)
        like(srv.stderr(), r"running as user nobody, group %d" % nogroup.gr_gid, "running with the group")

    # --- a ticket key nobody cannot read: it is read after privileges go
    openssl = shutil.which("openssl")
    if openssl is None:
        skip("no openssl", 5)
        return
    key, cert = os.path.join(TMP, "k.pem"), os.path.join(TMP, "c.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    tkey = os.path.join(TMP, "ticket.key")
    with open(tkey, "wb") as f:
        f.write(os.urandom(80))
    os.chmod(tkey, 0o600)
    only_error("ticketkey", "user = nobody\ntls_ticket_key = %s\n" % tkey, 4,
               "[global] tls_ticket_key: %s is not readable by user nobody, who reads it at start-up" % tkey,
               tail=tls_tail(cert, key))
    os.chmod(tkey, 0o640)
    os.chown(tkey, 0, nobody.pw_gid)
    p = write("ticketok.ini", HEAD + "user = nobody\ntls_ticket_key = %s\n" % tkey + tls_tail(cert, key))
    rc, out, err = portico(["-t", "-c", p])
    is_(rc, 0, "a ticket key readable by nobody's group: valid")

def tls_tail(cert, key):
    return "\n[listen:https]\naddress = 127.0.0.1:{port}\ntls_cert = %s\ntls_key = %s\n[route:r]\nreturn = 200 x\n" % (
        cert, key)


try:
    run(main)
finally:
    shutil.rmtree(TMP, ignore_errors=True)
