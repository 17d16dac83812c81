#!/usr/bin/env python3
# The demo of `make run` (etc/portico.ini as it is, its ports moved to free
# ones) loaded over HTTP/2 by headless Chromium from its HTTPS listener:
# the page and every resource it pulls arrive with nextHopProtocol "h2";
# the proxied /app/ answers over h2 too (round robin over the two origin
# listeners); the dashboard draws from the status JSON; the echo page's
# WebSocket opens over h2 too (RFC 8441: the access log shows it as
# "GET /ws/echo HTTP/2.0" 200).  A screenshot of the page is left in
# t/out/h2-demo.png.
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from browser import Browser, JSError, find_chromium  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "t", "out")
CERT = os.path.join(ROOT, "build", "demo-cert.pem")


def demo_conf():
    """etc/portico.ini with its four ports replaced by free ones."""
    with open(os.path.join(ROOT, "etc", "portico.ini")) as f:
        conf = f.read()
    conf = conf.replace("127.0.0.1:8080", "127.0.0.1:{port}").replace("127.0.0.1:8443", "127.0.0.1:{port2}")
    for p in ("8081", "8082"):
        conf = conf.replace("127.0.0.1:" + p, "127.0.0.1:%d" % free_port())
    # The access log goes to a file of the test's, not the terminal.
    return re.sub(r"(?m)^access_log = stdout.*$", "access_log = {dir}/access.log", conf)


def protocols(page):
    return page.eval("""(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        return [nav.nextHopProtocol].concat(performance.getEntriesByType('resource')
            .map(e => e.name.replace(location.origin, '') + ' ' + e.nextHopProtocol));
    })()""")


def main():
    if find_chromium() is None:
        print("1..0 # SKIP chromium is not installed (make deps installs it)")
        sys.exit(0)
    if not os.path.exists(CERT):
        print("1..0 # SKIP no demo certificate (make builds %s)" % os.path.relpath(CERT, ROOT))
        sys.exit(0)
    srv = Server(demo_conf())
    base = "https://localhost:%d" % srv.port2
    b = Browser()
    try:
        p = b.page(base + "/")
        is_(p.eval("document.querySelector('h1').textContent"), "portico is running.",
            "the demo page renders")
        got = protocols(p)
        is_(got[0], "h2", "the page came over h2")
        res = got[1:]
        ok(len(res) >= 2 and all(r.endswith(" h2") for r in res),
           "and every resource it pulled: %s" % ", ".join(res))
        style = p.eval("getComputedStyle(document.body).fontFamily")
        ok(isinstance(style, str) and style != "", "the stylesheet applied (%s)" % style)
        os.makedirs(OUT, exist_ok=True)
        shot = p.screenshot(os.path.join(OUT, "h2-demo.png"))
        ok(os.path.getsize(shot) > 1000, "screenshot in %s" % os.path.relpath(shot, ROOT))

        answers = p.eval("""Promise.all([1, 2, 3, 4].map(() => fetch('/app/', {cache: 'no-store'})
            .then(r => r.text())))""")
        is_(sorted(answers or []), ["hello from origin 1", "hello from origin 1", "hello from origin 2",
                                    "hello from origin 2"], "/app/ over h2: proxied, both origins in turn")
        st = p.eval("fetch('/status?format=json', {cache: 'no-store'}).then(r => r.json())")
        ok(isinstance(st, dict) and st.get("requests_total", 0) >= 8,
           "the status JSON counts the h2 requests (%s)" % (st or {}).get("requests_total"))

        d = b.page(base + "/dashboard")
        drawn = d.wait_for("(() => { const t = document.body.innerText;"
                           " return /requests/i.test(t) && !/JavaScript is off/.test(t) ? t.length : null; })()", 10)
        ok(drawn, "the dashboard draws from the status JSON over h2")
        is_(protocols(d)[0], "h2", "the dashboard came over h2")

        e = b.page(base + "/echo.html?say=over%20h2%20and%20back")
        state = e.wait_for("(() => { const s = document.getElementById('state').textContent;"
                           " return s.startsWith('open') ? s : null; })()", 10)
        like(state or "", r"^open", "echo.html (served over h2) opens its WebSocket")
        body = e.wait_for("(() => { const t = document.body.innerText;"
                          " return t.includes('\\u2190 ') ? t : null; })()", 10)
        like(body or "", "\u2190 over h2 and back", "and the message comes back")
        is_([m for m in e.console if "rror" in str(m)], [], "no script errors")
        log = os.path.join(srv.dir, "access.log")

        def ws_line():
            try:
                with open(log) as f:
                    return [l for l in f if '"GET /ws/echo HTTP/' in l]
            except OSError:
                return []
        lines = wait_for(ws_line, 10) or []
        like(lines[0] if lines else "", r'"GET /ws/echo HTTP/2\.0" 200 ',
             "the WebSocket went over h2 (RFC 8441): the access log says so")
    except (JSError, RuntimeError) as ex:
        ok(False, "the browser run: %s" % ex)
    finally:
        b.close()
    srv.stop()


run(main)
