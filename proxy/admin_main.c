/*
 * admin_main: the admin API's changes, in the main thread.
 *
 * How a change reaches the workers: the running snapshot is printed as -T
 * prints it, the pool's `server =` lines are replaced by the changed list,
 * and the text is put in service by server_reload_load, the code a SIGHUP
 * runs.  We chose that over swapping a pool's server table in place:
 *
 *  - it is atomic for free: one snapshot pointer per worker, handed over as
 *    at every reload; a request keeps the snapshot it started on, so a
 *    drained or removed server finishes its requests and tunnels there,
 *    and nothing new reaches it (no retirement scheme of our own);
 *  - it is validated by the same code as the file: a change the INI could
 *    not say cannot be made, and its errors read the same;
 *  - what a reload keeps, a change keeps: health, resolved addresses,
 *    idle connections, round-robin state and counters of the servers that
 *    stay (section_carry, worker_switch).
 * The cost, a whole configuration load per change (TLS contexts, files read
 * again), is the main thread's, and changes are rare.  A change lasts until
 * the next reload, which reads the file again.
 */
#include "proxy/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "proxy/pool.h"
#include "proxy/proxy.h"

#define WAIT_MS 5000                /* at most, for the workers to take the last reload */

static void run(struct admin_job *job);

static void
finish(struct admin_job *job, int status, char *body)
{
	uint64_t one = 1;

	job->status = status;
	job->body = body;
	if (write(job->efd, &one, sizeof(one)) < 0)
		log_warn("admin: cannot wake the worker");
	/* The last touch: the worker owns the job (and efd) from here. */
	atomic_store_explicit(&job->answered, 1, memory_order_release);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run(arg);
}

static void
later(struct admin_job *job, int ms)
{
	struct timeval tv = { 0, ms * 1000 };

	if (event_base_once(job->srv->base, -1, EV_TIMEOUT, on_retry, job, &tv) < 0)
		finish(job, 500, admin_error_body("out of memory", NULL));
}

/* One `server =` value for b, with field changes from job when it is the
 * one changed. */
static void
server_line(struct sbuf *out, const struct backend *b, const struct admin_job *job)
{
	unsigned weight = job != NULL && job->has_weight ? job->weight : b->weight;
	int state = job != NULL && job->has_state ? job->state : b->disabled;

	sbuf_printf(out, "server = %s weight=%u", b->name, weight);
	if (b->max_conns > 0)
		sbuf_printf(out, " max_conns=%u", b->max_conns);
	sbuf_str(out, b->backup ? " backup" : "");
	sbuf_str(out, state == BACKEND_DISABLED ? " down" : state == BACKEND_DRAIN ? " drain" : "");
	sbuf_str(out, b->tls ? " tls\n" : "\n");
}

/*
 * The running configuration's text with the [pool:NAME] server lines
 * replaced by lines.  They come first in the section (the key table's
 * order), so the new ones go right after its header.  NULL when out of
 * memory.
 */
static char *
edit(const struct config *conf, const char *pool, const char *lines)
{
	char *text = NULL, head[CONF_MAX_NAME + 16];
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	struct sbuf out = { 0 };

	if (fp == NULL)
		return NULL;
	config_dump(conf, fp);
	if (fclose(fp) != 0) {
		free(text);
		return NULL;
	}
	int hl = snprintf(head, sizeof(head), "\n[pool:%s]\n", pool);
	const char *at = strstr(text, head);
	if (at == NULL) {
		free(text);
		return NULL;
	}
	at += hl;
	sbuf_add(&out, text, (size_t)(at - text));
	sbuf_str(&out, lines);
	while (strncmp(at, "server =", 8) == 0) {
		const char *nl = strchr(at, '\n');
		at = nl != NULL ? nl + 1 : at + strlen(at);
	}
	sbuf_str(&out, at);
	sbuf_add(&out, "", 1);
	free(text);
	if (sbuf_failed(&out)) {
		sbuf_free(&out);
		return NULL;
	}
	return out.p;
}

/* Waits for every worker to take the snapshot just published, so that a
 * request made after the answer runs on it whichever worker takes it. */
static void
on_settle(evutil_socket_t fd, short what, void *arg)
{
	struct admin_job *job = arg;
	struct timeval tv = { 0, 2000 };

	(void)fd;
	(void)what;
	if (server_workers_current(job->srv) || clock_ms() > job->deadline) {
		char *body = job->body;
		job->body = NULL;
		finish(job, job->status, body);
	} else if (event_base_once(job->srv->base, -1, EV_TIMEOUT, on_settle, job, &tv) < 0) {
		on_settle(-1, 0, job); /* cannot happen but for memory: answer at the deadline */
	}
}

/* The change is in service: answer with the pool as it is now. */
static void
done(struct admin_job *job, const char *what)
{
	const struct config *conf = job->srv->conf;
	const struct conf_section *sec = conf_section_find(conf, "pool", job->pool);
	json_t *o = sec != NULL && sec->data != NULL ? admin_pool_json(sec->data) : json_object();

	log_info("admin: %s by %s; configuration generation %llu in service", what, job->who,
	    (unsigned long long)conf->generation);
	if (o != NULL && job->op == ADMIN_RELOAD)
		o = (json_decref(o), json_object());
	if (o != NULL)
		json_object_set_new(o, "generation", json_integer((json_int_t)conf->generation));
	job->status = 200;
	job->body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (job->body == NULL)
		job->status = 500, job->body = admin_error_body("out of memory", NULL);
	on_settle(-1, 0, job);
}

