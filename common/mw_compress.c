#include "common/mw_compress.h"

#include <brotli/encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

#include "common/coding.h"
#include "common/config.h"
#include "common/conn.h"
#include "common/exchange.h"
#include "common/http_parse.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/units.h"

/* What is worth compressing when `types` is not given: nginx's
 * gzip_types (text/html) and the other text formats of the web. */
#define DEFAULT_TYPES "text/html, text/css, text/plain, text/xml, text/javascript, " \
	"text/markdown, text/csv, application/javascript, application/json, " \
	"application/ld+json, application/manifest+json, application/xml, " \
	"application/rss+xml, application/atom+xml, application/wasm, image/svg+xml"

static const struct conf_key compress_keys[] = {
	MW_TYPE_KEY,
	{ "encodings", "zstd, br, gzip", 0, NULL },
	{ "types", DEFAULT_TYPES, CONF_KEY_LIST, NULL },
	{ "min_length", "256", 0, NULL },
	{ "gzip_level", "6", 0, NULL },
	{ "br_level", "1", 0, NULL },
	{ "zstd_level", "3", 0, NULL },
	{ NULL, NULL, 0, NULL },
};

/*
 * The encoders' windows, chosen so that one stream holds about 300 KiB
 * at most at the default levels (the man page has the figures, measured
 * with t/unit/test_compress.c):
 *   zlib  windowBits 15 (32 KiB), memLevel 8: 256 KiB, less for a body
 *         known to be small (as nginx does);
 *   brotli lgwin 16 (64 KiB): levels 0 and 1 need under 50 KiB whatever
 *         the window, 2 and above a larger hash table (the man page);
 *   zstd  windowLog 15 (32 KiB), hashLog and chainLog 14: about 370 KiB
 *         up to level 15, the tables no longer growing with the level.
 */
#define GZIP_WBITS 15
#define GZIP_MEMLEVEL 8
#define BR_LGWIN 16
#define ZSTD_WLOG 15
#define ZSTD_TABLELOG 14

/* Output is emitted in pieces of this size at most, as it is made. */
#define OUT_CHUNK 16384

#define MAX_TYPES 64

struct compress_conf {
	enum content_coding pref[CODING_COUNT];
	size_t npref;
	char *types[MAX_TYPES];      /* "type/subtype", "type/" + "*", or "*", lower case */
	size_t ntypes;
	uint64_t min_length;
	int gzip_level, br_level, zstd_level;
};

/* One exchange's encoder. */
struct compress_state {
	enum content_coding coding;
	unsigned fed : 1;            /* input since the last flush */
	unsigned ended : 1;
	union {
		z_stream z;
		BrotliEncoderState *br;
		ZSTD_CCtx *zs;
	} u;
	uint64_t in, out;
};

/* The unit test counts the encoders' memory through these; NULL: malloc. */
static brotli_alloc_func br_alloc;
static brotli_free_func br_free;
static alloc_func gz_alloc;
static free_func gz_free;

static void
compress_free_conf(void *p)
{
	struct compress_conf *cc = p;

	if (cc == NULL)
		return;
	for (size_t i = 0; i < cc->ntypes; i++)
		free(cc->types[i]);
	free(cc);
}

static int
parse_encodings(struct conf_ctx *ctx, const struct conf_kv *kv, struct compress_conf *cc)
{
	const char *p = kv->value, *tok;
	size_t len;

	while (conf_list_next(&p, &tok, &len)) {
		int c = coding_from_name(tok, len);
		if (c <= CODING_IDENTITY || strlen(coding_name(c)) != len ||
		    strncmp(coding_name(c), tok, len) != 0) {
			conf_err(ctx, kv->line, ctx->section, kv->key,
			    "expected a list of zstd, br and gzip, not \"%.*s\"", (int)len, tok);
			return -1;
		}
		for (size_t i = 0; i < cc->npref; i++)
			if (cc->pref[i] == (enum content_coding)c) {
				conf_err(ctx, kv->line, ctx->section, kv->key, "%s given twice",
				    coding_name(c));
				return -1;
			}
		cc->pref[cc->npref++] = (enum content_coding)c;
	}
	if (cc->npref == 0) {
		conf_err(ctx, kv->line, ctx->section, kv->key, "expected zstd, br or gzip");
		return -1;
	}
	return 0;
}

