#!/usr/bin/env python3
# The admin API (admin = on): the bearer token (none, wrong, right; the
# constant-time compare is checked by review), every endpoint, a server
# added and balanced to, removed, reweighted, drained while a slow request
# and a WebSocket tunnel through it go on, validation errors naming their
# field, changes lost at a reload and POST /reload, GET /config with its
# secrets redacted; the token file's permissions.  Two workers, so a
# change must reach both.
import json
import shutil
import tempfile
import os
import re
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in t/lib
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from portico import *  # noqa: E402,F403
from backend import *  # noqa: E402,F403
from ws import EchoServer, WSClient, Frame, OP_TEXT  # noqa: E402

TOKEN = "s3cr3t-admin-token-0123456789abcdef"

CONF = """\
[global]
workers = 2
log_level = info

[listen:http]
address = 127.0.0.1:{port}

[pool:app]
server = {a}
server = {b}
max_fails = 0

[pool:d]
server = {a}
server = {b}
max_fails = 0

[pool:spare]
server = 127.0.0.1:1 down

[pool:ws]
server = {e}
max_fails = 0

[route:ws]
path = /ws/
pool = ws

[middleware:jwt]
type = jwt
algorithm = HS256
secret = jwt-shared-secret-value-xyz-0123456789

[middleware:hdr]
type = headers
request_set = Authorization: Basic dXNlcjpwYXNzd29yZA==
request_set = X-Plain: visible

[route:app]
path = /app/
pool = app
strip_prefix = yes

[route:d]
path = /d/
pool = d
strip_prefix = yes

[route:jwt]
path = /jwt/
middleware = jwt, hdr
return = 200 ok

[route:health]
path = /healthz
health = d

[route:status]
path = /status
status = json

[route:metrics]
path = /metrics
metrics = prometheus

[route:admin]
path = /admin/
admin = on
admin_token_file = {dir}/token
"""


def api(srv, method, path, body=None, token=TOKEN, raw=None, ctype=True):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    req = "%s /admin%s HTTP/1.1\r\nHost: localhost\r\n" % (method, path)
    if token is not None:
        req += "Authorization: Bearer %s\r\n" % token
    if data or method in ("POST", "PUT"):
        req += "Content-Length: %d\r\n" % len(data)
    req += "Connection: close\r\n\r\n"
    r = srv.request(req.encode() + data, timeout=10)
    try:
        doc = json.loads(r.body) if r.header("Content-Type") == "application/json" else r.body.decode()
    except ValueError:
        doc = None
    return r, doc


def backends_of(srv, path, n):
    got = []
    for _ in range(n):
        r = srv.get(path)
        got.append(r.header("X-Backend") if r is not None and r.status == 200 else None)
    return got


def start(a, b, e):
    srv = Server(CONF.replace("{a}", a.addr).replace("{b}", b.addr).replace("{e}", e.addr), start=False)
    tok = srv.path("token")
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(tok, 0o600)
    srv.start()
    return srv


def test_tokens(srv):
    r, doc = api(srv, "GET", "/pools", token=None)
    is_((r.status, r.header("WWW-Authenticate")), (401, 'Bearer realm="portico admin"'),
        "no token: 401 with WWW-Authenticate: Bearer")
    is_(doc, {"error": "a valid bearer token is required"}, "... and a JSON error")
    r, doc = api(srv, "GET", "/pools", token="x" * len(TOKEN))
    is_(r.status, 401, "a wrong token of the same length: 401")
    r, doc = api(srv, "GET", "/pools", token=TOKEN + "x")
    is_(r.status, 401, "the token with one more byte: 401")
    r, doc = api(srv, "GET", "/pools", token=TOKEN[:-1])
    is_(r.status, 401, "the token less its last byte: 401")
    ok(wait_for(lambda: "admin: GET /admin/pools from 127.0.0.1 refused: no bearer token" in srv.stderr(), 3),
       "a request without a token is logged")
    r, doc = api(srv, "GET", "/pools%0a[error]%20forged", token=None)
    is_(r.status, 401, "a path with an encoded line end: 401")
    ok(wait_for(lambda: "admin: GET /admin/pools%0a[error]%20forged from 127.0.0.1 refused" in srv.stderr(), 3),
       "... logged as sent, on one line")
    ok("refused: wrong token" in srv.stderr(), "... and one with a wrong token")
    r, doc = api(srv, "GET", "/pools")
    is_(r.status, 200, "the right token: 200")


