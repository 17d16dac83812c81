#!/usr/bin/env python3
# status = html: the dashboard.  Over HTTP: one self-contained page (no
# external script, style or font; a Content-Security-Policy that allows
# none), the same route's JSON with ?format=json.  In headless Chromium:
# the page polls, draws the rate and connection charts and the latency
# histogram, and its numbers and server rows match the JSON; with
# JavaScript off it says it needs it.  A screenshot is left in t/out/.
import json
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import Backend  # noqa: E402
from browser import Browser, find_chromium  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "t", "out")

CONF = """\
[global]
workers = 2

[listen:http]
address = 127.0.0.1:{port}

[pool:app]
server = %(up)s
server = 127.0.0.1:%(down)d
health_check = GET /health every 200ms
fall = 1

[route:backend-status]
path = /status/
pool = app

[route:dash]
path = /dashboard
status = html

[route:status]
path = /status
status = json

[route:hello]
path = /
return = 200 hello
"""


def test_http(srv):
    r = srv.get("/dashboard")
    is_(r and r.status, 200, "GET /dashboard: 200")
    is_(r.header("Content-Type"), "text/html; charset=utf-8", "... text/html")
    like(r.header("Content-Security-Policy") or "", r"default-src 'none'", "... with a CSP that allows nothing else")
    body = r.body.decode()
    unlike(body, r"(?i)<script[^>]+src=|<link[^>]+href=\"?https?:|@import|url\(\s*['\"]?https?:",
           "self-contained: no external script, style sheet or font")
    like(body, r"(?s)<noscript>.*needs JavaScript", "it says so when JavaScript is off")
    r = srv.get("/dashboard?format=json")
    ok(r is not None and r.status == 200 and r.header("Content-Type") == "application/json" and
       "requests_total" in json.loads(r.body), "?format=json: the status document")
    r = srv.get("/dashboard", method="HEAD")
    is_(r and (r.status, r.body), (200, b""), "HEAD: no body")


def test_browser(srv):
    b = Browser()
    try:
        p = b.page("http://127.0.0.1:%d/dashboard?interval=300" % srv.port)
        ok(p.wait_for("Number(document.body.dataset.polls || 0) >= 3", 15), "the page polled the JSON three times")
        ok(wait_for(lambda: srv.status_json()["pools"]["app"]["servers"][1]["state"] == "down", 5),
           "(the second server is down by now)")
        p.wait_for("document.querySelectorAll('#servers tr[data-server]').length == 2 && "
                   "document.querySelector('#servers tr:nth-child(2) td.state').textContent === 'down'", 10)
        d = srv.status_json()
        rows = p.eval("Array.from(document.querySelectorAll('#servers tr[data-server]')).map(tr => "
                      "[tr.dataset.pool, tr.dataset.server, tr.querySelector('td.state').textContent])")
        want = [["app", s["name"], s["state"]] for s in d["pools"]["app"]["servers"]]
        is_(rows, want, "one row per pool server, with its state, as in the JSON")
        vals = p.eval("({r4xx: Number(document.getElementById('r4xx').dataset.value),"
                      " r5xx: Number(document.getElementById('r5xx').dataset.value),"
                      " requests: Number(document.getElementById('requests').dataset.value)})")
        is_((vals["r4xx"], vals["r5xx"]), (d["responses"]["4xx"], d["responses"]["5xx"]),
            "4xx and 5xx counts as in the JSON (%d, %d)" % (d["responses"]["4xx"], d["responses"]["5xx"]))
        ok(0 < vals["requests"] <= d["requests_total"], "requests so far: %d on the page, %d in the JSON read after"
           % (vals["requests"], d["requests_total"]))
        bars = p.eval("document.querySelectorAll('#hist rect.bar').length")
        is_(bars, len(d["latency_histogram"]["buckets"]), "the histogram draws a bar per bucket")
        total = p.eval("Array.from(document.querySelectorAll('#hist rect.bar'))"
                       ".reduce((a, r) => a + Number(r.dataset.count), 0)")
        ok(0 < total <= d["latency_histogram"]["buckets"][-1]["count"], "... counting the responses (%d)" % total)
        ok(p.eval("document.querySelectorAll('#rate polyline').length") >= 1, "the request rate chart is drawn")
        like(p.eval("document.getElementById('rps').textContent"), r"^\d", "requests per second shown")
        is_(p.eval("document.getElementById('error').textContent"), "", "no error shown")
        os.makedirs(OUT, exist_ok=True)
        shot = p.screenshot(os.path.join(OUT, "dashboard.png"))
        ok(os.path.getsize(shot) > 5000, "screenshot: %s" % os.path.relpath(shot, ROOT))
        is_([m for m in p.console if m.startswith("uncaught")], [], "no uncaught script errors")
        # JavaScript off: the page says what it needs.
        p.call("Emulation.setScriptExecutionDisabled", {"value": True})
        p.call("Page.reload")
        ok(p.wait_for("document.readyState === 'complete' && document.getElementById('meta') !== null", 10),
           "reloaded with JavaScript off")
        text = p.call("Runtime.evaluate", {"expression": "document.body.innerText", "returnByValue": True})
        like(text.get("result", {}).get("value", ""), r"needs JavaScript", "... and it says it needs JavaScript")
    finally:
        b.close()


def main():
    be = Backend("a")
    srv = Server(CONF % {"up": be.addr, "down": free_port()})
    test_http(srv)
    for _ in range(3):
        srv.get("/status/404")
    srv.get("/status/503")
    if find_chromium() is None:
        skip("chromium is not installed (make deps installs it)", 1)
    else:
        test_browser(srv)
    srv.stop()
    be.stop()


run(main)
