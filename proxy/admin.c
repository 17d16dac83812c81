/*
 * admin: the worker's side of the admin API: the route's keys, the bearer
 * token, the request's path and body, the answers that only read (pools,
 * the configuration), and the hand-over of changes to the main thread
 * (admin_main.c) and of its answer back.
 *
 * Nothing here runs outside admin routes: the request path of every other
 * route is as it was.
 */
#include "proxy/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/exchange.h"
#include "common/http.h"
#include "common/log.h"
#include "common/server.h"
#include "common/sbuf.h"
#include "common/stats.h"
#include "common/units.h"
#include "proxy/pool.h"
#include "proxy/proxy.h"

#define TOKEN_MIN 16                /* bytes of a token: shorter is guessable */
#define TOKEN_MAX 1024

struct admin_conf {
	/* The token's SHA-256: comparing digests of equal length takes the
	 * same time whatever the token offered, its length included. */
	unsigned char digest[32];
};

/* A request's state while its body comes in or its change is away. */
struct admin_req {
	char *buf;
	size_t len;
	struct admin_job *job;         /* at the main thread, or NULL */
};

/* ---- configuration ---- */

static const struct conf_key admin_keys[] = {
	{ "admin_token_file", NULL, 0, NULL },
	{ NULL, NULL, 0, NULL },
};

static int
sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 0;

	return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

/* RFC 6750 b64token: what fits in an Authorization header as is. */
static int
token_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	    (ch != '\0' && strchr("-._~+/=", ch) != NULL);
}

/*
 * Reads the token (read at every load, so a reload reads it again).  Like
 * the server's private keys, a token others may read is refused rather
 * than warned about: whoever reads it controls the pools.
 */
static int
read_token(struct conf_ctx *ctx, const struct conf_kv *kv, struct admin_conf *ac)
{
	char buf[TOKEN_MAX + 2];
	struct stat st;
	ssize_t n = -1;
	int fd = open(kv->value, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	const char *why = NULL;

	if (fd < 0 || fstat(fd, &st) < 0) {
		conf_err(ctx, kv->line, ctx->section, kv->key, "cannot read %s: %s", kv->value,
		    strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode))
		why = "is not a regular file";
	else if (st.st_mode & (S_IROTH | S_IWOTH))
		why = "is readable or writable by others: chmod o-rwx it";
	else if ((n = read(fd, buf, sizeof(buf) - 1)) < 0)
		why = strerror(errno);
	if (why != NULL) {
		conf_err(ctx, kv->line, ctx->section, kv->key, "%s %s", kv->value, why);
		goto fail;
	}
	close(fd);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
	    buf[n - 1] == '\t'))
		n--;
	size_t len = (size_t)n, i;
	for (i = 0; i < len && token_char((unsigned char)buf[i]); i++)
		;
	if (len < TOKEN_MIN || len > TOKEN_MAX || i < len) {
		conf_err(ctx, kv->line, ctx->section, kv->key, "%s: expected one token of %d to %d "
		    "letters, digits and -._~+/= on one line", kv->value, TOKEN_MIN, TOKEN_MAX);
		OPENSSL_cleanse(buf, sizeof(buf));
		return -1;
	}
	int rc = sha256(buf, len, ac->digest);
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Whether a listener's address is loopback or a Unix socket, whose file's
 * mode says who may connect (where an admin route belongs). */
static int
loopback(const struct conf_listen *l)
{
	if (l->addr.ss_family == AF_UNIX)
		return 1;
	if (l->addr.ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)&l->addr)->sin_addr.s_addr) >> 24) == 127;
	if (l->addr.ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&l->addr)->sin6_addr);
	return 0;
}

