/*
 * Unit tests for origin/backplane.c: two hubs, as two portico processes
 * would have, share one redis-server started here on a free port.
 * Members of a room on both see every message once, in one order; rooms
 * of one name only; Redis killed: each hub delivers its own messages to
 * its own members only (backplane.h), and both are back once Redis is
 * restarted; stopped (no answer) the same; not there at start the
 * same, logged once.  Skipped when redis-server is missing (`make deps`).
 */
#include "origin/room.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "t/unit/tap.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEADLINE_MS 10000
#define MAXGOT 64

static pid_t redis_pid = -1;
static int redis_port;
static char redis_dir[64];
static char log_file[96];

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
redis_path(void)
{
	static char buf[4096];
	const char *path = getenv("PATH");

	if (path == NULL)
		path = "/usr/bin:/bin";
	for (const char *p = path; *p != '\0';) {
		size_t n = strcspn(p, ":");
		snprintf(buf, sizeof(buf), "%.*s/redis-server", (int)n, p);
		if (access(buf, X_OK) == 0)
			return buf;
		p += n + (p[n] == ':');
	}
	return access("/usr/sbin/redis-server", X_OK) == 0 ? "/usr/sbin/redis-server" : NULL;
}

static int
free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int
redis_ping(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)redis_port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { 1, 0 };
	char buf[16] = "";
	int fd = socket(AF_INET, SOCK_STREAM, 0), up = 0;

	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    write(fd, "PING\r\n", 6) == 6 && read(fd, buf, sizeof(buf) - 1) > 0)
		up = strncmp(buf, "+PONG", 5) == 0;
	close(fd);
	return up;
}

/* Starts redis-server on redis_port; 0 once it answers, -1 if it did not in time. */
static int
redis_start(const char *bin)
{
	char port[16];
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	int64_t end = now_ms() + DEADLINE_MS;

	snprintf(port, sizeof(port), "%d", redis_port);
	fflush(stdout);
	if ((redis_pid = fork()) < 0)
		return -1;
	if (redis_pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execl(bin, bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
		    "no", "--dir", redis_dir, (char *)NULL);
		_exit(127);
	}
	while (!redis_ping()) {
		if (now_ms() > end || waitpid(redis_pid, NULL, WNOHANG) != 0)
			return -1;
		nanosleep(&pause, NULL); /* bounded by the deadline */
	}
	return 0;
}

static void
redis_kill(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
	}
	redis_pid = -1;
}

static void
cleanup(void)
{
	redis_kill();
	if (log_file[0] != '\0')
		unlink(log_file);
	if (redis_dir[0] != '\0')
		rmdir(redis_dir);
}

