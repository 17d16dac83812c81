"""TAP helper and server harness for portico's integration tests.

Standard library only.  A test script does:

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
    from portico import *

    def main():
        with Server(CONF) as srv:
            c = srv.connect()
            c.send(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            r = c.read_response()
            is_(r.status, 200, "GET / is 200")

    run(main)

Environment:
    PORTICO_BIN    the binary (default ./portico, relative to the repo root)
    PORTICO_LEAVE  1: keep each server's temp dir (config, stderr) and say where
    PORTICO_MIN_WORKERS
                   N: a Server's config that says `workers = M` with M < N
                   is started with `workers = N` instead (`make tsan` sets
                   2, so that whatever crosses threads is exercised).  A test
                   that depends on one worker exactly (per-worker round-robin
                   order, a log line per worker) passes exact_workers=True to
                   Server and says why in a comment.
    ASAN_OPTIONS, UBSAN_OPTIONS, TSAN_OPTIONS
                   passed on; when unset, a server gets defaults that make a
                   report fail its test (see _SANITIZER_ENV)
"""

import ctypes
import errno
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import sockfill

__all__ = [
    "plan", "ok", "is_", "isnt", "like", "unlike", "diag", "note", "skip", "done",
    "run", "fail_count", "Server", "Conn", "Response", "ServerError", "REPO", "BIN",
    "portico", "free_port", "have_ipv6", "deadline_loop", "wait_for", "version",
    "normalize_date", "DATE_RE", "error_body", "ipv6_free_port", "sanitizer_env", "MIN_WORKERS",
]

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.environ.get("PORTICO_BIN", "./portico")
if not os.path.isabs(BIN):
    BIN = os.path.join(REPO, BIN)

# --------------------------------------------------------------------------
# TAP

_n = 0
_failed = 0
_planned = None


def plan(n):
    global _planned
    _planned = n
    print("1..%d" % n, flush=True)


def _esc(s):
    return str(s).replace("\n", " ").replace("#", "\\#")


def diag(msg):
    for line in str(msg).splitlines() or [""]:
        sys.stdout.write("# " + line + "\n")
    sys.stdout.flush()


note = diag


def ok(cond, name=""):
    global _n, _failed
    _n += 1
    if cond:
        print("ok %d - %s" % (_n, _esc(name)), flush=True)
    else:
        _failed += 1
        print("not ok %d - %s" % (_n, _esc(name)), flush=True)
        here = os.path.abspath(__file__)
        frames = [f for f in traceback.extract_stack() if os.path.abspath(f.filename) != here]
        if frames:
            f = frames[-1]
            diag("  Failed test '%s'\n  at %s line %d." % (name, os.path.basename(f.filename), f.lineno))
        else:
            diag("  Failed test '%s'" % name)
    return bool(cond)


def is_(got, expected, name=""):
    r = ok(got == expected, name)
    if not r:
        diag("         got: %r\n    expected: %r" % (got, expected))
    return r


def isnt(got, unexpected, name=""):
    r = ok(got != unexpected, name)
    if not r:
        diag("         got: %r\n    expected anything else" % (got,))
    return r


def like(got, pattern, name=""):
    r = ok(got is not None and re.search(pattern, got, re.M) is not None, name)
    if not r:
        diag("                  %r\n    doesn't match '%s'" % (got, pattern if isinstance(pattern, str) else pattern.pattern))
    return r


def unlike(got, pattern, name=""):
    r = ok(got is not None and re.search(pattern, got, re.M) is None, name)
    if not r:
        diag("                  %r\n          matches '%s'" % (got, pattern))
    return r


def skip(reason, count=1):
    global _n
    for _ in range(count):
        _n += 1
        print("ok %d # skip %s" % (_n, _esc(reason)), flush=True)


def fail_count():
    return _failed


def done():
    if _planned is None:
        print("1..%d" % _n, flush=True)
    elif _planned != _n:
        diag("planned %d tests but ran %d" % (_planned, _n))


_servers = []


def run(main):
    """Runs main(), turns an exception into a failed test, stops every
    server still running, prints the plan and exits non-zero on failure."""
    try:
        main()
    except Exception:
        ok(False, "test script raised an exception")
        diag(traceback.format_exc())
    finally:
        for s in list(_servers):
            try:
                s.stop()
            except Exception:
                diag(traceback.format_exc())
    done()
    sys.exit(1 if _failed else 0)


# --------------------------------------------------------------------------
# small utilities