static int
admin_configure(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv)
{
	struct admin_conf *ac = calloc(1, sizeof(*ac));
	const struct conf_kv *tk = conf_route_kv(rt, "admin_token_file");
	int on;

	if (ac == NULL)
		return -1;
	rt->hconf = ac;
	if (units_bool(kv->value, &on) < 0 || !on) {
		conf_err(ctx, kv->line, ctx->section, "admin", "expected on, not \"%s\"", kv->value);
		return -1;
	}
	if (tk == NULL) {
		conf_err(ctx, kv->line, ctx->section, "admin_token_file",
		    "an admin route needs admin_token_file = FILE");
		return -1;
	}
	if (read_token(ctx, tk, ac) < 0)
		return -1;
	for (size_t i = 0; i < ctx->conf->nlistens; i++)
		if ((rt->listen_mask & (1ULL << i)) && !loopback(&ctx->conf->listens[i]))
			conf_warn(ctx, kv->line, ctx->section, "admin", "listener %s (%s) is not on a "
			    "loopback address: the admin API is reachable from the network",
			    ctx->conf->listens[i].name, ctx->conf->listens[i].address);
	return 0;
}

static void
admin_free_conf(void *p)
{
	if (p != NULL)
		OPENSSL_cleanse(p, sizeof(struct admin_conf));
	free(p);
}

/* ---- answers ---- */

char *
admin_error_body(const char *msg, const char *field)
{
	json_t *o = json_pack("{s:s}", "error", msg);
	char *s;

	if (o != NULL && field != NULL)
		json_object_set_new(o, "field", json_string(field));
	s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

/* Ends r's state: the answer is about to go. */
static void
req_done(struct request *r)
{
	struct admin_req *ar = r->hdata;

	if (ar == NULL)
		return;
	free(ar->buf);
	free(ar);
	r->hdata = NULL;
}

/* Answers r with body (JSON, taken: freed here); NULL means out of memory. */
static void
answer(struct request *r, int status, char *body, const char *allow)
{
	req_done(r);
	if (body == NULL) {
		http_resp_error(r, 500);
		return;
	}
	size_t len = strlen(body);
	http_resp_start(r, status, "application/json", (int64_t)len + 1);
	http_resp_header(r, "Cache-Control", "no-store");
	if (status == 401)
		http_resp_header(r, "WWW-Authenticate", "Bearer realm=\"portico admin\"");
	if (allow != NULL)
		http_resp_header(r, "Allow", allow);
	http_resp_body(r, body, len);
	http_resp_body(r, "\n", 1);
	http_resp_end(r);
	free(body);
}

static void
answer_error(struct request *r, int status, const char *msg, const char *field)
{
	answer(r, status, admin_error_body(msg, field), NULL);
}

static void
answer_json(struct request *r, int status, json_t *o)
{
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	answer(r, status, s, NULL);
}

static json_t *
server_json(const struct pool *p, unsigned i, int64_t now)
{
	const struct backend *b = &p->servers[i];
	struct backend_counters c;

	pool_counters(p, i, &c);
	uint64_t req = stats_get(&c.requests);
	return json_pack("{s:s,s:I,s:b,s:I,s:b,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f}",
	    "address", b->name, "weight", (json_int_t)b->weight, "backup", b->backup,
	    "max_conns", (json_int_t)b->max_conns, "tls", b->tls, "state", backend_admin_state(b),
	    "health", backend_health(b, now), "active", (json_int_t)atomic_load(&b->active),
	    "requests", (json_int_t)req, "failures", (json_int_t)stats_get(&c.failures),
	    "connect_errors", (json_int_t)stats_get(&c.connect_errors),
	    "timeouts", (json_int_t)stats_get(&c.timeouts),
	    "retries", (json_int_t)stats_get(&c.retries),
	    "avg_latency_ms", req ? (double)stats_get(&c.latency_us_total) / 1000.0 / (double)req : 0.0);
}

json_t *
admin_pool_json(const struct pool *p)
{
	int64_t now = clock_ms();
	json_t *servers = json_array();
	json_t *o = json_pack("{s:s,s:s,s:I,s:o}", "name", p->name, "balance", p->balance->name,
	    "in_service", (json_int_t)pool_in_service(p), "servers", servers);

	for (unsigned i = 0; o != NULL && i < p->nservers; i++)
		json_array_append_new(servers, server_json(p, i, now));
	return o;
}

static const struct pool *
find_pool(const struct config *conf, const char *name)
{
	const struct conf_section *sec = conf_section_find(conf, "pool", name);

	return sec != NULL && sec->owner == &proxy_ops ? sec->data : NULL;
}

static void
get_pools(struct request *r, const struct config *conf)
{
	json_t *list = json_array();
	json_t *o = json_pack("{s:I,s:o}", "generation", (json_int_t)conf->generation, "pools", list);

	for (size_t i = 0; o != NULL && i < conf->nsections; i++)
		if (conf->sections[i].owner == &proxy_ops && conf->sections[i].data != NULL)
			json_array_append_new(list, admin_pool_json(conf->sections[i].data));
	answer_json(r, 200, o);
}

/* ---- GET /config ---- */

/* Request and response header rules that carry credentials. */
static int
credential_rule(const char *key, const char *value)
{
	static const char *const names[] = { "authorization", "proxy-authorization", "cookie",
		"set-cookie", "x-api-key", "x-auth-token" };

	if (strcmp(key, "request_set") != 0 && strcmp(key, "request_add") != 0 &&
	    strcmp(key, "response_set") != 0 && strcmp(key, "response_add") != 0)
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);
		if (strncasecmp(value, names[i], n) == 0 && value[n] == ':')
			return 1;
	}
	return 0;
}

