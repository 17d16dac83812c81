/*
 * accesslog: one line per exchange, in the configured format, queued on
 * the worker (written once a second or when 32 KiB gather).
 */
#include "common/accesslog.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "common/exchange.h"
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

void
access_log_write(struct worker *w, const struct request *r, uint64_t usec)
{
	const struct conn *c = r->conn;
	const struct http_request *hr = r->hr;
	const struct http_header *ref = NULL, *ua = NULL;
	char line[4096], peer[INET6_ADDRSTRLEN];
	size_t n = 0;
	int json = w->conf->global.access_log_format == ACCESS_LOG_JSON;

	if (hr != NULL && hr->state != 0) {
		ref = req_header(r, "referer");
		ua = req_header(r, "user-agent");
	}
	conn_peer(c, peer, sizeof(peer));
	const char *rl = hr != NULL ? hr->line : NULL;
	size_t rll = hr != NULL && hr->line != NULL ? hr->line_len : 0;
	if (json) {
		n = (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\",\"remote_addr\":\"%s\","
		    "\"request\":\"", w->logtime, peer);
		n = log_escape(line, sizeof(line) - 200, n, rl, rll, json);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"status\":%d,\"body_bytes\":%llu,"
		    "\"request_time_us\":%llu,\"referer\":\"", r->status,
		    (unsigned long long)r->body_bytes, (unsigned long long)usec);
		n = log_escape(line, sizeof(line) - 100, n, ref ? ref->value : NULL, ref ? ref->value_len : 0, json);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"user_agent\":\"");
		n = log_escape(line, sizeof(line) - 8, n, ua ? ua->value : NULL, ua ? ua->value_len : 0, json);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\"}\n");
	} else {
		n = (size_t)snprintf(line, sizeof(line), "%s - - [%s] \"", peer, w->logtime);
		n = log_escape(line, sizeof(line) - 200, n, rl, rll, json);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\" %d %llu \"", r->status,
		    (unsigned long long)r->body_bytes);
		n = log_escape(line, sizeof(line) - 100, n, ref ? ref->value : NULL, ref ? ref->value_len : 0, json);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\" \"");
		n = log_escape(line, sizeof(line) - 8, n, ua ? ua->value : NULL, ua ? ua->value_len : 0, json);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\"\n");
	}
	if (n > sizeof(line))
		n = sizeof(line);
	worker_access_log(w, line, n);
}
