/*
 * chat: `websocket = chat` (see chat.h for hubs, reloads and workers).
 */
#include "origin/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/http_parse.h"
#include "common/log.h"
#include "common/ratelimit_redis.h"
#include "common/sbuf.h"
#include "common/units.h"
#include "common/ws.h"
#include "origin/ws_conn.h"

#define PREFIX_MAX 128                 /* backplane.c's bound */
#define KEY_MAX (CONF_MAX_NAME + PREFIX_MAX + 400)
#define WS_CLOSE_UNSUPPORTED 1003          /* RFC 6455 7.4.1: a binary message */
#define WS_CLOSE_TRY_AGAIN 1013            /* IANA registry: the backplane's queue is full */

/*
 * One hub and the settings it was made with, shared by every snapshot
 * whose route has the same name and settings.  refs and the list are the
 * main thread's (configure, chat_hub_put at config_free); workers read
 * hub, written before they see any snapshot holding this.
 */
struct chat_hub {
	struct chat_hub *next;
	unsigned refs;
	struct room_hub_conf conf;     /* its strings are ours */
	struct room_hub *hub;          /* NULL until chat_hub_start */
	char *route;
	char key[];                    /* route name and settings, for sharing */
};

/* The process's hubs, for reloads to find the running ones in. */
static struct chat_registry {
	struct chat_hub *hubs;
} chat_registry;

/* A worker's room_worker on one hub, for as long as it has members of it. */
struct chat_worker {
	struct chat_worker *next;
	struct chat_hub *ch;
	struct room_worker *rw;
	unsigned members;
};

/* The mode data of a chat connection. */
struct chat_member {
	struct chat_hub *ch;
	struct room_member *m;         /* NULL before the join, and once dropped */
	struct chat_worker **list;     /* the worker's, and our entry in it */
	struct chat_worker *cw;
};

/* ------------------------------------------------------------- messages */

/* The hub's encoder: one unmasked text frame, never compressed, so one
 * encoding serves every member whatever it negotiated (permessage-deflate
 * allows uncompressed messages) and any thread may make it. */
static struct room_msg *
chat_encode(void *arg, const char *text, size_t len)
{
	uint8_t hdr[WS_HEADER_MAX];
	size_t hl = ws_frame_header(hdr, 1, 0, WS_OP_TEXT, len);
	struct room_msg *msg = room_msg_alloc(hl + len, hl);

	(void)arg;
	if (msg != NULL) {
		memcpy(msg->data, hdr, hl);
		if (len > 0)
			memcpy(msg->data + hl, text, len);
	}
	return msg;
}

static void
msg_release(void *arg)
{
	room_msg_release(arg);
}

/* The member's deliver: the frame by reference, held once for it. */
static size_t
chat_deliver(void *member, struct room_msg *msg, uint64_t seq)
{
	struct ws_conn *wc = member;

	(void)seq;
	room_msg_hold(msg);
	ws_conn_send_ref(wc, msg->data, msg->len, msg_release, msg);
	return ws_conn_backlog(wc);
}

static void
chat_drop(void *member, int code)
{
	struct ws_conn *wc = member;
	struct chat_member *cm = ws_conn_data(wc);

	cm->m = NULL; /* the hub has let go of it */
	ws_conn_fail(wc, (uint16_t)code, "chat member dropped: it does not read (backlog over "
	    "max_backlog)");
}

static const struct room_member_ops chat_member_ops = {
	.deliver = chat_deliver,
	.drop = chat_drop,
};

static void
chat_message(struct ws_conn *wc, unsigned opcode, const uint8_t *data, size_t len)
{
	struct chat_member *cm = ws_conn_data(wc);
	struct room_msg *msg;

	if (opcode != WS_OP_TEXT) {
		/* The backplane carries text, and so does the page. */
		ws_conn_close(wc, WS_CLOSE_UNSUPPORTED, "only text messages are relayed");
		return;
	}
	if (cm->m == NULL)
		return;       /* dropped: its close is on its way */
	if ((msg = room_msg_text(cm->ch->hub, (const char *)data, len)) == NULL) {
		ws_conn_close(wc, WS_CLOSE_INTERNAL, "out of memory");
		return;
	}
	if (room_publish(cm->m, msg) < 0)
		ws_conn_close(wc, WS_CLOSE_TRY_AGAIN, "the room cannot take more now");
	room_msg_release(msg);
}

/* The connection goes: out of its room, and the worker's room_worker
 * goes with its last member (not inside a delivery: a close is never
 * made from one). */
