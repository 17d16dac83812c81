#!/usr/bin/env python3
# More TLS: client certificates (tls_client_ca, tls_verify_client) and the
# X-Client-Cert-* headers a proxy route adds, TLS to backends (server ...
# tls, tls_ca, tls_verify; SNI, keep-alive, name and IP checks, health
# checks), HSTS, return variables, session ticket keys (shared by workers,
# from a file, rotated), certificates reloaded on SIGHUP, and an RSA and an
# ECDSA pair for the same names.  t/60tls.t covers versions, SNI, ALPN,
# basic resumption, plain HTTP to the TLS port, timeouts and tls_* errors.
#
# Certificates are made here with `openssl req` / `openssl x509` in a temp
# dir (a test CA, another CA, server and client certificates); no key is
# committed.  Tests marked "BUG:" fail against the current server; the
# comment at each gives the request, what we expect and what we get.
import hashlib
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
import backend as backend_mod  # noqa: E402
from backend import Backend, gen_bytes, echoed, echoed_headers, read_large_response  # noqa: E402

TMP = tempfile.mkdtemp(prefix="portico-t-tls-more-")
OPENSSL = shutil.which("openssl")
HSTS = "max-age=31536000; includeSubDomains"


def sh(args, stdin=b"", timeout=15):
    p = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def must(args):
    rc, out = sh(args)
    if rc != 0:
        raise ServerError("%s failed:\n%s" % (" ".join(args), out))
    return out


def T(name):
    return os.path.join(TMP, name)


# --------------------------------------------------------------------------
# certificates

def newkey(kind):
    if kind == "rsa":
        return ["-newkey", "rsa:2048"]
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]


def make_ca(name, subj):
    must([OPENSSL, "req", "-x509", "-new", "-nodes"] + newkey("ec") + [
        "-keyout", T(name + ".key"), "-out", T(name + ".pem"), "-days", "2", "-subj", subj,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])


_serial = [100]


def make_leaf(name, subj, ca, ext, kind="ec"):
    must([OPENSSL, "req", "-new", "-nodes", "-utf8"] + newkey(kind) + [
        "-keyout", T(name + ".key"), "-out", T(name + ".csr"), "-subj", subj])
    with open(T(name + ".ext"), "w") as f:
        f.write(ext)
    _serial[0] += 1
    must([OPENSSL, "x509", "-req", "-in", T(name + ".csr"), "-CA", T(ca + ".pem"), "-CAkey", T(ca + ".key"),
          "-set_serial", str(_serial[0]), "-days", "2", "-extfile", T(name + ".ext"), "-out", T(name + ".pem")])


SERVER_EXT = "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
CLIENT_EXT = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"


def make_certs():
    make_ca("ca", "/CN=Portico Test CA")
    make_ca("ca2", "/CN=Other Test CA")
    make_leaf("server", "/CN=localhost", "ca", SERVER_EXT)            # ECDSA P-256, DNS:localhost only
    make_leaf("server-rsa", "/CN=localhost", "ca", SERVER_EXT, "rsa")  # RSA 2048, the same names
    make_leaf("server-new", "/CN=localhost", "ca", SERVER_EXT)        # another key, for the reload
    make_leaf("client", "/O=Acme/CN=client one", "ca", CLIENT_EXT)
    make_leaf("client2", "/O=Acme, Inc./CN=client two", "ca", CLIENT_EXT)
    make_leaf("evil", "/O=Acme/CN=J\u00fcrgen\r\nX-Injected: 1", "ca", CLIENT_EXT)
    make_leaf("intruder", "/O=Acme/CN=client one", "ca2", CLIENT_EXT)  # same subject, another CA


def der(name):
    return ssl.PEM_cert_to_DER_cert(open(T(name + ".pem")).read())


def fingerprint(name):
    """sha256 of the DER certificate as openssl prints it, lower case without colons."""
    out = must([OPENSSL, "x509", "-in", T(name + ".pem"), "-noout", "-fingerprint", "-sha256"])
    m = re.search(r"Fingerprint=([0-9A-F:]+)", out)
    return m.group(1).replace(":", "").lower()


def subject_rfc2253(name):
    out = must([OPENSSL, "x509", "-in", T(name + ".pem"), "-noout", "-subject", "-nameopt", "RFC2253"])
    return out.strip().split("=", 1)[1].strip() if out.startswith("subject=") else out.strip()


# --------------------------------------------------------------------------
# clients

def client_ctx(cert=None, minv=None, maxv=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(T("ca.pem"))
    if cert:
        ctx.load_cert_chain(T(cert + ".pem"), T(cert + ".key"))
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def tls(srv, port, sni="localhost", **kw):
    """A Conn over a finished TLS handshake (raises ssl.SSLError if it fails)."""
    c = srv.connect(port)
    c.sock = client_ctx(**kw).wrap_socket(c.sock, server_hostname=sni)
    return c


def get(path, host="localhost", headers=(), close=True, method="GET", body=None):
    req = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, host)
    for h in headers:
        req += h + "\r\n"
    if body is not None:
        req += "Content-Length: %d\r\n" % len(body)
    if close:
        req += "Connection: close\r\n"
    return (req + "\r\n").encode("latin-1") + (body or b"")


def attempt(srv, port, path="/", headers=(), refused=False, **kw):
    """Handshake, one request, its response: (Response, None), or (None, why)
    when the handshake or the request fails.  With TLS 1.3 a refused client
    certificate shows after the client's handshake, as an alert; refused=True
    waits up to 0.5s for it before sending the request (a request sent at
    once meets a closed socket, and Python's SSL object then reports EOF
    instead of the alert that did arrive)."""
    c = None
    try:
        c = tls(srv, port, **kw)
        if refused:
            c.sock.settimeout(0.5)
            try:
                d = c.sock.recv(65536)
                c.buf += d
                if not d:
                    return None, "closed after the handshake, no alert"
            except socket.timeout:
                pass
        c.send(get(path, headers=headers))
        r = c.read_response(timeout=5)
        return (r, None) if r is not None else (None, "closed without an answer")
    except (ssl.SSLError, OSError, ServerError) as e:
        return None, "%s: %s" % (type(e).__name__, e)
    finally:
        if c is not None:
            c.close()


def s_client(port, args, stdin=b"", sni="localhost"):
    a = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port]
    if sni:
        a += ["-servername", sni]
    return sh(a + args, stdin=stdin, timeout=15)