/* A media type as configured: "*", "type/" + "*" or "type/subtype", tokens. */
static int
type_ok(const char *t, size_t len)
{
	const char *slash = memchr(t, '/', len);

	if (len == 1 && t[0] == '*')
		return 1;
	if (slash == NULL || slash == t || slash == t + len - 1)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (t + i != slash && (t[i] <= ' ' || strchr("\"(),/:;<=>?@[\\]{}", t[i]) != NULL ||
		    (unsigned char)t[i] >= 0x7f))
			return 0;
	return 1;
}

static int
parse_types(struct conf_ctx *ctx, const struct conf_kv *kv, struct compress_conf *cc)
{
	const char *p = kv->value, *tok;
	size_t len;

	while (conf_list_next(&p, &tok, &len)) {
		if (!type_ok(tok, len)) {
			conf_err(ctx, kv->line, ctx->section, kv->key,
			    "expected media types such as text/html, text/* or *, not \"%.*s\"",
			    (int)len, tok);
			return -1;
		}
		if (cc->ntypes == MAX_TYPES) {
			conf_err(ctx, kv->line, ctx->section, kv->key,
			    "more than %d types, counting every line", MAX_TYPES);
			return -1;
		}
		char *t = strndup(tok, len);
		if (t == NULL)
			return -1;
		for (char *q = t; *q != '\0'; q++)
			*q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
		cc->types[cc->ntypes++] = t;
	}
	return 0;
}

static int
parse_level(struct conf_ctx *ctx, const struct conf_section *sec, const char *key, int min,
    int max, int *out)
{
	struct conf_kv def;
	const struct conf_kv *kv = conf_section_value(sec, compress_keys, key, &def);
	uint64_t n;

	if (units_count(kv->value, (uint64_t)max, &n) < 0 || n < (uint64_t)min) {
		conf_err(ctx, kv->line, ctx->section, key, "expected a level from %d to %d, not \"%s\"",
		    min, max, kv->value);
		return -1;
	}
	*out = (int)n;
	return 0;
}

static void *
compress_configure(struct conf_ctx *ctx, const struct conf_section *sec)
{
	struct compress_conf *cc = calloc(1, sizeof(*cc));
	const struct conf_kv *kv;
	struct conf_kv def;
	int bad = 0, listed = 0;

	if (cc == NULL)
		return NULL;
	kv = conf_section_value(sec, compress_keys, "encodings", &def);
	bad |= parse_encodings(ctx, kv, cc) < 0;
	for (size_t i = 0; i < sec->nkv; i++)
		if (strcmp(sec->kv[i].key, "types") == 0) {
			listed = 1;
			bad |= parse_types(ctx, &sec->kv[i], cc) < 0;
		}
	if (!listed)
		bad |= parse_types(ctx, conf_section_value(sec, compress_keys, "types", &def), cc) < 0;
	kv = conf_section_value(sec, compress_keys, "min_length", &def);
	if (units_size(kv->value, &cc->min_length) < 0) {
		conf_err(ctx, kv->line, ctx->section, kv->key,
		    "expected a size such as 256 or 1k, not \"%s\"", kv->value);
		bad = 1;
	}
	bad |= parse_level(ctx, sec, "gzip_level", 1, 9, &cc->gzip_level) < 0;
	bad |= parse_level(ctx, sec, "br_level", 0, 11, &cc->br_level) < 0;
	bad |= parse_level(ctx, sec, "zstd_level", 1, 19, &cc->zstd_level) < 0;
	if (bad) {
		compress_free_conf(cc);
		return NULL;
	}
	return cc;
}

/* ---- the decision ---- */

/* Whether the list value v (a header's) holds the token lower. */
static int
list_has(const char *v, size_t len, const char *lower)
{
	size_t i = 0, n = strlen(lower);

	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t b = i;
		/* A member ends at a comma; "no-transform" may not have "=...". */
		while (i < len && v[i] != ',' && v[i] != '=' && v[i] != ' ' && v[i] != '\t' &&
		    v[i] != ';')
			i++;
		if (i - b == n && strncasecmp(v + b, lower, n) == 0)
			return 1;
		while (i < len && v[i] != ',') {
			if (v[i] == '"') /* a quoted-string may hold commas */
				for (i++; i < len && v[i] != '"'; i++)
					if (v[i] == '\\')
						i++;
			i++;
		}
	}
	return 0;
}

static int
resp_list_has(const struct request *r, const char *name, const char *lower)
{
	size_t it = 0, vlen;
	const char *v;

	while ((v = http_resp_header_next(r, name, strlen(name), &it, &vlen)) != NULL)
		if (list_has(v, vlen, lower))
			return 1;
	return 0;
}

