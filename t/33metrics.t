#!/usr/bin/env python3
# metrics = prometheus: the text exposition format (0.0.4) through the real
# binary.  The output passes `promtool check metrics` (skipped without
# promtool); every family has one HELP and one TYPE line; counters equal
# the requests made, by route, method and status class, summed over two
# workers; histograms are cumulative and agree with _count; pool servers
# change state when their backend goes away or fails its checks;
# middleware refusals (a rate limit, basic authentication) are counted by
# block and status; TLS handshakes, resumptions and failures by listener;
# counters of a route survive a reload under the same name and buckets
# and start again when its buckets change; bad metrics_buckets values are
# refused with file:line.
import os
import re
import shutil
import base64
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import Backend  # noqa: E402

CONF = """\
[global]
workers = 2
error_log = {dir}/error.log

[listen:http]
address = 127.0.0.1:{port}

[pool:app]
server = %(app)s
max_fails = 1
fail_timeout = 30s
retries = 0
metrics_buckets = 10ms 1s

[pool:dead]
server = 127.0.0.1:%(deadport)d
health_check = GET /health every 100ms
fall = 1

[middleware:rl]
type = ratelimit
rate = 10/m
burst = 2

[route:metrics]
path = /metrics
metrics = prometheus

[route:status]
path = /status
status = json

[route:site]
path = /site/
return = 200 hello
metrics_buckets = %(buckets)s

[route:missing]
path = /missing/
return = 404 nope

[route:app]
path = /app/
pool = app

[route:limited]
path = /limited/
return = 200 ok
middleware = rl
%(extra)s"""

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def conf(app, deadport, buckets="5ms 25ms 100ms 500ms 1s 5s", extra=""):
    return CONF % {"app": app, "deadport": deadport, "buckets": buckets, "extra": extra}


def scrape(srv):
    r = srv.get("/metrics")
    if r is None or r.status != 200:
        raise ServerError("GET /metrics failed: %r" % r)
    return r


