/*
 * wsload: the WebSocket load generator of t/bench/ws.  One thread, epoll,
 * plain sockets, client frames masked as RFC 6455 wants; no compression
 * offered.  It measures the server's CPU time itself (utime + stime of
 * /proc/PID/stat, over its measuring window only) so joins and handshakes
 * do not count.
 *
 *   wsload echo   PORT PATH PID CONNS SECONDS SIZE
 *     every connection sends a text message of SIZE bytes and sends the
 *     next when the echo is back.
 *   wsload fanout PORT PATH PID MEMBERS SENDERS SECONDS SIZE
 *     MEMBERS connections join the room PATH; SENDERS of them send, each
 *     its next message when its previous one came back to it (the room
 *     delivers to the sender too); every member counts what it receives.
 *   wsload idle   PORT PATH PID CONNS
 *     opens CONNS connections, completes the handshakes, prints "ready",
 *     and holds them until its standard input closes.
 *
 * Prints one JSON line: messages, errors, cpu_ticks, seconds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX 16384

enum { CONNECTING, HANDSHAKE, OPEN };

struct wc {
	int fd;
	int state;
	int sender;
	unsigned seq;                 /* a sender's message in flight */
	char token[32];               /* ... and how it is recognised */
	size_t tlen;
	size_t rlen;
	unsigned char *rbuf;
	size_t opos, olen, ocap;      /* output not yet written */
	unsigned char *obuf;
};

static size_t rbuf_size = 32768;

