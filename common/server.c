#include "common/server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/h1.h"
#include "common/handler.h"
#include "common/http.h"
#include "common/log.h"
#include "common/tls.h"

#define ACCEPT_BATCH 64
#define ALOG_FLUSH_AT (32 * 1024)
#define ALOG_CAP (64 * 1024)

void
worker_update_time(struct worker *w)
{
	struct timeval tv;
	struct tm tm;

	event_base_gettimeofday_cached(w->base, &tv);
	if (tv.tv_sec == w->date_sec)
		return;
	w->date_sec = tv.tv_sec;
	http_date(tv.tv_sec, w->date, sizeof(w->date));
	gmtime_r(&tv.tv_sec, &tm);
	strftime(w->logtime, sizeof(w->logtime), "%d/%b/%Y:%H:%M:%S +0000", &tm);
	strftime(w->isotime, sizeof(w->isotime), "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
alog_flush(struct worker *w)
{
	size_t off = 0;

	while (off < w->alog_len) {
		ssize_t n = write(w->srv->access_log_fd, w->alog + off, w->alog_len - off);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			break; /* a full disk must not stop serving; the lines are lost */
		}
		off += (size_t)n;
	}
	w->alog_len = 0;
}

void
worker_access_log(struct worker *w, const char *line, size_t len)
{
	if (w->alog == NULL && (w->alog = malloc(ALOG_CAP)) == NULL)
		return;
	if (w->alog_len + len > ALOG_CAP)
		alog_flush(w);
	if (len > ALOG_CAP)
		len = ALOG_CAP;
	memcpy(w->alog + w->alog_len, line, len);
	w->alog_len += len;
	if (w->alog_len >= ALOG_FLUSH_AT)
		alog_flush(w);
}

static void
listeners_enable(struct worker *w, int on)
{
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].ev == NULL)
			continue;
		if (on)
			event_add(w->listeners[i].ev, NULL);
		else
			event_del(w->listeners[i].ev);
	}
}

static void
pause_accept(struct worker *w, const char *why)
{
	static const struct timeval retry = { 0, 100 * 1000 };

	if (!w->accept_paused)
		log_warnx("worker %d: not accepting for now: %s", w->id, why);
	w->accept_paused = 1;
	listeners_enable(w, 0);
	evtimer_add(w->resume_ev, &retry);
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if (w->draining || !w->accept_paused)
		return;
	if (atomic_load(&w->srv->nconns) >= w->srv->conf->global.max_connections) {
		static const struct timeval retry = { 0, 100 * 1000 };
		evtimer_add(w->resume_ev, &retry);
		return;
	}
	w->accept_paused = 0;
	listeners_enable(w, 1);
	log_info("worker %d: accepting again", w->id);
}

static void
worker_finish_if_drained(struct worker *w)
{
	if (w->draining && w->nconns == 0)
		event_base_loopbreak(w->base);
}

void
worker_conn_closed(struct worker *w)
{
	atomic_fetch_sub(&w->srv->nconns, 1);
	if (w->accept_paused && !w->draining &&
	    atomic_load(&w->srv->nconns) < w->srv->conf->global.max_connections) {
		evtimer_del(w->resume_ev);
		on_resume(-1, 0, w);
	}
	worker_finish_if_drained(w);
}

static void
on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	struct worker *w = l->w;
	struct sockaddr_storage ss;

	(void)what;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		if (atomic_load(&w->srv->nconns) >= w->srv->conf->global.max_connections) {
			pause_accept(w, "max_connections reached");
			return;
		}
		socklen_t len = sizeof(ss);
		int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				pause_accept(w, strerror(errno));
				return;
			}
			continue; /* ECONNABORTED and friends: that client is gone */
		}
		atomic_fetch_add(&w->srv->nconns, 1);
		h1_accept(w, cfd, (struct sockaddr *)&ss, len, l->idx);
	}
}

#define CLIENT_ERROR_LOG_PER_SEC 20
#define BACKEND_ERROR_LOG_PER_SEC 20

