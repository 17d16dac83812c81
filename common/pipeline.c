#include "common/pipeline.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/exchange.h"
#include "common/h1.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/mw_basic.h"
#include "common/mw_compress.h"
#include "common/mw_headers.h"
#include "common/mw_jwt.h"
#include "common/mw_ratelimit.h"
#include "common/mw_test.h"

/* The modules a `type` may name. */
static const struct mw_ops *const modules[] = {
	&headers_mw_ops, &jwt_mw_ops, &basic_mw_ops, &compress_mw_ops, &ratelimit_mw_ops, NULL,
};

/*
 * The test suite's module (mw_test.c) exists only when the environment
 * has PORTICO_TEST_MODULES set at load time: it is not for users, and
 * the man page does not name it.
 */
static const struct mw_ops *
module(const char *type)
{
	for (size_t i = 0; modules[i] != NULL; i++)
		if (strcmp(modules[i]->type, type) == 0)
			return modules[i];
	if (strcmp(type, test_mw_ops.type) == 0 && getenv("PORTICO_TEST_MODULES") != NULL)
		return &test_mw_ops;
	return NULL;
}

static int
section_configure(struct conf_ctx *ctx, struct conf_section *sec)
{
	const struct conf_kv *type = NULL;
	const struct mw_ops *ops;

	for (size_t i = 0; i < sec->nkv; i++)
		if (strcmp(sec->kv[i].key, "type") == 0) {
			if (type != NULL) {
				conf_err(ctx, sec->kv[i].line, ctx->section, "type",
				    "given twice (first on line %d)", type->line);
				return -1;
			}
			type = &sec->kv[i];
		}
	if (type == NULL) {
		char types[256] = "";
		for (size_t i = 0; modules[i] != NULL; i++)
			snprintf(types + strlen(types), sizeof(types) - strlen(types), "%s%s",
			    i > 0 ? ", " : "", modules[i]->type);
		conf_err(ctx, sec->line, ctx->section, "type", "missing: give one of %s", types);
		return -1;
	}
	if ((ops = module(type->value)) == NULL) {
		conf_err(ctx, type->line, ctx->section, "type", "unknown middleware type \"%s\"",
		    type->value);
		return -1;
	}
	if (conf_check_section(ctx, sec, ops->keys) > 0)
		return -1;
	struct mw *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -1;
	m->ops = ops;
	m->name = sec->name;
	if ((m->conf = ops->configure(ctx, sec)) == NULL) {
		free(m);
		return -1;
	}
	sec->data = m;
	return 0;
}

/* The keys of a block: those of its type. */
static const struct conf_key *
section_keys(const struct conf_section *sec)
{
	const struct mw *m = sec->data;

	return m != NULL ? m->ops->keys : NULL;
}

static void
section_free(void *data)
{
	struct mw *m = data;

	if (m == NULL)
		return;
	if (m->ops->free_conf != NULL)
		m->ops->free_conf(m->conf);
	free(m);
}

const struct handler_ops pipeline_section_ops = {
	.name = "middleware",
	.section = "middleware",
	.configure_section = section_configure,
	.free_section = section_free,
	.section_keys = section_keys,
};

/*
 * What the pipeline keeps for one exchange, made on first need (a state,
 * a filter, a log field), so a route whose middleware needs none of it
 * costs nothing.  Freed by pipeline_end.
 */
struct body_src {
	off_t off, len;
	char *data;                      /* copied bytes, or NULL: file bytes */
};

/* Body bytes that must wait for file bytes before them, in order: as many
 * runs as a response of the static handler makes (multipart ranges). */
#define SRC_MAX 72
struct src_queue {
	int fd;                          /* owned, -1 before the first file */
	unsigned head, n;
	struct event later;              /* pump's next slice (pump_later) */
	struct body_src q[SRC_MAX];
};

/*
 * Input bytes one pump call feeds through the filters.  A filter that
 * shrinks its input a lot (compressing zeros or text) keeps the output
 * under the high-water mark, so without a bound a file of many megabytes
 * would be read and filtered in one turn while the worker's other
 * connections wait.  256 KiB is a few milliseconds of deflate.
 */
