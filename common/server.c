#include "common/server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/handler.h"
#include "common/http.h"
#include "common/log.h"
#include "common/server_int.h"
#include "common/tls.h"

static void on_ticket_rotate(evutil_socket_t fd, short what, void *arg);

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

/* Stop accepting; requests in progress get shutdown_timeout to finish. */
static void
begin_graceful_stop(struct server *srv, int sig)
{
	struct timeval tv = { srv->conf->global.shutdown_timeout / 1000,
		(srv->conf->global.shutdown_timeout % 1000) * 1000 };

	atomic_store(&srv->health_failing, 1);
	if (srv->delay_timer != NULL)
		evtimer_del(srv->delay_timer);
	if (sig != 0)
		log_info("signal %d: finishing in-flight requests, then exiting", sig);
	else
		log_info("shutdown_delay passed: finishing in-flight requests, then exiting");
	notify_send(&srv->notify, "STOPPING=1\nSTATUS=finishing in-flight requests");
	signal_workers(srv, 0);
	srv->shutdown_timer = evtimer_new(srv->base, on_shutdown_timeout, srv);
	evtimer_add(srv->shutdown_timer, &tv);
}

static void
on_shutdown_delay(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	begin_graceful_stop(arg, 0);
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

/* Main-thread work of the handlers owning sections of the newest snapshot
 * (health checks, name lookups): one state per ops table. */
void
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

void
main_work_stop(struct server *srv)
{
	for (unsigned i = 0; i < srv->nmstate; i++)
		if (srv->mstate[i].ops->main_stop != NULL)
			srv->mstate[i].ops->main_stop(srv->mstate[i].state);
	free(srv->mstate);
	srv->mstate = NULL;
	srv->nmstate = 0;
}

void
routes_start(struct config *conf)
{
	for (size_t i = 0; i < conf->nroutes; i++)
		if (conf->routes[i].handler != NULL && conf->routes[i].handler->route_start != NULL)
			conf->routes[i].handler->route_start(&conf->routes[i]);
}

int
any_tls(const struct config *conf)
{
	for (size_t i = 0; i < conf->nlistens; i++)
		if (conf->listens[i].tls != NULL)
			return 1;
	return 0;
}

/*
 * Session ticket keys, shared by every worker, rotated by this thread, for
 * the life of the process (a reload keeps them, so tickets issued before it
 * still resume).  Read before privileges go at start, as the key file may
 * be root's alone; at a reload, only when the first HTTPS listener comes.
 */
int
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
		if (srv->delay_timer == NULL && srv->conf->global.shutdown_delay > 0) {
			/* Health checks fail first, while everything else is served
			 * as before, so balancers stop sending before we stop
			 * accepting; a second signal cuts the delay short. */
			struct timeval tv = { srv->conf->global.shutdown_delay / 1000,
				(srv->conf->global.shutdown_delay % 1000) * 1000 };
			log_info("signal %d: health checks fail for shutdown_delay (%lld ms), then "
			    "in-flight requests finish", (int)sig,
			    (long long)srv->conf->global.shutdown_delay);
			notify_send(&srv->notify, "STOPPING=1\nSTATUS=failing health checks for "
			    "shutdown_delay");
			atomic_store(&srv->health_failing, 1);
			srv->delay_timer = evtimer_new(srv->base, on_shutdown_delay, srv);
			evtimer_add(srv->delay_timer, &tv);
			return;
		}
		begin_graceful_stop(srv, (int)sig);
		break;
	case SIGINT:
		srv->stopping = 1;
		log_info("signal %d: stopping now", (int)sig);
		notify_send(&srv->notify, "STOPPING=1\nSTATUS=stopping");
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
		{
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			notify_send(&srv->notify, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
			    (unsigned long long)ts.tv_sec * 1000000ULL +
			    (unsigned long long)ts.tv_nsec / 1000);
		}
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

int
server_main_call(struct server *srv, struct server_call *call)
{
	atomic_store_explicit(&call->posted, 1, memory_order_release);
	ssize_t n = write(srv->call_fd[1], &call, sizeof(call));

	return n == (ssize_t)sizeof(call) ? 0 : -1;
}

static void
on_call(evutil_socket_t fd, short what, void *arg)
{
	struct server_call *call;

	(void)what;
	while (read(fd, &call, sizeof(call)) == (ssize_t)sizeof(call))
		if (atomic_load_explicit(&call->posted, memory_order_acquire))
			call->fn(arg, call->arg);
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
	/* The listeners accept (in the kernel) as soon as they are bound, so
	 * a client may signal us before our handlers are there: held until
	 * they are, instead of the default action (SIGHUP would kill us). */
	sigset_t ours, orig;
	sigemptyset(&ours);
	for (size_t i = 0; i < 5; i++)
		sigaddset(&ours, sigs[i]);
	pthread_sigmask(SIG_BLOCK, &ours, &orig);
	notify_open(&srv->notify);
	srv->access_log_fd = -1;
	srv->done_fd = srv->gc_fd = -1;
	srv->call_fd[0] = srv->call_fd[1] = -1;
	if (pipe2(srv->call_fd, O_NONBLOCK | O_CLOEXEC) < 0)
		fatal("pipe");
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
	/* Unix sockets belong to the user the workers run as, so that the
	 * mode's owner and group are that user's (a balancer in its group). */
	if (srv->run_uid != (uid_t)-1)
		listen_own(srv->conf, srv->run_uid, srv->run_gid);
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
		for (size_t j = 0; j < srv->workers[i].nlisteners; j++)
			listener_arm(&srv->workers[i], &srv->workers[i].listeners[j]);
	srv->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	done_ev = event_new(srv->base, srv->done_fd, EV_READ | EV_PERSIST, on_worker_done, srv);
	event_add(done_ev, NULL);
	srv->gc_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	gc_ev = event_new(srv->base, srv->gc_fd, EV_READ | EV_PERSIST, on_gc, srv);
	event_add(gc_ev, NULL);
	srv->reload_ev = evtimer_new(srv->base, on_reload_retry, srv);
	srv->call_ev = event_new(srv->base, srv->call_fd[0], EV_READ | EV_PERSIST, on_call, srv);
	event_add(srv->call_ev, NULL);
	for (size_t i = 0; i < 5; i++) {
		sigev[i] = evsignal_new(srv->base, sigs[i], on_signal, srv);
		event_add(sigev[i], NULL);
	}
	pthread_sigmask(SIG_SETMASK, &orig, NULL); /* what came meanwhile is ours now */
	routes_start(srv->conf);
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
		/* Listeners bound, privileges dropped, workers accepting. */
		notify_send(&srv->notify, "READY=1\nMAINPID=%d\nSTATUS=serving: %d worker%s, "
		    "configuration generation 1", (int)getpid(), srv->nworkers,
		    srv->nworkers == 1 ? "" : "s");
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
	notify_close(&srv->notify);
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
	if (srv->delay_timer != NULL)
		event_free(srv->delay_timer);
	if (srv->ticket_ev != NULL)
		event_free(srv->ticket_ev);
	if (srv->reload_ev != NULL)
		event_free(srv->reload_ev);
	if (gc_ev != NULL)
		event_free(gc_ev);
	if (srv->call_ev != NULL)
		event_free(srv->call_ev);
	tls_tickets_stop();
	for (int i = 0; i < srv->nworkers; i++)
		worker_free(&srv->workers[i]);
	free(srv->workers);
	/* The workers have let go of every snapshot but the newest. */
	gc_sweep(srv);
	free(srv->retired);
	srv->retired = NULL;
	/* Only files this process made: a start that could not bind leaves
	 * another process's socket alone. */
	if (srv->listen_fds != NULL)
		listen_unlink(srv->conf, NULL);
	fds_free(srv->listen_fds, srv->nworkers);
	srv->listen_fds = NULL;
	pid_file_remove(srv);
	if (srv->gc_fd >= 0)
		close(srv->gc_fd);
	for (int i = 0; i < 2; i++)
		if (srv->call_fd[i] >= 0)
			close(srv->call_fd[i]);
	if (srv->done_fd >= 0)
		close(srv->done_fd);
	if (srv->access_log_fd >= 0)
		close(srv->access_log_fd);
	event_base_free(srv->base);
	return rc;
}