int
worker_log_client_error(struct worker *w)
{
	if (w->log_budget > 0) {
		w->log_budget--;
		return 1;
	}
	w->log_suppressed++;
	return 0;
}

int
worker_log_backend_error(struct worker *w)
{
	if (w->blog_budget > 0) {
		w->blog_budget--;
		return 1;
	}
	w->blog_suppressed++;
	return 0;
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if (w->log_suppressed > 0)
		log_info("worker %d: %u more client error%s in the last second not logged",
		    w->id, w->log_suppressed, w->log_suppressed == 1 ? "" : "s");
	w->log_suppressed = 0;
	w->log_budget = CLIENT_ERROR_LOG_PER_SEC;
	if (w->blog_suppressed > 0)
		log_info("worker %d: %u more backend error%s in the last second not logged",
		    w->id, w->blog_suppressed, w->blog_suppressed == 1 ? "" : "s");
	w->blog_suppressed = 0;
	w->blog_budget = BACKEND_ERROR_LOG_PER_SEC;
	if (w->alog_len > 0)
		alog_flush(w);
}

static void
on_notify(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	uint64_t v;
	struct conn *c, *next;

	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("worker %d: eventfd read", w->id);
	if (atomic_load(&w->stop_now)) {
		event_base_loopbreak(w->base);
		return;
	}
	if (w->draining)
		return;
	w->draining = 1;
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].ev != NULL) {
			event_free(w->listeners[i].ev);
			w->listeners[i].ev = NULL;
		}
		close(w->listeners[i].fd);
		w->listeners[i].fd = -1;
	}
	evtimer_del(w->resume_ev);
	for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		h1_drain(c);
	}
	worker_finish_if_drained(w);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t one = 1;
	struct conn *c;

	event_base_dispatch(w->base);
	while ((c = TAILQ_FIRST(&w->conns)) != NULL)
		conn_close(c, "process stopping");
	if (w->alog_len > 0)
		alog_flush(w);
	if (write(w->srv->done_fd, &one, sizeof(one)) < 0)
		log_warn("worker %d: eventfd write", w->id);
	return NULL;
}

/* Creates one listening socket for l; port 0 takes *port_io once chosen. */
static int
listen_socket(const struct conf_listen *l, uint16_t *port_io)
{
	struct sockaddr_storage ss = l->addr;
	int one = 1;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		log_warn("[listen:%s] socket", l->name);
		return -1;
	}
	if (*port_io != 0) {
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons(*port_io);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(*port_io);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		log_warn("[listen:%s] SO_REUSEPORT", l->name);
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, l->addrlen) < 0) {
		log_warn("[listen:%s] cannot bind %s", l->name, l->address);
		close(fd);
		return -1;
	}
	if (listen(fd, (int)l->backlog) < 0) {
		log_warn("[listen:%s] listen on %s", l->name, l->address);
		close(fd);
		return -1;
	}
	if (*port_io == 0) {
		socklen_t len = sizeof(ss);
		getsockname(fd, (struct sockaddr *)&ss, &len);
		*port_io = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
		    ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return fd;
}