def session_state(out):
    """"New" or "Reused" from s_client's output, or None."""
    m = re.search(r"(?m)^(New|Reused), TLSv1\.[23], ", out)
    return m.group(1) if m else None


def wait_log(srv, pattern, count=1, timeout=5.0):
    """True once pattern occurs count times in srv's stderr."""
    return bool(wait_for(lambda: len(re.findall(pattern, srv.stderr(), re.M)) >= count, timeout, 0.05))


def wait_listening(ports, timeout=5.0):
    def up():
        for p in ports:
            try:
                socket.create_connection(("127.0.0.1", p), timeout=1).close()
            except OSError:
                return False
        return True
    return wait_for(up, timeout, 0.02)


def pool_state(srv, pool):
    try:
        d = srv.status_json()
        return [s["state"] for s in d["pools"][pool]["servers"]]
    except (ServerError, KeyError, ValueError, TypeError, OSError) as e:
        return "no state: %s" % e


# --------------------------------------------------------------------------
# a backend that speaks TLS: backend.Backend's behaviours over ssl sockets,
# with the SNI each handshake asked for

class _TLSServer(backend_mod._Server):
    def get_request(self):
        sock, addr = super().get_request()
        return self.backend.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def finish_request(self, request, client_address):
        try:
            request.settimeout(10)
            request.do_handshake()
        except (ssl.SSLError, OSError) as e:
            with self.backend._lock:
                self.backend.hs_failed.append(str(e))
            return
        with self.backend._lock:
            self.backend.handshakes += 1
            self.backend.resumed += int(request.session_reused)
            cert = request.getpeercert()
            if cert:
                self.backend.client_subjects.append(dict(x[0] for x in cert["subject"]).get("commonName"))
        super().finish_request(request, client_address)


class TLSBackend(Backend):
    def __init__(self, name, cert="server"):
        self.snis = []
        self.hs_failed = []
        self.handshakes = 0
        self.resumed = 0
        self.client_subjects = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(T(cert + ".pem"), T(cert + ".key"))

        def on_sni(sslobj, name, ctx):
            with self._lock:
                self.snis.append(name)
        self.ctx.sni_callback = on_sni
        super().__init__(name)

    def start(self):
        if self._srv is not None:
            return self
        self._stopping = threading.Event()
        srv = _TLSServer((self.host, self.port), backend_mod._Handler, bind_and_activate=False)
        srv.backend = self
        srv.server_bind()
        srv.server_activate()
        self.port = srv.server_address[1]
        self._srv = srv
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="tls-backend-" + self.name, daemon=True)
        self._thread.start()
        return self


# --------------------------------------------------------------------------
# configurations

MAIN = """\
[global]
workers = 2
max_body_size = 8m
keepalive_timeout = 10s

[listen:plain]
address = 127.0.0.1:{port}

[listen:on]
address = 127.0.0.1:{port2}
tls_cert = %(t)s/server.pem
tls_key = %(t)s/server.key
tls_client_ca = %(t)s/ca.pem
tls_verify_client = on

[listen:opt]
address = 127.0.0.1:%(p3)d
tls_cert = %(t)s/server.pem
tls_key = %(t)s/server.key
tls_client_ca = %(t)s/ca.pem
tls_verify_client = optional

[listen:off]
address = 127.0.0.1:%(p4)d
tls_cert = %(t)s/server.pem
tls_key = %(t)s/server.key
hsts = %(hsts)s

[pool:plain]
server = %(plain)s

[pool:good]
server = localhost:%(b1)d tls
tls_ca = %(t)s/ca.pem

[pool:resume]
server = localhost:%(b1)d tls
tls_ca = %(t)s/ca.pem
keepalive = 0

[pool:mtls]
server = localhost:%(b3)d tls
tls_ca = %(t)s/ca.pem
tls_cert = %(t)s/client.pem
tls_key = %(t)s/client.key
retries = 0

[pool:nomtls]
server = localhost:%(b3)d tls
tls_ca = %(t)s/ca.pem
retries = 0

[route:mtls]
path = /mtls/
pool = mtls
strip_prefix = yes

[route:nomtls]
path = /nomtls/
pool = nomtls
strip_prefix = yes

[pool:wrongca]
server = localhost:%(b1)d tls
tls_ca = %(t)s/ca2.pem
retries = 0

[pool:ip]
server = 127.0.0.1:%(b1)d tls
tls_ca = %(t)s/ca.pem
retries = 0

[pool:ipoff]
server = 127.0.0.1:%(b1)d tls
tls_verify = off

[pool:hc]
server = localhost:%(b2)d tls
tls_ca = %(t)s/ca.pem
health_check = GET /hc every 1s

[pool:hcbad]
server = localhost:%(b2)d tls
tls_ca = %(t)s/ca2.pem
health_check = GET /hcbad every 1s
fall = 1

[route:status]
path = /status
status = json

[route:echo]
path = /echo/
pool = plain
strip_prefix = yes

[route:good]
path = /good/
pool = good
strip_prefix = yes

[route:resume]
path = /resume/
pool = resume
strip_prefix = yes

[route:wrongca]
path = /wrongca/
pool = wrongca
strip_prefix = yes

[route:ip]
path = /ip/
pool = ip
strip_prefix = yes

[route:ipoff]
path = /ipoff/
pool = ipoff
strip_prefix = yes

[route:vars]
path = /vars/
return = 200 $scheme|$host|${host}x|$uri|$args|$request_uri

[route:dollar]
path = /dollar
return = 200 $$5, $${host} and $$$host

[route:redirect]
listen = plain
path = /
return = 301 https://$host$request_uri

[route:ok]
listen = on
listen = opt
listen = off
path = /
return = 200 ok
"""

SIMPLE = """\
[global]
workers = %(workers)d
%(extra)s
[listen:https]
address = 127.0.0.1:{port}
tls_cert = %(cert)s
tls_key = %(key)s

[route:ok]
path = /
return = 200 ok
"""

DUAL = """\
[global]
workers = 1

[listen:ec_first]
address = 127.0.0.1:{port}
tls_cert = %(t)s/server.pem
tls_key = %(t)s/server.key
tls_cert = %(t)s/server-rsa.pem
tls_key = %(t)s/server-rsa.key

[listen:rsa_first]
address = 127.0.0.1:{port2}
tls_cert = %(t)s/server-rsa.pem
tls_key = %(t)s/server-rsa.key
tls_cert = %(t)s/server.pem
tls_key = %(t)s/server.key

[route:ok]
path = /
return = 200 ok
"""


