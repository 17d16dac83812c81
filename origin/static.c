#include "origin/static.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/coding.h"
#include "common/config.h"
#include "common/exchange.h"
#include "common/http.h"
#include "common/log.h"
#include "common/server.h"
#include "origin/conditional.h"
#include "common/sbuf.h"
#include "common/units.h"
#include "origin/health.h"
#include "origin/fcache.h"
#include "origin/mime.h"
#include "origin/range.h"

#define STATIC_PATH_MAX 4000     /* longer decoded paths name no file: 404 */
#define STATIC_INDEX_MAX 8
#define LISTING_MAX_ENTRIES 10000

enum symlinks { SYMLINKS_INSIDE, SYMLINKS_OUTSIDE, SYMLINKS_OFF };

/*
 * A secret of the TLS configuration (a tls_key, the tls_ticket_key): never
 * served, by any name.  It is known by the file it was at load; when its
 * name lies under the root, by what that name is now too, since a renewed
 * key is often a new file renamed into place.
 */
struct secret {
	dev_t dev;
	ino_t ino;
	char *watch;                      /* the name as configured, under the root; or NULL */
};

struct static_conf {
	char *root;                       /* absolute, resolved */
	char *index[STATIC_INDEX_MAX];
	unsigned nindex;
	int autoindex;
	char *cache_control;
	struct mime_table mime;
	enum content_coding pre[2];       /* precompressed sidecars, in order of preference */
	unsigned npre;
	enum symlinks symlinks;
	struct secret *secrets;
	size_t nsecrets;
};

/* The keys of a root route besides root itself. */
static const struct conf_key static_keys[] = {
	{ "index", "index.html", CONF_KEY_LIST, NULL },
	{ "autoindex", "off", 0, NULL },
	{ "cache_control", NULL, 0, NULL },           /* none: no header */
	{ "precompressed", "off", CONF_KEY_LIST, NULL },
	{ "mime_types", NULL, 0, NULL },              /* none: the built-in table only */
	{ "follow_symlinks", "inside", 0, NULL },
	{ NULL, NULL, 0, NULL },
};

static void
static_free(void *p)
{
	struct static_conf *sc = p;

	if (sc == NULL)
		return;
	for (size_t i = 0; i < sc->nsecrets; i++)
		free(sc->secrets[i].watch);
	free(sc->secrets);
	free(sc->root);
	for (unsigned i = 0; i < sc->nindex; i++)
		free(sc->index[i]);
	free(sc->cache_control);
	mime_free(&sc->mime);
	free(sc);
}

/* One index line, its names added after those of the lines before. */
static int
parse_index(struct conf_ctx *ctx, struct static_conf *sc, const struct conf_kv *kv)
{
	const char *p = kv->value, *tok;
	size_t len;

	while (conf_list_next(&p, &tok, &len)) {
		if (memchr(tok, '/', len) != NULL || tok[0] == '.') {
			conf_err(ctx, kv->line, ctx->section, "index",
			    "expected up to %d plain file names, not \"%.*s\"", STATIC_INDEX_MAX,
			    (int)len, tok);
			return -1;
		}
		if (sc->nindex == STATIC_INDEX_MAX) {
			conf_err(ctx, kv->line, ctx->section, "index", "more than %d file names, "
			    "counting every index line (\"%.*s\" is one too many)", STATIC_INDEX_MAX,
			    (int)len, tok);
			return -1;
		}
		sc->index[sc->nindex++] = strndup(tok, len);
	}
	return 0;
}

/* One precompressed line, its codings added after those of the lines before. */
static int
parse_precompressed(struct conf_ctx *ctx, struct static_conf *sc, const struct conf_route *rt,
    const struct conf_kv *kv)
{
	const char *p = kv->value, *tok;
	size_t len;

	if (strcmp(kv->value, "off") == 0)
		return conf_route_alone(ctx, rt, kv);
	while (conf_list_next(&p, &tok, &len)) {
		enum content_coding c;
		if (len == 2 && memcmp(tok, "br", 2) == 0)
			c = CODING_BR;
		else if (len == 4 && memcmp(tok, "gzip", 4) == 0)
			c = CODING_GZIP;
		else {
			conf_err(ctx, kv->line, ctx->section, "precompressed",
			    "expected off or a list of br and gzip, not \"%.*s\"", (int)len, tok);
			return -1;
		}
		unsigned i;
		for (i = 0; i < sc->npre && sc->pre[i] != c; i++)
			;
		if (i == sc->npre)
			sc->pre[sc->npre++] = c;
	}
	return 0;
}

