#!/usr/bin/env python3
# type = jwt: proxied routes behind HS256, ES256 (JWKS), RS256 (PEM) and
# EdDSA (an Ed25519 PEM and an OKP JWKS) tokens.  Valid tokens pass, with the forwarded claims as headers the
# client cannot forge; every failure gets its status, WWW-Authenticate
# and JSON body and never reaches the backend; the cookie; the access
# log's reason; tokens a worker remembers (a spoiled signature still
# fails, exp still holds); a reload with a new secret; configuration errors.
# Tokens are made here: HMAC with hashlib, ECDSA, RSA and Ed25519 with `openssl`
# (keys made at test time, none committed).
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import Backend, echoed_headers  # noqa: E402

OPENSSL = shutil.which("openssl")
TMP = tempfile.mkdtemp(prefix="portico-t-jwt-")

CONF = """\
[global]
workers = 2
access_log = {dir}/access.log
access_log_format = json

[listen:http]
address = 127.0.0.1:{port}

[pool:app]
server = %(a)s
max_fails = 0

[middleware:hs]
type = jwt
algorithm = HS256
secret_file = %(d)s/secret
issuer = portico-test
audience = api
require = exp, sub
forward_claims = sub:X-User, role:X-Role
cookie = session
realm = api
leeway = 5s

[middleware:es]
type = jwt
algorithm = ES256
jwks = %(d)s/es.jwks
forward_claims = sub:X-User

[middleware:rs]
type = jwt
algorithm = RS256
public_key = %(d)s/rs.pub
forward_claims = sub:X-User

[middleware:ed]
type = jwt
algorithm = EdDSA
public_key = %(d)s/ed.pub
forward_claims = sub:X-User

[middleware:edj]
type = jwt
algorithm = EdDSA
jwks = %(d)s/ed.jwks
forward_claims = sub:X-User

[route:ed]
path = /ed/
pool = app
middleware = ed

[route:edj]
path = /edj/
pool = app
middleware = edj

[route:hs]
path = /hs/
pool = app
middleware = hs

[route:es]
path = /es/
pool = app
middleware = es

[route:rs]
path = /rs/
pool = app
middleware = rs
"""

SECRET1 = b"first secret, long enough for HS256!"
SECRET2 = b"second secret, long enough for HS256"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def signing_input(header, claims):
    return b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())


def hs256(claims, key=SECRET1, header=None):
    si = signing_input(header or {"alg": "HS256", "typ": "JWT"}, claims)
    return si + "." + b64(hmac.new(key, si.encode(), hashlib.sha256).digest())


def openssl(*args, data=None):
    return subprocess.run([OPENSSL] + list(args), input=data, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=True).stdout


