#!/usr/bin/env python3
# Static files: the secrets of the TLS configuration are never served.  A
# tls_key (or the tls_ticket_key) under a route's root is warned about when
# the configuration is loaded, by -t too, which still passes; and a request
# for it gets the 404 of a file that does not exist, by its name, through a
# hard link or a symlink, as a precompressed sidecar, after a new key was
# renamed into its place, and it is left out of directory listings.  A key
# outside the root is refused in the same way when a hard link or a
# followed symlink leads to it.  portico.8's HTTPS example once served the
# key it had just made: `root = .` with localhost.key in ".".
#
# The keys and certificates are made here with `openssl req` in the
# server's temp dir; no key is committed.
import os
import json
import re
import shutil
import ssl
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

OPENSSL = shutil.which("openssl")

CONF = """\
[global]
workers = 1
tls_ticket_key = {dir}/site/ticket.bin

[listen:http]
address = 127.0.0.1:{port}

[listen:https]
address = 127.0.0.1:{port2}
tls_cert = {dir}/site/localhost.pem
tls_key = {dir}/site/../site/localhost.key
tls_cert = {dir}/keys/other.pem
tls_key = {dir}/keys/other.key

[route:outside]
host = outside.test
root = {dir}/site
follow_symlinks = outside

[route:files]
root = {dir}/site
autoindex = on
precompressed = gzip
"""

# No secret under this root: no warning.
CLEAN = """\
[listen:https]
address = 127.0.0.1:18443
tls_cert = %(d)s/site/localhost.pem
tls_key = %(d)s/site/localhost.key

[route:files]
root = %(d)s/pub
"""

seen = []   # every raw response, searched for key bytes at the end


def must(args):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if p.returncode != 0:
        raise ServerError("%s failed:\n%s" % (" ".join(args), p.stdout.decode("utf-8", "replace")))


