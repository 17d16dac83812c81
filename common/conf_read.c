/*
 * conf_read: reading a configuration file, and what goes wrong doing it.
 *
 * The INI reader turns a file (or text in memory) into section headers and
 * "key = value" lines, each with its line number, and hands them to the
 * loader (config.c) through two callbacks; it knows nothing of what the
 * sections mean.  The errors and warnings of a load, whoever finds them,
 * are collected here too, as "FILE:LINE: [section] key: reason".
 */
#include "common/conf_read.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One file being read. */
struct reader {
	struct conf_ctx *ctx;
	const struct conf_read_ops *ops;
	void *arg;
	const char *section;         /* the caller's current section, for messages */
	FILE *fp;
	int lineno;
	char *line;                  /* CONF_MAX_LINE bytes and a NUL */
};

/* Appends msg, which ctx then owns, as an error about line. */
static void
push_error(struct conf_ctx *ctx, int line, char *msg)
{
	char **e = realloc(ctx->errors, (ctx->nerrors + 1) * sizeof(*e));
	int *l;

	if (e == NULL) {
		free(msg);
		return;
	}
	ctx->errors = e;
	if ((l = realloc(ctx->lines, (ctx->nerrors + 1) * sizeof(*l))) == NULL) {
		free(msg);
		return;
	}
	ctx->lines = l;
	e[ctx->nerrors] = msg;
	l[ctx->nerrors] = line;
	ctx->nerrors++;
}

struct error_at {
	int line;
	size_t seq;
	char *msg;
};

static int
error_order(const void *a, const void *b)
{
	const struct error_at *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Puts the errors from index `from` on in the order of their lines, which is
 * not the order they are found in: a listener's address, a pool or a route
 * is checked once the whole file is read.  The sort is stable, so errors of
 * one line keep the order they were found in.  Left as they are if memory
 * is short.
 */
void
conf_sort_errors(struct conf_ctx *ctx, size_t from)
{
	size_t n = ctx->nerrors - from;
	struct error_at *v;

	if (n < 2 || (v = calloc(n, sizeof(*v))) == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		v[i] = (struct error_at){ ctx->lines[from + i], i, ctx->errors[from + i] };
	qsort(v, n, sizeof(*v), error_order);
	for (size_t i = 0; i < n; i++) {
		ctx->lines[from + i] = v[i].line;
		ctx->errors[from + i] = v[i].msg;
	}
	free(v);
}

static char *
conf_vmsg(const struct conf_ctx *ctx, int line, const char *section, const char *key,
    const char *fmt, va_list ap)
{
	char *msg, *full;
	int n;

	if (vasprintf(&msg, fmt, ap) < 0)
		return NULL;
	if (section != NULL && key != NULL)
		n = asprintf(&full, "%s:%d: [%s] %s: %s", ctx->file, line, section, key, msg);
	else if (section != NULL)
		n = asprintf(&full, "%s:%d: [%s] %s", ctx->file, line, section, msg);
	else if (key != NULL)
		n = asprintf(&full, "%s:%d: %s: %s", ctx->file, line, key, msg);
	else
		n = asprintf(&full, "%s:%d: %s", ctx->file, line, msg);
	free(msg);
	return n < 0 ? NULL : full;
}

void
conf_err(struct conf_ctx *ctx, int line, const char *section, const char *key,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	char *full = conf_vmsg(ctx, line, section, key, fmt, ap);
	va_end(ap);
	if (full != NULL)
		push_error(ctx, line, full);
}

void
conf_warn(struct conf_ctx *ctx, int line, const char *section, const char *key,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	char *full = conf_vmsg(ctx, line, section, key, fmt, ap);
	va_end(ap);
	if (full == NULL)
		return;
	char **w = realloc(ctx->warnings, (ctx->nwarnings + 1) * sizeof(*w));
	if (w == NULL) {
		free(full);
		return;
	}
	ctx->warnings = w;
	w[ctx->nwarnings++] = full;
}

void
conf_ctx_free(struct conf_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nerrors; i++)
		free(ctx->errors[i]);
	free(ctx->errors);
	free(ctx->lines);
	ctx->errors = NULL;
	ctx->lines = NULL;
	ctx->nerrors = 0;
	for (size_t i = 0; i < ctx->nwarnings; i++)
		free(ctx->warnings[i]);
	free(ctx->warnings);
	ctx->warnings = NULL;
	ctx->nwarnings = 0;
}

unsigned
conf_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned row[65];

	if (la > 64 || lb > 64)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned prev = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned cur = row[j];
			unsigned sub = prev + (a[i - 1] != b[j - 1]);
			unsigned del = row[j] + 1, ins = row[j - 1] + 1;
			row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
			prev = cur;
		}
	}
	return row[lb];
}

/* Appends ` (did you mean "x"?)` when a candidate is close enough. */
void
conf_suggest(const char *word, const char *const *cands, char *out, size_t len)
{
	const char *best = NULL;
	unsigned bd = 3;

	out[0] = '\0';
	for (size_t i = 0; cands[i] != NULL; i++) {
		unsigned d = conf_distance(word, cands[i]);
		if (d < bd || (d == bd && best == NULL && d <= strlen(cands[i]) / 3)) {
			bd = d;
			best = cands[i];
		}
	}
	if (best != NULL && bd <= 2)
		snprintf(out, len, " (did you mean \"%s\"?)", best);
}

/*
 * Blanks, as inih counted them before we read lines ourselves: any
 * isspace() byte, so a stray form feed around a value is trimmed as it
 * always was.
 */
static int
is_blank(char c)
{
	return isspace((unsigned char)c);
}

