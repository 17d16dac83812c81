/*
 * Unit tests for proxy/upstream.c on an event base of their own, with no
 * worker: what the owner is told (a refused connect, bytes in pieces, the
 * output sent, a server's close, a read timeout), and the keep-alive list
 * of a pool_worker (release, reuse, a closed idle connection dropped, one
 * passed over when the caller needs it alive, no list without a worker).
 * The "server" is a loopback socket the test drives by hand.
 */
#include "proxy/upstream.h"
#include "t/unit/tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* What the owner heard. */
static struct {
	int reads, sent, errors;
	enum upstream_error err;
	char why[128];
	char got[256];
	size_t gotlen;
	int close_on_error;       /* the owner closes u when told of an error */
} seen;

static int
on_read(struct upstream *u)
{
	size_t n = u->inlen < sizeof(seen.got) - seen.gotlen ? u->inlen : sizeof(seen.got) - seen.gotlen;
	memcpy(seen.got + seen.gotlen, u->in, n);
	seen.gotlen += n;
	upstream_consume(u, u->inlen);
	seen.reads++;
	return 0;
}

static int
on_sent(struct upstream *u)
{
	(void)u;
	seen.sent++;
	return 0;
}

static void
on_error(struct upstream *u, enum upstream_error e, const char *why)
{
	seen.errors++;
	seen.err = e;
	snprintf(seen.why, sizeof(seen.why), "%s", why);
	if (seen.close_on_error)
		upstream_close(u, why);
}

static const struct upstream_ops ops = { on_read, on_sent, on_error };

static struct event_base *base;
static struct backend server;
static struct pool pool = { .name = "t", .servers = &server, .nservers = 1, .keepalive = 2 };
static const struct timeval tv_long = { 5, 0 }, tv_short = { 0, 100000 };
static const struct upstream_timeouts tv = { &tv_long, &tv_long, &tv_long, &tv_long };

/* Runs the loop until cond holds or about 2 s have passed. */
#define RUN_UNTIL(cond) do { \
	for (int i_ = 0; i_ < 200 && !(cond); i_++) { \
		struct timeval t_ = { 0, 10000 }; \
		event_base_loopexit(base, &t_); \
		event_base_dispatch(base); \
	} } while (0)

static void
reset_seen(void)
{
	memset(&seen, 0, sizeof(seen));
	seen.close_on_error = 1;
}

/* A listening socket on loopback; its address becomes the server's. */
static int
listen_here(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	backend_set_addr(&server, (struct sockaddr *)&sa, len);
	return fd;
}

