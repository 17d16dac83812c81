/*
 * Unit tests for origin/chat.c: room names from request paths (decoding,
 * what is refused), and the hub registry: a second snapshot whose chat
 * route keeps its name and keys shares the first one's hub, one that
 * changes a key gets its own (with a warning), and the last reference
 * frees it.
 */
#include "origin/chat.h"
#include "common/config.h"
#include "t/unit/tap.h"

#include <stdio.h>
#include <string.h>

static int
name_of(const char *path, size_t prefix_len, char *out)
{
	return chat_room_name(path, strlen(path), prefix_len, out);
}

static void
test_names(void)
{
	char n[ROOM_NAME_MAX + 1], path[300];

	ok(name_of("/chat/lobby", 6, n) == 0 && strcmp(n, "lobby") == 0, "/chat/lobby: lobby");
	ok(name_of("/chat/caf%C3%a9", 6, n) == 0 && strcmp(n, "caf\xc3\xa9") == 0,
	    "percent-encoded UTF-8 decoded, either case of hex");
	ok(name_of("/chat/lobby", 5, n) == 0 && strcmp(n, "lobby") == 0,
	    "a prefix without its slash: the slash is not part of the name");
	ok(name_of("/chat/a%20b~-._!", 6, n) == 0 && strcmp(n, "a b~-._!") == 0, "spaces and marks");
	is(name_of("/chat/", 6, n), -1, "no name");
	is(name_of("/chat/a/b", 6, n), -1, "a slash");
	is(name_of("/chat/a%2fb", 6, n), -1, "an encoded slash");
	is(name_of("/chat/a%0ab", 6, n), -1, "a control character");
	is(name_of("/chat/a%7f", 6, n), -1, "DEL");
	is(name_of("/chat/%ff", 6, n), -1, "not UTF-8");
	is(name_of("/chat/%e2%82", 6, n), -1, "a cut UTF-8 sequence");
	is(name_of("/chat/%ed%a0%80", 6, n), -1, "a surrogate");
	is(name_of("/chat/%4", 6, n), -1, "a cut escape");
	is(name_of("/chat/%zz", 6, n), -1, "a bad escape");
	snprintf(path, sizeof(path), "/c/%0200d", 0);
	ok(name_of(path, 3, n) == 0 && strlen(n) == 200, "200 bytes");
	snprintf(path, sizeof(path), "/c/%0201d", 0);
	is(name_of(path, 3, n), -1, "201 bytes");
	snprintf(path, sizeof(path), "/c/%%41%0199d", 0);
	ok(name_of(path, 3, n) == 0 && strlen(n) == 200, "200 bytes after decoding");
}

static const struct conf_key keys[] = { CHAT_KEYS, { NULL, NULL, 0, NULL } };

/* Route name's hub as a snapshot's configure would get it, with notices
 * given as written (NULL: not given). */
static struct chat_hub *
configure(const char *name, const char *notices, struct conf_ctx *ctx)
{
	struct conf_kv kv = { .key = "notices", .value = (char *)notices, .line = 3 };
	struct conf_route rt = { .name = (char *)name, .line = 2, .kv = &kv, .nkv = notices != NULL };
	struct chat_hub *ch = NULL;

	memset(ctx, 0, sizeof(*ctx));
	ctx->file = "t.ini";
	ctx->section = "route:c";
	if (chat_configure(ctx, &rt, keys, 1 << 20, 1 << 20, &ch) < 0)
		return NULL;
	return ch;
}

static void
test_registry(void)
{
	struct conf_ctx ctx1, ctx2, ctx3, ctx4, ctx5;
	struct chat_hub *c1 = configure("c", NULL, &ctx1), *d1 = configure("d", NULL, &ctx2);
	struct chat_hub *c2, *c3, *c4;

	ok(c1 != NULL && d1 != NULL && c1 != d1, "each route has a hub of its own");
	ok(!chat_hub_running(c1), "configure makes none run (as -t loads)");
	chat_hub_start(c1);
	ok(chat_hub_running(c1), "chat_hub_start (route_start) makes it run");
	c2 = configure("c", "off", &ctx3);
	ok(c2 == c1 && ctx3.nwarnings == 0, "the same route and keys again share the running hub "
	    "(a reload keeps the rooms), without a warning");
	c3 = configure("c", "on", &ctx4);
	ok(c3 != NULL && c3 != c1 && !chat_hub_running(c3), "notices changed: a hub of its own");
	ok(ctx4.nwarnings == 1 && strstr(ctx4.warnings[0], "t.ini:2: [route:c] websocket: its chat "
	    "settings changed") != NULL, "and a warning says so: %s",
	    ctx4.nwarnings > 0 ? ctx4.warnings[0] : "none");
	chat_hub_put(c1);
	ok(chat_hub_running(c2), "one reference let go: the hub runs on for the other");
	chat_hub_put(c2);
	chat_hub_put(c3);
	c4 = configure("c", NULL, &ctx5);
	ok(c4 != NULL && !chat_hub_running(c4), "the last reference freed it: the route's next "
	    "hub is a new one");
	chat_hub_put(c4);
	chat_hub_put(d1);
	conf_ctx_free(&ctx1);
	conf_ctx_free(&ctx2);
	conf_ctx_free(&ctx3);
	conf_ctx_free(&ctx4);
	conf_ctx_free(&ctx5);
}

int
main(void)
{
	test_names();
	test_registry();
	return done_testing();
}
