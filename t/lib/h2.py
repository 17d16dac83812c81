"""HTTP/2 (RFC 9113) and HPACK (RFC 7541) for the tests, frames written by hand.

Standard library only.  This is not a conforming client: it sends whatever a
test asks for, including what no real client sends (a frame on the wrong
stream, a header block cut into thousands of CONTINUATION frames, a lying
length), and it checks only what it needs in order to keep reading.

    from h2 import *

Frames: functions returning the bytes of one frame, to send alone or joined
into one write.  sid is a stream id; pad=N adds a Pad Length octet and N
zero octets (flag PADDED); priority=(dependency, weight, exclusive).
    frame(type, flags, sid, payload=b"", length=None, reserved=False)
                                        any frame; length= declares another
                                        length than the payload's
    data_frame(sid, data, end_stream=False, pad=None)
    headers_frame(sid, block, end_stream=False, end_headers=True, pad=None, priority=None)
    priority_frame(sid, dependency, weight=16, exclusive=False)
    rst_stream_frame(sid, error_code)
    settings_frame(settings=(), ack=False)      settings: dict or [(id, value)]
    push_promise_frame(sid, promised_sid, block, end_headers=True, pad=None)
    ping_frame(data=8 zero octets, ack=False)
    goaway_frame(last_sid, error_code, debug=b"")
    window_update_frame(sid, increment)
    continuation_frame(sid, block, end_headers=True)
    parse_frame(buf) -> (Frame, octets used), or (None, 0) if buf lacks a whole frame
    Frame: type, flags, stream_id, payload, reserved, name, length, end_stream,
           end_headers, ack, padded, malformed (payload too short for its
           type), data (DATA without padding), block (header block fragment),
           priority, settings (dict) and settings_list, error_code,
           last_stream_id, debug, increment, opaque (PING data),
           promised_stream_id, headers (decoded, on the frame ending a block
           read by an H2Client)

HPACK (header names and values are str, one character per octet: latin-1;
an encoder also takes bytes):
    encode_int(value, prefix_bits, first=0) / decode_int(buf, pos, prefix_bits) -> (value, pos)
    encode_string(s, huffman=False) / decode_string(buf, pos) -> (bytes, pos)
    huffman_encode(octets) / huffman_decode(octets)      (HPACKError if invalid)
    STATIC_TABLE                    the 61 (name, value) entries, index 1 first
    e = Encoder(huffman=False)      e.encode([(name, value)], index=False) -> block
        e.literal(name, value, indexing="none"|"incremental"|"never",
                  name_index=None, huffman=None)
        e.indexed(index), e.size_update(max_size); e.table (newest first), e.size
    d = Decoder(max_size=4096)      d.decode(block) -> [(name, value)]; d.table, d.size
    An HPACK bomb: e.literal("x-big", "A" * 4000, "incremental") + e.indexed(62) * 1000

Connection:
    c = H2Client(host, port, tls=False, server_name=None, alpn=("h2",),
                 check_alpn=True, ssl_context=None, timeout=5.0, preface=True,
                 settings=None, ack_settings=True, ack_ping=True,
                 window_updates=True)
        connects; TLS with the ALPN list if tls (no certificate check,
        H2Error if check_alpn and "h2" was not selected), else prior-knowledge
        h2c.  preface=True sends the client preface and SETTINGS (settings,
        default ENABLE_PUSH=0) and waits for the server's SETTINGS; with False
        the test sends PREFACE itself.  ack_settings, ack_ping: answer the
        server's SETTINGS and PING with an ACK.  window_updates: give back
        each DATA frame's length in WINDOW_UPDATEs on the connection and
        the stream (False lets the server's windows run dry).
    c.alpn, c.server_settings, c.settings_acks, c.goaway, c.closed, c.reset
    c.frames (every frame read), c.errors (what the server did that this
    client could not follow), c.streams {sid: Stream}, c.pushes, c.encoder, c.decoder
    c.send(*byte_strings) -> False if the peer has closed
    c.send_frame(type, flags, sid, payload=b"")
    c.request(method, path, authority, headers=(), body=b"", end_stream=True,
              scheme=None) -> stream id (authority or path None: left out)
    c.send_headers(sid, headers, end_stream=False)   split into CONTINUATIONs as needed
    c.send_data(sid, data, end_stream=False, timeout=None)   waits for window
    c.read_frame(timeout=None) -> Frame; None on timeout; H2Closed at EOF or reset
    c.wait_for(pred, timeout=None, past=False) -> first frame f read with
        pred(f) true (past: frames already read count too); None on timeout
        or close
    c.read_response(sid, timeout=None) -> Stream, read until it ends, is reset,
        the connection closes or timeout (then its state is still "open")
    c.ping(data=b"h2selft!", timeout=None) -> the PING ACK frame or None
    c.read_until_goaway(timeout=None) -> the GOAWAY frame or None (closed without one, or timeout)
    c.closed_within(timeout) -> True if the server closes the connection in time
    c.close()
    Stream: id, status (int), headers, informational (1xx header lists), body,
            trailers, ended, reset (RST_STREAM error code or None),
            state ("complete", "reset", "closed", "open"), header(name)

The automatic frames (ACKs, WINDOW_UPDATEs) go out whenever frames are read,
even while a header block the test sent is still open: a test that leaves one
open and then reads should turn them off, or the server will rightly see a
frame where only CONTINUATION may come.
"""

