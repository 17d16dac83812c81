#!/usr/bin/env python3
# /status JSON, /healthz, and the access log (combined and json).
import calendar
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

CONF = """\
[global]
workers = 2
access_log = {dir}/access.log
access_log_format = combined
header_timeout = 5s
keepalive_timeout = 10s

[listen:http]
address = 127.0.0.1:{port}

[route:status]
path = /status
status = json

[route:health]
path = /healthz
health = on

[route:hello]
path = /hello
return = 200 hello world
"""

FIELDS = {
    "version": str, "start_time": str, "uptime_seconds": int, "workers": int,
    "requests_total": int, "requests_per_second": (int, float), "active_connections": int,
    "connections_total": int, "bytes_received": int, "bytes_sent": int, "responses": dict,
    "latency_histogram": dict,
}
ISO_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


def iso_to_epoch(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def wait_lines(path, n, timeout=5):
    """Polls the log until it has at least n lines (it is flushed about once a second)."""
    return wait_for(lambda: len(read_lines(path)) >= n and read_lines(path), timeout, 0.05) or read_lines(path)


def main():
    with Server(CONF) as srv:
        t_start = time.time()
        r = srv.get("/status")
        is_(r and r.status, 200, "GET /status: 200")
        is_(r and r.header("Content-Type"), "application/json", "GET /status: Content-Type application/json")
        is_(r and r.header("Cache-Control"), "no-store", "GET /status: Cache-Control: no-store")
        try:
            s1 = json.loads(r.body)
        except Exception as e:
            s1 = {}
            diag("not JSON: %s: %r" % (e, r.body[:300] if r else None))
        ok(isinstance(s1, dict) and s1 != {}, "/status body is a JSON object")
        for k, t in FIELDS.items():
            ok(k in s1 and isinstance(s1[k], t) and not isinstance(s1[k], bool), "/status has %s (%s)" % (k, t))
        is_(s1.get("version"), version(), "version is the binary's")
        like(s1.get("start_time", ""), ISO_RE, "start_time is ISO 8601 UTC")
        try:
            skew = abs(iso_to_epoch(s1["start_time"]) - t_start)
        except Exception:
            skew = 999
        ok(skew < 15, "start_time is when the server started (off by %ds)" % skew)
        ok(0 <= s1.get("uptime_seconds", -1) < 15, "uptime_seconds is small and not negative")
        is_(s1.get("workers"), 2, "workers = 2")
        ok(s1.get("active_connections", 0) >= 1, "active_connections counts this one")
        resp = s1.get("responses", {})
        is_(sorted(resp.keys()), ["1xx", "2xx", "3xx", "4xx", "5xx"], "responses has 1xx..5xx")
        ok(all(isinstance(v, int) for v in resp.values()), "responses are integers")
        hist = s1.get("latency_histogram", {})
        buckets = hist.get("buckets", [])
        is_(hist.get("unit"), "us", "latency_histogram unit is us")
        ok(len(buckets) >= 2 and all(isinstance(b, dict) and set(b) == {"le", "count"} for b in buckets),
           "latency_histogram buckets are {le, count} (%d of them)" % len(buckets))
        les = [b.get("le") for b in buckets]
        ok(len(les) >= 2 and les[-1] == "+Inf" and all(isinstance(x, int) for x in les[:-1])
           and les[:-1] == sorted(set(les[:-1])), "bucket bounds ascend and end with +Inf: %s" % les)
        ok(all(isinstance(b.get("count"), int) and b["count"] >= 0 for b in buckets), "bucket counts are integers")
        counts = [b.get("count", 0) for b in buckets]
        ok(counts == sorted(counts), "bucket counts are cumulative (never decrease): %s" % counts)
        is_(counts[-1] if counts else None, s1.get("requests_total"), "the +Inf bucket counts every request")
        is_(sum(resp.values()), s1.get("requests_total"), "responses by class sum to requests_total")

        # --- counters move
        n_ok, n_404 = 10, 3
        sent = recv = 0
        conns = 0
        for i in range(n_ok):
            req = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            r = srv.request(req)
            sent += len(req)
            recv += len(r.raw)
            conns += 1
        c = srv.connect()
        conns += 1
        for i in range(n_404):
            req = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
            c.send(req)
            r = c.read_response()
            sent += len(req)
            recv += len(r.raw)
        is_(r.status, 404, "the 404s were 404s")
        c.close()
        s2 = srv.status_json()
        d = lambda k: s2.get(k, 0) - s1.get(k, 0)
        ok(d("requests_total") >= n_ok + n_404 + 1, "requests_total moved by at least %d (%d)" % (n_ok + n_404 + 1, d("requests_total")))
        ok(s2["responses"]["2xx"] - s1["responses"]["2xx"] >= n_ok + 1, "2xx moved by at least %d" % (n_ok + 1))
        ok(s2["responses"]["4xx"] - s1["responses"]["4xx"] >= n_404, "4xx moved by at least %d after the 404s" % n_404)
        ok(d("connections_total") >= conns + 1, "connections_total moved by at least %d (%d)" % (conns + 1, d("connections_total")))
        ok(d("bytes_received") >= sent, "bytes_received moved by at least the %d bytes sent (%d)" % (sent, d("bytes_received")))
        ok(d("bytes_sent") >= recv, "bytes_sent moved by at least the %d bytes received (%d)" % (recv, d("bytes_sent")))
        counts = [b["count"] for b in s2["latency_histogram"]["buckets"]]
        ok(counts == sorted(counts) and counts[-1] == s2["requests_total"],
           "histogram still cumulative, +Inf bucket = requests_total: %s" % counts)
        ok(counts[0] > 0, "fast local answers land in the first bucket (%d us)" % s2["latency_histogram"]["buckets"][0]["le"])
        rps = wait_for(lambda: srv.status_json()["requests_per_second"] > 0, 4, 0.25)
        ok(rps, "requests_per_second becomes positive within a few seconds of traffic")

        # HEAD /status: length, no body
        r = srv.get("/status", method="HEAD")
        ok(r is not None and r.status == 200 and int(r.header("Content-Length") or 0) > 100 and r.body == b"",
           "HEAD /status: 200, Content-Length, no body")

        # --- /healthz
        t0 = time.time()
        r = srv.get("/healthz")
        is_(r and r.status, 200, "GET /healthz: 200")
        is_(r and r.header("Content-Type"), "application/json", "/healthz: application/json")
        like(r.body.decode() if r else "", r'\A\{"status":"healthy","timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"\}\n\Z',
             "/healthz body is {\"status\":\"healthy\",\"timestamp\":...}")
        try:
            h = json.loads(r.body)
            skew = abs(iso_to_epoch(h["timestamp"]) - t0)
        except Exception:
            h, skew = {}, 999
        is_(h.get("status"), "healthy", "/healthz status is healthy")
        ok(skew <= 2, "/healthz timestamp is now (off by %ds)" % skew)

    # --- concurrent load on two workers: every answer right, counters exact once quiet
    with Server(CONF.replace("access_log = {dir}/access.log\n", "")) as srv:
        import threading
        sc = srv.connect()

        def status():
            sc.send(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
            return json.loads(sc.read_response().body)
        # The readiness probe may be accepted late by the other worker: wait for it
        # (probe + this connection) so the counts below are exact.
        s1 = wait_for(lambda: (lambda st: st if st["connections_total"] == 2 else None)(status()), 3, 0.05) or status()
        nthreads, per = 8, 40
        results = [None] * nthreads

        def client(k):
            got = []
            try:
                c = srv.connect()
                for i in range(per):
                    path = ("/hello", "/nope", "/healthz", "/status")[(i + k) % 4]
                    c.send(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
                    r = c.read_response(timeout=10)
                    ok_ = r is not None and {"/hello": 200, "/nope": 404, "/healthz": 200, "/status": 200}[path] == r.status
                    if ok_ and path == "/status":
                        json.loads(r.body)
                    got.append(ok_)
                c.close()
            except Exception as e:
                got.append(repr(e))
            results[k] = got

        threads = [threading.Thread(target=client, args=(k,)) for k in range(nthreads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        is_([r == [True] * per for r in results], [True] * nthreads,
            "%d concurrent clients x %d requests on 2 workers: every answer right" % (nthreads, per))
        s2 = status()
        is_(s2["requests_total"] - s1["requests_total"], nthreads * per + 1,
            "requests_total moved by exactly %d (+1 for the first /status)" % (nthreads * per))
        is_(s2["connections_total"] - s1["connections_total"], nthreads, "connections_total moved by exactly %d" % nthreads)
        is_(s2["responses"]["4xx"] - s1["responses"]["4xx"], nthreads * per // 4, "4xx moved by exactly the 404s")
        active = wait_for(lambda: status()["active_connections"] == 1, 3, 0.1)
        ok(active, "active_connections drops to 1 (the asking one) once the clients are gone")

    # --- access log, combined: one line per request, written within about a second
    with Server(CONF) as srv:
        log = srv.path("access.log")
        reqs = [
            (b"GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: tap-test/1.0\r\nReferer: http://ref.example/page\r\n\r\n",
             '"GET /hello HTTP/1.1" 200 11 "http://ref.example/page" "tap-test/1.0"'),
            (b"GET /nope?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", '"GET /nope?x=1 HTTP/1.1" 404 %d "-" "-"' % len(error_body(404))),
            (b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n", '"HEAD /hello HTTP/1.1" 200 0 "-" "-"'),
            (b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
             '"POST /status HTTP/1.1" 405 %d "-" "-"' % len(error_body(405))),
            (b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nab",
             '"POST /hello HTTP/1.1" 200 11 "-" "-"'),
            (b'GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: evil"agent\\\r\n\r\n',
             '"GET /hello HTTP/1.1" 200 11 "-" "evil\\x22agent\\x5C"'),
        ]
        c = srv.connect()
        for raw, _ in reqs:
            c.send(raw)
            r = c.read_response(head=raw.startswith(b"HEAD"))
            if r is not None and r.status == 100:
                c.read_response()
        c.close()
        lines = wait_lines(log, len(reqs))
        is_(len(lines), len(reqs), "combined: one line per request")
        prefix = r'^127\.0\.0\.1 - - \[\d\d/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d\d:\d\d:\d\d \+0000\] '
        for i, (raw, want) in enumerate(reqs):
            like(lines[i] if i < len(lines) else None, prefix + re.escape(want) + "$", "combined line %d: %s" % (i + 1, want))
        # A bad request is logged with its status too.
        c = srv.connect()
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n")
        c.read_response()
        c.close()
        lines = wait_lines(log, len(reqs) + 1)
        like(lines[-1] if lines else None, prefix + re.escape('"GET / HTTP/1.1" 400 %d "-" "-"' % len(error_body(400))) + "$",
             "combined: a 400 is logged with its request line")

    # --- access log, json
    with Server(CONF.replace("access_log_format = combined", "access_log_format = json")) as srv:
        log = srv.path("access.log")
        c = srv.connect()
        c.send(b"GET /hello?a=b HTTP/1.1\r\nHost: x\r\nUser-Agent: tap-test/1.0\r\nReferer: http://ref.example/\r\n\r\n")
        c.read_response()
        c.send(b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
        c.read_response()
        c.send(b'GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: q"uote\\back\r\n\r\n')
        c.read_response()
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: caf\xc3\xa9 \xff\tz\r\n\r\n")
        c.read_response()
        c.close()
        lines = wait_lines(log, 4)
        is_(len(lines), 4, "json: one line per request")
        objs = []
        for i, l in enumerate(lines):
            try:
                objs.append(json.loads(l))
                ok(True, "json line %d parses" % (i + 1))
            except Exception as e:
                objs.append({})
                ok(False, "json line %d parses" % (i + 1))
                diag("%s: %r" % (e, l))
        o = objs[0] if objs else {}
        is_(sorted(o.keys()), sorted(["time", "remote_addr", "request", "status", "body_bytes", "request_time_us",
                                      "referer", "user_agent", "request_id", "upstream_addr",
                                      "upstream_connect_us", "upstream_header_us", "upstream_response_us",
                                      "tls_version", "tls_cipher", "termination"]), "json: the fields")
        is_((o.get("remote_addr"), o.get("request"), o.get("status"), o.get("body_bytes"), o.get("referer"), o.get("user_agent")),
            ("127.0.0.1", "GET /hello?a=b HTTP/1.1", 200, 11, "http://ref.example/", "tap-test/1.0"), "json: values of line 1")
        ok(isinstance(o.get("request_time_us"), int) and o["request_time_us"] >= 0, "json: request_time_us is an integer")
        like(o.get("time"), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", "json: time (RFC 3339)")
        o = objs[1] if len(objs) > 1 else {}
        is_((o.get("request"), o.get("status"), o.get("referer"), o.get("user_agent")),
            ("GET /missing HTTP/1.1", 404, None, None), "json: values of line 2 (404, no referer or agent: null)")
        o = objs[2] if len(objs) > 2 else {}
        is_(o.get("user_agent"), 'q"uote\\back', "json: a quote and a backslash in a field survive as JSON escapes")
        o = objs[3] if len(objs) > 3 else {}
        ok(isinstance(o.get("user_agent"), str) and o["user_agent"].startswith("caf") and o["user_agent"].endswith("\tz"),
           "json: non-ASCII bytes, invalid UTF-8 and a tab in a field still give valid JSON")
        try:
            with open(log, "rb") as f:
                f.read().decode("utf-8")
            ok(True, "json: the log is valid UTF-8")
        except UnicodeDecodeError as e:
            ok(False, "json: the log is valid UTF-8 (%s)" % e)


    # --- server_tokens = off: no version in the document, as in the Server header
    with Server(CONF.replace("[global]\n", "[global]\nserver_tokens = off\n")) as srv:
        r = srv.get("/status")
        is_(r and (r.status, r.header("Server")), (200, "portico"), "server_tokens = off: 200, Server: portico")
        try:
            s = json.loads(r.body)
        except Exception as e:
            s = {}
            diag("not JSON: %s: %r" % (e, r.body[:300] if r else None))
        ok("version" not in s and "start_time" in s and "workers" in s,
           "server_tokens = off: /status has no version, the rest is there")
        ok(r is not None and version().encode() not in r.raw,
           "server_tokens = off: the version appears nowhere in the response")


run(main)
