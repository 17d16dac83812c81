#include "common/htpasswd.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The refusals end with what to do instead. */
#define MAKE_ONE "make a bcrypt one with htpasswd -B"

struct parse {
	const struct htpasswd_report *rep;
	struct htpasswd *h;
	size_t cap;
	unsigned nerr;
};

static void __attribute__((format(printf, 3, 4)))
report(struct parse *p, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (p->nerr++ >= HTPASSWD_MAX_ERRORS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->rep->err(p->rep->arg, line, msg);
}

/* The alphabet of crypt's base 64. */
static int
is_c64(unsigned char c)
{
	return c == '.' || c == '/' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
	    (c >= 'a' && c <= 'z');
}

/* How many bytes of s[0, len) from the start are of crypt's base 64. */
static size_t
c64_span(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && is_c64((unsigned char)s[i]))
		i++;
	return i;
}

/* "$2y$NN$" then 22 bytes of salt and 31 of hash: 60 in all. */
static int
bcrypt_check(struct parse *p, int line, const char *user, const char *h, size_t len)
{
	if (len != 60 || h[3] != '$' || h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9' ||
	    h[6] != '$' || c64_span(h + 7, 53) != 53) {
		report(p, line, "user \"%s\": not a well-formed bcrypt hash (60 characters: "
		    "$2y$, two digits of cost, $, 53 of salt and hash)", user);
		return -1;
	}
	int cost = (h[4] - '0') * 10 + (h[5] - '0');
	if (cost < 4 || cost > HTPASSWD_MAX_BCRYPT_COST) {
		report(p, line, "user \"%s\": bcrypt cost %d is outside 4 to %d (above, each check "
		    "would hold a worker thread for a second or more)", user, cost,
		    HTPASSWD_MAX_BCRYPT_COST);
		return -1;
	}
	return 0;
}

/* "$5$" or "$6$", "rounds=N$" or not, up to 16 bytes of salt, "$", and 43
 * (SHA-256) or 86 (SHA-512) bytes of hash. */
static int
sha_check(struct parse *p, int line, const char *user, const char *h, size_t len)
{
	const char *name = h[1] == '5' ? "SHA-256" : "SHA-512";
	size_t want = h[1] == '5' ? 43 : 86, i = 3;

	if (len > 10 && memcmp(h + 3, "rounds=", 7) == 0) {
		unsigned long rounds = 0;
		size_t d = 0;
		for (i = 10; i < len && h[i] >= '0' && h[i] <= '9' && d < 8; i++, d++)
			rounds = rounds * 10 + (unsigned long)(h[i] - '0');
		if (d == 0 || h[10] == '0' || i == len || h[i] != '$')
			goto bad;
		if (rounds < 1000 || rounds > HTPASSWD_MAX_SHA_ROUNDS) {
			report(p, line, "user \"%s\": %s crypt rounds=%lu is outside 1000 to %d (above, "
			    "each check would hold a worker thread for a second or more)", user, name,
			    rounds, HTPASSWD_MAX_SHA_ROUNDS);
			return -1;
		}
		i++;
	}
	size_t salt = c64_span(h + i, len - i);
	if (salt > 16 || i + salt == len || h[i + salt] != '$')
		goto bad;
	i += salt + 1;
	if (len - i != want || c64_span(h + i, want) != want)
		goto bad;
	return 0;
bad:
	report(p, line, "user \"%s\": not a well-formed %s crypt hash ($%c$, rounds=N$ or not, "
	    "up to 16 characters of salt, $, %zu of hash)", user, name, h[1], want);
	return -1;
}