static int
type_listed(const struct compress_conf *cc, const struct request *r)
{
	const struct resp_head *h = &r->resp;
	const char *t = h->buf + h->reason_len;
	size_t it = 0, tlen = h->ctype_len, len = 0;

	/* A handler's own, or a line relayed from a backend. */
	if (!h->has_ctype && (t = http_resp_header_next(r, "Content-Type", 12, &it, &tlen)) == NULL)
		return 0;
	while (len < tlen && t[len] != ';' && t[len] != ' ' && t[len] != '\t')
		len++;
	const char *slash = memchr(t, '/', len);
	for (size_t i = 0; i < cc->ntypes; i++) {
		const char *c = cc->types[i];
		size_t cl = strlen(c);
		if (strcmp(c, "*") == 0 || (cl == len && strncasecmp(c, t, len) == 0))
			return 1;
		/* "text/" + "*": the same type, any subtype */
		if (slash != NULL && c[cl - 1] == '*' && c[cl - 2] == '/' &&
		    (size_t)(slash - t) == cl - 2 && strncasecmp(c, t, cl - 2) == 0)
			return 1;
	}
	return 0;
}

/* Whether the response is one to compress for some client. */
static int
compressible(const struct compress_conf *cc, const struct request *r)
{
	size_t it = 0, vlen;

	/* 206: the ranges are of the identity body; 1xx, 204, 304: no body. */
	if (r->status < 200 || r->status == 204 || r->status == 206 || r->status == 304)
		return 0;
	if (r->resp.clen >= 0 && (uint64_t)r->resp.clen < cc->min_length)
		return 0;
	if (r->resp.clen == 0)
		return 0;
	if (http_resp_header_next(r, "Content-Encoding", 16, &it, &vlen) != NULL)
		return 0;
	if (resp_list_has(r, "Cache-Control", "no-transform"))
		return 0;
	return type_listed(cc, r);
}

/* Vary: Accept-Encoding, once, joined to an existing Vary. */
static void
add_vary(struct request *r)
{
	char joined[1024];
	size_t it = 0, vlen, n = 0;
	const char *v;

	if (resp_list_has(r, "Vary", "accept-encoding") || resp_list_has(r, "Vary", "*"))
		return;
	while ((v = http_resp_header_next(r, "Vary", 4, &it, &vlen)) != NULL) {
		if (vlen == 0)
			continue;
		if (n + vlen + 2 + 16 > sizeof(joined)) {
			/* Too long to join here: a second line means the same (RFC 9110 5.3). */
			http_resp_header_n(r, "Vary", 4, "Accept-Encoding", 15);
			return;
		}
		if (n > 0) {
			memcpy(joined + n, ", ", 2);
			n += 2;
		}
		memcpy(joined + n, v, vlen);
		n += vlen;
	}
	if (n > 0) {
		memcpy(joined + n, ", ", 2);
		n += 2;
	}
	memcpy(joined + n, "Accept-Encoding", 15);
	n += 15;
	http_resp_header_set(r, "Vary", 4, joined, n);
}

/* A strong ETag names the identity bytes: the compressed ones get a weak
 * one, which If-None-Match still matches (weak comparison). */
static void
weaken_etag(struct request *r)
{
	char w[512];
	size_t it = 0, vlen;
	const char *v = http_resp_header_next(r, "ETag", 4, &it, &vlen);

	if (v == NULL || vlen == 0 || v[0] != '"' || vlen + 2 > sizeof(w))
		return;
	memcpy(w, "W/", 2);
	memcpy(w + 2, v, vlen);
	http_resp_header_set(r, "ETag", 4, w, vlen + 2);
}

static enum content_coding
negotiate(const struct compress_conf *cc, const struct request *r)
{
	struct coding_accept a;
	const struct http_header *h;
	unsigned it = 0;
	int seen = 0;

	coding_accept_init(&a);
	while (req_header_next(r, &it, &h))
		if (http_token_eq(h->name, h->name_len, "accept-encoding")) {
			coding_accept_parse(&a, h->value, h->value_len);
			seen = 1;
		}
	/* No Accept-Encoding: RFC 9110 allows any coding, but clients that
	 * send none are tools and old proxies that cannot decode; as nginx. */
	if (!seen)
		return CODING_IDENTITY;
	return coding_choose(&a, cc->pref, cc->npref);
}

/* ---- the encoders ---- */

