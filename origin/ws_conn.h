/*
 * ws_conn: one WebSocket connection after the handshake.  It reads frames
 * (common/ws.c), answers pings, runs the close handshake, keeps the
 * connection alive with pings and ends it when idle, and hands each whole
 * message (inflated, its UTF-8 checked) to its mode: echo sends it back; a
 * chat room (origin/chat.c) passes it to the room.
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
 *   ws_conn_send_ref(wc, bytes, len, release, arg)   the same without a
 *       copy per member: the bytes are queued by reference and release(arg)
 *       is called once they are in the transport's buffer or dropped, so a
 *       message shared by reference count (origin/room.h's struct
 *       room_msg) is held once per member, not copied.
 *   ws_conn_backlog(wc)                  bytes queued and not yet sent: a
 *       room drops a member past max_backlog with
 *   ws_conn_close(wc, 1008, "...")       sends a close frame and closes
 *       once it is out (no new message is read or sent after it).
 *   mode->message                        called with each whole message.
 *   mode->gone                           called once, when the connection
 *       is torn down (wc is freed after it): a room forgets the member.
 *
 * How origin/chat.c wires the chat mode to origin/room.h's hub (its
 * member is the ws_conn):
 *
 *   ws_mode.message      room_msg_text(hub, text) then room_publish(m, msg)
 *                        and room_msg_release(msg) (text messages only)
 *   room deliver(wc, msg, seq)
 *                        room_msg_hold(msg);
 *                        ws_conn_send_ref(wc, msg->data, msg->len,
 *                            release calling room_msg_release, msg);
 *                        return ws_conn_backlog(wc);
 *   room drop(wc, 1008)  forget the member handle, then
 *                        ws_conn_close(wc, 1008, "...")
 *   ws_mode.gone         room_leave(m) unless drop came first
 *
 * ws_conn_send_ref refuses (and closes with 1008) past max_backlog too,
 * so a member that does not read is dropped either way.
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

/* 0, or -1 when the message was not queued (closing, out of memory, or
 * past max_backlog: the connection then closes with 1008). */
int ws_conn_send(struct ws_conn *wc, unsigned opcode, const void *payload, size_t len);
int ws_conn_send_frame(struct ws_conn *wc, const void *frame, size_t len);
/* release(arg) is called exactly once, maybe before this returns (the
 * bytes were copied at once, or refused: -1). */
int ws_conn_send_ref(struct ws_conn *wc, const void *data, size_t len, void (*release)(void *),
    void *arg);
size_t ws_conn_backlog(const struct ws_conn *wc);
void ws_conn_close(struct ws_conn *wc, uint16_t code, const char *reason);
/* The same without a reason in the frame, and why logged at info (a few
 * lines a second per worker at most): for what an operator may want to
 * know of, a client's protocol error or a chat member dropped. */
void ws_conn_fail(struct ws_conn *wc, uint16_t code, const char *why);
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
