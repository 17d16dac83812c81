/*
 * ws_conn: one WebSocket connection after the handshake.  It reads frames
 * (common/ws.c), answers pings, runs the close handshake, keeps the
 * connection alive with pings and ends it when idle, and hands each whole
 * message (inflated, its UTF-8 checked) to its mode: echo sends it back; a
 * chat room (origin/room.c, later) passes it to the room.
 *
 * The API a mode (and a room hub) uses, all from the connection's worker
 * thread:
 *
 *   ws_conn_send(wc, op, payload, len)   encodes one message (compressed
 *       when negotiated) and queues it.
 *   ws_conn_send_frame(wc, frame, len)   queues frame bytes already
 *       encoded (by ws_encode_message, once for many members): copied, so
 *       the caller keeps its buffer.  With server_no_context_takeover (which
 *       portico always announces) a compressed frame does not depend on the
 *       connection, so one encoding serves every member that negotiated
 *       permessage-deflate with at least the window it was made with
 *       (ws_conn_pmd), and one uncompressed encoding the others.
 *   ws_conn_send_shared(wc, f)           the same without a copy per
 *       member: f (ws_frame_new, filled once) is queued by reference
 *       (refcounted, atomically: members on other workers may hold it);
 *       the caller keeps its own reference and drops it with ws_frame_put.
 *       Bytes are copied only into the transport's buffer as it drains.
 *   ws_conn_backlog(wc)                  bytes queued and not yet sent: a
 *       room drops a member past max_backlog with
 *   ws_conn_close(wc, 1008, "...")       sends a close frame and closes
 *       once it is out (no new message is read or sent after it).
 *   mode->message                        called with each whole message.
 *   mode->gone                           called once, when the connection
 *       is torn down (wc is freed after it): a room forgets the member.
 *
 * Queued output leaves through the transport's buffer at most
 * HTTP_OUT_HIGH_WATER at a time, so what is queued beyond that is the
 * backlog; reading stops while the backlog is above the high-water mark
 * (echo to a client that does not read cannot grow without bound), and a
 * send that would take the backlog past max_backlog closes with 1008.
 *
 * Memory: an idle connection holds its struct h1 and this struct, no read
 * or write buffer, no message buffer and no zlib state (see websocket.c).
 */
#ifndef PORTICO_WS_CONN_H
#define PORTICO_WS_CONN_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/ws.h"

struct request;
struct ws_conn;

struct ws_settings {
	uint64_t max_message;         /* payload bytes of one message (inflated) */
	uint64_t max_backlog;         /* bytes queued to one client before 1008 */
	int64_t ping_interval;        /* ms; 0: no pings */
	int64_t idle_timeout;         /* ms without a frame from the client */
};

struct ws_mode {
	const char *name;
	/* A whole message: opcode WS_OP_TEXT or WS_OP_BINARY; data lives for
	 * the call.  The mode may send and close. */
	void (*message)(struct ws_conn *wc, unsigned opcode, const uint8_t *data, size_t len);
	/* The connection goes; wc is freed after this returns.  May be NULL. */
	void (*gone)(struct ws_conn *wc);
};

/*
 * Answers r's handshake with its 101 already started (status and headers
 * given) and takes the connection over: r is gone when this returns.
 * settings must outlive the connection (the route's configuration does:
 * the connection holds its snapshot); deflater is the worker's compressor
 * for this pmd's window (server_no_context_takeover), or NULL without
 * compression.  Returns the connection, or NULL (the request was answered
 * or aborted).
 */
struct ws_conn *ws_conn_open(struct request *r, const struct ws_settings *settings,
    const struct ws_mode *mode, void *mode_data, const struct ws_pmd *pmd,
    struct ws_zs *deflater);

/* A frame shared by many connections: refs starts at 1 (the creator's);
 * the last ws_frame_put frees it.  Any thread. */
struct ws_frame {
	_Atomic unsigned refs;
	size_t len;
	uint8_t data[];
};

struct ws_frame *ws_frame_new(size_t len);
void ws_frame_hold(struct ws_frame *f);
void ws_frame_put(struct ws_frame *f);

/* 0, or -1 when the message was not queued (closing, out of memory, or
 * past max_backlog: the connection then closes with 1008). */
int ws_conn_send(struct ws_conn *wc, unsigned opcode, const void *payload, size_t len);
int ws_conn_send_frame(struct ws_conn *wc, const void *frame, size_t len);
int ws_conn_send_shared(struct ws_conn *wc, struct ws_frame *f);
size_t ws_conn_backlog(const struct ws_conn *wc);
void ws_conn_close(struct ws_conn *wc, uint16_t code, const char *reason);
const struct ws_pmd *ws_conn_pmd(const struct ws_conn *wc);
void *ws_conn_data(const struct ws_conn *wc);
/* The compressor this connection's messages go through (the worker's, for
 * its window), or NULL when permessage-deflate is off: what
 * ws_encode_message takes to encode for it. */
struct ws_zs *ws_conn_deflater(const struct ws_conn *wc);

/*
 * One message as frame bytes (header and payload, compressed through
 * deflater when it is not NULL), appended to out: what ws_conn_send_frame
 * takes.  0, or -1 out of memory.
 */
int ws_encode_message(struct ws_zs *deflater, unsigned opcode, const void *payload, size_t len,
    struct ws_buf *out);

#endif