#define PUMP_SLICE (256 * 1024)

struct log_field {
	unsigned short k, klen, v, vlen; /* offsets into buf */
};

/* The verified claims of an exchange (exchange.h, http_req_claim):
 * names and values packed in buf, in the order set. */
struct claim_store {
	struct log_field c[REQ_CLAIMS];
	unsigned n;
	size_t used;
	char buf[REQ_CLAIM_BYTES];
};

struct mw_exchange {
	void *state[CONF_MAX_MIDDLEWARE];
	struct mw_filter f[CONF_MAX_MIDDLEWARE];
	unsigned nf;
	unsigned end_pending : 1;        /* the handler ended; queued bytes still to go */
	unsigned failed : 1;             /* a filter failed: the rest is dropped */
	struct src_queue *src;           /* while file bytes are being filtered */
	struct claim_store *claims;      /* made on the first http_req_claim_set */
	struct log_field fld[MW_LOG_FIELDS];
	unsigned nfld;
	size_t fused;
	char fbuf[MW_LOG_BYTES];
};

static struct mw_exchange *
mwx(struct request *r)
{
	if (r->mwx == NULL)
		r->mwx = calloc(1, sizeof(*r->mwx));
	return r->mwx;
}

static const struct mw *
route_mw(const struct request *r, unsigned i)
{
	return r->route->mw[i]->data;
}

/* The chain from middleware i on. */
static int
run_request(struct request *r, unsigned from)
{
	const struct conf_route *rt = r->route;

	for (unsigned i = from; i < rt->nmw; i++) {
		const struct mw *m = route_mw(r, i);
		r->mw_ran = i + 1;
		r->mw_cur = i;
		if (m->ops->request == NULL)
			continue;
		int rc = m->ops->request(r, m->conf);
		if (rc == MW_ANSWERED)
			return MW_ANSWERED; /* r may be gone */
		if (rc == MW_PAUSE) {
			r->flags |= REQ_MW_PAUSED;
			return MW_PAUSE;
		}
	}
	return MW_NEXT;
}

int
pipeline_request(struct request *r)
{
	return run_request(r, 0);
}

void
pipeline_resume(struct request *r)
{
	if (!(r->flags & REQ_MW_PAUSED))
		return;
	r->flags &= ~REQ_MW_PAUSED;
	r->flags |= REQ_IN_MW; /* an answer now is a middleware's */
	int rc = run_request(r, r->mw_ran);
	if (rc == MW_NEXT)
		r->xo->dispatch_resume(r);
	else if (rc == MW_PAUSE)
		r->flags &= ~REQ_IN_MW;
}

void
pipeline_response_head(struct request *r)
{
	unsigned cur = r->mw_cur; /* a request phase answering goes on after this */

	/* Only those the request went through: after one that answered, or on
	 * an error found before the chain ran, the rest never saw it. */
	for (unsigned i = r->mw_ran; i-- > 0;) {
		const struct mw *m = route_mw(r, i);
		r->mw_cur = i;
		if (m->ops->response_head != NULL)
			m->ops->response_head(r, m->conf);
	}
	r->mw_cur = cur;
}

void
pipeline_log(struct request *r)
{
	if (r->flags & REQ_MW_LOGGED)
		return;
	r->flags |= REQ_MW_LOGGED;
	if (!(r->flags & REQ_STARTED))
		r->status = 499; /* as the access log has it: the client got no answer */
	/* The last one that ran answered if the answer is a middleware's: so
	 * auth failures and rate-limit refusals are counted here, whatever
	 * the module. */
	int answered = r->log.term != NULL && strcmp(r->log.term, REQ_TERM_MIDDLEWARE) == 0;
	for (unsigned i = 0; i < r->mw_ran; i++) {
		const struct mw *m = route_mw(r, i);
		r->mw_cur = i;
		if (m->ops->log != NULL)
			m->ops->log(r, m->conf);
		metrics_mw(r, i, answered && i + 1 == r->mw_ran);
	}
}

