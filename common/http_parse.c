#include "http_parse.h"

#include <string.h>

enum { ST_LINE, ST_HEADERS, ST_DONE };

/* tchar from RFC 9110 section 5.6.2, as a 256-entry table. */
const unsigned char http_tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
	['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
	['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
	['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
	['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
	['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
	['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

static inline int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

int
http_token_eq(const char *s, size_t len, const char *lc)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (lc[i] == '\0' || lower((unsigned char)s[i]) != lc[i])
			return 0;
	return lc[i] == '\0';
}

void
http_request_reset(struct http_request *r)
{
	/* Only the scalar part; headers[] is filled as it is parsed. */
	memset(r, 0, offsetof(struct http_request, headers));
	r->content_length = -1;
}

static int
fail(struct http_request *r, int status, const char *why)
{
	r->error = why;
	return -status;
}

/*
 * Finds the end of the line starting at p.  Returns the length of the line
 * content (without CRLF or LF) and sets *next past the terminator, or -1 if
 * no terminator is in [p, end), or -2 on a bare CR.
 */
static ssize_t
line_end(const char *p, const char *end, const char **next)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));

	if (lf == NULL)
		return -1;
	*next = lf + 1;
	if (lf > p && lf[-1] == '\r')
		return lf - 1 - p;
	return lf - p;
}

static enum http_method
method_id(const char *m, size_t n)
{
	switch (n) {
	case 3:
		if (memcmp(m, "GET", 3) == 0) return HTTP_M_GET;
		if (memcmp(m, "PUT", 3) == 0) return HTTP_M_PUT;
		break;
	case 4:
		if (memcmp(m, "HEAD", 4) == 0) return HTTP_M_HEAD;
		if (memcmp(m, "POST", 4) == 0) return HTTP_M_POST;
		break;
	case 5:
		if (memcmp(m, "TRACE", 5) == 0) return HTTP_M_TRACE;
		if (memcmp(m, "PATCH", 5) == 0) return HTTP_M_PATCH;
		break;
	case 6:
		if (memcmp(m, "DELETE", 6) == 0) return HTTP_M_DELETE;
		break;
	case 7:
		if (memcmp(m, "OPTIONS", 7) == 0) return HTTP_M_OPTIONS;
		if (memcmp(m, "CONNECT", 7) == 0) return HTTP_M_CONNECT;
		break;
	}
	return HTTP_M_OTHER;
}

static int
hexdig(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/*
 * A Host value or URI authority without userinfo (RFC 3986 3.2.2, 3.2.3):
 * a non-empty reg-name (unreserved, sub-delims, %XX) or IPv4 address, or an
 * IP literal in brackets, then optionally ':' and at most five digits.
 * RFC 9110 4.2.1: an http URI with an empty host is invalid.
 */
static int
authority_ok(const char *s, size_t n)
{
	size_t i = 0;

	if (n > 0 && s[0] == '[') {
		int future = n > 1 && (s[1] | 0x20) == 'v', colons = 0, zone = 0;
		for (i = 1; i < n && s[i] != ']'; i++) {
			unsigned char c = (unsigned char)s[i];
			int unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
			colons += c == ':';
			if (future) {
				/* IPvFuture: "v" HEXDIG... "." (unreserved / sub-delims / ":")... */
				if (!unreserved && c != ':' && strchr("!$&'()*+,;=", c) == NULL)
					return 0;
			} else if (zone) {
				/* RFC 6874 zone after "%25": unreserved or %XX */
				if (!unreserved && c != '%')
					return 0;
			} else if (c == '%') {
				if (i + 2 >= n || s[i + 1] != '2' || s[i + 2] != '5')
					return 0;
				zone = 1;
				i += 2;
			} else if (!hexdig(c) && c != ':' && c != '.') {
				return 0;
			}
		}
		if (i == n || (!future && colons < 2) || (future && i < 4))
			return 0; /* unclosed, or no IPv6 address inside */
		i++;
	} else {
		for (; i < n && s[i] != ':'; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '%') {
				if (i + 2 >= n || !hexdig((unsigned char)s[i + 1]) || !hexdig((unsigned char)s[i + 2]))
					return 0;
				i += 2;
			} else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    strchr("-._~!$&'()*+,;=", c) != NULL) || c == '\0') {
				return 0;
			}
		}
		if (i == 0)
			return 0; /* empty host */
	}
	if (i == n)
		return 1;
	if (s[i] != ':' || n - i - 1 > 5)
		return 0;
	for (i++; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int
parse_target(struct http_request *r)
{
	const char *t = r->target, *end = t + r->target_len, *q;

	for (const char *p = t; p < end; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c == 0x7f)
			return fail(r, 400, "bad character in request target");
	}
	if (r->meth == HTTP_M_CONNECT) {
		/* authority-form only */
		if (!authority_ok(t, r->target_len) || memchr(t, ':', r->target_len) == NULL)
			return fail(r, 400, "bad CONNECT target");
		r->host = r->path = t;
		r->host_len = r->path_len = r->target_len;
		return 0;
	}
	if (t[0] == '*' && r->target_len == 1) {
		if (r->meth != HTTP_M_OPTIONS)
			return fail(r, 400, "asterisk-form target without OPTIONS");
		r->path = t;
		r->path_len = 1;
		return 0;
	}
	/* RFC 9112 3.2: no fragment in a request target (a client strips it). */
	if (memchr(t, '#', r->target_len) != NULL)
		return fail(r, 400, "fragment in request target");
	if (t[0] != '/') {
		size_t skip;
		if (r->target_len > 7 && http_token_eq(t, 7, "http://"))
			skip = 7;
		else if (r->target_len > 8 && http_token_eq(t, 8, "https://"))
			skip = 8;
		else
			return fail(r, 400, "bad request target");
		const char *a = t + skip, *ae = a;
		while (ae < end && *ae != '/' && *ae != '?' && *ae != '#')
			ae++;
		if (ae == a || memchr(a, '@', (size_t)(ae - a)) != NULL ||
		    !authority_ok(a, (size_t)(ae - a)))
			return fail(r, 400, "bad authority in absolute-form target");
		r->host = a;
		r->host_len = (uint32_t)(ae - a);
		r->flags |= HTTP_F_ABSOLUTE;
		t = ae;
		if (t == end || *t != '/') {
			/* "http://host" or "http://host?q": the path is "/" */
			r->path = "/";
			r->path_len = 1;
			r->flags |= HTTP_F_NO_PATH;
			if (t < end && *t == '?') {
				r->query = t + 1;
				r->query_len = (uint32_t)(end - t - 1);
			}
			return 0;
		}
	}
	q = memchr(t, '?', (size_t)(end - t));
	r->path = t;
	r->path_len = (uint32_t)((q != NULL ? q : end) - t);
	if (q != NULL) {
		r->query = q + 1;
		r->query_len = (uint32_t)(end - q - 1);
	}
	return 0;
}

static int
parse_request_line(struct http_request *r, const char *p, size_t n)
{
	const char *end = p + n, *sp1, *sp2;

	r->line = p;
	r->line_len = (uint32_t)n;
	sp1 = memchr(p, ' ', n);
	if (sp1 == NULL || sp1 == p)
		return fail(r, 400, "malformed request line");
	for (const char *m = p; m < sp1; m++)
		if (!http_tchar[(unsigned char)*m])
			return fail(r, 400, "bad character in method");
	r->method = p;
	r->method_len = (uint32_t)(sp1 - p);
	r->meth = method_id(p, r->method_len);
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return fail(r, 400, "malformed request line");
	const char *v = sp2 + 1;
	size_t vlen = (size_t)(end - v);
	if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' ||
	    v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
		return fail(r, 400, "malformed HTTP version");
	if (v[5] != '1')
		return fail(r, 505, "unsupported HTTP version");
	/* HTTP/1.x with x > 1 is answered as HTTP/1.1 (RFC 9110 section 6.2). */
	r->version = v[7] == '0' ? 10 : 11;
	r->target = sp1 + 1;
	r->target_len = (uint32_t)(sp2 - sp1 - 1);
	return parse_target(r);
}

/* Content-Length: 1*DIGIT, or a list of identical values (RFC 9110 8.6). */
static int
parse_content_length(struct http_request *r, const char *v, size_t n)
{
	const char *p = v, *end = v + n;

	if (n == 0)
		return fail(r, 400, "empty Content-Length");
	while (p < end) {
		int64_t val = 0;
		const char *start = p;
		while (p < end && *p >= '0' && *p <= '9') {
			if (val > (INT64_MAX - 9) / 10)
				return fail(r, 400, "Content-Length too large");
			val = val * 10 + (*p - '0');
			p++;
		}
		if (p == start)
			return fail(r, 400, "malformed Content-Length");
		if ((r->flags & HTTP_F_HAS_CL) && r->content_length != val)
			return fail(r, 400, "conflicting Content-Length values");
		r->content_length = val;
		r->flags |= HTTP_F_HAS_CL;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end)
			break;
		if (*p != ',')
			return fail(r, 400, "malformed Content-Length");
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end)
			return fail(r, 400, "malformed Content-Length");
	}
	return 0;
}

