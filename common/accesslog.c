/*
 * accesslog: one line per exchange, in the configured format, queued on
 * the worker (written once a second or when 32 KiB gather).
 *
 *   combined  the standard (Apache/nginx) combined format, byte for byte;
 *   main      combined, then key=value fields: request time, request id,
 *             upstream address and timings, TLS version and cipher, and
 *             how the exchange ended;
 *   json      one object per line with the same fields and an RFC 3339 time.
 *
 * A line is built in a fixed buffer: what does not fit is cut, never
 * overrun, and the line always ends as its format says.
 */
#include "common/accesslog.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/ssl.h>

#include "common/exchange.h"
#include "common/pipeline.h"
#include "common/server.h"

/* Appends s to buf with quotes, backslashes and control bytes escaped as
 * \xHH (as nginx does), so a client cannot forge log lines. */
static size_t
log_escape(char *buf, size_t cap, size_t n, const char *s, size_t len, int json)
{
	static const char hex[] = "0123456789ABCDEF";

	if (s == NULL || len == 0) {
		if (n < cap)
			buf[n++] = '-';
		return n;
	}
	for (size_t i = 0; i < len && n + 4 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (json && (ch < 0x20 || ch == '"' || ch == '\\' || ch >= 0x7f)) {
			/* \u00XX: valid JSON; bytes >= 0x80 are shown, not decoded */
			if (n + 7 >= cap)
				break;
			memcpy(buf + n, "\\u00", 4);
			n += 4;
			buf[n++] = hex[ch >> 4];
			buf[n++] = hex[ch & 15];
		} else if (ch < 0x20 || ch == '"' || ch == '\\' || ch >= 0x7f) {
			buf[n++] = '\\';
			buf[n++] = 'x';
			buf[n++] = hex[ch >> 4];
			buf[n++] = hex[ch & 15];
		} else {
			buf[n++] = (char)ch;
		}
	}
	return n;
}

/*
 * A line being built: at most ALOG_LINE_MAX bytes, room kept for its end.
 * Each untrusted value is cut at ALOG_VALUE_MAX bytes escaped (the request
 * line at ALOG_LINE_VALUE_MAX, the middleware's fields at ALOG_VALUE_MAX
 * together), so every value and every
 * closing quote and brace fits and a json line is always whole JSON.
 */
#define ALOG_LINE_MAX 12288
#define ALOG_LINE_TAIL 16
#define ALOG_VALUE_MAX 2048
#define ALOG_LINE_VALUE_MAX 4096 /* the request line's */

struct line {
	char b[ALOG_LINE_MAX];
	size_t n;
};

static void
put(struct line *l, const char *s, size_t len)
{
	if (len > ALOG_LINE_MAX - ALOG_LINE_TAIL - l->n)
		len = ALOG_LINE_MAX - ALOG_LINE_TAIL - l->n;
	memcpy(l->b + l->n, s, len);
	l->n += len;
}

static void
puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