/*
 * Adds the file at path to the secrets of sc, once however many names it
 * has; when the name, resolved, lies under the root, watches that name and
 * warns, since nothing but this check then stands between the file and a
 * client.  what says whose file it is, for the warning.  A file that cannot
 * be resolved is left out: the TLS code reports it as an error.
 */
static void
add_secret(struct conf_ctx *ctx, struct static_conf *sc, const struct conf_kv *kv,
    const char *path, const char *what)
{
	struct stat st;
	char *real;
	size_t i, rl = strlen(sc->root);

	if (stat(path, &st) < 0 || (real = realpath(path, NULL)) == NULL)
		return;
	int under = strncmp(real, sc->root, rl) == 0 && (real[rl] == '/' || rl == 1);
	free(real);
	for (i = 0; i < sc->nsecrets; i++)
		if (sc->secrets[i].dev == st.st_dev && sc->secrets[i].ino == st.st_ino)
			break;
	if (i == sc->nsecrets) {
		struct secret *v = realloc(sc->secrets, (sc->nsecrets + 1) * sizeof(*v));
		if (v == NULL)
			return;
		sc->secrets = v;
		v[sc->nsecrets++] = (struct secret){ st.st_dev, st.st_ino, NULL };
	}
	if (!under)
		return;
	if (sc->secrets[i].watch == NULL)
		sc->secrets[i].watch = strdup(path);
	conf_warn(ctx, kv->line, ctx->section, "root", "%s, %s, lies under %s; it is not served "
	    "(404), but keep it out of the root", path, what, sc->root);
}

/* Every tls_key of every listener, and the tls_ticket_key. */
static void
find_secrets(struct conf_ctx *ctx, struct static_conf *sc, const struct conf_kv *kv)
{
	const struct config *conf = ctx->conf;
	char what[300];

	if (conf == NULL)
		return;
	for (size_t i = 0; i < conf->nlistens; i++)
		for (size_t k = 0; k < conf->listens[i].tls_key.n; k++) {
			snprintf(what, sizeof(what), "the tls_key of [listen:%s]", conf->listens[i].name);
			add_secret(ctx, sc, kv, conf->listens[i].tls_key.v[k], what);
		}
	if (conf->global.tls_ticket_key != NULL)
		add_secret(ctx, sc, kv, conf->global.tls_ticket_key, "the tls_ticket_key");
}

/*
 * Whether st is a secret file.  Called when a path is looked up (not for
 * one the open-file cache answers): two integer compares per secret, plus
 * a stat() per watched name, which only a root the load warned about has.
 */
static int
is_secret(const struct static_conf *sc, const struct stat *st)
{
	struct stat now;

	for (size_t i = 0; i < sc->nsecrets; i++) {
		const struct secret *k = &sc->secrets[i];
		if (k->ino == st->st_ino && k->dev == st->st_dev)
			return 1;
		if (k->watch != NULL && stat(k->watch, &now) == 0 && now.st_ino == st->st_ino &&
		    now.st_dev == st->st_dev)
			return 1;
	}
	return 0;
}

