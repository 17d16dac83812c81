#!/usr/bin/env python3
# `type = basic`: HTTP Basic authentication against htpasswd files made
# here with Debian's htpasswd (bcrypt -B, SHA-256 -2, SHA-512 -5) and
# mkpasswd (SHA-512 crypt): the challenge, good and bad credentials, an
# unknown user costing as much time as a wrong password, malformed
# headers, a colon and UTF-8 in a password, the user in the access log,
# Authorization passed to a backend (and removed by a headers block after
# this one), the cache of verified credentials and its cache_ttl, a
# reload reading a changed file (and a refused one changing nothing), and
# the load-time errors with the user file's line.
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403

CONF = """\
[global]
workers = 1
access_log = {dir}/access.log
access_log_format = json
keepalive_timeout = 30s

[listen:http]
address = 127.0.0.1:{port}

[pool:app]
server = %(a)s
max_fails = 0

[middleware:auth]
type = basic
htpasswd = {dir}/users.htpasswd
realm = Staff area

[middleware:strip]
type = headers
request_remove = Authorization

[middleware:slow]
type = basic
htpasswd = {dir}/slow.htpasswd
cache_ttl = off

[middleware:slow-cached]
type = basic
htpasswd = {dir}/slow.htpasswd

[middleware:slow-short]
type = basic
htpasswd = {dir}/slow.htpasswd
cache_ttl = 3s

[route:short]
path = /short/
return = 200 short
middleware = slow-short

[route:app]
path = /app/
pool = app
strip_prefix = yes
middleware = auth

[route:stripped]
path = /stripped/
pool = app
strip_prefix = yes
middleware = auth, strip

[route:slow]
path = /slow/
return = 200 slow
middleware = slow

[route:slow-cached]
path = /cached/
return = 200 cached
middleware = slow-cached

[route:site]
path = /
return = 200 welcome
middleware = auth
"""

CHALLENGE = 'Basic realm="Staff area", charset="UTF-8"'


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def mkpasswd(pw):
    return subprocess.run(["mkpasswd", "-m", "sha-512", "--stdin"], input=pw.encode(), check=True,
                          stdout=subprocess.PIPE, timeout=30).stdout.decode().strip()


def make_users(path, alice_pw):
    sh("htpasswd", "-c", "-b", "-B", "-C", "5", path, "alice", alice_pw)
    sh("htpasswd", "-b", "-2", path, "bob", "pa:ss")
    sh("htpasswd", "-b", "-5", path, "carol", "w\u00f6rd")
    with open(path, "a") as f:
        f.write("# made by mkpasswd\n\ndave:%s\n" % mkpasswd("dave's pw"))


def auth(user, pw):
    return "Authorization: Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


def alog_lines(srv, pat):
    path = srv.path("access.log")
    if not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path).read().splitlines() if re.search(pat, l)]


def test_challenge(srv, a):
    before = a.requests
    r = srv.get("/")
    is_(r and (r.status, r.header_all("WWW-Authenticate")), (401, [CHALLENGE]),
        "no Authorization: 401 with the challenge, realm quoted, charset UTF-8")
    r = srv.get("/app/echo")
    is_(r and (r.status, r.header("WWW-Authenticate")), (401, CHALLENGE), "proxied route: 401 too")
    is_(a.requests, before, "... and the backend never asked")
    r = srv.get("/", method="HEAD")
    is_(r and (r.status, r.header("WWW-Authenticate"), r.body), (401, CHALLENGE, b""), "HEAD: 401, no body")