int
mw_state_set(struct request *r, void *state)
{
	struct mw_exchange *x = mwx(r);

	if (x == NULL)
		return -1;
	x->state[r->mw_cur] = state;
	return 0;
}

void *
mw_state(const struct request *r)
{
	return r->mwx != NULL ? r->mwx->state[r->mw_cur] : NULL;
}

static void
src_drop(struct mw_exchange *x)
{
	struct src_queue *s = x->src;

	for (; s->n > 0; s->n--, s->head = (s->head + 1) % SRC_MAX)
		free(s->q[s->head].data);
}

void
pipeline_end(struct request *r)
{
	struct mw_exchange *x = r->mwx;

	if (x == NULL)
		return;
	r->mwx = NULL;
	if (x->src != NULL) {
		src_drop(x);
		event_del(&x->src->later);
		if (x->src->fd >= 0)
			close(x->src->fd);
		free(x->src);
	}
	free(x->claims);
	for (unsigned i = 0; i < CONF_MAX_MIDDLEWARE; i++) {
		if (x->state[i] == NULL)
			continue;
		const struct mw *m = route_mw(r, i);
		if (m->ops->free_state != NULL)
			m->ops->free_state(x->state[i]);
	}
	free(x);
}

/* ---- body filters ---- */

int
mw_filter_start(struct request *r)
{
	const struct mw *m = route_mw(r, r->mw_cur);
	struct mw_exchange *x;

	if ((r->flags & (REQ_HEAD_ONLY | REQ_COMMITTED)) || r->status < 200 || r->status == 204 ||
	    r->status == 304 || m->ops->body == NULL || (x = mwx(r)) == NULL)
		return -1;
	for (unsigned i = 0; i < x->nf; i++)
		if (x->f[i].m == m)
			return 0;
	x->f[x->nf++] = (struct mw_filter){ r, m, x->state[r->mw_cur] };
	r->flags |= REQ_FILTERED;
	return 0;
}

/*
 * The filtered body cannot go on: the rest is dropped, what is queued is
 * sent, and the connection closes then (whether or not the handler ends
 * the response) without the end of the framing, so the client sees the
 * body cut.
 */
static void
cut(struct request *r)
{
	r->mwx->failed = 1;
	r->flags |= REQ_CLOSE;
	r->flags &= ~REQ_CHUNKED_OUT;
	r->xo->close_when_sent(r);
}

static void
filter_failed(struct request *r, const struct mw_filter *f)
{
	log_warnx("conn %d: middleware %s (%s): body filter failed; cutting the response",
	    r->conn->fd, f->m->name, f->m->ops->type);
	cut(r);
}

/* Bytes and flags into filter i (i == nf: the framing). */
static void
deliver(struct request *r, unsigned i, const void *data, size_t len, unsigned flags)
{
	struct mw_exchange *x = r->mwx;

	if (x->failed)
		return;
	if (i == x->nf) {
		if (len > 0)
			http_resp_frame(r, data, len);
		return;
	}
	struct mw_filter *f = &x->f[i];
	if (f->m->ops->body(f, data, len, flags) < 0) {
		filter_failed(r, f);
		return;
	}
	if (flags != 0)
		deliver(r, i + 1, NULL, 0, flags);
}

void
mw_emit(struct mw_filter *f, const void *data, size_t len)
{
	if (len > 0)
		deliver(f->r, (unsigned)(f - f->r->mwx->f) + 1, data, len, 0);
}

/* Queued body runs behind a file: 0, or -1 when full (the response is cut). */
static int
src_push(struct request *r, off_t off, off_t len, char *data)
{
	struct src_queue *s = r->mwx->src;

	if (s->n == SRC_MAX) {
		free(data);
		log_warnx("conn %d: more than %d body runs queued behind a file; cutting the response",
		    r->conn->fd, SRC_MAX);
		cut(r);
		return -1;
	}
	s->q[(s->head + s->n++) % SRC_MAX] = (struct body_src){ off, len, data };
	return 0;
}