def parse(text):
    """{(name, frozenset(labels.items())): value} and the HELP/TYPE lines seen."""
    samples, meta = {}, []
    for line in text.splitlines():
        if line.startswith("#"):
            meta.append(tuple(line.split(" ", 3)[1:3]))
            continue
        m = SAMPLE_RE.match(line)
        if m is None:
            raise ValueError("not a sample line: %r" % line)
        labels = frozenset(LABEL_RE.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, meta


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def hist(samples, name, **labels):
    """[(le, count)] in the order of le, +Inf last."""
    out = []
    for (n, lab), v in samples.items():
        d = dict(lab)
        if n == name + "_bucket" and all(d.get(k) == w for k, w in labels.items()) and \
                len(d) == len(labels) + 1:
            out.append((float(d["le"]), v))
    return sorted(out)


def promtool_check(text, what):
    tool = shutil.which("promtool")
    if tool is None:
        skip("promtool not installed (Debian package prometheus)")
        return
    p = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    ok(p.returncode == 0, "promtool check metrics passes %s" % what)
    if p.returncode != 0:
        diag(p.stdout.decode() + p.stderr.decode())


def test_format(srv):
    r = scrape(srv)
    is_(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8", "Content-Type of 0.0.4")
    text = r.body.decode()
    promtool_check(text, "(at start)")
    samples, meta = parse(text)
    helps = [n for k, n in meta if k == "HELP"]
    types = [n for k, n in meta if k == "TYPE"]
    is_((len(helps), len(types)), (len(set(helps)), len(set(types))), "HELP and TYPE once per family")
    ok(set(helps) == set(types), "... each family has both (%d)" % len(helps))
    for n in ("process_start_time_seconds", "process_cpu_seconds_total", "process_resident_memory_bytes",
              "process_open_fds", "process_max_fds", "portico_config_generation", "portico_reloads_total"):
        ok(val(samples, n) is not None, "%s is there" % n)
    ok(val(samples, "process_resident_memory_bytes") > 1e6, "... resident memory above 1 MB")
    ok(val(samples, "process_open_fds") >= 4, "... open fds counted")
    is_(val(samples, "portico_build_info", version=version()), 1.0, "portico_build_info{version} 1")
    is_(val(samples, "portico_workers"), 2.0, "two workers")
    is_(val(samples, "portico_config_generation"), 1.0, "config generation 1")
    r = srv.get("/metrics", method="POST")
    is_(r and r.status, 405, "POST /metrics: 405")


def test_counts(srv):
    # New connections each: with two workers both take some, and the
    # scrape sums them.
    statuses = [srv.get("/site/%d" % i).status for i in range(7)]
    statuses += [srv.get("/missing/%d" % i).status for i in range(3)]
    is_(statuses, [200] * 7 + [404] * 3, "7 GETs answered 200 and 3 answered 404")
    is_(srv.get("/site/x", method="POST").status, 200, "a POST")
    is_(srv.get("/site/x", method="HEAD").status, 200, "a HEAD")
    is_(srv.get("/site/x", method="PATCH").status, 200, "a PATCH")
    text = scrape(srv).body.decode()
    samples, _ = parse(text)
    R = "portico_http_requests_total"
    is_(val(samples, R, route="site", method="GET", code="2xx"), 7.0, "site GET 2xx: 7")
    is_(val(samples, R, route="missing", method="GET", code="4xx"), 3.0, "missing GET 4xx: 3")
    is_(val(samples, R, route="site", method="POST", code="2xx"), 1.0, "site POST 2xx: 1")
    is_(val(samples, R, route="site", method="HEAD", code="2xx"), 1.0, "site HEAD 2xx: 1")
    is_(val(samples, R, route="site", method="other", code="2xx"), 1.0, "PATCH counts as method other")
    is_(val(samples, R, route="site", method="GET", code="4xx"), None, "no series for what never happened")
    H = "portico_http_request_duration_seconds"
    h = hist(samples, H, route="site")
    is_([le for le, _ in h], [0.005, 0.025, 0.1, 0.5, 1.0, 5.0, float("inf")],
        "site's buckets are its metrics_buckets, in seconds, then +Inf")
    counts = [c for _, c in h]
    ok(all(a <= b for a, b in zip(counts, counts[1:])), "buckets are cumulative")
    is_(counts[-1], val(samples, H + "_count", route="site"), "+Inf equals _count")
    is_(counts[-1], 10.0, "... which is the 10 requests to site")
    s = val(samples, H + "_sum", route="site")
    ok(s is not None and 0 <= s < 10, "_sum in seconds (%s)" % s)
    is_(len(hist(samples, H, route="missing")), 12, "missing has the default 11 buckets and +Inf")
    st = srv.status_json()
    total = sum(v for (n, lab), v in samples.items() if n == R)
    # A request is counted once it ends: the scrape saw every request
    # before it, /status those and the scrape.
    is_(total + 1, float(st["requests_total"]), "requests by route add up to /status's total")
    is_(val(samples, "portico_responses_total", code="4xx"), 4.0,
        "portico_responses_total 4xx: the 3 and the 405 to POST /metrics")
    c = srv.connect()  # held open
    c.send(b"GET /site/held HTTP/1.1\r\nHost: x\r\n\r\n")
    c.read_response()
    samples, _ = parse(scrape(srv).body.decode())
    is_(val(samples, "portico_connections_open", listener="http"), 2.0,
        "connections open: the held one and the scrape's")
    ok(val(samples, "portico_connections_total", listener="http") >= 16,
       "connections total counts every one (%s)" % val(samples, "portico_connections_total", listener="http"))
    ok(val(samples, "portico_received_bytes_total") > 0 and val(samples, "portico_sent_bytes_total") > 0,
       "bytes in and out")
    c.close()
    ok(wait_for(lambda: val(parse(scrape(srv).body.decode())[0], "portico_connections_open",
                             listener="http") == 1.0, 5), "... one open after it closed")


def test_middleware(srv):
    seen = [srv.get("/limited/").status for _ in range(5)]
    refused = seen.count(429)
    ok(refused >= 1 and seen.count(200) + refused == 5, "the rate limit refuses some (%r)" % seen)
    samples, _ = parse(scrape(srv).body.decode())
    is_(val(samples, "portico_middleware_requests_total", middleware="rl", type="ratelimit"), 5.0,
        "middleware requests: 5 reached rl")
    is_(val(samples, "portico_middleware_answers_total", middleware="rl", type="ratelimit", code="429"),
        float(refused), "middleware answers by code: the %d refusals" % refused)


def test_pools(srv, be):
    for i in range(3):
        is_(srv.get("/app/%d" % i).status, 200, "proxied request %d" % i)
    samples, _ = parse(scrape(srv).body.decode())
    lab = {"pool": "app", "server": be.addr}
    is_(val(samples, "portico_pool_server_responses_total", **lab), 3.0, "pool server responses: 3")
    is_(val(samples, "portico_pool_server_up", **lab), 1.0, "app's server is up")
    is_(val(samples, "portico_pool_server_state", state="up", **lab), 1.0, "... state up")
    h = hist(samples, "portico_pool_server_response_duration_seconds", **lab)
    is_([le for le, _ in h], [0.01, 1.0, float("inf")], "the pool's metrics_buckets")
    is_(h[-1][1], 3.0, "... +Inf counts the 3 responses")
    ok(wait_for(lambda: (val(parse(scrape(srv).body.decode())[0], "portico_pool_server_health_checks_total",
                             pool="dead", server="127.0.0.1:%d" % srv.deadport, result="failed") or 0) >= 2, 5),
       "the dead pool's failed health checks are counted")
    samples, _ = parse(scrape(srv).body.decode())
    dl = {"pool": "dead", "server": "127.0.0.1:%d" % srv.deadport}
    is_((val(samples, "portico_pool_server_up", **dl), val(samples, "portico_pool_server_state", state="down", **dl)),
        (0.0, 1.0), "... and its server is down")
    is_(val(samples, "portico_pool_panic", pool="dead"), 1.0, "the dead pool is in panic")
    is_(val(samples, "portico_pool_panic", pool="app"), 0.0, "app is not")
    be.stop()
    r = srv.get("/app/after")
    is_(r and r.status, 502, "backend gone: 502")
    samples, _ = parse(scrape(srv).body.decode())
    is_(val(samples, "portico_pool_server_connect_errors_total", **lab), 1.0, "a connect error")
    is_(val(samples, "portico_pool_server_failures_total", **lab), 1.0, "a failure")
    is_((val(samples, "portico_pool_server_up", **lab), val(samples, "portico_pool_server_state", state="failed", **lab)),
        (0.0, 1.0), "max_fails 1: the server is out of service (state failed)")
    promtool_check(scrape(srv).body.decode(), "(after traffic)")


def test_concurrent(srv):
    """Scrapes while four clients keep both workers busy, new cells being
    made (a route not asked for before) as the scrapes walk the lists."""
    before = val(parse(scrape(srv).body.decode())[0], "portico_http_requests_total",
                 route="missing", method="GET", code="4xx")
    errors, stop = [], threading.Event()

    def client(k):
        try:
            with srv.connect() as c:
                for i in range(50):
                    c.send(b"GET /missing/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
                    r = c.read_response()
                    if r is None or r.status != 404:
                        errors.append(r)
        except OSError as e:
            errors.append(e)

    def scraper():
        while not stop.is_set():
            try:
                parse(scrape(srv).body.decode())
            except (OSError, ValueError, ServerError) as e:
                errors.append(e)
    ts = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    sc = threading.Thread(target=scraper)
    sc.start()
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    stop.set()
    sc.join(30)
    is_(errors, [], "4 clients x 50 requests while scraping: every answer and every scrape good")
    after = val(parse(scrape(srv).body.decode())[0], "portico_http_requests_total",
                route="missing", method="GET", code="4xx")
    is_(after - before, 200.0, "... and the 200 requests counted exactly")


def test_reload(srv, be, deadport):
    from_before = val(parse(scrape(srv).body.decode())[0], "portico_http_requests_total",
                      route="site", method="GET", code="2xx")
    text = conf(be.addr, deadport, extra="\n[route:new]\npath = /new/\nreturn = 200 new\n")
    with open(srv.conf_path, "w") as f:
        f.write(text.replace("{port}", str(srv.port)).replace("{dir}", srv.dir))
    srv.signal(signal.SIGHUP)
    ok(wait_for(lambda: "generation 2 in service" in srv.stderr() or
                "generation 2 in service" in open(srv.path("error.log")).read(), 10), "reload: generation 2")
    is_(srv.get("/site/again").status, 200, "a request after the reload")
    is_(srv.get("/new/").status, 200, "a request to the new route")
    samples, _ = parse(scrape(srv).body.decode())
    is_((val(samples, "portico_config_generation"), val(samples, "portico_reloads_total")), (2.0, 1.0),
        "config generation 2, one reload")
    is_(val(samples, "portico_http_requests_total", route="site", method="GET", code="2xx"), from_before + 1,
        "site's counters went on across the reload (same name and buckets)")
    is_(val(samples, "portico_http_requests_total", route="new", method="GET", code="2xx"), 1.0,
        "the new route is counted")
    # New buckets: the route's series start again (documented).
    text = conf(be.addr, deadport, buckets="50ms 2s")
    with open(srv.conf_path, "w") as f:
        f.write(text.replace("{port}", str(srv.port)).replace("{dir}", srv.dir))
    srv.signal(signal.SIGHUP)
    ok(wait_for(lambda: "generation 3 in service" in open(srv.path("error.log")).read(), 10), "reload: generation 3")
    is_(srv.get("/site/again").status, 200, "a request after the second reload")
    samples, _ = parse(scrape(srv).body.decode())
    is_(val(samples, "portico_http_requests_total", route="site", method="GET", code="2xx"), 1.0,
        "new metrics_buckets: site's counters start again")
    is_([le for le, _ in hist(samples, "portico_http_request_duration_seconds", route="site")],
        [0.05, 2.0, float("inf")], "... with the new buckets")
    is_(val(samples, "portico_http_requests_total", route="new", method="GET", code="2xx"), None,
        "a route that left the configuration left the output")
    promtool_check(scrape(srv).body.decode(), "(after reloads)")


TLS_CONF = """\
[global]
workers = 1

[listen:plain]
address = 127.0.0.1:{port}

[listen:tls]
address = 127.0.0.1:{port2}
tls_cert = %(d)s/cert.pem
tls_key = %(d)s/key.pem

[middleware:staff]
type = basic
htpasswd = %(d)s/users.htpasswd

[route:metrics]
listen = plain
path = /metrics
metrics = prometheus

[route:staff]
path = /staff/
return = 200 staff
middleware = staff

[route:ok]
path = /
return = 200 ok
"""


def test_tls():
    d = tempfile.mkdtemp(prefix="portico-t-metrics-tls-")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", d + "/key.pem",
                        "-out", d + "/cert.pem"], capture_output=True, timeout=30)
    if p.returncode != 0:
        raise ServerError("openssl req failed: %s" % p.stderr.decode())
    p = subprocess.run(["openssl", "passwd", "-6", "-salt", "metricsalt", "secret"], capture_output=True,
                       timeout=30)
    with open(d + "/users.htpasswd", "w") as f:
        f.write("alice:%s\n" % p.stdout.decode().strip())
    srv = Server(TLS_CONF % {"d": d})
    ctx = ssl.create_default_context(cafile=d + "/cert.pem")
    ctx.check_hostname = False
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # the session is there right after the handshake

    def get(session=None):
        with socket.create_connection(("127.0.0.1", srv.port2), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    b = s.recv(4096)
                    if not b:
                        break
                    data += b
                return s.session, s.session_reused, data
    # The harness's readiness probe connected to each port: count from
    # once its connection is gone.
    def tls_open():
        return val(parse(scrape(srv).body.decode())[0], "portico_connections_open", listener="tls")
    ok(wait_for(lambda: tls_open() == 0, 5), "the readiness probe's connection closed")
    before, _ = parse(scrape(srv).body.decode())
    sess, reused, data = get()
    ok(data.startswith(b"HTTP/1.1 200") and not reused, "a full TLS handshake")
    _, reused, data = get(sess)
    ok(data.startswith(b"HTTP/1.1 200") and reused, "... and one that resumes its session")
    with socket.create_connection(("127.0.0.1", srv.port2), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.recv(4096)
    ok(wait_for(lambda: tls_open() == 0, 5), "the three connections closed")
    text = scrape(srv).body.decode()
    samples, _ = parse(text)
    def delta(name):
        return val(samples, name, listener="tls") - val(before, name, listener="tls")
    is_((delta("portico_tls_handshakes_total"), delta("portico_tls_resumptions_total"),
         delta("portico_tls_handshake_failures_total")), (2.0, 1.0, 1.0),
        "TLS by listener: 2 handshakes, 1 resumed, 1 failed (plain HTTP on the TLS port)")
    is_(val(samples, "portico_tls_handshakes_total", listener="plain"), None, "no TLS series for a plain listener")
    is_(delta("portico_connections_total"), 3.0, "3 connections on the TLS listener")
    promtool_check(text, "(with TLS)")
    good = "Authorization: Basic " + base64.b64encode(b"alice:secret").decode()
    bad = "Authorization: Basic " + base64.b64encode(b"alice:wrong").decode()
    got = [srv.get("/staff/").status, srv.get("/staff/", headers=[bad]).status,
           srv.get("/staff/", headers=[good]).status]
    is_(got, [401, 401, 200], "basic: no credentials 401, wrong ones 401, good ones 200")
    samples, _ = parse(scrape(srv).body.decode())
    is_((val(samples, "portico_middleware_requests_total", middleware="staff", type="basic"),
         val(samples, "portico_middleware_answers_total", middleware="staff", type="basic", code="401")),
        (3.0, 2.0), "auth failures counted by block and status: 2 of 3 answered 401")
    srv.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_errors():
    d = tempfile.mkdtemp(prefix="portico-t-metrics-")
    cases = [
        ("metrics = openmetrics", r'metrics: expected prometheus, not "openmetrics"'),
        ("metrics = prometheus\nmetrics_buckets = 1s 5ms", r"metrics_buckets: expected up to 16 increasing"),
        ("metrics = prometheus\nmetrics_buckets = fast", r"metrics_buckets: expected up to 16 increasing"),
    ]
    for body, pat in cases:
        path = os.path.join(d, "x.ini")
        with open(path, "w") as f:
            f.write("[listen:a]\naddress = 127.0.0.1:1\n[route:m]\npath = /m\n%s\n" % body)
        line = 5 if "buckets" not in body else 6
        rc, out, err = portico(["-t", "-c", path])
        ok(rc == 1 and re.search(re.escape(path) + r":%d: \[route:m\] " % line + pat, out + err),
           "portico -t: %r refused, with file:line and why" % body.splitlines()[-1])
    shutil.rmtree(d, ignore_errors=True)


def main():
    be = Backend("a")
    deadport = free_port()
    # Two workers exactly: the counts are sums over them.
    srv = Server(conf(be.addr, deadport), exact_workers=True)
    srv.deadport = deadport
    test_format(srv)
    test_counts(srv)
    test_middleware(srv)
    test_pools(srv, be)
    test_concurrent(srv)
    test_reload(srv, be, deadport)
    srv.stop()
    be.stop()
    test_tls()
    test_errors()


run(main)
