#!/usr/bin/env python3
# Where a TLS session resumes.  Every HTTPS listener gives its sessions a
# session ID context of its own (a digest of the listener's name, its
# tls_verify_client and its tls_client_ca), and OpenSSL resumes a session,
# from a ticket or from the server's cache, only under the context it was
# made in.  So a session resumes on the listener that made it and on no
# other: not on a listener with the same settings under another name, and
# not on one that requires a client certificate, where the client makes a
# full handshake and, without a certificate, is refused ("certificate
# required" in TLS 1.3, a handshake_failure alert in TLS 1.2).  Processes
# sharing tls_ticket_key resume each other's sessions on listeners of the
# same name and settings only.  And, as CAVEATS in portico.ini(5) says, a
# session keeps its client certificate's verification across a SIGHUP that
# changed the tls_client_ca file (the file's name is in the context, not
# its contents).
#
# The sessions are saved and offered again with openssl s_client -sess_out
# and -sess_in, over TLS 1.2 and 1.3.  Certificates are made here with
# `openssl req` in a temp dir; no key is committed.
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

TMP = tempfile.mkdtemp(prefix="portico-t-resume-")
OPENSSL = shutil.which("openssl")
VERSIONS = ("-tls1_2", "-tls1_3")
# What s_client prints when a listener with tls_verify_client = on gets no
# certificate in a full handshake.
NO_CERT = {"-tls1_2": r"alert handshake failure", "-tls1_3": r"alert certificate required"}

CONF = """\
[global]
workers = 2

[listen:a]
address = 127.0.0.1:{port}
tls_cert = %(t)s/server.pem
tls_key = %(t)s/server.key

[listen:b]
address = 127.0.0.1:{port2}
tls_cert = %(t)s/server.pem
tls_key = %(t)s/server.key

[listen:on]
address = 127.0.0.1:%(p_on)d
tls_cert = %(t)s/server.pem
tls_key = %(t)s/server.key
tls_client_ca = %(t)s/ca.pem
tls_verify_client = on

[listen:opt]
address = 127.0.0.1:%(p_opt)d
tls_cert = %(t)s/server.pem
tls_key = %(t)s/server.key
tls_client_ca = %(t)s/ca.pem
tls_verify_client = optional

[route:ok]
path = /
return = 200 ok
"""

# A listener whose tls_client_ca file changes under it.
CA_SWAP = """\
[global]
workers = 1

[listen:on]
address = 127.0.0.1:{port}
tls_cert = %(t)s/server.pem
tls_key = %(t)s/server.key
tls_client_ca = %(t)s/swap-ca.pem
tls_verify_client = on

[route:ok]
path = /
return = 200 ok
"""

# Two processes with one ticket key; listener "a" in both, "b" in one.
SHARED = """\
[global]
workers = 1
tls_ticket_key = %(t)s/ticket.key

[listen:%(name)s]
address = 127.0.0.1:{port}
tls_cert = %(t)s/server.pem
tls_key = %(t)s/server.key

[route:ok]
path = /
return = 200 ok
"""


def T(name):
    return os.path.join(TMP, name)


def must(args):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if p.returncode != 0:
        raise ServerError("%s failed:\n%s" % (" ".join(args), p.stdout.decode("utf-8", "replace")))


def make_certs():
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    must([OPENSSL, "req", "-x509", "-nodes", "-days", "2"] + ec + [
        "-keyout", T("ca.key"), "-out", T("ca.pem"), "-subj", "/CN=Resume Test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"])
    must([OPENSSL, "req", "-x509", "-nodes", "-days", "2"] + ec + [
        "-keyout", T("server.key"), "-out", T("server.pem"), "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost"])
    must([OPENSSL, "req", "-new", "-nodes"] + ec + [
        "-keyout", T("client.key"), "-out", T("client.csr"), "-subj", "/CN=client"])
    with open(T("client.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    must([OPENSSL, "x509", "-req", "-in", T("client.csr"), "-CA", T("ca.pem"), "-CAkey", T("ca.key"),
          "-set_serial", "7", "-days", "2", "-extfile", T("client.ext"), "-out", T("client.pem")])
    must([OPENSSL, "req", "-x509", "-nodes", "-days", "2"] + ec + [
        "-keyout", T("ca2.key"), "-out", T("ca2.pem"), "-subj", "/CN=Another Test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"])
    must([OPENSSL, "rand", "-out", T("ticket.key"), "80"])


def s_client(port, args, cert=False):
    """One connection with one request: (New/Reused/None, served, output)."""
    a = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost", "-ign_eof"] + args
    if cert:
        a += ["-cert", T("client.pem"), "-key", T("client.key")]
    p = subprocess.run(a, input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=15)
    out = p.stdout.decode("utf-8", "replace")
    m = re.search(r"(?m)^(New|Reused), TLSv1\.[23], ", out)
    return m.group(1) if m else None, re.search(r"(?m)^HTTP/1\.1 200 OK\r?$", out) is not None, out


def session(port, flag, tag, cert=False, extra=()):
    """Makes a session on port and saves it; returns its file."""
    sess = T("sess-%s%s.pem" % (tag, flag))
    state, served, out = s_client(port, [flag, "-sess_out", sess] + list(extra), cert=cert)
    if (state, served) != ("New", True) or not os.path.exists(sess):
        diag(out[-1500:])
        raise ServerError("no session from port %d (%s, %s)" % (port, state, served))
    return sess


