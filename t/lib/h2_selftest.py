#!/usr/bin/env python3
# Self-test of t/lib/h2.py (not part of the suite: run it by hand with
# `python3 t/lib/h2_selftest.py`; it prints TAP).
#
# First the HPACK examples of RFC 7541 Appendix C (C.1 integers, C.2 single
# fields, C.3-C.6 request and response sequences with and without Huffman
# coding, checking the dynamic table after each block) and samples of the
# Huffman code of Appendix B.  Then real servers: nginx (/usr/sbin/nginx)
# over TLS with ALPN h2 and over prior-knowledge h2c, and h2o
# (/usr/bin/h2o) if it is installed; each is started on free loopback
# ports from a temp dir with a self-signed EC certificate made by
# `openssl req`, and killed at the end whatever happens.
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from portico import diag, free_port, is_, ok, run, skip  # noqa: E402
from h2 import *  # noqa: E402,F403
import h2  # noqa: E402

NGINX = "/usr/sbin/nginx"
H2O = "/usr/bin/h2o"

# --------------------------------------------------------------------------
# RFC 7541 Appendix C

REQ1 = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")]
REQ2 = REQ1 + [("cache-control", "no-cache")]
REQ3 = [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"),
        (":authority", "www.example.com"), ("custom-key", "custom-value")]
AUTH, NOCACHE, CUSTOM = REQ1[3], REQ2[4], REQ3[4]
REQUESTS = [(REQ1, [AUTH], 57), (REQ2, [NOCACHE, AUTH], 110), (REQ3, [CUSTOM, NOCACHE, AUTH], 164)]

LOC = ("location", "https://www.example.com")
DATE1 = ("date", "Mon, 21 Oct 2013 20:13:21 GMT")
DATE2 = ("date", "Mon, 21 Oct 2013 20:13:22 GMT")
PRIV = ("cache-control", "private")
COOKIE = ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")
GZIP = ("content-encoding", "gzip")
RESPONSES = [
    ([(":status", "302"), PRIV, DATE1, LOC], [LOC, DATE1, PRIV, (":status", "302")], 222),
    ([(":status", "307"), PRIV, DATE1, LOC], [(":status", "307"), LOC, DATE1, PRIV], 222),
    ([(":status", "200"), PRIV, DATE2, LOC, GZIP, COOKIE], [COOKIE, GZIP, DATE2], 215),
]

C3 = ["828684410f7777772e6578616d706c652e636f6d",
      "828684be58086e6f2d6361636865",
      "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"]
C4 = ["828684418cf1e3c2e5f23a6ba0ab90f4ff",
      "828684be5886a8eb10649cbf",
      "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"]
C5 = ["4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d54"
      "6e1768747470733a2f2f7777772e6578616d706c652e636f6d",
      "4803333037c1c0bf",
      "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d"
      "4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b207665"
      "7273696f6e3d31"]
C6 = ["488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b"
      "97c8e9ae82ae43d3",
      "4883640effc1c0bf",
      "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335df"
      "dfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"]


def check_sequence(name, blocks, expected, max_size=4096):
    d = Decoder(max_size)
    for i, (hexblock, (headers, table, size)) in enumerate(zip(blocks, expected)):
        try:
            got = d.decode(bytes.fromhex(hexblock))
        except HPACKError as e:
            got = "HPACKError: %s" % e
        is_(got, headers, "%s.%d: header list" % (name, i + 1))
        is_((d.table, d.size), (table, size), "%s.%d: dynamic table" % (name, i + 1))


