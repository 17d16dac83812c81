#!/usr/bin/env python3
# Proxy: the request head a backend gets, where a client could make it lie:
# a client certificate subject longer than the header may carry (omitted
# and logged, never cut).  Certificates are made here with `openssl req`;
# no key is committed.
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import Backend, echoed_headers, request_bytes  # noqa: E402

TMP = tempfile.mkdtemp(prefix="portico-t-proxy-headers-")
OPENSSL = shutil.which("openssl")

# ---------------------------------------------------------------- client certificate subject

def sh(args):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=15)
    if p.returncode != 0:
        raise ServerError("%s failed:\n%s" % (" ".join(args), p.stdout.decode("utf-8", "replace")))
    return p.stdout.decode("utf-8", "replace")


def T(name):
    return os.path.join(TMP, name)


EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]


def make_leaf(name, subj, ext):
    sh([OPENSSL, "req", "-new", "-nodes"] + EC + ["-keyout", T(name + ".key"), "-out", T(name + ".csr"), "-subj", subj])
    with open(T(name + ".ext"), "w") as f:
        f.write(ext)
    sh([OPENSSL, "x509", "-req", "-in", T(name + ".csr"), "-CA", T("ca.pem"), "-CAkey", T("ca.key"),
        "-set_serial", str(abs(hash(name)) % 100000 + 2), "-days", "2", "-extfile", T(name + ".ext"),
        "-out", T(name + ".pem")])


def long_subject(last):
    """A DN whose RFC 2253 form is CN=admin at the end, after 60 OUs of 64
    bytes and one of len(last): 8 + 60 * 68 + len(last) + 4 bytes."""
    ous = "".join("/OU=u%02d%s" % (i, "x" * 61) for i in range(1, 61))
    return "/CN=admin" + ous + "/OU=" + last


def subject_rfc2253(name):
    out = sh([OPENSSL, "x509", "-in", T(name + ".pem"), "-noout", "-subject", "-nameopt", "RFC2253"])
    return out.strip().split("=", 1)[1] if out.startswith("subject=") else out.strip()


TLS_CONF = """\
[global]
workers = 1

[listen:mtls]
address = 127.0.0.1:{port}
tls_cert = %(t)s/server.pem
tls_key = %(t)s/server.key
tls_client_ca = %(t)s/ca.pem
tls_verify_client = on

[pool:a]
server = %(a)s

[route:any]
path = /
pool = a
"""


def test_cert_subject(a):
    if OPENSSL is None:
        skip("no openssl binary", 7)
        return
    sh([OPENSSL, "req", "-x509", "-new", "-nodes"] + EC + [
        "-keyout", T("ca.key"), "-out", T("ca.pem"), "-days", "2", "-subj", "/CN=Portico Headers Test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    make_leaf("server", "/CN=localhost", "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"
              "extendedKeyUsage=serverAuth\n")
    ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
    make_leaf("c4096", long_subject("abcd"), ext)
    make_leaf("c4097", long_subject("abcde"), ext)
    s4096, s4097 = subject_rfc2253("c4096"), subject_rfc2253("c4097")
    is_((len(s4096), s4096[-9:], len(s4097)), (4096, ",CN=admin", 4097),
        "openssl: the test subjects are 4096 and 4097 bytes, CN=admin last")

    def conn(srv, cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(T("ca.pem"))
        ctx.load_cert_chain(T(cert + ".pem"), T(cert + ".key"))
        c = srv.connect()
        c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
        return c

    def certs(r):
        return (echoed_headers(r, "X-Client-Cert-Subject"), len(echoed_headers(r, "X-Client-Cert-Fingerprint") or []))

    pat = r"conn \d+ from 127\.0\.0\.1: client certificate subject of 4097 bytes is longer than 4096: " \
          r"X-Client-Cert-Subject not sent"
    with Server(TLS_CONF % {"t": TMP, "a": a.addr}) as srv:
        c = conn(srv, "c4096")
        try:
            c.send(request_bytes("GET", "/echo"))
            r = c.read_response()
            is_(certs(r), ([s4096], 1), "a subject of 4096 bytes goes to the server whole, CN=admin included")
        finally:
            c.close()
        c = conn(srv, "c4097")
        try:
            got = []
            for _ in range(2):
                c.send(request_bytes("GET", "/echo"))
                got.append(certs(c.read_response()))
            is_(got, [([], 1)] * 2, "a subject of 4097 bytes: no X-Client-Cert-Subject (the fingerprint still goes), "
                "two requests")
        finally:
            c.close()
        ok(wait_for(lambda: len(re.findall(pat, srv.stderr())) >= 1, 3), "  logged, with the connection")
        is_(len(re.findall(pat, srv.stderr())), 1, "  once for the connection's two requests")
        c = conn(srv, "c4097")
        try:
            c.send(request_bytes("GET", "/echo", close=True))
            is_(certs(c.read_response()), ([], 1), "a new connection with it: no subject either")
        finally:
            c.close()
        ok(wait_for(lambda: len(re.findall(pat, srv.stderr())) == 2, 3), "  and logged again, once")


def main():
    a = Backend("a")
    try:
        test_cert_subject(a)
    finally:
        a.stop()
        if os.environ.get("PORTICO_LEAVE") == "1":
            diag("kept %s" % TMP)
        else:
            shutil.rmtree(TMP, ignore_errors=True)


run(main)
