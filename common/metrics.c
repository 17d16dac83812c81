#include "common/metrics.h"

#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conn.h"
#include "common/exchange.h"
#include "common/http_parse.h"
#include "common/pipeline.h"
#include "common/sbuf.h"
#include "common/server.h"
#include "common/units.h"

const char *const metrics_method_names[MM_METHODS] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "other",
};

void
metrics_worker_free(struct metrics_worker *mw)
{
	struct metrics_cell *c = atomic_load_explicit(&mw->head, memory_order_relaxed), *next;

	for (; c != NULL; c = next) {
		next = c->next;
		free(c->name);
		free(c);
	}
	atomic_store_explicit(&mw->head, NULL, memory_order_relaxed);
}

static int
same_buckets(const struct metrics_cell *c, unsigned n, const int64_t *le_ms)
{
	return c->nbuckets == n && (n == 0 || memcmp(c->le_ms, le_ms, n * sizeof(*le_ms)) == 0);
}

struct metrics_cell *
metrics_cell_find(struct metrics_worker *mw, enum metrics_kind kind, const char *name,
    unsigned nbuckets, const int64_t *le_ms, int make)
{
	struct metrics_cell *head = atomic_load_explicit(&mw->head, memory_order_acquire);

	for (struct metrics_cell *c = head; c != NULL; c = c->next)
		if (c->kind == kind && strcmp(c->name, name) == 0 && same_buckets(c, nbuckets, le_ms))
			return c;
	if (!make || nbuckets > CONF_MAX_BUCKETS)
		return NULL;
	struct metrics_cell *c = calloc(1, sizeof(*c));
	if (c == NULL || (c->name = strdup(name)) == NULL) {
		free(c);
		return NULL;
	}
	c->kind = kind;
	c->nbuckets = nbuckets;
	if (nbuckets > 0)
		memcpy(c->le_ms, le_ms, nbuckets * sizeof(*le_ms));
	for (unsigned k = 0; k < nbuckets; k++)
		c->le_us[k] = (uint64_t)le_ms[k] * 1000;
	c->next = head;
	/* Release: a scrape that finds c sees its name, bounds and next. */
	atomic_store_explicit(&mw->head, c, memory_order_release);
	return c;
}

/*
 * The cell of entry idx of the connection's snapshot (routes first, then
 * listeners, then sections), cached there after the first search.  The
 * request path reads the cache inline (CACHED) and comes here on a miss.
 */
static struct metrics_cell * __attribute__((noinline))
cached(struct conn *c, size_t idx, enum metrics_kind kind, const char *name, unsigned nbuckets,
    const int64_t *le_ms)
{
	struct worker_snap *s = c->snap;
	const struct config *conf = s->conf;

	if (s->mcache == NULL) {
		size_t n = conf->nroutes + conf->nlistens + conf->nsections;
		if ((s->mcache = calloc(n > 0 ? n : 1, sizeof(*s->mcache))) == NULL)
			return metrics_cell_find(&c->w->metrics, kind, name, nbuckets, le_ms, 1);
	}
	if (s->mcache[idx] == NULL)
		s->mcache[idx] = metrics_cell_find(&c->w->metrics, kind, name, nbuckets, le_ms, 1);
	return s->mcache[idx];
}

#define CACHED(c, idx, kind, name, nb, le) \
	((c)->snap->mcache != NULL && (c)->snap->mcache[idx] != NULL ? (c)->snap->mcache[idx] : \
	    cached((c), (idx), (kind), (name), (nb), (le)))

static unsigned
method_class(const struct request *r)
{
	if (r->hr == NULL)
		return MM_OTHER;
	switch (r->hr->meth) {
	case HTTP_M_GET: return MM_GET;
	case HTTP_M_HEAD: return MM_HEAD;
	case HTTP_M_POST: return MM_POST;
	case HTTP_M_PUT: return MM_PUT;
	case HTTP_M_DELETE: return MM_DELETE;
	default: return MM_OTHER;
	}
}

void
metrics_response(struct request *r, uint64_t usec)
{
	const struct conf_route *rt = r->route;
	struct conn *c = r->conn;
	const struct config *conf = c->snap->conf;
	struct metrics_cell *m;

	if (rt == NULL)
		return; /* refused before routing: in the totals only */
	if (rt >= conf->routes && rt < conf->routes + conf->nroutes)
		m = CACHED(c, (size_t)(rt - conf->routes), MK_ROUTE, rt->name, rt->nbuckets,
		    rt->le_ms);
	else /* a route of an older snapshot than the connection's */
		m = metrics_cell_find(&c->w->metrics, MK_ROUTE, rt->name, rt->nbuckets, rt->le_ms, 1);
	if (m == NULL)
		return;
	int cls = r->status / 100;
	stats_add(&m->requests[method_class(r)][cls >= 1 && cls <= 5 ? cls : 0], 1);
	stats_add(&m->sum_us, usec);
	/* O(buckets), but there are a handful and most answers land in the first. */
	unsigned b = 0;
	while (b < m->nbuckets && usec > m->le_us[b])
		b++;
	stats_add(&m->hist[b], 1);
}

