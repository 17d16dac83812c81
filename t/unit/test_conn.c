/*
 * Unit tests for common/conn.c, the transport, on an event base of its own
 * with a protocol of the test's: input reaches the protocol as it comes,
 * output goes out in order with a file range between buffers, the output
 * bound cuts a writer that ignores the high-water mark, the peer's close
 * and an idle timeout are reported, a lingering close reads what the peer
 * still sends, and teardown tells the protocol, then the owner.
 */
#include "common/conn.h"
#include "t/unit/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/freelist.h"
#include "common/stats.h"

static struct event_base *base;
static struct freelist bufs;
static struct stats stats;
static const struct timeval tv_long = { 5, 0 }, tv_short = { 0, 100000 };

/* What the protocol and the owner heard. */
static struct {
	int starts, inputs, eofs, eof_err, drained, timeouts, closes, owner_closed, resumes;
	char reason[64];
	char in[256];
	size_t inlen;
} seen;

static void p_start(struct conn *c) { seen.starts++; conn_arm(c, EV_READ, &tv_long); }

static void
p_input(struct conn *c, size_t n)
{
	size_t room = sizeof(seen.in) - seen.inlen;
	memcpy(seen.in + seen.inlen, c->rbuf + c->rlen, n < room ? n : room);
	seen.inlen += n < room ? n : room;
	c->rlen += n;
	c->rpos = c->rlen; /* all taken */
	seen.inputs++;
}

static void p_full(struct conn *c) { conn_close(c, "full"); }
static void p_eof(struct conn *c, int err) { seen.eofs++; seen.eof_err = err; conn_close(c, "eof"); }
static void p_resume(struct conn *c) { (void)c; seen.resumes++; }

static int
p_drained(struct conn *c)
{
	seen.drained++;
	conn_release_input(c);
	conn_arm(c, EV_READ, &tv_short);
	return 0;
}

static void p_timeout(struct conn *c) { seen.timeouts++; conn_close(c, "idle"); }

static void
p_close(struct conn *c, const char *reason)
{
	(void)c;
	seen.closes++;
	snprintf(seen.reason, sizeof(seen.reason), "%s", reason);
}

static const struct conn_proto proto = {
	p_start, p_input, p_full, p_eof, p_resume, p_drained, p_timeout, p_close,
};

static int log_ok(void *owner) { (void)owner; return 1; }
static void owner_closed(void *owner) { (void)owner; seen.owner_closed++; }

static struct conn_env env;

#define RUN_UNTIL(cond) do { \
	for (int i_ = 0; i_ < 200 && !(cond); i_++) { \
		struct timeval t_ = { 0, 10000 }; \
		event_base_loopexit(base, &t_); \
		event_base_dispatch(base); \
	} } while (0)

/* Runs the loop for about ms milliseconds. */
static void
run_for(int ms)
{
	struct timeval t = { 0, ms * 1000 };

	event_base_loopexit(base, &t);
	event_base_dispatch(base);
}

/* A connected pair: *peer is the test's end, the other becomes a conn. */
static struct conn *
pair(int *peer)
{
	int sv[2];
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return NULL;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	*peer = sv[1];
	memset(&seen, 0, sizeof(seen));
	struct conn *c = conn_new(&env, &proto, sizeof(struct conn), sv[0], (struct sockaddr *)&sa,
	    sizeof(sa), NULL, 1000);
	if (c != NULL)
		proto.start(c);
	return c;
}

static size_t
read_all(int fd, char *buf, size_t cap, size_t want)
{
	size_t got = 0;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 200 && got < want; i++) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		run_for(10);
	}
	return got;
}

