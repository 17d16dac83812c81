#!/usr/bin/env python3
# Static files: nothing outside the root is ever served.  Traversal in every
# spelling (dot segments raw and encoded, encoded slashes and backslashes,
# overlong UTF-8, NUL, absolute-form targets), symlinks under each
# follow_symlinks setting, dot files, FIFOs and devices, and over-long
# paths.  Requests go over raw sockets: curl and http.client would
# normalize the paths before sending them.
#
# Tests marked "BUG:" fail against the current server; the comment at each
# gives the request, what we expect and what we get.
import os
import secrets
import stat
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1
header_timeout = 5s
keepalive_timeout = 10s

[listen:http]
address = 127.0.0.1:{port}

[route:outside]
host = outside.test
root = {dir}/root
follow_symlinks = outside

[route:off]
host = off.test
root = {dir}/root
follow_symlinks = off

[route:files]
root = {dir}/root
"""

SECRET = ("TOP-SECRET-" + secrets.token_hex(8) + "\n").encode()
A = b"inside a\n"
B = b"inside a/b\n"
seen = []          # every raw response, checked for the secret at the end


def make_root(d):
    root = os.path.join(d, "root")
    os.makedirs(os.path.join(root, "a"))
    os.makedirs(os.path.join(root, ".well-known"))
    os.makedirs(os.path.join(root, ".git"))
    os.makedirs(os.path.join(root, "fifodir"))
    files = {
        "secret": SECRET,                     # outside the root, next to it
        "root/index.html": b"<h1>root</h1>\n",
        "root/a.txt": A,
        "root/a/b.txt": B,
        "root/.env": b"PASSWORD=hunter2\n",
        "root/.git/config": b"[core]\n",
        "root/.well-known/x": b"x\n",
    }
    for rel, data in files.items():
        with open(os.path.join(d, rel), "wb") as f:
            f.write(data)
    os.symlink("../secret", os.path.join(root, "out"))             # relative, leaves the root
    os.symlink(os.path.join(d, "secret"), os.path.join(root, "outabs"))  # absolute, outside
    os.symlink("..", os.path.join(root, "outdir"))                  # a directory outside
    os.symlink("a.txt", os.path.join(root, "in"))                   # relative, stays inside
    os.symlink("a", os.path.join(root, "indir"))                    # a directory inside
    os.symlink("loop", os.path.join(root, "loop"))                  # ELOOP
    os.mkfifo(os.path.join(root, "fifo"))
    os.mkfifo(os.path.join(root, "fifodir", "index.html"))
    dev = None
    if os.geteuid() == 0:
        try:
            os.mknod(os.path.join(root, "zero"), stat.S_IFCHR | 0o644, os.makedev(1, 5))
            dev = "zero"
        except OSError as e:
            diag("cannot make a device node: %s" % e)
    os.symlink("/dev/zero", os.path.join(root, "tozero"))
    return root, dev


def raw(srv, target, host="localhost", method="GET", timeout=5.0):
    """One request with target sent byte for byte."""
    if isinstance(target, str):
        target = target.encode("latin-1")
    data = (method.encode() + b" " + target + b" HTTP/1.1\r\nHost: " + host.encode() +
            b"\r\nConnection: close\r\n\r\n")
    r = srv.request(data, head=(method == "HEAD"), timeout=timeout)
    if r is not None:
        seen.append(r.raw)
    return r


def expect(srv, target, status, body, name, host="localhost"):
    r = raw(srv, target, host)
    if r is None:
        return ok(False, name + ": no response")
    good = (r.status, r.body) == (status, body) and SECRET not in r.raw
    if not ok(good, name):
        diag("got %r %r" % (r.status, r.body[:200]))
        diag("expected %r %r" % (status, body[:200]))
    return good


TRAVERSALS = [
    "/../secret",
    "/%2e%2e/secret",
    "/%2E%2E/secret",
    "/.%2e/secret",
    "/%2e%2e%2fsecret",
    "/..%2fsecret",
    "/..%2Fsecret",
    "/a/%2e%2e/%2e%2e/secret",
    "/a/../../secret",
    "/a/b/../../../secret",
    "/%00",
    "/a.txt%00.html",
    "/..\\secret",
    "/a\\..\\..\\secret",
    "/%5c..%5csecret",
    "/a/..%5c..%5csecret",
    "/%c0%ae%c0%ae/secret",
    "/%c0%ae%c0%ae%c0%afsecret",
    "/%e0%80%ae%e0%80%ae/secret",
    "/a.txt%2f",
]


def test_traversal(srv):
    for host in ("localhost", "outside.test"):
        for t in TRAVERSALS:
            expect(srv, t, 400, error_body(400), "%s (%s): 400, no secret" % (t, host), host=host)
    # absolute-form targets: the same rules
    for t in ("http://localhost/../secret", "http://localhost/%2e%2e/secret", "http://localhost/..%2fsecret",
              "http://localhost/a/%2e%2e/%2e%2e/secret"):
        expect(srv, t, 400, error_body(400), "absolute-form %s: 400, no secret" % t)
    expect(srv, "http://localhost/a.txt", 200, A, "absolute-form http://localhost/a.txt is served")
    # spellings that are not traversal at all: plain names that do not exist
    expect(srv, "/%252e%252e/secret", 404, error_body(404), "/%252e%252e/secret (a literal %2e%2e directory): 404")
    expect(srv, "/...", 404, error_body(404), "/... : a dot file name, 404")
    expect(srv, "/a/%2e%2e/a.txt", 200, A, "/a/%2e%2e/a.txt stays inside: served")


def test_symlinks(srv):
    nf = error_body(404)
    # default (inside): only links that stay under the root
    expect(srv, "/out", 404, nf, "symlink to ../secret (inside): 404")
    expect(srv, "/outabs", 404, nf, "absolute symlink to the secret (inside): 404")
    expect(srv, "/outdir/secret", 404, nf, "through a symlink to .. (inside): 404")
    expect(srv, "/outdir/root/a.txt", 404, nf, "out through .. and back in (inside): 404")
    expect(srv, "/in", 200, A, "symlink to a.txt (inside): served")
    expect(srv, "/indir/b.txt", 200, B, "through a symlink to a/ (inside): served")
    expect(srv, "/loop", 404, nf, "a symlink loop: 404")
    expect(srv, "/tozero", 404, nf, "symlink to /dev/zero (inside): 404")
    r = raw(srv, "/indir")
    is_(r and (r.status, r.header("Location")), (301, "/indir/"), "symlink to a directory inside, no slash: 301")
    # off: no symlinks at all
    expect(srv, "/in", 404, nf, "symlink to a.txt (off): 404", host="off.test")
    expect(srv, "/indir/b.txt", 404, nf, "through a symlink to a/ (off): 404", host="off.test")
    expect(srv, "/out", 404, nf, "symlink to ../secret (off): 404", host="off.test")
    expect(srv, "/a.txt", 200, A, "a plain file (off): served", host="off.test")
    # outside: links are followed wherever they go, by the operator's choice
    r = raw(srv, "/out", host="outside.test")
    is_(r and (r.status, r.body), (200, SECRET), "symlink to ../secret (outside): served")
    r = raw(srv, "/outabs", host="outside.test")
    is_(r and (r.status, r.body), (200, SECRET), "absolute symlink (outside): served")
    expect(srv, "/in", 200, A, "symlink to a.txt (outside): served", host="outside.test")
    t = time.monotonic()
    expect(srv, "/tozero", 404, nf, "symlink to /dev/zero (outside): 404, not an endless body", host="outside.test")
    ok(time.monotonic() - t < 2, "... and at once")
    # Responses for outside.test may carry the secret by design; forget them.
    seen.clear()


def test_dotfiles(srv):
    nf = error_body(404)
    expect(srv, "/.env", 404, nf, "/.env: 404")
    expect(srv, "/%2eenv", 404, nf, "/%2eenv: 404")
    expect(srv, "/.git/config", 404, nf, "/.git/config: 404")
    expect(srv, "/a/../.env", 404, nf, "/a/../.env: 404")
    expect(srv, "/.well-known/x", 200, b"x\n", "/.well-known/x: 200")
    expect(srv, "/.well-known/../.env", 404, nf, "/.well-known/../.env: 404")
    expect(srv, "/.well-known/.git/config", 404, nf, "/.well-known/.git/config: 404")
    expect(srv, "/.env", 404, nf, "/.env (outside): 404", host="outside.test")


def test_special_files(srv, dev):
    nf = error_body(404)
    c = srv.connect()
    t = time.monotonic()
    c.send(b"GET /fifo HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    r1 = c.read_response(timeout=3)
    r2 = c.read_response(timeout=3)
    is_(r1 and (r1.status, r1.body), (404, nf), "a FIFO: 404")
    is_(r2 and (r2.status, r2.body), (200, A), "the request after it on the same connection: 200")
    ok(time.monotonic() - t < 2, "the FIFO does not block the server (%.2fs)" % (time.monotonic() - t))
    c.close()
    r = raw(srv, "/fifo", method="HEAD")
    is_(r and r.status, 404, "HEAD of a FIFO: 404")
    r = raw(srv, "/fifodir/")
    forbidden = b"<html><head><title>403 Forbidden</title></head><body><h1>403 Forbidden</h1></body></html>\n"
    is_(r and (r.status, r.body), (403, forbidden), "a directory whose index.html is a FIFO: 403")
    if dev is not None:
        t = time.monotonic()
        expect(srv, "/" + dev, 404, nf, "a character device (/dev/zero's numbers): 404")
        ok(time.monotonic() - t < 2, "... and at once")
    else:
        skip("not root: no device node", 2)
    r = raw(srv, "/a.txt")
    is_(r and (r.status, r.body), (200, A), "the server still answers")


def test_long_paths(srv):
    # 4000 bytes of path in 100-byte segments: not found, but not too long
    seg = "/" + "s" * 99
    p4000 = seg * 40
    expect(srv, p4000, 404, error_body(404), "a 4000-byte path: 404")
    # longer: no such file can exist; the request line itself was within
    # max_request_line (RFC 9112 3 asks for 8000 octets), so 404, as nginx
    expect(srv, p4000 + "x", 404, error_body(404), "a 4001-byte path: 404")
    expect(srv, "/" + "a" * 7900, 404, error_body(404), "a 7901-byte path: 404")
    # the limit counts decoded bytes: 1500 escapes decode to 1500 bytes
    expect(srv, ("/" + "%61" * 99) * 15, 404, error_body(404),
           "a 4470-byte path that decodes to 1500 bytes: 404, not 414")
    # a name longer than the file system allows (ENAMETOOLONG): 404, as nginx
    expect(srv, "/" + "a" * 300, 404, error_body(404), "a 301-byte path with a 300-byte name: 404")


def main():
    srv = Server(CONF, start=False)
    root, dev = make_root(srv.dir)
    srv.start()
    with srv:
        test_traversal(srv)
        test_dotfiles(srv)
        test_special_files(srv, dev)
        test_long_paths(srv)
        leaked = [x[:120] for x in seen if SECRET.strip() in x]
        is_(leaked, [], "no response to the default or off route carried the secret")
        test_symlinks(srv)
        ok(srv.alive(), "server alive after all of it")


run(main)