/*
 * The next slice of a pump that stopped at PUMP_SLICE with the output
 * below the mark.  A zero timeout rather than event_active: libevent runs
 * an event made active from a callback in the same pass, before it polls
 * the sockets again, so the slices would follow one another with the other
 * connections still unheard.  The kick takes the usual way: the output
 * flushes, then h1_drained calls pipeline_writable.
 */
static void
pump_later(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	conn_kick(c);
}

/*
 * Feeds queued runs through the filters until the output reaches the
 * high-water mark (the client's pace: h1_drained brings us back) or
 * PUMP_SLICE input bytes have gone in (the worker's other connections'
 * turn: pump_later brings us back).  File bytes are read in bounded
 * chunks (no sendfile: the filters must see them).  Returns 1 if the
 * exchange ended here.
 */
static int
pump(struct request *r)
{
	struct mw_exchange *x = r->mwx;
	struct src_queue *s = x->src;
	static const struct timeval now = { 0, 0 };
	size_t fed = 0;
	char buf[16384];

	while (s->n > 0 && !x->failed && http_resp_pending(r) < HTTP_OUT_HIGH_WATER) {
		struct body_src *b = &s->q[s->head];
		if (fed >= PUMP_SLICE) {
			if (evtimer_add(&s->later, &now) < 0)
				conn_kick(r->conn); /* unfair, but the body goes on */
			return 0;
		}
		if (b->data != NULL) {
			deliver(r, 0, b->data, (size_t)b->len, 0);
			fed += (size_t)b->len;
			free(b->data);
			s->head = (s->head + 1) % SRC_MAX;
			s->n--;
			continue;
		}
		size_t want = b->len < (off_t)sizeof(buf) ? (size_t)b->len : sizeof(buf);
		ssize_t n = pread(s->fd, buf, want, b->off);
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			log_warn("conn %d: cannot read file body", r->conn->fd);
			cut(r);
			break;
		}
		b->off += n;
		if ((b->len -= n) == 0) {
			s->head = (s->head + 1) % SRC_MAX;
			s->n--;
		}
		fed += (size_t)n;
		deliver(r, 0, buf, (size_t)n, 0);
	}
	if (x->failed)
		src_drop(x);
	if (s->n > 0 || !x->end_pending)
		return 0;
	x->end_pending = 0;
	deliver(r, 0, NULL, 0, MW_BODY_END);
	http_resp_finish(r);
	return 1;
}

void
pipeline_body(struct request *r, const void *data, size_t len)
{
	struct mw_exchange *x = r->mwx;

	if (x->src != NULL && x->src->n > 0) {
		char *copy = malloc(len);
		if (copy == NULL) {
			log_warnx("conn %d: out of memory for a filtered body", r->conn->fd);
			cut(r);
			return;
		}
		memcpy(copy, data, len);
		src_push(r, 0, (off_t)len, copy);
		return;
	}
	deliver(r, 0, data, len, 0);
}

int
pipeline_file(struct request *r, int fd, off_t off, off_t len)
{
	struct mw_exchange *x = r->mwx;

	if (x->src == NULL) {
		if ((x->src = malloc(sizeof(*x->src))) == NULL) {
			close(fd);
			log_warnx("conn %d: out of memory for a filtered file body", r->conn->fd);
			cut(r);
			return -1;
		}
		x->src->fd = fd;
		x->src->head = x->src->n = 0;
		evtimer_assign(&x->src->later, r->conn->env->base, pump_later, r->conn);
	}
	else if (fd != x->src->fd) {
		/* One file per response, as conn_out_file has it: another's
		 * offsets would be read from the first. */
		close(fd);
		log_warnx("conn %d: a second file in one response; cutting it", r->conn->fd);
		cut(r);
		return -1;
	}
	if (x->failed)
		return -1;
	if (len == 0)
		return 0;
	if (src_push(r, off, len, NULL) < 0)
		return -1;
	pump(r); /* the end is still to come: the exchange goes on */
	return x->failed ? -1 : 0;
}