/* 422 (or 500 when no error was found: out of memory) with the load's errors. */
static void
failed(struct admin_job *job, const char *msg, const struct conf_ctx *ctx)
{
	json_t *errs = json_array();
	json_t *o = json_pack("{s:s,s:I,s:o}", "error", msg, "generation",
	    (json_int_t)job->srv->conf->generation, "errors", errs);

	for (size_t i = 0; o != NULL && i < ctx->nerrors; i++)
		json_array_append_new(errs, json_string(ctx->errors[i]));
	char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	finish(job, ctx->nerrors > 0 ? 422 : 500, body != NULL ? body :
	    admin_error_body("out of memory", NULL));
}

/* The server lines of p after job's change, or an answer (4xx) and -1. */
static int
new_lines(struct admin_job *job, const struct pool *p, struct sbuf *lines, char *what, size_t wlen)
{
	unsigned idx;

	for (idx = 0; idx < p->nservers && strcmp(p->servers[idx].name, job->addr) != 0; idx++)
		;
	if (job->op == ADMIN_ADD && idx < p->nservers) {
		finish(job, 409, admin_error_body("the pool has this server already", "address"));
		return -1;
	}
	if (job->op == ADMIN_ADD && p->nservers >= POOL_MAX_SERVERS) {
		finish(job, 409, admin_error_body("the pool has as many servers as it may (64)",
		    "address"));
		return -1;
	}
	if (job->op != ADMIN_ADD && idx == p->nservers) {
		finish(job, 404, admin_error_body("no such server in the pool", "address"));
		return -1;
	}
	if (job->op == ADMIN_DELETE && p->nservers == 1) {
		finish(job, 409, admin_error_body("a pool keeps at least one server: drain or "
		    "disable it instead", "address"));
		return -1;
	}
	for (unsigned i = 0; i < p->nservers; i++) {
		if (i == idx && job->op == ADMIN_DELETE)
			continue;
		server_line(lines, &p->servers[i], i == idx ? job : NULL);
	}
	if (job->op == ADMIN_ADD) {
		struct backend b = { .name = job->addr, .weight = job->has_weight ? job->weight : 1,
			.max_conns = job->max_conns, .backup = job->backup, .tls = job->tls,
			.disabled = job->has_state ? job->state : BACKEND_ENABLED };
		server_line(lines, &b, NULL);
		snprintf(what, wlen, "added server %s to pool %s", job->addr, job->pool);
	} else if (job->op == ADMIN_DELETE) {
		snprintf(what, wlen, "removed server %s from pool %s", job->addr, job->pool);
	} else {
		char w[24] = "";
		if (job->has_weight)
			snprintf(w, sizeof(w), " weight=%u", job->weight);
		snprintf(what, wlen, "set server %s of pool %s to%s%s%s", job->addr, job->pool, w,
		    job->has_state ? " state=" : "", job->has_state ?
		    (job->state == BACKEND_DRAIN ? "drain" : job->state ? "disabled" : "enabled") : "");
	}
	return 0;
}

static void
run(struct admin_job *job)
{
	struct server *srv = job->srv;
	struct conf_ctx ctx = { 0 };
	struct sbuf lines = { 0 };
	char what[CONF_MAX_NAME + 2 * ADMIN_ADDR_MAX], *text = NULL;
	int rc;

	/* A worker still taking the last reload: soon (as SIGHUP waits). */
	if (!server_workers_current(srv)) {
		if (clock_ms() > job->deadline)
			finish(job, 503, admin_error_body("a worker has not taken the last change yet; "
			    "try again", NULL));
		else
			later(job, 10);
		return;
	}
	if (srv->stopping) {
		finish(job, 503, admin_error_body("stopping", NULL));
		return;
	}
	if (job->op == ADMIN_RELOAD) {
		rc = server_reload_load(srv, NULL, &ctx);
		if (rc == 0)
			done(job, "reload");
		else
			failed(job, "reload failed; the running configuration stays", &ctx);
		goto out;
	}
	const struct conf_section *sec = conf_section_find(srv->conf, "pool", job->pool);
	if (sec == NULL || sec->owner != &proxy_ops || sec->data == NULL) {
		finish(job, 404, admin_error_body("no such pool", "pool"));
		goto out;
	}
	if (new_lines(job, sec->data, &lines, what, sizeof(what)) < 0)
		goto out;
	if (sbuf_failed(&lines) || (text = edit(srv->conf, job->pool, lines.p)) == NULL) {
		finish(job, 500, admin_error_body("out of memory", NULL));
		goto out;
	}
	rc = server_reload_load(srv, text, &ctx);
	if (rc == 0) {
		done(job, what);
	} else {
		log_warnx("admin: %s by %s failed", what, job->who);
		failed(job, "the configuration with this change does not load", &ctx);
	}
out:
	free(text);
	sbuf_free(&lines);
	conf_ctx_free(&ctx);
}

void
admin_main_run(struct server *srv, void *arg)
{
	struct admin_job *job = arg;

	job->srv = srv;
	job->deadline = clock_ms() + WAIT_MS;
	run(job);
}
