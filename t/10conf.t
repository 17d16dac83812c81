#!/usr/bin/env python3
# Configuration loading: -t, -T, -V, exit codes, and the FILE:LINE error messages.
import glob
import os
import re
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403

TMP = tempfile.mkdtemp(prefix="portico-t-conf-")

VALID = """\
; a valid file
[global]
workers = 1
header_timeout = 5s

[listen:http]
address = 127.0.0.1:18080

[route:status]
path = /status
status = json

[route:health]
path = /healthz
health = on

[route:home]
path = /
return = 200 hello
"""

# Every error line: FILE:LINE: [section] key: reason, or FILE:LINE: [section] reason
# for a problem with a whole section, or FILE:LINE: reason for a line in no section.
ERR_RE = r"^(?P<file>[^:]+):(?P<line>\d+): (?:\[(?P<sec>[^\]]+)\](?: (?P<key>[a-z_]+))?:? )?(?P<why>.+)$"


def write(name, text):
    p = os.path.join(TMP, name)
    with open(p, "w", newline="") as f:
        f.write(text)
    return p


def errors(err, path):
    """The error lines of a failed -t run (without the summary line)."""
    return [l for l in err.splitlines() if l.startswith(path + ":")]


def check(path):
    return portico(["-t", "-c", path])


def one_error(text, name, expect_line, expect_msg):
    """A file with one mistake: -t exits 1 and prints exactly that message."""
    p = write(name + ".ini", text)
    rc, out, err = check(p)
    is_(rc, 1, "%s: -t exits 1" % name)
    is_(errors(err, p), ["%s:%d: %s" % (p, expect_line, expect_msg)], "%s: the one error, at line %d" % (name, expect_line))
    like(err, r"(?m)^portico: configuration file %s has 1 error$" % re.escape(p), "%s: summary line" % name)