def test_good(srv):
    for user, pw, what in (("alice", "correct horse", "bcrypt (htpasswd -B)"),
                           ("bob", "pa:ss", "SHA-256 crypt (htpasswd -2), a colon in the password"),
                           ("carol", "w\u00f6rd", "SHA-512 crypt (htpasswd -5), a UTF-8 password"),
                           ("dave", "dave's pw", "SHA-512 crypt (mkpasswd -m sha-512)")):
        r = srv.get("/", headers=[auth(user, pw)])
        is_(r and (r.status, r.body, r.header("WWW-Authenticate")), (200, b"welcome", None),
            "%s: %s: 200" % (user, what))
    # Each worker writes its own lines (PORTICO_MIN_WORKERS may make two):
    # wait for all four, not only the last one sent.
    o = wait_for(lambda: [l for l in alog_lines(srv, '"user"') if l["fields"]["user"] == "dave"], 5)
    is_(o and o[0].get("status"), 200, "the access log has the user (json: fields.user = dave)")
    wait_for(lambda: len(alog_lines(srv, '"user"')) >= 4 or None, 5)
    users = sorted(l["fields"]["user"] for l in alog_lines(srv, '"user"'))
    is_(users, ["alice", "bob", "carol", "dave"], "... one line per user who got in")


def test_bad(srv):
    refused = [
        ("alice, a wrong password", auth("alice", "correct horsE")),
        ("alice, the password of another user", auth("alice", "pa:ss")),
        ("bob, the password cut at the colon", auth("bob", "pa")),
        ("an unknown user", auth("mallory", "correct horse")),
        ("a user in another case", auth("Alice", "correct horse")),
        ("an empty user and password", auth("", "")),
        ("no colon", "Authorization: Basic " + base64.b64encode(b"alice").decode()),
        ("not base64", "Authorization: Basic !!!!"),
        ("base64 without its padding", "Authorization: Basic YWxpY2U6Y29ycmVjdCBob3JzZQ"),
        ("another scheme", "Authorization: Bearer " + base64.b64encode(b"alice:correct horse").decode()),
        ("the scheme alone", "Authorization: Basic"),
        ("a control byte in the password", "Authorization: Basic " + base64.b64encode(b"alice:correct\thorse").decode()),
    ]
    for what, h in refused:
        r = srv.get("/", headers=[h])
        is_(r and (r.status, r.header_all("WWW-Authenticate")), (401, [CHALLENGE]), "%s: 401, the same challenge" % what)
    r = srv.get("/", headers=[auth("alice", "correct horse"), auth("alice", "correct horse")])
    is_(r and r.status, 401, "two Authorization headers, both good: 401")
    r1 = srv.get("/", headers=[auth("alice", "nope")])
    r2 = srv.get("/", headers=[auth("nobody", "nope")])
    is_(r1 and r1.body, r2 and r2.body, "wrong password and unknown user: the same body")
    err = srv.stderr()
    like(err, r'conn \d+ from 127\.0\.0\.1: middleware auth \(basic\): wrong password for user "alice"',
         "the error log says a password was wrong, for whom")
    like(err, r'middleware auth \(basic\): unknown user "mallory"', "... and names an unknown user")
    want = 3 + len(refused) + 3  # test_challenge's, these, the two headers and the last two
    def all_401():
        got = alog_lines(srv, '"status":401')
        return got if len(got) >= want else None
    lines = wait_for(all_401, 5) or []
    ok(len(lines) == want and all("fields" not in l and l.get("termination") == "middleware" for l in lines),
       "401s are logged with termination middleware and no user")


def test_proxy(srv, a):
    r = srv.get("/app/echo", headers=[auth("alice", "correct horse")])
    is_(echoed_headers(r, "Authorization"), [auth("alice", "correct horse").split(": ", 1)[1]],
        "proxied: the backend gets Authorization as the client sent it (as nginx does)")
    r = srv.get("/stripped/echo", headers=[auth("bob", "pa:ss")])
    is_(r and (r.status, echoed_headers(r, "Authorization")), (200, []),
        "proxied with a headers block removing Authorization after this one: the backend gets none")


def timed(srv, conn, path, header):
    t0 = time.monotonic()
    r = exchange(conn, "GET", path, headers=[header], timeout=20)
    return (r.status if r else None), time.monotonic() - t0