static char *
skip_blanks(char *s)
{
	while (is_blank(*s))
		s++;
	return s;
}

static void
trim_end(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && is_blank(s[n - 1]))
		s[--n] = '\0';
}

/* Keeps byte c at buf[n] while the line has room; returns the new length. */
static size_t
keep_byte(char *buf, size_t n, int c, int *over)
{
	if (n == CONF_MAX_LINE) {
		*over = 1;
		return n;
	}
	buf[n] = (char)c;
	return n + 1;
}

/*
 * Reads the next line into rd->line without its ending (the LF and any CRs
 * just before it), NUL-terminated.  At most CONF_MAX_LINE bytes are kept:
 * *over is set when the line had more, and the rest is read and dropped, so
 * memory stays bounded whatever the file holds.  *len is the length kept.
 * Returns 1 for a line, 0 at the end of the file, -1 on a read error (errno).
 */
static int
next_line(struct reader *rd, size_t *len, int *over)
{
	size_t n = 0, ncr = 0;
	int c, any = 0;

	*over = 0;
	while ((c = getc(rd->fp)) != EOF) {
		any = 1;
		if (c == '\n')
			break;
		if (c == '\r') {
			ncr++; /* kept only if more than CRs follow */
			continue;
		}
		for (; ncr > 0; ncr--)
			n = keep_byte(rd->line, n, '\r', over);
		n = keep_byte(rd->line, n, c, over);
	}
	if (c == EOF && ferror(rd->fp))
		return -1;
	rd->line[n] = '\0';
	*len = n;
	return any;
}

/*
 * Cuts s at its inline comment: a ';' after a blank, as inih's rule was.
 * A '#' is no comment there, and neither is a ';' right after '=' ("a =;b").
 */
static void
cut_comment(char *s)
{
	for (char *p = s; *p != '\0'; p++)
		if (*p == ';' && p > s && is_blank(p[-1])) {
			*p = '\0';
			return;
		}
}

/*
 * One line of the file, len bytes in rd->line (over: it was longer).  Does
 * what inih did for us until lines grew past its 200-byte buffer: skips
 * comments and empty lines, starts sections, splits "key = value" at the
 * first '=' with blanks trimmed around both and an inline comment cut off.
 * Leading blanks never make a continuation line.
 */
static void
parse_line(struct reader *rd, size_t len, int over)
{
	char *s = rd->line, *eq;

	if (memchr(s, '\0', len) != NULL) {
		conf_err(rd->ctx, rd->lineno, NULL, NULL, "NUL byte in line");
		return;
	}
	if (rd->lineno == 1 && len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	s = skip_blanks(s);
	if (*s == ';' || *s == '#' || (*s == '\0' && !over))
		return;
	if (over) {
		conf_err(rd->ctx, rd->lineno, NULL, NULL, "line longer than %d bytes", CONF_MAX_LINE);
		return;
	}
	if (*s == '[') {
		char *rb = strchr(s, ']');
		char *rest = rb != NULL ? skip_blanks(rb + 1) : NULL;
		if (rb == NULL || (*rest != '\0' && *rest != ';' && *rest != '#')) {
			conf_err(rd->ctx, rd->lineno, NULL, NULL, "malformed section header");
			rd->ops->section(rd->arg, rd->lineno, NULL);
			return;
		}
		*rb = '\0';
		rd->ops->section(rd->arg, rd->lineno, s + 1);
		return;
	}
	cut_comment(s);
	eq = strchr(s, '=');
	trim_end(s);
	if (eq == NULL || eq == s) {
		/* no '=' before the comment, or no key before the '=' */
		conf_err(rd->ctx, rd->lineno, rd->section[0] != '\0' ? rd->section : NULL, NULL,
		    "expected \"key = value\"");
		return;
	}
	*eq = '\0';
	trim_end(s);
	char *value = skip_blanks(eq + 1);
	rd->ops->key(rd->arg, rd->lineno, s, value);
}

/* Appends "FILE: what" as an error about the whole file (line 0). */
static void
file_error(struct conf_ctx *ctx, const char *file, const char *what)
{
	char *msg;

	if (asprintf(&msg, "%s: %s", file, what) >= 0)
		push_error(ctx, 0, msg);
}

int
conf_read(struct conf_ctx *ctx, const char *file, const char *text, const char *section,
    const struct conf_read_ops *ops, void *arg)
{
	struct reader rd = { .ctx = ctx, .ops = ops, .arg = arg, .section = section };
	char why[300];
	struct stat st;
	size_t len;
	int over, got;

	rd.fp = text != NULL ? fmemopen((void *)text, strlen(text), "r") : fopen(file, "r");
	if (rd.fp == NULL) {
		snprintf(why, sizeof(why), "cannot open: %s", strerror(errno));
		file_error(ctx, file, why);
		return -1;
	}
	/* A directory opens, and reading it fails; say what it is instead. */
	if (fstat(fileno(rd.fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		file_error(ctx, file, "is a directory");
		fclose(rd.fp);
		return -1;
	}
	if ((rd.line = malloc(CONF_MAX_LINE + 1)) == NULL) {
		file_error(ctx, file, "cannot read: out of memory");
		fclose(rd.fp);
		return -1;
	}
	while ((got = next_line(&rd, &len, &over)) > 0) {
		rd.lineno++;
		parse_line(&rd, len, over);
	}
	/* Half a file is no configuration: nothing past this is checked. */
	if (got < 0) {
		snprintf(why, sizeof(why), "cannot read: %s", strerror(errno));
		file_error(ctx, file, why);
	}
	fclose(rd.fp);
	free(rd.line);
	return got < 0 ? -1 : rd.lineno;
}