/* Opens st's encoder for a body of clen bytes (-1: not known).  0 or -1. */
static int
enc_open(struct compress_state *st, const struct compress_conf *cc, int64_t clen)
{
	switch (st->coding) {
	case CODING_GZIP: {
		int wbits = GZIP_WBITS, memlevel = GZIP_MEMLEVEL;
		/* A small body needs no larger window than itself, nor the memory. */
		while (clen > 0 && clen < (1 << (wbits - 1)) && wbits > 9) {
			wbits--;
			if (memlevel > 2)
				memlevel--;
		}
		st->u.z.zalloc = gz_alloc;
		st->u.z.zfree = gz_free;
		/* + 16: a gzip header and trailer around the deflate stream. */
		if (deflateInit2(&st->u.z, cc->gzip_level, Z_DEFLATED, wbits + 16, memlevel,
		    Z_DEFAULT_STRATEGY) != Z_OK)
			return -1;
		return 0;
	}
	case CODING_BR:
		if ((st->u.br = BrotliEncoderCreateInstance(br_alloc, br_free, NULL)) == NULL)
			return -1;
		BrotliEncoderSetParameter(st->u.br, BROTLI_PARAM_QUALITY, (uint32_t)cc->br_level);
		BrotliEncoderSetParameter(st->u.br, BROTLI_PARAM_LGWIN, BR_LGWIN);
		if (clen > 0)
			BrotliEncoderSetParameter(st->u.br, BROTLI_PARAM_SIZE_HINT,
			    clen > (1 << 30) ? 1u << 30 : (uint32_t)clen);
		return 0;
	case CODING_ZSTD:
		if ((st->u.zs = ZSTD_createCCtx()) == NULL)
			return -1;
		if (ZSTD_isError(ZSTD_CCtx_setParameter(st->u.zs, ZSTD_c_compressionLevel,
		    cc->zstd_level)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(st->u.zs, ZSTD_c_windowLog, ZSTD_WLOG)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(st->u.zs, ZSTD_c_hashLog, ZSTD_TABLELOG)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(st->u.zs, ZSTD_c_chainLog, ZSTD_TABLELOG)))
			return -1;
		return 0;
	default:
		return -1;
	}
}

static void
enc_close(struct compress_state *st)
{
	switch (st->coding) {
	case CODING_GZIP:
		deflateEnd(&st->u.z);
		break;
	case CODING_BR:
		BrotliEncoderDestroyInstance(st->u.br);
		break;
	case CODING_ZSTD:
		ZSTD_freeCCtx(st->u.zs);
		break;
	default:
		break;
	}
}

static void
compress_free_state(void *p)
{
	struct compress_state *st = p;

	if (st == NULL)
		return;
	enc_close(st);
	free(st);
}

/* The operation for a call's flags: 0 go on, 1 flush, 2 finish. */
static int
op_of(unsigned flags)
{
	return (flags & MW_BODY_END) ? 2 : (flags & MW_BODY_FLUSH) ? 1 : 0;
}

static void
emit(struct mw_filter *f, struct compress_state *st, const unsigned char *p, size_t n)
{
	if (n == 0)
		return;
	st->out += n;
	mw_emit(f, p, n);
}

/*
 * Each encoder takes the input and is called again while it has output
 * for us, emitting every OUT_CHUNK bytes: the body is never held whole,
 * and what a flush or the end asks for is all out before we return.
 */
static int
gzip_run(struct mw_filter *f, struct compress_state *st, const void *data, size_t len, int op)
{
	unsigned char out[OUT_CHUNK];
	z_stream *z = &st->u.z;
	int flush = op == 2 ? Z_FINISH : op == 1 ? Z_SYNC_FLUSH : Z_NO_FLUSH;

	z->next_in = (Bytef *)(uintptr_t)data;
	z->avail_in = (uInt)len;
	for (;;) {
		z->next_out = out;
		z->avail_out = sizeof(out);
		int rc = deflate(z, flush);
		if (rc == Z_STREAM_ERROR)
			return -1;
		emit(f, st, out, sizeof(out) - z->avail_out);
		if (rc == Z_STREAM_END)
			return 0;
		/* Z_BUF_ERROR: no progress was possible, so nothing is pending. */
		if (z->avail_in == 0 && (z->avail_out != 0 || rc == Z_BUF_ERROR))
			return 0;
	}
}

