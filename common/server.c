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
#include <sys/stat.h>
#include <unistd.h>

#include "common/h1.h"
#include "common/handler.h"
#include "common/http.h"
#include "common/log.h"
#include "common/runenv.h"
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
	if (atomic_load(&w->srv->nconns) >= w->conf->global.max_connections) {
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
	    atomic_load(&w->srv->nconns) < w->conf->global.max_connections) {
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
		if (atomic_load(&w->srv->nconns) >= w->conf->global.max_connections) {
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

/*
 * The worker is done with snapshot s: what handlers kept for it goes, and
 * the worker's reference with it.  The main thread frees a snapshot once
 * no one holds it (handler state such as a pool's may not be freed from a
 * worker), so the last one to let go says so on gc_fd.
 */
static void
snap_release(struct worker *w, struct worker_snap *s)
{
	uint64_t one = 1;

	for (unsigned i = 0; i < w->nhstate; i++)
		if (w->hstate[i].ops->worker_release != NULL)
			w->hstate[i].ops->worker_release(w->hstate[i].state, s->conf);
	if (config_drop(s->conf) && write(w->srv->gc_fd, &one, sizeof(one)) < 0)
		log_warn("worker %d: eventfd write", w->id);
	free(s);
}

void
worker_snap_put(struct worker *w, struct worker_snap *s)
{
	struct worker_snap **pp;

	if (--s->users > 0 || s == w->snap)
		return;
	for (pp = &w->old; *pp != s; pp = &(*pp)->next)
		;
	*pp = s->next;
	snap_release(w, s);
}

int
worker_conn_follow(struct conn *c)
{
	struct worker *w = c->w;
	const char *name = c->conf->listens[c->listen_idx].name;

	/* O(listeners), once per connection and reload. */
	for (size_t i = 0; i < w->conf->nlistens; i++) {
		if (strcmp(w->conf->listens[i].name, name) != 0)
			continue;
		struct worker_snap *from = c->snap;
		c->snap = w->snap;
		c->snap->users++;
		c->conf = c->snap->conf;
		c->listen_idx = (unsigned)i;
		worker_snap_put(w, from);
		return 0;
	}
	return -1;
}

/* The global timeouts of the worker's snapshot as common timeouts (a handful
 * per event base; libevent finds one made before by its duration). */
static void
worker_set_timeouts(struct worker *w)
{
	const struct conf_global *g = &w->conf->global;
	struct timeval tv;

#define COMMON_TV(dst, ms) do { tv.tv_sec = (ms) / 1000; tv.tv_usec = ((ms) % 1000) * 1000; \
	dst = event_base_init_common_timeout(w->base, &tv); } while (0)
	COMMON_TV(w->tv_header, g->header_timeout);
	COMMON_TV(w->tv_body, g->body_timeout);
	COMMON_TV(w->tv_keepalive, g->keepalive_timeout > 0 ? g->keepalive_timeout : 1);
	COMMON_TV(w->tv_send, g->send_timeout);
	COMMON_TV(w->tv_linger, g->linger_timeout > 0 ? g->linger_timeout : 1);
#undef COMMON_TV
	/* What the transport takes of them, for every connection of the worker. */
	w->cenv.tv_send = w->tv_send;
	w->cenv.tv_linger = w->tv_linger;
	w->cenv.linger_time = g->linger_time;
	w->cenv.linger_timeout = g->linger_timeout;
}

static void
listener_arm(struct worker *w, struct listener *l)
{
	l->w = w;
	l->ev = event_new(w->base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
	if (l->ev != NULL && !w->accept_paused)
		event_add(l->ev, NULL);
}

/*
 * A reload, in the worker: the sockets of listeners that went take what
 * the kernel queued on them (on the old snapshot), then close; those that
 * stayed carry on under new events; new connections, and new requests on
 * connections whose listener stayed, take the new snapshot.  The old one
 * lives on while a connection uses it.  Never after a stop began: the
 * main thread hands over no reload then.
 */
static void
worker_switch(struct worker *w, struct worker_switch *sw)
{
	struct worker_snap *from = w->snap;
	struct conn *c;

	for (size_t i = 0; i < w->nlisteners; i++) {
		struct listener *l = &w->listeners[i];
		int kept = 0;
		for (size_t k = 0; k < sw->snap->conf->nlistens && !kept; k++)
			kept = sw->listeners[k].fd == l->fd;
		if (l->ev != NULL)
			event_free(l->ev);
		l->ev = NULL; /* a pause in on_accept walks the array */
		if (!kept && l->fd >= 0 && !w->accept_paused)
			on_accept(l->fd, EV_READ, l);
		if (!kept && l->fd >= 0)
			close(l->fd);
	}
	free(w->listeners);
	w->listeners = sw->listeners;
	w->nlisteners = sw->snap->conf->nlistens;
	for (size_t i = 0; i < w->nlisteners; i++)
		listener_arm(w, &w->listeners[i]);
	w->snap = sw->snap;
	w->conf = w->snap->conf;
	worker_set_timeouts(w);
	for (unsigned i = 0; i < w->nhstate; i++)
		if (w->hstate[i].ops->worker_switch != NULL)
			w->hstate[i].ops->worker_switch(w->hstate[i].state, w->base, from->conf, w->conf);
	/* Older now; held across the loop below, then let go of like any. */
	from->next = w->old;
	w->old = from;
	from->users++;
	/* Idle keep-alive connections move now, so the old snapshot goes
	 * soon; one whose listener went stays, and closes after its next
	 * request (closing it now could reset a request on its way). */
	TAILQ_FOREACH(c, &w->conns, link)
		if (c->snap != w->snap && h1_of(c)->state == H1_IDLE && h1_of(c)->x == NULL &&
		    !c->handshaking)
			worker_conn_follow(c);
	worker_snap_put(w, from);
	free(sw);
	log_debug("worker %d: on configuration generation %llu", w->id,
	    (unsigned long long)w->conf->generation);
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
	/* A reload first: the main thread hands over no other once a stop began. */
	struct worker_switch *sw = atomic_exchange(&w->next, NULL);
	if (sw != NULL)
		worker_switch(w, sw);
	if (atomic_load(&w->stop_now)) {
		event_base_loopbreak(w->base);
		return;
	}
	if (w->draining || !atomic_load(&w->stop_soon))
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

/* A reload handed over but not taken (a stop came first): its new sockets
 * close, and its reference goes. */
static void
worker_drop_switch(struct worker *w)
{
	struct worker_switch *sw = atomic_exchange(&w->next, NULL);
	uint64_t one = 1;

	if (sw == NULL)
		return;
	for (size_t k = 0; k < sw->snap->conf->nlistens; k++) {
		int ours = 0;
		for (size_t i = 0; i < w->nlisteners && !ours; i++)
			ours = w->listeners[i].fd == sw->listeners[k].fd;
		if (!ours && sw->listeners[k].fd >= 0)
			close(sw->listeners[k].fd);
	}
	if (config_drop(sw->snap->conf) && write(w->srv->gc_fd, &one, sizeof(one)) < 0)
		log_warn("worker %d: eventfd write", w->id);
	free(sw->snap);
	free(sw->listeners);
	free(sw);
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
	worker_drop_switch(w);
	if (w->snap != NULL)
		snap_release(w, w->snap);
	w->snap = NULL;
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
	struct config *conf = srv->conf;
	const struct conf_global *g = &conf->global;
	static const struct timeval second = { 1, 0 };

	w->id = id;
	w->srv = srv;
	w->log_budget = CLIENT_ERROR_LOG_PER_SEC;
	w->blog_budget = BACKEND_ERROR_LOG_PER_SEC;
	if ((w->snap = calloc(1, sizeof(*w->snap))) == NULL)
		return -1;
	config_hold(conf);
	w->snap->conf = conf;
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
	worker_set_timeouts(w);
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
	/* A worker that never ran still holds what it was given. */
	worker_drop_switch(w);
	if (w->snap != NULL) {
		config_drop(w->snap->conf);
		free(w->snap);
		w->snap = NULL;
	}
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

static void on_ticket_rotate(evutil_socket_t fd, short what, void *arg);

static void
fds_free(int **fds, int nworkers)
{
	if (fds == NULL)
		return;
	for (int k = 0; k < nworkers; k++)
		free(fds[k]);
	free(fds);
}

/* The listener of run at l's address not taken by another yet, or -1. */
static int
same_address(const struct config *run, const unsigned char *taken, const struct conf_listen *l)
{
	for (size_t j = 0; j < run->nlistens; j++) {
		const struct conf_listen *o = &run->listens[j];
		if (!taken[j] && o->addrlen == l->addrlen && memcmp(&o->addr, &l->addr, l->addrlen) == 0)
			return (int)j;
	}
	return -1;
}

/*
 * The sockets of conf's listeners for every worker (SO_REUSEPORT: one
 * socket each), as a table [worker][listen].  A listener at an address the
 * running configuration run listens on keeps those sockets, so a reload
 * refuses no connection; the others are bound now (run is NULL at start).
 * Every new address is probed before any is bound, so that two listeners
 * of this process on overlapping addresses (0.0.0.0:80 and 127.0.0.1:80)
 * do not take each other for a stranger.  Returns NULL after logging why,
 * with nothing it bound left open.
 */
static int **
bind_listeners(struct server *srv, const struct config *conf, const struct config *run)
{
	size_t n = conf->nlistens;
	int **fds = calloc((size_t)srv->nworkers, sizeof(*fds));
	int *from = malloc((n + 1) * sizeof(*from));      /* index in run, or -1: new */
	unsigned char *taken = calloc(run != NULL ? run->nlistens + 1 : 1, 1);
	int ok = fds != NULL && from != NULL && taken != NULL;

	for (int k = 0; ok && k < srv->nworkers; k++)
		ok = (fds[k] = malloc((n + 1) * sizeof(**fds))) != NULL;
	if (!ok) {
		log_error("cannot set up listeners: out of memory");
		n = 0;
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		from[i] = -1;
		for (int k = 0; k < srv->nworkers; k++)
			fds[k][i] = -1;
	}
	for (size_t i = 0; i < n; i++) {
		const struct conf_listen *l = &conf->listens[i];
		uint16_t port = listen_port(l);
		if (run != NULL && (from[i] = same_address(run, taken, l)) >= 0) {
			taken[from[i]] = 1;
			continue;
		}
		/* With CAP_NET_BIND_SERVICE the bind itself will tell. */
		if (run != NULL && srv->run_uid != (uid_t)-1 && port != 0 && port < 1024) {
			log_error("%s:%d: [listen:%s] cannot bind %s: ports below 1024 need root, and "
			    "privileges went to user %s at start; a new privileged port needs a restart",
			    conf->file, l->line, l->name, l->address, conf->global.user);
			goto fail;
		}
		if (port != 0 && probe_address(l) < 0)
			goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		const struct conf_listen *l = &conf->listens[i];
		uint16_t port = 0;
		if (from[i] >= 0) {
			int backlog_changed = l->backlog != run->listens[from[i]].backlog;
			for (int k = 0; k < srv->nworkers; k++) {
				fds[k][i] = srv->listen_fds[k][from[i]];
				/* Linux takes a new backlog on a listening socket. */
				if (backlog_changed)
					listen(fds[k][i], (int)l->backlog);
			}
			continue;
		}
		for (int k = 0; k < srv->nworkers; k++)
			if ((fds[k][i] = listen_socket(l, &port)) < 0)
				goto fail;
		log_info("[listen:%s] listening on %s (port %u)", l->name, l->address, port);
	}
	free(from);
	free(taken);
	return fds;
fail:
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < srv->nworkers && from[i] < 0; k++)
			if (fds[k][i] >= 0)
				close(fds[k][i]);
	fds_free(fds, srv->nworkers);
	free(from);
	free(taken);
	return NULL;
}

static void
signal_workers(struct server *srv, int now)
{
	uint64_t one = 1;

	for (int i = 0; i < srv->nworkers; i++) {
		if (now)
			atomic_store(&srv->workers[i].stop_now, 1);
		else
			atomic_store(&srv->workers[i].stop_soon, 1);
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

/* Frees the retired snapshots no one holds any more. */
static void
gc_sweep(struct server *srv)
{
	size_t k = 0;

	for (size_t i = 0; i < srv->nretired; i++) {
		struct config *c = srv->retired[i];
		/* Acquire: pairs with the last holder's release in config_drop. */
		if (atomic_load_explicit(&c->refs, memory_order_acquire) == 0) {
			log_debug("configuration generation %llu freed", (unsigned long long)c->generation);
			config_free(c);
		} else {
			srv->retired[k++] = c;
		}
	}
	srv->nretired = k;
}

static void
on_gc(evutil_socket_t fd, short what, void *arg)
{
	uint64_t v;

	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("eventfd read");
	gc_sweep(arg);
}

/* Main-thread work of the handlers owning sections of the newest snapshot
 * (health checks, name lookups): one state per ops table. */
static void
main_work_start(struct server *srv)
{
	const struct config *conf = srv->conf;

	for (size_t i = 0; i < conf->nsections; i++) {
		const struct handler_ops *h = conf->sections[i].owner;
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
		srv->mstate[srv->nmstate].state = h->main_start(srv->base, conf);
		srv->nmstate++;
	}
}

static void
main_work_stop(struct server *srv)
{
	for (unsigned i = 0; i < srv->nmstate; i++)
		if (srv->mstate[i].ops->main_stop != NULL)
			srv->mstate[i].ops->main_stop(srv->mstate[i].state);
	free(srv->mstate);
	srv->mstate = NULL;
	srv->nmstate = 0;
}

static int
any_tls(const struct config *conf)
{
	for (size_t i = 0; i < conf->nlistens; i++)
		if (atomic_load(&conf->listens[i].tls) != NULL)
			return 1;
	return 0;
}

/*
 * Session ticket keys, shared by every worker, rotated by this thread, for
 * the life of the process (a reload keeps them, so tickets issued before it
 * still resume).  Read before privileges go at start, as the key file may
 * be root's alone; at a reload, only when the first HTTPS listener comes.
 */
static int
start_tickets(struct server *srv, const struct conf_global *g)
{
	if (tls_tickets_start(g->tls_ticket_key) < 0) {
		log_warn("cannot set up TLS session ticket keys%s%s",
		    g->tls_ticket_key ? " from " : "", g->tls_ticket_key ? g->tls_ticket_key : "");
		return -1;
	}
	struct timeval rot = { g->tls_ticket_rotate / 1000, (g->tls_ticket_rotate % 1000) * 1000 };
	srv->ticket_ev = event_new(srv->base, -1, EV_PERSIST, on_ticket_rotate, srv);
	event_add(srv->ticket_ev, &rot);
	return 0;
}

/*
 * Global keys a running process cannot take: how many workers and their
 * buffers, who it runs as, the files it opened at start.  A reload keeps
 * their running values and says so, key by key, as nginx does.
 */
#define G(f) offsetof(struct conf_global, f), sizeof(((struct conf_global *)0)->f)
static const struct {
	const char *key;
	size_t off, size;
	int str;
} restart_keys[] = {
	{ "workers", G(workers), 0 },
	{ "max_connections", G(max_connections), 0 },
	{ "user", G(user), 1 },
	{ "group", G(group), 1 },
	{ "error_log", G(error_log), 1 },
	{ "log_level", G(log_level), 0 },
	{ "access_log", G(access_log), 1 },
	{ "max_request_line", G(max_request_line), 0 },
	{ "max_header_size", G(max_header_size), 0 },
	{ "max_headers", G(max_headers), 0 },
	{ "tls_ticket_key", G(tls_ticket_key), 1 },
	{ "tls_ticket_rotate", G(tls_ticket_rotate), 0 },
	{ "pid_file", G(pid_file), 1 },
};
#undef G

/* Puts the running values of restart_keys into conf.  0, or -1 when out of memory. */
static int
keep_restart_keys(const struct config *run, struct config *conf)
{
	for (size_t i = 0; i < sizeof(restart_keys) / sizeof(restart_keys[0]); i++) {
		const char *a = (const char *)&run->global + restart_keys[i].off;
		char *b = (char *)&conf->global + restart_keys[i].off;
		int same;
		if (restart_keys[i].str) {
			const char *x = *(char *const *)a, *y = *(char **)b;
			same = x == y || (x != NULL && y != NULL && strcmp(x, y) == 0);
			if (!same) {
				char *copy = x != NULL ? strdup(x) : NULL;
				if (x != NULL && copy == NULL)
					return -1;
				free(*(char **)b);
				*(char **)b = copy;
			}
		} else {
			same = memcmp(a, b, restart_keys[i].size) == 0;
			memcpy(b, a, restart_keys[i].size);
		}
		if (same)
			continue;
		int line = conf_key_line(conf, "global", restart_keys[i].key);
		if (line > 0)
			log_warnx("reload: %s:%d: [global] %s: cannot change without a restart; the "
			    "running value stays", conf->file, line, restart_keys[i].key);
		else
			log_warnx("reload: %s: [global] %s: cannot change without a restart; the "
			    "running value stays", conf->file, restart_keys[i].key);
	}
	return 0;
}

/* Each worker's hand-over of conf and its sockets fds[worker], all made
 * before any is handed out.  NULL when out of memory. */
static struct worker_switch **
make_switches(struct server *srv, struct config *conf, int **fds)
{
	struct worker_switch **v = calloc((size_t)srv->nworkers, sizeof(*v));
	int ok = v != NULL;

	for (int k = 0; ok && k < srv->nworkers; k++) {
		struct worker_switch *sw = v[k] = calloc(1, sizeof(*sw));
		ok = sw != NULL && (sw->snap = calloc(1, sizeof(*sw->snap))) != NULL &&
		    (sw->listeners = calloc(conf->nlistens + 1, sizeof(*sw->listeners))) != NULL;
		for (size_t i = 0; ok && i < conf->nlistens; i++) {
			sw->listeners[i].fd = fds[k][i];
			sw->listeners[i].idx = (unsigned)i;
		}
		if (ok)
			sw->snap->conf = conf;
	}
	if (ok)
		return v;
	for (int k = 0; v != NULL && k < srv->nworkers; k++) {
		if (v[k] != NULL) {
			free(v[k]->snap);
			free(v[k]->listeners);
			free(v[k]);
		}
	}
	free(v);
	return NULL;
}

/*
 * SIGHUP: the file is read and checked aside, as -t does; on any error
 * every one is logged and nothing changes.  Otherwise the new snapshot
 * takes what stays (sockets by address, servers' health by pool and
 * name), the main thread's handler work moves to it, and each worker is
 * handed it with its sockets; the old one is freed when its last
 * connection ends (gc_sweep).
 */
static void
server_reload(struct server *srv)
{
	struct config *run = srv->conf, *conf;
	struct conf_ctx ctx = { 0 };
	struct worker_switch **sw = NULL;
	int **fds = NULL;
	uint64_t one = 1;
	static const struct timeval soon = { 0, 20 * 1000 };

	/* A worker busy since the last reload has not taken it yet: handing
	 * it another now would give it some sockets twice.  Soon. */
	for (int k = 0; k < srv->nworkers; k++)
		if (atomic_load(&srv->workers[k].next) != NULL) {
			evtimer_add(srv->reload_ev, &soon);
			return;
		}
	conf = config_load(srv->conf_file, srv->handlers, &ctx);
	if (conf != NULL) {
		runenv_check(&ctx, conf);
		if (ctx.nerrors > 0) {
			config_free(conf);
			conf = NULL;
		}
	}
	if (conf == NULL) {
		for (size_t i = 0; i < ctx.nerrors; i++)
			log_error("reload: %s", ctx.errors[i]);
		log_error("reload failed: %s has %zu error%s; configuration generation %llu stays in "
		    "service", srv->conf_file, ctx.nerrors, ctx.nerrors == 1 ? "" : "s",
		    (unsigned long long)run->generation);
		goto out;
	}
	for (size_t i = 0; i < ctx.nwarnings; i++)
		log_warnx("reload: %s", ctx.warnings[i]);
	struct config **rv = realloc(srv->retired, (srv->nretired + 1) * sizeof(*rv));
	if (rv != NULL)
		srv->retired = rv;
	if (rv == NULL || keep_restart_keys(run, conf) < 0) {
		log_error("reload failed: out of memory; configuration generation %llu stays in "
		    "service", (unsigned long long)run->generation);
		goto out;
	}
	if ((srv->ticket_ev == NULL && any_tls(conf) && start_tickets(srv, &conf->global) < 0) ||
	    (fds = bind_listeners(srv, conf, run)) == NULL ||
	    (sw = make_switches(srv, conf, fds)) == NULL) {
		if (fds != NULL)
			log_error("cannot hand the reload to the workers: out of memory");
		log_error("reload failed; configuration generation %llu stays in service",
		    (unsigned long long)run->generation);
		/* Sockets bound for it close; those kept are the running ones. */
		for (size_t i = 0; fds != NULL && i < conf->nlistens; i++) {
			int kept = 0;
			for (size_t j = 0; j < run->nlistens && !kept; j++)
				kept = fds[0][i] == srv->listen_fds[0][j];
			for (int k = 0; k < srv->nworkers && !kept; k++)
				close(fds[k][i]);
		}
		fds_free(fds, srv->nworkers);
		goto out;
	}
	conf->generation = run->generation + 1;
	for (size_t i = 0; i < conf->nsections; i++) {
		struct conf_section *sec = &conf->sections[i];
		const struct conf_section *old = conf_section_find(run, sec->kind, sec->name);
		if (sec->owner->section_carry != NULL && sec->data != NULL && old != NULL &&
		    old->data != NULL && old->owner == sec->owner)
			sec->owner->section_carry(sec, old);
	}
	main_work_stop(srv);
	srv->conf = conf;
	fds_free(srv->listen_fds, srv->nworkers);
	srv->listen_fds = fds;
	for (int k = 0; k < srv->nworkers; k++) {
		config_hold(conf);
		atomic_store(&srv->workers[k].next, sw[k]);
		if (write(srv->workers[k].notify_fd, &one, sizeof(one)) < 0)
			log_warn("eventfd write");
	}
	free(sw);
	srv->retired[srv->nretired++] = run;
	config_drop(run);
	main_work_start(srv);
	atomic_fetch_add(&srv->reloads, 1);
	log_info("reload: configuration generation %llu in service",
	    (unsigned long long)conf->generation);
	conf = NULL;
	gc_sweep(srv);
out:
	config_free(conf);
	conf_ctx_free(&ctx);
}

static void
on_reload_retry(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	if (!srv->stopping)
		server_reload(srv);
}

/* pid_file: written once the listeners are bound, before privileges go (as
 * nginx's is, the directory may be root's alone); removed at exit when it
 * still names this process and may be. */
static int
pid_file_write(struct server *srv)
{
	const char *path = srv->conf->global.pid_file;
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	int fd;

	if (path == NULL)
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, (size_t)n) != n) {
		log_error("cannot write pid_file %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	srv->pid_written = 1;
	return 0;
}

static void
pid_file_remove(struct server *srv)
{
	const char *path = srv->conf->global.pid_file;
	char buf[32] = { 0 };
	FILE *fp;

	if (!srv->pid_written || (fp = fopen(path, "r")) == NULL)
		return;
	int ours = fgets(buf, sizeof(buf), fp) != NULL && atoi(buf) == (int)getpid();
	fclose(fp);
	if (ours && unlink(path) < 0)
		log_debug("cannot remove pid_file %s: %s", path, strerror(errno));
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	(void)what;
	switch (sig) {
	case SIGTERM:
	case SIGQUIT:
		srv->stopping = 1;
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
		srv->stopping = 1;
		log_info("signal %d: stopping now", (int)sig);
		signal_workers(srv, 1);
		break;
	case SIGUSR1:
		reopen_logs(srv);
		break;
	case SIGHUP:
		if (srv->stopping) {
			log_info("SIGHUP: stopping; not reloading");
			break;
		}
		if (srv->handlers == NULL) {
			log_info("SIGHUP: no configuration file to reload (-r or -b)");
			break;
		}
		log_info("SIGHUP: reloading %s", srv->conf_file);
		server_reload(srv);
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
	struct event *sigev[5] = { 0 }, *done_ev = NULL, *sec_ev = NULL, *gc_ev = NULL;
	sigset_t all, old;
	int started = 0, rc = 1;
	static const struct timeval second = { 1, 0 };

	signal(SIGPIPE, SIG_IGN);
	srv->access_log_fd = -1;
	srv->done_fd = srv->gc_fd = -1;
	srv->conf->generation = 1;
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
	if ((srv->listen_fds = bind_listeners(srv, srv->conf, NULL)) == NULL)
		goto out;
	for (int k = 0; k < srv->nworkers; k++)
		for (size_t i = 0; i < srv->conf->nlistens; i++) {
			srv->workers[k].listeners[i].fd = srv->listen_fds[k][i];
			srv->workers[k].listeners[i].idx = (unsigned)i;
			srv->workers[k].listeners[i].w = &srv->workers[k];
		}
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
	if (any_tls(srv->conf) && start_tickets(srv, g) < 0)
		goto out;
	if (pid_file_write(srv) < 0)
		goto out;
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
	srv->gc_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	gc_ev = event_new(srv->base, srv->gc_fd, EV_READ | EV_PERSIST, on_gc, srv);
	event_add(gc_ev, NULL);
	srv->reload_ev = evtimer_new(srv->base, on_reload_retry, srv);
	for (size_t i = 0; i < 5; i++) {
		sigev[i] = evsignal_new(srv->base, sigs[i], on_signal, srv);
		event_add(sigev[i], NULL);
	}
	main_work_start(srv);
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
	main_work_stop(srv);
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
	if (srv->reload_ev != NULL)
		event_free(srv->reload_ev);
	if (gc_ev != NULL)
		event_free(gc_ev);
	tls_tickets_stop();
	for (int i = 0; i < srv->nworkers; i++)
		worker_free(&srv->workers[i]);
	free(srv->workers);
	/* The workers have let go of every snapshot but the newest. */
	gc_sweep(srv);
	free(srv->retired);
	srv->retired = NULL;
	fds_free(srv->listen_fds, srv->nworkers);
	srv->listen_fds = NULL;
	pid_file_remove(srv);
	if (srv->gc_fd >= 0)
		close(srv->gc_fd);
	if (srv->done_fd >= 0)
		close(srv->done_fd);
	if (srv->access_log_fd >= 0)
		close(srv->access_log_fd);
	event_base_free(srv->base);
	return rc;
}