/*
 * Calls fn for each comma-separated element of a list value, OWS trimmed,
 * empty elements skipped (RFC 9110 section 5.6.1).
 */
int
http_list_next(const char **p, const char *end, const char **tok, size_t *len)
{
	while (*p < end) {
		while (*p < end && (**p == ' ' || **p == '\t' || **p == ','))
			(*p)++;
		const char *s = *p;
		while (*p < end && **p != ',')
			(*p)++;
		const char *e = *p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > s) {
			*tok = s;
			*len = (size_t)(e - s);
			return 1;
		}
	}
	return 0;
}

static int
each_element(struct http_request *r, const char *v, size_t n,
    int (*fn)(struct http_request *, const char *, size_t))
{
	const char *p = v, *tok;
	size_t len;
	int count = 0;

	while (http_list_next(&p, v + n, &tok, &len)) {
		if (fn(r, tok, len) < 0)
			return -1;
		count++;
	}
	return count;
}

static int
te_element(struct http_request *r, const char *s, size_t n)
{
	if (r->flags & HTTP_F_TE_CHUNKED_SEEN) {
		/* chunked must be the final coding, and only once */
		r->error = "chunked is not the final transfer coding";
		return -1;
	}
	if (http_token_eq(s, n, "chunked"))
		r->flags |= HTTP_F_TE_CHUNKED_SEEN;
	else
		r->flags |= HTTP_F_TE_UNKNOWN; /* answered with 501 once the head is in */
	return 0;
}

