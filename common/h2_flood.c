/*
 * h2_flood: what an HTTP/2 client may not do cheaply.  Frames that make
 * no request progress are charged to a budget per connection (see h2.c's
 * top comment and portico.ini(5)); a HEADERS on a stream id the client
 * skipped ends the connection, as RFC 9113 5.1.1 asks and nghttp2 alone
 * does not.  The rest of the known floods are bounded by nghttp2's
 * options, set in h2_start.
 */
#include "common/h2_int.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/server.h"

/* One frame that does no work: -1 once the budget is spent. */
int
h2_glitch(struct h2c *h, int64_t cost)
{
	int64_t now = clock_ms();
	int64_t added = (now - h->glitch_ms) * H2_GLITCH_RATE / 1000;

	/* Only the time turned into tokens is spent: frames closer together
	 * than a token's worth still earn theirs. */
	h->glitch_ms += added * 1000 / H2_GLITCH_RATE;
	if ((h->glitches += added) >= H2_GLITCH_BURST) {
		h->glitches = H2_GLITCH_BURST;
		h->glitch_ms = now;
	}
	if ((h->glitches -= cost) >= 0)
		return 0;
	if (!h->calm) {
		char peer[64];
		h->calm = 1;
		if (worker_log_client_error(h->c->w))
			log_info("conn %d from %s: h2: too many frames that do no work; closing",
			    h->c->fd, conn_peer(h->c, peer, sizeof(peer)));
	}
	return -1;
}

/*
 * A HEADERS frame's header, before nghttp2 looks at it: a new stream id
 * leaves the ones it skipped behind for good; a HEADERS on one of those
 * is a connection error, which nghttp2 would ignore (it cannot tell a
 * skipped id from a closed stream it forgot).
 */
int
h2_on_begin_frame(nghttp2_session *s, const nghttp2_frame_hd *hd, void *arg)
{
	struct h2c *h = arg;
	int32_t id = hd->stream_id;

	/* PRIORITY is counted here, as its header arrives: before nghttp2
	 * decides what it does with it (nothing, in most cases). */
	if (hd->type == NGHTTP2_PRIORITY)
		(void)h2_glitch(h, 1);
	if (hd->type != NGHTTP2_HEADERS || id <= 0 || (id & 1) == 0)
		return 0;
	if (id > h->max_id) {
		if (id > h->max_id + 2) {
			h->gaps[h->ngaps % H2_GAPS].lo = h->max_id + 2;
			h->gaps[h->ngaps % H2_GAPS].hi = id - 2;
			h->ngaps++;
		}
		h->max_id = id;
		return 0;
	}
	for (unsigned i = 0; i < H2_GAPS && i < h->ngaps; i++)
		if (id >= h->gaps[i].lo && id <= h->gaps[i].hi) {
			nghttp2_session_terminate_session2(s, h->max_id, NGHTTP2_PROTOCOL_ERROR);
			h->goaway = 1;
			break;
		}
	return 0;
}
