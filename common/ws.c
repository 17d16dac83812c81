#include "common/ws.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "common/http_parse.h"

/* ---------------------------------------------------------------- UTF-8 */

int
ws_utf8_feed(struct ws_utf8 *u, const void *data, size_t len)
{
	const uint8_t *p = data, *end = p + len;

	while (p < end) {
		if (u->need == 0) {
			/* ASCII runs, eight bytes at a time: most text is. */
			while (end - p >= 8) {
				uint64_t w;
				memcpy(&w, p, 8);
				if (w & 0x8080808080808080ull)
					break;
				p += 8;
			}
			if (p == end)
				break;
			uint8_t b = *p++;
			if (b < 0x80)
				continue;
			/* Table 3-7 of the Unicode standard: the first byte fixes
			 * the length and the range of the second. */
			u->lo = 0x80;
			u->hi = 0xBF;
			if (b >= 0xC2 && b <= 0xDF) {
				u->need = 1;
			} else if (b >= 0xE0 && b <= 0xEF) {
				u->need = 2;
				if (b == 0xE0)
					u->lo = 0xA0;  /* overlong below U+0800 */
				else if (b == 0xED)
					u->hi = 0x9F;  /* surrogates */
			} else if (b >= 0xF0 && b <= 0xF4) {
				u->need = 3;
				if (b == 0xF0)
					u->lo = 0x90;  /* overlong below U+10000 */
				else if (b == 0xF4)
					u->hi = 0x8F;  /* above U+10FFFF */
			} else {
				return -1;     /* C0, C1, F5-FF, or a stray continuation */
			}
			continue;
		}
		uint8_t b = *p++;
		if (b < u->lo || b > u->hi)
			return -1;
		u->lo = 0x80;
		u->hi = 0xBF;
		u->need--;
	}
	return 0;
}

/* --------------------------------------------------------------- frames */

void
ws_parser_init(struct ws_parser *p, uint64_t max_message, int rsv1_ok)
{
	memset(p, 0, sizeof(*p));
	p->max_message = max_message;
	p->rsv1_ok = rsv1_ok != 0;
	p->validate_text = 1;
}

static int
is_control(unsigned op)
{
	return op >= 0x8;
}

static size_t
fail(struct ws_event *ev, uint16_t code, const char *why, size_t used)
{
	ev->type = WS_EV_ERROR;
	ev->code = code;
	ev->why = why;
	return used;
}

/* The header length once its first two bytes are in. */
static size_t
header_len(const struct ws_parser *p)
{
	unsigned l7 = p->hdr[1] & 0x7F;

	return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((p->hdr[1] & 0x80) ? 4 : 0);
}

/* What the first two bytes tell: 0, or the code to fail with (*why set). */
static uint16_t
check_start(const struct ws_parser *p, const char **why)
{
	unsigned b0 = p->hdr[0], op = b0 & 0x0F, l7 = p->hdr[1] & 0x7F;

	if (b0 & 0x30) {
		*why = "RSV2 or RSV3 set";
		return WS_CLOSE_PROTOCOL;
	}
	if ((b0 & 0x40) && (!p->rsv1_ok || (op != WS_OP_TEXT && op != WS_OP_BINARY))) {
		*why = p->rsv1_ok ? "RSV1 set on a frame that does not start a message" :
		    "RSV1 set without permessage-deflate";
		return WS_CLOSE_PROTOCOL;
	}
	if ((op > WS_OP_BINARY && op < WS_OP_CLOSE) || op > WS_OP_PONG) {
		*why = "reserved opcode";
		return WS_CLOSE_PROTOCOL;
	}
	if (!(p->hdr[1] & 0x80)) {
		*why = "client frame not masked";
		return WS_CLOSE_PROTOCOL;
	}
	if (is_control(op)) {
		if (!(b0 & 0x80)) {
			*why = "fragmented control frame";
			return WS_CLOSE_PROTOCOL;
		}
		if (l7 > WS_CONTROL_MAX) {
			*why = "control frame longer than 125 bytes";
			return WS_CLOSE_PROTOCOL;
		}
	} else if (op == WS_OP_CONT && p->msg_op == 0) {
		*why = "continuation frame outside a message";
		return WS_CLOSE_PROTOCOL;
	} else if (op != WS_OP_CONT && p->msg_op != 0) {
		*why = "new message before the last one ended";
		return WS_CLOSE_PROTOCOL;
	}
	return 0;
}

