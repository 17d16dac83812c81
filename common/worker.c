/*
 * worker: one worker thread: its event loop, accepting, its connections' counters
 * and access log, the snapshots its connections use and taking a reload.
 */
#include "common/server_int.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/h1.h"
#include "common/handler.h"
#include "common/http.h"
#include "common/log.h"

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

/*
 * Accepts up to n connections queued on l.  With a limit, max_connections
 * and running out of descriptors pause accepting; without (a listener a
 * reload removed, about to close: what is queued would be reset), it
 * takes what it can.
 */
static void
accept_some(struct worker *w, struct listener *l, int n, int limit)
{
	struct sockaddr_storage ss;

	for (int i = 0; i < n; i++) {
		if (limit && atomic_load(&w->srv->nconns) >= w->conf->global.max_connections) {
			pause_accept(w, "max_connections reached");
			return;
		}
		socklen_t len = sizeof(ss);
		int cfd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				if (limit)
					pause_accept(w, strerror(errno));
				return;
			}
			continue; /* ECONNABORTED and friends: that client is gone */
		}
		atomic_fetch_add(&w->srv->nconns, 1);
		h1_accept(w, cfd, (struct sockaddr *)&ss, len, l->idx);
	}
}

static void
on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	(void)fd;
	(void)what;
	accept_some(l->w, l, ACCEPT_BATCH, 1);
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
	free(s->mcache);
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

	w->tv_header = conn_timeval(w->base, g->header_timeout, &w->tv_spare[0]);
	w->tv_body = conn_timeval(w->base, g->body_timeout, &w->tv_spare[1]);
	w->tv_keepalive = conn_timeval(w->base, g->keepalive_timeout > 0 ? g->keepalive_timeout : 1,
	    &w->tv_spare[2]);
	w->tv_send = conn_timeval(w->base, g->send_timeout, &w->tv_spare[3]);
	w->tv_linger = conn_timeval(w->base, g->linger_timeout > 0 ? g->linger_timeout : 1,
	    &w->tv_spare[4]);
	/* What the transport takes of them, for every connection of the worker. */
	w->cenv.tv_send = w->tv_send;
	w->cenv.tv_linger = w->tv_linger;
	w->cenv.linger_time = g->linger_time;
	w->cenv.linger_timeout = g->linger_timeout;
}

void
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
		/* The whole queue: the kernel resets what is left at close. */
		if (!kept && l->fd >= 0)
			accept_some(w, l, (int)from->conf->listens[l->idx].backlog + ACCEPT_BATCH, 0);
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
	free(sw->snap->mcache);
	free(sw->snap);
	free(sw->listeners);
	free(sw);
}

void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t one = 1;
	struct conn *c;

	event_base_dispatch(w->base);
	while ((c = TAILQ_FIRST(&w->conns)) != NULL)
		h1_stop(c);
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

int
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

void
worker_free(struct worker *w)
{
	/* A worker that never ran still holds what it was given. */
	worker_drop_switch(w);
	if (w->snap != NULL) {
		config_drop(w->snap->conf);
		free(w->snap->mcache);
		free(w->snap);
		w->snap = NULL;
	}
	metrics_worker_free(&w->metrics);
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