static int
conn_element(struct http_request *r, const char *s, size_t n)
{
	if (http_token_eq(s, n, "close"))
		r->flags |= HTTP_F_CONN_CLOSE;
	else if (http_token_eq(s, n, "keep-alive"))
		r->flags |= HTTP_F_CONN_KA;
	else if (http_token_eq(s, n, "upgrade"))
		r->flags |= HTTP_F_UPGRADE;
	return 0;
}

/* Per-field rules that decide framing and connection handling. */
static int
note_header(struct http_request *r, const struct http_header *h)
{
	const char *n = h->name, *v = h->value;
	size_t nl = h->name_len, vl = h->value_len;

	switch (nl) {
	case 4:
		if (http_token_eq(n, nl, "host")) {
			if (r->flags & HTTP_F_HAS_HOST)
				return fail(r, 400, "duplicate Host header");
			if (!authority_ok(v, vl))
				return fail(r, 400, "bad Host header");
			r->flags |= HTTP_F_HAS_HOST;
			if (!(r->flags & HTTP_F_ABSOLUTE)) {
				r->host = v;
				r->host_len = (uint32_t)vl;
			}
		}
		break;
	case 6:
		if (http_token_eq(n, nl, "expect") && vl > 0) { /* an empty list expects nothing */
			if (!http_token_eq(v, vl, "100-continue"))
				return fail(r, 417, "unsupported expectation");
			/* RFC 9110 10.1.1: ignored in an HTTP/1.0 request */
			if (r->version == 11)
				r->flags |= HTTP_F_EXPECT_100;
		}
		break;
	case 7:
		if (http_token_eq(n, nl, "upgrade"))
			r->flags |= HTTP_F_UPGRADE_HDR;
		break;
	case 10:
		if (http_token_eq(n, nl, "connection"))
			return each_element(r, v, vl, conn_element) < 0 ? -400 : 0;
		break;
	case 14:
		if (http_token_eq(n, nl, "content-length"))
			return parse_content_length(r, v, vl);
		break;
	case 17:
		if (http_token_eq(n, nl, "transfer-encoding")) {
			int k = each_element(r, v, vl, te_element);
			if (k < 0)
				return -400;
			if (k == 0)
				return fail(r, 400, "empty Transfer-Encoding");
			r->flags |= HTTP_F_HAS_TE;
		}
		break;
	}
	return 0;
}

