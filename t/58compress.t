#!/usr/bin/env python3
# type = compress: static files and proxied responses (Content-Length,
# chunked, close-delimited) compressed with gzip, br and zstd, each body
# decoded by its reference tool and compared byte for byte; a stream of
# events that arrives event by event; negotiation (q-values, identity, no
# Accept-Encoding), what is never compressed (types, small bodies, 206,
# 304, no-transform, already encoded), HEAD, HTTP/1.0, Vary and ETag, a
# precompressed file winning, the access-log field and config errors.
import json
import os
import re
import socket
import subprocess
import sys
import time
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1
error_log = {dir}/error.log
access_log = {dir}/access.log
access_log_format = json

[listen:http]
address = 127.0.0.1:{port}

[pool:app]
server = %(a)s
max_fails = 0

[middleware:z]
type = compress
types = text/html, application/json, text/*
types = application/octet-stream

[middleware:gz]
type = compress
encodings = gzip
gzip_level = 1
min_length = 0
types = *

[route:st]
host = st.test
root = {dir}/root
middleware = z

[route:pre]
host = pre.test
root = {dir}/root
precompressed = gzip
middleware = z

[route:gz]
host = gz.test
root = {dir}/root
middleware = gz

[route:p]
path = /p/
pool = app
strip_prefix = yes
middleware = z
"""

# Compressible and not: a page of text, and bytes no coder can shrink.
PAGE = b"".join(b"<p>Line %d of a page that compresses well: portico, portico.</p>\n" % i
                for i in range(3000))
SMALL = b"<p>short</p>\n" * 10                       # 130 bytes: under min_length
JSON = json.dumps([{"id": i, "name": "item %d" % i} for i in range(2000)]).encode()
CODINGS = ("gzip", "br", "zstd")


def decode(coding, data):
    """The body as the reference tool decodes it, or None when it cannot."""
    tool = {"gzip": ["gzip", "-dc"], "br": ["brotli", "-dc"], "zstd": ["zstd", "-qdc"]}[coding]
    p = subprocess.run(tool, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    if p.returncode != 0:
        diag("%s: %s" % (" ".join(tool), p.stderr.decode(errors="replace").strip()))
        return None
    return p.stdout


def get(srv, path, host="localhost", ae=None, headers=(), method="GET"):
    hs = list(headers)
    if ae is not None:
        hs.append("Accept-Encoding: " + ae)
    return srv.get(path, host=host, headers=hs, method=method)


def head_of(r):
    """The headers that compression decides, as a tuple."""
    return (r.status, r.header("Content-Encoding"), r.header("Content-Length") is not None,
            r.chunked, r.header("Vary"))


def test_static(srv):
    for c in CODINGS:
        r = get(srv, "/page.html", host="st.test", ae=c)
        is_(r and head_of(r), (200, c, False, True, "Accept-Encoding"),
            "static, %s: Content-Encoding, chunked, Vary" % c)
        body = decode(c, r.body) if r else None
        ok(body == PAGE and len(r.body) < len(PAGE) // 5,
           "static, %s: decodes to the file byte for byte (%d -> %d bytes)" % (c, len(PAGE), len(r.body) if r else 0))
    plain = get(srv, "/page.html", host="st.test")
    etag = plain and plain.header("ETag")
    r = get(srv, "/page.html", host="st.test", ae="gzip")
    is_(r and (r.header("ETag"), r.header("Accept-Ranges")), ("W/" + (etag or ""), None),
        "static: the strong ETag weakened, Accept-Ranges dropped")
    is_(plain and (plain.header("Content-Length"), plain.header("Vary"), plain.body == PAGE),
        (str(len(PAGE)), "Accept-Encoding", True),
        "no Accept-Encoding: the file as it is, with its length, and Vary")
    r = get(srv, "/page.html", host="st.test", ae="gzip", headers=["If-None-Match: W/" + (etag or "")])
    is_(r and (r.status, r.header("Content-Encoding"), r.body), (304, None, b""),
        "304 for the weak ETag: no body, no Content-Encoding")
    r = get(srv, "/page.html", host="st.test", ae="gzip", headers=["Range: bytes=0-99"])
    is_(r and (r.status, r.header("Content-Encoding"), r.body), (206, None, PAGE[:100]),
        "206: the range of the identity body, not compressed")
    r = get(srv, "/page.html", host="st.test", ae="br", method="HEAD")
    is_(r and (r.status, r.header("Content-Encoding"), r.header("Content-Length"), r.header("Vary"), r.body),
        (200, "br", None, "Accept-Encoding", b""),
        "HEAD: the head a GET would get (Content-Encoding, no length), no body")
    r = get(srv, "/small.html", host="st.test", ae="gzip")
    is_(r and (r.header("Content-Encoding"), r.body), (None, SMALL), "under min_length: as it is")
    r = get(srv, "/img.png", host="st.test", ae="gzip")
    is_(r and (r.header("Content-Encoding"), r.header("Vary"), r.body == PAGE), (None, None, True),
        "a type not listed: as it is, no Vary")
    r = get(srv, "/data.json", host="st.test", ae="zstd")
    ok(r and r.header("Content-Encoding") == "zstd" and decode("zstd", r.body) == JSON,
       "application/json listed: compressed")
    r = get(srv, "/notes.txt", host="st.test", ae="gzip")
    ok(r and r.header("Content-Encoding") == "gzip" and decode("gzip", r.body) == PAGE,
       "text/* matches text/plain; charset=utf-8 (parameters ignored)")
    r = get(srv, "/empty.html", host="gz.test", ae="gzip")
    is_(r and (r.status, r.header("Content-Encoding"), r.body), (200, None, b""),
        "an empty body: not compressed even with min_length = 0")

    # HTTP/1.0: the length is unknown, so the body ends at the close.
    c = srv.connect(timeout=10)
    c.send(b"GET /page.html HTTP/1.0\r\nHost: st.test\r\nAccept-Encoding: gzip\r\n\r\n")
    data = c.read_until_close(10)
    c.close()
    hd, _, body = data.partition(b"\r\n\r\n")
    ok(re.search(rb"(?im)^content-encoding: gzip\r$", hd + b"\r") and b"Content-Length" not in hd
       and b"Transfer-Encoding" not in hd and decode("gzip", body) == PAGE,
       "HTTP/1.0 client: close-delimited gzip, decodable")

    # The precompressed copy wins: its bytes, its length, no second coding.
    r = get(srv, "/pre.html", host="pre.test", ae="gzip, br, zstd")
    ok(r and r.header("Content-Encoding") == "gzip" and r.header("Content-Length") == str(len(PRE_GZ))
       and r.body == PRE_GZ and r.header_all("Vary") == ["Accept-Encoding"],
       "precompressed .gz served as it is: its own Content-Length, one Vary")
    r = get(srv, "/pre.html", host="pre.test", ae="br")
    ok(r and r.header("Content-Encoding") == "br" and decode("br", r.body) == PAGE,
       "no .br copy: compressed on the fly instead")


def test_keepalive(srv):
    # Several compressed responses on one connection: each framed right.
    c = srv.connect(timeout=10)
    for c_ in CODINGS + ("identity",):
        r = exchange(c, "GET", "/page.html", host="st.test", headers=["Accept-Encoding: " + c_])
        body = r.body if c_ == "identity" else decode(c_, r.body) if r else None
        ok(r and r.status == 200 and body == PAGE, "keep-alive, %s: whole and decodable" % c_)
    c.close()


def test_negotiation(srv):
    cases = [
        ("gzip, deflate, br, zstd", "zstd", "a browser's list: the configured order (zstd first)"),
        ("gzip;q=1, br;q=0.5, zstd;q=0.2", "gzip", "higher q wins"),
        ("zstd;q=0, br;q=0, gzip", "gzip", "q=0 refuses"),
        ("gzip;q=0", None, "the only coding refused: identity"),
        ("identity", None, "identity only"),
        ("*", "zstd", "*: the first configured"),
        ("*;q=0.5, zstd;q=0", "br", "* with zstd refused"),
        ("gzip;q=0.5, identity", None, "identity preferred by q"),
        ("GZIP", "gzip", "any case"),
        ("gzip;q=bad, br;q=0.1", "br", "a malformed member is skipped"),
        ("", None, "an empty Accept-Encoding"),
    ]
    for ae, want, name in cases:
        r = get(srv, "/page.html", host="st.test", ae=ae)
        got = r and r.header("Content-Encoding")
        is_(got, want, "Accept-Encoding %r: %s" % (ae, name))
        body = r.body if want is None else decode(want, r.body) if r else None
        ok(body == PAGE, "... and the body is right")
    r = get(srv, "/page.html", host="gz.test", ae="zstd, br")
    is_(r and (r.header("Content-Encoding"), r.header("Vary")), (None, "Accept-Encoding"),
        "encodings = gzip and a client without gzip: as it is, still Vary")


def test_proxy(srv, a):
    data = gen_bytes(200000, 4)
    for c in CODINGS:
        for what, path in (("Content-Length", "/p/fixed?size=200000&seed=4"),
                           ("chunked", "/p/chunked?size=200000&seed=4&chunk=3001"),
                           ("close-delimited", "/p/close?size=200000&seed=4"),
                           ("download, chunked", "/p/download?size=200000&seed=4&framing=chunked")):
            r = get(srv, path, ae=c)
            ok(r and r.status == 200 and r.header("Content-Encoding") == c and r.chunked
               and r.header("Content-Length") is None and decode(c, r.body) == data,
               "proxied, %s, %s: chunked, decodes byte for byte" % (what, c))
    r = get(srv, "/p/echo", ae="gzip")
    d = json.loads(zlib.decompress(r.body, 31)) if r and r.header("Content-Encoding") == "gzip" else None
    is_(d and d["target"], "/echo", "proxied JSON: gzip (zlib decodes it too)")
    aes = d and [v for k, v in d["headers"] if k.lower() == "accept-encoding"]
    is_(aes, ["gzip"], "Accept-Encoding goes on to the backend unchanged")

    r = get(srv, "/p/notransform", ae="gzip")
    is_(r and (r.header("Content-Encoding"), r.body, r.header("Vary")), (None, PAGE, None),
        "Cache-Control: no-transform: as it is")
    r = get(srv, "/p/encoded", ae="gzip, br")
    is_(r and (r.header("Content-Encoding"), r.header("Content-Length"), r.body, r.header("Vary")),
        ("gzip", str(len(PRE_GZ)), PRE_GZ, None), "already encoded by the backend: untouched")
    r = get(srv, "/p/vary", ae="br")
    is_(r and (r.header_all("Vary"), r.header("ETag"), r.header("Content-Encoding")),
        (["Origin, Accept-Encoding"], 'W/"v1"', "br"),
        "the backend's Vary joined, its strong ETag weakened")
    r = get(srv, "/p/vary2", ae="br")
    is_(r and r.header_all("Vary"), ["accept-encoding, Cookie"], "Vary naming Accept-Encoding already: not twice")
    r = get(srv, "/p/weak", ae="br")
    is_(r and r.header("ETag"), 'W/"w1"', "a weak ETag stays as it is")
    for code in (204, 304):
        r = get(srv, "/p/status/%d" % code, ae="gzip")
        is_(r and (r.status, r.header("Content-Encoding"), r.body), (code, None, b""), "proxied %d: untouched" % code)
    r = get(srv, "/p/status/404", ae="gzip")
    is_(r and (r.status, r.header("Content-Encoding"), r.body), (404, None, b"status 404\n"),
        "a body of 11 bytes: under min_length")


def read_chunk(c, deadline):
    size = int(c._take_line(deadline).split(b";")[0], 16)
    if size == 0:
        c._take_line(deadline)
        return None
    return c._take(size + 2, deadline)[:-2]


def prefix(coding, raw):
    """What the reference decoder makes of a stream cut short after a flush:
    gzip through zlib; zstd through its tool, which writes out what it
    decoded before it complains of the cut; br through its tool with the
    one byte of an empty last meta-block (ISLAST, ISLASTEMPTY) added,
    since a brotli flush ends on a byte boundary and the tool writes
    nothing of a stream that does not end."""
    if coding == "gzip":
        return zlib.decompressobj(31).decompress(raw)
    if coding == "br":
        tool, raw = ["brotli", "-dc"], raw + b"\x03"
    else:
        tool = ["zstd", "-qdc"]
    return subprocess.run(tool, input=raw, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10).stdout


SSE_SENT = {}


def sse(h, req):
    """text/event-stream, three events; event i > 1 waits for gate NAME-i."""
    name = req.q("name")
    h.send_head(req, 200, [("Content-Type", "text/event-stream")], chunked=True)
    for i in (1, 2, 3):
        if i > 1 and not h.be.gate("%s-%d" % (name, i)).wait(10):
            return False
        SSE_SENT[name] = i
        ev = b"data: event %d\n\n" % i
        h.send(b"%x\r\n" % len(ev) + ev + b"\r\n")
    h.send(b"0\r\n\r\n")
    return False


def test_sse(srv, a):
    # Each event must arrive, decodable, before the backend sends the
    # next: the backend waits on a gate per event that the test opens
    # only once it has decoded the one before.
    events = [b"data: event %d\n\n" % i for i in (1, 2, 3)]
    for coding in CODINGS:
        c = srv.connect(timeout=10)
        c.send(request_bytes("GET", "/p/events?name=%s" % coding, headers=["Accept-Encoding: " + coding]))
        raw, got = b"", []
        try:
            deadline = time.monotonic() + 8
            hd = b""
            while not hd.endswith(b"\r\n\r\n"):
                hd += c._take_line(deadline)
            ok(b"Content-Encoding: " + coding.encode() in hd, "event stream, %s: compressed" % coding)
            for i in (1, 2, 3):
                want = b"".join(events[:i])
                while prefix(coding, raw) != want:
                    ch = read_chunk(c, deadline)
                    if ch is None:
                        break
                    raw += ch
                got.append((prefix(coding, raw) == want, SSE_SENT.get(coding)))
                a.release("%s-%d" % (coding, i + 1))
            while True:
                ch = read_chunk(c, deadline)
                if ch is None:
                    break
                raw += ch
        except (socket.timeout, ServerError, ValueError) as e:
            diag("event stream, %s: %s" % (coding, e))
        for i in (2, 3):
            a.release("%s-%d" % (coding, i))
        c.close()
        is_(got, [(True, 1), (True, 2), (True, 3)],
            "event stream, %s: each event decodes from the bytes received before the next is sent" % coding)
        is_(decode(coding, raw), b"".join(events), "event stream, %s: the whole stream decodes" % coding)


def test_log(srv):
    alog = srv.path("access.log")

    def line():
        for l in open(alog).read().splitlines():
            o = json.loads(l)
            if (o.get("request") or "").startswith("GET /p/echo"):
                return o
        return None
    o = wait_for(line, 5) or {}
    like((o.get("fields") or {}).get("compress", ""), r"^gzip \d+/\d+$", "access log: compress=CODING OUT/IN")


def config_errors():
    import tempfile
    d = tempfile.mkdtemp(prefix="portico-t-cz-")
    p = os.path.join(d, "t.ini")
    with open(p, "w") as f:
        f.write("[listen:a]\naddress = 127.0.0.1:1\n[route:r]\nreturn = 200 x\nmiddleware = m\n"
                "[middleware:m]\ntype = compress\nencodings = gzip, deflate\ngzip_level = 10\n"
                "br_level = 12\nzstd_level = 0\ntypes = text/html, html\nmin_length = big\n"
                "level = 3\nencodings = br\n")
    rc, out, err = portico(["-t", "-c", p])
    errs = [l for l in err.splitlines() if l.startswith(p)]
    ok(rc == 1, "compress: a bad block is refused")
    for want in ("%s:14: [middleware:m] level:" % p, "%s:15: [middleware:m] encodings:" % p):
        ok(any(l.startswith(want) for l in errs), "reported: %s" % want)
    with open(p, "w") as f:
        f.write("[listen:a]\naddress = 127.0.0.1:1\n[route:r]\nreturn = 200 x\nmiddleware = m\n"
                "[middleware:m]\ntype = compress\nencodings = gzip, deflate\ngzip_level = 10\n"
                "br_level = 12\nzstd_level = 0\ntypes = text/html, html\nmin_length = big\n")
    rc, out, err = portico(["-t", "-c", p])
    errs = [l for l in err.splitlines() if l.startswith(p)]
    is_((rc, errs), (1, [
        '%s:8: [middleware:m] encodings: expected a list of zstd, br and gzip, not "deflate"' % p,
        '%s:9: [middleware:m] gzip_level: expected a level from 1 to 9, not "10"' % p,
        '%s:10: [middleware:m] br_level: expected a level from 0 to 11, not "12"' % p,
        '%s:11: [middleware:m] zstd_level: expected a level from 1 to 19, not "0"' % p,
        '%s:12: [middleware:m] types: expected media types such as text/html, text/* or *, not "html"' % p,
        '%s:13: [middleware:m] min_length: expected a size such as 256 or 1k, not "big"' % p,
    ]), "compress: every bad value reported with its line")


PRE_GZ = b""


def main():
    global PRE_GZ
    import gzip as gz
    PRE_GZ = gz.compress(b"precompressed copy\n" * 50, mtime=0)
    a = Backend("a")
    a.on("/notransform", lambda h, req: h.respond(req, 200, PAGE, headers=[("Cache-Control", "public, no-transform")],
                                                   ctype="text/html"))
    a.on("/encoded", lambda h, req: h.respond(req, 200, PRE_GZ, headers=[("Content-Encoding", "gzip")],
                                               ctype="text/html"))
    a.on("/vary", lambda h, req: h.respond(req, 200, PAGE, headers=[("Vary", "Origin"), ("ETag", '"v1"')],
                                            ctype="text/html"))
    a.on("/vary2", lambda h, req: h.respond(req, 200, PAGE, headers=[("Vary", "accept-encoding, Cookie")],
                                             ctype="text/html"))
    a.on("/events", sse)
    a.on("/weak", lambda h, req: h.respond(req, 200, PAGE, headers=[("ETag", 'W/"w1"')], ctype="text/html"))
    try:
        with Server(CONF % {"a": a.addr}, start=False) as srv:
            root = srv.path("root")
            os.makedirs(root)
            for name, data in (("page.html", PAGE), ("small.html", SMALL), ("img.png", PAGE),
                               ("data.json", JSON), ("notes.txt", PAGE), ("pre.html", PAGE),
                               ("pre.html.gz", PRE_GZ), ("empty.html", b"")):
                with open(os.path.join(root, name), "wb") as f:
                    f.write(data)
            srv.start()
            test_static(srv)
            test_keepalive(srv)
            test_negotiation(srv)
            test_proxy(srv, a)
            test_sse(srv, a)
            test_log(srv)
    finally:
        a.stop()
    config_errors()


run(main)