def make_files(d):
    site, keys, pub = os.path.join(d, "site"), os.path.join(d, "keys"), os.path.join(d, "pub")
    for x in (site, keys, pub, os.path.join(site, "sub")):
        os.makedirs(x, exist_ok=True)
    for cert, key, name in ((site + "/localhost.pem", site + "/localhost.key", "localhost"),
                            (keys + "/other.pem", keys + "/other.key", "other.test")):
        must([OPENSSL, "req", "-x509", "-nodes", "-days", "2", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-keyout", key, "-out", cert, "-subj", "/CN=" + name, "-addext", "subjectAltName=DNS:" + name])
    must([OPENSSL, "rand", "-out", site + "/ticket.bin", "80"])
    with open(site + "/a.txt", "wb") as f:
        f.write(b"file a\n")
    with open(pub + "/p.txt", "wb") as f:
        f.write(b"public\n")
    os.link(site + "/localhost.key", site + "/hard.txt")          # another name of the key
    os.link(site + "/localhost.key", site + "/sub/key.pem")       # ... in a subdirectory
    os.symlink("localhost.key", site + "/sym.txt")                # a symlink inside the root
    os.link(site + "/localhost.key", site + "/a.txt.gz")          # a "sidecar" of a.txt
    os.link(keys + "/other.key", site + "/other-hard.txt")       # a key outside, linked in
    os.symlink(keys + "/other.key", site + "/other-sym.txt")     # ... and symlinked to
    return site, keys, pub


def secrets(d):
    out = []
    for p in ("site/localhost.key", "keys/other.key", "site/ticket.bin"):
        with open(os.path.join(d, p), "rb") as f:
            out.append(f.read())
    return out


def get(srv, path, host="localhost", headers=(), method="GET"):
    r = srv.get(path, host=host, headers=headers, method=method)
    if r is not None:
        seen.append(r.raw)
    return r


def refused(srv, path, name, host="localhost", headers=(), method="GET"):
    r = get(srv, path, host, headers, method)
    body = error_body(404) if method == "GET" else b""
    is_(r and (r.status, r.body), (404, body), name)


def main():
    if OPENSSL is None:
        skip("no openssl binary", 1)
        return
    srv = Server(CONF, start=False)
    site, keys, pub = make_files(srv.dir)
    key_bytes = secrets(srv.dir)
    d = srv.dir
    root_lines = [i + 1 for i, l in enumerate(srv.conf.split("\n")) if l.startswith("root = ")]
    warn_key = ("%s:%d: [route:outside] root: %s/site/../site/localhost.key, the tls_key of [listen:https], lies under "
                "%s/site; it is not served (404), but keep it out of the root" % (srv.conf_path, root_lines[0], d,
                                                                                os.path.realpath(d)))

    # portico -t: warned, and valid all the same
    rc, out, err = portico(["-t", "-c", srv.conf_path])
    lines = err.splitlines()
    is_((rc, lines[-1] if lines else None), (0, "portico: configuration file %s is valid" % srv.conf_path),
        "-t with a key under a root: exit 0, valid")
    ok(any(l.endswith("[warn] " + warn_key) for l in lines),
       "-t warns: FILE:LINE: [route:outside] root: KEY, the tls_key of [listen:https], lies under ROOT; ...")
    if not any(l.endswith("[warn] " + warn_key) for l in lines):
        diag(err)
    for route, line in zip(("outside", "files"), root_lines):
        for what, path in (("the tls_key of \\[listen:https\\]", "site/../site/localhost.key"),
                           ("the tls_ticket_key", "site/ticket.bin")):
            like(err, r"(?m)\[warn\] %s:%d: \[route:%s\] root: %s, %s, lies under " % (
                re.escape(srv.conf_path), line, route, re.escape(os.path.join(d, path)), what),
                "-t: [route:%s] warned about %s" % (route, path))
    is_(len([l for l in lines if "[warn]" in l]), 4, "-t: four warnings (two secrets under each of two routes), "
        "none for the key outside the root")
    with open(os.path.join(d, "clean.ini"), "w") as f:
        f.write(CLEAN % {"d": d})
    rc, out, err = portico(["-t", "-c", os.path.join(d, "clean.ini")])
    is_((rc, err), (0, "portico: configuration file %s/clean.ini is valid\n" % d), "-t with no key under the root: no warning")

    srv.start()
    with srv:
        like(srv.stderr(), r"(?m)^\S+ \[warn\] %s$" % re.escape(warn_key), "at start the same warning is logged")

        # the controls: the files beside it are served
        r = get(srv, "/a.txt")
        is_(r and (r.status, r.body), (200, b"file a\n"), "a.txt beside the key: 200")
        r = get(srv, "/localhost.pem")
        is_(r and r.status, 200, "the certificate, which is public: 200")
        r = get(srv, "/nothing-here")
        is_(r and (r.status, r.body), (404, error_body(404)), "a file that does not exist: 404")

        refused(srv, "/localhost.key", "GET /localhost.key: 404, as if it did not exist")
        refused(srv, "/localhost.key", "HEAD /localhost.key: 404", method="HEAD")
        refused(srv, "/localhost.key", "GET /localhost.key with Range: 404", headers=("Range: bytes=0-10",))
        refused(srv, "/hard.txt", "a hard link to it: 404")
        refused(srv, "/sub/key.pem", "a hard link in a subdirectory: 404")
        refused(srv, "/sym.txt", "a symlink to it: 404")
        refused(srv, "/ticket.bin", "the tls_ticket_key: 404")
        refused(srv, "/other-hard.txt", "a hard link to a key outside the root: 404")
        refused(srv, "/other-sym.txt", "a symlink to a key outside the root, follow_symlinks = outside: 404",
                host="outside.test")
        refused(srv, "/localhost.key", "GET /localhost.key on the follow_symlinks = outside route: 404", host="outside.test")
        r = get(srv, "/a.txt", headers=("Accept-Encoding: gzip",))
        is_(r and (r.status, r.header("Content-Encoding"), r.body), (200, None, b"file a\n"),
            "a.txt.gz, a hard link to the key: not sent as the gzip of a.txt")

        r = get(srv, "/?format=json")
        names = sorted(e["name"] for e in json.loads(r.body)) if r and r.status == 200 else r
        is_(names, ["a.txt", "localhost.pem", "sub"],
            "the listing of / leaves out the key, its hard links and the ticket key (and symlinks, as always)")
        r = get(srv, "/sub/?format=json")
        is_(r and r.body, b"[]\n", "the listing of /sub/ leaves out the hard link there")

        # over HTTPS, as portico.8's example would have fetched it
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(site, "localhost.pem"))
        c = srv.connect(srv.port2)
        c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
        c.send(b"GET /localhost.key HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        r = c.read_response()
        seen.append(r.raw if r else b"")
        c.close()
        is_(r and (r.status, r.body), (404, error_body(404)), "over HTTPS: GET /localhost.key is 404")

        # A renewed key renamed into place: a new file under the key's name.
        must([OPENSSL, "genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-out", os.path.join(site, "new.key.tmp")])
        with open(os.path.join(site, "new.key.tmp"), "rb") as f:
            key_bytes.append(f.read())
        os.rename(os.path.join(site, "new.key.tmp"), os.path.join(site, "localhost.key"))
        refused(srv, "/localhost.key", "a new key renamed into the key's place: 404 too")
        refused(srv, "/hard.txt", "... and the old key's other names still 404")

    leaked = [i for i, raw in enumerate(seen) if any(k in raw or k.strip() in raw for k in key_bytes)]
    is_(leaked, [], "no response held a byte-exact key (%d responses)" % len(seen))


run(main)