/*
 * The -T text with secret values replaced: a JWT `secret`, any key named
 * for a password or a token, and header rules setting credentials.  Files
 * that hold secrets (secret_file, tls_key, tls_ticket_key, htpasswd,
 * admin_token_file) appear as their paths: their contents never are in it.
 */
static char *
redact(const char *text, size_t len)
{
	struct sbuf out = { 0 };
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		const char *eq = memchr(p, '=', n);
		char key[64];
		size_t kl = eq != NULL ? (size_t)(eq - p) : 0;
		while (kl > 0 && p[kl - 1] == ' ')
			kl--;
		if (p[0] != '#' && p[0] != '[' && eq != NULL && kl > 0 && kl < sizeof(key)) {
			memcpy(key, p, kl);
			key[kl] = '\0';
			const char *v = eq + 1;
			while (v < p + n && *v == ' ')
				v++;
			char val[64];
			snprintf(val, sizeof(val), "%.*s", (int)(p + n - v), v);
			if (strcmp(key, "secret") == 0 || strstr(key, "password") != NULL ||
			    (strstr(key, "token") != NULL && strstr(key, "_file") == NULL &&
			    strcmp(key, "server_tokens") != 0)) {
				sbuf_printf(&out, "%s = <redacted>\n", key);
				p += n;
				continue;
			}
			if (credential_rule(key, val)) {
				const char *colon = strchr(v, ':');
				sbuf_printf(&out, "%s = %.*s: <redacted>\n", key, (int)(colon - v), v);
				p += n;
				continue;
			}
		}
		sbuf_add(&out, p, n);
		p += n;
	}
	sbuf_add(&out, "", 1);
	if (sbuf_failed(&out)) {
		sbuf_free(&out);
		return NULL;
	}
	return out.p;
}

static void
get_config(struct request *r, const struct config *conf)
{
	char *text = NULL, *red = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	if (fp == NULL) {
		http_resp_error(r, 500);
		return;
	}
	config_dump(conf, fp);
	if (fclose(fp) == 0)
		red = redact(text, len);
	free(text);
	req_done(r);
	if (red == NULL) {
		http_resp_error(r, 500);
		return;
	}
	http_resp_simple(r, 200, "text/plain; charset=utf-8", red, strlen(red));
	free(red);
}

/* ---- changes: to the main thread and back ---- */

static void
on_job_done(evutil_socket_t fd, short what, void *arg)
{
	struct admin_job *job = arg;
	struct request *r = job->r;

	(void)fd;
	(void)what;
	if (!atomic_load_explicit(&job->answered, memory_order_acquire)) {
		/* Woken between the main thread's write and its last store: it
		 * still uses efd.  A moment later, then. */
		static const struct timeval ms = { 0, 1000 };
		if (event_base_once(event_get_base(job->ev), -1, EV_TIMEOUT, on_job_done, job, &ms) < 0)
			log_warnx("admin: cannot wait for the main thread's answer");
		return;
	}
	event_free(job->ev);
	close(job->efd);
	if (r != NULL) {
		struct admin_req *ar = r->hdata;
		if (ar != NULL)
			ar->job = NULL;
		answer(r, job->status, job->body, NULL);
		job->body = NULL;
	}
	free(job->body);
	free(job);
}