static int
cpu_count(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/*
 * Looks up the user (and group) privileges will be dropped to, when started
 * as root, so log files can be given to it before it takes over.  The
 * configuration check has looked them up too; this catches a user removed
 * since.
 */
static int
resolve_user(struct server *srv)
{
	const struct conf_global *g = &srv->conf->global;
	struct passwd *pw;

	srv->run_uid = (uid_t)-1;
	srv->run_gid = (gid_t)-1;
	if (g->user == NULL)
		return 0;
	if (geteuid() != 0) {
		log_warnx("user = %s ignored: not started as root", g->user);
		return 0;
	}
	if ((pw = getpwnam(g->user)) == NULL) {
		log_error("user = %s: no such user", g->user);
		return -1;
	}
	srv->run_uid = pw->pw_uid;
	srv->run_gid = pw->pw_gid;
	if (g->group != NULL) {
		struct group *gr = getgrnam(g->group);
		if (gr == NULL) {
			log_error("group = %s: no such group", g->group);
			return -1;
		}
		srv->run_gid = gr->gr_gid;
	}
	return 0;
}

static int
drop_privileges(struct server *srv)
{
	const char *user = srv->conf->global.user;

	if (srv->run_uid == (uid_t)-1)
		return 0;
	if (setgroups(1, &srv->run_gid) < 0 || setgid(srv->run_gid) < 0 ||
	    setuid(srv->run_uid) < 0) {
		log_error("cannot become user %s: %s", user, strerror(errno));
		return -1;
	}
	log_info("running as user %s, group %d", user, (int)srv->run_gid);
	return 0;
}

static void
raise_fd_limit(uint64_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("setrlimit NOFILE");
}

/* The transport's ways back to its worker (struct conn_env). */
static int
worker_log_ok(void *owner)
{
	return worker_log_client_error(owner);
}

static void
worker_conn_gone(void *owner)
{
	worker_conn_closed(owner);
}

static int
worker_init(struct server *srv, struct worker *w, int id)
{
	const struct config *conf = srv->conf;
	const struct conf_global *g = &conf->global;
	struct timeval tv;
	static const struct timeval second = { 1, 0 };

	w->id = id;
	w->srv = srv;
	w->log_budget = CLIENT_ERROR_LOG_PER_SEC;
	w->blog_budget = BACKEND_ERROR_LOG_PER_SEC;
	w->conf = conf;
	TAILQ_INIT(&w->conns);
	if ((w->base = event_base_new()) == NULL)
		return -1;
	w->limits.max_request_line = g->max_request_line;
	w->limits.max_header_size = g->max_header_size;
	w->limits.max_headers = (unsigned)g->max_headers;
	/* A buffer always holds a whole head, so the parser's limits decide. */
	freelist_init(&w->rbufs, g->max_request_line + g->max_header_size + 1024, 256);
	freelist_init(&w->heads, sizeof(struct exchange) + g->max_request_line + 1, 256);
#define COMMON_TV(dst, ms) do { tv.tv_sec = (ms) / 1000; tv.tv_usec = ((ms) % 1000) * 1000; \
	dst = event_base_init_common_timeout(w->base, &tv); } while (0)
	COMMON_TV(w->tv_header, g->header_timeout);
	COMMON_TV(w->tv_body, g->body_timeout);
	COMMON_TV(w->tv_keepalive, g->keepalive_timeout > 0 ? g->keepalive_timeout : 1);
	COMMON_TV(w->tv_send, g->send_timeout);
	COMMON_TV(w->tv_linger, g->linger_timeout > 0 ? g->linger_timeout : 1);
#undef COMMON_TV
	w->cenv = (struct conn_env){
		.base = w->base,
		.bufs = &w->rbufs,
		.stats = &w->stats,
		.tv_send = w->tv_send,
		.tv_linger = w->tv_linger,
		.linger_time = g->linger_time,
		.linger_timeout = g->linger_timeout,
		.owner = w,
		.log_ok = worker_log_ok,
		.closed = worker_conn_gone,
	};
	w->nlisteners = conf->nlistens;
	w->listeners = calloc(conf->nlistens, sizeof(struct listener));
	for (size_t i = 0; w->listeners != NULL && i < conf->nlistens; i++)
		w->listeners[i].fd = -1;
	if (w->listeners == NULL)
		return -1;
	w->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->notify_fd < 0)
		return -1;
	w->notify_ev = event_new(w->base, w->notify_fd, EV_READ | EV_PERSIST, on_notify, w);
	w->resume_ev = evtimer_new(w->base, on_resume, w);
	w->tick_ev = event_new(w->base, -1, EV_PERSIST, on_tick, w);
	event_add(w->notify_ev, NULL);
	event_add(w->tick_ev, &second);
	return 0;
}

