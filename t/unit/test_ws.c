/*
 * Unit tests for common/ws.c: UTF-8 (across chunk boundaries), the frame
 * parser and encoder, close codes, the accept key, extension offers and
 * permessage-deflate (a round trip, RFC 7692's example, a bomb).
 */
#include "common/ws.h"
#include "t/unit/tap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---------------------------------------------------------------- UTF-8 */

/* 0 if s is valid fed whole and fed in every two-piece split. */
static int
utf8_all_splits(const char *s, size_t n)
{
	struct ws_utf8 u;
	int whole;

	ws_utf8_init(&u);
	whole = ws_utf8_feed(&u, s, n) == 0 && ws_utf8_done(&u) == 0 ? 0 : -1;
	for (size_t k = 0; k <= n; k++) {
		ws_utf8_init(&u);
		int r = ws_utf8_feed(&u, s, k) == 0 && ws_utf8_feed(&u, s + k, n - k) == 0 &&
		    ws_utf8_done(&u) == 0 ? 0 : -1;
		if (r != whole)
			return -2; /* a split changed the verdict */
	}
	return whole;
}

static void
test_utf8(void)
{
	static const struct { const char *s; int good; const char *name; } cases[] = {
		{ "", 1, "empty" },
		{ "plain ascii, longer than eight bytes", 1, "ascii" },
		{ "h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80", 1, "2, 3 and 4-byte characters" },
		{ "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1, "kosme (RFC 6455 tests)" },
		{ "\xf4\x8f\xbf\xbf", 1, "U+10FFFF" },
		{ "\xed\x9f\xbf", 1, "U+D7FF" },
		{ "\xee\x80\x80", 1, "U+E000" },
		{ "\xef\xbb\xbf", 1, "BOM" },
		{ "\xc0\xaf", 0, "overlong 2-byte" },
		{ "\xc1\xbf", 0, "overlong C1" },
		{ "\xe0\x80\xaf", 0, "overlong 3-byte" },
		{ "\xe0\x9f\xbf", 0, "overlong 3-byte, top" },
		{ "\xf0\x80\x80\xaf", 0, "overlong 4-byte" },
		{ "\xf0\x8f\xbf\xbf", 0, "overlong 4-byte, top" },
		{ "\xed\xa0\x80", 0, "surrogate U+D800" },
		{ "\xed\xbf\xbf", 0, "surrogate U+DFFF" },
		{ "\xf4\x90\x80\x80", 0, "U+110000" },
		{ "\xf5\x80\x80\x80", 0, "F5" },
		{ "\xff", 0, "FF" },
		{ "\x80", 0, "stray continuation" },
		{ "a\xe2\x82", 0, "truncated at the end" },
		{ "\xe2\x82(", 0, "truncated by ASCII" },
		{ "\xc3\xa9\xc3", 0, "a lead byte last" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is(utf8_all_splits(cases[i].s, strlen(cases[i].s)), cases[i].good ? 0 : -1,
		    "utf8: %s %s, whole and split anywhere", cases[i].name,
		    cases[i].good ? "valid" : "refused");
	/* A byte at a time through a long mixed string. */
	const char *mix = "abc\xc3\xa9\xe2\x82\xac\xf0\x90\x8d\x88xyz";
	struct ws_utf8 u;
	int bad = 0;
	ws_utf8_init(&u);
	for (size_t i = 0; mix[i] != '\0'; i++)
		bad |= ws_utf8_feed(&u, mix + i, 1);
	ok(bad == 0 && ws_utf8_done(&u) == 0, "utf8: one byte at a time");
	/* Refused as early as possible: E0 then 80 is wrong at the 80. */
	ws_utf8_init(&u);
	is(ws_utf8_feed(&u, "\xe0", 1), 0, "utf8: E0 alone may go on");
	is(ws_utf8_feed(&u, "\x80", 1), -1, "utf8: E0 80 refused at the second byte");
}

/* --------------------------------------------------------------- frames */

/* A masked client frame into out; returns its length. */
static size_t
client_frame(uint8_t *out, int fin, int rsv, unsigned op, const void *payload, size_t len,
    int lenform)
{
	static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };
	size_t at = 0;

	out[at++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | op);
	if (len < 126 && lenform == 7) {
		out[at++] = (uint8_t)(0x80 | len);
	} else if (len < 65536 && lenform != 64) {
		out[at++] = 0x80 | 126;
		out[at++] = (uint8_t)(len >> 8);
		out[at++] = (uint8_t)len;
	} else {
		out[at++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			out[at++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	memcpy(out + at, key, 4);
	at += 4;
	for (size_t i = 0; i < len; i++)
		out[at + i] = ((const uint8_t *)payload)[i] ^ key[i & 3];
	return at + len;
}

/* Parses buf fed step bytes at a time; collects data into msg and
 * returns the last event type other than MORE (its code in *code). */
struct result {
	enum ws_ev last;
	uint16_t code;
	char msg[4096];
	size_t mlen;
	unsigned messages, controls, firsts;
	uint8_t ctl_op;
	char ctl[126];
	size_t clen;
};

static void
feed(struct ws_parser *p, uint8_t *buf, size_t len, size_t step, struct result *r)
{
	memset(r, 0, sizeof(*r));
	r->last = WS_EV_MORE;
	for (size_t off = 0; off < len;) {
		size_t n = len - off < step ? len - off : step;
		size_t used = 0;
		while (used < n) {
			struct ws_event ev;
			used += ws_parse(p, buf + off + used, n - used, &ev);
			if (ev.type == WS_EV_MORE)
				break;
			r->last = ev.type;
			if (ev.type == WS_EV_ERROR) {
				r->code = ev.code;
				return;
			}
			if (ev.type == WS_EV_DATA) {
				r->firsts += ev.first;
				if (r->mlen + ev.len <= sizeof(r->msg))
					memcpy(r->msg + r->mlen, ev.data, ev.len);
				r->mlen += ev.len;
				r->messages += ev.last;
			} else {
				r->controls++;
				r->ctl_op = ev.opcode;
				memcpy(r->ctl, ev.data, ev.len);
				r->clen = ev.len;
				r->code = ev.code;
			}
		}
		off += n;
	}
}

static void
test_parser(void)
{
	struct ws_parser p;
	struct result r;
	uint8_t buf[70000 + 64];
	size_t n;

	/* RFC 6455 5.7: a masked "Hello". */
	uint8_t hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	for (size_t step = 1; step <= sizeof(hello); step++) {
		uint8_t b[sizeof(hello)];
		memcpy(b, hello, sizeof(b));
		ws_parser_init(&p, 1 << 20, 0);
		feed(&p, b, sizeof(b), step, &r);
		if (step == 1 || step == sizeof(hello))
			ok(r.messages == 1 && r.firsts == 1 && r.mlen == 5 && memcmp(r.msg, "Hello", 5) == 0,
			    "parser: RFC 5.7 masked Hello, fed %zu byte(s) at a time", step);
	}
	/* Fragments with a ping between, byte by byte. */
	n = client_frame(buf, 0, 0, WS_OP_TEXT, "Hel", 3, 7);
	n += client_frame(buf + n, 1, 0, WS_OP_PING, "p!", 2, 7);
	n += client_frame(buf + n, 0, 0, WS_OP_CONT, "", 0, 7);
	n += client_frame(buf + n, 1, 0, WS_OP_CONT, "lo", 2, 7);
	ws_parser_init(&p, 1 << 20, 0);
	feed(&p, buf, n, 1, &r);
	ok(r.messages == 1 && r.firsts == 1 && r.mlen == 5 && memcmp(r.msg, "Hello", 5) == 0 &&
	    r.controls == 1 && r.ctl_op == WS_OP_PING && r.clen == 2, "parser: fragments and a ping between");
	/* Length forms: 125, 126, 65535, 65536; non-minimal from a client. */
	size_t lens[] = { 0, 125, 126, 65535, 65536 };
	for (size_t i = 0; i < 5; i++) {
		static uint8_t pl[65536];
		memset(pl, 'a', sizeof(pl));
		n = client_frame(buf, 1, 0, WS_OP_BINARY, pl, lens[i], 7);
		ws_parser_init(&p, 1 << 20, 0);
		feed(&p, buf, n, 4096, &r);
		ok(r.messages == 1 && r.mlen == lens[i], "parser: %zu-byte frame", lens[i]);
	}
	n = client_frame(buf, 1, 0, WS_OP_TEXT, "abc", 3, 64);
	ws_parser_init(&p, 1 << 20, 0);
	feed(&p, buf, n, 100, &r);
	ok(r.messages == 1 && r.mlen == 3, "parser: a 3-byte payload in the 64-bit form is taken");
	n = client_frame(buf, 1, 0, WS_OP_TEXT, "", 0, 7);
	ws_parser_init(&p, 1 << 20, 0);
	feed(&p, buf, n, 100, &r);
	ok(r.messages == 1 && r.mlen == 0 && r.last == WS_EV_DATA, "parser: an empty message is one event");

	/* Errors. */
	struct { uint8_t b[16]; size_t n; int rsv1; uint16_t code; const char *name; } bad[] = {
		{ { 0x81, 0x01, 'x' }, 3, 0, 1002, "unmasked" },
		{ { 0xc1, 0x81, 0, 0, 0, 0, 'x' }, 7, 0, 1002, "RSV1 without the extension" },
		{ { 0xa1, 0x81, 0, 0, 0, 0, 'x' }, 7, 1, 1002, "RSV2" },
		{ { 0x91, 0x81, 0, 0, 0, 0, 'x' }, 7, 1, 1002, "RSV3" },
		{ { 0xc9, 0x80, 0, 0, 0, 0 }, 6, 1, 1002, "RSV1 on a ping" },
		{ { 0x83, 0x80, 0, 0, 0, 0 }, 6, 0, 1002, "opcode 3" },
		{ { 0x8f, 0x80, 0, 0, 0, 0 }, 6, 0, 1002, "opcode 0xF" },
		{ { 0x09, 0x80, 0, 0, 0, 0 }, 6, 0, 1002, "fragmented ping" },
		{ { 0x89, 0xfe, 0, 126 }, 4, 0, 1002, "ping of 126 bytes" },
		{ { 0x80, 0x80, 0, 0, 0, 0 }, 6, 0, 1002, "continuation alone" },
		{ { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 }, 14, 0, 1002, "64-bit length, top bit" },
		{ { 0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 1, 1, 2, 3, 4 }, 14, 0, 1009, "over max_message, header only" },
		{ { 0x81, 0x81, 0, 0, 0, 0, 0xff }, 7, 0, 1007, "text 0xFF" },
		{ { 0x88, 0x81, 0, 0, 0, 0, 3 }, 7, 0, 1002, "one-byte close" },
		{ { 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xed }, 8, 0, 1002, "close 1005" },
		{ { 0x88, 0x83, 0, 0, 0, 0, 0x03, 0xe8, 0xff }, 9, 0, 1007, "close reason 0xFF" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ws_parser_init(&p, 1 << 20, bad[i].rsv1);
		feed(&p, bad[i].b, bad[i].n, 1, &r);
		ok(r.last == WS_EV_ERROR && r.code == bad[i].code, "parser: %s: %u", bad[i].name,
		    bad[i].code);
	}
	/* A message over the limit across frames: refused at the second header. */
	n = client_frame(buf, 0, 0, WS_OP_BINARY, "0123456789", 10, 7);
	n += client_frame(buf + n, 1, 0, WS_OP_CONT, "0123456789", 10, 7);
	ws_parser_init(&p, 15, 0);
	feed(&p, buf, n - 10, 1, &r);
	ok(r.last == WS_EV_ERROR && r.code == 1009 && r.mlen == 10, "parser: fragments past max_message: 1009");
	/* A new message inside a fragmented one. */
	n = client_frame(buf, 0, 0, WS_OP_TEXT, "a", 1, 7);
	n += client_frame(buf + n, 1, 0, WS_OP_TEXT, "b", 1, 7);
	ws_parser_init(&p, 100, 0);
	feed(&p, buf, n, 100, &r);
	ok(r.last == WS_EV_ERROR && r.code == 1002, "parser: text inside a fragmented message: 1002");
	/* UTF-8 across fragments. */
	n = client_frame(buf, 0, 0, WS_OP_TEXT, "\xe2\x82", 2, 7);
	n += client_frame(buf + n, 1, 0, WS_OP_CONT, "\xac", 1, 7);
	ws_parser_init(&p, 100, 0);
	feed(&p, buf, n, 100, &r);
	ok(r.messages == 1 && r.mlen == 3, "parser: a euro sign split across fragments");
	n = client_frame(buf, 0, 0, WS_OP_TEXT, "\xe2\x82", 2, 7);
	n += client_frame(buf + n, 1, 0, WS_OP_CONT, "", 0, 7);
	ws_parser_init(&p, 100, 0);
	feed(&p, buf, n, 100, &r);
	ok(r.last == WS_EV_ERROR && r.code == 1007, "parser: text ending inside a character: 1007");
	/* Compressed messages: RSV1 on the first frame only, text not checked here. */
	n = client_frame(buf, 0, 4, WS_OP_TEXT, "\xff", 1, 7);
	n += client_frame(buf + n, 1, 0, WS_OP_CONT, "\xfe", 1, 7);
	ws_parser_init(&p, 100, 1);
	feed(&p, buf, n, 100, &r);
	ok(r.messages == 1 && r.mlen == 2, "parser: compressed text is left to the inflater");
	n = client_frame(buf, 0, 4, WS_OP_TEXT, "a", 1, 7);
	n += client_frame(buf + n, 1, 4, WS_OP_CONT, "b", 1, 7);
	ws_parser_init(&p, 100, 1);
	feed(&p, buf, n, 100, &r);
	ok(r.last == WS_EV_ERROR && r.code == 1002, "parser: RSV1 on a continuation: 1002");
	/* Close frames. */
	n = client_frame(buf, 1, 0, WS_OP_CLOSE, "\x0b\xb8ok", 4, 7);
	ws_parser_init(&p, 100, 0);
	feed(&p, buf, n, 3, &r);
	ok(r.last == WS_EV_CONTROL && r.ctl_op == WS_OP_CLOSE && r.code == 3000, "parser: close 3000");
	n = client_frame(buf, 1, 0, WS_OP_CLOSE, "", 0, 7);
	ws_parser_init(&p, 100, 0);
	feed(&p, buf, n, 3, &r);
	ok(r.last == WS_EV_CONTROL && r.code == 1005, "parser: empty close reads as 1005");
}

static void
test_encoder(void)
{
	uint8_t h[WS_HEADER_MAX];

	is(ws_frame_header(h, 1, 0, WS_OP_TEXT, 5), 2, "encoder: 5 bytes, 2-byte header");
	ok(h[0] == 0x81 && h[1] == 0x05, "encoder: RFC 5.7 unmasked Hello header 81 05");
	is(ws_frame_header(h, 1, 0, WS_OP_BINARY, 125), 2, "encoder: 125 in 7 bits");
	is(ws_frame_header(h, 1, 0, WS_OP_BINARY, 126), 4, "encoder: 126 in 16 bits");
	ok(h[1] == 126 && h[2] == 0 && h[3] == 126, "encoder: 126 encoded");
	is(ws_frame_header(h, 1, 0, WS_OP_BINARY, 65535), 4, "encoder: 65535 in 16 bits");
	is(ws_frame_header(h, 1, 0, WS_OP_BINARY, 65536), 10, "encoder: 65536 in 64 bits");
	ok(h[1] == 127 && h[7] == 1 && h[8] == 0 && h[9] == 0, "encoder: 65536 encoded");
	ws_frame_header(h, 0, 1, WS_OP_TEXT, 1);
	is(h[0], 0x41, "encoder: RSV1, no FIN");
}

static void
test_close_codes(void)
{
	static const unsigned good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
		1013, 1014, 3000, 3999, 4000, 4999 };
	static const unsigned badc[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
		5000, 65535 };
	int all = 1;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		all &= ws_close_code_ok(good[i]);
	ok(all, "close codes that may be sent");
	all = 1;
	for (size_t i = 0; i < sizeof(badc) / sizeof(badc[0]); i++)
		all &= !ws_close_code_ok(badc[i]);
	ok(all, "close codes that may not (reserved, unassigned, out of range)");
	uint16_t code;
	is(ws_close_check((const uint8_t *)"\x03\xe8" "bye", 5, &code), 0, "close 1000 bye: fine");
	is(code, 1000, "close: its code");
	is(ws_close_check((const uint8_t *)"\x03\xe8\xc3\x28", 4, &code), 1007, "close reason not UTF-8: 1007");
	is(ws_close_check((const uint8_t *)"\x03", 1, &code), 1002, "close of one byte: 1002");
	is(ws_close_check((const uint8_t *)"\x03\xf7", 2, &code), 1002, "close 1015: 1002");
}

static void
test_accept(void)
{
	char out[29];

	is(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0, "accept: RFC 6455 example key");
	is_str(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	is(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", 23, out), -1, "accept: 23 characters refused");
	is(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==x", 25, out), -1, "accept: 25 characters refused");
	is(ws_accept_key("dGhlIHNhbXBsZSBub25jZQQ=", 24, out), -1, "accept: 17 bytes refused");
	is(ws_accept_key("dGhlIHNhbXBsZSBub25j!Q==", 24, out), -1, "accept: not base64 refused");
}

/* The negotiation of one header value: the response, "" for none, "ERR". */
static const char *
neg(const char *hdr, int client_wbits)
{
	static char out[200];
	struct ws_pmd_policy pol = { .server_no_ctx = 0, .client_no_ctx = 0,
		.client_wbits = (uint8_t)client_wbits };
	struct ws_pmd pmd = { 0 };

	if (ws_ext_negotiate(hdr, strlen(hdr), &pol, &pmd) < 0)
		return "ERR";
	if (!pmd.on)
		return "";
	ws_pmd_response(&pmd, out, sizeof(out));
	return out;
}

static void
test_extensions(void)
{
	is_str(neg("permessage-deflate", 15), "permessage-deflate", "ext: bare offer");
	is_str(neg("permessage-deflate; client_max_window_bits", 15), "permessage-deflate",
	    "ext: client_max_window_bits without value, nothing asked");
	is_str(neg("permessage-deflate; client_max_window_bits", 10),
	    "permessage-deflate; client_max_window_bits=10", "ext: policy asks for 10 bits");
	is_str(neg("permessage-deflate; client_max_window_bits=12", 15),
	    "permessage-deflate; client_max_window_bits=12", "ext: client_max_window_bits=12 kept");
	is_str(neg("permessage-deflate", 10), "permessage-deflate",
	    "ext: client_max_window_bits not offered: never asked");
	is_str(neg("permessage-deflate; server_max_window_bits=10", 15),
	    "permessage-deflate; server_max_window_bits=10", "ext: server_max_window_bits=10");
	is_str(neg("permessage-deflate; server_max_window_bits=8", 15), "",
	    "ext: server_max_window_bits=8 declined");
	is_str(neg("permessage-deflate; server_max_window_bits", 15), "",
	    "ext: server_max_window_bits without value declined");
	is_str(neg("permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15),
	    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
	    "ext: both no_context_takeover");
	is_str(neg("permessage-deflate; server_max_window_bits=16, permessage-deflate;"
	    "client_no_context_takeover", 15), "permessage-deflate; client_no_context_takeover",
	    "ext: first acceptable offer");
	is_str(neg("permessage-deflate; bogus, x-other", 15), "", "ext: unknown parameter declined");
	is_str(neg("PERMESSAGE-DEFLATE ; Server_No_Context_Takeover", 15),
	    "permessage-deflate; server_no_context_takeover", "ext: names in any case, spaces");
	is_str(neg("permessage-deflate; client_max_window_bits=8", 15),
	    "permessage-deflate; client_max_window_bits=8",
	    "ext: client_max_window_bits=8 answered 8, never more than offered (RFC 7692 7.1.2.2)");
	is_str(neg("permessage-deflate; client_max_window_bits=\"9\"", 15),
	    "permessage-deflate; client_max_window_bits=9", "ext: quoted value");
	is_str(neg("permessage-deflate; client_max_window_bits=07", 15), "", "ext: leading zero declined");
	is_str(neg("permessage-deflate; server_no_context_takeover; server_no_context_takeover", 15),
	    "", "ext: repeated parameter declined");
	is_str(neg("x-webkit-deflate-frame", 15), "", "ext: another extension only");
	is_str(neg("", 15), "", "ext: empty value");
	is_str(neg(", ,permessage-deflate,", 15), "permessage-deflate", "ext: empty list elements");
	is_str(neg("permessage-deflate; =", 15), "ERR", "ext: malformed");
	is_str(neg("permessage-deflate x", 15), "ERR", "ext: junk after a name");
	is_str(neg("permessage-deflate; a=\"open", 15), "ERR", "ext: unterminated quote");
}

static void
test_deflate(void)
{
	struct ws_zs def, inf;
	struct ws_buf c = { 0 }, d = { 0 };
	static uint8_t big[300000];
	int rc;

	/* RFC 7692 7.2.3.1: "Hello" compressed. */
	static const uint8_t hello[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };
	ws_zs_init(&inf, 0, 15, 0, 1);
	rc = ws_inflate(&inf, hello, sizeof(hello), 1, &d, 100);
	ok(rc == 0 && d.len == 5 && memcmp(d.p, "Hello", 5) == 0, "inflate: RFC 7692 Hello");
	/* The same again with context takeover (the RFC's second form refers back). */
	static const uint8_t hello2[] = { 0xf2, 0x00, 0x11, 0x00, 0x00 };
	d.len = 0;
	rc = ws_inflate(&inf, hello2, sizeof(hello2), 1, &d, 100);
	ok(rc == 0 && d.len == 5 && memcmp(d.p, "Hello", 5) == 0, "inflate: context takeover back-reference");
	ws_zs_free(&inf);

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)("the quick brown fox "[i % 20] + (i / 4096) % 3);
	for (int wbits = 9; wbits <= 15; wbits += 3) {
		ws_zs_init(&def, 1, wbits, 8, 0);
		ws_zs_init(&inf, 0, wbits, 0, 0);
		c.len = d.len = 0;
		rc = ws_deflate(&def, big, sizeof(big), &c);
		int tail = c.len >= 4 && memcmp(c.p + c.len - 4, "\x00\x00\xff\xff", 4) == 0;
		int rc2 = ws_inflate(&inf, c.p, c.len / 2, 0, &d, sizeof(big));
		int rc3 = ws_inflate(&inf, c.p + c.len / 2, c.len - c.len / 2, 1, &d, sizeof(big));
		ok(rc == 0 && !tail && rc2 == 0 && rc3 == 0 && d.len == sizeof(big) &&
		    memcmp(d.p, big, sizeof(big)) == 0 && c.len < sizeof(big) / 4,
		    "deflate: %zu bytes round trip in %zu, %d-bit window, in two chunks", sizeof(big),
		    c.len, wbits);
		/* Without takeover a second message stands alone. */
		c.len = d.len = 0;
		ws_deflate(&def, (const uint8_t *)"again", 5, &c);
		ws_zs_idle(&inf);
		ok(inf.z == NULL, "inflate: state freed between messages without takeover");
		rc = ws_inflate(&inf, c.p, c.len, 1, &d, 100);
		ok(rc == 0 && d.len == 5 && memcmp(d.p, "again", 5) == 0, "deflate: a second message alone");
		ws_zs_free(&def);
		ws_zs_free(&inf);
	}
	/* Two whole raw deflate streams (each ending in a final block) in one
	 * message: inflated alike in one chunk or split at their boundary;
	 * garbage after a final block fails the message. */
	{
		uint8_t two[64], *p = two;
		const char *parts[2] = { "hello ", "world" };
		for (int k = 0; k < 2; k++) {
			z_stream zz = { 0 };
			deflateInit2(&zz, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
			zz.next_in = (Bytef *)parts[k];
			zz.avail_in = (uInt)strlen(parts[k]);
			zz.next_out = p;
			zz.avail_out = (uInt)(two + sizeof(two) - p);
			deflate(&zz, Z_FINISH);
			p = zz.next_out;
			deflateEnd(&zz);
		}
		size_t first = 0;
		{
			z_stream zz = { 0 };
			deflateInit2(&zz, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
			uint8_t tmp[32];
			zz.next_in = (Bytef *)"hello ";
			zz.avail_in = 6;
			zz.next_out = tmp;
			zz.avail_out = sizeof(tmp);
			deflate(&zz, Z_FINISH);
			first = sizeof(tmp) - zz.avail_out;
			deflateEnd(&zz);
		}
		ws_zs_init(&inf, 0, 15, 0, 0);
		d.len = 0;
		int r1 = ws_inflate(&inf, two, (size_t)(p - two), 1, &d, 100);
		int whole = r1 == 0 && d.len == 11 && memcmp(d.p, "hello world", 11) == 0;
		ws_zs_free(&inf);
		ws_zs_init(&inf, 0, 15, 0, 0);
		d.len = 0;
		int r2 = ws_inflate(&inf, two, first, 0, &d, 100);
		int r3 = ws_inflate(&inf, two + first, (size_t)(p - two) - first, 1, &d, 100);
		ok(whole && r2 == 0 && r3 == 0 && d.len == 11 && memcmp(d.p, "hello world", 11) == 0,
		    "inflate: two final-block streams in a message, whole or split at the boundary, alike");
		ws_zs_free(&inf);
		ws_zs_init(&inf, 0, 15, 0, 0);
		d.len = 0;
		uint8_t bad[40];
		memcpy(bad, two, first);
		memcpy(bad + first, "\xff\xff\xff", 3);
		ok(ws_inflate(&inf, bad, first + 3, 1, &d, 100) == 1007,
		    "inflate: garbage after a final block fails with 1007");
		ws_zs_free(&inf);
	}
	/* Empty message. */
	ws_zs_init(&def, 1, 15, 8, 0);
	ws_zs_init(&inf, 0, 15, 0, 0);
	c.len = d.len = 0;
	ws_deflate(&def, (const uint8_t *)"", 0, &c);
	rc = ws_inflate(&inf, c.p, c.len, 1, &d, 100);
	ok(rc == 0 && d.len == 0 && c.len >= 1, "deflate: an empty message (%zu bytes)", c.len);
	/* A bomb: 16 MiB of zeros in about 16 KiB, refused at max + 1 bytes. */
	{
		uint8_t *zeros = calloc(1, 16 << 20);
		ws_zs_free(&def);
		ws_zs_init(&def, 1, 15, 8, 0);
		c.len = d.len = 0;
		ws_deflate(&def, zeros, 16 << 20, &c);
		free(zeros);
		ws_zs_free(&inf);
		ws_zs_init(&inf, 0, 15, 0, 0);
		rc = ws_inflate(&inf, c.p, c.len, 1, &d, 1 << 20);
		ok(rc == 1009 && d.len == (1 << 20) + 1 && d.cap <= (4 << 20),
		    "inflate: a bomb (%zu bytes) stops at max_message + 1 with 1009", c.len);
	}
	ws_zs_free(&inf);
	ws_zs_init(&inf, 0, 15, 0, 0);
	d.len = 0;
	rc = ws_inflate(&inf, (const uint8_t *)"\xff\xff\xff\xff", 4, 1, &d, 100);
	is(rc, 1007, "inflate: not deflate data: 1007");
	ws_zs_free(&inf);
	ws_zs_free(&def);
	ws_buf_free(&c);
	ws_buf_free(&d);
}

int
main(void)
{
	test_utf8();
	test_parser();
	test_encoder();
	test_close_codes();
	test_accept();
	test_extensions();
	test_deflate();
	return done_testing();
}