static int
accept_one(int lfd)
{
	int fd = -1;
	RUN_UNTIL((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0 || errno != EAGAIN);
	return fd;
}

static void
test_refused(void)
{
	int lfd = listen_here();
	close(lfd); /* nobody listens there now */
	reset_seen();
	struct upstream *u = upstream_connect(base, &pool, 0, NULL, &tv, &ops, NULL);
	ok(u != NULL, "refused: a connection is made without a worker");
	sbuf_str(&u->out, "never sent");
	upstream_send(u);
	RUN_UNTIL(seen.errors > 0);
	is(seen.errors, 1, "refused: the owner hears once");
	is(seen.err, UPSTREAM_CONNECT_FAILED, "refused: as a failed connect (nothing was sent)");
	is_str(seen.why, "Connection refused", "refused: why");
}

static void
test_exchange(void)
{
	int lfd = listen_here();
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	reset_seen();
	struct upstream *u = upstream_connect(base, &pool, 0, NULL, &tv, &ops, NULL);
	sbuf_str(&u->out, "ping");
	upstream_send(u);
	int s = accept_one(lfd);
	ok(s >= 0, "exchange: the server accepts");
	RUN_UNTIL(seen.sent > 0);
	is(seen.sent, 1, "exchange: the owner hears the output went");
	char buf[16] = { 0 };
	is(recv(s, buf, sizeof(buf), 0), 4, "exchange: the server reads 4 bytes");
	is_str(buf, "ping", "exchange: the bytes queued in out");
	send(s, "po", 2, 0);
	RUN_UNTIL(seen.gotlen == 2);
	send(s, "ng", 2, 0);
	RUN_UNTIL(seen.gotlen == 4);
	is_slice(seen.got, seen.gotlen, "pong", "exchange: the answer, in two pieces");
	ok(seen.reads >= 2, "exchange: each piece is a read (%d)", seen.reads);
	close(s);
	RUN_UNTIL(seen.errors > 0);
	is(seen.err, UPSTREAM_EOF, "exchange: the server's close is an EOF");
	close(lfd);
}

static void
test_read_timeout(void)
{
	int lfd = listen_here();
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	reset_seen();
	const struct upstream_timeouts t = { &tv_long, &tv_long, &tv_short, NULL };
	struct upstream *u = upstream_connect(base, &pool, 0, NULL, &t, &ops, NULL);
	sbuf_str(&u->out, "GET");
	upstream_send(u);
	int s = accept_one(lfd);
	RUN_UNTIL(seen.errors > 0);
	is(seen.err, UPSTREAM_TIMEOUT, "silent server: a timeout");
	is_str(seen.why, "read timed out", "silent server: while reading");
	close(s);
	close(lfd);
}

static void
test_keepalive(void)
{
	struct pool_worker *pw = calloc(1, sizeof(*pw));
	pw->pool = &pool;
	for (unsigned i = 0; i < POOL_MAX_SERVERS; i++)
		LIST_INIT(&pw->idle[i]);
	int lfd = listen_here();
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	reset_seen();
	struct upstream *u = upstream_connect(base, &pool, 0, pw, &tv, &ops, NULL);
	sbuf_str(&u->out, "one");
	upstream_send(u);
	int s1 = accept_one(lfd);
	RUN_UNTIL(seen.sent > 0);
	upstream_release(u, 1);
	is(pw->nidle[0], 1, "keep-alive: a released connection waits in the worker's list");
	struct upstream *again = upstream_take_idle(pw, 0, 1, &ops, NULL);
	ok(again == u && again->reused && again->state == UPSTREAM_ACTIVE,
	    "keep-alive: the next taker gets it back, marked reused");
	is(pw->nidle[0], 0, "keep-alive: and the list is empty");
	upstream_release(again, 1);

	/* The server closes it while idle: the event loop drops it. */
	close(s1);
	RUN_UNTIL(pw->nidle[0] == 0);
	is(pw->nidle[0], 0, "keep-alive: a connection the server closed while idle is dropped");
	ok(upstream_take_idle(pw, 0, 0, &ops, NULL) == NULL, "keep-alive: nothing left to take");

	/* Closed before the loop noticed: passed over when it must be alive. */
	reset_seen();
	u = upstream_connect(base, &pool, 0, pw, &tv, &ops, NULL);
	upstream_send(u);
	int s2 = accept_one(lfd);
	RUN_UNTIL(u->state == UPSTREAM_ACTIVE);
	upstream_release(u, 1);
	close(s2);
	usleep(20000);
	ok(upstream_take_idle(pw, 0, 1, &ops, NULL) == NULL,
	    "keep-alive: a dead idle connection is not given to a request that needs it alive");
	is(pw->nidle[0], 0, "keep-alive: and it is closed");

	/* Without a worker there is no list: a release closes. */
	u = upstream_connect(base, &pool, 0, NULL, &tv, &ops, NULL);
	upstream_send(u);
	int s3 = accept_one(lfd);
	RUN_UNTIL(u->state == UPSTREAM_ACTIVE);
	upstream_release(u, 1);
	char c;
	struct timeval rt = { 2, 0 };
	setsockopt(s3, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt));
	fcntl(s3, F_SETFL, 0);
	is(recv(s3, &c, 1, 0), 0, "no worker: a released connection is closed");
	close(s3);
	upstream_close_idle(pw);
	free(pw);
	close(lfd);
}

int
main(void)
{
	base = event_base_new();
	server.name = "127.0.0.1:test";
	test_refused();
	test_exchange();
	test_read_timeout();
	test_keepalive();
	event_base_free(base);
	return done_testing();
}
