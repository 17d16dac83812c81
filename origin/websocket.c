#include "origin/websocket.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/exchange.h"
#include "common/http_parse.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "common/server.h"
#include "common/units.h"
#include "common/ws.h"
#include "origin/chat.h"
#include "origin/room.h"
#include "origin/ws_conn.h"

#define WS_MAX_SUBPROTOCOLS 16
#define WS_MAX_ORIGINS 64
#define WS_MAX_MESSAGE_LIMIT (256ull << 20)  /* zlib counts in 32 bits; a frame is one buffer */
#define WS_MIN_BACKLOG (64 * 1024)           /* the transport's high-water mark */
/* Our compressor's memory level: 2^(8+9) bytes of hash and buffers, with
 * the window's 2^(15+2), about 256 KiB; one per worker and window size. */
#define WS_DEFLATE_MEMLEVEL 8

struct websocket_conf {
	const struct ws_mode *mode;
	struct ws_settings s;
	int compression;
	char *subprotocols[WS_MAX_SUBPROTOCOLS];
	unsigned nsub;
	char *origins[WS_MAX_ORIGINS];
	unsigned norigins;
	struct chat_hub *chat;        /* websocket = chat: the route's hub (chat.h) */
};

/* The worker's compressors, one per window size (9..15 bits), made on
 * first use.  Every connection announces server_no_context_takeover, so a
 * message's compression does not depend on what went before and one
 * stream serves all of the worker's connections, one message at a time. */
struct ws_worker {
	struct ws_zs deflate[16];
	struct chat_worker *chat;     /* room_workers of the hubs with members here */
};

static const struct conf_key websocket_keys[] = {
	{ "subprotocols", NULL, CONF_KEY_LIST, NULL },  /* none: no Sec-WebSocket-Protocol */
	{ "origins", NULL, CONF_KEY_LIST, NULL },       /* none: any Origin */
	{ "max_message", "1m", 0, NULL },
	{ "ping_interval", "30s", 0, NULL },
	{ "idle_timeout", "2m", 0, NULL },
	{ "compression", "on", 0, NULL },
	{ "max_backlog", "1m", 0, NULL },
	CHAT_KEYS,
	{ NULL, NULL, 0, NULL },
};

/* ----------------------------------------------------------------- echo */

static void
echo_message(struct ws_conn *wc, unsigned opcode, const uint8_t *data, size_t len)
{
	ws_conn_send(wc, opcode, data, len);
}

static const struct ws_mode echo_mode = {
	.name = "echo",
	.message = echo_message,
};

/*
 * test-fanout: the test suite's mode, there only when portico starts with
 * PORTICO_TEST_MODULES set (as type = test, common/mw_test.h); not for
 * users, and not in the man page.  A message "N text" comes back as N
 * messages "text", framed once into a struct room_msg and queued by
 * reference, as a chat room delivers: it drives ws_conn_send_ref and
 * max_backlog (close 1008).
 */
static void
fanout_release(void *arg)
{
	room_msg_release(arg);
}

static void
fanout_message(struct ws_conn *wc, unsigned opcode, const uint8_t *data, size_t len)
{
	struct ws_buf b = { 0 };
	unsigned n = 0;
	size_t i = 0;

	while (i < len && data[i] >= '0' && data[i] <= '9' && n < 100000)
		n = n * 10 + (unsigned)(data[i++] - '0');
	if (i < len && data[i] == ' ')
		i++;
	if (ws_encode_message(ws_conn_deflater(wc), opcode, data + i, len - i, &b) == 0) {
		struct room_msg *msg = room_msg_new(b.p, b.len);
		for (unsigned k = 0; msg != NULL && k < n; k++) {
			room_msg_hold(msg);
			if (ws_conn_send_ref(wc, msg->data, msg->len, fanout_release, msg) < 0)
				break;
		}
		if (msg != NULL)
			room_msg_release(msg);
	}
	ws_buf_free(&b);
}

static const struct ws_mode fanout_mode = {
	.name = "test-fanout",
	.message = fanout_message,
};

static const struct ws_mode *const modes[] = { &echo_mode, &chat_mode, &fanout_mode, NULL };

/* -------------------------------------------------------- configuration */

static void
websocket_free(void *p)
{
	struct websocket_conf *wc = p;

	if (wc == NULL)
		return;
	for (unsigned i = 0; i < wc->nsub; i++)
		free(wc->subprotocols[i]);
	for (unsigned i = 0; i < wc->norigins; i++)
		free(wc->origins[i]);
	chat_hub_put(wc->chat);
	free(wc);
}