/* Hands job to the main thread; r is answered when it is done. */
static void
submit(struct request *r, struct admin_job *job)
{
	struct admin_req *ar = r->hdata;

	job->srv = r->conn->w->srv;
	job->r = r;
	job->call.fn = admin_main_run;
	job->call.arg = job;
	conn_peer(r->conn, job->who, sizeof(job->who));
	job->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ar == NULL && (ar = r->hdata = calloc(1, sizeof(*ar))) == NULL)
		goto fail;
	if (job->efd < 0 || (job->ev = event_new(r->conn->w->base, job->efd, EV_READ, on_job_done,
	    job)) == NULL || event_add(job->ev, NULL) < 0)
		goto fail;
	ar->job = job;
	if (server_main_call(job->srv, &job->call) == 0)
		return;
	ar->job = NULL;
fail:
	log_warn("admin: cannot hand a change to the main thread");
	if (job->ev != NULL)
		event_free(job->ev);
	if (job->efd >= 0)
		close(job->efd);
	free(job);
	answer_error(r, 503, "the change could not be queued; try again", NULL);
}

static const char *const state_names[] = { "enabled", "disabled", "drain" };

/* Reads the fields of a server change from body into job; answers 400 and
 * returns -1 on the first wrong one. */
static int
parse_fields(struct request *r, json_t *o, struct admin_job *job)
{
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v) {
		const char *bad = NULL;
		if (strcmp(key, "weight") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000)
				bad = "expected an integer from 1 to 1000";
			else
				job->weight = (unsigned)json_integer_value(v), job->has_weight = 1;
		} else if (strcmp(key, "state") == 0) {
			const char *s = json_string_value(v);
			size_t k;
			for (k = 0; s != NULL && k < 3 && strcmp(s, state_names[k]) != 0; k++)
				;
			if (s == NULL || k == 3)
				bad = "expected \"enabled\", \"drain\" or \"disabled\"";
			else
				job->state = (int)k, job->has_state = 1;
		} else if (job->op == ADMIN_ADD && strcmp(key, "address") == 0) {
			const char *s = json_string_value(v), *why = NULL;
			size_t len = s != NULL ? strlen(s) : 0;
			if (s == NULL || len == 0 || len > ADMIN_ADDR_MAX ||
			    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]")
			    != len)
				bad = "expected HOST:PORT or [IPV6]:PORT";
			else if (pool_check_address(s, &why) < 0)
				bad = why;
			else
				memcpy(job->addr, s, len + 1);
		} else if (job->op == ADMIN_ADD && strcmp(key, "backup") == 0) {
			if (!json_is_boolean(v))
				bad = "expected true or false";
			job->backup = json_is_true(v);
		} else if (job->op == ADMIN_ADD && strcmp(key, "tls") == 0) {
			if (!json_is_boolean(v))
				bad = "expected true or false";
			job->tls = json_is_true(v);
		} else if (job->op == ADMIN_ADD && strcmp(key, "max_conns") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > 1000000)
				bad = "expected an integer from 0 to 1000000";
			else
				job->max_conns = (unsigned)json_integer_value(v);
		} else {
			bad = job->op == ADMIN_ADD ? "unknown field (address, weight, backup, max_conns, "
			    "tls, state)" : "unknown field (weight, state)";
		}
		if (bad != NULL) {
			answer_error(r, 400, bad, key);
			return -1;
		}
	}
	if (job->op == ADMIN_ADD && job->addr[0] == '\0') {
		answer_error(r, 400, "missing: the server's HOST:PORT", "address");
		return -1;
	}
	if (job->op == ADMIN_SET && !job->has_weight && !job->has_state) {
		answer_error(r, 400, "give weight, state or both", "weight");
		return -1;
	}
	return 0;
}

/*
 * Whether body nests arrays and objects deeper than max, strings skipped:
 * our bodies are flat objects, and jansson's own limit (2048 levels of
 * recursion) is far more than a request should be allowed to cost.
 */
static int
too_deep(const char *body, size_t len, int max)
{
	int depth = 0, in_str = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = body[i];
		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = 0;
		} else if (ch == '"') {
			in_str = 1;
		} else if (ch == '[' || ch == '{') {
			if (++depth > max)
				return 1;
		} else if (ch == ']' || ch == '}') {
			depth--;
		}
	}
	return 0;
}

