#!/usr/bin/env python3
# Proxy streaming: large uploads and downloads byte-exact in every framing,
# back-pressure, an event stream relayed as it comes, request smuggling
# attempts, and pipelined requests.
import hashlib
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1
max_body_size = 16m

[listen:http]
address = 127.0.0.1:{port}

[pool:up]
server = {a}

[pool:pp]
server = {b}
server = {c}

[route:up]
path = /up/
pool = up
strip_prefix = yes

[route:pp]
path = /pp/
pool = pp
strip_prefix = yes
"""

MiB = 1024 * 1024


def upload(srv, head, pieces, timeout=30):
    c = srv.connect(timeout=timeout)
    try:
        c.send(head)
        for p in pieces:
            if not c.send(p):
                break
        return c.read_response(timeout=timeout)
    finally:
        c.close()


def test_uploads(srv, a):
    data = gen_bytes(5 * MiB, 1)
    want = hashlib.sha256(data).hexdigest()

    # Chunks of uneven sizes, so chunk edges fall anywhere in the proxy's reads.
    def chunks():
        i, k = 0, 0
        sizes = [1, 65536, 12345, 300000, 7, 4096]
        while i < len(data):
            n = sizes[k % len(sizes)]
            k += 1
            piece = data[i:i + n]
            i += n
            yield b"%x\r\n" % len(piece) + piece + b"\r\n"
        yield b"0\r\n\r\n"
    head = b"POST /up/sha256 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    r = upload(srv, head, chunks())
    d = json.loads(r.body) if r is not None and r.status == 200 else {}
    is_((d.get("len"), d.get("sha256")), (5 * MiB, want), "5 MiB chunked upload reaches the backend byte-exact")
    is_(d.get("chunked"), True, "it goes to the backend chunked")

    head = b"POST /up/sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(data)
    mv = memoryview(data)
    r = upload(srv, head, (bytes(mv[i:i + 100000]) for i in range(0, len(data), 100000)))
    d = json.loads(r.body) if r is not None and r.status == 200 else {}
    is_((d.get("len"), d.get("sha256"), d.get("chunked")), (5 * MiB, want, False),
        "5 MiB Content-Length upload reaches the backend byte-exact, with its length")
    last = a.log[-1] if a.log else None
    is_(last and last.header_all("Content-Length"), [str(5 * MiB)], "the backend saw Content-Length: %d" % (5 * MiB))


def test_downloads(srv, a):
    n = 20 * MiB
    want = hashlib.sha256(gen_bytes(n, 2)).hexdigest()
    for framing in ("cl", "chunked"):
        c = srv.connect(timeout=30)
        try:
            c.send(request_bytes("GET", "/up/download?size=%d&framing=%s&seed=2" % (n, framing)))
            st, hs, body, chunked = read_large_response(c, 30)
        finally:
            c.close()
        is_((st, len(body), hashlib.sha256(body).hexdigest()), (200, n, want),
            "20 MiB download, %s from the backend: byte-exact" % framing)
        if framing == "cl":
            is_(dict((k.lower(), v) for k, v in hs).get("content-length"), str(n), "  with the backend's Content-Length")
        else:
            is_(chunked, True, "  chunked to the client")

    # Close-delimited from the backend: relayed whole, and the client's
    # connection goes on (the proxy frames it for the client).
    c = srv.connect(timeout=10)
    r = exchange(c, "GET", "/up/close?size=%d&seed=3" % MiB, timeout=10)
    is_((r and r.status, r and r.body == gen_bytes(MiB, 3)), (200, True), "close-delimited response relayed byte-exact")
    r2 = exchange(c, "GET", "/up/fixed?size=5")
    is_((r2 and r2.status, r2 and r2.body), (200, gen_bytes(5)), "the client connection goes on after it")
    c.close()
    ok(r is not None and r2 is not None and r.header("X-Conn") != r2.header("X-Conn"),
       "the close-delimited upstream connection was not reused")

    # An HTTP/1.0 client cannot take chunked: the body is relayed until the
    # proxy closes, whatever framing the backend used.
    for framing in ("chunked", "close", "cl"):
        want = gen_bytes(300000, 5)
        c = srv.connect(timeout=10)
        c.send(b"GET /up/download?size=300000&seed=5&framing=%s&chunk=7000 HTTP/1.0\r\nHost: x\r\n\r\n"
               % framing.encode())
        raw = c.read_until_close(10)
        c.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        is_((head.split(b"\r\n")[0], body == want, len(body)), (b"HTTP/1.1 200 OK", True, len(want)),
            "HTTP/1.0 client, %s from the backend: the whole body, byte-exact" % framing)
        ok(b"transfer-encoding" not in head.lower(), "  and no Transfer-Encoding to a 1.0 client")

    # Back-pressure: a client that does not read holds the backend back.  The
    # kernel's socket buffers may hold some megabytes; a proxy without
    # back-pressure would take all 64.
    n = 64 * MiB
    want = hashlib.sha256(gen_bytes(n, 4)).hexdigest()
    a.reset_counters()
    c = srv.connect(timeout=30, rcvbuf=65536)
    c.send(request_bytes("GET", "/up/download?size=%d&framing=cl&seed=4" % n))
    wait_for(lambda: a.bytes_out > 0, 3)
    time.sleep(1.0)  # what is under test is how much piles up meanwhile
    held = a.bytes_out
    ok(held < 32 * MiB, "back-pressure: with the client not reading, the backend got %.1f MiB of 64 out" % (held / MiB))
    st, hs, body, _ = read_large_response(c, 30)
    is_((st, hashlib.sha256(body).hexdigest()), (200, want), "back-pressure: then the whole 64 MiB arrive byte-exact")
    c.close()


def test_sse(srv, a):
    c = srv.connect(timeout=5)
    c.send(request_bytes("GET", "/up/sse?events=3&gate=g1"))
    events = []
    first_before_second = None
    try:
        deadline = time.monotonic() + 3
        head = []
        while True:
            line = c._take_line(deadline)
            if line == b"\r\n":
                break
            head.append(line)
        like(head[0].decode("latin-1"), r"^HTTP/1.1 200 ", "event stream: 200 head arrives before the stream ends")
        size = int(c._take_line(deadline).split(b";")[0], 16)
        events.append(c._take(size + 2, deadline)[:-2])
        first_before_second = a.events_sent == 1
    except (socket.timeout, ServerError) as e:
        diag("event stream: %s" % e)
    a.release("g1")
    is_(events, [b"data: event 1\n\n"], "event stream: the first event reaches the client on its own")
    ok(first_before_second, "event stream: before the backend sent the second")
    try:
        deadline = time.monotonic() + 5
        while True:
            size = int(c._take_line(deadline).split(b";")[0], 16)
            if size == 0:
                c._take_line(deadline)
                break
            events.append(c._take(size + 2, deadline)[:-2])
    except (socket.timeout, ServerError, ValueError) as e:
        diag("event stream: %s" % e)
    is_(b"".join(events), b"data: event 1\n\ndata: event 2\n\ndata: event 3\n\n", "event stream: then the rest, and its end")
    c.close()


SMUGGLE = b"GET /up/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def test_smuggling(srv, a):
    cases = [
        ("Content-Length and Transfer-Encoding",
         b"POST /up/echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
         % (5 + len(SMUGGLE)) + SMUGGLE),
        ("Transfer-Encoding and Content-Length",
         b"POST /up/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + SMUGGLE),
        ("chunked not the final coding",
         b"POST /up/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
         + SMUGGLE),
        ("space before the colon",
         b"POST /up/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLE),
        ("two Content-Lengths",
         b"POST /up/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLE) + SMUGGLE),
    ]
    for what, raw in cases:
        before = a.requests
        c = srv.connect(timeout=5)
        c.send(raw)
        try:
            r = c.read_response()
            rest = c.read_until_close(3)
        except (socket.timeout, ServerError) as e:
            r, rest = None, repr(e)
        c.close()
        is_((r and r.status, rest), (400, b""), "smuggling, %s: 400 and the connection closed" % what)
        is_((a.requests - before, a.paths["/smuggled"]), (0, 0), "smuggling, %s: nothing reached the backend" % what)

    # A request inside a chunked body stays body.
    before = a.requests
    body = b"%x\r\n" % len(SMUGGLE) + SMUGGLE + b"\r\n0\r\n\r\n"
    c = srv.connect(timeout=5)
    r = exchange(c, "POST", "/up/echo", headers=["Transfer-Encoding: chunked"], body=body)
    d = echoed(r)
    is_(d and d["body"].encode("latin-1"), SMUGGLE, "a request hidden in a chunked body reaches the backend as body")
    ok(c.is_open_after(0.3), "and nothing more comes back for it")
    c.close()
    is_((a.requests - before, a.paths["/smuggled"]), (1, 0), "the backend saw one request, not two")

    # A chunk size too large to be real, a request behind it.
    before = a.requests
    c = srv.connect(timeout=5)
    c.send(b"POST /up/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"10000000000000001\r\nab\r\n0\r\n\r\n" + SMUGGLE)
    try:
        c.read_until_close(5)
        closed = True
    except socket.timeout:
        closed = False
    c.close()
    ok(closed, "overflowing chunk size: the connection is closed")
    ok(a.wait_requests(before + 2, 0.3) is False and a.paths["/smuggled"] == 0,
       "overflowing chunk size: no second request at the backend (%d seen)" % (a.requests - before))


def test_pipeline(srv, b, c_):
    reqs = []
    want = []
    for i in range(8):
        if i % 3 == 0:
            reqs.append(request_bytes("GET", "/pp/slow?delay=0.3&n=%d" % i))
        elif i % 3 == 1:
            reqs.append(request_bytes("POST", "/pp/echo?n=%d" % i, body=b"body %d" % i))
        else:
            reqs.append(request_bytes("GET", "/pp/echo?n=%d" % i))
        want.append(i)
    reqs.append(request_bytes("HEAD", "/pp/fixed?size=9"))
    reqs.append(request_bytes("GET", "/pp/fixed?size=7", close=True))
    c = srv.connect(timeout=10)
    c.send(b"".join(reqs))
    got = []
    try:
        for i in range(8):
            d = echoed(c.read_response(timeout=10))
            got.append(int(d["target"].rsplit("=", 1)[1]) if d else None)
            if d and i % 3 == 1 and d["body"] != "body %d" % i:
                got[-1] = "bad body"
        r1 = c.read_response(head=True)
        r2 = c.read_response()
        tail = c.read_until_close(3)
    except (socket.timeout, ServerError) as e:
        diag("pipeline: %s" % e)
        r1 = r2 = tail = None
    c.close()
    is_(got, want, "8 pipelined requests (slow ones among them) answered in order")
    is_((r1 and r1.status, r1 and r1.header("Content-Length"), r2 and r2.body, tail),
        (200, "9", gen_bytes(7), b""), "then a pipelined HEAD and a last request, then the close")
    is_(sorted(set([b.name] * bool(b.requests) + [c_.name] * bool(c_.requests))), ["b", "c"],
        "the pipelined requests went to both servers")


def main():
    be = {n: Backend(n) for n in "abc"}
    try:
        conf = CONF
        for n, x in be.items():
            conf = conf.replace("{%s}" % n, x.addr)
        with Server(conf) as srv:
            test_uploads(srv, be["a"])
            test_downloads(srv, be["a"])
            test_sse(srv, be["a"])
            test_smuggling(srv, be["a"])
            test_pipeline(srv, be["b"], be["c"])
    finally:
        for x in be.values():
            x.stop()


run(main)