static void
chat_gone(struct ws_conn *wc)
{
	struct chat_member *cm = ws_conn_data(wc);
	struct chat_worker **pp;

	if (cm == NULL)
		return;
	if (cm->m != NULL)
		room_leave(cm->m);
	cm->m = NULL;
	if (cm->cw != NULL && --cm->cw->members == 0) {
		for (pp = cm->list; *pp != cm->cw; pp = &(*pp)->next)
			;
		*pp = cm->cw->next;
		room_worker_stop(cm->cw->rw);
		free(cm->cw);
	}
	chat_member_free(cm);
}

const struct ws_mode chat_mode = {
	.name = "chat",
	.message = chat_message,
	.gone = chat_gone,
};

struct chat_member *
chat_member_new(struct chat_hub *ch)
{
	struct chat_member *cm = calloc(1, sizeof(*cm));

	if (cm != NULL)
		cm->ch = ch;
	return cm;
}

void
chat_member_free(struct chat_member *cm)
{
	free(cm);
}

void
chat_join(struct ws_conn *wc, struct chat_member *cm, const char *room,
    struct chat_worker **list, struct event_base *base)
{
	struct chat_worker *cw;

	for (cw = *list; cw != NULL && cw->ch != cm->ch; cw = cw->next)
		;
	if (cw == NULL && (cw = calloc(1, sizeof(*cw))) != NULL) {
		cw->ch = cm->ch;
		if ((cw->rw = room_worker_start(cm->ch->hub, base)) == NULL) {
			free(cw);
			cw = NULL;
		} else {
			cw->next = *list;
			*list = cw;
		}
	}
	if (cw == NULL) {
		ws_conn_close(wc, WS_CLOSE_INTERNAL, "cannot join the room");
		return;
	}
	cm->list = list;
	cm->cw = cw;
	cw->members++;
	if ((cm->m = room_join(cw->rw, room, wc, &chat_member_ops)) == NULL)
		ws_conn_close(wc, WS_CLOSE_INTERNAL, "cannot join the room");
}

void
chat_worker_free(struct chat_worker *list)
{
	struct chat_worker *next;

	for (; list != NULL; list = next) {
		next = list->next;
		room_worker_stop(list->rw);
		free(list);
	}
}

/* ----------------------------------------------------------- room names */

/*
 * A room is named by the rest of the path, percent-decoded: 1 to 200
 * bytes of UTF-8 without control characters and without '/' (written or
 * encoded), so a path one segment below the prefix names one room and
 * what a browser's encodeURIComponent makes of any name comes back whole.
 */
