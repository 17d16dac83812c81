/*
 * chat: `websocket = chat`, rooms of WebSocket members on origin/room.h's
 * hub.  websocket.c does the handshake and calls in here for what is the
 * chat's own: its route keys, the room name in the path, the hub of each
 * route, the per-worker room_worker and the connection's mode.
 *
 * Hubs and reloads.  A chat route's hub (its rooms, and its backplane
 * thread and Redis connections) belongs to a process-wide registry, keyed
 * by the route's name and the settings the hub was made with (max_backlog,
 * max_message, notices, backplane, backplane_prefix).  Each snapshot's
 * route holds a reference: a reload whose route keeps its name and those
 * settings shares the running hub, so members connected before it and
 * members who join after it are in the same rooms.  When the settings
 * change, the new snapshot gets a new hub (a warning says so) and the old
 * one lives, with its members, until the last snapshot using it is freed.
 * configure only registers (portico -t makes no hub and starts no thread);
 * chat_conf_start makes the hub, on the main thread, before any worker
 * sees the snapshot.  All of the registry is the main thread's.
 *
 * Workers.  A worker starts its room_worker for a hub on its first member
 * of it and stops it when its last member of it goes (from the member's
 * connection's close, never inside a delivery), so a hub is only freed
 * once no worker has a room_worker on it: every member's connection holds
 * the snapshot that holds the hub.
 */
#ifndef PORTICO_CHAT_H
#define PORTICO_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "origin/room.h"

struct conf_ctx;
struct conf_key;
struct conf_route;
struct event_base;
struct request;
struct sbuf;
struct ws_conn;
struct chat_hub;
struct chat_worker;

/* The route keys of a chat route (in websocket.c's table), and whether rt
 * gives one of them other than as its default (an error on any other
 * mode). */
#define CHAT_KEYS \
	{ "notices", "off", 0, NULL }, \
	{ "backplane", NULL, 0, NULL }, \
	{ "backplane_prefix", "portico:room:", 0, "backplane" }
int chat_keys_given(const struct conf_route *rt);

/*
 * Reads the chat keys of rt (keys is the handler's table) and registers
 * the route's hub: *out holds a reference on it, freed by chat_hub_put.
 * Errors go to ctx; returns 0 or -1.  Main thread.
 */
int chat_configure(struct conf_ctx *ctx, const struct conf_route *rt,
    const struct conf_key *keys, uint64_t max_message, uint64_t max_backlog,
    struct chat_hub **out);
/* Drops a reference; the last one frees the hub.  Main thread. */
void chat_hub_put(struct chat_hub *ch);
/* Makes the hub if it is not running yet (logged if it cannot be). */
void chat_hub_start(struct chat_hub *ch);
/* Whether the hub runs: joins are refused (503) until it does. */
int chat_hub_running(const struct chat_hub *ch);
/* Appends {"mode":"chat","rooms":...} (room_hub_status's fields). */
void chat_hub_status(const struct chat_hub *ch, struct sbuf *out);

/*
 * The room a request's path names: the path below the route's prefix
 * (prefix_len bytes), percent-decoded into name.  0, or -1 when it names
 * no room (see chat.c for what is allowed).
 */
int chat_room_name(const char *path, size_t len, size_t prefix_len,
    char name[ROOM_NAME_MAX + 1]);

/* The per-connection state a chat connection's ws_conn carries (its
 * mode_data): made before the 101, given to chat_join after it. */
struct chat_member *chat_member_new(struct chat_hub *ch);
void chat_member_free(struct chat_member *cm);
/* wc (whose mode data is cm) joins room (a name from chat_room_name)
 * through the worker's room_worker for the hub (list: the worker's, base:
 * its loop); on failure wc is closed with 1011. */
void chat_join(struct ws_conn *wc, struct chat_member *cm, const char *room,
    struct chat_worker **list, struct event_base *base);
/* The worker's room_workers, all of them, after its loop ended. */
void chat_worker_free(struct chat_worker *list);

extern const struct ws_mode chat_mode;

#endif