/* Checks made once the whole head is in: framing and version rules. */
static int
finish_head(struct http_request *r)
{
	if (r->version == 11 && !(r->flags & HTTP_F_HAS_HOST))
		return fail(r, 400, "HTTP/1.1 request without Host");
	if (r->flags & HTTP_F_HAS_TE) {
		if (r->flags & HTTP_F_HAS_CL)
			return fail(r, 400, "both Content-Length and Transfer-Encoding");
		if (r->version == 10)
			return fail(r, 400, "Transfer-Encoding in an HTTP/1.0 request");
		/* RFC 9112 6.3: without chunked last the body length is unknown. */
		if (!(r->flags & HTTP_F_TE_CHUNKED_SEEN))
			return fail(r, 400, "chunked is not the final transfer coding");
		if (r->flags & HTTP_F_TE_UNKNOWN)
			return fail(r, 501, "unsupported transfer coding");
		r->flags |= HTTP_F_CHUNKED;
	}
	/* RFC 9110 7.8: Upgrade in an HTTP/1.0 request is ignored. */
	if (!(r->flags & HTTP_F_UPGRADE_HDR) || r->version != 11)
		r->flags &= ~HTTP_F_UPGRADE;
	if (r->version == 11)
		r->flags |= (r->flags & HTTP_F_CONN_CLOSE) ? 0 : HTTP_F_KEEPALIVE;
	else if ((r->flags & HTTP_F_CONN_KA) && !(r->flags & HTTP_F_CONN_CLOSE))
		r->flags |= HTTP_F_KEEPALIVE;
	return 0;
}

/* Splits one header line into name and OWS-trimmed value, checking the
 * characters RFC 9110/9112 allow.  Returns NULL, or why the line is bad. */
static const char *
header_syntax(const char *p, size_t n, struct http_header *h)
{
	const char *end = p + n, *c = p, *v, *ve;

	if (*p == ' ' || *p == '\t')
		return "obsolete line folding";
	while (c < end && http_tchar[(unsigned char)*c])
		c++;
	if (c == end || *c != ':') {
		if (c < end && (*c == ' ' || *c == '\t'))
			return "whitespace before colon";
		return "malformed header field";
	}
	if (c == p)
		return "empty header name";
	v = c + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	ve = end;
	while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	for (const char *q = v; q < ve; q++) {
		unsigned char ch = (unsigned char)*q;
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return ch == '\r' ? "bare CR in header" :
			    ch == 0 ? "NUL in header" : "control character in header";
	}
	h->name = p;
	h->name_len = (uint32_t)(c - p);
	h->value = v;
	h->value_len = (uint32_t)(ve - v);
	return NULL;
}

static int
parse_header_line(struct http_request *r, const char *p, size_t n,
    const struct http_limits *lim)
{
	struct http_header h;
	const char *why = header_syntax(p, n, &h);

	if (why != NULL)
		return fail(r, 400, why);
	if (r->nheaders >= lim->max_headers || r->nheaders >= HTTP_MAX_HEADERS)
		return fail(r, 431, "too many header fields");
	r->headers[r->nheaders] = h;
	return note_header(r, &r->headers[r->nheaders++]);
}

