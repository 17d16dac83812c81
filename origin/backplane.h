/*
 * backplane: rooms shared across processes through Redis pub/sub
 * (`backplane = redis://HOST:PORT`).  Used by room.c only.
 *
 * Thread.  The backplane runs a thread of its own with its own
 * event_base, holding the process's two Redis connections: one
 * subscribed (PSUBSCRIBE PREFIX*) and one that publishes.  Not the
 * workers: a process has one subscriber, not one per worker, and a
 * worker's loop must never wait on Redis.  Not the main thread's base:
 * the hub is a library that tests and other code start without a
 * server, and a thread of its own keeps Redis trouble (a stalled
 * server, reconnects) away from signals and reloads.  Workers hand it
 * messages through a mutex-protected queue and an eventfd, as the hub
 * hands messages to workers.
 *
 * One pattern, not a SUBSCRIBE per room: a room's first join would
 * otherwise race its first message (the subscription, on the other
 * connection, may not be in place when the PUBLISH arrives, and the
 * message would be lost).  The cost is that every process receives the
 * messages of every room under the prefix, and drops those of rooms it
 * has no member in; a prefix per deployment keeps that bounded.
 *
 * Order and loss.  The channel is PREFIX + room name; the payload is the
 * message's text (room_msg text), framed again by each process on the
 * way in.  While the backplane is up, a message published here is not
 * delivered here directly: it goes to Redis, and every process (this
 * one too) delivers what comes back, so all members of a room across
 * the fleet see one order, the order Redis gives.  Redis pub/sub is
 * at-most-once: a message in flight when a connection breaks is lost,
 * and a process that is disconnected misses what is published
 * meanwhile; nothing is replayed.
 *
 * Outage.  While the backplane is down (at start until both connections
 * are up and subscribed, after a connection breaks, when Redis does not
 * answer a PUBLISH within BP_TIMEOUT_MS, or when the subscription
 * delivers nothing, not even the heartbeat published on the bare prefix
 * after a quiet second, within BP_TIMEOUT_MS), rooms are local:
 * messages published here go to this process's members only, in the
 * same one order, and other processes do not see them.  The outage is
 * logged once when it begins and once when it ends; connections are
 * tried again with a backoff from 100 ms to 2 s.  No worker waits.
 */
#ifndef PORTICO_BACKPLANE_H
#define PORTICO_BACKPLANE_H

#include <stddef.h>

struct room_hub;
struct room_msg;
struct backplane;

#define BP_TIMEOUT_MS 2000
#define BP_OUT_MAX 65536               /* messages waiting for the backplane thread */
#define BP_PENDING_MAX 4096            /* PUBLISHes waiting for Redis's answer */

/*
 * Parses url (resolving its host now), starts the thread and the first
 * connection attempt.  prefix is copied.  NULL with *why set on failure.
 */
struct backplane *backplane_new(struct room_hub *hub, const char *url, const char *prefix,
    size_t max_text, const char **why);
/* Stops the thread, closes the connections, releases queued messages. */
void backplane_free(struct backplane *bp);
/*
 * Hands msg, published to room name, to the backplane thread (from any
 * thread; it takes a reference).  0, or -1 when its queue is full or
 * memory is short (the message is then not delivered anywhere).
 */
int backplane_publish(struct backplane *bp, const char *name, struct room_msg *msg);
/* 1 while up (published messages go through Redis), else 0. */
int backplane_up(const struct backplane *bp);
/* The URL as written, for logs and status. */
const char *backplane_url(const struct backplane *bp);

#endif