def der_to_raw(der, size):
    """An ECDSA-Sig-Value (SEQUENCE of two INTEGERs) as JOSE's r||s."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(size, b"\0")
        i += 2 + n
    return out


def pk_token(key, alg, claims, kid=None, raw=True):
    header = {"alg": alg}
    if kid is not None:
        header["kid"] = kid
    si = signing_input(header, claims)
    sig = openssl("dgst", "-sha256", "-sign", key, data=si.encode())
    if alg.startswith("ES") and raw:
        sig = der_to_raw(sig, 32)
    return si + "." + b64(sig)


def ed_token(key, claims, kid=None, header=None):
    """An EdDSA token signed by `openssl pkeyutl -sign -rawin`."""
    header = header or {"alg": "EdDSA"}
    if kid is not None:
        header["kid"] = kid
    si = signing_input(header, claims)
    path = os.path.join(TMP, "signing-input")
    with open(path, "w") as f:
        f.write(si)
    return si + "." + b64(openssl("pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", path))


def claims(**kw):
    c = {"iss": "portico-test", "aud": "api", "sub": "alice", "role": "admin",
         "exp": int(time.time()) + 300}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def make_keys(d):
    ec = os.path.join(d, "ec.pem")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec)
    der = openssl("pkey", "-in", ec, "-pubout", "-outform", "DER")
    pub = der[-65:]
    assert pub[0] == 4
    jwks = {"keys": [
        {"kty": "RSA", "kid": "other", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
         "x": b64(pub[1:33]), "y": b64(pub[33:65])},
    ]}
    with open(os.path.join(d, "es.jwks"), "w") as f:
        json.dump(jwks, f)
    rs = os.path.join(d, "rs.pem")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rs)
    openssl("pkey", "-in", rs, "-pubout", "-out", os.path.join(d, "rs.pub"))
    with open(os.path.join(d, "secret"), "wb") as f:
        f.write(SECRET1 + b"\n")
    ed = os.path.join(d, "ed.pem")
    openssl("genpkey", "-algorithm", "ed25519", "-out", ed)
    openssl("pkey", "-in", ed, "-pubout", "-out", os.path.join(d, "ed.pub"))
    x = openssl("pkey", "-in", ed, "-pubout", "-outform", "DER")[-32:]
    with open(os.path.join(d, "ed.jwks"), "w") as f:
        json.dump({"keys": [{"kty": "OKP", "crv": "X25519", "kid": "dh", "x": b64(x)},
                            {"kty": "OKP", "crv": "Ed25519", "kid": "e1", "use": "sig", "alg": "EdDSA",
                             "x": b64(x)}]}, f)
    ed2 = os.path.join(d, "ed2.pem")
    openssl("genpkey", "-algorithm", "ed25519", "-out", ed2)
    return ec, rs, ed, ed2


def get(srv, path, *headers):
    return srv.get(path, headers=list(headers))


def bearer(tok):
    return "Authorization: Bearer " + tok


def denied(r, status, error, name, realm=True):
    """Status, challenge and body of a refusal."""
    want = "Bearer" + (' realm="api"' if realm else "")
    if error:
        want += (", " if realm else " ") + 'error="%s"' % error
    ok(r is not None and r.status == status and r.header("WWW-Authenticate") == want and
       r.header("Content-Type") == "application/json" and
       r.body == b'{"error":"%s"}\n' % (error or "unauthorized").encode(),
       "%s: %d, WWW-Authenticate: %s, JSON body" % (name, status, want))
    if r is not None and r.status != status:
        diag("got %r" % r)


def reload_to(srv, gen, timeout=10.0):
    srv.signal(signal.SIGHUP)
    pat = re.compile(r"reload: configuration generation %d in service$|reload failed" % gen, re.M)
    m = wait_for(lambda: pat.findall(srv.stderr()), timeout)
    return bool(m) and "generation %d in service" % gen in m[-1]


def hs_route(srv, be):
    tok = hs256(claims())
    r = get(srv, "/hs/x", bearer(tok), "X-User: mallory", "X-Role: root", "x-user: eve")
    is_(r.status, 200, "HS256: a valid token passes")
    is_(echoed_headers(r, "X-User"), ["alice"], "HS256: the backend sees X-User from sub, never the client's")
    is_(echoed_headers(r, "X-Role"), ["admin"], "HS256: ... and X-Role from role")
    is_(echoed_headers(r, "Authorization"), ["Bearer " + tok], "HS256: the Authorization header goes on")
    r = get(srv, "/hs/x", bearer(hs256(claims(role=None))), "X-Role: root")
    is_((r.status, echoed_headers(r, "X-Role")), (200, []),
        "HS256: a claim the token lacks is no header, and the client's copy is gone")
    r = get(srv, "/hs/x", bearer(hs256(claims(role=7, sub="bob"))))
    is_((echoed_headers(r, "X-User"), echoed_headers(r, "X-Role")), (["bob"], ["7"]),
        "HS256: a number claim forwarded as its JSON text")

    n = be.requests
    denied(get(srv, "/hs/x", "X-User: mallory"), 401, None, "no token")
    denied(get(srv, "/hs/x", "Authorization: Basic YTpi"), 401, None, "Basic credentials are no token")
    denied(get(srv, "/hs/x", bearer(hs256(claims(), key=SECRET2))), 401, "invalid_token", "wrong key")
    t = hs256(claims())
    denied(get(srv, "/hs/x", bearer(t[:-2] + ("AA" if t[-2:] != "AA" else "BA"))), 401, "invalid_token",
           "bad signature")
    denied(get(srv, "/hs/x", bearer(t[:t.rindex(".")])), 401, "invalid_token", "truncated to two parts")
    denied(get(srv, "/hs/x", bearer(hs256(claims(exp=int(time.time()) - 60)))), 401, "invalid_token",
           "expired a minute ago")
    r = get(srv, "/hs/x", bearer(hs256(claims(exp=int(time.time()) - 2))))
    is_(r.status, 200, "expired 2s ago, within leeway 5s: passes")
    denied(get(srv, "/hs/x", bearer(hs256(claims(nbf=int(time.time()) + 60)))), 401, "invalid_token",
           "nbf a minute ahead")
    denied(get(srv, "/hs/x", bearer(hs256(claims(aud="web")))), 401, "invalid_token", "wrong aud")
    is_(get(srv, "/hs/x", bearer(hs256(claims(aud=["web", "api"])))).status, 200, "aud list holding api passes")
    denied(get(srv, "/hs/x", bearer(hs256(claims(iss="someone")))), 401, "invalid_token", "wrong iss")
    denied(get(srv, "/hs/x", bearer(hs256(claims(exp=None)))), 401, "invalid_token", "no exp (required)")
    none = signing_input({"alg": "none"}, claims()) + "."
    denied(get(srv, "/hs/x", bearer(none)), 401, "invalid_token", "alg none")
    denied(get(srv, "/hs/x", bearer(hs256(claims(), header={"alg": "HS512"}))), 401, "invalid_token",
           "alg HS512 to an HS256 block")
    denied(get(srv, "/hs/x", bearer(hs256(claims(sub="a\r\nX-Evil: 1")))), 401, "invalid_token",
           "a forwarded claim with CR LF refused")
    denied(get(srv, "/hs/x", "Authorization: Bearer a b"), 400, "invalid_request", "Bearer with two tokens")
    denied(get(srv, "/hs/x", "Authorization: Bearer"), 400, "invalid_request", "Bearer without a token")
    denied(get(srv, "/hs/x", bearer(t), bearer(t)), 400, "invalid_request", "two Authorization headers")
    denied(get(srv, "/hs/x", bearer("e" * 8193)), 400, "invalid_request", "a token of 8 KiB + 1")
    is_(be.requests, n + 2, "no refused request reached the backend (two passed meanwhile)")

    r = get(srv, "/hs/x", "Cookie: a=b; session=%s; c=d" % hs256(claims(sub="carol")))
    is_((r.status, echoed_headers(r, "X-User")), (200, ["carol"]), "the token in the cookie passes")
    r = get(srv, "/hs/x", 'Cookie: session="%s"' % hs256(claims(sub="dan")))
    is_((r.status, echoed_headers(r, "X-User")), (200, ["dan"]), "... quoted too")
    denied(get(srv, "/hs/x", "Cookie: session=%s" % hs256(claims(), key=SECRET2)), 401, "invalid_token",
           "a bad token in the cookie")
    denied(get(srv, "/hs/x", "Cookie: session=%s; session=%s" % (t, t)), 400, "invalid_request",
           "the cookie twice")
    r = get(srv, "/hs/x", bearer(hs256(claims(sub="erin"))), "Cookie: session=%s" % hs256(claims(), key=SECRET2))
    is_((r.status, echoed_headers(r, "X-User")), (200, ["erin"]), "Authorization is preferred to the cookie")


def pk_routes(srv, ec, rs):
    # These blocks give no audience: a token for one is for someone else.
    denied(get(srv, "/es/x", bearer(pk_token(ec, "ES256", claims(), kid="k1"))), 401,
           "invalid_token", "ES256: a token with aud to a block without audience", realm=False)
    r = get(srv, "/es/x", bearer(pk_token(ec, "ES256", claims(aud=None), kid="k1")), "X-User: mallory")
    is_((r.status, echoed_headers(r, "X-User")), (200, ["alice"]), "ES256 (JWKS, kid k1): passes, X-User alice")
    denied(get(srv, "/es/x", bearer(pk_token(ec, "ES256", claims(aud=None), kid="k1", raw=False))), 401,
           "invalid_token", "ES256 signature in DER", realm=False)
    denied(get(srv, "/es/x", bearer(pk_token(ec, "ES256", claims(aud=None), kid="k2"))), 401,
           "invalid_token", "ES256 with a kid the JWKS lacks", realm=False)
    denied(get(srv, "/es/x", bearer(hs256(claims(), header={"alg": "HS256", "kid": "k1"}))), 401,
           "invalid_token", "an HS256 token to the ES256 block", realm=False)
    r = get(srv, "/rs/x", bearer(pk_token(rs, "RS256", claims(sub="rita", aud=None))))
    is_((r.status, echoed_headers(r, "X-User")), (200, ["rita"]), "RS256 (PEM): passes, X-User rita")
    with open(os.path.join(TMP, "rs.pub"), "rb") as f:
        pem = f.read()
    denied(get(srv, "/rs/x", bearer(hs256(claims(), key=pem))), 401, "invalid_token",
           "HS256 keyed with the RS256 public key PEM", realm=False)
    denied(get(srv, "/rs/x", bearer(hs256(claims(), key=pem, header={"alg": "RS256"}))), 401,
           "invalid_token", "... and with alg RS256", realm=False)


def ed_routes(srv, ed, ed2, ec):
    r = get(srv, "/ed/x", bearer(ed_token(ed, claims(sub="edna", aud=None))), "X-User: mallory")
    is_((r.status, echoed_headers(r, "X-User")), (200, ["edna"]), "EdDSA (Ed25519 PEM): passes, X-User edna")
    r = get(srv, "/edj/x", bearer(ed_token(ed, claims(sub="eddie", aud=None), kid="e1")))
    is_((r.status, echoed_headers(r, "X-User")), (200, ["eddie"]), "EdDSA (OKP JWKS, kid e1): passes")
    denied(get(srv, "/edj/x", bearer(ed_token(ed, claims(aud=None), kid="dh"))), 401, "invalid_token",
           "EdDSA with the kid of an X25519 key", realm=False)
    denied(get(srv, "/ed/x", bearer(ed_token(ed2, claims(aud=None)))), 401, "invalid_token",
           "EdDSA signed by another Ed25519 key", realm=False)
    t = ed_token(ed, claims(aud=None))
    denied(get(srv, "/ed/x", bearer(t[:-3] + ("A" if t[-3] != "A" else "B") + t[-2:])), 401, "invalid_token",
           "EdDSA with a signature byte changed", realm=False)
    denied(get(srv, "/ed/x", bearer(t[:-4])), 401, "invalid_token", "EdDSA with a short signature", realm=False)
    with open(os.path.join(TMP, "ed.pub"), "rb") as f:
        pem = f.read()
    denied(get(srv, "/ed/x", bearer(hs256(claims(aud=None), key=pem))), 401, "invalid_token",
           "HS256 keyed with the Ed25519 public key PEM", realm=False)
    denied(get(srv, "/ed/x", bearer(pk_token(ec, "ES256", claims(aud=None)))), 401, "invalid_token",
           "an ES256 token to the EdDSA block", realm=False)
    denied(get(srv, "/es/x", bearer(ed_token(ed, claims(aud=None), kid="k1"))), 401, "invalid_token",
           "an EdDSA token to the ES256 block", realm=False)
    denied(get(srv, "/hs/x", bearer(ed_token(ed, claims()))), 401, "invalid_token",
           "an EdDSA token to the HS256 block")


def concurrent(srv, ec):
    """Workers verifying with the same keys at the same time (make tsan
    runs two): every answer right."""
    hs = hs256(claims(sub="many"))
    es = pk_token(ec, "ES256", claims(sub="many", aud=None), kid="k1")
    bad = hs256(claims(sub="many"), key=SECRET2)
    got = []

    def client(i):
        c = srv.connect()
        try:
            for j in range(20):
                path, tok, want = [("/hs/x", hs, 200), ("/es/x", es, 200), ("/hs/x", bad, 401)][(i + j) % 3]
                c.send("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % (path, tok))
                r = c.read_response()
                got.append(r is not None and r.status == want and
                           (want != 200 or echoed_headers(r, "X-User") == ["many"]))
        finally:
            c.close()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ok(len(got) == 120 and all(got), "6 connections at once, HS256, ES256 and bad tokens: %d of 120 answered right"
       % sum(got))


def access_log(srv):
    def reasons():
        try:
            with open(srv.path("access.log")) as f:
                return [json.loads(l).get("fields", {}).get("jwt") for l in f]
        except (OSError, ValueError):
            return []
    want = ["expired", "wrong alg", "bad signature", "no token", "token too long", "no key for kid",
            "wrong audience"]
    got = wait_for(lambda: all(w in reasons() for w in want) and reasons(), 5) or reasons()
    ok(all(w in got for w in want), "the access log's jwt field says why: " + ", ".join(want))


def remembered(srv):
    """Each worker remembers tokens it verified: the same bytes pass again,
    the same header and claims with a spoiled signature never do, and a
    remembered token still expires when its exp says."""
    tok = hs256(claims(sub="carol"))
    spoiled = tok[:-2] + ("QQ" if tok.endswith("AA") else "AA")
    got = [get(srv, "/hs/x", bearer(tok)) for _ in range(4)]
    is_([(r.status, echoed_headers(r, "X-User")) for r in got], [(200, ["carol"])] * 4,
        "remembered: a token sent again passes, its claims forwarded each time")
    is_([get(srv, "/hs/x", bearer(spoiled)).status for _ in range(4)], [401] * 4,
        "remembered: ... its payload with a spoiled signature never does")
    is_(get(srv, "/hs/x", bearer(tok)).status, 200, "remembered: ... nor does it disturb the good one")
    # Within the leeway (5s) for a second or two, then out of it.
    tok = hs256(claims(exp=int(time.time()) - 3))
    is_([get(srv, "/hs/x", bearer(tok)).status for _ in range(4)], [200] * 4,
        "remembered: a token about to expire passes")
    ok(wait_for(lambda: [get(srv, "/hs/x", bearer(tok)).status for _ in range(4)] == [401] * 4, 8),
       "remembered: ... and is refused once expired, by every worker")


def main():
    if OPENSSL is None:
        skip("openssl not installed", 1)
        return
    be = Backend("a")
    ec, rs, ed, ed2 = make_keys(TMP)
    with Server(CONF % {"a": be.addr, "d": TMP}) as srv:
        hs_route(srv, be)
        remembered(srv)
        pk_routes(srv, ec, rs)
        ed_routes(srv, ed, ed2, ec)
        concurrent(srv, ec)
        access_log(srv)
        old = hs256(claims())
        with open(os.path.join(TMP, "secret.tmp"), "wb") as f:
            f.write(SECRET2)
        os.replace(os.path.join(TMP, "secret.tmp"), os.path.join(TMP, "secret"))
        ok(reload_to(srv, 2), "SIGHUP with a new secret: generation 2 in service")
        denied(get(srv, "/hs/x", bearer(old)), 401, "invalid_token", "after the reload the old secret's token")
        r = get(srv, "/hs/x", bearer(hs256(claims(sub="new"), key=SECRET2)))
        is_((r.status, echoed_headers(r, "X-User")), (200, ["new"]), "... and the new secret's passes")
        with open(os.path.join(TMP, "secret"), "wb") as f:
            f.write(b"short")
        srv.signal(signal.SIGHUP)
        ok(wait_for(lambda: "reload failed" in srv.stderr(), 10), "a reload with a too short secret fails")
        like(srv.stderr(), r"\[middleware:hs\] secret_file: .*secret: HS256 needs a secret of at least 32 "
             r"bytes, not 5", "... saying why, with the file and line")
        is_(get(srv, "/hs/x", bearer(hs256(claims(), key=SECRET2))).status, 200,
            "... and generation 2 stays in service")
    be.stop()
    config_errors(ec, rs)


BAD = [
    ("algorithm = none\nsecret = %s" % ("x" * 32), r":\d+: \[middleware:m\] algorithm: unknown algorithm \"none\""),
    ("algorithm = HS256\nsecret = short", r":\d+: \[middleware:m\] secret: HS256 needs a secret of at least 32 bytes, not 5"),
    ("algorithm = RS256\nsecret = %s" % ("x" * 32), r":\d+: \[middleware:m\] secret: algorithm RS256 \(line \d+\) takes public_key or jwks"),
    ("algorithm = HS256", r":\d+: \[middleware:m\] no key: give secret or secret_file"),
    ("algorithm = ES256\npublic_key = {dir}/nope.pem", r":\d+: \[middleware:m\] public_key: cannot read \".*nope.pem\": No such file"),
    ("algorithm = ES256\npublic_key = {rs}", r":\d+: \[middleware:m\] public_key: .*: ES256 needs an EC key on P-256"),
    ("algorithm = ES256\npublic_key = {ecpub}\njwks = {ecpub}", r":\d+: \[middleware:m\] jwks: cannot go with public_key \(line \d+\)"),
    ("algorithm = ES256\njwks = {rs}", r":\d+: \[middleware:m\] jwks: .*: not JSON"),
    ("algorithm = ES256\npublic_key = {ecpub}\nforward_claims = sub:Host", r"forward_claims: Host cannot be set"),
    ("algorithm = ES256\npublic_key = {ecpub}\nforward_claims = sub", r"forward_claims: expected claim:Header-Name, not \"sub\""),
    ("algorithm = ES256\npublic_key = {ecpub}\nrealm = a\"b", r"realm: expected up to 200 printable"),
    ("algorithm = ES256\npublic_key = {ecpub}\nleeway = 2d", r"leeway: expected a duration of at most 1d"),
    ("algorithm = EdDSA\npublic_key = {ecpub}", r":\d+: \[middleware:m\] public_key: .*ec.pub: EdDSA needs an Ed25519 or Ed448 key"),
    ("algorithm = EdDSA\nsecret = %s" % ("x" * 32), r":\d+: \[middleware:m\] secret: algorithm EdDSA \(line \d+\) takes public_key or jwks"),
    ("algorithm = EdDSA\njwks = {dir}/es.jwks", r":\d+: \[middleware:m\] jwks: .*es.jwks: no key for EdDSA \(kty OKP, crv Ed25519 or Ed448"),
    ("algorithm = ES256\npublic_key = {dir}/ed.pub", r":\d+: \[middleware:m\] public_key: .*ed.pub: ES256 needs an EC key on P-256"),
    ("algorithm = ES256\npublic_key = {ecpub}\nalgorithms = ES256", r"algorithms: unknown key \(did you mean \"algorithm\"\?\)"),
]


def config_errors(ec, rs):
    d = os.path.dirname(ec)
    ecpub = os.path.join(d, "ec.pub")
    openssl("pkey", "-in", ec, "-pubout", "-out", ecpub)
    for body, pat in BAD:
        path = os.path.join(d, "bad.ini")
        with open(path, "w") as f:
            f.write("[listen:h]\naddress = 127.0.0.1:1\n\n[middleware:m]\ntype = jwt\n%s\n\n"
                    "[route:r]\nreturn = 200\nmiddleware = m\n"
                    % body.replace("{dir}", d).replace("{rs}", rs.replace(".pem", ".pub")).replace("{ecpub}", ecpub))
        rc, out, err = portico(["-t", "-c", path])
        ok(rc == 1 and re.search(pat, out + err), "-t refuses %s" % body.splitlines()[-1])
        if rc != 1 or not re.search(pat, out + err):
            diag(out + err)
    path = os.path.join(d, "good.ini")
    with open(path, "w") as f:
        f.write("[listen:h]\naddress = 127.0.0.1:1\n\n[middleware:m]\ntype = jwt\nalgorithm = ES256\n"
                "public_key = %s\n\n[route:r]\nreturn = 200\nmiddleware = m\n" % ecpub)
    rc, out, err = portico(["-t", "-c", path])
    is_(rc, 0, "-t accepts an ES256 block with a PEM key")
    rc, out, err = portico(["-T", "-c", path])
    ok(rc == 0 and "require = exp" in out and "leeway = 0s" in out, "-T shows the defaults require = exp, leeway = 0s")


try:
    run(main)
finally:
    shutil.rmtree(TMP, ignore_errors=True)
