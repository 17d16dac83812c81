/*
 * ws: the WebSocket protocol (RFC 6455) and permessage-deflate (RFC 7692)
 * as pure logic, no I/O: an incremental frame parser, a frame encoder, an
 * incremental UTF-8 validator, close-frame checks, the handshake's key and
 * accept values, the Sec-WebSocket-Extensions negotiation and per-message
 * compression with zlib.  origin/ws_conn.c drives it over a connection.
 */
#ifndef PORTICO_WS_H
#define PORTICO_WS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WS_OP_CONT   0x0
#define WS_OP_TEXT   0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE  0x8
#define WS_OP_PING   0x9
#define WS_OP_PONG   0xA

/* Close codes portico sends (RFC 6455 7.4.1). */
#define WS_CLOSE_NORMAL     1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL   1002
#define WS_CLOSE_BAD_DATA   1007 /* text not UTF-8, bad compressed data */
#define WS_CLOSE_POLICY     1008 /* a room member that does not read */
#define WS_CLOSE_TOO_BIG    1009
#define WS_CLOSE_INTERNAL   1011

/* The longest frame header: 2 + 8 (length) + 4 (mask). */
#define WS_HEADER_MAX 14
/* Control frames carry at most this much (RFC 6455 5.5). */
#define WS_CONTROL_MAX 125

/*
 * UTF-8, checked a chunk at a time: a sequence may be split anywhere
 * between chunks.  Overlong forms, surrogates (U+D800-DFFF) and code
 * points above U+10FFFF are refused, as early as the first byte that
 * rules them out.
 */
struct ws_utf8 {
	uint32_t need;                /* continuation bytes still expected */
	uint8_t lo, hi;               /* the range the next byte must be in */
};

static inline void
ws_utf8_init(struct ws_utf8 *u)
{
	u->need = 0;
}

/* 0 if p[0..len) continues valid UTF-8, -1 at the first bad byte. */
int ws_utf8_feed(struct ws_utf8 *u, const void *p, size_t len);
/* 0 if the text fed so far ends on a whole character, else -1. */
static inline int
ws_utf8_done(const struct ws_utf8 *u)
{
	return u->need == 0 ? 0 : -1;
}

/*
 * The frame parser.  Fed bytes as they arrive; it unmasks payloads in
 * place and hands out one event per call.  Data frames come out as
 * payload chunks of their message (never buffered here); control frames
 * come out whole (copied into ctl, at most 125 bytes).  What may be
 * checked from a frame header is checked before a payload byte is taken:
 * the total of a message's frames above max_message fails at the header
 * that would pass it (1009).
 */
enum ws_ev {
	WS_EV_MORE,                   /* every byte was consumed: feed more */
	WS_EV_DATA,                   /* data..len of the message in progress */
	WS_EV_CONTROL,                /* a whole ping, pong or close frame in data..len */
	WS_EV_ERROR,                  /* fail the connection with code (why says what) */
};

struct ws_event {
	enum ws_ev type;
	uint8_t opcode;               /* DATA: the message's (TEXT/BINARY); CONTROL: the frame's */
	unsigned compressed : 1;      /* DATA: the message has RSV1 (permessage-deflate) */
	unsigned first : 1;           /* DATA: the first chunk of the message */
	unsigned last : 1;            /* DATA: the message ends with this chunk */
	const uint8_t *data;
	size_t len;
	uint16_t code;                /* ERROR: the close code to send */
	const char *why;              /* ERROR: for the log */
};

struct ws_parser {
	uint64_t max_message;         /* payload bytes of a message, all frames */
	unsigned rsv1_ok : 1;         /* permessage-deflate was negotiated */
	unsigned validate_text : 1;   /* check uncompressed text as it comes (default 1) */
	/* State. */
	uint8_t hdr[WS_HEADER_MAX];
	uint8_t hlen;                 /* header bytes gathered */
	uint8_t opcode;               /* the current frame's */
	uint8_t fin;
	uint8_t mask[4];
	uint8_t msg_op;               /* the message in progress (TEXT/BINARY), 0 if none */
	uint8_t msg_compressed;
	uint8_t msg_started;          /* a DATA event of it went out */
	uint8_t in_payload;           /* the header is done: payload bytes follow */
	uint64_t left;                /* payload bytes of the frame still to come */
	uint64_t moff;                /* offset in the frame, for the mask */
	uint64_t msg_len;             /* payload bytes of the message so far (headers counted) */
	struct ws_utf8 utf8;
	uint8_t ctl[WS_CONTROL_MAX];
	uint8_t ctl_len;
};

/* Sets p up for a new connection. */
void ws_parser_init(struct ws_parser *p, uint64_t max_message, int rsv1_ok);
/*
 * Takes bytes from buf[0..len), unmasking payload bytes in place.  Returns
 * the number consumed (<= len) and fills *ev: WS_EV_MORE when all of them
 * were (and no event came), else the event those bytes ended on; call
 * again with the rest.  After WS_EV_ERROR the parser is spent.  A DATA
 * event's data points into buf; a CONTROL event's into p.
 */
size_t ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev);