import socket
import ssl
import struct
import time


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
FRAME_NAMES = ("DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
               "GOAWAY", "WINDOW_UPDATE", "CONTINUATION")
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20

HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)
ENABLE_CONNECT_PROTOCOL = 8

ERROR_NAMES = ("NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
               "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
               "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY",
               "HTTP_1_1_REQUIRED")
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM, INADEQUATE_SECURITY, HTTP_1_1_REQUIRED = range(14)


def code_name(code):
    """An error code's name ("0x..." for one RFC 9113 does not name); None for None."""
    if code is None:
        return None
    return ERROR_NAMES[code] if code < len(ERROR_NAMES) else "0x%x" % code


class HPACKError(Exception):
    pass


class H2Error(Exception):
    pass


class H2Closed(H2Error):
    """The peer closed the connection (reset is True for a TCP reset)."""

    def __init__(self, msg, reset=False):
        super().__init__(msg)
        self.reset = reset


# --------------------------------------------------------------------------
# frames


def frame(ftype, flags, stream_id, payload=b"", length=None, reserved=False):
    n = len(payload) if length is None else length
    if not 0 <= n < 1 << 24:
        raise ValueError("a frame length is 24 bits")
    sid = (stream_id & 0x7FFFFFFF) | (0x80000000 if reserved else 0)
    return struct.pack("!I", n)[1:] + struct.pack("!BBI", ftype & 0xFF, flags & 0xFF, sid) + bytes(payload)


def _padded(body, pad):
    """(payload, flag) for a frame that may carry padding."""
    if pad is None:
        return bytes(body), 0
    return bytes([pad]) + bytes(body) + bytes(pad), PADDED


def _priority_fields(dependency, weight, exclusive):
    return struct.pack("!IB", (dependency & 0x7FFFFFFF) | (0x80000000 if exclusive else 0), (weight - 1) & 0xFF)


def data_frame(sid, data, end_stream=False, pad=None):
    payload, flags = _padded(data, pad)
    return frame(DATA, flags | (END_STREAM if end_stream else 0), sid, payload)


def headers_frame(sid, block, end_stream=False, end_headers=True, pad=None, priority=None):
    flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
    if priority is not None:
        block = _priority_fields(*priority) + bytes(block)
        flags |= PRIORITY_FLAG
    payload, pflag = _padded(block, pad)
    return frame(HEADERS, flags | pflag, sid, payload)


def priority_frame(sid, dependency, weight=16, exclusive=False):
    return frame(PRIORITY, 0, sid, _priority_fields(dependency, weight, exclusive))


def rst_stream_frame(sid, error_code):
    return frame(RST_STREAM, 0, sid, struct.pack("!I", error_code))


def settings_frame(settings=(), ack=False):
    items = settings.items() if isinstance(settings, dict) else settings
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack("!HI", k, v) for k, v in items))


def push_promise_frame(sid, promised_sid, block, end_headers=True, pad=None):
    payload, flags = _padded(struct.pack("!I", promised_sid & 0x7FFFFFFF) + bytes(block), pad)
    return frame(PUSH_PROMISE, flags | (END_HEADERS if end_headers else 0), sid, payload)


