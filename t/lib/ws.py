"""A minimal RFC 6455 (WebSocket) implementation for the proxy tests.

Standard library only.

    from ws import *

    accept_key(key)                       Sec-WebSocket-Accept for a key
    encode_frame(op, payload, mask=True)  one frame; mask: True (random key),
                                          a 4-byte key, or False/None
    decode_frame(buf)                     (Frame, consumed) or (None, 0)
    Frame: fin, rsv, opcode, masked, payload, lenform (7, 16 or 64),
           close_code (for a close frame with a payload, else None)

    c = WSClient("127.0.0.1", port, "/ws/x")   connects and does the handshake
    c.status, c.reason, c.header("Upgrade"), c.head_raw, c.key, c.accept_ok
    c.send_text("hi"); c.send_binary(b".."); c.ping(b"p"); c.close_frame(1000)
    WSClient(..., ssl_context=ctx)        the same over TLS
    pmd_compress(data), pmd_decompress(payload)   permessage-deflate payloads
    c.recv(timeout) -> Frame      (WSClosed at EOF, socket.timeout on timeout)
    c.closed_within(timeout)      True if the peer closes within timeout
    c.shutdown_write(); c.close()

    e = EchoServer()              threads on 127.0.0.1, a free port
    e.addr                        "127.0.0.1:PORT" for a [pool:...] server line
    e.upgrades                    [(request line, [(name, value)...])] per handshake
    e.plain                       the same for requests without an Upgrade
    e.stop()

The echo server answers a text or binary (or continuation) frame with a
frame of the same opcode, fin bit and payload, a ping with a pong of the
same payload, a close with a close echoing its status code and then closes
the TCP connection; a pong is ignored.  A client frame that is not masked
gets close 1002.  EOF from the client closes the connection.  Requests:
    a GET with Upgrade: websocket and a valid Sec-WebSocket-Key: 101 and echo;
      ?hello=TEXT sends a text frame TEXT in the same write as the 101
    /force101 (any request): 101 without being asked, then echo
    anything else: 200, "plain METHOD TARGET\\n", kept alive
"""

import base64
import collections
import hashlib
import os
import select
import socket
import struct
import threading
import time
import urllib.parse
import zlib

import sockfill