/* A change to a pool's servers: the body checked, then off to the main thread. */
static void
change(struct request *r, enum admin_op op, const char *pool, const char *addr,
    const char *body, size_t len)
{
	struct admin_job *job = calloc(1, sizeof(*job));
	json_error_t err;
	json_t *o = NULL;

	if (job == NULL) {
		http_resp_error(r, 500);
		return;
	}
	job->op = op;
	job->efd = -1;
	snprintf(job->pool, sizeof(job->pool), "%s", pool != NULL ? pool : "");
	if (addr != NULL)
		snprintf(job->addr, sizeof(job->addr), "%s", addr);
	if (op == ADMIN_ADD || op == ADMIN_SET) {
		/* Bounded twice: the body is at most ADMIN_MAX_BODY bytes, and
		 * nests at most 4 levels (checked before jansson recurses). */
		if (too_deep(body, len, 4)) {
			answer_error(r, 400, "bad JSON: nested more than 4 levels deep", NULL);
			goto out;
		}
		o = len > 0 ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &err) : NULL;
		if (o == NULL || !json_is_object(o)) {
			char msg[200];
			if (o == NULL && len > 0)
				snprintf(msg, sizeof(msg), "bad JSON: %s at byte %d", err.text, err.position);
			else
				snprintf(msg, sizeof(msg), "expected a JSON object");
			answer_error(r, 400, msg, NULL);
			goto out;
		}
		if (parse_fields(r, o, job) < 0)
			goto out;
	}
	json_decref(o);
	submit(r, job);
	return;
out:
	json_decref(o);
	free(job);
}

/* ---- the request ---- */

/* Whether r carries the route's token, compared in constant time. */
static int
authorized(struct request *r, const char **why)
{
	const struct admin_conf *ac = r->route->hconf;
	const struct http_header *h = req_header(r, "authorization");
	unsigned char d[32];

	*why = "no bearer token";
	if (h == NULL || h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7) != 0)
		return 0;
	*why = "wrong token";
	size_t off = 7;
	while (off < h->value_len && h->value[off] == ' ')
		off++;
	if (sha256(h->value + off, h->value_len - off, d) < 0)
		return 0;
	return CRYPTO_memcmp(d, ac->digest, sizeof(d)) == 0;
}

/* Splits path into at most 5 segments at '/' (copies in buf). */
static int
split(const char *path, size_t len, char *buf, size_t cap, char **seg)
{
	int n = 0;

	if (len >= cap)
		return -1;
	memcpy(buf, path, len);
	buf[len] = '\0';
	if (len > 1 && buf[len - 1] == '/')
		buf[len - 1] = '\0';
	for (char *p = buf, *save = NULL, *t; (t = strtok_r(p, "/", &save)) != NULL; p = NULL) {
		if (n == 5)
			return -1;
		seg[n++] = t;
	}
	return n;
}