def simple(workers=1, extra="", cert=None, key=None):
    return SIMPLE % {"workers": workers, "extra": extra, "cert": cert or T("server.pem"),
                     "key": key or T("server.key")}


# --------------------------------------------------------------------------

def main():
    if OPENSSL is None:
        skip("no openssl binary", 1)
        return
    t0 = time.monotonic()
    make_certs()
    diag("certificates made in %.1fs" % (time.monotonic() - t0))
    plain = Backend("p")
    b1 = TLSBackend("b1")
    b2 = TLSBackend("b2")
    b3 = TLSBackend("b3")  # asks for a client certificate of ca.pem
    b3.ctx.verify_mode = ssl.CERT_REQUIRED
    b3.ctx.load_verify_locations(T("ca.pem"))
    try:
        p3, p4 = free_port(), free_port()
        conf = MAIN % {"t": TMP, "p3": p3, "p4": p4, "hsts": HSTS, "plain": plain.addr,
                       "b1": b1.port, "b2": b2.port, "b3": b3.port}
        with Server(conf) as srv:
            ok(wait_listening([p3, p4]), "main server: all four listeners accept")
            ok(wait_for(lambda: pool_state(srv, "good") == ["up"], 5), "pool good: localhost resolved, up")
            client_certs(srv, srv.port2, p3, p4, plain)
            resumption_across_listeners(srv, srv.port2, p4)
            backend_tls(srv, p4, b1)
            backend_client_cert(srv, b3)
            hsts(srv, p4, p3, plain)
            return_vars(srv, p4)
            health(srv, b2)
        tickets()
        reload_certs()
        dual_pairs()
        config_errors()
    finally:
        for b in (plain, b1, b2, b3):
            b.stop()
        if os.environ.get("PORTICO_LEAVE") == "1":
            diag("kept %s" % TMP)
        else:
            shutil.rmtree(TMP, ignore_errors=True)


# ---- 1. client certificates

# The alerts: certificate_required (TLS 1.3) or handshake_failure (TLS 1.2)
# without a certificate, unknown_ca for one from another CA.
NO_CERT = {"TLS 1.3": r"TLSV13_ALERT_CERTIFICATE_REQUIRED", "TLS 1.2": r"SSLV3_ALERT_HANDSHAKE_FAILURE"}
ALERT_BAD_CERT = r"TLSV1_ALERT_UNKNOWN_CA"


def client_certs(srv, on, opt, off, plain):
    fp, subj = fingerprint("client"), subject_rfc2253("client")
    is_(subj, "CN=client one,O=Acme", "openssl's RFC 2253 subject of the client certificate (reversed order)")

    # tls_verify_client = on
    for maxv, ver in ((ssl.TLSVersion.TLSv1_3, "TLS 1.3"), (ssl.TLSVersion.TLSv1_2, "TLS 1.2")):
        r, err = attempt(srv, on, "/", cert="client", maxv=maxv)
        is_((r.status, r.body) if r else err, (200, b"ok"), "verify on, %s: a client certificate from the CA is accepted" % ver)
        r, err = attempt(srv, on, "/", refused=True, maxv=maxv)
        ok(r is None and re.search(NO_CERT[ver], err or ""), "verify on, %s: no client certificate: refused (%s)" % (ver, err or r))
        r, err = attempt(srv, on, "/", refused=True, cert="intruder", maxv=maxv)
        ok(r is None and re.search(ALERT_BAD_CERT, err or ""), "verify on, %s: a certificate from another CA: refused (%s)" % (ver, err or r))

    # openssl s_client: the CertificateRequest names the CA; the verdicts again
    rc, out = s_client(on, ["-tls1_2", "-ign_eof"], stdin=get("/"))
    like(out, r"(?m)^Acceptable client certificate CA names\n/?CN ?= ?Portico Test CA$",
         "verify on: the CertificateRequest names tls_client_ca's CA")
    ok(not re.search(r"(?m)^HTTP/1\.1 ", out), "s_client without -cert: no HTTP answer")
    rc, out = s_client(on, ["-tls1_3", "-ign_eof", "-cert", T("client.pem"), "-key", T("client.key")], stdin=get("/"))
    ok("HTTP/1.1 200 OK" in out, "s_client -cert client.pem: 200")
    rc, out = s_client(on, ["-tls1_3", "-ign_eof", "-cert", T("intruder.pem"), "-key", T("intruder.key")], stdin=get("/"))
    ok(not re.search(r"(?m)^HTTP/1\.1 ", out) and re.search(r"alert unknown ca|alert bad certificate", out),
       "s_client -cert from another CA: alert, no HTTP answer")

    # tls_verify_client = optional
    r, err = attempt(srv, opt, "/")
    is_((r.status, r.body) if r else err, (200, b"ok"), "verify optional: no client certificate is accepted")
    r, err = attempt(srv, opt, "/", cert="client")
    is_((r.status, r.body) if r else err, (200, b"ok"), "verify optional: a certificate from the CA is accepted")
    for maxv, ver in ((ssl.TLSVersion.TLSv1_3, "TLS 1.3"), (ssl.TLSVersion.TLSv1_2, "TLS 1.2")):
        r, err = attempt(srv, opt, "/", refused=True, cert="intruder", maxv=maxv)
        ok(r is None and re.search(ALERT_BAD_CERT, err or ""), "verify optional, %s: a certificate from another CA is refused (%s)" % (ver, err or r))

    # The headers a proxy route adds, and the forged ones it drops.
    forged = ("X-Client-Cert-Subject: CN=admin", "x-client-cert-fingerprint: 00ff", "X-CLIENT-CERT-SUBJECT: O=Evil")

    def sent(port, cert, tls_on=True):
        if tls_on:
            r, err = attempt(srv, port, "/echo/x", headers=forged, cert=cert)
        else:
            c = srv.connect(port)
            c.send(get("/echo/x", headers=forged))
            r, err = c.read_response(), None
            c.close()
        if r is None or r.status != 200:
            return "no answer: %s" % (err or r)
        return (echoed_headers(r, "X-Client-Cert-Subject"), echoed_headers(r, "X-Client-Cert-Fingerprint"))

    is_(sent(on, "client"), ([subj], [fp]), "verify on: the backend gets the subject (RFC 2253) and the sha256 fingerprint, forged ones dropped")
    is_(sent(opt, "client"), ([subj], [fp]), "verify optional, with a certificate: the same headers")
    is_(sent(opt, "client2"), (["CN=client two,O=Acme\\, Inc."], [fingerprint("client2")]),
        "a comma in the subject is escaped as RFC 2253 says (O=Acme\\, Inc.)")
    is_(subject_rfc2253("client2"), "CN=client two,O=Acme\\, Inc.", "openssl agrees on that subject")
    is_(sent(opt, None), ([], []), "verify optional, no certificate: no X-Client-Cert-* header reaches the backend")
    is_(sent(off, "client"), ([], []), "verify off (a certificate offered, never asked for): no X-Client-Cert-* header")
    is_(sent(srv.port, None, tls_on=False), ([], []), "plain listener: the forged X-Client-Cert-* headers are dropped")

    # Control bytes and UTF-8 in a subject reach the header escaped (RFC 2253), never raw.
    evil = subject_rfc2253("evil")
    r, err = attempt(srv, on, "/echo/x", cert="evil")
    got = echoed_headers(r, "X-Client-Cert-Subject") if r else err
    is_(got, [evil], "a subject with CR LF and UTF-8: escaped as openssl prints it (%s)" % evil)
    ok(r is not None and all(0x20 <= ord(ch) < 0x7f for ch in "".join(got or [])) and not echoed_headers(r, "X-Injected"),
       "... no control or non-ASCII byte in the header, no header injected")

    # A resumed session still carries the client's certificate.
    for maxv, ver in ((ssl.TLSVersion.TLSv1_2, "TLS 1.2"), (ssl.TLSVersion.TLSv1_3, "TLS 1.3")):
        ctx = client_ctx(cert="client", maxv=maxv)
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", on), timeout=5), server_hostname="localhost")
        s.sendall(get("/"))
        while s.recv(65536):
            pass
        sess = s.session
        s.close()
        c = srv.connect(on)
        c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost", session=sess)
        reused = c.sock.session_reused
        c.send(get("/echo/x"))
        r = c.read_response()
        c.close()
        is_((reused, echoed_headers(r, "X-Client-Cert-Subject"), echoed_headers(r, "X-Client-Cert-Fingerprint")),
            (True, [subj], [fp]), "verify on, %s session resumed: the headers still name the client's certificate" % ver)


