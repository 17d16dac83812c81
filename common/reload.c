/*
 * reload: a new configuration read aside and, when it is good, put in
 * service (SIGHUP); retired snapshots freed once no one holds them.
 */
#include "common/server_int.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/handler.h"
#include "common/log.h"

/* Frees the retired snapshots no one holds any more. */
void
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

void
on_gc(evutil_socket_t fd, short what, void *arg)
{
	uint64_t v;

	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("eventfd read");
	gc_sweep(arg);
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

/* Whether every worker has taken the newest snapshot (a reload may go). */
int
server_workers_current(struct server *srv)
{
	for (int k = 0; k < srv->nworkers; k++)
		if (atomic_load(&srv->workers[k].next) != NULL)
			return 0;
	return 1;
}

/*
 * SIGHUP, and the admin API: the file (or text, when not NULL) is read and
 * checked aside, as -t does; on any error every one is logged and nothing
 * changes.  Otherwise the new snapshot takes what stays (sockets by
 * address, servers' health by pool and name), the main thread's handler
 * work moves to it, and each worker is handed it with its sockets; the old
 * one is freed when its last connection ends (gc_sweep).
 */
int
server_reload_load(struct server *srv, const char *text, struct conf_ctx *ctx)
{
	struct config *run = srv->conf, *conf;
	struct worker_switch **sw = NULL;
	int **fds = NULL, rc = -1;
	uint64_t one = 1;

	if (!server_workers_current(srv))
		return 1;
	/* No runenv_check: what it checks (the user, the log files, pid_file,
	 * the ticket key) are restart-only keys a reload keeps as they run;
	 * checked now, as the user we became, they could only fail wrongly
	 * (a pid_file root wrote at start). */
	conf = text != NULL ? config_load_string(srv->conf_file, text, srv->handlers, ctx) :
	    config_load(srv->conf_file, srv->handlers, ctx);
	if (conf == NULL) {
		for (size_t i = 0; i < ctx->nerrors; i++)
			log_error("reload: %s", ctx->errors[i]);
		log_error("reload failed: %s has %zu error%s; configuration generation %llu stays in "
		    "service", srv->conf_file, ctx->nerrors, ctx->nerrors == 1 ? "" : "s",
		    (unsigned long long)run->generation);
		goto out;
	}
	for (size_t i = 0; i < ctx->nwarnings; i++)
		log_warnx("reload: %s", ctx->warnings[i]);
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
		if (fds != NULL)
			listen_unlink(conf, run);
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
	routes_start(conf);
	main_work_stop(srv);
	/* The files of unix:PATH listeners that go: no new client finds them
	 * (the workers close the sockets as they switch). */
	listen_unlink(run, conf);
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
	rc = 0;
	gc_sweep(srv);
out:
	/* Done, taken or not: the service manager's reload is over. */
	notify_send(&srv->notify, "READY=1\nSTATUS=configuration generation %llu in service%s",
	    (unsigned long long)srv->conf->generation, rc < 0 ? " (the last reload failed)" : "");
	config_free(conf);
	return rc;
}

void
server_reload(struct server *srv)
{
	struct conf_ctx ctx = { 0 };
	static const struct timeval soon = { 0, 20 * 1000 };

	/* A worker busy since the last reload has not taken it yet: handing
	 * it another now would give it some sockets twice.  Soon. */
	if (server_reload_load(srv, NULL, &ctx) > 0)
		evtimer_add(srv->reload_ev, &soon);
	conf_ctx_free(&ctx);
}

void
on_reload_retry(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	if (!srv->stopping)
		server_reload(srv);
}