static void
dispatch(struct request *r, const char *body, size_t len)
{
	const struct config *conf = r->conn->w->conf;
	const struct http_request *hr = r->hr;
	int get = hr->meth == HTTP_M_GET || hr->meth == HTTP_M_HEAD;
	char buf[1024], *seg[5];
	const struct pool *p;
	/* The part of the path below the route's. */
	size_t plen = r->route->path_len;

	if (plen > 0 && r->route->path[plen - 1] == '/')
		plen--;
	int n = split(r->npath + plen, r->npath_len - plen, buf, sizeof(buf), seg);
	const char *allow = n == 1 && strcmp(seg[0], "reload") == 0 ? "POST" :
	    n == 1 || n == 2 ? "GET, HEAD" : n == 3 ? "POST" : "GET, HEAD, PUT, DELETE";
	int known = n == 1 ? strcmp(seg[0], "pools") == 0 || strcmp(seg[0], "config") == 0 ||
	    strcmp(seg[0], "reload") == 0 :
	    n >= 2 && n <= 4 && strcmp(seg[0], "pools") == 0 && (n < 3 || strcmp(seg[2], "servers") == 0);

	if (!known) {
		answer_error(r, 404, "no such endpoint", NULL);
		return;
	}
	if (strcmp(allow, "POST") == 0 ? hr->meth != HTTP_M_POST : !get && (n < 4 ||
	    (hr->meth != HTTP_M_PUT && hr->meth != HTTP_M_DELETE))) {
		answer(r, 405, admin_error_body("method not allowed here", NULL), allow);
		return;
	}
	if (n == 1) {
		if (strcmp(seg[0], "pools") == 0)
			get_pools(r, conf);
		else if (strcmp(seg[0], "config") == 0)
			get_config(r, conf);
		else
			change(r, ADMIN_RELOAD, NULL, NULL, NULL, 0);
		return;
	}
	/* Checked here for a quick answer, and again by the main thread against
	 * the newest snapshot, which decides. */
	if ((p = find_pool(conf, seg[1])) == NULL) {
		answer_error(r, 404, "no such pool", "pool");
		return;
	}
	if (n == 2) {
		json_t *o = admin_pool_json(p);
		if (o != NULL)
			json_object_set_new(o, "generation", json_integer((json_int_t)conf->generation));
		answer_json(r, 200, o);
	} else if (n == 3) {
		change(r, ADMIN_ADD, seg[1], NULL, body, len);
	} else if (get) {
		unsigned i;
		for (i = 0; i < p->nservers && strcmp(p->servers[i].name, seg[3]) != 0; i++)
			;
		if (i < p->nservers)
			answer_json(r, 200, server_json(p, i, clock_ms()));
		else
			answer_error(r, 404, "no such server in the pool", "address");
	} else {
		change(r, hr->meth == HTTP_M_PUT ? ADMIN_SET : ADMIN_DELETE, seg[1], seg[3], body, len);
	}
}

static void
admin_start(struct request *r)
{
	const struct http_request *hr = r->hr;
	const char *why;
	char ip[64];

	if (!authorized(r, &why)) {
		if (worker_log_client_error(r->conn->w))
			/* The path as sent: the parser let only visible bytes in
			 * (the decoded one could hold a line end). */
			log_warnx("admin: %.*s %.*s from %s refused: %s", (int)hr->method_len,
			    hr->method, hr->path_len > 200 ? 200 : (int)hr->path_len, hr->path,
			    conn_peer(r->conn, ip, sizeof(ip)), why);
		answer_error(r, 401, "a valid bearer token is required", NULL);
	} else if (hr->content_length > ADMIN_MAX_BODY) {
		answer_error(r, 413, "the body is larger than 64 KiB", NULL);
	} else if (!(hr->flags & HTTP_F_CHUNKED) && hr->content_length <= 0) {
		dispatch(r, NULL, 0);
	} else if ((r->hdata = calloc(1, sizeof(struct admin_req))) == NULL) {
		/* else the body comes first (admin_body) */
		http_resp_error(r, 500);
	}
}

static int
admin_body(struct request *r, const char *data, size_t len)
{
	struct admin_req *ar = r->hdata;

	if (ar == NULL || ar->job != NULL)
		return -1; /* answered, or a change away: the rest is not ours */
	if (len == 0) {
		dispatch(r, ar->buf, ar->len);
		return r->hdata != NULL ? 0 : -1;
	}
	if (len > ADMIN_MAX_BODY - ar->len) {
		answer_error(r, 413, "the body is larger than 64 KiB", NULL);
		return -1;
	}
	char *nb = realloc(ar->buf, ar->len + len);
	if (nb == NULL) {
		req_done(r);
		http_resp_error(r, 500);
		return -1;
	}
	memcpy(nb + ar->len, data, len);
	ar->buf = nb;
	ar->len += len;
	return 0;
}

static void
admin_abort(struct request *r)
{
	struct admin_req *ar = r->hdata;

	/* A change at the main thread goes on; its answer finds no one. */
	if (ar != NULL && ar->job != NULL)
		ar->job->r = NULL;
	req_done(r);
}

const struct handler_ops admin_ops = {
	.name = "admin",
	.key = "admin",
	.keys = admin_keys,
	.flags = HANDLER_WANTS_BODY,
	.configure = admin_configure,
	.free_conf = admin_free_conf,
	.start = admin_start,
	.body = admin_body,
	.abort = admin_abort,
};
