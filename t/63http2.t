#!/usr/bin/env python3
# HTTP/2 (common/h2.c): h2 by ALPN on HTTPS listeners and prior-knowledge h2c
# on plain ones with http2 = on, HTTP/1.1 as the fallback on both; static
# files, return, status, health, compression and headers middleware and the
# proxy over h2 compared byte for byte with what HTTP/1.1 answers; many
# streams on one connection; request bodies up to the pool (with and without
# content-length, 100-continue); the Cookie crumbs joined; h2load; the
# access log and /status; the SETTINGS portico sends and the limits
# (max_header_size -> 431, keepalive_requests -> GOAWAY, keepalive_timeout,
# max_body_size -> 413); GOAWAY at SIGTERM and at reload; portico -t on the
# http2 and h2_* keys.
#
# Clients: curl, nghttp and h2load (nghttp2) where a real client says it best,
# t/lib/h2.py for frame-level checks.  Certificates are made here with
# `openssl req` in a temp dir.
import hashlib
import json
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
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from portico import is_ as _is  # noqa: E402
from backend import Backend, gen_bytes, read_large_response  # noqa: E402
import h2  # noqa: E402
from h2 import H2Client  # noqa: E402

TMP = tempfile.mkdtemp(prefix="portico-t-h2-")
OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
H2LOAD = shutil.which("h2load")
NGHTTP = shutil.which("nghttp")

# Ports beyond {port}/{port2}: chosen here, put in the text before Server sees it.
CONF = """\
[global]
workers = 1
keepalive_requests = 100000
keepalive_timeout = 30s
header_timeout = 10s
send_timeout = 20s
max_body_size = 8m
access_log = {dir}/access.log

[listen:https]
address = 127.0.0.1:{port}
tls_cert = %(t)s/cert.pem
tls_key = %(t)s/cert.key
; the default, and CBC suites after it: HTTP/2 may not use those
tls_ciphers = ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES

[listen:h2c]
address = 127.0.0.1:{port2}
http2 = on

[listen:h1]
address = 127.0.0.1:%(p3)d

[listen:https1]
address = 127.0.0.1:%(p4)d
tls_cert = %(t)s/cert.pem
tls_key = %(t)s/cert.key
http2 = off

[pool:be]
server = %(be)s

[middleware:z]
type = compress
encodings = gzip
min_length = 0
types = *

[middleware:hd]
type = headers
response_set = X-Frame-Options: DENY
response_add = X-Multi: one
response_add = X-Multi: two
response_remove = Server
request_set = X-Added: yes

[route:status]
path = /status
status = json

[route:health]
path = /health
health = on

[route:ret]
path = /ret
return = 200 hello from return

[route:redir]
path = /redir
return = 301 /elsewhere

[route:be]
path = /be/
pool = be
strip_prefix = yes

[route:behd]
path = /behd/
pool = be
strip_prefix = yes
middleware = hd

[route:z]
path = /z/
root = %(t)s/root
middleware = z

[route:files]
path = /
root = %(t)s/root
precompressed = gzip
"""

LIMITS = """\
[global]
workers = 1
keepalive_requests = %(kr)d
keepalive_timeout = 1s
body_timeout = 1s
max_body_size = 1k
max_header_size = 2k
h2_max_concurrent_streams = 7
h2_window_size = 100000
h2_connection_window_size = 2m

[listen:h2c]
address = 127.0.0.1:{port}
http2 = on

[pool:be]
server = %(be)s

[route:be]
path = /be/
pool = be
strip_prefix = yes

[route:ret]
path = /
return = 200 ok
"""

STOP = """\
[global]
workers = 1
shutdown_timeout = 10s

[listen:h2c]
address = 127.0.0.1:{port}
http2 = on

[pool:be]
server = %(be)s

[route:be]
path = /be/
pool = be
strip_prefix = yes

[route:ret]
path = /
return = 200 %(answer)s
"""

SIZES = [0, 1, 2, 100, 1000, 4095, 4096, 8191, 16383, 16384, 16385, 32768, 65535, 65536, 65537,
         100000, 200000, 262144, 500000, 1 << 20]
PAGE = b"".join(b"<p>Line %d of a page that compresses well.</p>\n" % i for i in range(400))
BIG = gen_bytes(16 << 20, 11)
JS = b"function f(x) { return x * 2; }\n" * 200


def S(x):
    """x with every long bytes value replaced by its length and digest, so a
    failure's diagnostics stay short (equality is kept)."""
    if isinstance(x, (bytes, bytearray)) and len(x) > 80:
        return "<%d bytes %s... sha256 %s>" % (len(x), bytes(x[:24]), hashlib.sha256(x).hexdigest()[:16])
    if isinstance(x, tuple):
        return tuple(S(v) for v in x)
    if isinstance(x, list):
        return [S(v) for v in x]
    return x


def is_(got, expected, name=""):
    return _is(S(got), S(expected), name)


def sh(args, stdin=b"", timeout=30):
    p = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def make_tree():
    t = TMP
    rc, out, err = sh([OPENSSL, "req", "-x509", "-nodes", "-days", "2", "-newkey", "ec",
                       "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", t + "/cert.key",
                       "-out", t + "/cert.pem", "-subj", "/CN=localhost",
                       "-addext", "subjectAltName=DNS:localhost"])
    if rc != 0:
        raise RuntimeError("openssl req failed: %s" % err)
    root = t + "/root"
    os.makedirs(root + "/f")
    os.makedirs(root + "/dir")
    os.makedirs(root + "/z")
    with open(root + "/big.bin", "wb") as f:
        f.write(BIG)
    for n in SIZES:
        with open("%s/f/s%d.bin" % (root, n), "wb") as f:
            f.write(gen_bytes(n, 7))
    with open(root + "/dir/index.html", "wb") as f:
        f.write(b"<h1>index of dir</h1>\n")
    for p in ("/page.html", "/z/page.html"):
        with open(root + p, "wb") as f:
            f.write(PAGE)
    with open(root + "/app.js", "wb") as f:
        f.write(JS)
    import gzip
    with open(root + "/app.js.gz", "wb") as f:
        f.write(gzip.compress(JS, 9, mtime=0))
    later = time.time() + 5
    os.utime(root + "/app.js.gz", (later, later))
    return root


def file_bytes(n):
    return gen_bytes(n, 7)


# --------------------------------------------------------------------------
# HTTP/1.1 reference client (plain or TLS), one connection per request

