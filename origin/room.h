/*
 * room: the chat-room hub.  Rooms are named, created on first join and
 * removed when their last member leaves; every message published to a
 * room reaches every member of it, the sender included, in one order
 * that all members see, whichever worker thread each member is on.
 *
 * The hub moves opaque bytes.  A message (struct room_msg) is encoded
 * once (for WebSocket: one complete unmasked frame) and shared by
 * reference count by every member on every worker; it is never copied
 * per member.  A member is an opaque pointer with two callbacks, so the
 * WebSocket side wires it to a connection.
 *
 * Threads.  One struct room_hub per process (or per chat route), made at
 * start and passed in.  Each worker thread that has members attaches
 * with room_worker_start(hub, its event_base) and gets a struct
 * room_worker: a queue that other threads append to under a short mutex,
 * and an eventfd in the worker's loop that wakes it (written only when
 * the queue goes from empty to not empty).  The worker drains its queue
 * in its own loop and calls each local member's deliver callback there,
 * in rounds of at most 16 KiB of messages (or 256 of them), giving the
 * loop back between rounds so that the members' connections write: a
 * burst then does not count whole against the backlog of a member that
 * reads.
 * Member calls (room_join, room_leave, room_publish) are made on the
 * member's worker thread.
 *
 * Order.  Publishing takes the room's lock, gives the message the room's
 * next sequence number and appends one reference to the queue of every
 * worker with members in the room (the sender's own worker too: its copy
 * goes through the queue as well).  Queues are FIFO, so every worker
 * sees a room's messages in sequence order.  A member receives exactly
 * the messages whose sequence follows its join (and none after its
 * leave or drop); join and leave take the hub's mutex, which the message
 * path never does.  Lock order: hub, then room, then a worker's queue.
 *
 * Backlog.  deliver returns the member's backlog: the bytes queued on
 * its connection and not yet sent.  Past max_backlog the hub removes
 * the member and calls drop(member, 1008); the room and the other
 * members go on at their pace.  A worker so far behind that a room's
 * messages pile up in its queue (ROOM_QUEUE_MAX of them) gets no more
 * of them: its members of that room are dropped with 1008 too, since
 * they would miss messages.
 *
 * Backplane (backplane.c): with a Redis URL, a published message goes to
 * Redis instead, and members of every process sharing that Redis get it
 * when it comes back, in the order Redis gives.  See backplane.h for the
 * guarantees.
 *
 * What the WebSocket side calls:
 *
 *   at start           hub = room_hub_new(&conf)  (conf.encode frames text)
 *   per worker         rw = room_worker_start(hub, w->base);
 *                      ... room_worker_stop(rw) on that thread at its end
 *   a client joins     m = room_join(rw, "lobby", conn, &ops)
 *   a text message     msg = room_msg_text(hub, text, len);
 *                      room_publish(m, msg); room_msg_release(msg);
 *   it goes            room_leave(m)   (not after drop was called for m)
 *   /status            room_hub_status(hub, sbuf)
 *
 *   ops.deliver(conn, msg, seq): room_msg_hold(msg), then queue the
 *       bytes by reference (ws_conn_send_ref(wc, msg->data, msg->len,
 *       release, msg), whose release calls room_msg_release(msg)); return
 *       the connection's pending output (ws_conn_backlog).  Do not write
 *   to the socket or free anything of the hub from deliver; closing the
 *   connection (and room_leave of any member) from it is allowed.
 *   ops.drop(conn, 1008): the member has left the room already and its
 *   handle is gone; send close 1008 and forget the handle.
 *
 * Lifetime.  The hub outlives every room_worker on it, and a room_worker
 * every member joined through it.  handler_ops.worker_new takes no
 * arguments, so the WebSocket side makes its room_worker on a worker's
 * first join (room_worker_start with w->base) and keeps it in its
 * per-worker state; worker_free (after the loop ended) may stop it.  For
 * rooms and their members to survive a reload, as WebSocket connections
 * do, a chat route's hub should be carried from the old snapshot to the
 * new one (by route name), not made again; its keys (max_backlog,
 * notices, backplane) then keep their old values until a restart, or
 * the hub is made anew when they change.
 */
#ifndef PORTICO_ROOM_H
#define PORTICO_ROOM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct sbuf;
struct room_hub;
struct room_worker;
struct room_member;

#define ROOM_NAME_MAX 200              /* bytes of a room name, NUL excluded */
#define ROOM_QUEUE_MAX 8192            /* one room's messages waiting in one worker's queue */
#define ROOM_CLOSE_POLICY 1008         /* what drop is called with */

/*
 * A message as members receive it: len bytes, of which the application
 * text (what the backplane carries and notices are) is data + text_off
 * up to the end.  Immutable once published; freed by the last
 * room_msg_release.
 */