def main():
    # --- valid file
    good = write("good.ini", VALID)
    rc, out, err = check(good)
    is_(rc, 0, "-t on a valid file exits 0")
    is_(err, "portico: configuration file %s is valid\n" % good, "-t says the file is valid")
    is_(out, "", "-t prints nothing on stdout")

    crlf = write("crlf.ini", "\ufeff" + VALID.replace("\n", "\r\n"))
    rc, out, err = check(crlf)
    is_(rc, 0, "a file with a BOM and CRLF line ends is valid")

    # --- every shipped example passes
    examples = sorted(glob.glob(os.path.join(REPO, "etc", "*.ini")))
    ok(len(examples) > 0, "etc/ holds example configurations")
    for p in examples:
        rc, out, err = check(p)
        is_(rc, 0, "portico -t %s" % os.path.relpath(p, REPO))
        if rc != 0:
            diag(err)

    # --- invalid: -t exits 1, without -t 78, and nothing starts
    bad = write("bad.ini", VALID.replace("header_timeout = 5s", "header_timeout = 5 parsecs"))
    rc, out, err = check(bad)
    is_(rc, 1, "-t on an invalid file exits 1")
    rc, out, err = portico(["-c", bad], timeout=10)
    is_(rc, 78, "an invalid file without -t exits 78")
    is_(errors(err, bad), ['%s:4: [global] header_timeout: expected a duration such as 500ms, 10s, 5m, not "5 parsecs"' % bad],
        "without -t the same error is printed")
    unlike(err, r"listening|started", "nothing was started")
    rc, out, err = portico(["-T", "-c", bad])
    is_(rc, 1, "-T on an invalid file exits 1")

    # --- several errors in one run, each on its line, each in the standard form
    multi = write("multi.ini", """\
[global]
workers = many
keepalive_timout = 5s
max_body_size = 1q

[listen:http]
address = 127.0.0.1:notaport

[route:x]
listen = nowhere
path = /x
return = 200 x
""")
    rc, out, err = check(multi)
    is_(rc, 1, "several errors: -t exits 1")
    lines = errors(err, multi)
    is_(lines, [
        '%s:2: [global] workers: expected auto or a number from 1 to 256, not "many"' % multi,
        '%s:3: [global] keepalive_timout: unknown key (did you mean "keepalive_timeout"?)' % multi,
        '%s:4: [global] max_body_size: expected a size such as 512, 16k, 1m, not "1q"' % multi,
        '%s:7: [listen:http] address: expected HOST:PORT, [IPV6]:PORT, :PORT or unix:/PATH, not "127.0.0.1:notaport"' % multi,
        '%s:10: [route:x] listen: no [listen:nowhere] section' % multi,
    ], "several errors: all five reported, in file order, with their lines")
    for l in lines:
        m = re.match(ERR_RE, l)
        ok(m is not None and m.group("sec") is not None and m.group("key") is not None,
           "form FILE:LINE: [section] key: reason: %s" % l[len(TMP) + 1:])
    like(err, r"(?m)^portico: configuration file %s has 5 errors$" % re.escape(multi), "summary counts 5 errors")
    is_(len(err.splitlines()), 6, "nothing else on stderr")

    # --- listeners, pools and routes are checked after the file is read, but
    # their errors are printed in line order with the others
    late = write("late.ini", """\
[listen:http]
address = 127.0.0.1:notaport

[pool:app]
server = 127.0.0.1:9001
balance = fastest

[global]
workers = many

[route:x]
pool = app
upgrade = h2c
retrun = 200
""")
    rc, out, err = check(late)
    is_(rc, 1, "errors found late and early: -t exits 1")
    is_(errors(err, late), [
        '%s:2: [listen:http] address: expected HOST:PORT, [IPV6]:PORT, :PORT or unix:/PATH, not "127.0.0.1:notaport"' % late,
        '%s:6: [pool:app] balance: expected round_robin, least_conn, random, ip_hash or hash HEADER, not "fastest"' % late,
        '%s:9: [global] workers: expected auto or a number from 1 to 256, not "many"' % late,
        '%s:13: [route:x] upgrade: "h2c" is never passed on: upgrading to HTTP/2 is deprecated (RFC 9113 3.1)' % late,
        '%s:14: [route:x] retrun: unknown key (did you mean "return"?)' % late,
    ], "errors found late and early: printed in line order")
    like(err, r"(?m)^portico: configuration file %s has 5 errors$" % re.escape(late), "  and counted")

    # --- one mistake at a time, exact messages and lines
    one_error(VALID.replace("header_timeout = 5s", "keepalive_timout = 5s"), "typo", 4,
              '[global] keepalive_timout: unknown key (did you mean "keepalive_timeout"?)')
    one_error(VALID + "\n[lisen:other]\naddress = 127.0.0.1:18081\n", "unknown-section", 21,
              '[lisen:other]: unknown section (did you mean "listen"?)')
    one_error(VALID + "\n[frobnicate:x]\nfoo = bar\n", "unknown-section-far", 21,
              '[frobnicate:x]: unknown section')
    one_error(VALID + "\n[listen:http]\naddress = 127.0.0.1:18081\n", "dup-listen", 21,
              '[listen:http] duplicate name (first on line 6)')
    one_error(VALID + "\n[route:home]\npath = /other\nreturn = 204\n", "dup-route", 21,
              '[route:home] duplicate name (first on line 17)')
    one_error(VALID + "\n[global]\nbody_timeout = 2s\n", "dup-global", 21, '[global] section given twice')
    one_error(VALID.replace("path = /status\n", "path = /status\nlisten = nope\n"), "dangling-listen", 11,
              '[route:status] listen: no [listen:nope] section')
    one_error(VALID.replace("header_timeout = 5s", "header_timeout = 5y"), "bad-duration", 4,
              '[global] header_timeout: expected a duration such as 500ms, 10s, 5m, not "5y"')
    one_error(VALID.replace("header_timeout = 5s", "header_timeout = 0"), "zero-duration", 4,
              '[global] header_timeout: must be greater than zero, not "0"')
    one_error(VALID.replace("header_timeout = 5s", "max_body_size = 10 MB"), "bad-size", 4,
              '[global] max_body_size: expected a size such as 512, 16k, 1m, not "10 MB"')
    one_error(VALID.replace("header_timeout = 5s", "max_request_line = 10"), "size-range", 4,
              '[global] max_request_line: size out of range, not "10"')
    one_error(VALID.replace("header_timeout = 5s", "workers = 1"), "twice", 4,
              '[global] workers: given twice (first on line 3)')
    one_error(VALID.replace("path = /\n", "pth = /\n"), "route-typo", 18,
              '[route:home] pth: unknown key (did you mean "path"?)')
    one_error(VALID.replace("return = 200 hello", "return = 200 hello\nstatus = json"), "two-handlers", 20,
              '[route:home] status: a route has one handler; "return" was given on line 19')
    one_error("workers = 1\n" + VALID, "outside", 1, 'workers: key outside any section')

    one_error(VALID.replace("[global]", "[global:x]"), "named-global", 2, '[global:x] [global] takes no name')
    one_error(VALID.replace("workers = 1", "workers = 257"), "workers-range", 3,
              '[global] workers: expected auto or a number from 1 to 256, not "257"')
    one_error(VALID.replace("address = 127.0.0.1:18080\n", ""), "no-address", 6,
              '[listen:http] address: missing (e.g. address = 127.0.0.1:8080)')
    one_error(VALID + "\n[listen:again]\naddress = 127.0.0.1:18080\n", "same-address", 22,
              '[listen:again] address: same address as [listen:http]')
    one_error(VALID + "\n[route:home2]\npath = /\nreturn = 204\n", "same-route", 21,
              '[route:home2] same listener, host and path as [route:home]')

    # --- values that would reach the wire must not hold control characters
    for name, text, line, key in (
            ("cr-in-redirect", VALID + "\n[route:r]\npath = /r\nreturn = 302 https://example.com/\rX-Injected: 1\n", 23, "return"),
            ("cr-in-return-type", VALID + "\n[route:r]\npath = /r\nreturn = 200 x\nreturn_type = text/plain\rX-Injected: 1\n", 24, "return_type"),
            ("ctl-in-return-text", VALID + "\n[route:r]\npath = /r\nreturn = 302 https://example.com/\x01\n", 23, "return")):
        p = write(name + ".ini", text)
        rc, out, err = check(p)
        is_(rc, 1, "%s: -t exits 1" % name)
        like(err, r"(?m)^%s:%d: \[route:r\] %s: " % (re.escape(p), line, key), "%s: error names line %d and the key" % (name, line))

    # --- return_file
    body = os.path.join(TMP, "body.txt")
    with open(body, "w") as f:
        f.write("file body\n")
    p = write("rfile.ini", VALID + "\n[route:f]\npath = /f\nreturn = 200\nreturn_file = %s\n" % body)
    is_(check(p)[0], 0, "return_file naming a readable file: valid")
    one_error(VALID + "\n[route:f]\npath = /f\nreturn = 200\nreturn_file = %s/nope.txt\n" % TMP, "return-file-missing", 24,
              '[route:f] return_file: cannot read %s/nope.txt: No such file or directory' % TMP)
    one_error(VALID + "\n[route:f]\npath = /f\nreturn = 200 text\nreturn_file = %s\n" % body, "return-file-and-text", 24,
              '[route:f] return_file: give either a text in return or return_file, not both')
    one_error(VALID + "\n[route:f]\npath = /f\nreturn = 302\n", "redirect-without-url", 23,
              '[route:f] return: a redirect needs a URL: return = 302 https://example.com/')
    one_error(VALID + "\n[route:f]\npath = /f\nreturn = 200\nreturn_type = text/html\nstatus = json\n", "status-and-return", 25,
              '[route:f] status: a route has one handler; "return" was given on line 23')
    one_error(VALID.replace("status = json", "status = json\nreturn_type = text/html"), "foreign-key", 12,
              '[route:status] return_type: belongs to "return =" routes, not "status ="')

    # --- pools: every key's bad value is one error on its line
    POOL = VALID + "\n[pool:app]\nserver = 127.0.0.1:9001\n"   # [pool:app] on line 21, server on 22
    p = write("pool-ok.ini", POOL + "health_check = GET /hz every 2s expect 204\nrise = 1\nfall = 100\n"
              "\n[route:app]\npath = /app/\npool = app\n")
    is_(check(p)[0], 0, "pool with health_check ... expect 204, rise 1, fall 100: valid")
    HC = 'expected "METHOD /path every DURATION [expect 200-399]", not "%s"'
    for name, extra, msg in (
            ("pool-rise-0", "rise = 0", '[pool:app] rise: expected a number from 1 to 100, not "0"'),
            ("pool-fall-101", "fall = 101", '[pool:app] fall: expected a number from 1 to 100, not "101"'),
            ("pool-balance", "balance = fastest",
             '[pool:app] balance: expected round_robin, least_conn, random, ip_hash or hash HEADER, not "fastest"'),
            ("pool-hc-trailing", "health_check = GET /hz every 2s expect 200-299 please",
             "[pool:app] health_check: " + HC % "GET /hz every 2s expect 200-299 please"),
            ("pool-hc-no-every", "health_check = GET /hz 2s",
             "[pool:app] health_check: " + HC % "GET /hz 2s"),
            ("pool-hc-range-order", "health_check = GET /hz every 2s expect 399-200",
             "[pool:app] health_check: " + HC % "GET /hz every 2s expect 399-200"),
            ("pool-hc-range-half", "health_check = GET /hz every 2s expect 200-",
             "[pool:app] health_check: " + HC % "GET /hz every 2s expect 200-"),
            ("pool-hc-status-junk", "health_check = GET /hz every 2s expect 204x",
             "[pool:app] health_check: " + HC % "GET /hz every 2s expect 204x"),
            ("pool-hc-fast", "health_check = GET /hz every 10ms",
             "[pool:app] health_check: " + HC % "GET /hz every 10ms"),
            ("pool-hc-method", "health_check = get /hz every 2s", '[pool:app] health_check: bad method "get"'),
            ("pool-keepalive", "keepalive = lots", None),
            ("pool-timeout", "connect_timeout = soon", '[pool:app] connect_timeout: expected a duration such as 5s, not "soon"')):
        text = POOL + extra + "\n\n[route:app]\npath = /app/\npool = app\n"
        if msg is None:
            pp = write(name + ".ini", text)
            rc, out, err = check(pp)
            is_(rc, 1, "%s: -t exits 1" % name)
            like(err, r"(?m)^%s:23: \[pool:app\] keepalive: " % re.escape(pp), "%s: error names line 23 and the key" % name)
        else:
            one_error(text, name, 23, msg)
    one_error(VALID + "\n[pool:app]\nbalance = random\n\n[route:app]\npath = /app/\npool = app\n", "pool-empty", 21,
              "[pool:app] no server: give server = HOST:PORT")
    one_error(POOL + "\n[route:app]\npath = /app/\npool = app\nrequest_buffer = 32m\n", "request-buffer-big", 27,
              "[route:app] request_buffer: expected a size from 0 to 16m")

    # --- list keys: each line adds to the list, the limit counts all lines; other keys once
    ROUTE = POOL + "\n[route:app]\npath = /app/\npool = app\n"   # [route:app] on line 24, pool on 26
    p = write("lists.ini", ROUTE + "trusted_proxies = 10.0.0.0/8, 127.0.0.1\ntrusted_proxies = ::1\n"
              "upgrade = websocket\nupgrade = foo/2\n"
              "\n[route:files]\npath = /files/\nroot = %s\nindex = a.html\nindex = b.html, c.html\n"
              "precompressed = br\nprecompressed = gzip\n" % TMP)
    rc, out, err = portico(["-T", "-c", p])
    is_(rc, 0, "trusted_proxies, upgrade, index and precompressed on two lines each: valid")
    if rc != 0:
        diag(err)
    # -T prints a route's keys in the order of the handler's table, each
    # list key's lines together and in the order given.
    like(out, r"(?m)^trusted_proxies = 10\.0\.0\.0/8, 127\.0\.0\.1\ntrusted_proxies = ::1\n(.+\n)*upgrade = websocket\nupgrade = foo/2$",
         "-T shows each line, in order")
    like(out, r"(?m)^index = a\.html\nindex = b\.html, c\.html\n(.+\n)*precompressed = br\nprecompressed = gzip$",
         "-T shows index and precompressed lines, in order")
    sixteen = ROUTE + "trusted_proxies = " + " ".join("10.0.0.%d" % i for i in range(1, 15)) + "\ntrusted_proxies = 10.1.0.1\n"
    is_(check(write("trusted-16.ini", sixteen + "trusted_proxies = 10.1.0.2\n"))[0], 0,
        "trusted_proxies: 14, 1 and 1 on three lines: valid")
    one_error(sixteen + "trusted_proxies = 10.1.0.2, 10.1.0.3\n", "trusted-17", 29,
              '[route:app] trusted_proxies: more than 16 addresses or CIDR blocks, counting every '
              'trusted_proxies line ("10.1.0.3" is one too many)')
    one_error(ROUTE + "upgrade = off\nupgrade = websocket\n", "upgrade-off-and-more", 27,
              '[route:app] upgrade: "off" cannot go with another upgrade line (line 28)')
    one_error(ROUTE + "strip_prefix = yes\nforwarded = on\nstrip_prefix = yes\n", "not-a-list-twice", 29,
              '[route:app] strip_prefix: given twice (first on line 27)')
    one_error(ROUTE.replace("server = 127.0.0.1:9001\n", "server = 127.0.0.1:9001\nbalance = random\nbalance = random\n"),
              "pool-key-twice", 24, '[pool:app] balance: given twice (first on line 23)')

    # --- value syntax: compound durations, size suffixes, comments
    p = write("syntax.ini", VALID.replace("header_timeout = 5s", "header_timeout = 1m30s\nmax_body_size = 2MB\n"
                                          "keepalive_timeout = 1500ms ; a comment\nbody_timeout = 7")
              .replace("return = 200 hello", "return = 200 a#b;c"))
    rc, out, err = portico(["-T", "-c", p])
    is_(rc, 0, "compound duration, MB suffix, inline comment: valid")
    for want in ("header_timeout = 90s", "max_body_size = 2m", "keepalive_timeout = 1500ms", "body_timeout = 7s",
                 "return = 200 a#b;c"):
        like(out, r"(?m)^%s$" % re.escape(want), "-T shows %s" % want)

    # --- long lines: read whole up to 65536 bytes (line ending not counted), an error past that
    LIMIT = 65536
    p = write("long.ini", VALID + "\n[route:long]\npath = /long\nhost = " + "x" * 300 + "\nreturn = 200 " + "y" * 10000 + " ; note\n")
    rc, out, err = portico(["-T", "-c", p])
    is_(rc, 0, "lines of 307 and 10020 bytes: valid")
    like(out, r"(?m)^host = x{300}$", "-T shows the 300-byte host whole")
    like(out, r"(?m)^return = 200 y{10000}$", "-T shows the 10000-byte text whole, without its comment")
    prefix = "host = "
    at = write("at-limit.ini", VALID + "\n[route:long]\npath = /long\nreturn = 204\n" + prefix + "x" * (LIMIT - len(prefix)) + "\r\n")
    rc, out, err = portico(["-T", "-c", at])
    is_(rc, 0, "a line of exactly %d bytes (and CR LF) is accepted" % LIMIT)
    like(out, r"(?m)^host = x{%d}$" % (LIMIT - len(prefix)), "-T shows it whole")
    over = write("over-limit.ini", VALID + "\n[route:long]\npath = /long\nreturn = 204\n" + prefix + "x" * (LIMIT + 1 - len(prefix)) + "\nhots = x\n")
    rc, out, err = check(over)
    is_(rc, 1, "a line of %d bytes: -t exits 1" % (LIMIT + 1))
    is_(errors(err, over), ["%s:24: line longer than %d bytes" % (over, LIMIT),
                            '%s:25: [route:long] hots: unknown key (did you mean "host"?)' % over],
        "a line of %d bytes is refused on its line, and the next line is still read" % (LIMIT + 1))
    p = write("long-comment.ini", VALID + ";" * (2 * LIMIT) + "\n")
    is_(check(p)[0], 0, "a comment line longer than the limit is skipped")

    # --- file does not exist
    missing = os.path.join(TMP, "does-not-exist.ini")
    rc, out, err = check(missing)
    is_(rc, 1, "missing file: -t exits 1")
    like(err, r"(?m)^%s: cannot open: No such file or directory$" % re.escape(missing), "missing file: says it cannot open it")
    rc, out, err = portico(["-c", missing])
    is_(rc, 78, "missing file without -t exits 78")

    # --- a directory, and a file that opens but cannot be read
    rc, out, err = check(TMP)
    is_((rc, err), (1, "%s: is a directory\nportico: configuration file %s has 1 error\n" % (TMP, TMP)),
        "-c DIRECTORY: -t exits 1, saying it is a directory")
    rc, out, err = portico(["-c", TMP])
    is_((rc, err.splitlines()[:1]), (78, ["%s: is a directory" % TMP]), "-c DIRECTORY without -t exits 78, saying so")
    rc, out, err = check("/proc/self/mem")
    is_((rc, err.splitlines()[:1]), (1, ["/proc/self/mem: cannot read: Input/output error"]),
        "a file that opens but cannot be read: -t exits 1 with the reason")

    # --- -T prints the effective configuration with defaults
    rc, out, err = portico(["-T", "-c", good])
    is_(rc, 0, "-T exits 0")
    ok(out.startswith("# effective configuration of %s\n[global]\n" % good), "-T starts with a header and [global]")
    for want in ("workers = 1", "header_timeout = 5s", "keepalive_timeout = 1m", "body_timeout = 30s",
                 "shutdown_timeout = 10s", "max_connections = 10000", "max_request_line = 8k",
                 "max_header_size = 16k", "max_headers = 100", "max_body_size = 1m",
                 "access_log_format = combined", "server_tokens = on", "log_level = info"):
        like(out, r"(?m)^%s$" % re.escape(want), "-T shows %s" % want)
    like(out, r"(?m)^\[listen:http\]\naddress = 127\.0\.0\.1:18080\nbacklog = 511$", "-T shows the listener with its default backlog")
    like(out, r"(?m)^\[route:home\]\nlisten = http\npath = /\nreturn = 200 hello$", "-T shows a route with its listener")
    # the dump is itself a valid file that says the same
    again = write("dumped.ini", out)
    rc2, out2, err2 = portico(["-T", "-c", again])
    is_(rc2, 0, "the -T output is a valid configuration")
    is_(out2.split("\n", 1)[1], out.split("\n", 1)[1], "-T of the -T output is the same")

    # --- -T fills in the defaults of pools, middleware blocks and routes from
    # their key tables, and what it prints loads again to the same text
    def round_trip(path, name):
        rc, out, err = portico(["-T", "-c", path])
        is_(rc, 0, "%s: -T exits 0" % name)
        again = write(name.replace("/", "_") + ".dump.ini", out.split("\n", 1)[1] if "\n" in out else out)
        rc2, out2, err2 = check(again)
        is_(rc2, 0, "%s: the -T output passes -t" % name)
        if rc2 != 0:
            diag(err2)
        rc3, out3, err3 = portico(["-T", "-c", again])
        is_(out3.split("\n", 1)[1:], out.split("\n", 1)[1:], "%s: -T of the -T output is the same" % name)
        return out

    for p in examples:
        round_trip(p, os.path.relpath(p, REPO))

    os.makedirs(os.path.join(TMP, "www"), exist_ok=True)
    rich = write("rich.ini", """\
[listen:http]
address = 127.0.0.1:18080

[pool:bare]
server = 127.0.0.1:9001

[pool:checked]
server = 127.0.0.1:9002 weight=3
server = backend.invalid:9003 backup
health_check = HEAD /up every 5s
rise = 4
balance = hash X-User

[middleware:rules]
type = headers
response_set = X-Frame-Options: DENY
request_remove = X-Debug

[middleware:cors]
type = headers
cors_origins = https://a.example
cors_origins = https://b.example
cors_credentials = on

[route:files]
path = /files/
root = %s
cache_control = max-age=60

[route:api]
path = /api/
middleware = rules
middleware = cors
pool = checked
upgrade = off
trusted_proxies = 10.0.0.0/8

[route:bare]
host = Example.COM
path = /
pool = bare

[route:moved]
path = /old/
return = 301 https://example.com/new/
""" % os.path.join(TMP, "www"))
    out = round_trip(rich, "rich.ini")
    # A static route without index, autoindex, precompressed or
    # follow_symlinks: their defaults, and no line for the optional keys not
    # given (mime_types has no default).
    like(out, r"(?m)^\[route:files\]\nlisten = http\npath = /files/\nroot = .*\nindex = index\.html\nautoindex = off\n"
              r"cache_control = max-age=60\nprecompressed = off\nfollow_symlinks = inside\n\n", "-T: a static route with its defaults")
    unlike(out, r"(?m)^mime_types", "-T: no line for a key without a default")
    # A pool with nothing but a server: every default, in table order; rise
    # and fall only apply with health_check.
    like(out, r"(?m)^\[pool:bare\]\nserver = 127\.0\.0\.1:9001\nbalance = round_robin\nkeepalive = 32\n"
              r"keepalive_timeout = 60s\nconnect_timeout = 5s\nsend_timeout = 30s\nread_timeout = 30s\n"
              r"tls_verify = on\nresolve = 30s\ntunnel_timeout = 1h\nretries = 1\nmax_fails = 1\n"
              r"fail_timeout = 10s\npanic_threshold = 50%\n\n", "-T: a pool with every default")
    like(out, r"(?m)^\[pool:checked\]\nserver = 127\.0\.0\.1:9002 weight=3\nserver = backend\.invalid:9003 backup\n"
              r"balance = hash X-User\n(.+\n)*health_check = HEAD /up every 5s\nrise = 4\nfall = 3\n\n",
         "-T: server lines as written, rise as given, fall's default with health_check")
    # Middleware: the cors_ defaults only for a block with cors_origins.
    like(out, r"(?m)^\[middleware:rules\]\ntype = headers\nrequest_remove = X-Debug\nresponse_set = X-Frame-Options: DENY\n\n",
         "-T: a headers block without CORS has no cors_ lines")
    like(out, r"(?m)^\[middleware:cors\]\ntype = headers\ncors_origins = https://a\.example\ncors_origins = https://b\.example\n"
              r"cors_methods = GET, HEAD, POST\ncors_credentials = on\n\n", "-T: a CORS block with cors_methods' default")
    like(out, r"(?m)^\[route:api\]\nlisten = http\npath = /api/\nmiddleware = rules\nmiddleware = cors\npool = checked\n"
              r"strip_prefix = off\nrequest_buffer = 64k\nhost_header = client\nforwarded = off\n"
              r"trusted_proxies = 10\.0\.0\.0/8\nrequest_id = trusted\nupgrade = off\n\n", "-T: a pool route with its defaults")
    like(out, r"(?m)^\[route:bare\]\nlisten = http\nhost = example\.com\npath = /\npool = bare\n(.+\n)*upgrade = websocket$",
         "-T: upgrade's default")
    like(out, r"(?m)^\[route:moved\]\nlisten = http\npath = /old/\nreturn = 301 https://example\.com/new/\n"
              r"return_type = text/plain; charset=utf-8$", "-T: a return route with return_type's default")
    def keys_of(section):
        m = re.search(r"(?ms)^\[%s\]\n(.*?)(?:\n\n|\Z)" % re.escape(section), out)
        return [l.split(" =")[0] for l in m.group(1).splitlines()] if m else None
    is_(keys_of("route:files"), ["listen", "path", "root", "index", "autoindex", "cache_control", "precompressed",
                                 "follow_symlinks"], "-T: a static route has only static keys")
    is_(keys_of("route:moved"), ["listen", "path", "return", "return_type"], "-T: a return route has only return keys")

    # --- unknown and repeated keys are still refused where the tables say
    base = "[listen:http]\naddress = 127.0.0.1:18080\n"                       # lines 1-2
    one_error(base + "[pool:p]\nserver = 127.0.0.1:1\nkeepalvie = 3\n[route:r]\npool = p\n", "pool-unknown", 5,
              '[pool:p] keepalvie: unknown key (did you mean "keepalive"?)')
    one_error(base + "[middleware:m]\ntype = headers\ncors_origin = https://a.example\n[route:r]\nmiddleware = m\nreturn = 204\n",
              "middleware-unknown", 5, '[middleware:m] cors_origin: unknown key (did you mean "cors_origins"?)')
    one_error(base + "[route:r]\nroot = %s\nautoindx = on\n" % TMP, "route-unknown", 5,
              '[route:r] autoindx: unknown key (did you mean "autoindex"?)')
    one_error(base + "[route:r]\nroot = %s\nautoindex = on\nautoindex = off\n" % TMP, "route-twice", 6,
              "[route:r] autoindex: given twice (first on line 5)")
    one_error(base + "[middleware:m]\ntype = headers\ncors_origins = *\ncors_max_age = 1m\ncors_max_age = 2m\n"
              "[route:r]\nmiddleware = m\nreturn = 204\n", "middleware-twice", 7,
              "[middleware:m] cors_max_age: given twice (first on line 6)")
    one_error(base + "[pool:p]\nserver = 127.0.0.1:1\nrise = 2\nrise = 3\n[route:r]\npool = p\n", "pool-twice", 6,
              "[pool:p] rise: given twice (first on line 5)")
    # A list key may be repeated, in a route, a pool and a middleware block.
    is_(check(write("lists-ok.ini", base + "[pool:p]\nserver = 127.0.0.1:1\nserver = 127.0.0.1:2\n"
                    "[middleware:m]\ntype = headers\nresponse_add = A: 1\nresponse_add = A: 2\n"
                    "[route:r]\nmiddleware = m\npool = p\nupgrade = websocket\nupgrade = foo\n"))[0], 0,
        "list keys given twice: valid")

    # --- -V, -h, bad options
    rc, out, err = portico(["-V"])
    is_(rc, 0, "-V exits 0")
    lines = out.splitlines()
    ok(len(lines) == 3, "-V prints three lines")
    like(out, r"\Aportico \d+\.\d+\.\d+\nlibevent \d+\.\d+\.\d+\S*\nOpenSSL \d+\.\d+\.\d+.*\n\Z", "-V names portico, libevent and OpenSSL versions")
    rc, out, err = portico(["-h"])
    is_(rc, 0, "-h exits 0")
    like(out, r"^usage: portico", "-h prints usage on stdout")
    rc, out, err = portico(["-x"])
    is_(rc, 64, "an unknown option exits 64")
    like(err, r"(?m)^usage: portico", "an unknown option prints usage on stderr")
    rc, out, err = portico(["-c"])
    is_(rc, 64, "-c without a file exits 64")
    rc, out, err = portico(["-t", "-c", good, "extra"])
    is_(rc, 64, "a stray argument exits 64")
    like(err, r'unexpected argument "extra"', "a stray argument is named")


try:
    run(main)
finally:
    if os.environ.get("PORTICO_LEAVE") == "1":
        print("# kept %s" % TMP)
    else:
        shutil.rmtree(TMP, ignore_errors=True)