def offer(port, flag, sess, cert=False, extra=()):
    """Offers the saved session on port: (New/Reused, served, output)."""
    return s_client(port, [flag, "-sess_in", sess] + list(extra), cert=cert)


def main():
    if OPENSSL is None:
        skip("no openssl binary", 1)
        return
    make_certs()
    p_on, p_opt = free_port(), free_port()
    with Server(CONF % {"t": TMP, "p_on": p_on, "p_opt": p_opt}) as srv:
        ok(wait_for(lambda: all(connects(p) for p in (p_on, p_opt)), 5), "all four listeners accept")
        for flag in VERSIONS:
            across_listeners(srv, flag, p_on, p_opt)
        # TLS 1.2 without tickets: the session ID and the server's cache
        sess = session(srv.port, "-tls1_2", "cache", extra=["-no_ticket"])
        is_(offer(srv.port, "-tls1_2", sess, extra=["-no_ticket"])[:2], ("Reused", True),
            "-tls1_2 -no_ticket: a cached session resumes on the listener that made it")
        is_(offer(srv.port2, "-tls1_2", sess, extra=["-no_ticket"])[:2], ("New", True),
            "-tls1_2 -no_ticket: ... not on another listener with the same settings")
        state, served, out = offer(p_on, "-tls1_2", sess, extra=["-no_ticket"])
        ok((state, served, re.search(NO_CERT["-tls1_2"], out) is not None) == ("New", False, True),
           "-tls1_2 -no_ticket: ... and not on tls_verify_client = on, refused without a certificate (%s, %s)"
           % (state, "served" if served else "not served"))
    shared_ticket_key()
    client_ca_changed()
    if os.environ.get("PORTICO_LEAVE") == "1":
        diag("kept %s" % TMP)
    else:
        shutil.rmtree(TMP, ignore_errors=True)


def connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def across_listeners(srv, flag, p_on, p_opt):
    a, b = srv.port, srv.port2
    sess = session(a, flag, "a")
    # The positive control: the ticket is good where it was issued.
    is_(offer(a, flag, sess)[:2], ("Reused", True), "%s: a ticket from [listen:a] resumes on [listen:a]" % flag)
    is_(offer(b, flag, sess)[:2], ("New", True),
        "%s: ... not on [listen:b], same certificate and settings: a full handshake, served" % flag)
    # The case portico.ini(5) CAVEATS got wrong: no resumption without a certificate.
    state, served, out = offer(p_on, flag, sess)
    alert = re.search(NO_CERT[flag], out) is not None
    ok((state, served, alert) == ("New", False, True),
       "%s: ... not on tls_verify_client = on: a full handshake, refused for want of a certificate (%s, %s, %s)"
       % (flag, state, "served" if served else "not served", "\"%s\"" % NO_CERT[flag] if alert else "no alert"))
    is_(offer(p_on, flag, sess, cert=True)[:2], ("New", True),
        "%s: ... there with a client certificate: a full handshake that checks it, served" % flag)
    is_(offer(p_opt, flag, sess)[:2], ("New", True),
        "%s: ... not on tls_verify_client = optional either: a full handshake, served" % flag)

    # The other way: a session made with a client certificate stays on its listener.
    sess = session(p_on, flag, "on", cert=True)
    is_(offer(p_on, flag, sess, cert=True)[:2], ("Reused", True),
        "%s: a ticket from [listen:on], made with a client certificate, resumes there" % flag)
    is_(offer(p_on, flag, sess)[:2], ("Reused", True),
        "%s: ... also when the client offers no certificate now (the session holds the verified one)" % flag)
    is_(offer(a, flag, sess)[:2], ("New", True), "%s: ... not on [listen:a]" % flag)
    is_(offer(p_opt, flag, sess)[:2], ("New", True),
        "%s: ... not on [listen:opt], which has the same tls_client_ca" % flag)


def shared_ticket_key():
    conf = lambda name: SHARED % {"t": TMP, "name": name}  # noqa: E731
    with Server(conf("a")) as one, Server(conf("a")) as two, Server(conf("b")) as other:
        for flag in VERSIONS:
            sess = session(one.port, flag, "shared")
            is_(offer(two.port, flag, sess)[:2], ("Reused", True),
                "%s, tls_ticket_key: a ticket from one process resumes on another's listener of the same name" % flag)
            is_(offer(other.port, flag, sess)[:2], ("New", True),
                "%s, tls_ticket_key: ... not on a listener of another name, whose context differs" % flag)



def client_ca_changed():
    shutil.copy(T("ca.pem"), T("swap-ca.pem"))
    with Server(CA_SWAP % {"t": TMP}) as srv:
        sess = {flag: session(srv.port, flag, "swap", cert=True) for flag in VERSIONS}
        shutil.copy(T("ca2.pem"), T("swap-ca.pem"))  # the client's CA is no longer trusted
        srv.signal(signal.SIGHUP)
        ok(wait_for(lambda: "reload: configuration generation 2 in service" in srv.stderr(), 5),
           "SIGHUP: the new tls_client_ca is read")
        for flag in VERSIONS:
            state, served, out = s_client(srv.port, [flag], cert=True)
            is_((state, served), ("New", False), "%s: a full handshake with the client certificate is refused now" % flag)
            is_(offer(srv.port, flag, sess[flag])[:2], ("Reused", True),
                "%s: ... but a session made before the SIGHUP still resumes, and is served (CAVEATS)" % flag)


run(main)