def h1(port, method, path, headers=(), body=None, tls=False, host="localhost", big=False, timeout=20):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        s = ctx.wrap_socket(s, server_hostname="localhost")
    c = Conn.__new__(Conn)
    c.sock, c.timeout, c.buf, c.eof, c.reset = s, timeout, b"", False, False
    try:
        req = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, host)
        for k, v in headers:
            req += "%s: %s\r\n" % (k, v)
        if body is not None:
            req += "Content-Length: %d\r\n" % len(body)
        req += "Connection: close\r\n\r\n"
        c.send(req.encode("latin-1") + (body or b""))
        if big:
            status, hs, data, chunked = read_large_response(c, timeout)
            r = Response()
            r.status, r.headers, r.body = status, hs, data
            return r
        return c.read_response(head=(method == "HEAD"), timeout=timeout)
    finally:
        c.close()


HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "date"}


def h1_heads(r):
    """The headers of an HTTP/1 response as h2 would carry them: names
    lower-cased, hop-by-hop fields and Date left out, in order."""
    return [(k.lower(), v) for k, v in r.headers if k.lower() not in HOP]


def h2_heads(st):
    return [(k, v) for k, v in (st.headers or []) if not k.startswith(":") and k != "date"]


def h2c(port, **kw):
    kw.setdefault("timeout", 10.0)
    return H2Client("127.0.0.1", port, **kw)


def h2s(port, **kw):
    kw.setdefault("timeout", 10.0)
    return H2Client("127.0.0.1", port, tls=True, server_name="localhost", **kw)


def wait_streams(c, sids, timeout=20.0):
    """Reads until every stream in sids has ended, been reset or the
    connection closed (or timeout); returns the Streams."""
    def done():
        return all(c.stream(s).state != "open" for s in sids)
    if not done():
        c.wait_for(lambda f: done(), timeout)
    return [c.stream(s) for s in sids]


def get2(c, path, authority="localhost", method="GET", headers=(), body=b"", timeout=20.0):
    sid = c.request(method, path, authority, headers=headers, body=body)
    return c.read_response(sid, timeout)


def data_frames(c, sid):
    return [f for f in c.frames if f.type == h2.DATA and f.stream_id == sid]


def curl(args, timeout=30):
    rc, out, err = sh([CURL, "-sS", "--max-time", str(timeout - 5)] + args, timeout=timeout)
    return rc, out.decode("latin-1"), err


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------