/* The header is whole: take its length and mask.  0 or a close code. */
static uint16_t
header_done(struct ws_parser *p, const char **why)
{
	unsigned l7 = p->hdr[1] & 0x7F, op = p->hdr[0] & 0x0F;
	uint64_t n = l7;
	size_t at = 2;

	if (l7 == 126) {
		n = (uint64_t)p->hdr[2] << 8 | p->hdr[3];
		at = 4;
	} else if (l7 == 127) {
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | p->hdr[2 + i];
		at = 10;
		if (n >> 63) {
			*why = "64-bit length with its top bit set";
			return WS_CLOSE_PROTOCOL;
		}
	}
	/* Non-minimal length forms are allowed from clients (RFC 6455 5.2 asks
	 * the minimal form of senders, but a receiver need not refuse). */
	memcpy(p->mask, p->hdr + at, 4);
	p->opcode = (uint8_t)op;
	p->fin = (p->hdr[0] & 0x80) != 0;
	p->left = n;
	p->moff = 0;
	if (is_control(op)) {
		p->ctl_len = 0;
		return 0;
	}
	if (op != WS_OP_CONT) {
		p->msg_op = (uint8_t)op;
		p->msg_compressed = (p->hdr[0] & 0x40) != 0;
		p->msg_started = 0;
		p->msg_len = 0;
		ws_utf8_init(&p->utf8);
	}
	/* The whole message is bounded before any of this frame is read.  A
	 * compressed message is bounded here by a little more than the limit
	 * (deflate may grow incompressible data), and inflated by it exactly. */
	uint64_t limit = p->max_message;
	if (p->msg_compressed)
		limit += limit / 256 + 64;
	if (n > limit - p->msg_len) {
		*why = "message larger than max_message";
		return WS_CLOSE_TOO_BIG;
	}
	p->msg_len += n;
	return 0;
}

/* A data frame's payload bytes data..n (unmasked) make an event. */
static size_t
data_event(struct ws_parser *p, const uint8_t *data, size_t n, struct ws_event *ev, size_t used)
{
	int last = p->left == 0 && p->fin;
	int text = p->msg_op == WS_OP_TEXT && !p->msg_compressed && p->validate_text;

	if (text && (ws_utf8_feed(&p->utf8, data, n) < 0 || (last && ws_utf8_done(&p->utf8) < 0)))
		return fail(ev, WS_CLOSE_BAD_DATA, "text message not UTF-8", used);
	ev->type = WS_EV_DATA;
	ev->opcode = p->msg_op;
	ev->compressed = p->msg_compressed;
	ev->first = !p->msg_started;
	ev->last = last;
	ev->data = data;
	ev->len = n;
	p->msg_started = 1;
	if (last)
		p->msg_op = 0;
	return used;
}

/* A control frame is whole. */
static size_t
control_event(struct ws_parser *p, struct ws_event *ev, size_t used)
{
	uint16_t code;

	if (p->opcode == WS_OP_CLOSE) {
		int rc = ws_close_check(p->ctl, p->ctl_len, &code);
		if (rc != 0)
			return fail(ev, (uint16_t)rc, rc == WS_CLOSE_BAD_DATA ?
			    "close reason not UTF-8" : "bad close code", used);
		ev->code = code;
	}
	ev->type = WS_EV_CONTROL;
	ev->opcode = p->opcode;
	ev->data = p->ctl;
	ev->len = p->ctl_len;
	return used;
}

size_t
ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev)
{
	size_t i = 0;
	const char *why = NULL;
	uint16_t code;

	ev->type = WS_EV_MORE;
	while (i < len || (p->in_payload && p->left == 0)) {
		if (!p->in_payload) {
			size_t want = p->hlen < 2 ? 2 : header_len(p);
			size_t take = want - p->hlen < len - i ? want - p->hlen : len - i;
			memcpy(p->hdr + p->hlen, buf + i, take);
			p->hlen += (uint8_t)take;
			i += take;
			if (p->hlen == 2 && (code = check_start(p, &why)) != 0)
				return fail(ev, code, why, i);
			if (p->hlen < 2 || p->hlen < header_len(p))
				continue;
			if ((code = header_done(p, &why)) != 0)
				return fail(ev, code, why, i);
			p->hlen = 0;
			p->in_payload = 1;
			/* An empty frame ends at once (the loop condition). */
			continue;
		}
		size_t n = p->left < len - i ? (size_t)p->left : len - i;
		uint8_t *d = buf + i;
		for (size_t k = 0; k < n; k++)
			d[k] ^= p->mask[(p->moff + k) & 3];
		p->moff += n;
		p->left -= n;
		i += n;
		if (p->left == 0)
			p->in_payload = 0;
		if (is_control(p->opcode)) {
			memcpy(p->ctl + p->ctl_len, d, n);
			p->ctl_len += (uint8_t)n;
			if (p->left == 0)
				return control_event(p, ev, i);
			continue;
		}
		/* An empty frame that does not end its message tells nothing. */
		if (n > 0 || p->fin)
			return data_event(p, d, n, ev, i);
	}
	return i;
}