/* Lines of the error log holding text. */
static int
log_count(const char *text)
{
	char line[512];
	int n = 0;
	FILE *f = fopen(log_file, "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, text) != NULL;
	if (f != NULL)
		fclose(f);
	return n;
}

/* ---- members ---- */

struct tmember {
	struct room_member *h;
	int ngot;
	char got[MAXGOT][32];
};

static size_t
t_deliver(void *p, struct room_msg *msg, uint64_t seq)
{
	struct tmember *tm = p;
	size_t n = msg->len - msg->text_off;

	(void)seq;
	if (tm->ngot < MAXGOT) {
		if (n >= sizeof(tm->got[0]))
			n = sizeof(tm->got[0]) - 1;
		memcpy(tm->got[tm->ngot], msg->data + msg->text_off, n);
		tm->got[tm->ngot][n] = '\0';
	}
	tm->ngot++;
	return 0;
}

static void
t_drop(void *p, int code)
{
	(void)p;
	(void)code;
}

static const struct room_member_ops tops = { t_deliver, t_drop };

/* The test's encoder: "F:" before the text, which is what travels. */
static struct room_msg *
encode(void *arg, const char *text, size_t len)
{
	struct room_msg *m = room_msg_alloc(2 + len, 2);

	(void)arg;
	if (m != NULL) {
		memcpy(m->data, "F:", 2);
		memcpy(m->data + 2, text, len);
	}
	return m;
}

static void
say(struct room_hub *hub, struct room_member *m, const char *text)
{
	struct room_msg *msg = room_msg_text(hub, text, strlen(text));

	if (room_publish(m, msg) != 0)
		printf("# publish refused: %s\n", text);
	room_msg_release(msg);
}

static void
on_nothing(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

struct cond {
	int (*f)(struct cond *);
	struct room_hub *a, *b;
	struct tmember *m[4];
	int n, want;
	int64_t until;                  /* ms, for time_passed */
};

/* Runs base until c holds or the deadline passes; returns whether it held. */
static int
run_until(struct event_base *base, struct cond *c)
{
	static const struct timeval tick = { 0, 10 * 1000 };
	struct event *t = event_new(base, -1, EV_PERSIST, on_nothing, NULL);
	int64_t end = now_ms() + DEADLINE_MS;
	int r;

	event_add(t, &tick);
	while (!(r = c->f(c)) && now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return r;
}

static int
both_up(struct cond *c)
{
	return room_hub_backplane(c->a) == 1 && room_hub_backplane(c->b) == 1;
}

static int
both_down(struct cond *c)
{
	return room_hub_backplane(c->a) == 0 && room_hub_backplane(c->b) == 0;
}

static int
all_got(struct cond *c)
{
	for (int i = 0; i < c->n; i++)
		if (c->m[i]->ngot < c->want)
			return 0;
	return 1;
}

static int
time_passed(struct cond *c)
{
	return now_ms() >= c->until;
}

/* A Redis that is not there at start: rooms are local, and that is logged once. */
static void
test_no_redis(struct event_base *base)
{
	struct room_hub_conf conf = { .encode = encode, .notices = 1 };
	struct tmember m = { 0 };
	const char *why;
	char url[64];

	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", free_port());
	conf.backplane = url;
	struct room_hub *hub = room_hub_new(&conf, &why);
	struct room_worker *w = room_worker_start(hub, base);
	m.h = room_join(w, "solo", &m, &tops);
	say(hub, m.h, "hello");
	struct cond c = { .f = all_got, .m = { &m }, .n = 1, .want = 2 };
	ok(run_until(base, &c), "without Redis a member gets its join notice and its message");
	is_str(m.got[1], "hello", "... in order");
	c = (struct cond){ .f = time_passed, .until = now_ms() + 700 };
	run_until(base, &c);
	is(room_hub_backplane(hub), 0, "the backplane is down");
	room_leave(m.h);
	room_worker_stop(w);
	room_hub_free(hub);
	is(log_count("Connection refused; rooms deliver in this process only"), 1,
	    "connection refused, logged once in spite of the retries");
}

static int
same_order(struct tmember *x, struct tmember *y, int from, int to)
{
	for (int k = from; k < to && k < MAXGOT; k++)
		if (strcmp(x->got[k], y->got[k]) != 0)
			return 0;
	return 1;
}

static void
test_two_hubs(struct event_base *base, struct room_hub *ha, struct room_hub *hb)
{
	struct room_worker *wa = room_worker_start(ha, base), *wb = room_worker_start(hb, base);
	struct tmember a1 = { 0 }, a2 = { 0 }, b1 = { 0 }, b2 = { 0 };
	struct cond c = { .f = both_up, .a = ha, .b = hb };
	char text[32];
	struct sbuf s = { 0 };

	ok(run_until(base, &c), "both backplanes up");
	room_hub_status(ha, &s);
	ok(s.p != NULL && strstr(s.p, "\"backplane\":\"up\"") != NULL, "status says up");
	a1.h = room_join(wa, "r", &a1, &tops);
	a2.h = room_join(wa, "r", &a2, &tops);
	b1.h = room_join(wb, "r", &b1, &tops);
	b2.h = room_join(wb, "s", &b2, &tops);
	for (int k = 0; k < 10; k++) {
		snprintf(text, sizeof(text), "a%d", k);
		say(ha, a1.h, text);
		snprintf(text, sizeof(text), "b%d", k);
		say(hb, b1.h, text);
	}
	say(hb, b2.h, "s0");
	c = (struct cond){ .f = all_got, .m = { &a1, &a2, &b1, &b2 }, .n = 3, .want = 20 };
	ok(run_until(base, &c), "every member of r on both hubs got 20 messages");
	c = (struct cond){ .f = all_got, .m = { &b2 }, .n = 1, .want = 1 };
	ok(run_until(base, &c), "the member of s got one");
	is(a1.ngot, 20, "no more on hub A");
	is(b1.ngot, 20, "no more on hub B");
	ok(same_order(&a1, &a2, 0, 20) && same_order(&a1, &b1, 0, 20),
	    "one order on both hubs (%s %s %s ... %s)", a1.got[0], a1.got[1], a1.got[2], a1.got[19]);
	int mine = 0;
	for (int k = 0, next = 0; k < 20; k++)
		if (a1.got[k][0] == 'a' && atoi(a1.got[k] + 1) == next)
			next++, mine++;
	is(mine, 10, "each hub's own messages in the order it sent them");
	is_str(b2.got[0], "s0", "room s got its message");
	is(b2.ngot, 1, "and nothing of room r");

	/* Redis stops answering (the connections stay): down within the timeout. */
	int64_t t0 = now_ms();
	kill(redis_pid, SIGSTOP);
	c = (struct cond){ .f = both_down, .a = ha, .b = hb };
	ok(run_until(base, &c), "a Redis that does not answer is taken for down");
	/* An idle second, then a PING unanswered for BP_TIMEOUT_MS: about 3s. */
	ok(now_ms() - t0 < 6000, "... within the idle PING and its timeout (%lldms)",
	    (long long)(now_ms() - t0));
	say(ha, a1.h, "stalled-a");
	c = (struct cond){ .f = all_got, .m = { &a1, &a2 }, .n = 2, .want = 21 };
	ok(run_until(base, &c), "meanwhile hub A's members get A's messages");
	kill(redis_pid, SIGCONT);
	c = (struct cond){ .f = both_up, .a = ha, .b = hb };
	ok(run_until(base, &c), "both up again once it answers");
	is(b1.ngot, 20, "hub B never saw A's local message");
	b1.ngot = 21; /* keep the counts aligned: slot 20 is A's local one */
	strcpy(b1.got[20], "stalled-a");

	/* Redis goes: each hub is on its own. */
	redis_kill();
	c = (struct cond){ .f = both_down, .a = ha, .b = hb };
	ok(run_until(base, &c), "both backplanes see Redis gone");
	say(ha, a1.h, "alone-a");
	say(hb, b1.h, "alone-b");
	c = (struct cond){ .f = all_got, .m = { &a1, &a2, &b1 }, .n = 3, .want = 22 };
	ok(run_until(base, &c), "while down, members get their own hub's message");
	is_str(a2.got[21], "alone-a", "hub A's members got A's");
	is_str(b1.got[21], "alone-b", "hub B's members got B's");
	is(a1.ngot, 22, "... and not the other hub's");

	/* Redis is back (same port): so is the backplane. */
	ok(redis_start(redis_path()) == 0, "redis-server restarted");
	c = (struct cond){ .f = both_up, .a = ha, .b = hb };
	ok(run_until(base, &c), "both backplanes up again");
	say(ha, a1.h, "back-a");
	say(hb, b1.h, "back-b");
	c = (struct cond){ .f = all_got, .m = { &a1, &a2, &b1 }, .n = 3, .want = 24 };
	ok(run_until(base, &c), "after the restart, messages cross again");
	ok(same_order(&a1, &b1, 22, 24) && same_order(&a1, &a2, 22, 24),
	    "one order on both (%s, %s)", a1.got[22], a1.got[23]);
	room_leave(a1.h);
	room_leave(a2.h);
	room_leave(b1.h);
	room_leave(b2.h);
	is(room_hub_rooms(ha) + room_hub_rooms(hb), 0, "rooms gone on both");
	room_worker_stop(wa);
	room_worker_stop(wb);
	sbuf_free(&s);
}

int
main(void)
{
	const char *bin = redis_path(), *why = NULL;
	char url[64];

	if (bin == NULL) {
		printf("1..0 # SKIP redis-server not found (make deps installs it)\n");
		return 0;
	}
	snprintf(redis_dir, sizeof(redis_dir), "/tmp/portico-bp-XXXXXX");
	if (mkdtemp(redis_dir) == NULL || (redis_port = free_port()) < 0) {
		printf("1..0 # SKIP no temporary directory or port\n");
		return 0;
	}
	atexit(cleanup);
	signal(SIGPIPE, SIG_IGN);
	snprintf(log_file, sizeof(log_file), "%s/error.log", redis_dir);
	log_open(log_file, LOG_LVL_INFO);
	if (redis_start(bin) < 0) {
		printf("1..0 # SKIP redis-server did not start\n");
		return 0;
	}
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", redis_port);
	struct room_hub_conf conf = { .encode = encode, .backplane = url, .prefix = "t[1]:" };
	struct room_hub *ha = room_hub_new(&conf, &why), *hb = room_hub_new(&conf, &why);
	ok(ha != NULL && hb != NULL, "two hubs on %s", url);
	conf.backplane = "http://x";
	ok(room_hub_new(&conf, &why) == NULL, "a URL not redis:// is refused");
	is_str(why, "expected redis://HOST:PORT", "... saying so");
	struct event_base *base = event_base_new();
	if (ha != NULL && hb != NULL)
		test_two_hubs(base, ha, hb);
	test_no_redis(base);
	room_hub_free(ha);
	room_hub_free(hb);
	event_base_free(base);
	/* Two incidents (stopped, killed) on each of two hubs, one without Redis. */
	is(log_count("rooms deliver in this process only until it is back"), 5,
	    "each outage logged once per hub");
	is(log_count("no answer within the timeout"), 2, "... the stopped one as no answer");
	is(log_count("up again after"), 4, "and each end of one once");
	log_close();
	return done_testing();
}