__all__ = [
    "GUID", "OP_CONT", "OP_TEXT", "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG",
    "accept_key", "new_key", "mask_bytes", "encode_frame", "decode_frame", "Frame",
    "ProtocolError", "WSClosed", "WSClient", "EchoServer", "pmd_compress", "pmd_decompress",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_CONTROL = (OP_CLOSE, OP_PING, OP_PONG)


class ProtocolError(Exception):
    pass


class WSClosed(Exception):
    pass


def accept_key(key):
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    return base64.b64encode(hashlib.sha1((key + GUID).encode("latin-1")).digest()).decode("ascii")


def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def mask_bytes(key, data):
    """data XOR the repeated 4-byte key (masking and unmasking alike)."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


class Frame(collections.namedtuple("Frame", "fin rsv opcode masked payload lenform")):
    @property
    def close_code(self):
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def text(self):
        return self.payload.decode("utf-8")


def encode_frame(opcode, payload=b"", mask=True, fin=True, rsv=0, lenform=None, length=None):
    """lenform 16 or 64 forces that length form (a non-minimal one for a
    short payload); length declares another length than the payload's."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    if n < 126 and lenform is None:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536 and lenform != 64:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4) if mask is True else bytes(mask)
    if len(key) != 4:
        raise ValueError("a masking key is 4 bytes")
    return head + key + mask_bytes(key, payload)


def decode_frame(buf, max_len=1 << 30):
    """Decodes the frame at the start of buf: (Frame, bytes used), or
    (None, 0) if buf does not hold a whole frame yet.  A masked payload is
    unmasked.  ProtocolError for what RFC 6455 forbids in a frame by itself."""
    if len(buf) < 2:
        return None, 0
    b0, b1 = buf[0], buf[1]
    fin = bool(b0 & 0x80)
    rsv = (b0 >> 4) & 7
    op = b0 & 0x0F
    masked = bool(b1 & 0x80)
    n = b1 & 0x7F
    pos = 2
    lenform = 7
    if n == 126:
        if len(buf) < 4:
            return None, 0
        n = struct.unpack("!H", buf[2:4])[0]
        pos, lenform = 4, 16
    elif n == 127:
        if len(buf) < 10:
            return None, 0
        n = struct.unpack("!Q", buf[2:10])[0]
        pos, lenform = 10, 64
        if n >> 63:
            raise ProtocolError("64-bit length with its high bit set")
    if op in _CONTROL and (n > 125 or not fin):
        raise ProtocolError("control frame fragmented or longer than 125 bytes")
    if op not in (OP_CONT, OP_TEXT, OP_BINARY) + _CONTROL:
        raise ProtocolError("reserved opcode 0x%x" % op)
    if n > max_len:
        raise ProtocolError("frame of %d bytes" % n)
    key = None
    if masked:
        if len(buf) < pos + 4:
            return None, 0
        key = bytes(buf[pos:pos + 4])
        pos += 4
    if len(buf) < pos + n:
        return None, 0
    payload = bytes(buf[pos:pos + n])
    if masked:
        payload = mask_bytes(key, payload)
    return Frame(fin, rsv, op, masked, payload, lenform), pos + n


def _parse_head(raw):
    """(first line, [(name, value)]) of an HTTP head without its blank line."""
    lines = raw.decode("latin-1").split("\r\n")
    hs = []
    for ln in lines[1:]:
        if not ln:
            continue
        k, _, v = ln.partition(":")
        hs.append((k, v.strip(" \t")))
    return lines[0], hs


def _hget(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def _tokens(v):
    return [t.strip().lower() for t in (v or "").split(",") if t.strip()]


# --------------------------------------------------------------------------
# client


class WSClient:
    """A client connection.  The handshake runs in the constructor; it does
    not raise on a refusal: look at status (None if the peer closed first)."""

    def __init__(self, host, port, path="/", host_header="localhost", headers=(), timeout=5.0,
                 key=None, early=b"", version="13", ssl_context=None, rcvbuf=None):
        self.timeout = timeout
        self.key = key or new_key()
        self.buf = b""
        self.eof = False
        self.reset = False
        self.status = self.reason = None
        self.status_line = None
        self.headers = []
        self.head_raw = b""
        if rcvbuf is None:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        else:
            # Before connect, so the window is sized for it from the start
            # (after, a tiny buffer makes TCP wait on its persist timer).
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=host_header)
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n" % (path, host_header, self.key, version))
        for h in headers:
            req += h + "\r\n"
        req += "\r\n"
        self.request_raw = req.encode("latin-1")
        self.send_raw(self.request_raw + early)
        self._read_head(time.monotonic() + timeout)

    def _read_head(self, deadline):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise ProtocolError("response head too long")
            if not self._fill(deadline):
                return
        i = self.buf.index(b"\r\n\r\n")
        self.head_raw, self.buf = self.buf[:i + 4], self.buf[i + 4:]
        self.status_line, self.headers = _parse_head(self.head_raw[:-4])
        parts = self.status_line.split(" ", 2)
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        self.reason = parts[2] if len(parts) > 2 else ""

    @property
    def accept_ok(self):
        return self.header("Sec-WebSocket-Accept") == accept_key(self.key)

    def header(self, name):
        return _hget(self.headers, name)

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    # -- I/O

    def _fill(self, deadline):
        return sockfill.fill(self, deadline, 262144)

    def send_raw(self, data):
        """Sends bytes as they are; False if the peer has closed or reset."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def send(self, opcode, payload=b"", fin=True, mask=True):
        return self.send_raw(encode_frame(opcode, payload, mask=mask, fin=fin))

    def send_text(self, s):
        return self.send(OP_TEXT, s.encode("utf-8"))

    def send_binary(self, b):
        return self.send(OP_BINARY, b)

    def ping(self, payload=b""):
        return self.send(OP_PING, payload)

    def pong(self, payload=b""):
        return self.send(OP_PONG, payload)

    def close_frame(self, code=1000, reason=b""):
        return self.send(OP_CLOSE, struct.pack("!H", code) + reason)

    def recv(self, timeout=None):
        """The next frame.  WSClosed if the peer closes first, socket.timeout
        if none is whole within timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            f, n = decode_frame(self.buf)
            if f is not None:
                self.buf = self.buf[n:]
                return f
            if not self._fill(deadline):
                raise WSClosed("closed with %d bytes of a frame read" % len(self.buf))

    def recv_n(self, count, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return [self.recv(max(0.001, deadline - time.monotonic())) for _ in range(count)]

    def closed_within(self, timeout):
        """True if the peer closes (EOF or reset) within timeout; bytes that
        arrive meanwhile stay in buf."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
            return True
        except socket.timeout:
            return False

    def is_open_after(self, timeout):
        """True if nothing arrives and the peer does not close for timeout."""
        if self.buf or self.eof:
            return False
        r, _, _ = select.select([self.sock], [], [], timeout)
        return not r

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# --------------------------------------------------------------------------
# permessage-deflate (RFC 7692)


def pmd_compress(data, wbits=15):
    """One message's payload, compressed without context: raw deflate with
    a sync flush, its 00 00 ff ff tail removed."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    z = zlib.compressobj(wbits=-wbits)
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


def pmd_decompress(data, wbits=15):
    z = zlib.decompressobj(wbits=-wbits)
    return z.decompress(data + b"\x00\x00\xff\xff")


# --------------------------------------------------------------------------
# echo server


class EchoServer:
    def __init__(self, host="127.0.0.1", port=0, io_timeout=30.0):
        self.io_timeout = io_timeout
        self.lock = threading.Lock()
        self.upgrades = []
        self.plain = []
        self.connections = 0
        self.frames = 0
        self.errors = []
        self._socks = set()
        self._threads = []
        self._stop = threading.Event()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(128)
        self.host, self.port = self.lsock.getsockname()[:2]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()

    def stop(self, timeout=5.0):
        """Closes the port and cuts every connection; waits for the threads."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._acceptor.join(timeout)
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
            threads = list(self._threads)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        end = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))

    def _accept_loop(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.lsock], [], [], 0.05)
            if not r:
                continue
            try:
                s, _ = self.lsock.accept()
            except OSError:
                continue
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            with self.lock:
                self.connections += 1
                self._socks.add(s)
                self._threads.append(t)
            t.start()

    def _serve(self, s):
        try:
            s.settimeout(self.io_timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    if len(buf) > 65536:
                        return
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                i = buf.index(b"\r\n\r\n")
                head, buf = buf[:i], buf[i + 4:]
                line, hs = _parse_head(head)
                parts = line.split(" ")
                if len(parts) != 3:
                    s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                method, target = parts[0], parts[1]
                path, _, query = target.partition("?")
                q = urllib.parse.parse_qs(query)
                up = "websocket" in _tokens(_hget(hs, "Upgrade"))
                conn_tokens = _tokens(_hget(hs, "Connection"))
                key = _hget(hs, "Sec-WebSocket-Key")
                if path == "/force101":
                    with self.lock:
                        self.plain.append((line, hs))
                    s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    self._echo(s, buf)
                    return
                if up:
                    with self.lock:
                        self.upgrades.append((line, hs))
                    try:
                        keyok = key is not None and len(base64.b64decode(key, validate=True)) == 16
                    except ValueError:
                        keyok = False
                    if (method != "GET" or "upgrade" not in conn_tokens or not keyok
                            or _hget(hs, "Sec-WebSocket-Version") != "13"):
                        s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        return
                    out = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: %s\r\n\r\n" % accept_key(key)).encode("latin-1")
                    if "hello" in q:
                        out += encode_frame(OP_TEXT, q["hello"][0], mask=False)
                    s.sendall(out)
                    self._echo(s, buf)
                    return
                with self.lock:
                    self.plain.append((line, hs))
                cl = _hget(hs, "Content-Length")
                n = int(cl) if cl and cl.isdigit() else 0
                while len(buf) < n:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf[n:]
                body = ("plain %s %s\n" % (method, target)).encode("latin-1")
                close = "close" in conn_tokens
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s"
                          % (len(body), b"Connection: close\r\n" if close else b"",
                             b"" if method == "HEAD" else body))
                if close:
                    return
        except (OSError, ValueError) as e:
            if not self._stop.is_set():
                with self.lock:
                    self.errors.append(repr(e))
        finally:
            with self.lock:
                self._socks.discard(s)
            try:
                s.close()
            except OSError:
                pass

    def _echo(self, s, buf):
        """Frames until a close, a protocol error or EOF."""
        while True:
            try:
                f, n = decode_frame(buf)
            except ProtocolError:
                s.sendall(encode_frame(OP_CLOSE, struct.pack("!H", 1002), mask=False))
                return
            if f is None:
                d = s.recv(262144)
                if not d:
                    return
                buf += d
                continue
            buf = buf[n:]
            with self.lock:
                self.frames += 1
            if not f.masked:
                s.sendall(encode_frame(OP_CLOSE, struct.pack("!H", 1002), mask=False))
                return
            if f.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                s.sendall(encode_frame(f.opcode, f.payload, mask=False, fin=f.fin))
            elif f.opcode == OP_PING:
                s.sendall(encode_frame(OP_PONG, f.payload, mask=False))
            elif f.opcode == OP_CLOSE:
                s.sendall(encode_frame(OP_CLOSE, f.payload[:2], mask=False))
                return