static void
test_input_output(void)
{
	int peer;
	struct conn *c = pair(&peer);
	char buf[256];

	ok(c != NULL && seen.starts == 1, "io: a plain connection is started by its caller");
	ok(write(peer, "hello", 5) == 5, "io: the peer writes");
	RUN_UNTIL(seen.inputs > 0);
	is_slice(seen.in, seen.inlen, "hello", "io: the protocol gets the bytes");
	is(stats_get(&stats.bytes_received), 5, "io: counted as received");

	char path[] = "/tmp/portico-test-conn-XXXXXX";
	int fd = mkstemp(path);
	ok(fd >= 0 && write(fd, "0123456789", 10) == 10, "io: a file to send a range of");
	unlink(path);
	conn_out(c, "[", 1);
	ok(conn_out_file(c, fd, 2, 5) == 0, "io: a file range is queued");
	conn_out(c, "]", 1);
	is(conn_pending(c), 8, "io: pending counts the bytes queued, and a file in flight as one");
	ok(conn_flush(c) == 0, "io: flushed");
	size_t n = read_all(peer, buf, sizeof(buf), 7);
	is_slice(buf, n, "[23456]", "io: buffer, file range, buffer, in order");
	ok(seen.drained >= 1, "io: the protocol hears the output drained");
	RUN_UNTIL(seen.closes > 0);
	is(seen.timeouts, 1, "io: the protocol's idle timeout fires");
	is_str(seen.reason, "idle", "io: close reason reaches the protocol");
	is(seen.owner_closed, 1, "io: then the owner hears");
	close(peer);
}

static void
test_output_bound(void)
{
	int peer;
	struct conn *c = pair(&peer);
	static char big[CONN_OUT_MAX / 4];

	memset(big, 'x', sizeof(big));
	for (int i = 0; i < 4; i++)
		conn_out(c, big, sizeof(big));
	ok(!c->closing, "bound: CONN_OUT_MAX bytes may be queued");
	conn_out(c, "y", 1);
	ok(c->closing, "bound: one more byte cuts the connection (the writer ignored the mark)");
	ok(conn_pending(c) <= CONN_OUT_MAX, "bound: nothing past the bound is kept");
	size_t before = conn_pending(c);
	conn_out(c, "z", 1);
	is(conn_pending(c), before, "bound: nor anything smaller after it (no hole in the body)");
	conn_close(c, "test");
	close(peer);
}

static void
test_peer_close(void)
{
	int peer;
	struct conn *c = pair(&peer);

	(void)c;
	close(peer);
	RUN_UNTIL(seen.closes > 0);
	is(seen.eofs, 1, "eof: the peer's close is reported");
	is(seen.eof_err, 0, "eof: as a close, not an error");
	is(seen.owner_closed, 1, "eof: the connection is freed and the owner told");
}

static void
test_linger(void)
{
	int peer;
	struct conn *c = pair(&peer);
	char buf[64];

	conn_out(c, "bye", 3);
	c->closing = 1;
	c->linger = 1;
	ok(conn_flush(c) == 0, "linger: flushed, the connection lingers");
	ok(c->lingering, "linger: reading what the peer still sends");
	size_t n = read_all(peer, buf, sizeof(buf), 3);
	is_slice(buf, n, "bye", "linger: the answer arrived");
	ok(write(peer, "more", 4) == 4, "linger: the peer still writes");
	run_for(50);
	is(seen.closes, 0, "linger: not closed on what it reads");
	shutdown(peer, SHUT_WR);
	RUN_UNTIL(seen.closes > 0);
	is(seen.closes, 1, "linger: closed on the peer's EOF");
	is(seen.inputs, 0, "linger: what the peer sent never reached the protocol");
	close(peer);
}

int
main(void)
{
	base = event_base_new();
	freelist_init(&bufs, 16384, 8);
	env = (struct conn_env){
		.base = base, .bufs = &bufs, .stats = &stats, .tv_send = &tv_long,
		.tv_linger = &tv_short, .linger_time = 1000, .linger_timeout = 500,
		.owner = NULL, .log_ok = log_ok, .closed = owner_closed,
	};
	test_input_output();
	test_output_bound();
	test_peer_close();
	test_linger();
	freelist_destroy(&bufs);
	event_base_free(base);
	return done_testing();
}