/* The members of every line of a list key into v (at most max). */
static int
parse_list(struct conf_ctx *ctx, const struct conf_route *rt, const char *key, char **v,
    unsigned *n, unsigned max, int origins)
{
	struct conf_kv def;
	const struct conf_kv *k;

	for (k = conf_route_list(rt, websocket_keys, key, NULL, &def); k != NULL;
	    k = conf_route_list(rt, websocket_keys, key, k, &def)) {
		const char *p = k->value, *tok;
		size_t len;
		while (conf_list_next(&p, &tok, &len)) {
			int ok = 1;
			for (size_t i = 0; i < len && ok; i++)
				ok = origins ? tok[i] > 0x20 && tok[i] < 0x7f :
				    http_tchar[(unsigned char)tok[i]];
			if (!ok) {
				conf_err(ctx, k->line, ctx->section, key, "\"%.*s\" is not %s",
				    (int)len, tok, origins ? "an origin" : "a token");
				return -1;
			}
			if (*n == max) {
				conf_err(ctx, k->line, ctx->section, key, "more than %u values", max);
				return -1;
			}
			if ((v[*n] = strndup(tok, len)) == NULL) {
				conf_err(ctx, k->line, ctx->section, key, "out of memory");
				return -1;
			}
			(*n)++;
		}
	}
	return 0;
}

static int
websocket_configure(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv)
{
	struct websocket_conf *wc = calloc(1, sizeof(*wc));
	const struct conf_kv *k;
	struct conf_kv def;
	int bad = 0;

	if (wc == NULL)
		return -1;
	rt->hconf = wc;
	for (unsigned i = 0; modes[i] != NULL; i++)
		if (strcmp(kv->value, modes[i]->name) == 0 &&
		    (modes[i] != &fanout_mode || getenv("PORTICO_TEST_MODULES") != NULL))
			wc->mode = modes[i];
	if (wc->mode == NULL) {
		conf_err(ctx, kv->line, ctx->section, "websocket", "expected echo or chat, not \"%s\"",
		    kv->value);
		bad = 1;
	}
	k = conf_route_value(rt, websocket_keys, "max_message", &def);
	if (units_size(k->value, &wc->s.max_message) < 0 || wc->s.max_message == 0 ||
	    wc->s.max_message > WS_MAX_MESSAGE_LIMIT) {
		conf_err(ctx, k->line, ctx->section, "max_message",
		    "expected a size from 1 to 256m, not \"%s\"", k->value);
		bad = 1;
	}
	k = conf_route_value(rt, websocket_keys, "max_backlog", &def);
	if (units_size(k->value, &wc->s.max_backlog) < 0 || wc->s.max_backlog < WS_MIN_BACKLOG ||
	    wc->s.max_backlog > (1ull << 30)) {
		conf_err(ctx, k->line, ctx->section, "max_backlog",
		    "expected a size from 64k to 1g, not \"%s\"", k->value);
		bad = 1;
	}
	k = conf_route_value(rt, websocket_keys, "ping_interval", &def);
	if (units_duration(k->value, &wc->s.ping_interval) < 0) {
		conf_err(ctx, k->line, ctx->section, "ping_interval",
		    "expected a duration (0 for none), not \"%s\"", k->value);
		bad = 1;
	}
	k = conf_route_value(rt, websocket_keys, "idle_timeout", &def);
	if (units_duration(k->value, &wc->s.idle_timeout) < 0) {
		conf_err(ctx, k->line, ctx->section, "idle_timeout",
		    "expected a duration (0 for none), not \"%s\"", k->value);
		bad = 1;
	}
	k = conf_route_value(rt, websocket_keys, "compression", &def);
	if (units_bool(k->value, &wc->compression) < 0) {
		conf_err(ctx, k->line, ctx->section, "compression", "expected on or off, not \"%s\"",
		    k->value);
		bad = 1;
	}
	if (parse_list(ctx, rt, "subprotocols", wc->subprotocols, &wc->nsub,
	    WS_MAX_SUBPROTOCOLS, 0) < 0)
		bad = 1;
	if (parse_list(ctx, rt, "origins", wc->origins, &wc->norigins, WS_MAX_ORIGINS, 1) < 0)
		bad = 1;
	if (wc->mode == &chat_mode && !bad) {
		if (chat_configure(ctx, rt, websocket_keys, wc->s.max_message, wc->s.max_backlog,
		    &wc->chat) < 0)
			bad = 1;
	} else if (wc->mode != NULL && wc->mode != &chat_mode && chat_keys_given(rt)) {
		conf_err(ctx, kv->line, ctx->section, "websocket", "notices, backplane and "
		    "backplane_prefix go with websocket = chat only");
		bad = 1;
	}
	return bad ? -1 : 0;
}