static int
static_configure(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv)
{
	struct static_conf *sc = calloc(1, sizeof(*sc));
	const struct conf_kv *k;
	struct conf_kv def;
	char err[512];
	struct stat st;
	int rc = 0;

	if (sc == NULL)
		return -1;
	rt->hconf = sc;
	sc->root = realpath(kv->value, NULL);
	if (sc->root == NULL || stat(sc->root, &st) < 0 || !S_ISDIR(st.st_mode)) {
		conf_err(ctx, kv->line, ctx->section, "root", "%s: %s", kv->value,
		    sc->root == NULL ? strerror(errno) : "not a directory");
		return -1;
	}
	find_secrets(ctx, sc, kv);
	for (k = conf_route_list(rt, static_keys, "index", NULL, &def); k != NULL;
	    k = conf_route_list(rt, static_keys, "index", k, &def))
		rc |= parse_index(ctx, sc, k);
	k = conf_route_value(rt, static_keys, "autoindex", &def);
	if (units_bool(k->value, &sc->autoindex) < 0) {
		conf_err(ctx, k->line, ctx->section, "autoindex", "expected on or off, not \"%s\"", k->value);
		rc = -1;
	}
	if ((k = conf_route_value(rt, static_keys, "cache_control", &def)) != NULL)
		sc->cache_control = strdup(k->value);
	for (k = conf_route_list(rt, static_keys, "precompressed", NULL, &def); k != NULL;
	    k = conf_route_list(rt, static_keys, "precompressed", k, &def))
		rc |= parse_precompressed(ctx, sc, rt, k);
	if ((k = conf_route_value(rt, static_keys, "mime_types", &def)) != NULL &&
	    mime_load(&sc->mime, k->value, err, sizeof(err)) < 0) {
		conf_err(ctx, k->line, ctx->section, "mime_types", "%s", err);
		rc = -1;
	}
	k = conf_route_value(rt, static_keys, "follow_symlinks", &def);
	if (strcmp(k->value, "inside") == 0)
		sc->symlinks = SYMLINKS_INSIDE;
	else if (strcmp(k->value, "outside") == 0)
		sc->symlinks = SYMLINKS_OUTSIDE;
	else if (strcmp(k->value, "off") == 0)
		sc->symlinks = SYMLINKS_OFF;
	else {
		conf_err(ctx, k->line, ctx->section, "follow_symlinks",
		    "expected inside, outside or off, not \"%s\"", k->value);
		rc = -1;
	}
	return rc ? -1 : 0;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static int
utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		size_t len;
		unsigned min, cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) { len = 2; min = 0x80; cp = c & 0x1f; }
		else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800; cp = c & 0x0f; }
		else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; cp = c & 0x07; }
		else return 0;
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

int
static_check_path(const char *raw, size_t raw_len, const char *norm, size_t norm_len)
{
	for (size_t i = 0; i + 2 < raw_len; i++)
		if (raw[i] == '%' && ((raw[i + 1] == '2' && (raw[i + 2] == 'f' || raw[i + 2] == 'F')) ||
		    (raw[i + 1] == '5' && (raw[i + 2] == 'c' || raw[i + 2] == 'C'))))
			return 400;
	if (memchr(norm, '\\', norm_len) != NULL || memchr(norm, '\0', norm_len) != NULL ||
	    !utf8_ok((const unsigned char *)norm, norm_len))
		return 400;
	if (norm_len > STATIC_PATH_MAX)
		return 404; /* the request line was within limits; no such file can exist */
	for (size_t i = 0; i + 1 < norm_len; i++) {
		if (norm[i] != '/' || norm[i + 1] != '.')
			continue;
		/* "/.well-known" is the one dot-directory served (RFC 8615), and only at the top. */
		if (i == 0 && norm_len >= 12 && memcmp(norm, "/.well-known", 12) == 0 &&
		    (norm_len == 12 || norm[12] == '/'))
			continue;
		return 404;
	}
	return 0;
}

/* Opens path (relative) beneath the directory rootfd, refusing to leave it. */
static int
open_beneath(const struct static_conf *sc, int rootfd, const char *path, int flags)
{
	struct open_how how = { .flags = (uint64_t)flags };

	if (sc->symlinks == SYMLINKS_OUTSIDE)
		return openat(rootfd, path, flags);
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	if (sc->symlinks == SYMLINKS_OFF)
		how.resolve |= RESOLVE_NO_SYMLINKS;
	int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	if (fd >= 0 || errno != ENOSYS)
		return fd;
	/* Kernels before 5.6: open, then check where the descriptor really is. */
	fd = openat(rootfd, path, flags | (sc->symlinks == SYMLINKS_OFF ? O_NOFOLLOW : 0));
	if (fd < 0)
		return -1;
	char link[64], real[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, real, sizeof(real) - 1);
	size_t rl = strlen(sc->root);
	if (n < 0 || (size_t)n < rl || memcmp(real, sc->root, rl) != 0 ||
	    ((size_t)n > rl && real[rl] != '/' && rl > 1)) {
		close(fd);
		errno = EXDEV;
		return -1;
	}
	return fd;
}

/* errno to status, in one place: missing is 404, forbidden is 403, the rest is 500. */
static int
errno_status(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
	case EXDEV:   /* a symlink out of the root: as if it were not there */
	case ELOOP:
		return 404;
	case EACCES:
	case EPERM:
		return 403;
	case ENAMETOOLONG:  /* a name longer than the file system allows: no such file */
		return 404;
	default:
		return 500;
	}
}