def resumption_across_listeners(srv, on, off):
    # A session made where no client certificate is asked for must not
    # resume where one is required: the client would be served without
    # ever showing a certificate (found against 7a12a0b, where every
    # listener had the session ID context "portico" and the process-wide
    # ticket keys).  Request: s_client -sess_out on the off listener, then
    # -sess_in on the on listener, no -cert.  Expected: no resumption, and
    # the handshake fails for want of a certificate.
    for flag in ("-tls1_3", "-tls1_2"):
        sess = T("cross%s.pem" % flag)
        rc, out1 = s_client(off, [flag, "-ign_eof", "-sess_out", sess], stdin=get("/"))
        rc, out2 = s_client(on, [flag, "-ign_eof", "-sess_in", sess], stdin=get("/"))
        served = re.search(r"(?m)^HTTP/1\.1 200 OK\r?$", out2) is not None
        ok(session_state(out1) == "New" and session_state(out2) != "Reused" and not served,
           "%s session from the verify-off listener does not get past tls_verify_client = on (got %s, %s)" % (
               flag, session_state(out2), "served" if served else "not served"))


# ---- 2. TLS to backends

def backend_client_cert(srv, b3):
    """tls_cert and tls_key in a pool: the client certificate a server that
    asks for one gets; without them, its handshake fails: 502."""
    r = srv.get("/mtls/echo")
    is_((r.status if r else None, (echoed(r) or {}).get("backend"), b3.client_subjects[-1:]),
        (200, "b3", ["client one"]),
        "tls_cert, tls_key: a server that asks for a client certificate gets client.pem's: 200")
    r = srv.get("/nomtls/echo")
    is_(r.status if r else None, 502, "... and without them its handshake fails: 502")
    for i, (keys, pat) in enumerate((
            ("tls_cert = %s" % T("client.pem"), r"\[pool:p\] tls_cert: give tls_cert and tls_key together"),
            ("tls_cert = %s\ntls_key = %s" % (T("client.pem"), T("client2.key")),
             r"\[pool:p\] tls_cert: \S+client\.pem or \S+client2\.key: .*key values mismatch"))):
        path = T("mtls-bad%d.ini" % i)
        with open(path, "w") as f:
            f.write("[listen:a]\naddress = 127.0.0.1:1\n[pool:p]\nserver = localhost:1 tls\n%s\n"
                    "[route:r]\npool = p\n" % keys)
        rc, out, err = portico(["-t", "-c", path])
        ok(rc == 1 and re.search(re.escape(path) + r":\d+: " + pat, out + err),
           "portico -t refuses a pool's %s (%r)" % ("lone tls_cert" if i == 0 else "key of another certificate",
                                                     (out + err)[-160:]))


