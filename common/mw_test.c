#include "common/mw_test.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/exchange.h"
#include "common/log.h"
#include "common/server.h"
#include "common/units.h"

/* No defaults: a key not given leaves its behaviour off. */
static const struct conf_key keys[] = {
	MW_TYPE_KEY,
	{ "upper", NULL, 0, NULL },
	{ "expand", NULL, 0, NULL },
	{ "shrink", NULL, 0, NULL },
	{ "delay", NULL, 0, NULL },
	{ "answer", NULL, 0, NULL },
	{ "fail", NULL, 0, NULL },
	{ NULL, NULL, 0, NULL },
};

struct test_conf {
	char *name;
	int upper, expand;
	int shrink;                  /* keep one byte in SHRINK_KEEP: output stays small */
	int64_t delay_ms;
	int answer;
	uint64_t fail;               /* the filter fails past this many bytes; 0: never */
};

#define SHRINK_KEEP 1024

/* One exchange's: made by the request phase, freed with the exchange. */
struct test_state {
	struct request *r;
	const struct test_conf *tc;
	struct event ev;
	unsigned armed : 1;
	unsigned logs, flushes;
	uint64_t seen;
	size_t hold;
	unsigned char buf[4096];
};

static void
test_free_conf(void *p)
{
	struct test_conf *tc = p;

	if (tc != NULL)
		free(tc->name);
	free(tc);
}

static void *
test_configure(struct conf_ctx *ctx, const struct conf_section *sec)
{
	struct test_conf *tc = calloc(1, sizeof(*tc));
	int bad = 0;

	if (tc == NULL || (tc->name = strdup(sec->name)) == NULL) {
		free(tc);
		return NULL;
	}
	for (size_t i = 0; i < sec->nkv; i++) {
		const struct conf_kv *kv = &sec->kv[i];
		uint64_t n;
		if (strcmp(kv->key, "upper") == 0 && units_bool(kv->value, &tc->upper) < 0)
			bad = 1;
		else if (strcmp(kv->key, "expand") == 0 && units_bool(kv->value, &tc->expand) < 0)
			bad = 1;
		else if (strcmp(kv->key, "shrink") == 0 && units_bool(kv->value, &tc->shrink) < 0)
			bad = 1;
		else if (strcmp(kv->key, "delay") == 0 && units_duration(kv->value, &tc->delay_ms) < 0)
			bad = 1;
		else if (strcmp(kv->key, "fail") == 0 && units_size(kv->value, &tc->fail) < 0)
			bad = 1;
		else if (strcmp(kv->key, "answer") == 0) {
			if (units_count(kv->value, 599, &n) < 0 || n < 200)
				bad = 1;
			else
				tc->answer = (int)n;
		} else
			continue;
		if (bad) {
			conf_err(ctx, kv->line, ctx->section, kv->key, "bad value \"%s\"", kv->value);
			break;
		}
	}
	if (bad) {
		test_free_conf(tc);
		return NULL;
	}
	return tc;
}

static void
test_free_state(void *p)
{
	struct test_state *st = p;

	/* The exchange ended while paused (the client went away): no resume. */
	if (st->armed)
		event_del(&st->ev);
	free(st);
}

static void
answer(struct request *r, const struct test_conf *tc)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "answered by %s\n", tc->name);

	http_resp_simple(r, tc->answer, "text/plain", body, (size_t)n);
}

static void
on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct test_state *st = arg;

	(void)fd;
	(void)what;
	st->armed = 0;
	if (st->tc->answer != 0)
		answer(st->r, st->tc); /* the exchange (and st) may be gone now */
	else
		pipeline_resume(st->r);
}