struct room_msg {
	_Atomic unsigned refs;
	size_t len;
	size_t text_off;
	unsigned char data[];
};

/*
 * Makes a message from text: returns the message with one reference for
 * the caller, or NULL to refuse the text (out of memory, invalid).  The
 * WebSocket side frames it (room_msg_alloc(hdr + len, hdr), the frame
 * header, then the text).  It runs on any thread: the backplane's (a
 * message from Redis) and any worker's, under the hub's lock (join and
 * leave notices); so it must not use per-worker state, a worker's
 * deflater included (chat frames are sent uncompressed, which
 * permessage-deflate allows).
 */
typedef struct room_msg *room_encode_fn(void *arg, const char *text, size_t len);

struct room_hub_conf {
	size_t max_backlog;            /* bytes; 0: 1 MiB */
	size_t max_text;               /* bytes of a message from the backplane; 0: 1 MiB */
	int notices;                   /* publish join and leave notices */
	room_encode_fn *encode;        /* NULL: the text is the message */
	void *encode_arg;
	const char *backplane;         /* "redis://HOST:PORT" or NULL */
	const char *prefix;            /* channel prefix; NULL: "portico:room:" */
};

struct room_member_ops {
	/* Queues msg (sequence seq in its room) on the member's connection;
	 * returns the member's backlog in bytes after that. */
	size_t (*deliver)(void *member, struct room_msg *msg, uint64_t seq);
	/* The member was removed for falling behind; code is 1008. */
	void (*drop)(void *member, int code);
};

/* A message of len bytes, text from text_off, with one reference for the
 * caller, who fills data before publishing it.  NULL when out of memory. */
struct room_msg *room_msg_alloc(size_t len, size_t text_off);
/* A copy of len bytes of data as a message whose text is all of it. */
struct room_msg *room_msg_new(const void *data, size_t len);
/* text encoded with the hub's encoder (or copied without one). */
struct room_msg *room_msg_text(struct room_hub *hub, const char *text, size_t len);
void room_msg_hold(struct room_msg *msg);
/* Drops one reference; the last frees the message. */
void room_msg_release(struct room_msg *msg);

/*
 * The hub, with conf copied (strings too).  With a backplane, the URL is
 * parsed and its host resolved now, and a thread of the hub's own starts
 * on it.  NULL with *why set when the URL is bad or memory is short.
 */
struct room_hub *room_hub_new(const struct room_hub_conf *conf, const char **why);
/* After every worker stopped: stops the backplane thread, frees all. */
void room_hub_free(struct room_hub *hub);

/* Attaches a worker's event loop: a queue and its wake-up event in base.
 * NULL when out of memory or descriptors.  On the worker's thread. */
struct room_worker *room_worker_start(struct room_hub *hub, struct event_base *base);
/* Removes the worker's remaining members (without callbacks), releases
 * what its queue holds and frees it.  On the worker's thread, or after
 * its loop ended. */
void room_worker_stop(struct room_worker *rw);

/*
 * member joins room name (1 to ROOM_NAME_MAX bytes), made if needed, on
 * the calling worker rw.  The handle stays valid until room_leave, or
 * until drop is called.  NULL when the name is bad or memory is short.
 */
struct room_member *room_join(struct room_worker *rw, const char *name, void *member,
    const struct room_member_ops *ops);
/* The member leaves; the handle is freed.  Messages still queued for it
 * are not delivered. */
void room_leave(struct room_member *m);
/*
 * Publishes msg to m's room; the hub takes references of its own, the
 * caller keeps its one.  0, or -1 when the message cannot be taken
 * (out of memory, the backplane's outgoing queue is full).
 */
int room_publish(struct room_member *m, struct room_msg *msg);
/* The same to room name from any thread; 0 also when no such room exists
 * here (with a backplane it still goes to the others). */
int room_publish_name(struct room_hub *hub, const char *name, struct room_msg *msg);

/* The room's name for a member's handle. */
const char *room_member_room(const struct room_member *m);
/* Rooms, and members of the room named (0 if none), right now. */
unsigned room_hub_rooms(struct room_hub *hub);
unsigned room_hub_members(struct room_hub *hub, const char *name);
/* -1 without a backplane, 1 while it is up, 0 while it is down. */
int room_hub_backplane(struct room_hub *hub);
/*
 * Appends {"rooms":N,"members":M,"backplane":"off|up|down",
 * "by_room":{"NAME":members,...}} to out: N and M for this process, and
 * at most 100 rooms listed, in no particular order ("truncated":true
 * then follows by_room).
 */
void room_hub_status(struct room_hub *hub, struct sbuf *out);

/* Delivers msg to the members of room name in this process, now (any
 * thread; the backplane's way in).  0, or -1 when memory is short. */
int room_fanout_name(struct room_hub *hub, const char *name, struct room_msg *msg);

#endif