def backend_tls(srv, off, b1):
    b1.reset_counters()
    with b1._lock:
        del b1.snis[:]
        b1.handshakes = 0
    c = srv.connect()
    rs = []
    for i in range(5):
        c.send(get("/good/echo?i=%d" % i, close=False))
        rs.append(c.read_response(timeout=10))
    c.close()
    d = echoed(rs[0]) or {}
    is_((rs[0].status if rs[0] else None, d.get("backend"), d.get("target")), (200, "b1", "/echo?i=0"),
        "server = localhost:PORT tls, tls_ca: 200 with the backend's answer")
    is_([r.status if r else None for r in rs], [200] * 5, "5 requests on one client connection: all 200")
    is_((b1.requests, b1.connections, b1.handshakes), (5, 1, 1),
        "keep-alive over TLS: 5 requests, 1 backend connection, 1 handshake")
    is_(b1.snis, ["localhost"], "the backend's handshake asked for SNI localhost")

    # keepalive = 0: a TLS connection per request, each resuming the
    # session the last one brought (one client connection: one worker).
    with b1._lock:
        b1.handshakes = b1.resumed = 0
    c = srv.connect()
    rs = []
    for i in range(4):
        c.send(get("/resume/echo?i=%d" % i, close=False))
        rs.append(c.read_response(timeout=10))
    c.close()
    is_(([r.status if r else None for r in rs], b1.handshakes, b1.resumed), ([200] * 4, 4, 3),
        "keepalive = 0, 4 requests: 4 TLS connections to the server, the last 3 resumed")

    r = srv.get("/wrongca/echo")
    is_(r.status if r else None, 502, "tls_ca of another CA: 502")
    ok(wait_log(srv, r"proxy \[pool:wrongca\] server localhost:\d+: TLS handshake failed: certificate: "),
       "tls_ca of another CA: logged \"TLS handshake failed: certificate: ...\"")
    like(srv.stderr(), r"\[pool:wrongca\] server localhost:\d+: TLS handshake failed: certificate: unable to get local issuer certificate",
         "the log says why: unable to get local issuer certificate")

    with b1._lock:
        del b1.snis[:]
    r = srv.get("/ip/echo")
    is_(r.status if r else None, 502, "server = 127.0.0.1:PORT tls, certificate without an IP SAN: 502")
    ok(wait_log(srv, r"\[pool:ip\] server 127\.0\.0\.1:\d+: TLS handshake failed: certificate: IP address mismatch"),
       "logged: certificate: IP address mismatch")
    r = srv.get("/ipoff/echo")
    is_((r.status, (echoed(r) or {}).get("backend")) if r else None, (200, "b1"), "the same with tls_verify = off: 200")
    is_(b1.snis, [None, None], "no SNI for an IP address (RFC 6066)")

    # A backend that closes its idle TLS connection: the next request takes a new one.
    def close_soon(h, req):
        h.respond(req, 200, "bye")
        time.sleep(0.2)
        return False   # TCP close, no close_notify, while portico holds it idle
    b1.on("/idleclose", close_soon)
    b1.reset_counters()
    c = srv.connect()
    c.send(get("/good/idleclose", close=False))
    r1 = c.read_response(timeout=10)
    time.sleep(0.6)
    errs = srv.stderr().count("[pool:good]")
    accepted = b1.connections   # connection ids restart at reset: count accepts instead
    c.send(get("/good/echo", close=False))
    r2 = c.read_response(timeout=10)
    c.close()
    is_((r1.status if r1 else None, r2.status if r2 else None, len(b1.log), b1.connections - accepted),
        (200, 200, 2, 1),
        "a TLS backend closed the idle connection: the next request goes on a new one")
    is_(srv.stderr().count("[pool:good]"), errs, "... with no error logged for it")

    # Close-delimited body from a TLS backend (it ends without close_notify).
    r = srv.get("/good/close?size=100000")
    is_((r.status, r.body == gen_bytes(100000)) if r else None, (200, True), "close-delimited 100000 bytes from a TLS backend: byte-exact")

    # A slow client: the proxy stops reading the TLS backend, then resumes.
    n = 4 << 20
    c = srv.connect(rcvbuf=16384)
    c.send(get("/good/download?size=%d&framing=cl&seed=9" % n))
    time.sleep(1.0)
    try:
        st, hs, data, _ = read_large_response(c, timeout=20)
    except (OSError, ValueError, ServerError) as e:
        st, data = "failed: %s" % e, b""
    c.close()
    is_((st, len(data), hashlib.sha256(data).hexdigest()), (200, n, hashlib.sha256(gen_bytes(n, 9)).hexdigest()),
        "4 MiB from a TLS backend to a client that starts reading after 1s: byte-exact")

    # 5 MiB up, 5 MiB down: TLS on both sides.
    body = gen_bytes(5 << 20, 11)
    c = tls(srv, off)
    c.send(get("/good/sha256", body=body, close=False, method="POST"))
    r = c.read_response(timeout=30)
    d = (echoed(r) or {}) if r else {}
    is_((r.status if r else None, d.get("len"), d.get("sha256")), (200, len(body), hashlib.sha256(body).hexdigest()),
        "5 MiB POST, TLS client to TLS backend: byte-exact at the backend")
    n = 5 << 20
    c.send(get("/good/download?size=%d&framing=chunked&seed=5" % n))
    r = c.read_response(timeout=30)
    c.close()
    is_((r.status, len(r.body), hashlib.sha256(r.body).hexdigest()) if r else None,
        (200, n, hashlib.sha256(gen_bytes(n, 5)).hexdigest()), "5 MiB chunked download from a TLS backend over TLS: byte-exact")


def health(srv, b2):
    # The checks started with the server; by now several have run.
    ok(wait_for(lambda: b2.paths["/hc"] >= 2, 5), "health_check over TLS: the backend answered %d checks" % b2.paths["/hc"])
    hc = [r for r in b2.log if r.path == "/hc"]
    is_(hc[0].header("User-Agent") if hc else None, "portico-health-check", "the checks are portico's")
    is_(pool_state(srv, "hc"), ["up"], "/status: the TLS backend whose certificate verifies stays up")
    is_(b2.paths["/hcbad"], 0, "tls_ca of another CA: no check request got through")
    ok(wait_for(lambda: pool_state(srv, "hcbad") == ["down"], 4), "/status: the same backend checked with another CA is down (%s)" % pool_state(srv, "hcbad"))
    like(srv.stderr(), r"\[pool:hcbad\] server localhost:\d+ is down: TLS handshake failed: certificate: unable to get local issuer certificate",
         "logged: the server is down: TLS handshake failed: certificate: why")
    is_(pool_state(srv, "hc"), ["up"], "/status: the verified one is still up")


# ---- 3. HSTS

