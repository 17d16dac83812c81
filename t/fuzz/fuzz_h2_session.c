/*
 * libFuzzer target for the HTTP/2 session layer as portico runs it: a
 * libnghttp2 server session with portico's options and settings (those
 * of common/h2.c) is fed the client preface and then the input as frames;
 * each request's header fields go through h2_head_field, the whole head
 * through h2_head_text and the one request parser, http_parse_request.
 * Each stream is answered with a small body through a data provider, so
 * the send side runs too, and what the session writes is drained.
 *
 * Checks (a failure traps): the text handed to the parser holds exactly
 * one request head (the parser consumes all of it: no field smuggled a
 * line end in); its method and target are the :method and :path sent;
 * no header the parser saw is longer than the text; the per-stream state
 * is freed on every path (ASan's leak check).
 */
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/h2.h"
#include "common/h2_head.h"
#include "common/http_parse.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

struct fz_stream {
	struct fz_stream *next, **prevp; /* the run's list: freed at its end */
	struct h2_head in;
	int answered;
	size_t left;                   /* body bytes still to send */
};

static const struct http_limits limits = { 8192, 16384, 100 };

static ssize_t
on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *arg)
{
	(void)s;
	(void)data;
	(void)flags;
	(void)arg;
	return (ssize_t)len; /* dropped: only the serializing is exercised */
}

static ssize_t
on_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
    nghttp2_data_source *src, void *arg)
{
	struct fz_stream *st = src->ptr;
	size_t n = st->left < len ? st->left : len;

	(void)s;
	(void)id;
	(void)arg;
	memset(buf, 'x', n);
	st->left -= n;
	if (st->left == 0)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int
on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
	struct fz_stream *st;

	struct fz_stream **list = arg;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->next = *list;
	if (*list != NULL)
		(*list)->prevp = &st->next;
	st->prevp = list;
	*list = st;
	nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, st);
	return 0;
}

static int
on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen, uint8_t flags, void *arg)
{
	struct fz_stream *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);

	(void)flags;
	(void)arg;
	if (st == NULL || frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	return h2_head_field(&st->in, name, nlen, value, vlen, limits.max_header_size,
	    limits.max_headers) < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

static void
check_head(struct fz_stream *st, int end_stream)
{
	size_t len = 0;
	char *text = h2_head_text(&st->in, !end_stream, "dGhlIHNhbXBsZSBub25jZQ==", &len);
	struct http_request hr;

	if (text == NULL)
		return;
	/* The exact copy the parser gets, so ASan sees a read past it. */
	char *buf = malloc(len);
	CHECK(buf != NULL);
	memcpy(buf, text, len);
	free(text);
	http_request_reset(&hr);
	ssize_t n = http_parse_request(&hr, buf, len, &limits);
	CHECK(n != 0); /* the text is always a whole head */
	if (n > 0) {
		CHECK((size_t)n == len);
		/* An extended CONNECT is the GET it stands for. */
		const char *m = st->in.protocol != NULL ? "GET" : st->in.method;
		CHECK(hr.method_len == strlen(m) && memcmp(hr.method, m, hr.method_len) == 0);
		for (unsigned i = 0; i < hr.nheaders; i++)
			CHECK(hr.headers[i].name_len + hr.headers[i].value_len < len);
	}
	free(buf);
}

static int
on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
	struct fz_stream *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);

	(void)arg;
	if (st == NULL || frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST || st->answered)
		return 0;
	check_head(st, (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
	st->answered = 1;
	st->left = 100 + (size_t)frame->hd.stream_id % 40000;
	nghttp2_nv nv[] = { { (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE } };
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = on_read };
	nghttp2_submit_response(s, frame->hd.stream_id, nv, 1, &prd);
	return 0;
}

static int
on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *arg)
{
	(void)flags;
	(void)data;
	(void)arg;
	nghttp2_session_consume(s, id, len);
	return 0;
}

static void
fz_free(struct fz_stream *st)
{
	*st->prevp = st->next;
	if (st->next != NULL)
		st->next->prevp = st->prevp;
	h2_head_free(&st->in);
	free(st);
}

static int
on_close(nghttp2_session *s, int32_t id, uint32_t err, void *arg)
{
	struct fz_stream *st = nghttp2_session_get_stream_user_data(s, id);

	(void)err;
	(void)arg;
	if (st != NULL) {
		nghttp2_session_set_stream_user_data(s, id, NULL);
		fz_free(st);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_session *s;
	struct fz_stream *list = NULL;

	CHECK(nghttp2_session_callbacks_new(&cb) == 0 && nghttp2_option_new(&opt) == 0);
	nghttp2_session_callbacks_set_send_callback(cb, on_send);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	/* As common/h2.c sets them. */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_continuations(opt, 8);
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	nghttp2_option_set_stream_reset_rate_limit(opt, 200, 50);
	nghttp2_option_set_max_settings(opt, 32);
	CHECK(nghttp2_session_server_new2(&s, cb, &list, opt) == 0);
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 128 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65536 },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384 },
		{ NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1 },
	};
	nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 4);
	nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, 1 << 20);
	if (nghttp2_session_mem_recv(s, (const uint8_t *)H2_PREFACE, H2_PREFACE_LEN) ==
	    H2_PREFACE_LEN) {
		/* In two pieces, so frames split across reads are exercised too. */
		size_t half = size > 0 ? data[0] % (size + 1) : 0;
		if (nghttp2_session_mem_recv(s, data, half) >= 0 && nghttp2_session_send(s) == 0)
			(void)nghttp2_session_mem_recv(s, data + half, size - half);
		(void)nghttp2_session_send(s);
	}
	nghttp2_session_del(s);
	while (list != NULL) /* streams the session never closed (it ended first) */
		fz_free(list);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	return 0;
}