int
ws_close_code_ok(unsigned code)
{
	if (code < 1000 || code >= 5000)
		return 0;
	if (code >= 3000)
		return 1;           /* libraries, frameworks, applications */
	/* 1004 reserved, 1005 and 1006 never on the wire, 1015 TLS failure;
	 * 1016-2999 not assigned (1012-1014 are, by IANA). */
	return code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

int
ws_close_check(const uint8_t *payload, size_t len, uint16_t *code)
{
	struct ws_utf8 u;

	if (len == 0) {
		*code = 1005;
		return 0;
	}
	if (len == 1)
		return WS_CLOSE_PROTOCOL;
	*code = (uint16_t)(payload[0] << 8 | payload[1]);
	if (!ws_close_code_ok(*code))
		return WS_CLOSE_PROTOCOL;
	ws_utf8_init(&u);
	if (ws_utf8_feed(&u, payload + 2, len - 2) < 0 || ws_utf8_done(&u) < 0)
		return WS_CLOSE_BAD_DATA;
	return 0;
}

size_t
ws_frame_header(uint8_t *out, int fin, int rsv1, unsigned opcode, uint64_t len)
{
	out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
	if (len < 126) {
		out[1] = (uint8_t)len;
		return 2;
	}
	if (len <= 0xFFFF) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	return 10;
}

/* ------------------------------------------------------------ handshake */

static int
b64_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '+' || c == '/';
}

