/*
 * vars: the request variables a configured text may hold, as nginx names
 * them: $scheme, $host, $request_uri, $uri, $args ("${host}" too; "$$"
 * is a '$').  Used by return and by the headers middleware.
 */
#ifndef PORTICO_VARS_H
#define PORTICO_VARS_H

struct sbuf;
struct request;

/* What vars_expand escapes for HTML: nothing, the values of variables only
 * (a configured body is markup as written), or everything (a URL put in an
 * attribute). */
enum vars_escape { VARS_RAW, VARS_HTML_VALUES, VARS_HTML_ALL };

/* Appends tmpl with its variables replaced, escaped as esc says. */
void vars_expand(struct sbuf *out, const char *tmpl, const struct request *r,
    enum vars_escape esc);
/* 1 when tmpl holds variables, 0 when none (it is used as it is), -1 with
 * *bad at the first '$' that starts no known variable. */
int vars_check(const char *tmpl, const char **bad);
#define VARS_KNOWN "$scheme, $host, $request_uri, $uri, $args; $$ for a literal $"

#endif
