#!/usr/bin/env python3
# Proxy: the request head a backend gets, where a client could make it lie.
# Upgrade offers (only allowed protocols go on; h2c never; a 101 to anything
# else is a 502), header names with underscores (underscores_in_headers, and
# the names a CGI server would read as portico's own), identity headers from
# peers that are not trusted_proxies (Forwarded, X-Real-IP, X-Request-Id and
# request_id), and a client certificate subject longer than the header may
# carry (omitted and logged, never cut).  Certificates are made here with
# `openssl req`; no key is committed.
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
from backend import Backend, echoed, echoed_headers, request_bytes  # noqa: E402

TMP = tempfile.mkdtemp(prefix="portico-t-proxy-headers-")
OPENSSL = shutil.which("openssl")

CONF = """\
[global]
workers = 1
%(global)s

[listen:http]
address = 127.0.0.1:{port}

[pool:a]
server = %(a)s
max_fails = 0

[route:admin]
path = /admin/
return = 403 no

[route:up]
path = /up/
pool = a
strip_prefix = yes
upgrade = websocket, foo/2, BAR

[route:up2]
path = /up2/
pool = a
strip_prefix = yes
upgrade = foo/2
upgrade = websocket

[route:none]
path = /none/
pool = a
strip_prefix = yes
upgrade = off

[route:trust]
path = /trust/
pool = a
strip_prefix = yes
trusted_proxies = 127.0.0.0/8

[route:trust2]
path = /trust2/
pool = a
strip_prefix = yes
trusted_proxies = 10.0.0.0/8
trusted_proxies = 127.0.0.0/8

[route:trustgen]
path = /trustgen/
pool = a
strip_prefix = yes
trusted_proxies = 127.0.0.0/8
request_id = generate

[route:keep]
path = /keep/
pool = a
strip_prefix = yes
trusted_proxies = 10.0.0.0/8
request_id = keep

[route:fwd]
path = /fwd/
pool = a
strip_prefix = yes
forwarded = on

[route:any]
path = /
pool = a
"""

GEN_ID = r"[0-9a-f]{16}"


def raw(srv, lines, conn=None):
    """Sends a request made of lines (request line first) and reads its answer."""
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    c = conn or srv.connect()
    try:
        c.send(data)
        return c.read_response()
    finally:
        if conn is None:
            c.close()


def sent(r):
    """The header fields the backend's /echo saw, as (lower-case name, value)."""
    d = echoed(r)
    return None if d is None else [(k.lower(), v) for k, v in d["headers"]]


def only(r, *names):
    h = sent(r)
    return None if h is None else [(k, v) for k, v in h if k in names]


# ---------------------------------------------------------------- upgrades