int
ws_accept_key(const char *key, size_t klen, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	unsigned char in[24 + sizeof(guid) - 1], md[EVP_MAX_MD_SIZE];
	unsigned mdlen;

	/* 16 bytes are 22 characters of 6 bits and "==" (RFC 6455 4.1). */
	if (klen != 24 || key[22] != '=' || key[23] != '=')
		return -1;
	for (size_t i = 0; i < 22; i++)
		if (!b64_char((unsigned char)key[i]))
			return -1;
	memcpy(in, key, 24);
	memcpy(in + 24, guid, sizeof(guid) - 1);
	if (EVP_Digest(in, sizeof(in), md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, md, 20);
	return 0;
}

/* ----------------------------------------------------------- extensions */

struct lex {
	const char *p, *end;
};

static void
skip_ows(struct lex *l)
{
	while (l->p < l->end && (*l->p == ' ' || *l->p == '\t'))
		l->p++;
}

/* A token: its length (0: none there). */
static size_t
lex_token(struct lex *l, const char **tok)
{
	*tok = l->p;
	while (l->p < l->end && http_tchar[(unsigned char)*l->p])
		l->p++;
	return (size_t)(l->p - *tok);
}

/* A parameter value, token or quoted string, unquoted into val.  Its length,
 * or -1 when malformed (or over cap). */
static long
lex_value(struct lex *l, char *val, size_t cap)
{
	size_t n = 0;

	if (l->p < l->end && *l->p == '"') {
		l->p++;
		while (l->p < l->end && *l->p != '"') {
			if (*l->p == '\\' && ++l->p == l->end)
				return -1;
			if (n + 1 >= cap || (unsigned char)*l->p < 0x20)
				return -1;
			val[n++] = *l->p++;
		}
		if (l->p == l->end)
			return -1;
		l->p++;
	} else {
		const char *t;
		size_t tl = lex_token(l, &t);
		if (tl == 0 || tl >= cap)
			return -1;
		memcpy(val, t, tl);
		n = tl;
	}
	val[n] = '\0';
	return (long)n;
}

/* "8" to "15", no leading zero: the bits, or -1. */
static int
wbits_value(const char *v, long n)
{
	if (n == 1 && v[0] == '8')
		return 8;
	if (n == 1 && v[0] == '9')
		return 9;
	if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
		return 10 + (v[1] - '0');
	return -1;
}

enum { P_SNC = 1, P_CNC = 2, P_SMW = 4, P_CMW = 8 };

/* One permessage-deflate parameter into *o.  0, or -1: the offer is not acceptable. */
static int
pmd_param(const char *name, size_t nlen, const char *val, long vlen, unsigned *seen,
    struct ws_pmd *o, int *cmw)
{
	static const char *const names[] = { "server_no_context_takeover",
		"client_no_context_takeover", "server_max_window_bits", "client_max_window_bits" };
	unsigned i;

	for (i = 0; i < 4; i++)
		if (strlen(names[i]) == nlen && strncasecmp(names[i], name, nlen) == 0)
			break;
	if (i == 4 || (*seen & (1u << i)))
		return -1;        /* unknown or repeated */
	*seen |= 1u << i;
	if (i < 2) {
		if (vlen >= 0)
			return -1;
		if (i == 0)
			o->server_no_ctx = 1;
		else
			o->client_no_ctx = 1;
		return 0;
	}
	int bits = vlen >= 0 ? wbits_value(val, vlen) : -1;
	if (i == 2) {
		/* zlib turns a raw deflate window of 8 bits into 9: we could
		 * not keep within 256 bytes, so such an offer is declined. */
		if (bits < 9)
			return -1;
		o->server_wbits = (uint8_t)bits;
		o->server_wbits_sent = 1;
		return 0;
	}
	if (vlen >= 0 && bits < 0)
		return -1;
	*cmw = vlen >= 0 ? bits : 15;
	return 0;
}

int
ws_ext_negotiate(const char *hdr, size_t len, const struct ws_pmd_policy *pol,
    struct ws_pmd *out)
{
	struct lex l = { hdr, hdr + len };

	for (;;) {
		const char *name;
		size_t nlen;
		struct ws_pmd o = { 0 };
		unsigned seen = 0;
		int bad = 0, cmw = -1;

		skip_ows(&l);
		if (l.p < l.end && *l.p == ',') { /* empty list elements are allowed */
			l.p++;
			continue;
		}
		if (l.p == l.end)
			return 0;
		if ((nlen = lex_token(&l, &name)) == 0)
			return -1;
		skip_ows(&l);
		while (l.p < l.end && *l.p == ';') {
			const char *pn;
			size_t pnl;
			char val[32];
			long vlen = -1;
			l.p++;
			skip_ows(&l);
			if ((pnl = lex_token(&l, &pn)) == 0)
				return -1;
			skip_ows(&l);
			if (l.p < l.end && *l.p == '=') {
				l.p++;
				skip_ows(&l);
				if ((vlen = lex_value(&l, val, sizeof(val))) < 0)
					return -1;
				skip_ows(&l);
			}
			if (!bad && pmd_param(pn, pnl, val, vlen, &seen, &o, &cmw) < 0)
				bad = 1;
		}
		if (l.p < l.end && *l.p != ',')
			return -1;
		if (out->on || bad || nlen != 18 || strncasecmp(name, "permessage-deflate", 18) != 0)
			continue;
		/* Accepted: our side of it, then what we ask of the client. */
		if (!o.server_wbits_sent)
			o.server_wbits = 15;
		o.server_no_ctx |= pol->server_no_ctx;
		o.client_no_ctx |= pol->client_no_ctx;
		o.client_wbits = 15;
		if (cmw > 0) {
			/* Never more than offered (RFC 7692 7.1.2.2): 8 is answered
			 * 8, though our inflater will use 9 (zlib's raw inflate has
			 * no 8; a larger window reads a smaller one's data). */
			o.client_wbits = (uint8_t)(cmw < pol->client_wbits ? cmw : pol->client_wbits);
			o.client_wbits_sent = o.client_wbits < 15;
		}
		o.on = 1;
		*out = o;
	}
}

size_t
ws_pmd_response(const struct ws_pmd *pmd, char *out, size_t cap)
{
	char buf[160];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "permessage-deflate%s%s",
	    pmd->server_no_ctx ? "; server_no_context_takeover" : "",
	    pmd->client_no_ctx ? "; client_no_context_takeover" : "");

	if (pmd->server_wbits_sent)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "; server_max_window_bits=%u",
		    pmd->server_wbits);
	if (pmd->client_wbits_sent)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "; client_max_window_bits=%u",
		    pmd->client_wbits);
	if (n + 1 > cap)
		return 0;
	memcpy(out, buf, n + 1);
	return n;
}

