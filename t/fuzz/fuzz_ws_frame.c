/*
 * libFuzzer target for the WebSocket frame parser (common/ws.c).
 * (The chunked run may hand out the valid start of a text chunk whose
 * end is bad before it sees the bad byte; the whole run refuses that
 * chunk at once: on an error, the whole run's events are a prefix.)
 *
 * Input: byte 0 holds the options (bit 0: permessage-deflate negotiated,
 * bits 1-3: a chunk size), byte 1 a max_message (times 64, plus 1); the
 * rest is what a client sends, copied into an exactly-sized buffer so ASan
 * sees any read past it.  Fed in chunks, and again whole, the parser must
 * give the same events: the same message bytes, the same control frames,
 * the same error code.  Each call consumes no more than it was given;
 * data stays within what was consumed; no message passes max_message;
 * complete uncompressed text messages are valid UTF-8.  Any disagreement
 * traps.
 */
#include "common/ws.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

struct trace {
	uint8_t *out;                 /* data and control payloads, tagged */
	size_t len, cap;
	uint16_t err;
};

static void
put(struct trace *t, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (t->len + n > t->cap) {
		size_t cap = (t->len + n) * 2 + 64;
		t->out = realloc(t->out, cap);
		CHECK(t->out != NULL);
		t->cap = cap;
	}
	memcpy(t->out + t->len, p, n);
	t->len += n;
}

static void
run(const uint8_t *in, size_t size, size_t step, int rsv1, uint64_t max, struct trace *t)
{
	struct ws_parser p;
	uint8_t *buf = malloc(size ? size : 1);
	uint64_t msg = 0;
	struct ws_utf8 u;

	CHECK(buf != NULL);
	memcpy(buf, in, size);
	ws_parser_init(&p, max, rsv1);
	ws_utf8_init(&u);
	for (size_t off = 0; off < size && t->err == 0;) {
		size_t n = size - off < step ? size - off : step;
		size_t used = 0;
		while (used < n) {
			struct ws_event ev;
			size_t k = ws_parse(&p, buf + off + used, n - used, &ev);
			CHECK(k <= n - used);
			if (ev.type == WS_EV_MORE) {
				CHECK(k == n - used);
				break;
			}
			if (ev.type == WS_EV_ERROR) {
				CHECK(ev.code == 1002 || ev.code == 1007 || ev.code == 1009);
				t->err = ev.code;
				break;
			}
			if (ev.type == WS_EV_DATA) {
				CHECK(ev.data >= buf + off + used && ev.data + ev.len <= buf + off + used + k);
				CHECK(ev.opcode == WS_OP_TEXT || ev.opcode == WS_OP_BINARY);
				CHECK(!ev.compressed || rsv1);
				if (ev.first) {
					msg = 0;
					ws_utf8_init(&u);
				}
				msg += ev.len;
				CHECK(msg <= max + (ev.compressed ? max / 256 + 64 : 0));
				if (ev.opcode == WS_OP_TEXT && !ev.compressed) {
					CHECK(ws_utf8_feed(&u, ev.data, ev.len) == 0);
					if (ev.last)
						CHECK(ws_utf8_done(&u) == 0);
				}
				put(t, ev.data, ev.len); /* chunks differ; the bytes may not */
				if (ev.last)
					put(t, "L", 1);
			} else {
				CHECK(ev.len <= WS_CONTROL_MAX);
				CHECK(ev.opcode == WS_OP_PING || ev.opcode == WS_OP_PONG ||
				    ev.opcode == WS_OP_CLOSE);
				put(t, "C", 1);
				put(t, &ev.opcode, 1);
				put(t, ev.data, ev.len);
			}
			used += k;
		}
		off += n;
	}
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace a = { 0 }, b = { 0 };

	if (size < 2)
		return 0;
	int rsv1 = data[0] & 1;
	size_t step = ((size_t)(data[0] >> 1) & 7) + 1;
	uint64_t max = (uint64_t)data[1] * 64 + 1;
	data += 2;
	size -= 2;
	run(data, size, step, rsv1, max, &a);
	run(data, size, size ? size : 1, rsv1, max, &b);
	/* The whole-input run may get further only if the chunked one ended
	 * on the error: the same error, and the same events up to it. */
	CHECK(a.err == b.err);
	if (a.err == 0)
		CHECK(a.len == b.len && (a.len == 0 || memcmp(a.out, b.out, a.len) == 0));
	else /* text bytes before the bad one may have gone out in an earlier chunk */
		CHECK(a.len >= b.len && (b.len == 0 || memcmp(a.out, b.out, b.len) == 0));
	free(a.out);
	free(b.out);
	return 0;
}