def test_protocols(srv, p3, p4):
    ports = (srv.port, srv.port2)
    rc, out, err = curl(["-k", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                         "https://localhost:%d/ret" % srv.port, "--resolve", "localhost:%d:127.0.0.1" % srv.port])
    is_((rc, out), (0, "2 200"), "curl --http2 over TLS: HTTP/2, 200")
    rc, out, err = curl(["--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}",
                         "http://127.0.0.1:%d/ret" % srv.port2])
    is_((rc, out), (0, "hello from return\n2 200"), "curl --http2-prior-knowledge on the h2c listener: HTTP/2, 200, the body")
    rc, out, err = curl(["--http1.1", "-w", "\n%{http_version} %{http_code}", "http://127.0.0.1:%d/ret" % srv.port2])
    is_((rc, out), (0, "hello from return\n1.1 200"), "curl --http1.1 on the h2c listener: HTTP/1.1 still works")
    rc, out, err = curl(["-k", "--http1.1", "-w", "\n%{http_version} %{http_code}", "https://127.0.0.1:%d/ret" % srv.port])
    is_((rc, out), (0, "hello from return\n1.1 200"), "curl --http1.1 over TLS (ALPN http/1.1): still HTTP/1.1")

    # A plain listener without http2: the preface is not HTTP/1 -> 400 or close.
    c = srv.connect(p3)
    c.send(h2.PREFACE + h2.settings_frame({h2.ENABLE_PUSH: 0}))
    try:
        got = c.read_until_close(5)
    except socket.timeout:
        got = None
    # "PRI * HTTP/2.0" read as HTTP/1: 400, or 505 for the version, or a close.
    ok(got is not None and (got == b"" or re.match(rb"HTTP/1\.1 (400|505) ", got)),
       "prior-knowledge preface on a listener without http2: HTTP/1 400/505 or close (%r)" % (got[:40] if got else got))
    c.close()
    rc, out, err = curl(["--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version}",
                         "http://127.0.0.1:%d/ret" % p3])
    ok(out != "2", "curl --http2-prior-knowledge on a listener without http2: not HTTP/2 (rc %d, %r)" % (rc, out))

    # http2 = off on HTTPS: ALPN picks http/1.1
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    alpns = []
    for port in (p4, srv.port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                alpns.append(s.selected_alpn_protocol())
    is_(alpns, ["http/1.1", "h2"], "ALPN [h2, http/1.1]: http2 = off picks http/1.1, the default HTTPS listener h2")
    rc, out, err = curl(["-k", "--http2", "-w", "\n%{http_version}", "https://127.0.0.1:%d/ret" % p4])
    is_((rc, out), (0, "hello from return\n1.1"), "curl --http2 on the http2 = off listener: HTTP/1.1")

    # RFC 9113 9.2.2: a TLS 1.2 suite HTTP/2 may not use (CBC) gets http/1.1.
    alpns = []
    for suite in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES128-GCM-SHA256"):
        ctx12 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx12.check_hostname = False
        ctx12.verify_mode = ssl.CERT_NONE
        ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx12.set_ciphers(suite)
        ctx12.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw:
            with ctx12.wrap_socket(raw, server_hostname="localhost") as s:
                alpns.append((s.cipher()[0], s.selected_alpn_protocol()))
    is_(alpns, [("ECDHE-ECDSA-AES128-SHA", "http/1.1"), ("ECDHE-ECDSA-AES128-GCM-SHA256", "h2")],
        "TLS 1.2, ALPN [h2, http/1.1]: a CBC suite gets http/1.1 (RFC 9113 9.2.2), an AEAD one h2")

    # h2.py over both: the SETTINGS with the defaults
    for tls, port in ((True, srv.port), (False, srv.port2)):
        with (h2s(port) if tls else h2c(port)) as c:
            st = c.server_settings
            is_((st.get(h2.MAX_CONCURRENT_STREAMS), st.get(h2.INITIAL_WINDOW_SIZE), st.get(h2.MAX_HEADER_LIST_SIZE)),
                (128, 65536, 16384),
                "%s: SETTINGS with the defaults (MAX_CONCURRENT_STREAMS 128, INITIAL_WINDOW_SIZE 64k, "
                "MAX_HEADER_LIST_SIZE = max_header_size 16k)" % ("TLS" if tls else "h2c"))
            r = get2(c, "/ret")
            is_((r.state, r.status, r.body, c.errors), ("complete", 200, b"hello from return", []),
                "%s: h2.py GET /ret" % ("TLS" if tls else "h2c"))


def test_static(srv, p3):
    port = srv.port2
    # 20 files fetched at once on one connection, each compared with the file and with HTTP/1.1.
    with h2c(port, timeout=20) as c:
        sids = [c.request("GET", "/f/s%d.bin" % n, "localhost") for n in SIZES]
        streams = wait_streams(c, sids, 30)
        bad = []
        for n, st in zip(SIZES, streams):
            ref = h1(p3, "GET", "/f/s%d.bin" % n)
            if not (st.state == "complete" and st.status == 200 and st.body == file_bytes(n)
                    and st.body == ref.body and h2_heads(st) == h1_heads(ref)
                    and st.header("content-length") == str(n)):
                bad.append((n, st.state, st.status, len(st.body), h2_heads(st), h1_heads(ref)))
        is_(bad, [], "20 files (0 B .. 1 MiB) on 20 concurrent streams: bodies and headers = the files and HTTP/1.1")
        is_(c.errors, [], "no frame the client could not follow")
        big = max(f.length for f in c.frames if f.type == h2.DATA)
        ok(big <= c.server_settings[h2.MAX_FRAME_SIZE], "DATA frames within MAX_FRAME_SIZE (%d)" % big)
        names = [k for st in streams for k, _ in st.headers]
        is_([k for k in names if k != k.lower() or k in HOP - {"date"}], [],
            "header names lower case, no connection-specific field")

    # 16 MiB in one stream, the client giving back each DATA frame's
    # length at once (a WINDOW_UPDATE on the stream and one on the
    # connection per frame, as h2.py does by default).
    # (Each WINDOW_UPDATE that opens a window a response waits on is
    # progress, not one of the frames the flood budget counts.)
    with h2c(port, timeout=30) as c:
        r = get2(c, "/big.bin", timeout=30)
        calm = [f for f in c.frames if f.type == h2.GOAWAY]
        is_((r.state, r.status, r.body == BIG, calm), ("complete", 200, True, []),
            "16 MiB file, a WINDOW_UPDATE per DATA frame: complete, no GOAWAY (%d bytes)" % len(r.body))

    # Flow control: a client that gives no window back gets 65535 octets
    # (its initial windows), then the rest once it opens them.
    with h2c(port, window_updates=False) as c:
        sid = c.request("GET", "/f/s200000.bin", "localhost")
        c.wait_for(lambda f: False, 0.5)
        is_((sum(f.length for f in data_frames(c, sid)), c.stream(sid).state), (65535, "open"),
            "no WINDOW_UPDATE from the client: 65535 octets of DATA, then the server waits")
        c.send(h2.window_update_frame(0, 200000), h2.window_update_frame(sid, 200000))
        r = c.read_response(sid, 5)
        is_((r.state, r.body), ("complete", file_bytes(200000)), "windows opened: the rest, exact")

    # A stream reset by the client in the middle of a big file; the connection goes on.
    with h2c(port, window_updates=False) as c:
        sid = c.request("GET", "/f/s1048576.bin", "localhost")
        c.wait_for(lambda f: f.type == h2.DATA and f.stream_id == sid, 2)
        c.send(h2.rst_stream_frame(sid, h2.CANCEL), h2.window_update_frame(0, 1 << 20))
        sid2 = c.request("GET", "/f/s16384.bin", "localhost")
        # the new stream needs its window too
        c.send(h2.window_update_frame(sid2, 1 << 20))
        r = c.read_response(sid2, 5)
        is_((r.state, r.status, r.body), ("complete", 200, file_bytes(16384)),
            "after RST_STREAM CANCEL on a 1 MiB download, the next stream on the connection is answered")

    # The client's GOAWAY with a download in flight: the download is
    # finished, then portico sends a GOAWAY of its own (NO_ERROR, the
    # stream's id) and closes (RFC 9113 6.8).
    with h2c(port) as c:
        sid = c.request("GET", "/f/s200000.bin", "localhost")
        c.send(h2.goaway_frame(0, h2.NO_ERROR))  # 0: the server opened no stream
        r = c.read_response(sid, 5)
        g = c.wait_for(lambda f: f.type == h2.GOAWAY, 3, past=True)
        closed = c.closed_within(3)
        is_((r.state, r.body == file_bytes(200000), g and (g.error_code, g.last_stream_id), closed),
            ("complete", True, (h2.NO_ERROR, sid), True),
            "client GOAWAY with a stream in flight: the stream completes, then GOAWAY NO_ERROR and a close")

    # A file that shrinks while it is sent: that stream is reset with
    # INTERNAL_ERROR (no DATA past what the file had), and the connection
    # and its next stream go on.
    shrink = TMP + "/root/f/shrink.bin"
    with open(shrink, "wb") as f:
        f.write(file_bytes(1 << 20))
    with h2c(port, window_updates=False) as c:
        sid = c.request("GET", "/f/shrink.bin", "localhost")
        # Its head sent (the size taken), its first window of DATA too.
        c.wait_for(lambda f: f.type == h2.HEADERS and f.stream_id == sid, 5)
        c.wait_for(lambda f: sum(len(x.data) for x in data_frames(c, sid)) >= 65535, 5, past=True)
        os.truncate(shrink, 100000)
        c.send(h2.window_update_frame(0, 1 << 20), h2.window_update_frame(sid, 1 << 20))
        rst = c.wait_for(lambda f: f.type == h2.RST_STREAM and f.stream_id == sid, 5)
        got = b"".join(f.data for f in data_frames(c, sid))
        is_((rst and rst.error_code, len(got) <= 100000, got == file_bytes(1 << 20)[:len(got)]),
            (h2.INTERNAL_ERROR, True, True),
            "a file truncated while sent: RST_STREAM INTERNAL_ERROR, after its first %d bytes (exact)" % len(got))
        sid2 = c.request("GET", "/f/s16384.bin", "localhost")
        c.send(h2.window_update_frame(sid2, 1 << 20))
        r = c.read_response(sid2, 5)
        is_((r.state, r.status, r.body, [f for f in c.frames if f.type == h2.GOAWAY]),
            ("complete", 200, file_bytes(16384), []),
            "... the connection goes on: its next stream is answered, no GOAWAY")

    with h2c(port) as c:
        # POST to a static file: as HTTP/1.1 answers it
        r = get2(c, "/f/s1.bin", method="POST", headers=[("content-length", "3")], body=b"abc")
        ref = h1(p3, "POST", "/f/s1.bin", body=b"abc")
        is_((r.status, r.body, h2_heads(r)), (ref.status, ref.body, h1_heads(ref)), "POST to a static file: = HTTP/1.1 (%d)" % ref.status)

        # HEAD: no DATA, content-length of the GET
        r = get2(c, "/f/s16385.bin", method="HEAD")
        ref = h1(p3, "HEAD", "/f/s16385.bin")
        is_((r.state, r.status, r.header("content-length"), r.body, len(data_frames(c, r.id))),
            ("complete", 200, "16385", b"", 0), "HEAD: 200, content-length 16385, no DATA frame")
        is_(h2_heads(r), h1_heads(ref), "HEAD: the headers of HTTP/1.1's HEAD")

        # Range
        rng = [("range", "bytes=100-16484")]
        r = get2(c, "/f/s65536.bin", headers=rng)
        ref = h1(p3, "GET", "/f/s65536.bin", headers=[("Range", "bytes=100-16484")])
        is_((r.status, r.header("content-range"), r.body), (206, "bytes 100-16484/65536", file_bytes(65536)[100:16485]),
            "Range bytes=100-16484: 206, content-range, the bytes")
        is_((h2_heads(r), r.body), (h1_heads(ref), ref.body), "single range: = HTTP/1.1")
        rng = "bytes=0-9,1000-1999,-5"
        r = get2(c, "/f/s65536.bin", headers=[("range", rng)])
        ref = h1(p3, "GET", "/f/s65536.bin", headers=[("Range", rng)])
        m = re.search(r"boundary=(\S+)", r.header("content-type") or "")
        m1 = re.search(r"boundary=(\S+)", ref.header("Content-Type") or "")
        ok(r.status == 206 and m is not None, "multipart range: 206 with a boundary (%r)" % r.header("content-type"))
        b2 = m.group(1).encode() if m else b"?"
        b1 = m1.group(1).encode() if m1 else b"?"
        data = file_bytes(65536)
        parts = [p for p in r.body.split(b"--" + b2) if p not in (b"", b"\r\n")]
        exp_parts = [(b"0-9/65536", data[0:10]), (b"1000-1999/65536", data[1000:2000]), (b"65531-65535/65536", data[-5:])]
        got_parts = []
        for p in parts:
            mm = re.match(rb"\r\nContent-Type: [^\r]*\r\nContent-Range: bytes (\S+)\r\n\r\n(.*)\r\n$", p, re.S)
            if mm:
                got_parts.append((mm.group(1), mm.group(2)))
        is_(got_parts, exp_parts, "multipart range: the three parts, exact bytes")
        is_((r.body.replace(b2, b"BOUNDARY"), [(k, v.replace(b2.decode(), "B")) for k, v in h2_heads(r)]),
            (ref.body.replace(b1, b"BOUNDARY"), [(k, v.replace(b1.decode(), "B")) for k, v in h1_heads(ref)]),
            "multipart range: body and headers = HTTP/1.1, boundary aside")

        # conditionals
        r = get2(c, "/f/s1000.bin")
        etag, lm = r.header("etag"), r.header("last-modified")
        ok(etag and lm, "a file has etag and last-modified (%r, %r)" % (etag, lm))
        r = get2(c, "/f/s1000.bin", headers=[("if-none-match", etag or "x")])
        ref = h1(p3, "GET", "/f/s1000.bin", headers=[("If-None-Match", etag or "x")])
        is_((r.state, r.status, r.body, len(data_frames(c, r.id))), ("complete", 304, b"", 0),
            "If-None-Match: 304, no DATA")
        is_(h2_heads(r), h1_heads(ref), "304: headers = HTTP/1.1")
        r = get2(c, "/f/s1000.bin", headers=[("if-modified-since", lm or "x")])
        is_((r.status, r.body), (304, b""), "If-Modified-Since: 304")

        # 404, an unknown method, an index file, precompressed
        r = get2(c, "/f/nothing-here")
        ref = h1(p3, "GET", "/f/nothing-here")
        is_((r.status, r.body, h2_heads(r)), (404, ref.body, h1_heads(ref)), "404: body and headers = HTTP/1.1")
        is_(r.body, error_body(404), "404: the error page")
        r = get2(c, "/f/s1.bin", method="FROB")
        ref = h1(p3, "FROB", "/f/s1.bin")
        ok(r.status in (405, 501), "unknown method FROB: 405 or 501 (%r)" % r.status)
        is_((r.status, r.body, h2_heads(r)), (ref.status, ref.body, h1_heads(ref)), "unknown method: = HTTP/1.1")
        r = get2(c, "/dir/")
        ref = h1(p3, "GET", "/dir/")
        is_((r.status, r.body, h2_heads(r)), (200, b"<h1>index of dir</h1>\n", h1_heads(ref)), "index file: /dir/")
        r = get2(c, "/dir")
        ref = h1(p3, "GET", "/dir")
        is_((r.status, r.header("location"), r.body, h2_heads(r)), (301, "/dir/", ref.body, h1_heads(ref)),
            "/dir without slash: 301 to /dir/, = HTTP/1.1")
        r = get2(c, "/app.js", headers=[("accept-encoding", "gzip, br")])
        ref = h1(p3, "GET", "/app.js", headers=[("Accept-Encoding", "gzip, br")])
        with open(TMP + "/root/app.js.gz", "rb") as f:
            gz = f.read()
        is_((r.status, r.header("content-encoding"), r.header("content-length"), r.body),
            (200, "gzip", str(len(gz)), gz), "precompressed: app.js.gz for accept-encoding gzip")
        is_(h2_heads(r), h1_heads(ref), "precompressed: headers = HTTP/1.1")
        r = get2(c, "/app.js")
        is_((r.status, r.header("content-encoding"), r.body), (200, None, JS), "no accept-encoding: app.js itself")

        # compress middleware, return, health, headers middleware
        import zlib
        r = get2(c, "/z/page.html", headers=[("accept-encoding", "gzip")])
        ref = h1(p3, "GET", "/z/page.html", headers=[("Accept-Encoding", "gzip")])
        body = zlib.decompress(r.body, 31) if r.header("content-encoding") == "gzip" else None
        is_((r.status, r.header("content-encoding"), body), (200, "gzip", PAGE), "compress middleware over h2: gzip, inflates to the page")
        is_([k for k, _ in h2_heads(r)], [k for k, _ in h1_heads(ref)], "compress middleware: the header names of HTTP/1.1")
        r = get2(c, "/redir")
        ref = h1(p3, "GET", "/redir")
        is_((r.status, r.header("location"), r.body), (ref.status, ref.header("Location"), ref.body), "return 301: = HTTP/1.1")
        r = get2(c, "/health")
        ref = h1(p3, "GET", "/health")
        is_((r.status, r.body, h2_heads(r)), (ref.status, ref.body, h1_heads(ref)), "health = on: = HTTP/1.1")
        is_(c.errors, [], "no frame the client could not follow")

    # curl --parallel over TLS, each saved file compared
    outdir = os.path.join(TMP, "par")
    os.makedirs(outdir, exist_ok=True)
    args = ["-k", "--http2", "-Z", "--parallel-max", "20"]
    for n in SIZES:
        args += ["https://127.0.0.1:%d/f/s%d.bin" % (srv.port, n), "-o", "%s/%d" % (outdir, n)]
    rc, out, err = curl(args)
    same = []
    for n in SIZES:
        try:
            with open("%s/%d" % (outdir, n), "rb") as f:
                same.append(f.read() == file_bytes(n))
        except OSError:
            same.append(False)
    is_((rc, all(same)), (0, True), "curl --http2 --parallel over TLS: 20 files, each exact")


def test_proxy(srv, p3, b):
    port = srv.port2
    MB = 1 << 20
    # Each download on its own connection, so that one failing does not take the others with it.
    for framing, size in (("cl", 5 * MB), ("chunked", 4 * MB + 3), ("close", 3 * MB + 1)):
        with h2c(port, timeout=30) as c:
            path = "/be/download?size=%d&framing=%s&seed=3" % (size, framing)
            r = get2(c, path, timeout=30)
            ref = h1(p3, "GET", path, big=True, timeout=30)
            is_((r.state, r.status, len(r.body), r.body == gen_bytes(size, 3)), ("complete", 200, size, True),
                "proxy %s download of %d bytes over h2: exact" % (framing, size))
            drop = {"x-conn"}
            is_([(k, v) for k, v in h2_heads(r) if k not in drop], [(k, v) for k, v in h1_heads(ref) if k not in drop],
                "proxy %s download: headers = HTTP/1.1 (x-conn aside)" % framing)
            if framing == "cl":
                is_(r.header("content-length"), str(size), "content-length passed on")
    with h2c(port, timeout=30) as c:
        r = get2(c, "/be/chunked?size=100000&chunk=777")
        is_((r.status, r.body), (200, gen_bytes(100000)), "proxy /chunked, chunks of 777: exact")
        r = get2(c, "/be/fixed?size=0")
        is_((r.state, r.status, r.header("content-length"), r.body), ("complete", 200, "0", b""), "proxy /fixed?size=0")
        r = get2(c, "/be/download?size=70000&framing=cl", method="HEAD")
        is_((r.state, r.status, r.header("content-length"), len(data_frames(c, r.id))), ("complete", 200, "70000", 0),
            "proxy HEAD: content-length, no DATA")
        r = get2(c, "/be/status/204")
        is_((r.state, r.status, r.body), ("complete", 204, b""), "proxy 204: no body")

        # uploads
        up = gen_bytes(3 * MB + 11, 5)
        digest = hashlib.sha256(up).hexdigest()
        r = get2(c, "/be/sha256", method="POST", headers=[("content-length", str(len(up)))], body=up, timeout=30)
        d = json.loads(r.body) if r.status == 200 else {}
        is_((r.status, d.get("len"), d.get("sha256"), d.get("chunked")), (200, len(up), digest, False),
            "POST 3 MB with content-length: the backend got every byte, content-length framed")
        r = get2(c, "/be/sha256", method="POST", body=up, timeout=30)
        d = json.loads(r.body) if r.status == 200 else {}
        is_((r.status, d.get("len"), d.get("sha256"), d.get("chunked")), (200, len(up), digest, True),
            "POST 3 MB without content-length: the backend got every byte, chunked upstream")
        r = get2(c, "/be/sha256", method="POST", headers=[("content-type", "x/y")], body=b"", timeout=10)
        d = json.loads(r.body) if r.status == 200 else {}
        is_((r.status, d.get("len")), (200, 0), "POST with no DATA at all: the backend gets an empty body")

        # request trailers are read and dropped
        sid = c.request("POST", "/be/echo", "localhost", body=b"abc", end_stream=False)
        c.send_headers(sid, [("x-trailer", "t")], end_stream=True)
        r = c.read_response(sid, 10)
        d = json.loads(r.body) if r.status == 200 else {}
        is_((r.status, d.get("body"), [k for k, _ in d.get("headers", []) if k.lower() == "x-trailer"]),
            (200, "abc", []), "request trailers: body passed on, trailer dropped")

        # cookies, host, the head the backend sees
        r = get2(c, "/be/echo?x=1", authority="h2.test:8443",
                 headers=[("cookie", "a=1"), ("user-agent", "h2t"), ("cookie", "b=2"), ("x-one", "1")])
        d = json.loads(r.body) if r.status == 200 else {"headers": []}
        hs = [(k.lower(), v) for k, v in d["headers"]]
        is_([v for k, v in hs if k == "cookie"], ["a=1; b=2"], "two cookie fields arrive upstream as one: a=1; b=2")
        is_([v for k, v in hs if k == "host"], ["h2.test:8443"], "Host upstream = :authority")
        is_((d.get("method"), d.get("target"), d.get("version")), ("GET", "/echo?x=1", "HTTP/1.1"),
            "the upstream request line")
        is_([v for k, v in hs if k == "x-one"], ["1"], "other fields passed on")
        r = get2(c, "/be/echo", authority="a.test", headers=[("host", "b.test")])
        is_(r.status, 400, ":authority and host disagree: 400")
        r = get2(c, "/be/echo", authority="a.test", headers=[("host", "a.test")])
        is_(r.status, 200, ":authority and host agree: 200")
        got = [get2(c, "/be/echo", authority=a, headers=[("host", h)]).status
               for a, h in (("a.test:8080", "a.test"), ("a.test", "a.test:443"), ("[::1]:80", "[::1]:"),
                            ("a.test:80", "A.TEST"))]
        is_(got, [400, 400, 200, 200], "... compared normalized (RFC 3986 6.2.3, http): another port 400, "
            "https's default port 400; an empty port, :80 and case the same")
        r = get2(c, "/behd/echo")
        d = json.loads(r.body) if r.status == 200 else {"headers": []}
        is_(([v for k, v in d["headers"] if k.lower() == "x-added"], r.header("x-frame-options"),
             [v for k, v in r.headers if k == "x-multi"], r.header("server")),
            (["yes"], "DENY", ["one", "two"], None), "headers middleware over h2, request and response side")
        is_(c.errors, [], "no frame the client could not follow")

    # 100-continue, by curl and by hand
    body = gen_bytes(200000, 9)
    bpath = os.path.join(TMP, "up.bin")
    with open(bpath, "wb") as f:
        f.write(body)
    rc, out, err = curl(["-k", "--http2", "-v", "-H", "Expect: 100-continue", "--data-binary", "@" + bpath,
                         "-w", "\n%{http_version} %{http_code}", "https://127.0.0.1:%d/be/sha256" % srv.port])
    d = out.split("\n")
    is_((rc, d[-1], json.loads(d[0]).get("sha256") if d[0].startswith("{") else None),
        (0, "2 200", hashlib.sha256(body).hexdigest()), "curl --http2 -H 'Expect: 100-continue': 200, the body arrived")
    is_([l.rstrip() for l in err.splitlines() if l.startswith("< HTTP/")], ["< HTTP/2 100", "< HTTP/2 200"],
        "curl saw the interim 100, then the 200")
    with h2c(port) as c:
        sid = c.request("POST", "/be/sha256", "localhost", headers=[("expect", "100-continue"),
                                                                   ("content-length", "5")], end_stream=False)
        f = c.wait_for(lambda f: f.type == h2.HEADERS and f.stream_id == sid, 2)
        is_(c.stream(sid).informational and c.stream(sid).informational[0], [(":status", "100")],
            "h2.py: expect 100-continue gets HEADERS :status 100 before any DATA")
        c.send_data(sid, b"hello", end_stream=True)
        r = c.read_response(sid, 10)
        d = json.loads(r.body) if r.status == 200 else {}
        is_((r.status, d.get("sha256")), (200, hashlib.sha256(b"hello").hexdigest()), "... then the final 200")

    # 103 Early Hints from the backend with 40 Link fields (and a
    # connection-specific field, in mixed case): all 40 reach the client,
    # in order, names in lower case, the connection field left out.
    links = b"".join(b"Link: </s%d.css>; rel=preload\r\n" % i for i in range(40))
    b.on("/hints", lambda h, req: h.send(
        b"HTTP/1.1 103 Early Hints\r\n" + links + b"Keep-Alive: timeout=5\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") or True)
    with h2c(port) as c:
        r = get2(c, "/be/hints")
        info = c.stream(r.id).informational
        first = info[0] if info else []
        is_((r.status, r.body, first[:1], [v for k, v in first if k == "link"], [k for k, _ in first if k not in ("link", ":status")]),
            (200, b"ok", [(":status", "103")], ["</s%d.css>; rel=preload" % i for i in range(40)], []),
            "103 with 40 Link fields over h2: all of them, in order; Keep-Alive left out; then the 200")

    # 50 concurrent proxied streams on one connection
    with h2c(port, timeout=30) as c:
        sizes = [i * 1777 + (i % 3) * 16384 for i in range(50)]
        sids = [c.request("GET", "/be/fixed?size=%d&seed=%d" % (n, i), "localhost") for i, n in enumerate(sizes)]
        streams = wait_streams(c, sids, 30)
        bad = [(i, st.state, st.status, len(st.body)) for i, (n, st) in enumerate(zip(sizes, streams))
               if not (st.state == "complete" and st.status == 200 and st.body == gen_bytes(n, i))]
        is_(bad, [], "50 concurrent proxied streams on one connection: every body exact")
        # and 50 sequential: upstream connections kept alive and shared
        b.reset_counters()
        bad = []
        for i in range(50):
            r = get2(c, "/be/echo?i=%d" % i)
            d = json.loads(r.body) if r.status == 200 else {}
            if d.get("target") != "/echo?i=%d" % i:
                bad.append(i)
        is_(bad, [], "50 sequential proxied streams: each answered by its own request")
        ok(b.connections <= 2, "upstream keep-alive: 50 sequential streams over %d new upstream connection(s)" % b.connections)


def test_h2load(srv):
    if not H2LOAD:
        skip("no h2load", 6)
        return
    for name, url in (("static", "/f/s16385.bin"), ("proxy", "/be/fixed?size=3000")):
        rc, out, err = sh([H2LOAD, "-n", "2000", "-c", "4", "-m", "16", "-T", "20",
                           "https://127.0.0.1:%d%s" % (srv.port, url)], timeout=60)
        out = out.decode("utf-8", "replace")
        like(out, r"(?m)^Application protocol: h2$", "h2load %s: Application protocol: h2" % name)
        like(out, r"(?m)^requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout$",
             "h2load -n 2000 -c 4 -m 16 %s: 2000 succeeded, 0 failed" % name)
        like(out, r"(?m)^status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx$", "h2load %s: 2000 2xx" % name)


def test_nghttp(srv):
    # nghttp (nghttp2-client): several files on one connection, each body
    # as on disk; an upload through the proxy; and its view of the frames.
    if not NGHTTP:
        skip("no nghttp", 6)
        return
    base = "https://127.0.0.1:%d" % srv.port
    for n in (0, 16385, 1048576):
        rc, out, err = sh([NGHTTP, "-t", "20", "%s/f/s%d.bin" % (base, n)], timeout=30)
        is_((rc, len(out), out == file_bytes(n)), (0, n, True), "nghttp GET /f/s%d.bin: the file, byte for byte" % n)
    up = gen_bytes(300000, 3)
    path = os.path.join(TMP, "nghttp-up.bin")
    with open(path, "wb") as f:
        f.write(up)
    rc, out, err = sh([NGHTTP, "-t", "20", "-d", path, base + "/be/sha256"], timeout=30)
    d = json.loads(out.decode()) if out.startswith(b"{") else {}
    is_((rc, d.get("len"), d.get("sha256")), (0, len(up), hashlib.sha256(up).hexdigest()),
        "nghttp -d: a 300000-byte upload through the proxy arrives whole")
    rc, out, err = sh([NGHTTP, "-nv", "-t", "20", "-m", "3", base + "/f/s1.bin"], timeout=30)
    text = out.decode("utf-8", "replace")
    is_(len(re.findall(r"recv \(stream_id=\d+\) :status: 200", text)), 3,
        "nghttp -m 3: three streams on one connection, each 200")
    like(text, r"recv SETTINGS frame .*\n(?:.*\n)*?\s+\[SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):\d+\]",
         "nghttp sees portico's SETTINGS")


def test_log_status(srv, p3):
    port = srv.port2
    r = h1(p3, "GET", "/status")
    before = json.loads(r.body)
    with h2c(port) as c:
        for p in ("/log-a/missing", "/f/s1000.bin", "/f/s65536.bin"):
            get2(c, p, headers=[("user-agent", "h2-log-test")])
        sid = c.request("GET", "/status", "localhost")
        r = c.read_response(sid, 5)
    after = json.loads(r.body) if r.status == 200 else {}
    d = lambda k: after.get(k, 0) - before.get(k, 0)  # noqa: E731
    # +1: the /status on HTTP/1 before is counted once it is done.
    is_((d("requests_total"), after.get("responses", {}).get("4xx", 0) - before["responses"]["4xx"]), (4, 1),
        "/status: requests_total moved by the 3 h2 requests (+1 for the first /status), 4xx by the 404")
    log = srv.path("access.log")
    lines = wait_for(lambda: [l for l in read_text(log).splitlines() if "h2-log-test" in l and len(l)] if
                     len([l for l in read_text(log).splitlines() if "h2-log-test" in l]) >= 3 else None, 5) or []
    got = [re.search(r'"(\S+ \S+ \S+)" (\d+) (\d+)', l).groups() for l in lines if re.search(r'"(\S+ \S+ \S+)" (\d+) (\d+)', l)]
    is_(got, [("GET /log-a/missing HTTP/2.0", "404", str(len(error_body(404)))),
              ("GET /f/s1000.bin HTTP/2.0", "200", "1000"),
              ("GET /f/s65536.bin HTTP/2.0", "200", "65536")],
        "access log: \"GET /path HTTP/2.0\", the status and the body bytes of each h2 request")


def test_limits(b):
    with Server(LIMITS % {"be": b.addr, "kr": 1000}) as srv:
        with h2c(srv.port) as c:
            st = c.server_settings
            is_((st.get(h2.MAX_CONCURRENT_STREAMS), st.get(h2.INITIAL_WINDOW_SIZE), st.get(h2.MAX_HEADER_LIST_SIZE)),
                (7, 100000, 2048), "SETTINGS from h2_max_concurrent_streams, h2_window_size, max_header_size")
            f = c.wait_for(lambda f: f.type == h2.WINDOW_UPDATE and f.stream_id == 0, 2, past=True)
            is_(f and f.increment, 2 * 1048576 - 65535, "connection window raised to h2_connection_window_size (2m)")
            r = get2(c, "/", headers=[("x-big", "v" * 3000)])
            is_((r.state, r.status), ("complete", 431), "a header list over max_header_size: 431 on that stream")
            r = get2(c, "/")
            is_((r.status, r.body), (200, b"ok"), "... and the connection goes on")
            r = get2(c, "/", method="POST", headers=[("content-length", "2000")], body=b"x" * 2000)
            is_(r.status, 413, "max_body_size 1k: a 2000-byte body with content-length: 413")
            r = get2(c, "/be/sha256", method="POST", headers=[("content-length", "2000")], body=b"x" * 2000)
            is_(r.status, 413, "max_body_size 1k, proxy route: 413")
        with h2c(srv.port) as c:
            r = get2(c, "/be/sha256", method="POST", body=b"x" * 3000)
            is_(r.status, 413, "max_body_size 1k, a 3000-byte body without content-length: 413")

        # body_timeout 1s is per stream: a proxied upload that stalls gets
        # 408 while the client keeps the connection busy with PINGs, and
        # the connection and its next stream go on.
        with h2c(srv.port) as c:
            sid = c.request("POST", "/be/sha256", "localhost", headers=[("content-length", "10")],
                            end_stream=False)
            c.send_data(sid, b"abc")
            t0 = time.monotonic()
            pings = 0
            while time.monotonic() - t0 < 6 and c.stream(sid).status is None:
                c.send(h2.ping_frame(b"%08d" % pings))
                pings += 1
                c.wait_for(lambda f: f.stream_id == sid and f.type in (h2.HEADERS, h2.RST_STREAM), 0.25)
            took = time.monotonic() - t0
            is_((c.stream(sid).status, took >= 0.9), (408, True),
                "a stalled upload, PINGs every 0.25s: 408 on its stream after body_timeout (%.1fs, %d PINGs)"
                % (took, pings))
            r = get2(c, "/")
            is_((r.status, [f for f in c.frames if f.type == h2.GOAWAY]), (200, []),
                "... the connection goes on: its next stream is answered, no GOAWAY")

        # h2_max_concurrent_streams = 7: 10 streams at once after the
        # SETTINGS were acknowledged.  RFC 9113 5.1.2 makes the excess a
        # stream error (PROTOCOL_ERROR or REFUSED_STREAM), which 5.4.1 lets
        # an endpoint treat as a connection error: nghttp2 refuses with
        # REFUSED_STREAM while the setting is unacknowledged, and ends the
        # connection with GOAWAY PROTOCOL_ERROR after (portico.ini(5)).
        with h2c(srv.port) as c:
            sids = [c.request("GET", "/be/slow?delay=0.3&i=%d" % i, "localhost") for i in range(10)]
            streams = wait_streams(c, sids, 10)
            got = sorted((st.state, st.status, st.reset) for st in streams)
            refused = sorted([("complete", 200, None)] * 7 + [("reset", None, h2.REFUSED_STREAM)] * 3)
            g = [f for f in c.frames if f.type == h2.GOAWAY]
            ok(got == refused or (g and g[0].error_code == h2.PROTOCOL_ERROR and g[0].last_stream_id == 13),
               "10 streams at once with h2_max_concurrent_streams 7: 3 refused, or GOAWAY PROTOCOL_ERROR "
               "after stream 13 (%s, %s)" % (got, [(f.last_stream_id, f.error_code) for f in g]))

        # keepalive_timeout 1s does not cut a connection with a stream in flight
        with h2c(srv.port) as c:
            r = get2(c, "/be/slow?delay=1.6", timeout=5)
            is_((r.state, r.status, [f for f in c.frames if f.type == h2.GOAWAY]), ("complete", 200, []),
                "a 1.6s proxied stream on a keepalive_timeout 1s server: answered, no GOAWAY before")

    # keepalive_requests = 5: the 5th stream answered, then GOAWAY last_stream_id 9
    with Server(LIMITS % {"be": b.addr, "kr": 5}) as srv:
        with h2c(srv.port) as c:
            got = [get2(c, "/").status for _ in range(5)]
            is_(got, [200] * 5, "keepalive_requests 5: five streams answered")
            g = c.read_until_goaway(3)
            is_(g and (g.last_stream_id, g.error_code), (9, h2.NO_ERROR), "then GOAWAY NO_ERROR, last stream id 9")
            ok(c.closed_within(3), "and the connection closes")
        # 7 streams at once (the concurrency limit): 5 answered, the GOAWAY's last stream id is the 5th
        with h2c(srv.port) as c:
            sids = [c.request("GET", "/be/slow?delay=0.2&i=%d" % i, "localhost") for i in range(7)]
            streams = wait_streams(c, sids, 10)
            g = c.goaway
            done = [st.id for st in streams if st.state == "complete" and st.status == 200]
            is_((len(done), g and g.last_stream_id, g and g.error_code, max(done or [0]) <= (g.last_stream_id if g else 0)),
                (5, 9, h2.NO_ERROR, True),
                "keepalive_requests 5, 7 streams at once: 5 answered, GOAWAY NO_ERROR last stream id 9")

        # keepalive_timeout = 1s
        with h2c(srv.port) as c:
            get2(c, "/")
            t0 = time.monotonic()
            g = c.read_until_goaway(4)
            took = time.monotonic() - t0
            is_(g and g.error_code, h2.NO_ERROR, "idle past keepalive_timeout 1s: GOAWAY NO_ERROR")
            ok(0.7 <= took <= 3.0, "... after about 1s (%.2fs)" % took)
            ok(c.closed_within(3), "... and the connection closes")


def test_stop(b):
    srv = Server(STOP % {"be": b.addr, "answer": "one"})
    with h2c(srv.port) as c:
        n = b.requests
        sid = c.request("GET", "/be/slow?delay=1", "localhost")
        ok(b.wait_requests(n + 1, 5), "slow request reached the backend")
        srv.signal(signal.SIGTERM)
        g = c.read_until_goaway(5)
        is_(g and g.error_code, h2.NO_ERROR, "SIGTERM: GOAWAY NO_ERROR while a stream is in flight")
        r = c.read_response(sid, 10)
        d = json.loads(r.body) if r.status == 200 else {}
        is_((r.state, r.status, d.get("target")), ("complete", 200, "/slow?delay=1"), "the stream in flight completes with 200")
        gs = [f for f in c.frames if f.type == h2.GOAWAY]
        is_(gs and (gs[-1].last_stream_id, gs[-1].error_code), (sid, h2.NO_ERROR), "the last GOAWAY names stream %d" % sid)
        ok(c.closed_within(5), "then the connection closes")
    is_(srv.wait(10), 0, "portico exits 0")
    srv.stop()


def test_reload(b):
    with Server(STOP % {"be": b.addr, "answer": "one"}) as srv:
        with h2c(srv.port) as c:
            r = get2(c, "/")
            is_((r.status, r.body), (200, b"one"), "before the reload: one")
            with open(srv.conf_path, "w") as f:
                f.write(srv.conf.replace("200 one", "200 two"))
            srv.signal(signal.SIGHUP)
            ok(wait_for(lambda: "configuration generation 2 in service" in srv.stderr(), 5), "SIGHUP: generation 2 in service")
            sid = c.request("GET", "/", "localhost")
            r = c.read_response(sid, 5)
            is_((r.state, r.status), ("complete", 200), "the next stream on the old connection is answered 200")
            g = c.read_until_goaway(5)
            is_(g and (g.last_stream_id, g.error_code), (sid, h2.NO_ERROR), "then GOAWAY NO_ERROR, last stream id %d" % sid)
            ok(c.closed_within(5), "and the old connection closes")
        with h2c(srv.port) as c:
            r = get2(c, "/")
            is_((r.status, r.body), (200, b"two"), "a new connection: the new configuration")


def test_config():
    base = """\
[listen:a]
address = 127.0.0.1:1
http2 = %s

[route:r]
return = 200 x
"""
    for v in ("on", "off"):
        p = os.path.join(TMP, "c-%s.ini" % v)
        with open(p, "w") as f:
            f.write(base % v)
        rc, out, err = portico(["-t", "-c", p])
        is_(rc, 0, "portico -t: http2 = %s accepted" % v)
    p = os.path.join(TMP, "c-maybe.ini")
    with open(p, "w") as f:
        f.write(base % "maybe")
    rc, out, err = portico(["-t", "-c", p])
    is_(rc, 1, "portico -t: http2 = maybe rejected")
    like(err, r"(?m)^%s:3: .*http2" % re.escape(p), "... at FILE:3, the key named")
    for key, val, line in (("h2_max_concurrent_streams", "0", 2), ("h2_max_concurrent_streams", "70000", 2),
                           ("h2_window_size", "100", 2), ("h2_window_size", "4g", 2),
                           ("h2_connection_window_size", "1000", 2)):
        p = os.path.join(TMP, "c-%s-%s.ini" % (key, val))
        with open(p, "w") as f:
            f.write("[global]\n%s = %s\n\n" % (key, val) + base % "on")
        rc, out, err = portico(["-t", "-c", p])
        ok(rc == 1 and re.search(r"(?m)^%s:%d: .*%s" % (re.escape(p), line, key), err),
           "portico -t: %s = %s rejected at FILE:%d (%r)" % (key, val, line, err.strip().splitlines()[:1]))
    p = os.path.join(TMP, "c-good-h2.ini")
    with open(p, "w") as f:
        f.write("[global]\nh2_max_concurrent_streams = 1\nh2_window_size = 1k\nh2_connection_window_size = 65535\n\n"
                + base % "on")
    rc, out, err = portico(["-t", "-c", p])
    is_(rc, 0, "portico -t: h2_* keys at their lower bounds accepted")


def main():
    if not (OPENSSL and CURL):
        skip("openssl or curl missing", 1)
        return
    make_tree()
    t0 = time.monotonic()
    test_config()
    b = Backend("h2b")
    try:
        p3, p4 = free_port(), free_port()
        with Server(CONF % {"t": TMP, "be": b.addr, "p3": p3, "p4": p4}) as srv:
            ok(wait_for(lambda: all(_listening(p) for p in (p3, p4)), 5), "all four listeners up")
            for name, fn in (("protocols", lambda: test_protocols(srv, p3, p4)),
                             ("static", lambda: test_static(srv, p3)),
                             ("proxy", lambda: test_proxy(srv, p3, b)),
                             ("log/status", lambda: test_log_status(srv, p3)),
                             ("h2load", lambda: test_h2load(srv)),
                             ("nghttp", lambda: test_nghttp(srv))):
                section(name, fn)
        section("limits", lambda: test_limits(b))
        section("stop", lambda: test_stop(b))
        section("reload", lambda: test_reload(b))
    finally:
        b.stop()
        shutil.rmtree(TMP, ignore_errors=True)
    note("total %.1fs" % (time.monotonic() - t0))


def section(name, fn):
    """Runs one part; an exception fails one test and the next part runs."""
    t = time.monotonic()
    try:
        fn()
    except Exception:
        ok(False, "%s: raised an exception" % name)
        diag(traceback.format_exc())
    note("%s: %.1fs" % (name, time.monotonic() - t))


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


run(main)