def ping_frame(data=bytes(8), ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


def goaway_frame(last_sid, error_code, debug=b""):
    return frame(GOAWAY, 0, 0, struct.pack("!II", last_sid & 0x7FFFFFFF, error_code) + debug)


def window_update_frame(sid, increment):
    # No mask: a test may set the reserved bit or send 0.
    return frame(WINDOW_UPDATE, 0, sid, struct.pack("!I", increment & 0xFFFFFFFF))


def continuation_frame(sid, block, end_headers=True):
    return frame(CONTINUATION, END_HEADERS if end_headers else 0, sid, block)


class Frame:
    """A frame read from the peer, with the fields of its type decoded."""

    def __init__(self, ftype, flags, stream_id, payload, reserved=False):
        self.type, self.flags, self.stream_id, self.payload = ftype, flags, stream_id, payload
        self.reserved = reserved
        self.data = self.block = self.priority = self.settings = self.settings_list = None
        self.error_code = self.last_stream_id = self.debug = self.increment = None
        self.opaque = self.promised_stream_id = self.headers = None
        self.malformed = False
        try:
            self._decode()
        except (IndexError, ValueError, struct.error):
            self.malformed = True

    def _decode(self):
        p, t = self.payload, self.type
        if t in (DATA, HEADERS, PUSH_PROMISE) and self.padded:
            if p[0] >= len(p):
                raise ValueError("padding longer than the payload")
            p = p[1:len(p) - p[0]]
        if t == DATA:
            self.data = p
        elif t == HEADERS:
            if self.flags & PRIORITY_FLAG:
                self.priority = _parse_priority(p[:5])
                p = p[5:]
            self.block = p
        elif t == PRIORITY:
            self.priority = _parse_priority(p)
        elif t == RST_STREAM:
            (self.error_code,) = struct.unpack("!I", p)
        elif t == SETTINGS:
            if len(p) % 6:
                raise ValueError("SETTINGS length not a multiple of 6")
            self.settings_list = [struct.unpack("!HI", p[i:i + 6]) for i in range(0, len(p), 6)]
            self.settings = dict(self.settings_list)
        elif t == PUSH_PROMISE:
            self.promised_stream_id = struct.unpack("!I", p[:4])[0] & 0x7FFFFFFF
            self.block = p[4:]
        elif t == PING:
            if len(p) != 8:
                raise ValueError("PING of %d octets" % len(p))
            self.opaque = p
        elif t == GOAWAY:
            last, self.error_code = struct.unpack("!II", p[:8])
            self.last_stream_id, self.debug = last & 0x7FFFFFFF, p[8:]
        elif t == WINDOW_UPDATE:
            self.increment = struct.unpack("!I", p)[0] & 0x7FFFFFFF
        elif t == CONTINUATION:
            self.block = p

    name = property(lambda self: FRAME_NAMES[self.type] if self.type < 10 else "UNKNOWN_%d" % self.type)
    length = property(lambda self: len(self.payload))
    end_stream = property(lambda self: self.type in (DATA, HEADERS) and bool(self.flags & END_STREAM))
    end_headers = property(lambda self: self.type in (HEADERS, PUSH_PROMISE, CONTINUATION)
                           and bool(self.flags & END_HEADERS))
    ack = property(lambda self: self.type in (SETTINGS, PING) and bool(self.flags & ACK))
    padded = property(lambda self: self.type in (DATA, HEADERS, PUSH_PROMISE) and bool(self.flags & PADDED))

    def __repr__(self):
        extra = ""
        if self.error_code is not None:
            code = self.error_code
            extra = " %s" % code_name(code)
        return "<Frame %s flags=0x%x stream=%d len=%d%s>" % (self.name, self.flags, self.stream_id,
                                                            self.length, extra)


def _parse_priority(p):
    dep, weight = struct.unpack("!IB", p)
    return (dep & 0x7FFFFFFF, weight + 1, bool(dep & 0x80000000))


def parse_frame(buf):
    if len(buf) < 9:
        return None, 0
    n = int.from_bytes(buf[:3], "big")
    if len(buf) < 9 + n:
        return None, 0
    ftype, flags, sid = struct.unpack("!BBI", buf[3:9])
    return Frame(ftype, flags, sid & 0x7FFFFFFF, bytes(buf[9:9 + n]), bool(sid >> 31)), 9 + n


# --------------------------------------------------------------------------
# HPACK: integers and strings (RFC 7541 section 5)


def encode_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value & 127 | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_int(buf, pos, prefix_bits):
    if pos >= len(buf):
        raise HPACKError("integer cut short")
    limit = (1 << prefix_bits) - 1
    value = buf[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        if pos >= len(buf):
            raise HPACKError("integer cut short")
        b = buf[pos]
        pos += 1
        value += (b & 127) << shift
        shift += 7
        if not b & 128:
            return value, pos
        if shift > 28:
            raise HPACKError("integer longer than 32 bits")


# The code lengths of RFC 7541 Appendix B, symbols 0 to 256 (EOS).  The
# codes of Appendix B are the canonical Huffman code for these lengths
# (ordered by length, then symbol), so they are computed rather than typed;
# h2_selftest.py checks samples against the appendix.
_HUFFMAN_LENGTHS = (
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,  # 0-15
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,  # 16-31
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,  # 32-47
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,  # 48-63
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  # 64-79
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,  # 80-95
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,  # 96-111
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,  # 112-127
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,  # 128-143
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,  # 144-159
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,  # 160-175
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,  # 176-191
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,  # 192-207
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,  # 208-223
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,  # 224-239
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,  # 240-255
    30,  # EOS
)


def _canonical_codes(lengths):
    codes = [0] * len(lengths)
    code, prev = -1, min(lengths)
    for sym in sorted(range(len(lengths)), key=lambda s: (lengths[s], s)):
        code = (code + 1) << (lengths[sym] - prev)
        prev = lengths[sym]
        codes[sym] = code
    return tuple(codes)


HUFFMAN_CODES = _canonical_codes(_HUFFMAN_LENGTHS)
_HUFFMAN_DECODE = {(_HUFFMAN_LENGTHS[s], c): s for s, c in enumerate(HUFFMAN_CODES)}


def huffman_encode(data):
    out, acc, bits = bytearray(), 0, 0
    for b in bytes(data):
        acc = (acc << _HUFFMAN_LENGTHS[b]) | HUFFMAN_CODES[b]
        bits += _HUFFMAN_LENGTHS[b]
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
        acc &= (1 << bits) - 1
    if bits:
        # The padding is the most significant bits of EOS: all ones.
        out.append(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xFF)
    return bytes(out)


def huffman_decode(data):
    out, code, n = bytearray(), 0, 0
    for byte in bytes(data):
        for i in range(7, -1, -1):
            code = (code << 1) | ((byte >> i) & 1)
            n += 1
            sym = _HUFFMAN_DECODE.get((n, code))
            if sym is not None:
                if sym == 256:
                    raise HPACKError("EOS inside a Huffman string")
                out.append(sym)
                code = n = 0
    if n > 7 or code != (1 << n) - 1:
        raise HPACKError("Huffman padding longer than 7 bits or not all ones")
    return bytes(out)


def encode_string(s, huffman=False):
    s = _octets(s)
    if huffman:
        s = huffman_encode(s)
    return encode_int(len(s), 7, 0x80 if huffman else 0) + s


def decode_string(buf, pos):
    if pos >= len(buf):
        raise HPACKError("string cut short")
    huffman = buf[pos] & 0x80
    n, pos = decode_int(buf, pos, 7)
    if pos + n > len(buf):
        raise HPACKError("string of %d octets with %d left" % (n, len(buf) - pos))
    s = bytes(buf[pos:pos + n])
    return (huffman_decode(s) if huffman else s), pos + n


def _octets(s):
    return s.encode("latin-1") if isinstance(s, str) else bytes(s)


# --------------------------------------------------------------------------
# HPACK: tables, encoder and decoder (RFC 7541 sections 2 to 6)

STATIC_TABLE = tuple((n, v) for n, _, v in (e.partition("=") for e in (
    ":authority", ":method=GET", ":method=POST", ":path=/", ":path=/index.html", ":scheme=http",
    ":scheme=https", ":status=200", ":status=204", ":status=206", ":status=304", ":status=400",
    ":status=404", ":status=500", "accept-charset", "accept-encoding=gzip, deflate",
    "accept-language", "accept-ranges", "accept", "access-control-allow-origin", "age", "allow",
    "authorization", "cache-control", "content-disposition", "content-encoding",
    "content-language", "content-length", "content-location", "content-range", "content-type",
    "cookie", "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "link", "location",
    "max-forwards", "proxy-authenticate", "proxy-authorization", "range", "referer", "refresh",
    "retry-after", "server", "set-cookie", "strict-transport-security", "transfer-encoding",
    "user-agent", "vary", "via", "www-authenticate")))


class _Table:
    """The dynamic table one side of a connection keeps, newest entry first
    (index 62); an entry's size is its octets plus 32."""

    def __init__(self, max_size):
        self.table, self.size, self.max_size = [], 0, max_size

    def entry(self, index):
        if 1 <= index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        if 0 <= index - 62 < len(self.table):
            return self.table[index - 62]
        raise HPACKError("index %d with %d dynamic entries" % (index, len(self.table)))

    def add(self, name, value):
        # An entry bigger than the table empties it and is not kept (4.4).
        self.table.insert(0, (name, value))
        self.size += len(name) + len(value) + 32
        self._evict()

    def resize(self, max_size):
        self.max_size = max_size
        self._evict()

    def _evict(self):
        while self.size > self.max_size:
            n, v = self.table.pop()
            self.size -= len(n) + len(v) + 32


class Encoder(_Table):
    """Header blocks made of literal fields; the table mirrors what the
    peer's decoder holds after each block this encoder made is decoded."""

    def __init__(self, huffman=False, max_size=4096):
        super().__init__(max_size)
        self.huffman = huffman

    def encode(self, headers, index=False, huffman=None):
        mode = "incremental" if index else "none"
        return b"".join(self.literal(n, v, mode, huffman=huffman) for n, v in headers)

    def indexed(self, index):
        return encode_int(index, 7, 0x80)

    def literal(self, name, value, indexing="none", name_index=None, huffman=None):
        first, prefix = {"incremental": (0x40, 6), "none": (0, 4), "never": (0x10, 4)}[indexing]
        h = self.huffman if huffman is None else huffman
        out = encode_int(name_index or 0, prefix, first)
        if not name_index:
            out += encode_string(name, h)
        out += encode_string(value, h)
        if indexing == "incremental":
            n = self.entry(name_index)[0] if name_index else _octets(name).decode("latin-1")
            self.add(n, _octets(value).decode("latin-1"))
        return out

    def size_update(self, max_size):
        self.resize(max_size)
        return encode_int(max_size, 5, 0x20)


class Decoder(_Table):
    """A full decoder.  limit is the SETTINGS_HEADER_TABLE_SIZE this side
    announced; a size update above it is an error."""

    def __init__(self, max_size=4096):
        super().__init__(max_size)
        self.limit = max_size

    def decode(self, block):
        out, pos = [], 0
        while pos < len(block):
            b = block[pos]
            if b & 0x80:
                index, pos = decode_int(block, pos, 7)
                if index == 0:
                    raise HPACKError("indexed field with index 0")
                out.append(self.entry(index))
            elif b & 0xE0 == 0x20:
                if out:
                    raise HPACKError("table size update after a field (4.2)")
                size, pos = decode_int(block, pos, 5)
                if size > self.limit:
                    raise HPACKError("table size update to %d above %d" % (size, self.limit))
                self.resize(size)
            else:
                index, pos = decode_int(block, pos, 6 if b & 0x40 else 4)
                if index:
                    name = self.entry(index)[0]
                else:
                    raw, pos = decode_string(block, pos)
                    name = raw.decode("latin-1")
                raw, pos = decode_string(block, pos)
                value = raw.decode("latin-1")
                if b & 0x40:
                    self.add(name, value)
                out.append((name, value))
        return out


# --------------------------------------------------------------------------
# client connection


class Stream:
    def __init__(self, sid, send_window):
        self.id = sid
        self.headers = self.trailers = self.reset = None
        self.informational = []
        self.body = b""
        self.ended = False
        self.send_window = send_window
        self.conn_closed = False

    @property
    def status(self):
        v = self.header(":status")
        return int(v) if v is not None and v.isdigit() else None

    @property
    def state(self):
        if self.ended:
            return "complete"
        if self.reset is not None:
            return "reset"
        return "closed" if self.conn_closed else "open"

    def header(self, name):
        for k, v in self.headers or ():
            if k == name.lower():
                return v
        return None

    def __repr__(self):
        return "<Stream %d %s %s %r>" % (self.id, self.state, self.status, self.body[:60])


class H2Client:
    def __init__(self, host, port, tls=False, server_name=None, alpn=("h2",), check_alpn=True,
                 ssl_context=None, timeout=5.0, preface=True, settings=None, ack_settings=True,
                 ack_ping=True, window_updates=True):
        self.timeout, self.tls = timeout, tls
        self.ack_settings, self.ack_ping, self.window_updates = ack_settings, ack_ping, window_updates
        self.buf = bytearray()
        self.closed = self.reset = False
        self.frames, self.errors, self.pushes = [], [], []
        self.streams = {}
        self.goaway = None
        self.settings_acks = 0
        self.server_settings = {HEADER_TABLE_SIZE: 4096, ENABLE_PUSH: 1, INITIAL_WINDOW_SIZE: 65535,
                                MAX_FRAME_SIZE: 16384}
        self.send_window = 65535
        self.next_stream_id = 1
        self.encoder, self.decoder = Encoder(), Decoder()
        self._block = None  # [first frame, fragments] of a header block still open
        self.alpn = None
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            ctx = ssl_context
            if ctx is None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                if alpn:
                    ctx.set_alpn_protocols(list(alpn))
            try:
                sock = ctx.wrap_socket(sock, server_hostname=server_name)
            except BaseException:
                sock.close()
                raise
            self.alpn = sock.selected_alpn_protocol()
        self.sock = sock
        if tls and check_alpn and alpn and "h2" in alpn and self.alpn != "h2":
            self.close()
            raise H2Error("ALPN selected %r, not h2" % self.alpn)
        if preface:
            if settings is None:
                settings = {ENABLE_PUSH: 0}
            self.send(PREFACE + settings_frame(settings))
            items = settings.items() if isinstance(settings, dict) else settings
            for k, v in items:
                if k == HEADER_TABLE_SIZE:
                    self.decoder.limit = v  # Taken as acknowledged at once.
            if self.wait_for(lambda f: f.type == SETTINGS and not f.ack, past=True) is None:
                self.close()
                raise H2Error("no SETTINGS from the server within %gs" % timeout)

    # -- sending

    def send(self, *chunks):
        """Sends the bytes in one write; False if the peer has closed or reset."""
        try:
            self.sock.sendall(b"".join(bytes(c) for c in chunks))
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return False

    def send_frame(self, ftype, flags, sid, payload=b""):
        return self.send(frame(ftype, flags, sid, payload))

    def stream(self, sid):
        if sid not in self.streams:
            self.streams[sid] = Stream(sid, self.server_settings[INITIAL_WINDOW_SIZE])
        return self.streams[sid]

    def request(self, method, path, authority, headers=(), body=b"", end_stream=True, scheme=None):
        sid = self.next_stream_id
        self.next_stream_id += 2
        fields = [(":method", method), (":scheme", scheme or ("https" if self.tls else "http"))]
        if authority is not None:
            fields.append((":authority", authority))
        if path is not None:
            fields.append((":path", path))
        self.stream(sid)
        self.send_headers(sid, fields + list(headers), end_stream=end_stream and not body)
        if body:
            self.send_data(sid, body, end_stream=end_stream)
        return sid

    def send_headers(self, sid, headers, end_stream=False):
        """HEADERS with the block of headers (from self.encoder), followed by
        CONTINUATION frames if it is larger than the server's frame size."""
        block = self.encoder.encode(headers)
        size = self.server_settings[MAX_FRAME_SIZE]
        parts = [block[i:i + size] for i in range(0, len(block), size)] or [b""]
        out = [headers_frame(sid, parts[0], end_stream, len(parts) == 1)]
        out += [continuation_frame(sid, p, i == len(parts) - 2) for i, p in enumerate(parts[1:])]
        return self.send(*out)

    def send_data(self, sid, data, end_stream=False, timeout=None):
        """DATA frames within the flow-control windows and the frame size,
        reading frames while a window is closed; socket.timeout if it stays
        closed, H2Closed if the connection does."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        st, data = self.stream(sid), bytes(data)
        while True:
            n = min(len(data), self.send_window, st.send_window, self.server_settings[MAX_FRAME_SIZE])
            if n > 0 or not data:
                last = end_stream and n == len(data)
                if not self.send(data_frame(sid, data[:n], last)):
                    raise H2Closed("closed while sending DATA")
                self.send_window -= n
                st.send_window -= n
                data = data[n:]
                if not data:
                    return
            elif self.read_frame(deadline - time.monotonic()) is None:
                raise socket.timeout("flow-control window closed for %d octets" % len(data))

    # -- receiving

    def _fill(self, deadline):
        """Reads more into buf; False at EOF or reset, socket.timeout after deadline."""
        if self.closed:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError) as e:
            # An SSLEOFError is a close without close_notify; other TLS
            # errors (an alert) end the connection like a reset.
            self.closed, self.reset = True, not isinstance(e, ssl.SSLEOFError)
            return False
        if not d:
            self.closed = True
            return False
        self.buf += d
        return True

    def read_frame(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            f, n = parse_frame(self.buf)
            if f is not None:
                del self.buf[:n]
                self.frames.append(f)
                self._handle(f)
                return f
            try:
                if not self._fill(deadline):
                    for st in self.streams.values():
                        st.conn_closed = True
                    raise H2Closed("connection %s with %d octets of a frame read"
                                   % ("reset" if self.reset else "closed", len(self.buf)), self.reset)
            except socket.timeout:
                return None

    def _handle(self, f):
        """What the client does on its own when a frame arrives."""
        t = f.type
        if self._block is not None and (t != CONTINUATION or f.stream_id != self._block[0].stream_id):
            self.errors.append("%r inside the header block of stream %d" % (f, self._block[0].stream_id))
            self._block = None
        if f.malformed:
            self.errors.append("malformed %r" % f)
        elif t == SETTINGS and f.ack:
            self.settings_acks += 1
        elif t == SETTINGS:
            if INITIAL_WINDOW_SIZE in f.settings:
                delta = f.settings[INITIAL_WINDOW_SIZE] - self.server_settings[INITIAL_WINDOW_SIZE]
                for st in self.streams.values():
                    st.send_window += delta
            self.server_settings.update(f.settings)
            if self.ack_settings:
                self.send(settings_frame(ack=True))
        elif t == PING and not f.ack and self.ack_ping:
            self.send(ping_frame(f.opaque, ack=True))
        elif t == GOAWAY:
            self.goaway = f
        elif t == WINDOW_UPDATE:
            if f.stream_id == 0:
                self.send_window += f.increment
            else:
                self.stream(f.stream_id).send_window += f.increment
        elif t == RST_STREAM:
            self.stream(f.stream_id).reset = f.error_code
        elif t == DATA:
            st = self.stream(f.stream_id)
            st.body += f.data
            st.ended = st.ended or f.end_stream
            if self.window_updates and f.length:
                ups = [window_update_frame(0, f.length)]
                if not f.end_stream:
                    ups.append(window_update_frame(f.stream_id, f.length))
                self.send(*ups)
        elif t in (HEADERS, PUSH_PROMISE):
            self._block = [f, [f.block]]
        elif t == CONTINUATION and self._block is None:
            self.errors.append("%r outside a header block" % f)
        elif t == CONTINUATION:
            self._block[1].append(f.block)
        if self._block is not None and f.end_headers:
            self._end_block(f)

    def _end_block(self, last):
        first, fragments = self._block
        self._block = None
        try:
            headers = self.decoder.decode(b"".join(fragments))
        except HPACKError as e:
            self.errors.append("HPACK: %s in the block of %r" % (e, first))
            return
        last.headers = headers
        if first.type == PUSH_PROMISE:
            self.pushes.append((first.stream_id, first.promised_stream_id, headers))
            return
        st = self.stream(first.stream_id)
        status = dict(headers).get(":status", "")
        if st.headers is not None:
            st.trailers = headers
        elif status.startswith("1") and len(status) == 3:
            st.informational.append(headers)
        else:
            st.headers = headers
        st.ended = st.ended or first.end_stream

    def wait_for(self, pred, timeout=None, past=False):
        if past:
            for f in self.frames:
                if pred(f):
                    return f
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                f = self.read_frame(max(0.0, deadline - time.monotonic()))
            except H2Closed:
                return None
            if f is None or pred(f):
                return f

    def read_response(self, sid, timeout=None):
        st = self.stream(sid)
        if st.state == "open":
            self.wait_for(lambda f: st.state != "open", timeout)
        return st

    def ping(self, data=b"h2selft!", timeout=None):
        self.send(ping_frame(data))
        return self.wait_for(lambda f: f.type == PING and f.ack and f.opaque == data, timeout)

    def read_until_goaway(self, timeout=None):
        return self.wait_for(lambda f: f.type == GOAWAY, timeout, past=True)

    def closed_within(self, timeout):
        self.wait_for(lambda f: False, timeout)
        return self.closed

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# Everything above without a leading underscore, except the modules imported.
__all__ = [n for n in dir() if not n.startswith("_") and n not in ("socket", "ssl", "struct", "time")]