static void
fail_errno(struct request *r, const char *what, int e)
{
	int st = errno_status(e);

	if (st == 500)
		log_warnx("static: %s: %s", what, strerror(e));
	http_resp_error(r, st);
}

static const char *const variant_coding[FC_VARIANTS] = { NULL, "br", "gzip" };

static void
common_headers(struct request *r, const struct static_conf *sc, const struct fc_file *f, int v)
{
	const struct worker *w = r->conn->w;
	/* RFC 9110 8.8.2.1: never a Last-Modified later than our Date. */
	http_resp_header(r, "Last-Modified", f->st.st_mtime > w->date_sec ? w->date : f->lastmod);
	http_resp_header(r, "ETag", f->etag);
	if (sc->cache_control != NULL)
		http_resp_header(r, "Cache-Control", sc->cache_control);
	if (sc->npre > 0)
		http_resp_header(r, "Vary", "Accept-Encoding");
	if (variant_coding[v] != NULL)
		http_resp_header(r, "Content-Encoding", variant_coding[v]);
}

/*
 * Queues bytes [off, off + len) of f: from memory when the cache holds the
 * contents, else through a descriptor of our own (*fd, dup'ed once per
 * response, then owned by the connection).
 */
static int
send_bytes(struct request *r, const struct fc_file *f, int *fd, uint64_t off, uint64_t len)
{
	if (r->flags & REQ_HEAD_ONLY)
		return 0;
	if (f->data != NULL) {
		http_resp_body(r, f->data + off, (size_t)len);
		return 0;
	}
	if (*fd < 0 && (*fd = dup(f->fd)) < 0) {
		log_warn("static: dup");
		return -1;
	}
	return http_resp_file(r, *fd, (off_t)off, (off_t)len);
}

static void
send_multipart(struct request *r, const struct static_conf *sc, const struct fc_entry *e, int v,
    const struct byte_range *rg, unsigned n)
{
	const struct fc_file *f = &e->v[v];
	char boundary[40], part[512];
	uint64_t size = (uint64_t)f->st.st_size, total = 0;
	int plen, fd = -1;

	/* From what the ETag already tells, not the inode number. */
	snprintf(boundary, sizeof(boundary), "%016llx%016llx",
	    (unsigned long long)fcache_mtime_ns(&f->st), (unsigned long long)size);
	/* Two passes over the part headers: first to count, then to send. */
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < n; i++) {
			plen = snprintf(part, sizeof(part), "%s--%s\r\nContent-Type: %s\r\n"
			    "Content-Range: bytes %llu-%llu/%llu\r\n\r\n", i ? "\r\n" : "", boundary, e->type,
			    (unsigned long long)rg[i].first, (unsigned long long)rg[i].last,
			    (unsigned long long)size);
			if (pass == 0) {
				total += (uint64_t)plen + rg[i].last - rg[i].first + 1;
			} else {
				http_resp_body(r, part, (size_t)plen);
				if (send_bytes(r, f, &fd, rg[i].first, rg[i].last - rg[i].first + 1) < 0)
					return;
			}
		}
		plen = snprintf(part, sizeof(part), "\r\n--%s--\r\n", boundary);
		if (pass == 0) {
			char ctype[96];
			total += (uint64_t)plen;
			snprintf(ctype, sizeof(ctype), "multipart/byteranges; boundary=%s", boundary);
			http_resp_start(r, 206, ctype, (int64_t)total);
			common_headers(r, sc, f, v);
		} else {
			http_resp_body(r, part, (size_t)plen);
		}
	}
	http_resp_end(r);
}