/* ---------------------------------------------------------- compression */

int
ws_buf_reserve(struct ws_buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return 0;
	size_t cap = b->cap < 256 ? 256 : b->cap;
	while (cap - b->len < n)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (p == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

void
ws_buf_free(struct ws_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

void
ws_zs_init(struct ws_zs *zs, int deflating, int wbits, int memlevel, int takeover)
{
	zs->z = NULL;
	zs->deflating = deflating != 0;
	zs->wbits = (uint8_t)wbits;
	zs->memlevel = (uint8_t)memlevel;
	zs->takeover = takeover != 0;
}

void
ws_zs_free(struct ws_zs *zs)
{
	z_stream *z = zs->z;

	if (z == NULL)
		return;
	if (zs->deflating)
		deflateEnd(z);
	else
		inflateEnd(z);
	free(z);
	zs->z = NULL;
}

void
ws_zs_idle(struct ws_zs *zs)
{
	if (!zs->takeover)
		ws_zs_free(zs);
}

static z_stream *
zs_get(struct ws_zs *zs)
{
	z_stream *z;
	int rc;

	if (zs->z != NULL)
		return zs->z;
	if ((z = calloc(1, sizeof(*z))) == NULL)
		return NULL;
	rc = zs->deflating ? deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -(int)zs->wbits,
	    zs->memlevel, Z_DEFAULT_STRATEGY) : inflateInit2(z, -(int)zs->wbits);
	if (rc != Z_OK) {
		free(z);
		return NULL;
	}
	zs->z = z;
	return z;
}

int
ws_inflate(struct ws_zs *zs, const uint8_t *in, size_t len, int last, struct ws_buf *out,
    size_t max)
{
	static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };
	z_stream *z = zs_get(zs);

	if (z == NULL)
		return WS_CLOSE_INTERNAL;
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1 && !last)
			break;
		z->next_in = (Bytef *)(pass == 0 ? in : tail);
		z->avail_in = (uInt)(pass == 0 ? len : sizeof(tail));
		while (z->avail_in > 0) {
			/* Room for at most one byte past max: enough to see it passed. */
			size_t room = max + 1 - out->len;
			if (room > 16384)
				room = 16384;
			if (ws_buf_reserve(out, room) < 0)
				return WS_CLOSE_INTERNAL;
			z->next_out = out->p + out->len;
			z->avail_out = (uInt)room;
			int rc = inflate(z, Z_SYNC_FLUSH);
			out->len += room - z->avail_out;
			if (out->len > max)
				return WS_CLOSE_TOO_BIG;
			if (rc == Z_STREAM_END) {
				/* A final block (BFINAL): the stream starts over, and
				 * what follows in this message is inflated as a new one
				 * (garbage fails it), however the bytes arrived. */
				inflateReset(z);
				continue;
			}
			if (rc == Z_BUF_ERROR && z->avail_out > 0)
				break;  /* no progress possible: all input taken */
			if (rc != Z_OK && rc != Z_BUF_ERROR)
				return WS_CLOSE_BAD_DATA;
		}
	}
	if (last && !zs->takeover)
		inflateReset(z);
	return 0;
}

int
ws_deflate(struct ws_zs *zs, const uint8_t *in, size_t len, struct ws_buf *out)
{
	z_stream *z = zs_get(zs);

	if (z == NULL)
		return -1;
	if (!zs->takeover)
		deflateReset(z);
	z->next_in = (Bytef *)in;
	z->avail_in = (uInt)len;
	for (;;) {
		size_t room = deflateBound(z, z->avail_in) + 16;
		if (ws_buf_reserve(out, room) < 0)
			return -1;
		z->next_out = out->p + out->len;
		z->avail_out = (uInt)room;
		int rc = deflate(z, Z_SYNC_FLUSH);
		out->len += room - z->avail_out;
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return -1;
		if (z->avail_in == 0 && z->avail_out > 0)
			break;
	}
	/* A sync flush ends on an empty stored block, 00 00 ff ff: the
	 * receiver adds it back (RFC 7692 7.2.1). */
	if (out->len >= 4 && memcmp(out->p + out->len - 4, "\x00\x00\xff\xff", 4) == 0)
		out->len -= 4;
	return 0;
}