static int port, npending;
static const char *path;
static long long messages, errors;
static size_t msg_size;
static int mode_echo;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long
cpu_ticks(int pid)
{
	char p[64], buf[4096];
	FILE *f;
	size_t n;

	snprintf(p, sizeof(p), "/proc/%d/stat", pid);
	if ((f = fopen(p, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *s = strrchr(buf, ')');
	long long ut, st;
	if (s == NULL || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld",
	    &ut, &st) != 2)
		return -1;
	return ut + st;
}

/* Queues a masked text frame of payload p. */
static void
queue_frame(struct wc *c, const unsigned char *p, size_t len)
{
	unsigned char *o = c->obuf + c->olen;
	static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	size_t h = 0;

	if (c->olen + len + 14 > c->ocap) {
		errors++;
		return;
	}
	o[h++] = 0x81;
	if (len < 126)
		o[h++] = 0x80 | (unsigned char)len;
	else if (len < 65536) {
		o[h++] = 0x80 | 126;
		o[h++] = (unsigned char)(len >> 8);
		o[h++] = (unsigned char)len;
	} else {
		o[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			o[h++] = (unsigned char)((uint64_t)len >> (8 * i));
	}
	memcpy(o + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		o[h + i] = p[i] ^ mask[i & 3];
	c->olen += h + len;
}

static void
send_message(struct wc *c)
{
	unsigned char p[MSG_MAX];
	size_t n = msg_size;

	c->seq++;
	c->tlen = (size_t)snprintf(c->token, sizeof(c->token), "<%d:%u>", c->fd, c->seq);
	memset(p, 'x', n);
	memcpy(p, c->token, c->tlen < n ? c->tlen : n);
	queue_frame(c, p, n);
}

static int
flush_out(struct wc *c)
{
	while (c->opos < c->olen) {
		ssize_t w = send(c->fd, c->obuf + c->opos, c->olen - c->opos, MSG_NOSIGNAL);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		c->opos += (size_t)w;
	}
	c->opos = c->olen = 0;
	return 0;
}

/* Frames in rbuf: counts whole messages, takes a sender's own back. */
static int
parse_frames(struct wc *c, int counting)
{
	size_t pos = 0;

	for (;;) {
		unsigned char *b = c->rbuf + pos;
		size_t avail = c->rlen - pos, h = 2;
		uint64_t len;
		if (avail < 2)
			break;
		if (b[1] & 0x80)
			return -1; /* a server never masks */
		len = b[1] & 0x7f;
		if (len == 126) {
			if (avail < 4)
				break;
			len = (uint64_t)b[2] << 8 | b[3];
			h = 4;
		} else if (len == 127) {
			if (avail < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | b[2 + i];
			h = 10;
		}
		if (len > rbuf_size - 16)
			return -1;
		if (avail < h + len)
			break;
		unsigned op = b[0] & 0x0f;
		if (op == 8)
			return -1; /* closed on us */
		if ((op == 1 || op == 2) && (b[0] & 0x80)) {
			if (counting)
				messages++;
			if (mode_echo ||
			    (c->sender && c->tlen > 0 && len >= c->tlen &&
			     memmem(b + h, (size_t)len, c->token, c->tlen) != NULL)) {
				if (counting)
					send_message(c);
				else
					c->tlen = 0;
			}
		}
		pos += h + (size_t)len;
	}
	memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
	c->rlen -= pos;
	return 0;
}

static struct wc *
open_conn(int ep)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct wc *c = calloc(1, sizeof(*c));
	int one = 1;

	if (c == NULL || (c->rbuf = malloc(rbuf_size)) == NULL ||
	    (c->obuf = malloc(c->ocap = 2 * (MSG_MAX + 14) + 512)) == NULL)
		exit(2);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		perror("socket");
		exit(2);
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		perror("connect");
		exit(2);
	}
	c->olen = (size_t)snprintf((char *)c->obuf, c->ocap,
	    "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    path, port);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	npending++;
	return c;
}

/* Reads what there is; 1 when the handshake just completed. */
static int
on_event(struct wc *c, int counting)
{
	int done = 0;

	if (c->state == CONNECTING)
		c->state = HANDSHAKE;
	if (flush_out(c) < 0)
		goto fail;
	for (;;) {
		ssize_t r = recv(c->fd, c->rbuf + c->rlen, rbuf_size - c->rlen, 0);
		if (r == 0)
			goto fail;
		if (r < 0) {
			if (errno == EAGAIN)
				break;
			goto fail;
		}
		c->rlen += (size_t)r;
		if (c->state == HANDSHAKE) {
			char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
			if (end == NULL)
				continue;
			if (c->rlen < 12 || memcmp(c->rbuf + 9, "101", 3) != 0)
				goto fail;
			size_t hl = (size_t)(end + 4 - (char *)c->rbuf);
			memmove(c->rbuf, c->rbuf + hl, c->rlen - hl);
			c->rlen -= hl;
			c->state = OPEN;
			npending--;
			done = 1;
		}
		if (parse_frames(c, counting) < 0)
			goto fail;
		if (c->rlen == rbuf_size)
			goto fail;
	}
	if (flush_out(c) < 0)
		goto fail;
	return done;
fail:
	errors++;
	if (c->state != OPEN)
		npending--;
	close(c->fd); /* leaves the epoll set with it */
	c->fd = -1;
	c->state = -1;
	return 0;
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: wsload echo|fanout|idle PORT PATH PID N [SENDERS] [SECONDS SIZE]\n");
		return 2;
	}
	const char *mode = argv[1];
	port = atoi(argv[2]);
	path = argv[3];
	int pid = atoi(argv[4]), n = atoi(argv[5]), senders = 0;
	double seconds = 0;
	mode_echo = strcmp(mode, "echo") == 0;
	if (mode_echo && argc == 8) {
		seconds = atof(argv[6]);
		msg_size = (size_t)atol(argv[7]);
	} else if (strcmp(mode, "fanout") == 0 && argc == 9) {
		senders = atoi(argv[6]);
		seconds = atof(argv[7]);
		msg_size = (size_t)atol(argv[8]);
	} else if (strcmp(mode, "idle") == 0)
		rbuf_size = 1024;
	else {
		fprintf(stderr, "wsload: bad arguments\n");
		return 2;
	}
	if (msg_size > MSG_MAX) {
		fprintf(stderr, "wsload: messages of at most %d bytes\n", MSG_MAX);
		return 2;
	}
	raise_nofile();
	int ep = epoll_create1(0);
	struct wc **conns = calloc((size_t)n, sizeof(*conns));
	struct epoll_event evs[256];

	/* Open all, a few hundred handshakes at a time. */
	int opened = 0;
	double deadline = now_s() + 60;
	while ((opened < n || npending > 0) && now_s() < deadline) {
		while (opened < n && npending < 200)
			conns[opened++] = open_conn(ep);
		int k = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < k; i++)
			on_event(evs[i].data.ptr, 0);
	}
	int open = 0;
	for (int i = 0; i < n; i++)
		open += conns[i]->state == OPEN;
	if (open < n) {
		printf("{\"error\":\"%d of %d connections opened\"}\n", open, n);
		return 1;
	}
	if (strcmp(mode, "idle") == 0) {
		char b[16];
		printf("ready\n");
		fflush(stdout);
		while (read(0, b, sizeof(b)) > 0)
			;
		return 0;
	}
	/* Let what the joins caused (notices) pass before measuring. */
	double settle = now_s() + 0.3;
	while (now_s() < settle) {
		int k = epoll_wait(ep, evs, 256, 50);
		for (int i = 0; i < k; i++)
			on_event(evs[i].data.ptr, 0);
	}
	errors = 0;
	long long t0 = cpu_ticks(pid);
	double start = now_s(), end = start + seconds;
	for (int i = 0; i < n; i++) {
		struct wc *c = conns[i];
		if (mode_echo || i * senders / n != (i + 1) * senders / n) {
			c->sender = 1;
			send_message(c);
			if (flush_out(c) < 0)
				errors++;
		}
	}
	while (now_s() < end) {
		int k = epoll_wait(ep, evs, 256, 50);
		for (int i = 0; i < k; i++)
			on_event(evs[i].data.ptr, 1);
	}
	long long t1 = cpu_ticks(pid);
	printf("{\"messages\":%lld,\"errors\":%lld,\"cpu_ticks\":%lld,\"seconds\":%.3f}\n", messages,
	    errors, t1 - t0, now_s() - start);
	return 0;
}