void *
worker_handler_state(struct worker *w, const struct handler_ops *ops)
{
	for (unsigned i = 0; i < w->nhstate; i++)
		if (w->hstate[i].ops == ops)
			return w->hstate[i].state;
	if (ops->worker_new == NULL)
		return NULL;
	struct ops_state *v = realloc(w->hstate, (w->nhstate + 1) * sizeof(*v));
	if (v == NULL)
		return NULL;
	w->hstate = v;
	void *st = ops->worker_new();
	if (st == NULL)
		return NULL;
	w->hstate[w->nhstate].ops = ops;
	w->hstate[w->nhstate].state = st;
	w->nhstate++;
	return st;
}

static void
worker_free(struct worker *w)
{
	for (unsigned i = 0; i < w->nhstate; i++)
		w->hstate[i].ops->worker_free(w->hstate[i].state);
	free(w->hstate);
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].ev != NULL)
			event_free(w->listeners[i].ev);
		if (w->listeners[i].fd >= 0)
			close(w->listeners[i].fd);
	}
	free(w->listeners);
	if (w->notify_ev != NULL)
		event_free(w->notify_ev);
	if (w->resume_ev != NULL)
		event_free(w->resume_ev);
	if (w->tick_ev != NULL)
		event_free(w->tick_ev);
	if (w->notify_fd > 0)
		close(w->notify_fd);
	freelist_destroy(&w->rbufs);
	freelist_destroy(&w->heads);
	free(w->alog);
	if (w->base != NULL)
		event_base_free(w->base);
}

/*
 * SO_REUSEPORT lets every worker have its own socket on one address, but it
 * would equally let a second portico (same user) join the address and take
 * half the connections.  A socket without SO_REUSEPORT cannot be bound where
 * any other socket listens, so binding one first, then closing it, tells
 * whether the address is free.  Returns 0 when it is, -1 (logged) when not.
 *
 * There is a small race: a process that probes between our probe and our
 * listen() also finds the address free, and the two then share it.  Closing
 * that window would need an exclusive claim on the address, which the kernel
 * does not offer alongside SO_REUSEPORT; it takes two starts within
 * microseconds of each other.  SO_REUSEADDR stays on so that connections of
 * a previous run in TIME_WAIT do not block a restart.  Port 0 needs no
 * probe: the kernel only picks a port that no socket is bound to.
 */
static int
probe_address(const struct conf_listen *l)
{
	int one = 1, rc = 0;
	int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		log_warn("[listen:%s] socket", l->name);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* As the real sockets: [::] must not collide with 0.0.0.0. */
	if (l->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0) {
		if (errno == EADDRINUSE)
			log_warnx("[listen:%s] cannot bind %s: address already in use "
			    "(another process listens there)", l->name, l->address);
		else
			log_warn("[listen:%s] cannot bind %s", l->name, l->address);
		rc = -1;
	}
	close(fd);
	return rc;
}

static uint16_t
listen_port(const struct conf_listen *l)
{
	const struct sockaddr_storage *ss = &l->addr;

	return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port :
	    ((const struct sockaddr_in6 *)ss)->sin6_port);
}

/*
 * Binds every listener for every worker (SO_REUSEPORT: one socket each).
 * Every address is probed before any is bound, so that two listeners of this
 * process on overlapping addresses (0.0.0.0:80 and 127.0.0.1:80) do not take
 * each other for a stranger.
 */
static int
open_listeners(struct server *srv)
{
	const struct config *conf = srv->conf;

	for (size_t i = 0; i < conf->nlistens; i++)
		if (listen_port(&conf->listens[i]) != 0 && probe_address(&conf->listens[i]) < 0)
			return -1;
	for (size_t i = 0; i < conf->nlistens; i++) {
		uint16_t port = 0;
		for (int k = 0; k < srv->nworkers; k++) {
			struct listener *ls = &srv->workers[k].listeners[i];
			ls->fd = listen_socket(&conf->listens[i], &port);
			ls->idx = (unsigned)i;
			ls->w = &srv->workers[k];
			if (ls->fd < 0)
				return -1;
		}
		log_info("[listen:%s] listening on %s (port %u)", conf->listens[i].name,
		    conf->listens[i].address, port);
	}
	return 0;
}