def test_reads(srv, a, b):
    r, doc = api(srv, "GET", "/pools")
    is_([p["name"] for p in doc["pools"]], ["app", "d", "spare", "ws"], "GET /pools lists the pools")
    app = doc["pools"][0]
    is_([(s["address"], s["weight"], s["state"], s["health"], s["backup"]) for s in app["servers"]],
        [(a.addr, 1, "enabled", "up", False), (b.addr, 1, "enabled", "up", False)],
        "... with each server's address, weight, state, health")
    is_(sorted(app["servers"][0].keys()),
        sorted(["address", "weight", "backup", "max_conns", "tls", "state", "health", "active",
                "requests", "failures", "connect_errors", "timeouts", "retries", "avg_latency_ms"]),
        "... and its counters")
    is_((doc["generation"], app["balance"], app["in_service"]), (1, "round_robin", 2),
        "... the generation, the balance and the servers in service")
    r, doc = api(srv, "GET", "/pools/app")
    is_((r.status, doc["name"], len(doc["servers"])), (200, "app", 2), "GET /pools/app")
    r, doc = api(srv, "GET", "/pools/app/servers/" + a.addr)
    is_((r.status, doc["address"]), (200, a.addr), "GET /pools/app/servers/ADDR")
    r, doc = api(srv, "GET", "/pools/nope")
    is_((r.status, doc), (404, {"error": "no such pool", "field": "pool"}), "an unknown pool: 404 naming the field")
    r, doc = api(srv, "GET", "/nothing")
    is_(r.status, 404, "an unknown endpoint: 404")
    r, doc = api(srv, "GET", "/reload")
    is_((r.status, r.header("Allow")), (405, "POST"), "GET /reload: 405, Allow: POST")
    r, doc = api(srv, "DELETE", "/pools")
    is_((r.status, r.header("Allow")), (405, "GET, HEAD"), "DELETE /pools: 405")
    r, doc = api(srv, "POST", "/pools/app", body={})
    is_(r.status, 405, "POST /pools/app: 405")


def test_validation(srv, a):
    P = "/pools/app/servers"
    cases = [
        ({"address": a.addr}, 409, "the pool has this server already", "address", "a duplicate server"),
        ({"weight": 2}, 400, "missing: the server's HOST:PORT", "address", "no address"),
        ({"address": "nope"}, 400, "expected HOST:PORT", "address", "an address without a port"),
        ({"address": "127.0.0.1:99999"}, 400, "expected a port from 1 to 65535", "address", "a bad port"),
        ({"address": "a b:80"}, 400, "expected HOST:PORT or [IPV6]:PORT", "address", "a space in the address"),
        ({"address": "127.0.0.1:80\nserver = x"}, 400, "expected HOST:PORT or [IPV6]:PORT", "address",
         "a newline in the address (no INI injection)"),
        ({"address": "127.0.0.1:9", "weight": 0}, 400, "expected an integer from 1 to 1000", "weight", "weight 0"),
        ({"address": "127.0.0.1:9", "weight": "2"}, 400, "expected an integer from 1 to 1000", "weight",
         "a weight as a string"),
        ({"address": "127.0.0.1:9", "state": "off"}, 400, 'expected "enabled", "drain" or "disabled"', "state",
         "a bad state"),
        ({"address": "127.0.0.1:9", "backup": 1}, 400, "expected true or false", "backup", "a bad backup"),
        ({"address": "127.0.0.1:9", "color": "red"}, 400,
         "unknown field (address, weight, backup, max_conns, tls, state)", "color", "an unknown field"),
    ]
    for body, status, msg, field, name in cases:
        r, doc = api(srv, "POST", P, body=body)
        is_((r.status, doc), (status, {"error": msg, "field": field}), "POST: %s: %d naming %s" % (name, status, field))
    r, doc = api(srv, "POST", P, raw=b'{"address": ')
    is_(r.status, 400, "bad JSON: 400")
    like(doc["error"], r"^bad JSON: ", "... saying so")
    r, doc = api(srv, "POST", P, raw=b'["127.0.0.1:9"]')
    is_((r.status, doc), (400, {"error": "expected a JSON object"}), "a JSON array: 400")
    r, doc = api(srv, "POST", P, raw=b'{"address":"127.0.0.1:9","address":"127.0.0.1:8"}')
    is_(r.status, 400, "a field given twice: 400")
    r, doc = api(srv, "POST", P, raw=b'{"address":"127.0.0.1:9","x":[[[[1]]]]}')
    is_((r.status, doc), (400, {"error": "bad JSON: nested more than 4 levels deep"}),
        "a body nested 5 levels: 400 before it is parsed")
    r, doc = api(srv, "POST", P, raw=b'{"address":"127.0.0.1:9","x":"[[[[[[["}')
    is_((r.status, doc["field"]), (400, "x"), "brackets inside a string do not count")
    r, doc = api(srv, "POST", P, raw=b"[" * 70000)
    is_((r.status, doc), (413, {"error": "the body is larger than 64 KiB"}), "a body over 64 KiB: 413")
    r, doc = api(srv, "POST", "/pools/nope/servers", body={"address": "127.0.0.1:9"})
    is_((r.status, doc["field"]), (404, "pool"), "adding to an unknown pool: 404")
    r, doc = api(srv, "PUT", "/pools/app/servers/127.0.0.1:1", body={"weight": 2})
    is_((r.status, doc), (404, {"error": "no such server in the pool", "field": "address"}),
        "PUT to an unknown server: 404")
    r, doc = api(srv, "PUT", "/pools/app/servers/" + a.addr, body={})
    is_((r.status, doc["field"]), (400, "weight"), "PUT with nothing to change: 400")
    r, doc = api(srv, "PUT", "/pools/app/servers/" + a.addr, body={"address": "x:1"})
    is_((r.status, doc["field"]), (400, "address"), "PUT cannot change the address")
    r, doc = api(srv, "DELETE", "/pools/app/servers/127.0.0.1:1")
    is_(r.status, 404, "DELETE of an unknown server: 404")
    r, doc = api(srv, "GET", "/pools")
    is_(doc["generation"], 1, "no failed change made a new generation")