ssize_t
http_parse_request(struct http_request *r, const char *buf, size_t len,
    const struct http_limits *lim)
{
	const char *p = buf + r->pos, *end = buf + len, *next;
	ssize_t n;
	int rc;

	if (r->state == ST_LINE) {
		/* RFC 9112 2.2: ignore empty lines before the request line. */
		while (p < end && (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')))
			p += *p == '\n' ? 1 : 2;
		if (p - buf > 64)
			return fail(r, 400, "too many empty lines before request");
		r->pos = (size_t)(p - buf);
		n = line_end(p, end, &next);
		if (n < 0) {
			/* A CR at the end may be the start of the CRLF, not content. */
			size_t have = (size_t)(end - p);
			if (have > 0 && end[-1] == '\r')
				have--;
			if (have > lim->max_request_line)
				return fail(r, 414, "request line too long");
			return 0;
		}
		if ((size_t)n > lim->max_request_line)
			return fail(r, 414, "request line too long");
		if (memchr(p, '\r', (size_t)n) != NULL || memchr(p, '\0', (size_t)n) != NULL)
			return fail(r, 400, "bad character in request line");
		if ((rc = parse_request_line(r, p, (size_t)n)) < 0)
			return rc;
		p = next;
		r->pos = (size_t)(p - buf);
		r->state = ST_HEADERS;
	}
	size_t hdr_start = (size_t)(r->line - buf) + r->line_len;
	for (;;) {
		n = line_end(p, end, &next);
		if (n < 0) {
			if ((size_t)(end - buf) - hdr_start > lim->max_header_size)
				return fail(r, 431, "header section too large");
			r->pos = (size_t)(p - buf);
			return 0;
		}
		if ((size_t)(next - buf) - hdr_start > lim->max_header_size)
			return fail(r, 431, "header section too large");
		if (n == 0)
			break;
		if ((rc = parse_header_line(r, p, (size_t)n, lim)) < 0)
			return rc;
		p = next;
	}
	if ((rc = finish_head(r)) < 0)
		return rc;
	r->state = ST_DONE;
	r->head_len = (size_t)(next - buf);
	r->pos = r->head_len;
	return (ssize_t)r->head_len;
}

#define REBASE(f) do { if ((f) != NULL && (f) >= oldbase && (f) < oldbase + span) \
		(f) = newbase + ((f) - oldbase); } while (0)

void
http_request_rebase(struct http_request *r, const char *oldbase, const char *newbase)
{
	/* Only slices inside the old head move; "/" for an empty path is static. */
	size_t span = r->head_len != 0 ? r->head_len : r->pos + 1 + (size_t)HTTP_MAX_HEADERS;

	if (r->line != NULL)
		span = span > (size_t)(r->line - oldbase) + r->line_len ? span :
		    (size_t)(r->line - oldbase) + r->line_len + 1;
	for (unsigned i = 0; i < r->nheaders; i++) {
		size_t e = (size_t)(r->headers[i].value - oldbase) + r->headers[i].value_len + 1;
		if (e > span)
			span = e;
	}
	REBASE(r->line);
	REBASE(r->method);
	REBASE(r->target);
	REBASE(r->path);
	REBASE(r->query);
	REBASE(r->host);
	for (unsigned i = 0; i < r->nheaders; i++) {
		REBASE(r->headers[i].name);
		REBASE(r->headers[i].value);
	}
}

const struct http_header *
http_find_header(const struct http_request *r, const char *name)
{
	size_t n = strlen(name);

	for (unsigned i = 0; i < r->nheaders; i++) {
		const struct http_header *h = &r->headers[i];
		size_t j = 0;
		/* name may be mixed case ("Content-Type"), unlike http_token_eq's */
		if (h->name_len != n)
			continue;
		while (j < n && lower((unsigned char)h->name[j]) == lower((unsigned char)name[j]))
			j++;
		if (j == n)
			return h;
	}
	return NULL;
}

void
http_response_reset(struct http_response *r)
{
	memset(r, 0, offsetof(struct http_response, headers));
	r->content_length = -1;
}

static ssize_t
resp_fail(struct http_response *r, const char *why)
{
	r->error = why;
	return -1;
}

/* Notes the framing and connection fields of a response header. */
static const char *
note_response_header(struct http_response *r, const struct http_header *h)
{
	const char *v = h->value, *end = v + h->value_len;

	if (h->name_len == 14 && http_token_eq(h->name, 14, "content-length")) {
		int64_t val = 0;
		const char *p = v;
		if (p == end)
			return "empty Content-Length";
		while (p < end) {
			int64_t one = 0;
			const char *st = p;
			while (p < end && *p >= '0' && *p <= '9') {
				if (one > (INT64_MAX - 9) / 10)
					return "Content-Length too large";
				one = one * 10 + (*p++ - '0');
			}
			if (p == st)
				return "malformed Content-Length";
			if ((r->flags & HTTP_F_HAS_CL) && one != val)
				return "conflicting Content-Length values";
			val = one;
			r->flags |= HTTP_F_HAS_CL;
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			if (p < end && *p++ != ',')
				return "malformed Content-Length";
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
		}
		r->content_length = val;
	} else if (h->name_len == 17 && http_token_eq(h->name, 17, "transfer-encoding")) {
		/*
		 * We never offer TE, so a backend may apply chunked only, once
		 * (RFC 9112 6.1).  Any other coding would reach the client
		 * unlabelled once the hop-by-hop field is dropped: refuse it, as
		 * HAProxy does.  An HTTP/1.0 message has no transfer codings at all.
		 */
		const char *p = v, *tok;
		size_t len;
		if (r->version == 10)
			return "Transfer-Encoding in an HTTP/1.0 response";
		while (http_list_next(&p, end, &tok, &len)) {
			if (!http_token_eq(tok, len, "chunked"))
				return "unsupported transfer coding";
			if (r->flags & HTTP_F_CHUNKED)
				return "chunked applied twice";
			r->flags |= HTTP_F_HAS_TE | HTTP_F_CHUNKED;
		}
		if (!(r->flags & HTTP_F_HAS_TE))
			return "empty Transfer-Encoding";
	} else if (h->name_len == 10 && http_token_eq(h->name, 10, "connection")) {
		const char *p = v, *tok;
		size_t len;
		while (http_list_next(&p, end, &tok, &len)) {
			if (http_token_eq(tok, len, "close"))
				r->flags |= HTTP_F_CONN_CLOSE;
			else if (http_token_eq(tok, len, "keep-alive"))
				r->flags |= HTTP_F_CONN_KA;
			else if (http_token_eq(tok, len, "upgrade"))
				r->flags |= HTTP_F_UPGRADE;
		}
	}
	return NULL;
}

ssize_t
http_parse_response(struct http_response *r, const char *buf, size_t len,
    const struct http_limits *lim)
{
	const char *p = buf + r->pos, *end = buf + len, *next;
	ssize_t n;

	if (r->state == ST_LINE) {
		n = line_end(p, end, &next);
		if (n < 0) {
			size_t have = (size_t)(end - p);
			if (have > 0 && end[-1] == '\r')
				have--; /* maybe the first half of the CRLF */
			return have > lim->max_request_line ? resp_fail(r, "status line too long") : 0;
		}
		if ((size_t)n > lim->max_request_line)
			return resp_fail(r, "status line too long");
		/* HTTP/1.x SP 3DIGIT SP reason (the reason may be empty, and so may its SP) */
		if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
		    p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
		    p[11] < '0' || p[11] > '9' || (n > 12 && p[12] != ' '))
			return resp_fail(r, "malformed status line");
		for (ssize_t i = 13; i < n; i++) {
			unsigned char ch = (unsigned char)p[i];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return resp_fail(r, "control character in reason phrase");
		}
		r->version = p[7] == '1' ? 11 : 10;
		r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
		r->reason = n > 13 ? p + 13 : p + n;
		r->reason_len = n > 13 ? (uint32_t)(n - 13) : 0;
		p = next;
		r->hdr_start = (size_t)(p - buf);
		r->state = ST_HEADERS;
	}
	for (;;) {
		n = line_end(p, end, &next);
		if (n < 0) {
			if ((size_t)(end - buf) - r->hdr_start > lim->max_header_size)
				return resp_fail(r, "header section too large");
			r->pos = (size_t)(p - buf);
			return 0;
		}
		if ((size_t)(next - buf) - r->hdr_start > lim->max_header_size)
			return resp_fail(r, "header section too large");
		if (n == 0)
			break;
		struct http_header h;
		const char *why = header_syntax(p, (size_t)n, &h);
		if (why == NULL && memchr(p, '\r', (size_t)n) != NULL)
			why = "bare CR in header";
		if (why != NULL)
			return resp_fail(r, why);
		if (r->nheaders >= lim->max_headers || r->nheaders >= HTTP_MAX_HEADERS)
			return resp_fail(r, "too many header fields");
		r->headers[r->nheaders] = h;
		if ((why = note_response_header(r, &r->headers[r->nheaders++])) != NULL)
			return resp_fail(r, why);
		p = next;
	}
	/* Both framings at once is how responses get smuggled: refuse. */
	if ((r->flags & HTTP_F_HAS_TE) && (r->flags & HTTP_F_HAS_CL))
		return resp_fail(r, "both Content-Length and Transfer-Encoding");
	if (r->version == 11)
		r->flags |= (r->flags & HTTP_F_CONN_CLOSE) ? 0 : HTTP_F_KEEPALIVE;
	else if ((r->flags & HTTP_F_CONN_KA) && !(r->flags & HTTP_F_CONN_CLOSE))
		r->flags |= HTTP_F_KEEPALIVE;
	r->state = ST_DONE;
	r->head_len = (size_t)(next - buf);
	r->pos = r->head_len;
	return (ssize_t)r->head_len;
}

int
http_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20; /* A-F and a-f, and nothing else, land on a-f */
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}
