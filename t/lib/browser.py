"""Headless Chromium for the tests, driven over the DevTools protocol.

Standard library only: the protocol is JSON over a WebSocket, spoken with
t/lib/ws.py's client.

    from browser import Browser, find_chromium

    find_chromium()            the binary, or None (the test skips)
    b = Browser()              starts it (headless, its own profile in a
                               temporary directory, certificate errors
                               ignored: the tests' certificates are
                               self-signed)
    p = b.page(url)            a new tab, loaded
    p.eval("js expression")    its value (promises awaited); JSError if it threw
    p.wait_for("expr", 10)     polls expr until it is truthy, or None at the deadline
    p.screenshot(path)         a PNG of the tab
    p.console                  console messages and uncaught errors seen so far
    b.close()                  stops it and removes its profile
"""

import base64
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time

from ws import OP_CONT, OP_TEXT, WSClient

__all__ = ["Browser", "Page", "JSError", "find_chromium"]


class JSError(Exception):
    pass


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Page:
    def __init__(self, port, target_id, timeout):
        self.timeout = timeout
        self.ws = WSClient("127.0.0.1", port, "/devtools/page/" + target_id, host_header="127.0.0.1:%d" % port,
                           timeout=timeout)
        if self.ws.status != 101:
            raise RuntimeError("DevTools refused the page: %s" % self.ws.status_line)
        self.next_id = 0
        self.console = []
        self.call("Runtime.enable")

    def _message(self, deadline):
        parts = []
        while True:
            f = self.ws.recv(max(0.001, deadline - time.monotonic()))
            if f.opcode in (OP_TEXT, OP_CONT):
                parts.append(f.payload)
                if f.fin:
                    return json.loads(b"".join(parts))

    def call(self, method, params=None, timeout=None):
        self.next_id += 1
        mid = self.next_id
        self.ws.send_text(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = self._message(deadline)
            if m.get("id") == mid:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            self._event(m)

    def _event(self, m):
        meth = m.get("method")
        p = m.get("params", {})
        if meth == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif meth == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console.append("uncaught: " + str(d.get("exception", {}).get("description", d.get("text"))))

    def eval(self, expr, timeout=None):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True},
                      timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise JSError(str(d.get("exception", {}).get("description", d.get("text"))))
        return r.get("result", {}).get("value")

    def wait_for(self, expr, timeout):
        deadline = time.monotonic() + timeout
        while True:
            v = self.eval(expr)
            if v:
                return v
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def screenshot(self, path):
        # A tab in the background may draw no frame to capture.
        self.call("Page.bringToFront")
        r = self.call("Page.captureScreenshot", {"format": "png"}, timeout=30)
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))
        return path

    def close(self):
        self.ws.close()


class Browser:
    def __init__(self, timeout=20.0, width=1000, height=700):
        binary = find_chromium()
        if binary is None:
            raise RuntimeError("no chromium")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="portico-chromium-")
        self.pages = []
        # As root, Chromium's sandbox will not start: --no-sandbox (the
        # pages are the tests' own).
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-sync", "--metrics-recording-only",
             # Every tab is a test's: none is slowed for being out of sight.
             "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
             "--disable-backgrounding-occluded-windows",
             "--ignore-certificate-errors", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", "--user-data-dir=" + self.profile,
             "--window-size=%d,%d" % (width, height), "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = self._devtools_port(time.monotonic() + timeout)

    def _devtools_port(self, deadline):
        buf = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stderr], [], [], max(0.01, deadline - time.monotonic()))
            if not r:
                continue
            chunk = os.read(self.proc.stderr.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            m = re.search(rb"DevTools listening on ws://127\.0\.0\.1:(\d+)/", buf)
            if m:
                self.stderr_head = buf
                return int(m.group(1))
        self.close()
        raise RuntimeError("chromium did not start its DevTools server:\n" + buf.decode("utf-8", "replace")[-2000:])

    def _http_json(self, path):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            c.request("PUT" if path.startswith("/json/new") else "GET", path)
            return json.loads(c.getresponse().read())
        finally:
            c.close()

    def page(self, url, timeout=None):
        """A new tab showing url, once its load event has fired."""
        t = self._http_json("/json/new?about:blank")
        p = Page(self.port, t["id"], timeout or self.timeout)
        self.pages.append(p)
        p.call("Page.enable")
        r = p.call("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise RuntimeError("%s: %s" % (url, r["errorText"]))
        if not p.wait_for("location.href !== 'about:blank' && document.readyState === 'complete'",
                          timeout or self.timeout):
            raise RuntimeError("%s did not finish loading" % url)
        return p

    def close(self):
        for p in self.pages:
            p.close()
        self.pages = []
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