def test_add_delete_weights(srv, a, b, c):
    r, doc = api(srv, "POST", "/pools/app/servers", body={"address": c.addr, "weight": 2, "backup": False})
    is_((r.status, doc["generation"], [s["address"] for s in doc["servers"]]),
        (200, 2, [a.addr, b.addr, c.addr]), "POST adds a server: generation 2")
    is_((doc["servers"][2]["weight"], doc["servers"][2]["state"]), (2, "enabled"), "... with its weight")
    ok(wait_for(lambda: "admin: added server %s to pool app by 127.0.0.1" % c.addr in srv.stderr(), 3),
       "the change is logged at info with the client")
    got = backends_of(srv, "/app/echo", 24)
    ok("c" in got and "a" in got and "b" in got and None not in got, "requests balance to the new server too")
    is_(got.count("c"), 12, "... its share by its weight (2 of 4)")

    r, doc = api(srv, "DELETE", "/pools/app/servers/" + c.addr)
    is_((r.status, [s["address"] for s in doc["servers"]]), (200, [a.addr, b.addr]), "DELETE removes it")
    ok(wait_for(lambda: "admin: removed server %s from pool app by 127.0.0.1" % c.addr in srv.stderr(), 3),
       "... logged")
    got = backends_of(srv, "/app/echo", 12)
    ok("c" not in got and None not in got, "no request reaches the removed server")

    r, doc = api(srv, "PUT", "/pools/app/servers/" + a.addr, body={"weight": 3})
    is_((r.status, doc["servers"][0]["weight"]), (200, 3), "PUT changes a weight")
    got = backends_of(srv, "/app/echo", 40)
    ok(28 <= got.count("a") <= 32, "weights 3:1 give a about 3/4 of 40 requests (%d)" % got.count("a"))
    r, doc = api(srv, "PUT", "/pools/app/servers/" + b.addr, body={"state": "disabled"})
    is_((r.status, doc["servers"][1]["state"], doc["in_service"]), (200, "disabled", 1), "PUT disables a server")
    got = backends_of(srv, "/app/echo", 8)
    is_(set(got), {"a"}, "... and it gets no request")
    r, doc = api(srv, "DELETE", "/pools/app/servers/" + b.addr)
    r, doc = api(srv, "DELETE", "/pools/app/servers/" + a.addr)
    is_((r.status, doc["field"]), (409, "address"), "the last server cannot be removed: 409")