static int
test_request(struct request *r, const void *conf)
{
	const struct test_conf *tc = conf;
	struct test_state *st = calloc(1, sizeof(*st));

	if (st == NULL || mw_state_set(r, st) < 0) {
		free(st);
		http_resp_error(r, 500);
		return MW_ANSWERED;
	}
	st->r = r;
	st->tc = tc;
	/* Tests wait for this line to know the request is in. */
	log_info("test %s: request phase: %.*s", tc->name, (int)r->hr->path_len, r->hr->path);
	req_header_add(r, "X-Trace", 7, tc->name, strlen(tc->name));
	if (tc->answer != 0 && tc->delay_ms == 0) {
		answer(r, tc);
		return MW_ANSWERED;
	}
	if (tc->delay_ms > 0) {
		struct timeval tv = { (time_t)(tc->delay_ms / 1000),
			(suseconds_t)(tc->delay_ms % 1000) * 1000 };
		evtimer_assign(&st->ev, r->conn->w->base, on_delay, st);
		evtimer_add(&st->ev, &tv);
		st->armed = 1;
		return MW_PAUSE;
	}
	return MW_NEXT;
}

static void
test_response_head(struct request *r, const void *conf)
{
	const struct test_conf *tc = conf;

	http_resp_header_n(r, "X-Trace", 7, tc->name, strlen(tc->name));
	if (!tc->upper && !tc->expand && !tc->shrink && tc->fail == 0)
		return;
	if (mw_filter_start(r) < 0 && !(r->flags & REQ_HEAD_ONLY))
		return;
	/* HEAD too: it says what a GET would get. */
	if (tc->expand || tc->shrink)
		http_resp_length_unknown(r);
}

static int
test_body(struct mw_filter *f, const void *data, size_t len, unsigned flags)
{
	struct test_state *st = f->state;
	const struct test_conf *tc = st->tc;
	const unsigned char *p = data;
	uint64_t at = st->seen;      /* the body offset of p[0] */

	st->seen += len;
	if (tc->fail > 0 && st->seen > tc->fail)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (st->hold + 2 > sizeof(st->buf)) {
			mw_emit(f, st->buf, st->hold);
			st->hold = 0;
		}
		/* Byte by byte, as a compressor's work grows with its input. */
		if (tc->shrink && (at + i) % SHRINK_KEEP != 0)
			continue;
		unsigned char ch = p[i];
		if (tc->upper && ch >= 'a' && ch <= 'z')
			ch = (unsigned char)(ch - 'a' + 'A');
		st->buf[st->hold++] = ch;
		if (tc->expand)
			st->buf[st->hold++] = ch;
	}
	if (flags != 0) {
		mw_emit(f, st->buf, st->hold);
		st->hold = 0;
		if (flags & MW_BODY_FLUSH)
			st->flushes++;
	}
	return 0;
}

static void
test_log(struct request *r, const void *conf)
{
	const struct test_conf *tc = conf;
	struct test_state *st = mw_state(r);
	char v[96], all[MW_LOG_BYTES + 2 * MW_LOG_FIELDS + 1];
	const char *k, *val;
	size_t klen, vlen, n = 0;
	unsigned it = 0;

	if (st == NULL)
		return;
	st->logs++;
	int vn = snprintf(v, sizeof(v), "status=%d bytes=%llu flushes=%u", r->status,
	    (unsigned long long)r->body_bytes, st->flushes);
	http_log_field(r, tc->name, v, (size_t)vn);
	while (http_log_field_next(r, &it, &k, &klen, &val, &vlen))
		n += (size_t)snprintf(all + n, sizeof(all) - n, "%s%.*s=%.*s", n > 0 ? " " : "",
		    (int)klen, k, (int)vlen, val);
	log_info("test %s: log call %u: %.*s %d: %s", tc->name, st->logs, (int)r->hr->path_len,
	    r->hr->path, r->status, all);
}

const struct mw_ops test_mw_ops = {
	.type = "test",
	.keys = keys,
	.configure = test_configure,
	.free_conf = test_free_conf,
	.request = test_request,
	.response_head = test_response_head,
	.body = test_body,
	.log = test_log,
	.free_state = test_free_state,
};