def backend_routes(a):
    def h2c(h, req):
        # Switches to h2c whenever it is offered, as an h2c-capable server does.
        if "h2c" in (req.header("Upgrade") or "").lower():
            h.send(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
            return False
        return h.do_echo(req)

    def force_h2c(h, req):
        h.send(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        return False

    def force_ws(h, req):
        h.send(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        return False

    a.on("/h2c", h2c)
    a.on("/force-h2c", force_h2c)
    a.on("/force-ws", force_ws)


def test_upgrade(srv, a):
    # The bypass: an h2c upgrade through a proxied route would open a tunnel
    # whose requests no route sees.  It goes on as a plain request instead,
    # and the next request on the connection is routed as any other.
    c = srv.connect()
    try:
        r = raw(srv, ["GET /h2c HTTP/1.1", "Host: x", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
                      "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"], c)
        is_(r and r.status, 200, "Upgrade: h2c to a server that would switch: 200, not 101")
        is_(only(r, "upgrade", "connection", "http2-settings"), [],
            "  the server got no Upgrade, Connection or HTTP2-Settings")
        r = raw(srv, ["GET /admin/x HTTP/1.1", "Host: x"], c)
        is_(r and (r.status, r.body), (403, b"no"),
            "  and the next request on that connection is routed (return = 403), not tunnelled")
    finally:
        c.close()

    r = raw(srv, ["GET /echo HTTP/1.1", "Host: x", "Connection: upgrade", "Upgrade: h2c, WebSocket"])
    is_(only(r, "upgrade", "connection"), [("connection", "upgrade"), ("upgrade", "WebSocket")],
        "Upgrade: h2c, WebSocket: only WebSocket goes on (tokens compared without case)")
    r = raw(srv, ["GET /echo HTTP/1.1", "Host: x", "Connection: upgrade", "Upgrade: foo", "Upgrade: websocket"])
    is_(only(r, "upgrade", "connection"), [("connection", "upgrade"), ("upgrade", "websocket")],
        "Upgrade over two lines (foo, websocket): websocket goes on")
    r = raw(srv, ["GET /echo HTTP/1.1", "Host: x", "Upgrade: websocket"])
    is_(only(r, "upgrade", "connection"), [], "Upgrade without Connection: upgrade: neither goes on")
    r = raw(srv, ["GET /up/echo HTTP/1.1", "Host: x", "Connection: upgrade",
                  "Upgrade: h2c, foo/2, Foo/3, bar/1, websocket, baz, HTTP/2.0"])
    is_(only(r, "upgrade", "connection"), [("connection", "upgrade"), ("upgrade", "foo/2, bar/1, websocket")],
        "upgrade = websocket, foo/2, BAR: foo/2, bar/1 (any version) and websocket go on, in order")
    r = raw(srv, ["GET /up2/echo HTTP/1.1", "Host: x", "Connection: upgrade", "Upgrade: websocket, bar, foo/2"])
    is_(only(r, "upgrade", "connection"), [("connection", "upgrade"), ("upgrade", "websocket, foo/2")],
        "upgrade on two lines (foo/2, then websocket): both go on")
    r = raw(srv, ["GET /none/echo HTTP/1.1", "Host: x", "Connection: upgrade", "Upgrade: websocket"])
    is_(only(r, "upgrade", "connection"), [], "upgrade = off: not even websocket goes on")

    # A 101 for a request that went on without an Upgrade is a 502, as is a
    # 101 to a protocol other than the ones offered.
    n0 = a.paths["/force-h2c"]
    r = raw(srv, ["GET /force-h2c HTTP/1.1", "Host: x", "Connection: Upgrade", "Upgrade: h2c"])
    is_(r and r.status, 502, "h2c offered, the server answers 101 Upgrade: h2c anyway: 502")
    is_(a.paths["/force-h2c"] - n0, 1, "  the server did get the request")
    h = a.log[-1].headers if a.log else []
    is_([v for k, v in h if k.lower() in ("upgrade", "connection")], [], "  without Upgrade or Connection")
    r = raw(srv, ["GET /force-h2c HTTP/1.1", "Host: x", "Connection: Upgrade", "Upgrade: websocket, h2c",
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"])
    is_(r and r.status, 502, "websocket and h2c offered, websocket passed on, 101 to h2c: 502")
    r = raw(srv, ["GET /up/force-ws HTTP/1.1", "Host: x", "Connection: Upgrade", "Upgrade: foo/2"])
    is_(r and r.status, 502, "foo/2 offered, 101 to websocket (not asked for): 502")
    c = srv.connect()
    try:
        c.send(request_bytes("GET", "/force-ws", headers=["Connection: Upgrade", "Upgrade: WebSocket",
                                                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                                           "Sec-WebSocket-Version: 13"]))
        r = c.read_response(head=True)
        is_(r and (r.status, r.header("Upgrade")), (101, "websocket"),
            "WebSocket offered, 101 to websocket: the client gets the 101")
    finally:
        c.close()


# ---------------------------------------------------------------- underscores

UNDERSCORE = ["X_Client_Cert_Subject: CN=admin", "X_Forwarded_For: 1.2.3.4", "x_forwarded_proto: https",
              "X-Forwarded_Host: evil", "X_Real_IP: 6.6.6.6", "X_Request_Id: forged", "Content_Length: 5",
              "Transfer_Encoding: chunked", "Proxy_Authorization: x", "X_Forwarded_Prefix: /evil",
              "X_Client_Cert_Fingerprint_Extra: 1", "Max_Forwards: 9", "Keep_Alive: 1",
              "X_Custom: c", "Hostname_X: h", "My_X_Forwarded_For: m", "X-Fine: ok"]


def test_underscores_off(srv):
    r = raw(srv, ["GET /echo HTTP/1.1", "Host: x"] + UNDERSCORE)
    names = [k for k, _ in sent(r) or []]
    is_([k for k in names if "_" in k], [], "by default no header name with '_' reaches the server")
    is_(only(r, "x-fine", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"),
        [("x-fine", "ok"), ("x-forwarded-for", "127.0.0.1"), ("x-forwarded-proto", "http"),
         ("x-forwarded-host", "x")], "  the others do, and the X-Forwarded-* are portico's")


def test_underscores_on(a):
    conf = CONF % {"global": "underscores_in_headers = on", "a": a.addr}
    with Server(conf) as srv:
        r = raw(srv, ["GET /echo HTTP/1.1", "Host: x"] + UNDERSCORE)
        is_([k for k, _ in sent(r) or [] if "_" in k], ["x_custom", "hostname_x", "my_x_forwarded_for"],
            "underscores_in_headers = on: X_Custom, Hostname_X, My_X_Forwarded_For pass; no name that is "
            "portico's once '_' is '-' (X-Forwarded-*, X-Client-Cert-*, X-Real-IP, X-Request-Id, "
            "Content-Length, Transfer-Encoding, Proxy-*, Max-Forwards, Keep-Alive)")


# ---------------------------------------------------------------- identity headers

def test_identity(srv):
    ident = ["Forwarded: for=6.6.6.6", "X-Real-IP: 6.6.6.6", "X-Request-Id: client-id-1"]

    r = raw(srv, ["GET /echo HTTP/1.1", "Host: x"] + ident)
    got = only(r, "forwarded", "x-real-ip", "x-request-id")
    ok(got is not None and len(got) == 1 and got[0][0] == "x-request-id" and re.fullmatch(GEN_ID, got[0][1])
       and got[0][1] != "client-id-1",
       "untrusted client, forwarded = off: its Forwarded and X-Real-IP are dropped, its X-Request-Id "
       "replaced with 16 hex digits (%r)" % (got,))

    r = raw(srv, ["GET /trust/echo HTTP/1.1", "Host: x"] + ident)
    is_(only(r, "forwarded", "x-real-ip", "x-request-id"),
        [("forwarded", "for=6.6.6.6"), ("x-real-ip", "6.6.6.6"), ("x-request-id", "client-id-1")],
        "trusted peer, forwarded = off: Forwarded, X-Real-IP and X-Request-Id pass as sent")
    r = raw(srv, ["GET /trust2/echo HTTP/1.1", "Host: x"] + ident)
    is_(only(r, "forwarded", "x-real-ip", "x-request-id"),
        [("forwarded", "for=6.6.6.6"), ("x-real-ip", "6.6.6.6"), ("x-request-id", "client-id-1")],
        "trusted_proxies on two lines, the peer's block on the second: trusted")
    r = raw(srv, ["GET /fwd/echo HTTP/1.1", "Host: x"] + ident)
    is_(only(r, "forwarded", "x-real-ip"), [("forwarded", 'for=127.0.0.1;proto=http;host="x"')],
        "untrusted, forwarded = on: only portico's Forwarded element, no X-Real-IP")

    r = raw(srv, ["GET /trustgen/echo HTTP/1.1", "Host: x"] + ident)
    rid = [v for k, v in sent(r) or [] if k == "x-request-id"]
    ok(len(rid) == 1 and re.fullmatch(GEN_ID, rid[0]), "request_id = generate: a trusted peer's id replaced (%r)" % rid)

    r = raw(srv, ["GET /keep/echo HTTP/1.1", "Host: x"] + ident)
    is_(only(r, "x-request-id", "x-real-ip"), [("x-request-id", "client-id-1")],
        "request_id = keep: an untrusted client's id kept (X-Real-IP still dropped)")
    long_ok = "k" * 128
    is_(only(raw(srv, ["GET /keep/echo HTTP/1.1", "Host: x", "X-Request-Id: " + long_ok]), "x-request-id"),
        [("x-request-id", long_ok)], "request_id = keep: an id of 128 bytes is kept")
    for bad, why in (("X-Request-Id: " + "k" * 129, "129 bytes"), ("X-Request-Id: a b", "a blank inside"),
                     ("X-Request-Id: a\x80b", "a byte that is not ASCII")):
        rid = [v for k, v in sent(raw(srv, ["GET /keep/echo HTTP/1.1", "Host: x", bad])) or [] if k == "x-request-id"]
        ok(len(rid) == 1 and re.fullmatch(GEN_ID, rid[0]), "request_id = keep: an id with %s is replaced (%r)" % (why, rid))
    rid = [v for k, v in sent(raw(srv, ["GET /trust/echo HTTP/1.1", "Host: x", "X-Request-Id: one",
                                        "X-Request-Id: two"])) or [] if k == "x-request-id"]
    ok(len(rid) == 1 and re.fullmatch(GEN_ID, rid[0]), "two X-Request-Id lines, even from a trusted peer: one new id (%r)" % rid)


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


# ---------------------------------------------------------------- configuration

def test_config_errors(a):
    cases = [
        ("upgrade = h2c", '[route:x] upgrade: "h2c" is never passed on: upgrading to HTTP/2 is deprecated (RFC 9113 3.1)'),
        ("upgrade = websocket, H2C/1", '[route:x] upgrade: "H2C/1" is never passed on: upgrading to HTTP/2 is deprecated (RFC 9113 3.1)'),
        ("upgrade = off, websocket", '[route:x] upgrade: expected off or protocol names such as websocket, not "off"'),
        ("upgrade = web(socket)", '[route:x] upgrade: expected off or protocol names such as websocket, not "web(socket)"'),
        ("upgrade = a b c d e f g h i", "[route:x] upgrade: expected up to 8 protocol names of up to 47 bytes"),
        ("request_id = sometimes", "[route:x] request_id: expected trusted, keep or generate"),
        ("upgrade = off\nupgrade = websocket", '[route:x] upgrade: "off" cannot go with another upgrade line (line 11)'),
        ("trusted_proxies = 10.0.0.1\ntrusted_proxies = " + ", ".join("10.1.0.%d" % i for i in range(1, 17)),
         '[route:x] trusted_proxies: more than 16 addresses or CIDR blocks, counting every trusted_proxies line '
         '("10.1.0.16" is one too many)', 11),
    ]
    for key, msg, *at in cases:
        p = T("bad.ini")
        with open(p, "w") as f:
            f.write("[listen:h]\naddress = 127.0.0.1:1\n\n[pool:a]\nserver = %s\n\n[route:x]\npath = /\npool = a\n%s\n"
                    % (a.addr, key))
        rc, out, err = portico(["-t", "-c", p])
        is_((rc, [l for l in err.splitlines() if l.startswith(p + ":")]), (1, ["%s:%d: %s" % (p, (at or [10])[0], msg)]),
            "%s: -t exits 1 with FILE:LINE: [route:x] key: reason" % key)
    p = T("bad.ini")
    with open(p, "w") as f:
        f.write("[global]\nunderscores_in_headers = maybe\n[listen:h]\naddress = 127.0.0.1:1\n"
                "[route:x]\npath = /\nreturn = 200\n")
    rc, out, err = portico(["-t", "-c", p])
    is_((rc, [l for l in err.splitlines() if l.startswith(p + ":")]),
        (1, ['%s:2: [global] underscores_in_headers: expected on or off, not "maybe"' % p]),
        "underscores_in_headers = maybe: an error at its line")
    p = T("good.ini")
    with open(p, "w") as f:
        f.write("[global]\nunderscores_in_headers = on\n[listen:h]\naddress = 127.0.0.1:1\n[pool:a]\nserver = %s\n"
                "[route:x]\npath = /\npool = a\nupgrade = websocket, foo/1.0\nrequest_id = keep\n" % a.addr)
    rc, out, err = portico(["-T", "-c", p])
    is_((rc, [l for l in out.splitlines() if re.match(r"(underscores_in_headers|upgrade|request_id) =", l)]),
        (0, ["underscores_in_headers = on", "request_id = keep", "upgrade = websocket, foo/1.0"]),
        "-T shows underscores_in_headers, upgrade and request_id")


def main():
    a = Backend("a")
    backend_routes(a)
    try:
        with Server(CONF % {"global": "", "a": a.addr}) as srv:
            test_upgrade(srv, a)
            test_underscores_off(srv)
            test_identity(srv)
        test_underscores_on(a)
        test_cert_subject(a)
        test_config_errors(a)
    finally:
        a.stop()
        if os.environ.get("PORTICO_LEAVE") == "1":
            diag("kept %s" % TMP)
        else:
            shutil.rmtree(TMP, ignore_errors=True)


run(main)