def test_drain(srv, a, b):
    r, doc = api(srv, "PUT", "/pools/d/servers/" + b.addr, body={"state": "disabled"})
    is_(r.status, 200, "drain: pool d on a alone")
    box = {}

    def slow():
        box["r"] = srv.request(b"GET /d/slow?delay=1.5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10)
    t = threading.Thread(target=slow)
    t.start()
    ok(wait_for(lambda: a.paths.get("/slow", 0) >= 1, 3), "drain: a slow request is at a")
    r, doc = api(srv, "PUT", "/pools/d/servers/" + b.addr, body={"state": "enabled"})
    r, doc = api(srv, "PUT", "/pools/d/servers/" + a.addr, body={"state": "drain", "weight": 5})
    is_((r.status, doc["servers"][0]["state"], doc["servers"][0]["weight"], doc["in_service"]),
        (200, "drain", 5, 1), "PUT state drain (and a weight at once)")
    ok(wait_for(lambda: "admin: set server %s of pool d to weight=5 state=drain by 127.0.0.1" % a.addr
                in srv.stderr(), 3), "... logged")
    ok("r" not in box, "the slow request is still in flight")
    got = backends_of(srv, "/d/echo", 8)
    is_(set(got), {"b"}, "new requests go to the other server only")
    st = srv.status_json()
    is_([s["state"] for s in st["pools"]["d"]["servers"]], ["drain", "up"], "/status shows the state drain")
    m = srv.get("/metrics").body.decode()
    like(m, r'portico_pool_server_state\{pool="d",server="%s",state="drain"\} 1' % re.escape(a.addr),
         "metrics: state drain")
    like(m, r'portico_pool_server_up\{pool="d",server="%s"\} 0' % re.escape(a.addr), "metrics: not up")
    t.join(10)
    r = box.get("r")
    is_((r and r.status, r and r.header("X-Backend")), (200, "a"), "the in-flight request to the drained server completes")
    is_(srv.get("/healthz").status, 200, "health = pools: one server in service is enough")
    r, doc = api(srv, "PUT", "/pools/d/servers/" + b.addr, body={"state": "drain"})
    is_(doc["in_service"], 0, "both drained: none in service")
    is_(srv.get("/healthz").status, 503, "health = pools: a pool with every server drained fails")
    is_(srv.get("/d/echo").status, 503, "... and its requests get 503")


def test_concurrent(srv):
    # Eight clients add eight servers at once, through both workers: each
    # change is made whole on the one before it, none is lost.
    gen0 = api(srv, "GET", "/pools")[1]["generation"]
    res = [None] * 8

    def add(i):
        res[i] = api(srv, "POST", "/pools/spare/servers", body={"address": "127.0.0.1:%d" % (20001 + i),
                                                                "state": "disabled"})
    ts = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    is_([r.status for r, _ in res], [200] * 8, "eight concurrent adds: all 200")
    is_(sorted(d["generation"] for _, d in res), list(range(gen0 + 1, gen0 + 9)),
        "... each its own generation")
    r, doc = api(srv, "GET", "/pools/spare")
    is_(sorted(s["address"] for s in doc["servers"]),
        sorted(["127.0.0.1:1"] + ["127.0.0.1:%d" % (20001 + i) for i in range(8)]), "... and all nine servers are there")
    # Chunked and Expect: 100-continue bodies; HEAD.
    body = b'{"weight":7}'
    req = ("PUT /admin/pools/spare/servers/127.0.0.1:20001 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % TOKEN).encode()
    r = srv.request(req + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body), timeout=10)
    # The eight concurrent adds went in in any order: find it by address.
    is_((r.status, [s["weight"] for s in json.loads(r.body)["servers"] if s["address"] == "127.0.0.1:20001"]),
        (200, [7]), "a chunked body")
    r, doc = api(srv, "DELETE", "/pools/spare/servers/127.0.0.1:20002")
    is_(r.status, 200, "DELETE with no body")
    r = srv.get("/admin/pools", method="HEAD", headers=["Authorization: Bearer " + TOKEN])
    is_((r.status, r.header("Content-Type"), r.body), (200, "application/json", b""), "HEAD /pools: no body")


def test_tunnel_drain(srv, e):
    c = WSClient("127.0.0.1", srv.port, "/ws/echo")
    try:
        is_(c.status, 101, "tunnel drain: a WebSocket tunnel through pool ws")
        r, doc = api(srv, "PUT", "/pools/ws/servers/" + e.addr, body={"state": "drain"})
        is_((r.status, doc["servers"][0]["state"]), (200, "drain"), "its server drained")
        c.send_text("still here")
        f = c.recv(5)
        is_((f.opcode, f.payload) if isinstance(f, Frame) else repr(f), (OP_TEXT, b"still here"),
            "the open tunnel still carries messages both ways")
        is_(srv.get("/ws/echo").status, 503, "a new request to the drained pool: 503")
        r, doc = api(srv, "PUT", "/pools/ws/servers/" + e.addr, body={"state": "enabled"})
        c.send_text("and now")
        f = c.recv(5)
        is_((f.opcode, f.payload) if isinstance(f, Frame) else repr(f), (OP_TEXT, b"and now"),
            "... and after the server is enabled again")
    finally:
        c.close()


def test_reload_and_config(srv, a, b):
    before = api(srv, "GET", "/pools")[1]["generation"]
    r, doc = api(srv, "POST", "/reload")
    is_((r.status, doc), (200, {"generation": before + 1}), "POST /reload answers with the new generation")
    ok(wait_for(lambda: re.search(r"admin: reload by 127\.0\.0\.1; configuration generation %d in service"
                                  % (before + 1), srv.stderr()) is not None, 3), "... logged")
    r, doc = api(srv, "GET", "/pools")
    is_([[(s["address"], s["weight"], s["state"]) for s in p["servers"]] for p in doc["pools"]][:2],
        [[(a.addr, 1, "enabled"), (b.addr, 1, "enabled")]] * 2, "the reload read the file: the changes are gone")
    with open(srv.conf_path) as f:
        good = f.read()
    with open(srv.conf_path, "w") as f:
        f.write(good.replace("max_fails = 0", "max_fails = many", 1))
    r, doc = api(srv, "POST", "/reload")
    is_((r.status, doc["generation"], doc["error"]), (422, before + 1, "reload failed; the running configuration stays"),
        "a reload of a bad file: 422, the generation unchanged")
    ok(len(doc["errors"]) == 1 and re.search(r"\.ini:\d+: \[pool:app\] max_fails: expected a number", doc["errors"][0]),
       "... with the errors, file and line")
    with open(srv.conf_path, "w") as f:
        f.write(good)
    is_(srv.get("/app/echo").status, 200, "the running configuration still serves")

    r, text = api(srv, "GET", "/config")
    is_((r.status, r.header("Content-Type")), (200, "text/plain; charset=utf-8"), "GET /config")
    ok(text.startswith("# effective configuration of ") and "[pool:app]\nserver = %s\n" % a.addr in text,
       "... is the -T text")
    like(text, r"(?m)^secret = <redacted>$", "... the JWT secret redacted")
    ok("jwt-shared-secret-value-xyz-0123456789" not in text, "... nowhere in it")
    like(text, r"(?m)^request_set = Authorization: <redacted>$", "... a credential header rule redacted")
    ok("dXNlcjpwYXNzd29yZA" not in text, "... its value nowhere")
    like(text, r"(?m)^request_set = X-Plain: visible$", "... other header rules as they are")
    like(text, r"(?m)^admin_token_file = .*/token$", "... the token file by its path")
    ok(TOKEN not in text, "... never the token")


def test_token_file():
    d = tempfile.mkdtemp(prefix="portico-t-")
    try:
        tok = os.path.join(d, "token")
        with open(tok, "w") as f:
            f.write(TOKEN)
        conf = os.path.join(d, "p.ini")
        with open(conf, "w") as f:
            f.write("[listen:h]\naddress = 127.0.0.1:1\n[route:a]\npath = /a/\nadmin = on\n"
                    "admin_token_file = %s\n" % tok)
        os.chmod(tok, 0o644)
        rc, out, err = portico(["-t", "-c", conf])
        is_((rc, err.strip().splitlines()[:1]), (1, ["%s:6: [route:a] admin_token_file: %s is readable or "
                                                       "writable by others: chmod o-rwx it" % (conf, tok)]),
            "a token file others may read is refused")
        os.chmod(tok, 0o640)
        rc, out, err = portico(["-t", "-c", conf])
        is_(rc, 0, "mode 0640 is accepted")
        with open(tok, "w") as f:
            f.write("short")
        rc, out, err = portico(["-t", "-c", conf])
        is_(rc, 1, "a token under 16 bytes is refused")
        with open(conf, "a") as f:
            f.write("[listen:pub]\naddress = 0.0.0.0:1\n")
        with open(tok, "w") as f:
            f.write(TOKEN)
        rc, out, err = portico(["-t", "-c", conf])
        ok(rc == 0 and "is not on a loopback address" in err, "a non-loopback listener: a warning")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    a, b, c = Backend("a"), Backend("b"), Backend("c")
    e = EchoServer()
    try:
        test_token_file()
        with start(a, b, e) as srv:
            test_tokens(srv)
            test_reads(srv, a, b)
            test_validation(srv, a)
            test_add_delete_weights(srv, a, b, c)
            test_drain(srv, a, b)
            test_tunnel_drain(srv, e)
            test_concurrent(srv)
            test_reload_and_config(srv, a, b)
    finally:
        for x in (a, b, c, e):
            x.stop()


run(main)