void
metrics_conn(struct conn *c, int delta)
{
	const struct config *conf = c->snap->conf;
	struct metrics_cell *m;

	if (c->listen_idx >= conf->nlistens)
		return;
	m = CACHED(c, conf->nroutes + c->listen_idx, MK_LISTEN, conf->listens[c->listen_idx].name,
	    0, NULL);
	if (m == NULL)
		return;
	if (delta > 0) {
		stats_add(&m->conns_total, 1);
		stats_add(&m->conns_open, 1);
	} else {
		stats_add(&m->conns_open, (uint64_t)-1);
	}
}

void
metrics_tls(struct conn *c, int outcome)
{
	const struct config *conf = c->snap->conf;
	struct metrics_cell *m;

	if (c->listen_idx >= conf->nlistens)
		return;
	m = cached(c, conf->nroutes + c->listen_idx, MK_LISTEN, conf->listens[c->listen_idx].name,
	    0, NULL);
	if (m == NULL)
		return;
	if (outcome == METRICS_TLS_FAILED) {
		stats_add(&m->tls_failed, 1);
		return;
	}
	stats_add(&m->tls_done, 1);
	if (SSL_session_reused(c->ssl))
		stats_add(&m->tls_resumed, 1);
}

void
metrics_mw(struct request *r, unsigned i, int answered)
{
	struct conn *c = r->conn;
	const struct conf_section *sec = r->route->mw[i];
	struct metrics_cell *m;

	if (c == NULL || c->snap == NULL)
		return; /* an exchange without a connection (the pipeline's unit tests) */
	const struct config *conf = c->snap->conf;
	if (sec >= conf->sections && sec < conf->sections + conf->nsections)
		m = CACHED(c, conf->nroutes + conf->nlistens + (size_t)(sec - conf->sections), MK_MW,
		    sec->name, 0, NULL);
	else
		m = metrics_cell_find(&c->w->metrics, MK_MW, sec->name, 0, NULL, 1);
	if (m == NULL)
		return;
	stats_add(&m->mw_seen, 1);
	if (!answered)
		return;
	for (unsigned k = 0; k < METRICS_MW_CODES; k++) {
		int code = atomic_load_explicit(&m->mw_code[k], memory_order_relaxed);
		if (code == 0) {
			atomic_store_explicit(&m->mw_code[k], r->status, memory_order_relaxed);
			code = r->status;
		}
		if (code == r->status) {
			stats_add(&m->mw_answers[k], 1);
			return;
		}
	}
	stats_add(&m->mw_other, 1);
}

/* ---- formatting ---- */

void
metrics_label(struct sbuf *b, const char *s)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
		if (esc == NULL)
			continue;
		sbuf_add(b, run, (size_t)(s - run));
		sbuf_str(b, esc);
		run = s + 1;
	}
	sbuf_add(b, run, (size_t)(s - run));
}

char *
metrics_seconds(int64_t ms, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));

	if (n <= 0 || (size_t)n >= len)
		return buf;
	/* Trailing zeros go, and the point with them: "1.000" is "1". */
	while (buf[n - 1] == '0')
		buf[--n] = '\0';
	if (buf[n - 1] == '.')
		buf[--n] = '\0';
	return buf;
}

int
metrics_parse_buckets(const char *s, int64_t *le_ms, unsigned max)
{
	char word[64];
	unsigned n = 0;

	while (*s != '\0') {
		size_t w;
		s += strspn(s, " \t,");
		if ((w = strcspn(s, " \t,")) == 0)
			break;
		if (w >= sizeof(word) || n == max)
			return -1;
		memcpy(word, s, w);
		word[w] = '\0';
		s += w;
		if (units_duration(word, &le_ms[n]) < 0 || le_ms[n] <= 0 ||
		    (n > 0 && le_ms[n] <= le_ms[n - 1]))
			return -1;
		n++;
	}
	return n > 0 ? (int)n : -1;
}

void
metrics_family(struct sbuf *b, const char *name, const char *type, const char *help)
{
	sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
metrics_histogram(struct sbuf *b, const char *name, const char *labels, unsigned nbuckets,
    const int64_t *le_ms, const uint64_t *counts, uint64_t sum_us)
{
	uint64_t cum = 0;
	char le[32];

	for (unsigned i = 0; i <= nbuckets; i++) {
		cum += counts[i];
		sbuf_printf(b, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, *labels ? "," : "",
		    i < nbuckets ? metrics_seconds(le_ms[i], le, sizeof(le)) : "+Inf",
		    (unsigned long long)cum);
	}
	sbuf_printf(b, "%s_sum{%s} %llu.%06llu\n", name, labels, (unsigned long long)(sum_us / 1000000),
	    (unsigned long long)(sum_us % 1000000));
	sbuf_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
}