def hpack_tests():
    for value, prefix, hexed in ((10, 5, "0a"), (1337, 5, "1f9a0a"), (42, 8, "2a")):
        is_(encode_int(value, prefix).hex(), hexed, "C.1: %d with a %d-bit prefix encodes" % (value, prefix))
        is_(decode_int(bytes.fromhex(hexed), 0, prefix), (value, len(hexed) // 2), "C.1: and decodes")

    # Samples of the Huffman code of Appendix B (symbol: code, length).
    for sym, code, bits in ((0, 0x1ff8, 13), (10, 0x3ffffffc, 30), (32, 0x14, 6), (48, 0x0, 5),
                            (97, 0x3, 5), (122, 0x7b, 7), (123, 0x7ffe, 15), (126, 0x1ffd, 13),
                            (255, 0x3ffffee, 26), (256, 0x3fffffff, 30)):
        is_((h2.HUFFMAN_CODES[sym], h2._HUFFMAN_LENGTHS[sym]), (code, bits), "Appendix B: symbol %d" % sym)
    ok(sum(2.0 ** -n for n in h2._HUFFMAN_LENGTHS) == 1.0, "Appendix B: the code is complete (Kraft sum 1)")
    every = bytes(range(256)) * 3
    is_(huffman_decode(huffman_encode(every)), every, "Huffman round trip of every octet")

    for hexblock, fields, table in (
            ("400a637573746f6d2d6b65790d637573746f6d2d686561646572",
             [("custom-key", "custom-header")], [("custom-key", "custom-header")]),
            ("040c2f73616d706c652f70617468", [(":path", "/sample/path")], []),
            ("100870617373776f726406736563726574", [("password", "secret")], []),
            ("82", [(":method", "GET")], [])):
        d = Decoder()
        is_((d.decode(bytes.fromhex(hexblock)), d.table), (fields, table), "C.2: %s" % fields[0][0])

    check_sequence("C.3", C3, REQUESTS)
    check_sequence("C.4", C4, REQUESTS)
    check_sequence("C.5", C5, RESPONSES, 256)
    check_sequence("C.6", C6, RESPONSES, 256)

    # The encoder makes the same octets from the same representations.
    e = Encoder()
    is_(e.literal("custom-key", "custom-header", "incremental").hex(),
        "400a637573746f6d2d6b65790d637573746f6d2d686561646572", "encoder: C.2.1 (literal with incremental indexing)")
    is_(e.table, [("custom-key", "custom-header")], "encoder: its table has the entry")
    is_(Encoder().literal(":path", "/sample/path", name_index=4).hex(), "040c2f73616d706c652f70617468",
        "encoder: C.2.2 (literal without indexing, indexed name)")
    is_(Encoder().literal("password", "secret", "never").hex(), "100870617373776f726406736563726574",
        "encoder: C.2.3 (never indexed)")
    for name, blocks, huff in (("C.3.1", C3, False), ("C.4.1", C4, True)):
        e = Encoder()
        block = e.indexed(2) + e.indexed(6) + e.indexed(4) + e.literal(
            ":authority", "www.example.com", "incremental", name_index=1, huffman=huff)
        is_(block.hex(), blocks[0], "encoder: %s" % name)
    e, d = Encoder(huffman=True), Decoder()
    fields = [("x-%d" % i, "v" * i + "\xff\x00") for i in range(40)]
    is_(d.decode(e.encode(fields, index=True)), fields, "encoder and decoder agree, Huffman, indexing")
    is_(d.table, e.table, "and hold the same table")
    bomb = e.size_update(8192) + e.literal("x-big", "A" * 4000, "incremental") + e.indexed(62) * 50
    d.limit = 8192
    is_(d.decode(bomb)[-1], ("x-big", "A" * 4000), "an HPACK bomb decodes (size update, 50 references)")

    for hexblock, why in (("80", "index 0"), ("be", "index beyond the tables"), ("3fe21f", "size update above the limit"),
                          ("823f01", "size update after a field"), ("0082ffff", "Huffman padding of 16 bits"),
                          ("0084ffffffff", "EOS in a Huffman string"), ("008541", "string cut short"),
                          ("0fffffffffff7f", "integer over 32 bits")):
        try:
            Decoder().decode(bytes.fromhex(hexblock))
            ok(False, "HPACKError for %s" % why)
        except HPACKError:
            ok(True, "HPACKError for %s" % why)


# --------------------------------------------------------------------------
# servers


def wait_port(proc, port, deadline):
    """True once port accepts a connection; False if proc exits or time runs out."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def make_files(d):
    www = os.path.join(d, "www")
    os.makedirs(os.path.join(www, "up"))
    rnd = random.Random(7)
    files = {"hello.txt": b"Hello, HTTP/2!\n"}
    for i in range(10):
        files["f%d.bin" % i] = bytes(rnd.getrandbits(8) for _ in range(1000 + 37000 * i))
    files["big.bin"] = files["f9.bin"] * 2
    for name, body in files.items():
        with open(os.path.join(www, name), "wb") as f:
            f.write(body)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"),
                    "-days", "2", "-subj", "/CN=localhost"], check=True, timeout=30,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return files


NGINX_CONF = """daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 128; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{ text/plain txt; application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{tls} ssl http2;
        listen 127.0.0.1:{plain} http2;
        server_name localhost;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        root {d}/www;
        location = /post {{ return 200 "posted\\n"; }}
        location /up/ {{ dav_methods PUT; client_max_body_size 10m; }}
    }}
}}
"""

H2O_CONF = """user: {user}
pid-file: {d}/h2o.pid
error-log: {d}/h2o-error.log
listen:
  host: 127.0.0.1
  port: {tls}
  ssl:
    certificate-file: {d}/cert.pem
    key-file: {d}/key.pem
listen:
  host: 127.0.0.1
  port: {plain}
