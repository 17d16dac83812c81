#!/usr/bin/env python3
# The chat demo end to end in headless Chromium: etc/www/chat.html served by
# portico, two tabs in one room talking through a `websocket = chat` route,
# over a plain listener and over TLS (the demo certificate, which the
# browser is told to accept).  Each tab must show every message, its own
# included, in the same order; a tab in another room sees none of them.  A
# screenshot of each run is left in the test output directory
# (t/out/, kept for a look after the run).
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from browser import Browser, find_chromium  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "t", "out")
CERT = os.path.join(ROOT, "build", "demo-cert.pem")
KEY = os.path.join(ROOT, "build", "demo-key.pem")

CONF = """\
[global]
workers = 2

[listen:http]
address = 127.0.0.1:{port}

[listen:https]
address = 127.0.0.1:{port2}
tls_cert = %(cert)s
tls_key = %(key)s

[route:chat]
path = /ws/chat/
websocket = chat

[route:site]
path = /
root = %(root)s/etc/www
"""

MESSAGES = "Array.from(document.querySelectorAll('#log li.msg')).map(li => li.textContent)"


def say(page, text):
    page.eval("""(() => { const t = document.getElementById('text');
        t.value = %s; document.getElementById('send').click(); return true; })()""" % repr(text))


def chat(b, base, scheme):
    room = "room-%s-%d" % (scheme, os.getpid())
    alice = b.page(base + "/chat.html#" + room)
    bob = b.page(base + "/chat.html#" + room)
    other = b.page(base + "/chat.html#elsewhere")
    for p, name in ((alice, "alice"), (bob, "bob"), (other, "eve")):
        p.eval("document.getElementById('name').value = %r" % name)
    ok(all(p.wait_for("document.getElementById('status').className === 'open'", 10) for p in (alice, bob, other)),
       "%s: three tabs connected (two in %s, one elsewhere)" % (scheme, room))
    say(alice, "hello from alice")
    ok(bob.wait_for("%s.includes('alice: hello from alice')" % MESSAGES, 10),
       "%s: bob's tab shows alice's message" % scheme)
    say(bob, "hi alice \u2014 bob here \U0001F44B")
    for i in range(5):
        say(alice if i % 2 else bob, "line %d" % i)
    want = 7
    got_a = alice.wait_for("(() => { const m = %s; return m.length >= %d ? m : null; })()" % (MESSAGES, want), 10)
    got_b = bob.wait_for("(() => { const m = %s; return m.length >= %d ? m : null; })()" % (MESSAGES, want), 10)
    is_(got_a and len(got_a), want, "%s: alice's tab has all %d messages, her own included" % (scheme, want))
    ok(got_a is not None and got_a == got_b, "%s: both tabs show them in the same order" % scheme)
    ok(got_a is not None and "bob: hi alice \u2014 bob here \U0001F44B" in got_a,
       "%s: UTF-8 (an em dash and an emoji) arrives intact" % scheme)
    is_(other.eval(MESSAGES), [], "%s: a tab in another room received none of them" % scheme)
    os.makedirs(OUT, exist_ok=True)
    shot = alice.screenshot(os.path.join(OUT, "chat-%s.png" % scheme))
    ok(os.path.getsize(shot) > 1000, "%s: screenshot of alice's tab in %s" % (scheme, os.path.relpath(shot, ROOT)))
    errs = [m for p in (alice, bob, other) for m in p.console if m.startswith("uncaught")]
    is_(errs, [], "%s: no uncaught script errors" % scheme)


def main():
    if find_chromium() is None:
        print("1..0 # SKIP chromium is not installed (make deps installs it)")
        sys.exit(0)
    if not os.path.exists(CERT):
        print("1..0 # SKIP no demo certificate (make builds %s)" % os.path.relpath(CERT, ROOT))
        sys.exit(0)
    srv = Server(CONF % {"cert": CERT, "key": KEY, "root": ROOT})
    b = Browser()
    try:
        chat(b, "http://127.0.0.1:%d" % srv.port, "http")
        chat(b, "https://localhost:%d" % srv.port2, "https")
    finally:
        b.close()
    srv.stop()


run(main)