def deadline_loop(timeout, step=0.02):
    """Yields until timeout seconds have passed, pausing step between turns."""
    end = time.monotonic() + timeout
    first = True
    while True:
        if not first:
            if time.monotonic() >= end:
                return
            time.sleep(step)
        first = False
        yield


def wait_for(pred, timeout, step=0.02):
    """Polls pred() until it is truthy or timeout passes; returns its last value."""
    v = None
    for _ in deadline_loop(timeout, step):
        v = pred()
        if v:
            return v
    return v


def free_port(host="127.0.0.1", family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def have_ipv6():
    if not socket.has_ipv6:
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def ipv6_free_port():
    return free_port("::1", socket.AF_INET6)


def portico(args, timeout=20, env=None):
    """Runs the binary with args; returns (exit code, stdout, stderr) as text."""
    e = sanitizer_env()
    if env:
        e.update(env)
    p = subprocess.run([BIN] + list(args), cwd=REPO, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=e)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


_version = None


def version():
    """The version the binary reports on its first -V line."""
    global _version
    if _version is None:
        try:
            rc, out, _ = portico(["-V"])
        except (OSError, subprocess.SubprocessError) as e:
            diag("cannot run %s -V: %s" % (BIN, e))
            return "?"
        m = re.match(r"portico (\S+)\n", out)
        _version = m.group(1) if m else "?"
    return _version


DATE_RE = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT"


def normalize_date(raw):
    """Replaces the value of a Date header in raw response bytes with DATE."""
    return re.sub(rb"\r\nDate: " + DATE_RE.encode() + rb"\r\n", b"\r\nDate: DATE\r\n", raw)


_STATUS_TEXT = {
    400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    413: "Content Too Large", 414: "URI Too Long", 417: "Expectation Failed",
    431: "Request Header Fields Too Large", 501: "Not Implemented",
    505: "HTTP Version Not Supported",
}


def error_body(status):
    t = _STATUS_TEXT[status]
    return ("<html><head><title>%d %s</title></head><body><h1>%d %s</h1></body></html>\n"
            % (status, t, status, t)).encode()


# --------------------------------------------------------------------------
# raw HTTP client

class ServerError(Exception):
    pass


class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []        # [(name, value)] as sent
        self.body = b""
        self.trailers = []
        self.raw = b""           # every byte of this response
        self.chunked = False

    def header(self, name):
        """The value of the first field called name (any case), or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def names(self):
        return [k for k, _ in self.headers]

    def __repr__(self):
        return "<Response %s %s %r>" % (self.status, self.headers, self.body[:80])


class Conn:
    """A client connection with its own read buffer, so pipelined responses
    can be read one by one.  Every operation has a timeout."""

    def __init__(self, host, port, timeout=5.0, family=None, rcvbuf=None):
        if family is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.reset = False
        self.sock.connect((host, port))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        """Sends data; returns False if the peer has reset or closed."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _fill(self, deadline):
        """Reads more bytes into buf.  False at EOF (or reset); raises
        socket.timeout after deadline."""
        return sockfill.fill(self, deadline)

    def readable(self, timeout):
        """True if bytes (or EOF) arrive within timeout, without reading them."""
        if self.buf or self.eof:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def _take_line(self, deadline, limit=65536):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if len(self.buf) > limit:
                raise ServerError("line longer than %d bytes" % limit)
            if not self._fill(deadline):
                raise ServerError("connection closed in the middle of a line: %r" % self.buf[:200])

    def _take(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ServerError("connection closed with %d of %d bytes read" % (len(self.buf), n))
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_response(self, head=False, timeout=None):
        """Reads one whole response.  head=True: the request was HEAD, so no
        body follows whatever the headers say.  Raises ServerError if the
        connection closes before a response is complete (None if it closes
        before its first byte) and socket.timeout on timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        r = Response()
        while not self.buf:
            if not self._fill(deadline):
                return None
        raw = b""
        line = self._take_line(deadline)
        raw += line
        m = re.match(rb"(HTTP/\d\.\d) (\d{3}) ?([^\r\n]*)\r\n$", line)
        if not m:
            raise ServerError("bad status line %r" % line)
        r.version = m.group(1).decode()
        r.status = int(m.group(2))
        r.reason = m.group(3).decode("latin-1")
        while True:
            line = self._take_line(deadline)
            raw += line
            if line == b"\r\n":
                break
            if not line.endswith(b"\r\n") or b":" not in line:
                raise ServerError("bad header line %r" % line)
            k, v = line[:-2].split(b":", 1)
            r.headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        te = (r.header("Transfer-Encoding") or "").lower()
        cl = r.header("Content-Length")
        if head or r.status < 200 or r.status in (204, 304):
            pass
        elif te:
            if te != "chunked":
                raise ServerError("unexpected Transfer-Encoding %r" % te)
            r.chunked = True
            while True:
                line = self._take_line(deadline)
                raw += line
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                data = self._take(size + 2, deadline)
                raw += data
                if data[-2:] != b"\r\n":
                    raise ServerError("chunk not followed by CRLF")
                r.body += data[:-2]
            while True:
                line = self._take_line(deadline)
                raw += line
                if line == b"\r\n":
                    break
                k, v = line[:-2].split(b":", 1)
                r.trailers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        elif cl is not None:
            if not re.fullmatch(r"\d+", cl):
                raise ServerError("bad Content-Length %r" % cl)
            r.body = self._take(int(cl), deadline)
            raw += r.body
        else:
            while self._fill(deadline):
                pass
            r.body, self.buf = self.buf, b""
            raw += r.body
        r.raw = raw
        return r

    def read_until_close(self, timeout=None):
        """Reads until the peer closes; returns the bytes (buffered ones
        included).  Raises socket.timeout if it stays open past timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while self._fill(deadline):
            pass
        d, self.buf = self.buf, b""
        return d

    def closed_within(self, timeout):
        """True if the peer closes (EOF or reset) within timeout; any bytes
        that arrive meanwhile are kept in self.buf."""
        try:
            self.read_until_close_keep(timeout)
            return True
        except socket.timeout:
            return False

    def read_until_close_keep(self, timeout):
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass

    def is_open_after(self, timeout):
        """True if nothing arrives and the peer does not close for timeout seconds."""
        if self.buf or self.eof:
            return False
        r, _, _ = select.select([self.sock], [], [], timeout)
        return not r


# --------------------------------------------------------------------------
# server harness

# ThreadSanitizer says WARNING, not ERROR, for a data race, and goes on
# (halt_on_error=0); a report is a failure all the same.
_SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer)"
                           r"|WARNING: ThreadSanitizer"
                           r"|runtime error: |SUMMARY: (Address|Undefined|Leak|Thread)Sanitizer")