def test_timing(srv):
    # bcrypt cost 12: a check takes a few hundred milliseconds.  Without the
    # cache every request pays it, an unknown user as much as a known one.
    c = srv.connect(timeout=20)
    good = [timed(srv, c, "/slow/", auth("slow", "slow pw")) for _ in range(2)]
    wrong = [timed(srv, c, "/slow/", auth("slow", "wrong")) for _ in range(2)]
    unknown = [timed(srv, c, "/slow/", auth("ghost", "wrong")) for _ in range(2)]
    c.close()
    is_([s for s, _ in good + wrong + unknown], [200] * 2 + [401] * 4, "bcrypt cost 12: good, wrong, unknown")
    tg, tw, tu = (min(t for _, t in v) for v in (good, wrong, unknown))
    diag("bcrypt cost 12, no cache: good %.3fs, wrong password %.3fs, unknown user %.3fs" % (tg, tw, tu))
    ok(tg > 0.05 and tw > 0.05, "every check pays for bcrypt without the cache (good %.3fs, wrong %.3fs)" % (tg, tw))
    ok(tu > 0.5 * tw, "an unknown user takes as long as a wrong password (%.3fs against %.3fs)" % (tu, tw))

    # With the cache, the same credentials on the same worker (one
    # connection) are checked once, then found by their keyed hash.
    c = srv.connect(timeout=20)
    first = timed(srv, c, "/cached/", auth("slow", "slow pw"))
    again = [timed(srv, c, "/cached/", auth("slow", "slow pw")) for _ in range(5)]
    wrong = [timed(srv, c, "/cached/", auth("slow", "wrong")) for _ in range(2)]
    c.close()
    is_([first[0]] + [s for s, _ in again + wrong], [200] * 6 + [401] * 2, "cached: good six times, wrong twice")
    ta, tw = max(t for _, t in again), min(t for _, t in wrong)
    diag("cached: first %.3fs, then at most %.3fs; wrong passwords at least %.3fs" % (first[1], ta, tw))
    ok(ta < first[1] / 3, "cached: later requests skip bcrypt (%.3fs against %.3fs)" % (ta, first[1]))
    ok(tw > 0.05, "cached: a wrong password is never cached (%.3fs)" % tw)

    # cache_ttl = 3s: remembered for three seconds, then checked again.  The
    # entry's time runs from the start of the check (common/mw_basic.c
    # check), and a cost 12 check took 1.2 s under make tsan on a loaded
    # CPU: a 1 s ttl had run out before the second request came.
    c = srv.connect(timeout=20)
    first = timed(srv, c, "/short/", auth("slow", "slow pw"))
    again = timed(srv, c, "/short/", auth("slow", "slow pw"))
    time.sleep(3.1)
    later = timed(srv, c, "/short/", auth("slow", "slow pw"))
    c.close()
    diag("cache_ttl = 3s: first %.3fs, again %.3fs, 3.1 s later %.3fs" % (first[1], again[1], later[1]))
    is_((first[0], again[0], later[0]), (200, 200, 200), "cache_ttl = 3s: good three times")
    ok(again[1] < first[1] / 3 and later[1] > again[1] * 3 and later[1] > 0.05,
       "cache_ttl = 3s: the second request is cached, the one 3.1 s later is checked again")


def reload_to(srv, gen):
    srv.signal(signal.SIGHUP)
    pat = re.compile(r"reload: configuration generation %d in service$|reload failed" % gen, re.M)
    m = wait_for(lambda: pat.findall(srv.stderr()), 10)
    return bool(m) and "generation %d in service" % gen in m[-1]


def test_reload(srv):
    c = srv.connect(timeout=10)
    r = exchange(c, "GET", "/", headers=[auth("alice", "correct horse")])
    is_(r and r.status, 200, "before the reload: alice's password (now cached)")
    c.close()
    users = srv.path("users.htpasswd")
    tmp = users + ".new"
    make_users(tmp, "battery staple")
    sh("htpasswd", "-b", "-B", "-C", "5", tmp, "erin", "erin pw")
    os.replace(tmp, users)
    ok(reload_to(srv, 2), "SIGHUP with the file changed: generation 2 in service")
    is_(srv.get("/", headers=[auth("alice", "correct horse")]).status, 401,
        "after the reload: alice's old password is refused (the cache went with the old snapshot)")
    is_(srv.get("/", headers=[auth("alice", "battery staple")]).status, 200, "... her new one works")
    is_(srv.get("/", headers=[auth("erin", "erin pw")]).status, 200, "... and a user added to the file")

    with open(users, "a") as f:
        f.write("frank:$apr1$l9dLEbOl$Ig4UBiAr811tPsdf37.Ww.\n")
    n_lines = len(open(users).read().splitlines())
    ok(not reload_to(srv, 3), "SIGHUP with an MD5 line added: the reload fails")
    like(srv.stderr(), r"\[error\] reload: %s:\d+: \[middleware:auth\] htpasswd: %s:%d: user \"frank\": MD5 "
         r"\(\$apr1\$\) hashes are refused" % (re.escape(srv.conf_path), re.escape(users), n_lines),
         "... saying which file, line and user")
    is_(srv.get("/", headers=[auth("erin", "erin pw")]).status, 200, "... and generation 2 stays in service")