def hsts(srv, off, opt, plain):
    def h(port, req, tls_on=True):
        if tls_on:
            c = tls(srv, port)
        else:
            c = srv.connect(port)
        c.send(req)
        r = c.read_response(timeout=10)
        c.close()
        return (r.status, r.header_all("Strict-Transport-Security")) if r else None

    is_(h(off, get("/")), (200, [HSTS]), "hsts: a return answer over HTTPS carries Strict-Transport-Security")
    is_(h(off, get("/status")), (200, [HSTS]), "hsts: /status over HTTPS too")
    is_(h(off, get("/echo/x")), (200, [HSTS]), "hsts: a proxied answer too")
    is_(h(off, get("/good/status/404")), (404, [HSTS]), "hsts: a backend's 404 too")
    is_(h(off, b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n"), (400, [HSTS]), "hsts: portico's own 400 too")
    # A backend's own Strict-Transport-Security: the listener's hsts wins, one header.
    plain.on("/sts", lambda hd, req: hd.respond(req, 200, "sts", headers=[("Strict-Transport-Security", "max-age=1")]))
    is_(h(off, get("/echo/sts")), (200, [HSTS]), "hsts: a backend's own Strict-Transport-Security is replaced, not doubled")
    is_(h(opt, get("/echo/sts")), (200, ["max-age=1"]), "no hsts on the listener: the backend's header passes")
    is_(h(opt, get("/")), (200, []), "no hsts on the listener: no Strict-Transport-Security")
    is_(h(srv.port, get("/vars/"), tls_on=False), (200, []), "plain listener: no Strict-Transport-Security")


# ---- 4. return variables

def return_vars(srv, off):
    r = srv.get("/a/b?x=1&y=2", host="WWW.Example.COM:8080")
    loc = "https://www.example.com/a/b?x=1&y=2"
    is_((r.status, r.header("Location")), (301, loc),
        "return = 301 https://$host$request_uri: host lower case, port dropped, query kept")
    is_(r.body, ('<html><body><a href="%s">moved here</a></body></html>\n' % loc.replace("&", "&amp;")).encode(),
        "the redirect's body links there, HTML-escaped")
    r = srv.get("/", host="[::1]:8080")
    is_(r.header("Location"), "https://[::1]/", "an IPv6 Host: brackets kept, port dropped")
    r = srv.get("/x", host="example.com.")
    is_(r.header("Location"), "https://example.com/x", "a trailing dot in Host is dropped")
    c = srv.connect()
    c.send(b"GET http://Abs.Example/p?q HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n")
    r = c.read_response()
    c.close()
    is_(r.header("Location") if r else None, "https://abs.example/p?q", "absolute-form target: its host, not the Host header")

    r = srv.get("/vars/x/../a%20b/./c?k=v", host="Foo.Test:81")
    is_((r.status, r.body), (200, b"http|foo.test|foo.testx|/vars/a%20b/c|k=v|/vars/x/../a%20b/./c?k=v"),
        "$scheme, $host, ${host}, $uri (normalized), $args, $request_uri on a plain listener")
    r = srv.get("/vars/")
    is_(r.body, b"http|localhost|localhostx|/vars/||/vars/", "no query: $args empty, $request_uri without ?")
    r = srv.get("/dollar")
    is_(r.body, b"$5, ${host} and $localhost", "$$ is a literal $, also before a name or a variable")
    c = tls(srv, off)
    c.send(get("/vars/z?1"))
    r = c.read_response()
    c.close()
    is_(r.body if r else None, b"https|localhost|localhostx|/vars/z|1|/vars/z?1", "$scheme is https over TLS")


# ---- 5. session tickets

def resume(port1, port2=None, flag="-tls1_3", tag="s"):
    """(state of the first connection, of the second one resuming its session)."""
    sess = T("sess-%s.pem" % tag)
    rc, out1 = s_client(port1, [flag, "-ign_eof", "-sess_out", sess], stdin=get("/"))
    rc, out2 = s_client(port2 or port1, [flag, "-ign_eof", "-sess_in", sess], stdin=get("/"))
    served = "HTTP/1.1 200 OK" in out2
    return session_state(out1), session_state(out2) if served else "not served"


def tickets():
    with Server(simple(workers=2)) as srv:
        is_(resume(srv.port, tag="d"), ("New", "Reused"), "default ticket keys: a TLS 1.3 session resumes on a new connection")
        sess = T("sess-d.pem")
        states = []
        for i in range(10):
            rc, out = s_client(srv.port, ["-tls1_3", "-ign_eof", "-sess_in", sess], stdin=get("/"))
            states.append(session_state(out))
        is_(states, ["Reused"] * 10, "workers = 2: 10 resumptions, whichever worker answers, all Reused")
        is_(resume(srv.port, flag="-tls1_2", tag="d12"), ("New", "Reused"), "default ticket keys: TLS 1.2 too")

        # a ticket key file shared by two processes
        keyf = T("ticket.key")
        must([OPENSSL, "rand", "-out", keyf, "80"])
        kconf = simple(extra="tls_ticket_key = %s\ntls_ticket_rotate = 1s\n" % keyf)
        with Server(kconf) as k1, Server(kconf) as k2:
            is_(resume(k1.port, k2.port, tag="k12"), ("New", "Reused"), "tls_ticket_key: a session from one process resumes on another")
            is_(resume(k2.port, k1.port, tag="k21"), ("New", "Reused"), "... and the other way")
            is_(resume(k2.port, k1.port, flag="-tls1_2", tag="k21b"), ("New", "Reused"), "... with TLS 1.2 too")
            is_(resume(k1.port, srv.port, tag="kd"), ("New", "New"), "a process with its own keys does not take those tickets")
            time.sleep(1.3)
            is_(resume(k1.port, k2.port, tag="k12b"), ("New", "Reused"), "keys from a file are not rotated (tls_ticket_rotate = 1s is moot)")
            ok("rotated" not in k1.stderr() + k2.stderr(), "... and no rotation is logged")

    # tls_ticket_rotate = 1s: a ticket resumes after one rotation, not after two.
    pat = r"TLS session ticket key rotated"
    with Server(simple(extra="tls_ticket_rotate = 1s\n")) as srv:
        ok(wait_log(srv, r"ticket key rotated", 1, 3), "tls_ticket_rotate = 1s: rotation is logged (\"ticket key rotated\")")
        sess = T("sess-rot.pem")
        # The ticket late in a period, so that it is young at the next rotation.
        for _ in range(3):
            n = rotations(srv, pat)
            wait_log(srv, pat, n + 1, 3)
            time.sleep(0.7)
            n = rotations(srv, pat)
            rc, out = s_client(srv.port, ["-tls1_3", "-ign_eof", "-sess_out", sess], stdin=get("/"))
            if rotations(srv, pat) == n:
                break
        first = session_state(out)
        ok(wait_log(srv, pat, n + 1, 3), "a rotation after the ticket was issued")
        rc, out = s_client(srv.port, ["-tls1_3", "-ign_eof", "-sess_in", sess], stdin=get("/"))
        is_((first, session_state(out)), ("New", "Reused"), "right after one rotation the ticket still resumes (the previous key is kept)")
        ok(wait_log(srv, pat, n + 2, 3), "a second rotation")
        rc, out = s_client(srv.port, ["-tls1_3", "-ign_eof", "-sess_in", sess], stdin=get("/"))
        is_(session_state(out), "New", "after two rotations it does not: a full handshake")
        ok("HTTP/1.1 200 OK" in out, "... and the client is served")

    # The previous key is kept a whole period: a ticket made early in one
    # period resumes late in the next (here 3.3s old, rotation every 2s).
    # (Sessions last two periods, as long as a key can open their tickets.)
    with Server(simple(extra="tls_ticket_rotate = 2s\n")) as srv:
        sess = T("sess-rot2.pem")
        n = rotations(srv, pat)
        wait_log(srv, pat, n + 1, 3)
        rc, out = s_client(srv.port, ["-tls1_3", "-ign_eof", "-sess_out", sess], stdin=get("/"))
        t_issued = time.monotonic()
        n = rotations(srv, pat)
        ok(wait_log(srv, pat, n + 1, 3), "tls_ticket_rotate = 2s: a rotation after the ticket")
        time.sleep(max(0.0, t_issued + 3.3 - time.monotonic()))
        one = rotations(srv, pat) == n + 1
        rc, out2 = s_client(srv.port, ["-tls1_3", "-ign_eof", "-sess_in", sess], stdin=get("/"))
        m = re.search(r"lifetime hint: (\d+)", out)
        is_((session_state(out), one, session_state(out2)), ("New", True, "Reused"),
            "a 3.3s-old ticket, one rotation later, resumes (lifetime hint %s s)" % (m.group(1) if m else "?"))


def rotations(srv, pat):
    return len(re.findall(pat, srv.stderr()))


# ---- 6. reload

def reload_certs():
    d = tempfile.mkdtemp(prefix="portico-t-reload-", dir=TMP)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")

    def put(name):
        shutil.copy(T(name + ".pem"), cert + ".tmp")
        shutil.copy(T(name + ".key"), key + ".tmp")
        os.replace(cert + ".tmp", cert)
        os.replace(key + ".tmp", key)

    put("server")
    OLD, NEW = der("server"), der("server-new")
    with Server(simple(workers=2, cert=cert, key=key)) as srv:
        def served_cert():
            c = tls(srv, srv.port)
            b = c.sock.getpeercert(True)
            c.send(get("/"))
            r = c.read_response()
            c.close()
            return {OLD: "old", NEW: "new"}.get(b, "?") if r and r.status == 200 else "not served"

        is_(served_cert(), "old", "before SIGHUP: the first certificate")
        held = tls(srv, srv.port)
        held.send(get("/", close=False))
        r1 = held.read_response()
        put("server-new")
        srv.signal(signal.SIGHUP)
        ok(wait_log(srv, r"\[info\] reload: configuration generation 2 in service$"),
           "SIGHUP: logged \"reload: configuration generation 2 in service\"")
        is_([served_cert() for _ in range(4)], ["new"] * 4, "after SIGHUP: new handshakes get the new certificate")
        held.send(get("/", close=False))
        r2 = held.read_response()
        is_((r1.status, r2.status if r2 else None, held.sock.getpeercert(True) == OLD), (200, 200, True),
            "a keep-alive connection made before SIGHUP keeps working, on the old certificate")
        held.close()

        with open(cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        srv.signal(signal.SIGHUP)
        ok(wait_log(srv, r"reload failed: .* has 1 error; configuration generation 2 stays in service"),
           "SIGHUP with a broken certificate: logged \"reload failed ... stays in service\"")
        like(srv.stderr(), r"\[error\] reload: \S+:\d+: \[listen:https\] tls_cert: .*cert\.pem",
             "the log names the file and line, the listener, the key and the certificate file")
        is_([served_cert() for _ in range(4)], ["new"] * 4, "the certificates in service stay in service")

        put("server")
        shutil.copy(T("server-new.key"), key)   # a key that does not match
        srv.signal(signal.SIGHUP)
        # 7a12a0b: "key values mismatch" for a key of the same type
        ok(wait_log(srv, r"reload: \S+:\d+: \[listen:https\] tls_key: \S*key\.pem does not match \S*cert\.pem$"),
           "SIGHUP with a key that does not match: kept, and said why (\"does not match\")")
        is_(served_cert(), "new", "still the certificate in service")

        # An encrypted key and a file with no key in it, as clear as at
        # start-up (7a12a0b: "error:0A080009:SSL routines::PEM lib" for both).
        def write_key(text):
            with open(key, "w") as f:
                f.write(text)

        for kind, write, why in (
            ("encrypted", lambda: must([OPENSSL, "pkey", "-in", T("server.key"), "-aes256", "-passout", "pass:x",
                                        "-out", key]),
             r"encrypted keys are not supported; decrypt it with openssl pkey"),
            ("garbage", lambda: write_key("not a key\n"), r"not a PEM private key"),
            ("a certificate", lambda: shutil.copy(T("server.pem"), key), r"not a PEM private key \(it holds a certificate\)"),
        ):
            put("server")
            write()
            n = len(re.findall(r"reload failed", srv.stderr()))
            srv.signal(signal.SIGHUP)
            ok(wait_log(srv, r"reload failed", n + 1), "SIGHUP with %s as tls_key: kept" % kind)
            like(srv.stderr(), r"reload: \S+:\d+: \[listen:https\] tls_key: \S*key\.pem: %s$" % why,
                 "... and the log says why: %s" % why.replace("\\", ""))
            is_(served_cert(), "new", "... the certificate in service stays")
        put("server")
        srv.signal(signal.SIGHUP)
        ok(wait_log(srv, r"reload: configuration generation 3 in service"), "SIGHUP with good files again: reloaded")
        is_(served_cert(), "old", "... and in service")


# ---- 7. RSA and ECDSA pairs for the same names

def dual_pairs():
    with Server(DUAL % {"t": TMP}) as srv:
        for port, which in ((srv.port, "ECDSA pair first"), (srv.port2, "RSA pair first")):
            for args, bits, what in (
                (["-tls1_2", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256"], 2048, "TLS 1.2, RSA signatures only"),
                (["-tls1_2", "-sigalgs", "ECDSA+SHA256"], 256, "TLS 1.2, ECDSA signatures only"),
                (["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"], 2048, "TLS 1.3, RSA-PSS only"),
                (["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"], 256, "TLS 1.3, ECDSA only"),
            ):
                rc, out = s_client(port, args + ["-ign_eof"], stdin=get("/"))
                m = re.search(r"(?m)^Server public key is (\d+) bit$", out)
                served = "HTTP/1.1 200 OK" in out
                is_((int(m.group(1)) if m else None, served), (bits, True),
                    "%s: %s gets the %s certificate" % (which, what, "RSA" if bits == 2048 else "ECDSA"))
        # Python, by cipher suite
        for ciphers, want in (("ECDHE-RSA-AES128-GCM-SHA256", der("server-rsa")), ("ECDHE-ECDSA-AES128-GCM-SHA256", der("server"))):
            c = tls(srv, srv.port, maxv=ssl.TLSVersion.TLSv1_2, ciphers=ciphers)
            got = c.sock.getpeercert(True)
            c.close()
            ok(got == want, "TLS 1.2 offering only %s: the matching certificate" % ciphers)


# ---- config errors

def config_errors():
    base = ("[global]\nworkers = 1\n\n[route:x]\npath = /\nreturn = 200 x\n\n"
            "[listen:tls]\naddress = 127.0.0.1:18443\ntls_cert = %s\ntls_key = %s\n" % (T("server.pem"), T("server.key")))
    # base: [listen:tls] on line 8, the next key on line 12
    cases = (
        ("verify-no-ca", "tls_verify_client = on\n", "listen:tls", 12, "tls_verify_client", r"^needs tls_client_ca$"),
        ("optional-no-ca", "tls_verify_client = optional\n", "listen:tls", 12, "tls_verify_client", r"^needs tls_client_ca$"),
        ("verify-bad", "tls_client_ca = %s\ntls_verify_client = yes\n" % T("ca.pem"), "listen:tls", 13, "tls_verify_client",
         r'^expected off, on or optional, not "yes"$'),
        ("ca-missing", "tls_client_ca = %s\ntls_verify_client = on\n" % T("nope.pem"), "listen:tls", 12, "tls_client_ca",
         r"^cannot read %s: No such file or directory$" % re.escape(T("nope.pem"))),
        ("ca-garbage", "tls_client_ca = %s\ntls_verify_client = on\n" % T("server.csr"), "listen:tls", 12, "tls_client_ca",
         r"^%s: " % re.escape(T("server.csr"))),
        ("hsts-bad", "hsts = 31536000\n", "listen:tls", 12, "hsts", r"max-age=SECONDS"),
        ("hsts-plain", "\n[listen:plain]\naddress = 127.0.0.1:18080\nhsts = max-age=60\n", "listen:plain", 15, "hsts",
         r"^only for HTTPS listeners"),
        ("ticket-key-79", "", "global", 3, "tls_ticket_key", r"must hold exactly 80 bytes"),
        ("ticket-key-81", "", "global", 3, "tls_ticket_key", r"must hold exactly 80 bytes"),
        ("ticket-key-missing", "", "global", 3, "tls_ticket_key", r"^cannot read .*No such file or directory$"),
        ("return-unknown", "", "route:y", 19, "return", r'unknown variable at "\$hostname/'),
        ("return-braced", "", "route:y", 19, "return", r'unknown variable at "\$\{nope\}'),
        ("return-glued", "", "route:y", 19, "return", r'unknown variable at "\$hostx'),
        ("pool-ca-missing", "", "pool:b", 20, "tls_ca", r"^cannot read %s: No such file" % re.escape(T("nope.pem"))),
        # tls_* keys that only an HTTPS listener can honour, on a plain one
        ("verify-plain", "\n[listen:plain]\naddress = 127.0.0.1:18080\ntls_client_ca = %s\ntls_verify_client = on\n" % T("ca.pem"),
         "listen:plain", 16, "tls_verify_client", r""),
    )
    for name, extra, sec, line, key, why in cases:
        text = base + extra
        if name.startswith("ticket-key"):
            kf = T(name + ".bin")
            if name != "ticket-key-missing":
                with open(kf, "wb") as f:
                    f.write(os.urandom(79 if name.endswith("79") else 81))
            text = text.replace("workers = 1\n", "workers = 1\ntls_ticket_key = %s\n" % kf)
        if name.startswith("return"):
            v = {"return-unknown": "301 https://$hostname/", "return-braced": "200 ${nope}",
                 "return-glued": "200 $hostx"}[name]
            text += "\n[route:y]\npath = /y\nreturn = %s\n" % v
            # line 12 (blank), 13 [route:y], 14 path ... : count below
        if name == "pool-ca-missing":
            text += ("\n[route:y]\npath = /y\npool = b\n\n[pool:b]\nserver = localhost:1 tls\n"
                     "tls_ca = %s\n" % T("nope.pem"))
        p = T(name + ".ini")
        with open(p, "w") as f:
            f.write(text)
        lines = text.split("\n")
        want_line = line
        if name.startswith("return"):
            want_line = next(i + 1 for i, l in enumerate(lines) if l.startswith("return = ") and "$" in l)
        if name == "pool-ca-missing":
            want_line = next(i + 1 for i, l in enumerate(lines) if l.startswith("tls_ca"))
        rc, out, err = portico(["-t", "-c", p])
        errs = [l for l in err.splitlines() if l.startswith(p + ":")]
        m = re.match(r"^%s:(\d+): \[%s\] (\w+): (.*)$" % (re.escape(p), re.escape(sec)), errs[0]) if errs else None
        if name == "verify-plain":
            # tls_client_ca and tls_verify_client = on on a listener without
            # tls_cert would give a plain listener that verifies nobody: an
            # error, as hsts there is (7a12a0b accepted it silently).
            ok(rc == 1 and m is not None and m.group(2) in ("tls_verify_client", "tls_client_ca"),
               "%s: tls_verify_client on a plain listener is an error (exit %d: %s)" % (name, rc, (errs or [err.strip()])[0]))
            continue
        is_((rc, len(errs)), (1, 1), "%s: -t exits 1 with one error" % name)
        # pool-ca-missing: at the tls_ca line, as every other pool key (7a12a0b
        # gave the [pool:b] line).
        ok(m is not None and int(m.group(1)) == want_line and m.group(2) == key,
           "%s: the error is at line %d, [%s] %s" % (name, want_line, sec, key))
        like(m.group(3) if m else (errs or [err])[0], why, "%s: the message says what is wrong" % name)
        if m is None or int(m.group(1)) != want_line:
            diag(err)


run(main)