/* A snapshot goes into service: its chat route's hub runs (main thread). */
static void
websocket_route_start(struct conf_route *rt)
{
	struct websocket_conf *wc = rt->hconf;

	if (wc != NULL && wc->chat != NULL)
		chat_hub_start(wc->chat);
}

static void
websocket_route_status(const struct conf_route *rt, struct sbuf *out)
{
	const struct websocket_conf *wc = rt->hconf;

	if (wc->chat != NULL)
		chat_hub_status(wc->chat, out);
	else
		sbuf_printf(out, "{\"mode\":\"%s\"}", wc->mode->name);
}

static void *
websocket_worker_new(void)
{
	struct ws_worker *ww = calloc(1, sizeof(*ww));

	for (int i = 0; ww != NULL && i < 16; i++)
		ws_zs_init(&ww->deflate[i], 1, i < 9 ? 9 : i, WS_DEFLATE_MEMLEVEL, 0);
	return ww;
}

static void
websocket_worker_free(void *p)
{
	struct ws_worker *ww = p;

	for (int i = 0; ww != NULL && i < 16; i++)
		ws_zs_free(&ww->deflate[i]);
	if (ww != NULL)
		chat_worker_free(ww->chat);
	free(ww);
}

/* ------------------------------------------------------------ handshake */

/* Whether a header named name (lower case) lists token (any case). */
static int
header_has_token(const struct request *r, const char *name, const char *token)
{
	const struct http_header *h;
	unsigned it = 0;

	while (req_header_next(r, &it, &h)) {
		const char *p, *tok;
		size_t len;
		if (!http_token_eq(h->name, h->name_len, name))
			continue;
		for (p = h->value; http_list_next(&p, h->value + h->value_len, &tok, &len);)
			if (len == strlen(token) && strncasecmp(tok, token, len) == 0)
				return 1;
	}
	return 0;
}

/* The only header named name: 1 with it, 0 if none, -1 if several. */
static int
header_once(const struct request *r, const char *name, const struct http_header **out)
{
	const struct http_header *h;
	unsigned it = 0;
	int n = 0;

	while (req_header_next(r, &it, &h))
		if (http_token_eq(h->name, h->name_len, name) && n++ == 0)
			*out = h;
	return n > 1 ? -1 : n;
}

/* The first protocol the client offers that the route has, or NULL. */
static const char *
pick_subprotocol(const struct request *r, const struct websocket_conf *wc)
{
	const struct http_header *h;
	unsigned it = 0;

	while (wc->nsub > 0 && req_header_next(r, &it, &h)) {
		const char *p, *tok;
		size_t len;
		if (!http_token_eq(h->name, h->name_len, "sec-websocket-protocol"))
			continue;
		for (p = h->value; http_list_next(&p, h->value + h->value_len, &tok, &len);)
			for (unsigned i = 0; i < wc->nsub; i++)
				if (strlen(wc->subprotocols[i]) == len &&
				    memcmp(wc->subprotocols[i], tok, len) == 0)
					return wc->subprotocols[i];
	}
	return NULL;
}

static int
origin_allowed(const struct request *r, const struct websocket_conf *wc)
{
	const struct http_header *h = req_header(r, "origin");

	/* Browsers always send Origin; the list guards against other sites'
	 * pages, and a client that is no browser could send any value. */
	if (wc->norigins == 0 || h == NULL)
		return 1;
	for (unsigned i = 0; i < wc->norigins; i++)
		if (strlen(wc->origins[i]) == h->value_len &&
		    strncasecmp(wc->origins[i], h->value, h->value_len) == 0)
			return 1;
	return 0;
}

/* Refuses a handshake: status (400, 403, 404, 426), logged at debug level
 * (a client's mistake, as other refused requests). */
static void
refuse(struct request *r, int status, const char *why)
{
	http_req_term(r, REQ_TERM_BAD_REQUEST);
	log_debug("conn %d: websocket handshake refused (%d): %s", r->conn->fd, status, why);
	if (status == 426)
		http_resp_error_hdr(r, 426, "Sec-WebSocket-Version", "13");
	else
		http_resp_error(r, status);
}

/* What is wrong with a WebSocket handshake (RFC 6455 4.2.1), with the
 * status it gets; NULL when it may be answered 101 (accept and the
 * negotiated extension filled in). */