def config_errors(d):
    users = os.path.join(d, "md5.htpasswd")
    sh("htpasswd", "-c", "-b", "-B", "-C", "5", users, "alice", "pw")
    with open(users, "a") as f:
        f.write("# legacy\n")
    sh("htpasswd", "-b", "-m", users, "bob", "pw")
    good = os.path.join(d, "good.htpasswd")
    sh("htpasswd", "-c", "-b", "-B", "-C", "5", good, "alice", "pw")
    p = os.path.join(d, "t.ini")
    with open(p, "w") as f:
        f.write("[listen:a]\naddress = 127.0.0.1:1\n[route:r]\nreturn = 200 x\nmiddleware = m, n, o\n"
                "[middleware:m]\ntype = basic\nhtpasswd = %s\n"
                "[middleware:n]\ntype = basic\nhtpasswd = %s/missing\nrealm = say \"hi\"\ncache_ttl = soon\n"
                "[middleware:o]\ntype = basic\nrealm = x\nfile = %s\n" % (users, d, good))
    rc, out, err = portico(["-t", "-c", p])
    got = [l for l in err.splitlines() if l.startswith(p)]
    is_((rc, got), (1, [
        '%s:8: [middleware:m] htpasswd: %s:3: user "bob": MD5 ($apr1$) hashes are refused: '
        'make a bcrypt one with htpasswd -B' % (p, users),
        '%s:11: [middleware:n] htpasswd: %s/missing: cannot read it: No such file or directory' % (p, d),
        '%s:12: [middleware:n] realm: may not hold a double quote, a backslash or a control character' % p,
        '%s:13: [middleware:n] cache_ttl: expected a duration such as 5m, or off, not "soon"' % p,
        '%s:17: [middleware:o] file: unknown key' % p,
    ]), "-t: each error with its line, the MD5 one with the user file's line too")
    with open(p, "w") as f:
        f.write("[listen:a]\naddress = 127.0.0.1:1\n[route:r]\nreturn = 200 x\nmiddleware = o\n"
                "[middleware:o]\ntype = basic\nrealm = x\n")
    rc, out, err = portico(["-t", "-c", p])
    is_((rc, [l for l in err.splitlines() if l.startswith(p)]),
        (1, ['%s:6: [middleware:o] htpasswd: missing: give the file of users and their password hashes' % p]),
        "-t: htpasswd is required")
    with open(p, "w") as f:
        f.write("[listen:a]\naddress = 127.0.0.1:1\n[route:r]\nreturn = 200 x\nmiddleware = o\n"
                "[middleware:o]\ntype = basic\nhtpasswd = %s\ncache_ttl = off\n" % good)
    rc, out, err = portico(["-t", "-c", p])
    is_(rc, 0, "-t: a good block (cache_ttl = off) is valid")


def main():
    a = Backend("a")
    try:
        with Server(CONF % {"a": a.addr}, start=False) as srv:
            make_users(srv.path("users.htpasswd"), "correct horse")
            sh("htpasswd", "-c", "-b", "-B", "-C", "12", srv.path("slow.htpasswd"), "slow", "slow pw")
            srv.start()
            test_challenge(srv, a)
            test_good(srv)
            test_bad(srv)
            test_proxy(srv, a)
            test_timing(srv)
            test_reload(srv)
            config_errors(srv.dir)
    finally:
        a.stop()


run(main)