hosts:
  default:
    paths:
      /:
        file.dir: {d}/www
"""


def start(argv, d, name, ports):
    log = open(os.path.join(d, name + ".out"), "wb")
    # A session of its own, so that stopping it reaches its children too
    # (h2o runs a helper process or two).
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
    log.close()
    deadline = time.monotonic() + 10
    up = all(wait_port(p, port, deadline) for port in ports)
    if not up:
        with open(os.path.join(d, name + ".out"), "rb") as f:
            diag("%s did not start: %s" % (name, f.read().decode("utf-8", "replace")[-2000:]))
    return p, up


def stop(p):
    """SIGTERM to the server's process group, SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(wait)
            return
        except subprocess.TimeoutExpired:
            pass
    diag("pid %d did not exit after SIGKILL" % p.pid)


def get(c, path, authority="localhost", method="GET"):
    return c.read_response(c.request(method, path, authority))


def nginx_tests(d, files, procs):
    tls, plain = free_port(), free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(d=d, tls=tls, plain=plain))
    p, up = start([NGINX, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")], d, "nginx", [tls, plain])
    procs.append(p)
    if not ok(up, "nginx starts"):
        return

    with H2Client("127.0.0.1", tls, tls=True, server_name="localhost") as c:
        is_(c.alpn, "h2", "nginx TLS: ALPN selects h2")
        ok(SETTINGS in [f.type for f in c.frames], "nginx TLS: the server's SETTINGS arrive")
        r = get(c, "/hello.txt")
        is_((r.state, r.status, r.body), ("complete", 200, files["hello.txt"]), "nginx TLS: GET /hello.txt")
        is_(r.header("content-type"), "text/plain", "nginx TLS: content-type decoded (nginx uses Huffman)")
        is_(r.header("content-length"), str(len(files["hello.txt"])), "nginx TLS: content-length")
        diag("nginx response headers: %r" % r.headers)

        # Ten streams at once, the larger ones beyond the initial window so
        # the responses interleave and need WINDOW_UPDATEs.
        sids = {c.request("GET", "/f%d.bin" % i, "localhost"): "f%d.bin" % i for i in range(10)}
        rs = {sid: c.read_response(sid, 20) for sid in sids}
        ok(all(r.state == "complete" and r.status == 200 and r.body == files[sids[sid]] for sid, r in rs.items()),
           "nginx TLS: 10 concurrent streams, every body exact")
        order = [f.stream_id for f in c.frames if f.type == DATA and f.stream_id in sids]
        switches = sum(1 for a, b in zip(order, order[1:]) if a != b)
        ok(switches > 9, "nginx TLS: their DATA frames interleave (%d switches)" % switches)

        r = get(c, "/f3.bin", method="HEAD")
        is_((r.state, r.status, r.body, r.header("content-length")), ("complete", 200, b"", str(len(files["f3.bin"]))),
            "nginx TLS: HEAD has the length and no body")
        sid = c.request("POST", "/post", "localhost", [("content-type", "text/plain")], body=b"x" * 5000)
        r = c.read_response(sid)
        is_((r.state, r.status, r.body), ("complete", 200, b"posted\n"), "nginx TLS: POST with a body")
        body = bytes(random.Random(3).getrandbits(8) for _ in range(300000))
        sid = c.request("PUT", "/up/put.bin", "localhost", body=body)
        r = c.read_response(sid, 20)
        ok(r.status in (201, 204), "nginx TLS: PUT of 300000 octets (flow-controlled) is %r" % r.status)
        r = get(c, "/up/put.bin")
        ok(r.status == 200 and r.body == body, "nginx TLS: and reads back the same")
        f = c.ping(b"12345678")
        ok(f is not None and f.opaque == b"12345678", "nginx TLS: PING gets an ACK with the same data")
        is_(c.errors, [], "nginx TLS: nothing the client could not follow")

    with H2Client("127.0.0.1", plain) as c:
        r = get(c, "/hello.txt")
        is_((r.state, r.status, r.body), ("complete", 200, files["hello.txt"]), "nginx h2c: GET /hello.txt")
        # A header block in HEADERS and three CONTINUATION frames.
        sid = c.next_stream_id
        c.next_stream_id += 2
        block = c.encoder.encode([(":method", "GET"), (":scheme", "http"), (":authority", "localhost"),
                                  (":path", "/hello.txt"), ("x-pad", "p" * 100)])
        c.send(headers_frame(sid, block[:10], end_stream=True, end_headers=False),
               continuation_frame(sid, block[10:40], False), continuation_frame(sid, block[40:80], False),
               continuation_frame(sid, block[80:]))
        r = c.read_response(sid)
        is_((r.status, r.body), (200, files["hello.txt"]), "nginx h2c: header block over three CONTINUATIONs")
        # HPACK bomb: one 4000-octet entry, then 2000 one-octet references.
        sid = c.next_stream_id
        c.next_stream_id += 2
        block = c.encoder.encode([(":method", "GET"), (":scheme", "http"), (":authority", "localhost"),
                                  (":path", "/hello.txt")])
        block += c.encoder.literal("x-big", "A" * 4000, "incremental") + c.encoder.indexed(62) * 2000
        c.send(headers_frame(sid, block, end_stream=True))
        r = c.read_response(sid)
        diag("nginx on an HPACK bomb: state %s status %s reset %s goaway %r"
             % (r.state, r.status, r.reset, c.goaway))
        ok(r.state != "open" or c.goaway is not None, "nginx h2c: answers an HPACK bomb somehow")

    # The stall: no WINDOW_UPDATE, so exactly the initial 65535 octets come.
    with H2Client("127.0.0.1", plain, window_updates=False) as c:
        sid = c.request("GET", "/big.bin", "localhost")
        st = c.stream(sid)
        c.wait_for(lambda f: len(st.body) >= 65535, 5)
        c.wait_for(lambda f: False, 0.5)
        is_((len(st.body), st.state), (65535, "open"), "nginx: without WINDOW_UPDATE the response stalls at 65535")
        c.send(window_update_frame(0, 1 << 30), window_update_frame(sid, 1 << 30))
        r = c.read_response(sid, 10)
        ok(r.state == "complete" and r.body == files["big.bin"], "nginx: and completes after a WINDOW_UPDATE")

    with H2Client("127.0.0.1", plain) as c:
        c.send(data_frame(0, b"hostile"))
        g = c.read_until_goaway()
        is_(g and g.error_code, PROTOCOL_ERROR, "nginx: DATA on stream 0 gets GOAWAY PROTOCOL_ERROR")
        ok(c.closed_within(5), "nginx: and the connection closes")

    # A header block that never ends: HEADERS then 5000 CONTINUATIONs.  The
    # client must not put a WINDOW_UPDATE of its own inside the block (nginx
    # would rightly answer that with PROTOCOL_ERROR), so it sends none.
    with H2Client("127.0.0.1", plain, window_updates=False, ack_ping=False) as c:
        flood = [headers_frame(1, c.encoder.encode([(":method", "GET")]), end_headers=False)]
        flood += [continuation_frame(1, b"\x00\x01a\x01b", end_headers=False)] * 5000
        sent = c.send(*flood)
        r = c.read_response(1)
        diag("nginx on 5000 CONTINUATIONs: sent %s, stream 1 %r reset %s, GOAWAY %r, closed %s"
             % (sent, r, r.reset, c.goaway, c.closed))
        is_(r.status, 400, "nginx: a CONTINUATION flood gets 400 (too many header lines)")


def h2o_tests(d, files, procs):
    if not os.access(H2O, os.X_OK):
        skip("h2o is not installed", 4)
        return
    tls, plain = free_port(), free_port()
    conf = os.path.join(d, "h2o.conf")
    with open(conf, "w") as f:
        # h2o started as root drops to "nobody", who cannot read the temp dir.
        user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        f.write(H2O_CONF.format(d=d, tls=tls, plain=plain, user=user))
    p, up = start([H2O, "-c", conf], d, "h2o", [tls, plain])
    procs.append(p)
    if not ok(up, "h2o starts"):
        return
    with H2Client("127.0.0.1", tls, tls=True) as c:
        results = [get(c, "/hello.txt") for _ in range(3)]
        ok(all((r.state, r.status, r.body) == ("complete", 200, files["hello.txt"]) for r in results),
           "h2o TLS: three GETs on one connection, 200 and the exact body")
        is_([r.header("content-type") for r in results], ["text/plain"] * 3,
            "h2o TLS: headers decode the same each time (dynamic table references)")
        diag("h2o response headers: %r; decoder table %r" % (results[-1].headers, c.decoder.table))
    with H2Client("127.0.0.1", plain) as c:
        r = get(c, "/f5.bin")
        is_((r.state, r.status, r.body == files["f5.bin"]), ("complete", 200, True), "h2o h2c: GET /f5.bin")


def main():
    hpack_tests()
    if not os.access(NGINX, os.X_OK):
        skip("nginx is not installed", 1)
        return
    d = tempfile.mkdtemp(prefix="h2selftest.")
    procs = []
    try:
        files = make_files(d)
        nginx_tests(d, files, procs)
        h2o_tests(d, files, procs)
    finally:
        for p in procs:
            stop(p)
        if os.environ.get("PORTICO_LEAVE") == "1":
            diag("left %s" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)


run(main)