int
chat_room_name(const char *path, size_t len, size_t prefix_len, char name[ROOM_NAME_MAX + 1])
{
	struct ws_utf8 u;
	size_t n = 0;

	if (prefix_len < len && path[prefix_len] == '/' && prefix_len > 0 &&
	    path[prefix_len - 1] != '/')
		prefix_len++;         /* "path = /chat" and "/chat/lobby" */
	for (size_t i = prefix_len; i < len; i++) {
		int c = (unsigned char)path[i];
		if (c == '%') {
			int hi = i + 2 < len ? http_hexval(path[i + 1]) : -1;
			int lo = i + 2 < len ? http_hexval(path[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || c == '/' || n == ROOM_NAME_MAX)
			return -1;
		name[n++] = (char)c;
	}
	name[n] = '\0';
	ws_utf8_init(&u);
	if (n == 0 || ws_utf8_feed(&u, name, n) < 0 || ws_utf8_done(&u) < 0)
		return -1;
	return 0;
}

/* -------------------------------------------------------- configuration */

/* notices = off, its default, is let through: -T writes it for every
 * websocket route. */
int
chat_keys_given(const struct conf_route *rt)
{
	const struct conf_kv *n = conf_route_kv(rt, "notices");

	return (n != NULL && strcmp(n->value, "off") != 0) || conf_route_kv(rt, "backplane") != NULL ||
	    conf_route_kv(rt, "backplane_prefix") != NULL;
}

static void
hub_free(struct chat_hub *ch)
{
	room_hub_free(ch->hub);
	free((char *)ch->conf.backplane);
	free((char *)ch->conf.prefix);
	free(ch->route);
	free(ch);
}

/* The registry's hub for route name and key, with a reference for the
 * caller (made if needed), or NULL when out of memory.  *changed: a hub
 * of that route with other settings is running. */
static struct chat_hub *
hub_get(const char *route, const char *key, const struct room_hub_conf *conf, int *changed)
{
	struct chat_hub *ch;

	*changed = 0;
	for (ch = chat_registry.hubs; ch != NULL; ch = ch->next) {
		if (strcmp(ch->key, key) == 0) {
			ch->refs++;
			return ch;
		}
		if (strcmp(ch->route, route) == 0 && ch->hub != NULL)
			*changed = 1;
	}
	if ((ch = calloc(1, sizeof(*ch) + strlen(key) + 1)) == NULL)
		return NULL;
	strcpy(ch->key, key);
	ch->conf = *conf;
	ch->conf.encode = chat_encode;
	ch->conf.backplane = conf->backplane != NULL ? strdup(conf->backplane) : NULL;
	ch->conf.prefix = strdup(conf->prefix);
	ch->route = strdup(route);
	if (ch->route == NULL || ch->conf.prefix == NULL ||
	    (conf->backplane != NULL && ch->conf.backplane == NULL)) {
		hub_free(ch);
		return NULL;
	}
	ch->refs = 1;
	ch->next = chat_registry.hubs;
	chat_registry.hubs = ch;
	return ch;
}

void
chat_hub_put(struct chat_hub *ch)
{
	struct chat_hub **pp;

	if (ch == NULL || --ch->refs > 0)
		return;
	for (pp = &chat_registry.hubs; *pp != ch; pp = &(*pp)->next)
		;
	*pp = ch->next;
	hub_free(ch);
}

void
chat_hub_start(struct chat_hub *ch)
{
	const char *why;

	if (ch->hub != NULL)
		return;
	if ((ch->hub = room_hub_new(&ch->conf, &why)) == NULL)
		log_error("route %s: cannot make its chat rooms: %s; joins are refused (503)",
		    ch->route, why);
}

int
chat_hub_running(const struct chat_hub *ch)
{
	return ch->hub != NULL;
}

void
chat_hub_status(const struct chat_hub *ch, struct sbuf *out)
{
	struct sbuf b = { 0 };

	if (ch->hub == NULL) {
		sbuf_str(out, "{\"mode\":\"chat\",\"rooms\":0,\"members\":0,\"backplane\":\"off\","
		    "\"by_room\":{}}");
		return;
	}
	room_hub_status(ch->hub, &b);
	if (sbuf_failed(&b) || b.len < 2) {
		sbuf_str(out, "{\"mode\":\"chat\"}");
	} else {
		sbuf_str(out, "{\"mode\":\"chat\",");
		sbuf_add(out, b.p + 1, b.len - 1);
	}
	sbuf_free(&b);
}

int
chat_configure(struct conf_ctx *ctx, const struct conf_route *rt, const struct conf_key *keys,
    uint64_t max_message, uint64_t max_backlog, struct chat_hub **out)
{
	struct room_hub_conf hc = { .max_backlog = max_backlog, .max_text = max_message };
	const struct conf_kv *k;
	struct conf_kv def;
	char key[KEY_MAX];
	int bad = 0, changed;

	k = conf_route_value(rt, keys, "notices", &def);
	if (units_bool(k->value, &hc.notices) < 0) {
		conf_err(ctx, k->line, ctx->section, "notices", "expected on or off, not \"%s\"",
		    k->value);
		bad = 1;
	}
	if ((k = conf_route_value(rt, keys, "backplane", &def)) != NULL &&
	    strcmp(k->value, "none") != 0 && strcmp(k->value, "off") != 0) {
		struct rl_redis addr = { 0 };
		const char *why = "expected redis://HOST:PORT";
		if (strncmp(k->value, "redis://", 8) != 0 ||
		    rl_redis_parse(k->value, &addr, &why) < 0) {
			conf_err(ctx, k->line, ctx->section, "backplane", "%s, not \"%s\"", why,
			    k->value);
			bad = 1;
		}
		rl_redis_clear(&addr);
		hc.backplane = k->value;
	}
	k = conf_route_value(rt, keys, "backplane_prefix", &def);
	hc.prefix = k->value;
	if (strlen(k->value) > PREFIX_MAX) {
		conf_err(ctx, k->line, ctx->section, "backplane_prefix",
		    "longer than %d bytes", PREFIX_MAX);
		bad = 1;
	}
	if (bad)
		return -1;
	snprintf(key, sizeof(key), "%s\n%llu %llu %d\n%s\n%s", rt->name,
	    (unsigned long long)max_backlog, (unsigned long long)max_message, hc.notices,
	    hc.backplane != NULL ? hc.backplane : "", hc.prefix);
	if ((*out = hub_get(rt->name, key, &hc, &changed)) == NULL)
		return -1;
	if (changed)
		conf_warn(ctx, rt->line, ctx->section, "websocket", "its chat settings changed: "
		    "members who joined before are in rooms of their own until they reconnect");
	return 0;
}