static int
br_run(struct mw_filter *f, struct compress_state *st, const void *data, size_t len, int op)
{
	unsigned char out[OUT_CHUNK];
	BrotliEncoderOperation bop = op == 2 ? BROTLI_OPERATION_FINISH :
	    op == 1 ? BROTLI_OPERATION_FLUSH : BROTLI_OPERATION_PROCESS;
	const uint8_t *next_in = data;
	size_t avail_in = len;

	for (;;) {
		uint8_t *next_out = out;
		size_t avail_out = sizeof(out);
		if (!BrotliEncoderCompressStream(st->u.br, bop, &avail_in, &next_in, &avail_out,
		    &next_out, NULL))
			return -1;
		emit(f, st, out, sizeof(out) - avail_out);
		if (avail_in > 0 || BrotliEncoderHasMoreOutput(st->u.br))
			continue;
		if (op != 2 || BrotliEncoderIsFinished(st->u.br))
			return 0;
	}
}

static int
zstd_run(struct mw_filter *f, struct compress_state *st, const void *data, size_t len, int op)
{
	unsigned char out[OUT_CHUNK];
	ZSTD_EndDirective zop = op == 2 ? ZSTD_e_end : op == 1 ? ZSTD_e_flush : ZSTD_e_continue;
	ZSTD_inBuffer in = { data, len, 0 };

	for (;;) {
		ZSTD_outBuffer ob = { out, sizeof(out), 0 };
		size_t left = ZSTD_compressStream2(st->u.zs, &ob, &in, zop);
		if (ZSTD_isError(left))
			return -1;
		emit(f, st, out, ob.pos);
		/* left: bytes still to flush, for a flush or the end */
		if (in.pos == in.size && (zop == ZSTD_e_continue || left == 0))
			return 0;
	}
}

static int
compress_body(struct mw_filter *f, const void *data, size_t len, unsigned flags)
{
	struct compress_state *st = f->state;
	int op = op_of(flags);

	if (st == NULL || st->ended)
		return st == NULL ? -1 : 0;
	st->in += len;
	if (len > 0)
		st->fed = 1;
	/* A flush with nothing new since the last would only add bytes. */
	if (op == 1 && !st->fed)
		return 0;
	if (len == 0 && op == 0)
		return 0;
	int rc;
	switch (st->coding) {
	case CODING_GZIP:
		rc = gzip_run(f, st, data, len, op);
		break;
	case CODING_BR:
		rc = br_run(f, st, data, len, op);
		break;
	case CODING_ZSTD:
		rc = zstd_run(f, st, data, len, op);
		break;
	default:
		rc = -1;
		break;
	}
	if (op != 0)
		st->fed = 0;
	if (op == 2)
		st->ended = 1;
	return rc;
}

static void
compress_response(struct request *r, const void *conf)
{
	const struct compress_conf *cc = conf;
	struct compress_state *st = NULL;

	if (!compressible(cc, r))
		return;
	add_vary(r);
	enum content_coding c = negotiate(cc, r);
	if (c == CODING_IDENTITY)
		return;
	/* HEAD gets the head a GET would (as nginx's gzip does): no encoder. */
	if (!(r->flags & REQ_HEAD_ONLY)) {
		if ((st = calloc(1, sizeof(*st))) == NULL)
			return;
		st->coding = c;
		if (enc_open(st, cc, r->resp.clen) < 0) {
			log_warnx("conn %d: compress: cannot start %s; sending the body as it is",
			    r->conn->fd, coding_name(c));
			compress_free_state(st);
			return;
		}
		if (mw_state_set(r, st) < 0) {
			compress_free_state(st);
			return;
		}
		if (mw_filter_start(r) < 0)
			return; /* st is the pipeline's now: freed with the exchange */
	}
	http_resp_header_set(r, "Content-Encoding", 16, coding_name(c), strlen(coding_name(c)));
	weaken_etag(r);
	/* Ranges of the compressed bytes are not offered. */
	http_resp_header_remove(r, "Accept-Ranges", 13);
	http_resp_length_unknown(r);
}

static void
compress_log(struct request *r, const void *conf)
{
	const struct compress_state *st = mw_state(r);
	char v[64];

	(void)conf;
	if (st == NULL)
		return;
	/* For portico_compress_*_bytes_total. */
	stats_add(&r->conn->env->stats->compress_in, st->in);
	stats_add(&r->conn->env->stats->compress_out, st->out);
	int n = snprintf(v, sizeof(v), "%s %llu/%llu", coding_name(st->coding),
	    (unsigned long long)st->out, (unsigned long long)st->in);
	http_log_field(r, "compress", v, (size_t)n);
}

const struct mw_ops compress_mw_ops = {
	.type = "compress",
	.keys = compress_keys,
	.configure = compress_configure,
	.free_conf = compress_free_conf,
	.response_head = compress_response,
	.body = compress_body,
	.log = compress_log,
	.free_state = compress_free_state,
};