static void
signal_workers(struct server *srv, int now)
{
	uint64_t one = 1;

	for (int i = 0; i < srv->nworkers; i++) {
		if (now)
			atomic_store(&srv->workers[i].stop_now, 1);
		if (write(srv->workers[i].notify_fd, &one, sizeof(one)) < 0)
			log_warn("eventfd write");
	}
}

static void
on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	uint64_t open = 0;

	(void)fd;
	(void)what;
	for (int i = 0; i < srv->nworkers; i++)
		open += stats_get(&srv->workers[i].stats.connections_active);
	log_warnx("shutdown_timeout passed: closing %llu connection%s still open",
	    (unsigned long long)open, open == 1 ? "" : "s");
	signal_workers(srv, 1);
}

/* Whether the access log is a file (not off, stdout or stderr). */
static int
access_log_is_file(const char *path)
{
	return path != NULL && strcmp(path, "off") != 0 && strcmp(path, "stdout") != 0 &&
	    strcmp(path, "stderr") != 0;
}

/*
 * SIGUSR1: a file renamed by a log rotation is replaced by a new one under
 * its name.  A file that cannot be opened leaves the old one in use, and
 * the failure is the last word: success is claimed only when both worked.
 */
static void
reopen_logs(struct server *srv)
{
	const char *alog = srv->conf->global.access_log;
	int failed = 0;

	if (log_reopen() < 0) {
		log_error("SIGUSR1: cannot reopen error_log %s: %s; the old file stays in use",
		    log_path(), strerror(errno));
		failed = 1;
	}
	if (srv->access_log_fd >= 0 && access_log_is_file(alog)) {
		int fd = log_file_open(alog);
		if (fd < 0) {
			log_error("SIGUSR1: cannot reopen access_log %s: %s; the old file stays in use",
			    alog, strerror(errno));
			failed = 1;
		} else {
			/* dup2 swaps the file under the workers' feet atomically */
			dup2(fd, srv->access_log_fd);
			close(fd);
		}
	}
	if (!failed)
		log_info("SIGUSR1: log files reopened");
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	(void)what;
	switch (sig) {
	case SIGTERM:
	case SIGQUIT:
		if (srv->shutdown_timer != NULL)
			return;
		log_info("signal %d: finishing in-flight requests, then exiting", (int)sig);
		signal_workers(srv, 0);
		{
			struct timeval tv = { srv->conf->global.shutdown_timeout / 1000,
				(srv->conf->global.shutdown_timeout % 1000) * 1000 };
			srv->shutdown_timer = evtimer_new(srv->base, on_shutdown_timeout, srv);
			evtimer_add(srv->shutdown_timer, &tv);
		}
		break;
	case SIGINT:
		log_info("signal %d: stopping now", (int)sig);
		signal_workers(srv, 1);
		break;
	case SIGUSR1:
		reopen_logs(srv);
		break;
	case SIGHUP:
		/* Certificates and keys are read again; the rest of the
		 * configuration needs a restart. */
		switch (tls_reload(srv->conf)) {
		case -1:
			log_info("SIGHUP: no HTTPS listener, nothing reloaded; configuration "
			    "changes need a restart");
			break;
		case 0:
			log_info("SIGHUP: certificates reloaded; other configuration changes "
			    "need a restart");
			break;
		}
		break;
	}
}

static void
on_worker_done(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	uint64_t v = 0;

	(void)what;
	if (read(fd, &v, sizeof(v)) < 0)
		return;
	if (atomic_fetch_sub(&srv->workers_left, (int)v) - (int)v <= 0)
		event_base_loopbreak(srv->base);
}

static void
on_ticket_rotate(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	tls_tickets_rotate();
}