static void
putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
putf(struct line *l, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* An untrusted value, escaped, cut at max bytes; "-" when empty. */
static void
put_esc_max(struct line *l, const char *s, size_t len, int json, size_t max)
{
	size_t cap = ALOG_LINE_MAX - ALOG_LINE_TAIL;

	if (l->n + max < cap)
		cap = l->n + max;
	l->n = log_escape(l->b, cap, l->n, s, len, json);
}

static void
put_esc(struct line *l, const char *s, size_t len, int json)
{
	put_esc_max(l, s, len, json, ALOG_VALUE_MAX);
}

/* The end of a line: its closing characters always fit (ALOG_LINE_TAIL). */
static void
put_end(struct line *l, const char *s)
{
	size_t len = strlen(s);

	memcpy(l->b + l->n, s, len);
	l->n += len;
}

/* What every format draws from. */
struct fields {
	char peer[INET6_ADDRSTRLEN];
	const char *line;
	size_t line_len;
	const struct http_header *ref, *ua;
	const char *tls_version, *tls_cipher;
	const char *term;
};

static void
gather(const struct request *r, struct fields *f)
{
	const struct conn *c = r->conn;
	const struct http_request *hr = r->hr;

	memset(f, 0, sizeof(*f));
	if (hr != NULL && hr->state != 0) {
		f->ref = req_header(r, "referer");
		f->ua = req_header(r, "user-agent");
	}
	conn_peer(c, f->peer, sizeof(f->peer));
	if (hr != NULL && hr->line != NULL) {
		f->line = hr->line;
		f->line_len = hr->line_len;
	}
	if (c->ssl != NULL) {
		f->tls_version = SSL_get_version(c->ssl);
		f->tls_cipher = SSL_get_cipher_name(c->ssl);
	}
	f->term = r->log.term;
}

/* The combined format: what every log tool reads. */
static void
put_combined(struct line *l, const struct worker *w, const struct request *r,
    const struct fields *f)
{
	putf(l, "%s - - [%s] \"", f->peer, w->logtime);
	put_esc_max(l, f->line, f->line_len, 0, ALOG_LINE_VALUE_MAX);
	putf(l, "\" %d %llu \"", r->status, (unsigned long long)r->body_bytes);
	put_esc(l, f->ref ? f->ref->value : NULL, f->ref ? f->ref->value_len : 0, 0);
	puts_(l, "\" \"");
	put_esc(l, f->ua ? f->ua->value : NULL, f->ua ? f->ua->value_len : 0, 0);
	puts_(l, "\"");
}

/* Seconds with milliseconds, as nginx's $request_time; "-" when unknown. */
static void
put_secs(struct line *l, const char *key, int64_t us)
{
	if (us < 0)
		putf(l, " %s=-", key);
	else
		putf(l, " %s=%lld.%03lld", key, (long long)(us / 1000000),
		    (long long)(us % 1000000 / 1000));
}

static void
put_main(struct line *l, const struct worker *w, const struct request *r,
    const struct fields *f, uint64_t usec)
{
	const struct req_log *lg = &r->log;
	int up = lg->up_addr[0] != '\0';

	put_combined(l, w, r, f);
	put_secs(l, "rt", (int64_t)usec);
	puts_(l, " rid=");
	put_esc(l, lg->id, strlen(lg->id), 0);
	putf(l, " upstream=%s", up ? lg->up_addr : "-");
	put_secs(l, "uct", up ? lg->up_connect_us : -1);
	put_secs(l, "uht", up ? lg->up_header_us : -1);
	put_secs(l, "urt", up ? lg->up_total_us : -1);
	putf(l, " tls=%s cipher=%s term=%s", f->tls_version ? f->tls_version : "-",
	    f->tls_cipher ? f->tls_cipher : "-", f->term ? f->term : "-");
	/* Then the middleware's fields (http_log_field), as key=value. */
	const char *k, *v;
	size_t klen, vlen, end = l->n + ALOG_VALUE_MAX;
	unsigned it = 0;
	while (http_log_field_next(r, &it, &k, &klen, &v, &vlen) && l->n + 8 < end) {
		puts_(l, " ");
		put_esc_max(l, k, klen, 0, end - l->n);
		puts_(l, "=");
		put_esc_max(l, v, vlen, 0, end - l->n);
	}
}

/* "name":"value" (escaped), or "name":null when there is none. */
static void
json_str(struct line *l, const char *name, const char *s, size_t len)
{
	putf(l, ",\"%s\":", name);
	if (s == NULL || len == 0) {
		puts_(l, "null");
		return;
	}
	puts_(l, "\"");
	put_esc(l, s, len, 1);
	puts_(l, "\"");
}

static void
json_num(struct line *l, const char *name, int64_t v)
{
	if (v < 0)
		putf(l, ",\"%s\":null", name);
	else
		putf(l, ",\"%s\":%lld", name, (long long)v);
}

static void
put_json(struct line *l, const struct worker *w, const struct request *r,
    const struct fields *f, uint64_t usec)
{
	const struct req_log *lg = &r->log;
	int up = lg->up_addr[0] != '\0';

	putf(l, "{\"time\":\"%s\",\"remote_addr\":\"%s\"", w->isotime, f->peer);
	json_str(l, "request", f->line, f->line_len);
	putf(l, ",\"status\":%d,\"body_bytes\":%llu,\"request_time_us\":%llu", r->status,
	    (unsigned long long)r->body_bytes, (unsigned long long)usec);
	json_str(l, "referer", f->ref ? f->ref->value : NULL, f->ref ? f->ref->value_len : 0);
	json_str(l, "user_agent", f->ua ? f->ua->value : NULL, f->ua ? f->ua->value_len : 0);
	json_str(l, "request_id", lg->id, strlen(lg->id));
	json_str(l, "upstream_addr", lg->up_addr, strlen(lg->up_addr));
	json_num(l, "upstream_connect_us", up ? lg->up_connect_us : -1);
	json_num(l, "upstream_header_us", up ? lg->up_header_us : -1);
	json_num(l, "upstream_response_us", up ? lg->up_total_us : -1);
	json_str(l, "tls_version", f->tls_version, f->tls_version ? strlen(f->tls_version) : 0);
	json_str(l, "tls_cipher", f->tls_cipher, f->tls_cipher ? strlen(f->tls_cipher) : 0);
	json_str(l, "termination", f->term, f->term ? strlen(f->term) : 0);
	/* The middleware's fields (http_log_field), in an object of their own. */
	const char *k, *v;
	size_t klen, vlen, end = l->n + ALOG_VALUE_MAX;
	unsigned it = 0, n = 0;
	while (http_log_field_next(r, &it, &k, &klen, &v, &vlen) && l->n + 16 < end) {
		puts_(l, n++ == 0 ? ",\"fields\":{\"" : ",\"");
		put_esc_max(l, k, klen, 1, end - l->n);
		puts_(l, "\":\"");
		put_esc_max(l, v, vlen, 1, end - l->n);
		puts_(l, "\"");
	}
	if (n > 0)
		puts_(l, "}");
}

void
access_log_write(struct worker *w, const struct request *r, uint64_t usec)
{
	struct line l;
	struct fields f;

	l.n = 0;
	worker_update_time(w); /* no Date was made for an exchange cut short */
	gather(r, &f);
	switch (r->conn->conf->global.access_log_format) {
	case ACCESS_LOG_JSON:
		put_json(&l, w, r, &f, usec);
		put_end(&l, "}\n");
		break;
	case ACCESS_LOG_MAIN:
		put_main(&l, w, r, &f, usec);
		put_end(&l, "\n");
		break;
	default:
		put_combined(&l, w, r, &f);
		put_end(&l, "\n");
		break;
	}
	worker_access_log(w, l.b, l.n);
}