# Defaults for a server's environment when the caller set none (make asan
# and make tsan set their own).  TSan's exitcode=66 makes a report show in
# the exit status as well as on stderr; io_sync=0, see the Makefile.
_SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1",
    "TSAN_OPTIONS": "halt_on_error=0:exitcode=66:second_deadlock_stack=1:io_sync=0:suppressions=%s"
                    % os.path.join(REPO, "t", "tsan.supp"),
}


def sanitizer_env(env=None):
    """A copy of env (default os.environ) with the sanitizer defaults."""
    e = dict(os.environ if env is None else env)
    for k, v in _SANITIZER_ENV.items():
        e.setdefault(k, v)
    return e


MIN_WORKERS = int(os.environ.get("PORTICO_MIN_WORKERS") or 0)
_WORKERS_RE = re.compile(r"^(\s*workers\s*=\s*)(\d+)(\s*)$", re.M)


def _min_workers(conf):
    """conf with every `workers = M` below MIN_WORKERS raised to it."""
    def up(m):
        return m.group(1) + str(max(int(m.group(2)), MIN_WORKERS)) + m.group(3)
    return _WORKERS_RE.sub(up, conf) if MIN_WORKERS > 0 else conf


def _pdeathsig():
    # The server dies with the test even if the test is killed outright.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Server:
    """Writes conf into a temp dir, starts portico on it and waits until every
    listener accepts connections.  In conf, {port} (and {port2}, {port6} for
    an IPv6 loopback port) and {dir} are replaced.  Use as a context manager,
    or call stop(); run() stops whatever is left however the script ends.
    Unless exact_workers is True, `workers = M` is raised to
    PORTICO_MIN_WORKERS if that is more."""

    def __init__(self, conf, name="portico", start=True, ready_timeout=10.0, check_exit=True, expect_rc=0,
                 exact_workers=False):
        if not exact_workers:
            conf = _min_workers(conf)
        self.dir = tempfile.mkdtemp(prefix="portico-t-")
        self.ports = {}
        for key in ("port", "port2"):
            if "{%s}" % key in conf:
                self.ports[key] = free_port()
        if "{port6}" in conf:
            self.ports["port6"] = ipv6_free_port()
        for k, v in self.ports.items():
            conf = conf.replace("{%s}" % k, str(v))
        conf = conf.replace("{dir}", self.dir)
        self.port = self.ports.get("port")
        self.port2 = self.ports.get("port2")
        self.port6 = self.ports.get("port6")
        self.conf = conf
        self.conf_path = os.path.join(self.dir, name + ".ini")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        with open(self.conf_path, "w") as f:
            f.write(conf)
        self.proc = None
        self._err = None
        self.rc = None
        self.stopped = False
        self.check_exit = check_exit
        self.expect_rc = expect_rc
        self._conns = []
        if start:
            try:
                self.start(ready_timeout)
            except BaseException:
                # No test line for the exit status: the exception is the failure.
                self.check_exit = False
                self.stop(timeout=3)
                raise

    # -- life

    def start(self, ready_timeout=10.0):
        env = sanitizer_env()
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([BIN, "-c", self.conf_path], cwd=REPO,
                                     stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err,
                                     env=env, preexec_fn=_pdeathsig)
        _servers.append(self)
        targets = [("127.0.0.1" if k != "port6" else "::1", p) for k, p in self.ports.items()]
        pending = list(targets)
        for _ in deadline_loop(ready_timeout, 0.02):
            if self.proc.poll() is not None:
                self.rc = self.proc.returncode
                raise ServerError("portico exited with %d while starting:\n%s" % (self.rc, self.stderr()))
            still = []
            for host, port in pending:
                fam = socket.AF_INET6 if ":" in host else socket.AF_INET
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.settimeout(1.0)
                try:
                    s.connect((host, port))
                except OSError:
                    still.append((host, port))
                finally:
                    s.close()
            pending = still
            if not pending:
                return self
        raise ServerError("portico not listening on %r after %.0fs:\n%s" % (pending, ready_timeout, self.stderr()))

    def start_nowait(self):
        """Starts the process without waiting for its listeners (for tests
        of start-up failures)."""
        env = sanitizer_env()
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([BIN, "-c", self.conf_path], cwd=REPO,
                                     stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err,
                                     env=env, preexec_fn=_pdeathsig)
        _servers.append(self)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for the process to exit; returns its exit code, or None if it
        is still running after timeout."""
        try:
            self.rc = self.proc.wait(timeout=timeout)
            return self.rc
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after timeout.  Unless check_exit is False,
        reports one test: exit status expect_rc (0) and no sanitizer report.
        Returns the exit status."""
        if self.stopped:
            return self.rc
        self.stopped = True
        if self in _servers:
            _servers.remove(self)
        for c in self._conns:
            c.close()
        killed = False
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                if self.wait(timeout) is None:
                    killed = True
                    self.proc.kill()
                    self.wait(10)
            self.rc = self.proc.returncode
        if getattr(self, "_err", None) is not None:
            self._err.close()
        err = self.stderr()
        if self.check_exit:
            san = _SANITIZER_RE.search(err)
            good = self.rc == self.expect_rc and not killed and san is None
            ok(good, "server stopped cleanly (exit %d, no sanitizer report)" % self.expect_rc)
            if not good:
                diag("exit status %r%s" % (self.rc, ", killed after SIGTERM timeout" if killed else ""))
                diag("stderr:\n" + err[-6000:])
        if os.environ.get("PORTICO_LEAVE") == "1":
            diag("kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.rc

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()
        return False

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def sanitizer_report(self):
        m = _SANITIZER_RE.search(self.stderr())
        return m is not None

    def path(self, name):
        return os.path.join(self.dir, name)

    # -- clients

    def connect(self, port=None, host="127.0.0.1", timeout=5.0, rcvbuf=None):
        c = Conn(host, port or self.port, timeout, rcvbuf=rcvbuf)
        self._conns.append(c)
        return c

    def request(self, data, head=False, port=None, timeout=5.0):
        """One connection, one request, one response (None if the server
        closes without answering)."""
        c = self.connect(port, timeout=timeout)
        try:
            c.send(data)
            return c.read_response(head=head, timeout=timeout)
        finally:
            c.close()

    def get(self, path, host="localhost", headers=(), method="GET", port=None):
        req = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, host)
        for h in headers:
            req += h + "\r\n"
        req += "Connection: close\r\n\r\n"
        return self.request(req.encode("latin-1"), head=(method == "HEAD"), port=port)

    def status_json(self):
        r = self.get("/status")
        if r is None or r.status != 200:
            raise ServerError("GET /status failed: %r" % r)
        return json.loads(r.body)