/* Answers with variant v of e, honouring preconditions and Range. */
static void
serve(struct request *r, const struct static_conf *sc, const struct fc_entry *e, int v)
{
	const struct http_request *hr = r->hr;
	const struct fc_file *f = &e->v[v];
	uint64_t size = (uint64_t)f->st.st_size;
	struct byte_range rg[RANGE_MAX];
	enum range_result rr = RANGE_NONE;
	unsigned n = 0;
	char cr[96];
	int st, fd = -1;

	/* Dates compare with the Last-Modified we send: never later than now. */
	worker_update_time(r->conn->w);
	time_t lm = f->st.st_mtime > r->conn->w->date_sec ? r->conn->w->date_sec : f->st.st_mtime;
	if ((st = cond_preconditions(r, f->etag, lm)) != 0) {
		if (st == 412) {
			http_resp_error(r, 412);
			return;
		}
		http_resp_start(r, 304, NULL, -1);
		common_headers(r, sc, f, v);
		http_resp_end(r);
		return;
	}
	const struct http_header *range = hr->nheaders > 0 ? req_header(r, "range") : NULL;
	if (range != NULL && hr->meth == HTTP_M_GET && cond_if_range(r, f->etag, lm))
		rr = range_parse(range->value, range->value_len, size, rg, &n);
	if (rr == RANGE_UNSATISFIABLE) {
		snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
		http_resp_start(r, 416, "text/html", 0);
		http_resp_header(r, "Content-Range", cr);
		http_resp_end(r);
		return;
	}
	if (rr == RANGE_OK && n > 1) {
		send_multipart(r, sc, e, v, rg, n);
		return;
	}
	if (rr == RANGE_OK) {
		http_resp_start(r, 206, e->type, (int64_t)(rg[0].last - rg[0].first + 1));
		snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)rg[0].first,
		    (unsigned long long)rg[0].last, (unsigned long long)size);
		http_resp_header(r, "Content-Range", cr);
	} else {
		rg[0].first = 0;
		rg[0].last = size - 1;
		http_resp_start(r, 200, e->type, (int64_t)size);
	}
	http_resp_header(r, "Accept-Ranges", "bytes");
	common_headers(r, sc, f, v);
	if (size > 0 && send_bytes(r, f, &fd, rg[0].first, rg[0].last - rg[0].first + 1) < 0)
		return;
	http_resp_end(r);
}

/* The variant to send: the first configured sidecar the client accepts. */
static int
pick_variant(const struct static_conf *sc, const struct request *r, const struct fc_entry *e)
{
	const struct http_header *h;
	struct coding_accept a;
	unsigned it = 0;
	int any = 0;

	if (sc->npre == 0)
		return FC_IDENTITY;
	coding_accept_init(&a);
	while (req_header_next(r, &it, &h))
		if (http_token_eq(h->name, h->name_len, "accept-encoding")) {
			coding_accept_parse(&a, h->value, h->value_len);
			any = 1;
		}
	if (!any)
		return FC_IDENTITY;
	for (unsigned i = 0; i < sc->npre; i++) {
		int v = sc->pre[i] == CODING_BR ? FC_BR : FC_GZIP;
		if (e->v[v].fd >= 0 && coding_q(&a, sc->pre[i]) > 0)
			return v;
	}
	return FC_IDENTITY;
}

/* Adds the br/gzip sidecars of rel that exist and are not older than the file. */
static void
find_sidecars(const struct static_conf *sc, struct fcache *fc, struct fc_entry *e, int rootfd,
    const char *rel)
{
	char path[STATIC_PATH_MAX + 80];

	for (unsigned i = 0; i < sc->npre; i++) {
		int v = sc->pre[i] == CODING_BR ? FC_BR : FC_GZIP;
		struct stat st;
		snprintf(path, sizeof(path), "%s.%s", rel, v == FC_BR ? "br" : "gz");
		int fd = open_beneath(sc, rootfd, path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    st.st_mtime < e->v[FC_IDENTITY].st.st_mtime || is_secret(sc, &st)) {
			close(fd);
			continue;
		}
		fcache_fill(fc, e, v, fd, &st);
	}
}

struct entry {
	char *name;
	int dir;
	off_t size;
	time_t mtime;
};