void
pipeline_flush(struct request *r)
{
	struct mw_exchange *x = r->mwx;

	/* Behind queued file bytes a flush means nothing: they go on by themselves. */
	if (x->src == NULL || x->src->n == 0)
		deliver(r, 0, NULL, 0, MW_BODY_FLUSH);
}

int
pipeline_body_end(struct request *r)
{
	struct mw_exchange *x = r->mwx;

	if (x->src != NULL && x->src->n > 0 && !x->failed) {
		x->end_pending = 1; /* pump finishes once the output drains */
		return 1;
	}
	deliver(r, 0, NULL, 0, MW_BODY_END);
	return 0;
}

int
pipeline_pending(const struct request *r)
{
	const struct mw_exchange *x = r->mwx;

	return x != NULL && x->src != NULL && (x->src->n > 0 || x->end_pending);
}

int
pipeline_writable(struct request *r)
{
	struct mw_exchange *x = r->mwx;

	if (x == NULL || x->src == NULL || (x->src->n == 0 && !x->end_pending))
		return 0;
	if (pump(r))
		return 1;
	return x->src->n > 0 || x->end_pending;
}

/* ---- log fields ---- */

int
http_log_field(struct request *r, const char *key, const char *value, size_t vlen)
{
	struct mw_exchange *x = mwx(r);
	size_t klen = strlen(key);

	if (x == NULL || x->nfld == MW_LOG_FIELDS || klen + vlen > MW_LOG_BYTES - x->fused)
		return -1;
	struct log_field *f = &x->fld[x->nfld++];
	f->k = (unsigned short)x->fused;
	f->klen = (unsigned short)klen;
	memcpy(x->fbuf + x->fused, key, klen);
	x->fused += klen;
	f->v = (unsigned short)x->fused;
	f->vlen = (unsigned short)vlen;
	if (vlen > 0)
		memcpy(x->fbuf + x->fused, value, vlen);
	x->fused += vlen;
	return 0;
}

int
http_log_field_next(const struct request *r, unsigned *it, const char **key, size_t *klen,
    const char **value, size_t *vlen)
{
	const struct mw_exchange *x = r->mwx;

	if (x == NULL || *it >= x->nfld)
		return 0;
	const struct log_field *f = &x->fld[(*it)++];
	*key = x->fbuf + f->k;
	*klen = f->klen;
	*value = x->fbuf + f->v;
	*vlen = f->vlen;
	return 1;
}

/* ---- verified claims ---- */

int
http_req_claim_set(struct request *r, const char *name, const char *value, size_t len)
{
	struct mw_exchange *x = mwx(r);
	size_t nlen = strlen(name);
	struct claim_store *cs;

	if (x == NULL)
		return -1;
	if ((cs = x->claims) == NULL) {
		if ((cs = x->claims = malloc(sizeof(*cs))) == NULL)
			return -1;
		cs->n = 0;
		cs->used = 0;
	}
	if (cs->n == REQ_CLAIMS || nlen + len > REQ_CLAIM_BYTES - cs->used)
		return -1;
	struct log_field *c = &cs->c[cs->n++];
	c->k = (unsigned short)cs->used;
	c->klen = (unsigned short)nlen;
	memcpy(cs->buf + cs->used, name, nlen);
	cs->used += nlen;
	c->v = (unsigned short)cs->used;
	c->vlen = (unsigned short)len;
	if (len > 0)
		memcpy(cs->buf + cs->used, value, len);
	cs->used += len;
	return 0;
}

int
http_req_claim(const struct request *r, const char *name, const char **value, size_t *len)
{
	const struct claim_store *cs = r->mwx != NULL ? r->mwx->claims : NULL;
	size_t nlen = strlen(name);

	/* The last one set wins: a value set again is a new entry. */
	for (unsigned i = cs != NULL ? cs->n : 0; i-- > 0;) {
		const struct log_field *c = &cs->c[i];
		if (c->klen == nlen && memcmp(cs->buf + c->k, name, nlen) == 0) {
			*value = cs->buf + c->v;
			*len = c->vlen;
			return 1;
		}
	}
	return 0;
}