static const char *
handshake_check(struct request *r, const struct websocket_conf *wc, char accept[29],
    const struct ws_pmd_policy *pol, struct ws_pmd *pmd, int *status)
{
	const struct http_header *key = NULL, *ver = NULL, *h;
	unsigned it = 0;

	*status = 400;
	/* HTTP/2's extended CONNECT (RFC 8441) arrives as this GET too. */
	if (r->hr->meth != HTTP_M_GET || r->hr->version < 11)
		return "not GET over HTTP/1.1 or HTTP/2";
	if (!header_has_token(r, "connection", "upgrade"))
		return "Connection without upgrade";
	if (header_once(r, "sec-websocket-version", &ver) != 1)
		return "Sec-WebSocket-Version missing or repeated";
	if (ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0) {
		*status = 426;
		return "Sec-WebSocket-Version not 13";
	}
	if (header_once(r, "sec-websocket-key", &key) != 1 ||
	    ws_accept_key(key->value, key->value_len, accept) < 0)
		return "bad Sec-WebSocket-Key";
	if (!origin_allowed(r, wc)) {
		*status = 403;
		return "Origin not allowed";
	}
	while (wc->compression && req_header_next(r, &it, &h))
		if (http_token_eq(h->name, h->name_len, "sec-websocket-extensions") &&
		    ws_ext_negotiate(h->value, h->value_len, pol, pmd) < 0)
			return "bad Sec-WebSocket-Extensions";
	return NULL;
}

static void
websocket_start(struct request *r)
{
	const struct websocket_conf *wc = r->route->hconf;
	struct ws_pmd_policy pol = { .server_no_ctx = 1, .client_no_ctx = 1, .client_wbits = 15 };
	struct ws_pmd pmd = { 0 };
	char accept[29], ext[160];
	const char *why;
	int status;

	if (!header_has_token(r, "upgrade", "websocket")) {
		/* Not a WebSocket handshake: say what this resource speaks. */
		if (r->hr->meth != HTTP_M_GET && r->hr->meth != HTTP_M_HEAD) {
			http_resp_error(r, 405);
			return;
		}
		http_resp_error_hdr(r, 426, "Upgrade", "websocket");
		return;
	}
	if ((why = handshake_check(r, wc, accept, &pol, &pmd, &status)) != NULL) {
		refuse(r, status, why);
		return;
	}
	if (r->conn->w->draining) {
		http_resp_error(r, 503);
		return;
	}
	struct ws_worker *ww = worker_handler_state(r->conn->w, &websocket_ops);
	struct chat_member *cm = NULL;
	char room[ROOM_NAME_MAX + 1];
	if (wc->chat != NULL) {
		if (chat_room_name(r->hr->path, r->hr->path_len, r->route->path_len, room) < 0) {
			refuse(r, 404, "no room name, or a bad one");
			return;
		}
		if (ww == NULL || chat_hub_running(wc->chat) == 0 ||
		    (cm = chat_member_new(wc->chat)) == NULL) {
			http_resp_error(r, 503);
			return;
		}
	}
	struct ws_zs *deflater = NULL;
	if (pmd.on) {
		if (ww == NULL || ws_pmd_response(&pmd, ext, sizeof(ext)) == 0)
			pmd.on = 0;
		else
			deflater = &ww->deflate[pmd.server_wbits];
	}
	const char *proto = pick_subprotocol(r, wc);
	http_resp_start(r, 101, NULL, -1);
	http_resp_header(r, "Upgrade", "websocket");
	http_resp_header(r, "Connection", "Upgrade");
	http_resp_header(r, "Sec-WebSocket-Accept", accept);
	if (proto != NULL)
		http_resp_header(r, "Sec-WebSocket-Protocol", proto);
	if (pmd.on)
		http_resp_header(r, "Sec-WebSocket-Extensions", ext);
	struct event_base *base = r->conn->env->base;
	struct ws_conn *conn = ws_conn_open(r, &wc->s, wc->mode, cm, &pmd, deflater);
	if (cm != NULL && conn == NULL)
		chat_member_free(cm);
	else if (cm != NULL)
		chat_join(conn, cm, room, &ww->chat, base);
}

const struct handler_ops websocket_ops = {
	.name = "websocket",
	.key = "websocket",
	.keys = websocket_keys,
	.configure = websocket_configure,
	.free_conf = websocket_free,
	.route_start = websocket_route_start,
	.route_status = websocket_route_status,
	.start = websocket_start,
	.worker_new = websocket_worker_new,
	.worker_free = websocket_worker_free,
};