static void
on_second(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	uint64_t total = 0;
	unsigned pos = (atomic_load(&srv->rps_pos) + 1) % (SERVER_RPS_WINDOW + 1);

	(void)fd;
	(void)what;
	for (int i = 0; i < srv->nworkers; i++)
		total += stats_get(&srv->workers[i].stats.requests);
	atomic_store(&srv->rps_ring[pos], total);
	atomic_store(&srv->rps_pos, pos);
	if (pos == SERVER_RPS_WINDOW)
		atomic_store(&srv->rps_filled, 1);
}

double
server_rps(struct server *srv)
{
	unsigned pos = atomic_load(&srv->rps_pos);
	int filled = atomic_load(&srv->rps_filled);
	unsigned oldest = filled ? (pos + 1) % (SERVER_RPS_WINDOW + 1) : 0;
	unsigned span = filled ? SERVER_RPS_WINDOW : pos;

	if (span == 0)
		return 0.0;
	return (double)(atomic_load(&srv->rps_ring[pos]) - atomic_load(&srv->rps_ring[oldest])) / span;
}

void
server_stats(struct server *srv, struct stats *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < srv->nworkers; i++)
		stats_sum(out, &srv->workers[i].stats);
}

int
server_run(struct server *srv)
{
	const struct conf_global *g = &srv->conf->global;
	static const int sigs[] = { SIGTERM, SIGQUIT, SIGINT, SIGUSR1, SIGHUP };
	struct event *sigev[5] = { 0 }, *done_ev = NULL, *sec_ev = NULL;
	sigset_t all, old;
	int started = 0, rc = 1;
	static const struct timeval second = { 1, 0 };

	signal(SIGPIPE, SIG_IGN);
	srv->access_log_fd = -1;
	srv->nworkers = g->workers > 0 ? g->workers : cpu_count();
	/* Connections, listeners, and the open-file caches (FCACHE_SLOTS files each). */
	raise_fd_limit(g->max_connections + (uint64_t)srv->nworkers * (srv->conf->nlistens + 3 * 1024) + 64);
	time(&srv->start_time);
	clock_gettime(CLOCK_MONOTONIC, &srv->start_mono);
	if ((srv->base = event_base_new()) == NULL)
		fatalx("cannot create the main event loop");
	srv->workers = calloc((size_t)srv->nworkers, sizeof(*srv->workers));
	if (srv->workers == NULL)
		fatalx("out of memory");
	for (int i = 0; i < srv->nworkers; i++)
		if (worker_init(srv, &srv->workers[i], i) < 0)
			fatalx("cannot set up worker %d", i);
	if (open_listeners(srv) < 0)
		goto out;
	if (resolve_user(srv) < 0) {
		rc = EXIT_CONFIG;
		goto out;
	}
	if (log_set_owner(srv->run_uid, srv->run_gid) < 0) {
		log_error("cannot give error_log %s to user %s: %s", log_path(), g->user,
		    strerror(errno));
		rc = EXIT_CONFIG;
		goto out;
	}
	if (g->access_log != NULL && strcmp(g->access_log, "stdout") == 0) {
		srv->access_log_fd = dup(STDOUT_FILENO);
	} else if (g->access_log != NULL && strcmp(g->access_log, "stderr") == 0) {
		srv->access_log_fd = dup(STDERR_FILENO);
	} else if (access_log_is_file(g->access_log)) {
		srv->access_log_fd = log_file_open(g->access_log);
		if (srv->access_log_fd < 0) {
			log_error("cannot open access_log %s: %s", g->access_log, strerror(errno));
			rc = EXIT_CONFIG;
			goto out;
		}
	}
	/* Session ticket keys, shared by every worker, rotated by this thread;
	 * read before privileges go, as the key file may be root's alone. */
	int any_tls = 0;
	for (size_t i = 0; i < srv->conf->nlistens; i++)
		any_tls |= atomic_load(&srv->conf->listens[i].tls) != NULL;
	if (any_tls) {
		if (tls_tickets_start(g->tls_ticket_key) < 0) {
			log_warn("cannot set up TLS session ticket keys%s%s",
			    g->tls_ticket_key ? " from " : "", g->tls_ticket_key ? g->tls_ticket_key : "");
			goto out;
		}
		struct timeval rot = { g->tls_ticket_rotate / 1000, (g->tls_ticket_rotate % 1000) * 1000 };
		srv->ticket_ev = event_new(srv->base, -1, EV_PERSIST, on_ticket_rotate, srv);
		event_add(srv->ticket_ev, &rot);
	}
	if (drop_privileges(srv) < 0) {
		rc = EXIT_CONFIG;
		goto out;
	}
	for (int i = 0; i < srv->nworkers; i++)
		for (size_t j = 0; j < srv->workers[i].nlisteners; j++) {
			struct listener *ls = &srv->workers[i].listeners[j];
			ls->ev = event_new(srv->workers[i].base, ls->fd, EV_READ | EV_PERSIST, on_accept, ls);
			event_add(ls->ev, NULL);
		}
	srv->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	done_ev = event_new(srv->base, srv->done_fd, EV_READ | EV_PERSIST, on_worker_done, srv);
	event_add(done_ev, NULL);
	for (size_t i = 0; i < 5; i++) {
		sigev[i] = evsignal_new(srv->base, sigs[i], on_signal, srv);
		event_add(sigev[i], NULL);
	}
	/* Main-thread work of the handlers owning sections (health checks). */
	for (size_t i = 0; i < srv->conf->nsections; i++) {
		const struct handler_ops *h = srv->conf->sections[i].owner;
		unsigned k;
		for (k = 0; k < srv->nmstate && srv->mstate[k].ops != h; k++)
			;
		if (k < srv->nmstate || h->main_start == NULL)
			continue;
		struct ops_state *v = realloc(srv->mstate, (srv->nmstate + 1) * sizeof(*v));
		if (v == NULL)
			fatalx("out of memory");
		srv->mstate = v;
		srv->mstate[srv->nmstate].ops = h;
		srv->mstate[srv->nmstate].state = h->main_start(srv->base, srv->conf);
		srv->nmstate++;
	}
	sec_ev = event_new(srv->base, -1, EV_PERSIST, on_second, srv);
	event_add(sec_ev, &second);
	/* Workers block every signal; the main thread takes them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	atomic_store(&srv->workers_left, srv->nworkers);
	for (int i = 0; i < srv->nworkers; i++) {
		if (pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]) != 0) {
			log_warnx("cannot start worker %d", i);
			atomic_fetch_sub(&srv->workers_left, srv->nworkers - i);
			break;
		}
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	log_info("portico %s started: %d worker%s, pid %d", PORTICO_VERSION, srv->nworkers,
	    srv->nworkers == 1 ? "" : "s", (int)getpid());
	if (started == srv->nworkers) {
		event_base_dispatch(srv->base);
		rc = 0;
	} else {
		signal_workers(srv, 1);
	}
	signal_workers(srv, 1);
	for (int i = 0; i < started; i++)
		pthread_join(srv->workers[i].thread, NULL);
	log_info("portico stopped");
out:
	for (unsigned i = 0; i < srv->nmstate; i++)
		if (srv->mstate[i].ops->main_stop != NULL)
			srv->mstate[i].ops->main_stop(srv->mstate[i].state);
	free(srv->mstate);
	srv->mstate = NULL;
	for (size_t i = 0; i < 5; i++)
		if (sigev[i] != NULL)
			event_free(sigev[i]);
	if (done_ev != NULL)
		event_free(done_ev);
	if (sec_ev != NULL)
		event_free(sec_ev);
	if (srv->shutdown_timer != NULL)
		event_free(srv->shutdown_timer);
	if (srv->ticket_ev != NULL)
		event_free(srv->ticket_ev);
	tls_tickets_stop();
	for (int i = 0; i < srv->nworkers; i++)
		worker_free(&srv->workers[i]);
	free(srv->workers);
	if (srv->access_log_fd >= 0)
		close(srv->access_log_fd);
	event_base_free(srv->base);
	return rc;
}