static int
entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->dir != y->dir)
		return y->dir - x->dir; /* directories first */
	return strcmp(x->name, y->name);
}
/* Directory listing of dirfd (which it closes), HTML or ?format=json. */
static void
listing(struct request *r, const struct static_conf *sc, int dirfd)
{
	const struct http_request *hr = r->hr;
	struct entry *v = NULL;
	size_t n = 0;
	struct sbuf b = { 0 };
	struct dirent *de;
	DIR *d = fdopendir(dirfd);
	int json = hr->query != NULL && hr->query_len >= 11 &&
	    memmem(hr->query, hr->query_len, "format=json", 11) != NULL;
	char path[STATIC_PATH_MAX + 1];

	if (d == NULL) {
		close(dirfd);
		fail_errno(r, "opendir", errno);
		return;
	}
	snprintf(path, sizeof(path), "%.*s", (int)r->npath_len, r->npath);
	while ((de = readdir(d)) != NULL && n < LISTING_MAX_ENTRIES) {
		struct stat st;
		/* Dot files are not served, and neither is a name that is not
		 * UTF-8 (its path gets 400), so neither is listed. */
		if (de->d_name[0] == '.' ||
		    !utf8_ok((const unsigned char *)de->d_name, strlen(de->d_name)) ||
		    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		/* A key's name is not listed either; a link to it would only 404. */
		if ((!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) ||
		    (S_ISREG(st.st_mode) && is_secret(sc, &st)))
			continue;
		struct entry *nv = realloc(v, (n + 1) * sizeof(*v));
		if (nv == NULL)
			break;
		v = nv;
		v[n].name = strdup(de->d_name);
		v[n].dir = S_ISDIR(st.st_mode);
		v[n].size = st.st_size;
		v[n].mtime = st.st_mtime;
		if (v[n].name != NULL)
			n++;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), entry_cmp); /* v is NULL for an empty directory */
	if (json) {
		sbuf_str(&b, "[");
		for (size_t i = 0; i < n; i++) {
			char t[32];
			struct tm tm;
			gmtime_r(&v[i].mtime, &tm);
			strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
			sbuf_str(&b, i ? ",{\"name\":\"" : "{\"name\":\"");
			sbuf_json(&b, v[i].name);
			sbuf_printf(&b, "\",\"type\":\"%s\",\"size\":%lld,\"mtime\":\"%s\"}",
			    v[i].dir ? "directory" : "file", (long long)(v[i].dir ? 0 : v[i].size), t);
		}
		sbuf_str(&b, "]\n");
	} else {
		sbuf_str(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ");
		sbuf_html(&b, path);
		sbuf_str(&b, "</title></head>\n<body><h1>Index of ");
		sbuf_html(&b, path);
		sbuf_str(&b, "</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Last modified</th></tr>\n");
		if (strcmp(path, "/") != 0)
			sbuf_str(&b, "<tr><td><a href=\"../\">../</a></td><td>-</td><td></td></tr>\n");
		for (size_t i = 0; i < n; i++) {
			char t[32];
			struct tm tm;
			gmtime_r(&v[i].mtime, &tm);
			strftime(t, sizeof(t), "%Y-%m-%d %H:%M", &tm);
			sbuf_str(&b, "<tr><td><a href=\"");
			sbuf_urlpath(&b, v[i].name);
			sbuf_str(&b, v[i].dir ? "/\">" : "\">");
			sbuf_html(&b, v[i].name);
			sbuf_str(&b, v[i].dir ? "/" : "");
			if (v[i].dir)
				sbuf_printf(&b, "</a></td><td>-</td><td>%s</td></tr>\n", t);
			else
				sbuf_printf(&b, "</a></td><td>%lld</td><td>%s</td></tr>\n", (long long)v[i].size, t);
		}
		sbuf_str(&b, "</table>\n</body></html>\n");
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	if (sbuf_failed(&b)) {
		sbuf_free(&b);
		http_resp_error(r, 500);
		return;
	}
	http_resp_start(r, 200, json ? "application/json" : "text/html; charset=utf-8", (int64_t)b.len);
	http_resp_header(r, "Cache-Control", "no-cache");
	http_resp_body(r, b.p, b.len);
	http_resp_end(r);
	sbuf_free(&b);
}

/* A directory without its trailing slash: send the client to the one with it. */
static void
redirect_slash(struct request *r)
{
	const struct http_request *hr = r->hr;
	struct sbuf b = { 0 };

	/* From the normalized path, so "//evil.example/.." cannot become a
	 * protocol-relative Location pointing elsewhere. */
	sbuf_urlpath(&b, r->npath);
	sbuf_str(&b, "/");
	if (hr->query != NULL) {
		sbuf_str(&b, "?");
		sbuf_add(&b, hr->query, hr->query_len);
	}
	if (sbuf_failed(&b)) {
		http_resp_error(r, 500);
		return;
	}
	http_resp_start(r, 301, "text/html", 0);
	http_resp_header(r, "Location", b.p);
	http_resp_end(r);
	sbuf_free(&b);
}

/*
 * Resolves the request path on disk: answers redirects, 403, listings and
 * errors itself (returning NULL), or caches and returns what to serve.
 */
static struct fc_entry *
resolve(struct request *r, const struct static_conf *sc, struct fcache *fc, time_t now)
{
	char rel[STATIC_PATH_MAX + 64];
	const char *name = r->npath;
	size_t name_len = r->npath_len;
	struct stat st;
	int fd, rootfd;

	/* openat2 wants a relative path: "." for the root itself. */
	snprintf(rel, sizeof(rel), "%.*s", (int)(r->npath_len - 1), r->npath + 1);
	if (rel[0] == '\0')
		strcpy(rel, ".");
	rootfd = open(sc->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		fail_errno(r, sc->root, errno);
		return NULL;
	}
	fd = open_beneath(sc, rootfd, rel, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		close(rootfd);
		fail_errno(r, rel, e);
		return NULL;
	}
	if (S_ISDIR(st.st_mode)) {
		size_t rl = strlen(rel);
		if (r->npath[r->npath_len - 1] != '/') {
			close(fd);
			close(rootfd);
			redirect_slash(r);
			return NULL;
		}
		for (unsigned i = 0; i < sc->nindex; i++) {
			snprintf(rel + rl, sizeof(rel) - rl, "%s%s", strcmp(rel, ".") == 0 ? "/" : "",
			    sc->index[i]);
			int ifd = open_beneath(sc, rootfd, rel, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
			struct stat ist;
			if (ifd < 0)
				continue;
			if (fstat(ifd, &ist) < 0 || !S_ISREG(ist.st_mode)) {
				close(ifd);
				continue;
			}
			close(fd);
			fd = ifd;
			st = ist;
			name = sc->index[i];
			name_len = strlen(name);
			goto regular;
		}
		close(rootfd);
		if (sc->autoindex) {
			listing(r, sc, fd);
			return NULL;
		}
		close(fd);
		http_resp_error(r, 403);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		/* FIFOs, devices and sockets are never served. */
		close(fd);
		close(rootfd);
		http_resp_error(r, 404);
		return NULL;
	}
regular:
	if (is_secret(sc, &st)) {
		/* A TLS key, under whatever name: as if it were not there. */
		log_debug("static: %s is a TLS key file: 404", rel);
		close(fd);
		close(rootfd);
		http_resp_error(r, 404);
		return NULL;
	}
	struct fc_entry *e = fcache_put(fc, sc, r->npath, r->npath_len, now);
	if (e == NULL) {
		close(fd);
		close(rootfd);
		http_resp_error(r, 500);
		return NULL;
	}
	e->type = mime_lookup(&sc->mime, name, name_len);
	fcache_fill(fc, e, FC_IDENTITY, fd, &st);
	if (sc->npre > 0)
		find_sidecars(sc, fc, e, rootfd, rel);
	close(rootfd);
	return e;
}

static void *
static_worker_new(void)
{
	return fcache_new();
}

static void
static_worker_free(void *p)
{
	fcache_free(p);
}

static void
static_worker_release(void *p, const struct config *conf)
{
	for (size_t i = 0; i < conf->nroutes; i++)
		if (conf->routes[i].handler == &static_ops)
			fcache_forget(p, conf->routes[i].hconf);
}

static void
static_start(struct request *r)
{
	const struct static_conf *sc = r->route->hconf;
	const struct http_request *hr = r->hr;
	struct fcache *fc = worker_handler_state(r->conn->w, &static_ops);
	struct fc_entry *e;
	int st;

	if (origin_only_get(r) == 0)
		return;
	if ((st = static_check_path(hr->path, hr->path_len, r->npath, r->npath_len)) != 0) {
		http_resp_error(r, st);
		return;
	}
	if (fc == NULL) {
		http_resp_error(r, 500);
		return;
	}
	e = fcache_get(fc, sc, r->npath, r->npath_len, r->start.tv_sec);
	if (e == NULL && (e = resolve(r, sc, fc, r->start.tv_sec)) == NULL)
		return;
	serve(r, sc, e, pick_variant(sc, r, e));
}

const struct handler_ops static_ops = {
	.name = "static",
	.key = "root",
	.keys = static_keys,
	.configure = static_configure,
	.free_conf = static_free,
	.start = static_start,
	.worker_new = static_worker_new,
	.worker_free = static_worker_free,
	.worker_release = static_worker_release,
};