/*
 * Checks a close frame's payload (RFC 6455 5.5.1, 7.4): empty, or a code
 * that may be sent followed by a UTF-8 reason.  Returns 0 with *code set
 * (1005, "no status", for an empty payload), or the close code to fail
 * with: 1002 for a one-byte payload or a code that may not be sent (below
 * 1000, 1004-1006, 1015, 1016-2999 unassigned, 5000 and up), 1007 for a
 * reason that is not UTF-8.
 */
int ws_close_check(const uint8_t *payload, size_t len, uint16_t *code);
/* Whether code may appear in a close frame. */
int ws_close_code_ok(unsigned code);

/*
 * Writes the header of a server frame (unmasked, the minimal length form)
 * to out (WS_HEADER_MAX bytes); rsv1 marks a compressed message's first
 * frame.  Returns its length.
 */
size_t ws_frame_header(uint8_t *out, int fin, int rsv1, unsigned opcode, uint64_t len);

/*
 * The handshake: key is the Sec-WebSocket-Key value (klen bytes); it must
 * be the base64 of exactly 16 bytes (24 characters, "==" at the end).
 * Writes Sec-WebSocket-Accept (28 characters and a NUL) to out and
 * returns 0, or -1 for a bad key.
 */
int ws_accept_key(const char *key, size_t klen, char out[29]);

/*
 * permessage-deflate.  A negotiation's outcome: window bits are 8..15;
 * *_no_ctx says the side resets its compressor after each message.
 */
struct ws_pmd {
	unsigned on : 1;
	unsigned server_no_ctx : 1;
	unsigned client_no_ctx : 1;
	unsigned client_wbits_sent : 1; /* client_max_window_bits goes in the response */
	unsigned server_wbits_sent : 1;
	uint8_t server_wbits;         /* our compressor's window, at most */
	uint8_t client_wbits;         /* the client's compressor's window, at most */
};

/* What the server asks for whatever the client offers. */
struct ws_pmd_policy {
	unsigned server_no_ctx : 1;   /* announce server_no_context_takeover always */
	unsigned client_no_ctx : 1;   /* ask client_no_context_takeover always */
	uint8_t client_wbits;         /* ask the client for at most this window when it
	                               * says it can (client_max_window_bits offered); 15: no ask */
};

/*
 * Reads one Sec-WebSocket-Extensions value (a list of offers), hdr[0..len),
 * and takes the first acceptable permessage-deflate offer into *out (out->on
 * stays 0 while none is).  Offers of other extensions are passed over; an
 * offer with an unknown, repeated or invalid parameter is not acceptable
 * (RFC 7692 7.1), nor server_max_window_bits=8 (zlib cannot deflate with a
 * 256-byte window).  Call once per header line, in order; a later line is
 * not read once an offer was taken.  Returns 0, or -1 when the value is not
 * an extension list at all (the handshake then fails with 400).
 */
int ws_ext_negotiate(const char *hdr, size_t len, const struct ws_pmd_policy *pol,
    struct ws_pmd *out);
/* The response's Sec-WebSocket-Extensions value for an accepted offer, into
 * out (NUL-terminated); returns its length, or 0 if it does not fit. */
size_t ws_pmd_response(const struct ws_pmd *pmd, char *out, size_t cap);

/*
 * Per-message compression.  A growable output buffer first: at most max
 * bytes ever (a longer result is an error), owned by its user.
 */
struct ws_buf {
	uint8_t *p;
	size_t len, cap;
};
/* Makes room for n more bytes.  0, or -1 out of memory. */
int ws_buf_reserve(struct ws_buf *b, size_t n);
void ws_buf_free(struct ws_buf *b);

/*
 * The zlib state of one direction, allocated on first use.  With context
 * takeover it lives as long as the connection; without, ws_zs_idle frees
 * it between messages (or the owner keeps one per worker and reuses it:
 * a message compressed without takeover does not depend on the stream's
 * past).  Memory while allocated: inflate about 7 KiB plus 2^wbits bytes;
 * deflate 2^(wbits+2) + 2^(memlevel+9) bytes plus about 6 KiB.
 */
struct ws_zs {
	void *z;                      /* z_stream, or NULL */
	uint8_t wbits;
	uint8_t memlevel;             /* deflate only */
	uint8_t takeover;             /* keep the window from message to message */
	uint8_t deflating;
};

/* Sets zs up (nothing allocated yet). */
void ws_zs_init(struct ws_zs *zs, int deflating, int wbits, int memlevel, int takeover);
/* Frees the zlib state when there is no context to keep. */
void ws_zs_idle(struct ws_zs *zs);
void ws_zs_free(struct ws_zs *zs);

/*
 * Inflates a chunk of a compressed message's payload, appending to out;
 * last says the message ends here (the 00 00 ff ff tail is added then).
 * Output is bounded: more than max bytes in out fails with 1009, so a
 * small message cannot inflate into a large one (a bomb) before it is
 * stopped.  Returns 0, or the close code to fail with (1007 for data that
 * is not deflate, 1009, 1011 out of memory).
 */
int ws_inflate(struct ws_zs *zs, const uint8_t *in, size_t len, int last, struct ws_buf *out,
    size_t max);
/*
 * Compresses a whole message into out (appended), without the 00 00 ff ff
 * tail, as the payload of a frame with RSV1.  Returns 0, or -1 out of
 * memory.
 */
int ws_deflate(struct ws_zs *zs, const uint8_t *in, size_t len, struct ws_buf *out);

#endif