/* 0 when hash h[0, len) is one we take, else -1 after saying why not. */
static int
hash_check(struct parse *p, int line, const char *user, const char *h, size_t len)
{
	if (len == 0) {
		report(p, line, "user \"%s\": no hash after the colon", user);
		return -1;
	}
	if (len >= 4 && h[0] == '$' && h[1] == '2' && strchr("aby", h[2]) != NULL && h[3] == '$')
		return bcrypt_check(p, line, user, h, len);
	if (len >= 3 && h[0] == '$' && (h[1] == '5' || h[1] == '6') && h[2] == '$')
		return sha_check(p, line, user, h, len);
	if (len >= 6 && memcmp(h, "$apr1$", 6) == 0) {
		report(p, line, "user \"%s\": MD5 ($apr1$) hashes are refused: " MAKE_ONE, user);
		return -1;
	}
	if (len >= 3 && memcmp(h, "$1$", 3) == 0) {
		report(p, line, "user \"%s\": MD5 crypt ($1$) hashes are refused: " MAKE_ONE, user);
		return -1;
	}
	if (len >= 5 && memcmp(h, "{SHA}", 5) == 0) {
		report(p, line, "user \"%s\": SHA-1 ({SHA}) hashes are refused: " MAKE_ONE, user);
		return -1;
	}
	if (len == 13 && c64_span(h, len) == len) {
		report(p, line, "user \"%s\": DES crypt hashes are refused: " MAKE_ONE, user);
		return -1;
	}
	const char *id_end = len > 1 && h[0] == '$' ? memchr(h + 1, '$', len - 1) : NULL;
	if (id_end != NULL && id_end - h <= 9 && c64_span(h + 1, (size_t)(id_end - h - 1)) ==
	    (size_t)(id_end - h - 1)) {
		report(p, line, "user \"%s\": hash scheme %.*s is not one portico takes (bcrypt $2y$, "
		    "SHA-256 crypt $5$, SHA-512 crypt $6$): " MAKE_ONE, user, (int)(id_end - h + 1), h);
		return -1;
	}
	report(p, line, "user \"%s\": not a hash portico takes (a plain-text password?): "
	    MAKE_ONE, user);
	return -1;
}

static int
add_user(struct parse *p, int line, const char *user, size_t ulen, const char *hash, size_t hlen)
{
	struct htpasswd *h = p->h;

	if (h->n == p->cap) {
		size_t cap = p->cap == 0 ? 16 : 2 * p->cap;
		struct htpasswd_user *v = realloc(h->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		h->v = v;
		p->cap = cap;
	}
	struct htpasswd_user *u = &h->v[h->n];
	u->line = line;
	u->name = strndup(user, ulen);
	u->hash = strndup(hash, hlen);
	if (u->name == NULL || u->hash == NULL) {
		free(u->name);
		free(u->hash);
		return -1;
	}
	h->n++;
	return 0;
}

/* One line s[0, len), its line end gone.  0, or -1 when it was refused. */
static int
parse_line(struct parse *p, int line, const char *s, size_t len)
{
	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
		len--;
	if (len == 0 || *s == '#')
		return 0;
	if (len > HTPASSWD_MAX_LINE) {
		report(p, line, "longer than %d bytes", HTPASSWD_MAX_LINE);
		return -1;
	}
	if (memchr(s, '\0', len) != NULL) {
		report(p, line, "a NUL byte");
		return -1;
	}
	const char *colon = memchr(s, ':', len);
	if (colon == NULL) {
		report(p, line, "expected user:hash, found no colon");
		return -1;
	}
	size_t ulen = (size_t)(colon - s);
	if (ulen == 0 || ulen > HTPASSWD_MAX_USER) {
		if (ulen == 0)
			report(p, line, "the user name is empty");
		else
			report(p, line, "the user name is longer than %d bytes", HTPASSWD_MAX_USER);
		return -1;
	}
	for (size_t i = 0; i < ulen; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			report(p, line, "the user name has a control character");
			return -1;
		}
	char user[HTPASSWD_MAX_USER + 1];
	memcpy(user, s, ulen);
	user[ulen] = '\0';
	if (hash_check(p, line, user, colon + 1, len - ulen - 1) < 0)
		return -1;
	if (p->h->n == HTPASSWD_MAX_USERS) {
		report(p, line, "more than %d users", HTPASSWD_MAX_USERS);
		return -1;
	}
	if (add_user(p, line, s, ulen, colon + 1, len - ulen - 1) < 0) {
		report(p, line, "out of memory");
		return -1;
	}
	return 0;
}

static int
by_name(const void *a, const void *b)
{
	const struct htpasswd_user *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

void
htpasswd_free(struct htpasswd *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].hash);
	}
	free(h->v);
	*h = (struct htpasswd){ 0 };
}

int
htpasswd_parse(const char *data, size_t len, struct htpasswd *out,
    const struct htpasswd_report *rep)
{
	struct parse p = { .rep = rep, .h = out };
	const char *end = data + len;
	int line = 0;

	*out = (struct htpasswd){ 0 };
	if (len > HTPASSWD_MAX_FILE) {
		report(&p, 0, "larger than %d bytes", HTPASSWD_MAX_FILE);
		return -1;
	}
	for (const char *s = data; s < end; line++) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *e = nl != NULL ? nl : end;
		if (parse_line(&p, line + 1, s, (size_t)(e - s)) < 0 &&
		    p.h->n == HTPASSWD_MAX_USERS)
			break;
		s = e + (nl != NULL);
	}
	if (p.nerr == 0 && out->n > 0) {
		/* Sorted, so that a request finds its user in log n steps. */
		qsort(out->v, out->n, sizeof(*out->v), by_name);
		for (size_t i = 1; i < out->n; i++)
			if (strcmp(out->v[i].name, out->v[i - 1].name) == 0) {
				size_t k = i - 1;
				while (k > 0 && strcmp(out->v[k - 1].name, out->v[i].name) == 0)
					k--;
				report(&p, out->v[i].line, "user \"%s\" given again (first on line %d)",
				    out->v[i].name, out->v[k].line);
			}
	}
	if (p.nerr == 0 && out->n == 0)
		report(&p, 0, "no users");
	if (p.nerr > HTPASSWD_MAX_ERRORS) {
		char msg[64];
		snprintf(msg, sizeof(msg), "%u more errors not shown", p.nerr - HTPASSWD_MAX_ERRORS);
		rep->err(rep->arg, 0, msg);
	}
	if (p.nerr > 0) {
		htpasswd_free(out);
		return -1;
	}
	const struct htpasswd_user *first = &out->v[0];
	for (size_t i = 1; i < out->n; i++)
		if (out->v[i].line < first->line)
			first = &out->v[i];
	out->dummy = first->hash;
	return 0;
}

int
htpasswd_load(const char *path, struct htpasswd *out, const struct htpasswd_report *rep)
{
	char msg[160];
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	/* O_NONBLOCK: a FIFO named by mistake must not hang the load. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	*out = (struct htpasswd){ 0 };
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(msg, sizeof(msg), "cannot read it: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(msg, sizeof(msg), "not a regular file");
		goto fail;
	}
	if (st.st_size > HTPASSWD_MAX_FILE) {
		snprintf(msg, sizeof(msg), "larger than %d bytes", HTPASSWD_MAX_FILE);
		goto fail;
	}
	/* The size fstat gave bounds what is read, should the file grow meanwhile. */
	size_t cap = (size_t)st.st_size;
	if ((buf = malloc(cap + 1)) == NULL) {
		snprintf(msg, sizeof(msg), "out of memory");
		goto fail;
	}
	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(msg, sizeof(msg), "cannot read it: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	int rc = htpasswd_parse(buf, len, out, rep);
	explicit_bzero(buf, len);
	free(buf);
	return rc;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	rep->err(rep->arg, 0, msg);
	return -1;
}

const struct htpasswd_user *
htpasswd_find(const struct htpasswd *h, const char *name, size_t len)
{
	size_t lo = 0, hi = h->n;

	/* strcmp order: bytes as unsigned char, a prefix first. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *m = h->v[mid].name;
		size_t mlen = strlen(m);
		int c = memcmp(m, name, mlen < len ? mlen : len);
		if (c == 0)
			c = (mlen > len) - (mlen < len);
		if (c == 0)
			return &h->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int
htpasswd_verify(const char *hash, const char *pw, struct crypt_data *cd)
{
	const char *out = crypt_rn(pw, hash, cd, (int)sizeof(*cd));
	size_t n = strlen(hash);
	int match = out != NULL && strlen(out) == n && CRYPTO_memcmp(out, hash, n) == 0;

	/* The scratch holds the password and what was made of it. */
	explicit_bzero(cd, sizeof(*cd));
	return match;
}
