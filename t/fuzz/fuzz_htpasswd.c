/*
 * libFuzzer target for htpasswd_parse and basic_credentials.
 *
 * Input: the first byte picks the function (even: the loader, odd: the
 * Authorization decoder); the rest is copied into an exactly-sized buffer
 * so ASan sees any read past its length.
 *
 * The loader: on success at least one and at most HTPASSWD_MAX_USERS
 * users, sorted and unique, names of 1 to 255 bytes without a colon or a
 * control byte, every hash a bcrypt or SHA-crypt one without blanks, the
 * dummy one of them, every user found by name; on failure at least one
 * report and nothing kept.  Never more than HTPASSWD_MAX_ERRORS + 1
 * reports, each with a line of the input or 0.
 *
 * The decoder: on success user:password NUL-terminated, within the bound,
 * the colon at *ulen the first one, no control byte, and encoding it
 * again gives the base64 that was sent.  With a buffer one byte short it
 * must fail.  Any disagreement traps.
 */
#include "common/htpasswd.h"
#include "common/mw_basic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

struct seen {
	unsigned n;
	int max_line;
};

static void
on_err(void *arg, int line, const char *msg)
{
	struct seen *s = arg;

	CHECK(msg != NULL && msg[0] != '\0');
	CHECK(line >= 0 && line <= s->max_line);
	s->n++;
}

static void
fuzz_loader(const char *data, size_t len)
{
	struct seen s = { 0, 1 };
	struct htpasswd_report rep = { on_err, &s };
	struct htpasswd h;

	for (size_t i = 0; i < len; i++)
		s.max_line += data[i] == '\n';
	int rc = htpasswd_parse(data, len, &h, &rep);
	CHECK(s.n <= HTPASSWD_MAX_ERRORS + 1);
	if (rc < 0) {
		CHECK(s.n > 0 && h.n == 0 && h.v == NULL);
		return;
	}
	CHECK(rc == 0 && s.n == 0 && h.n >= 1 && h.n <= HTPASSWD_MAX_USERS);
	int dummy = 0;
	for (size_t i = 0; i < h.n; i++) {
		const struct htpasswd_user *u = &h.v[i];
		size_t nl = strlen(u->name), hl = strlen(u->hash);
		CHECK(nl >= 1 && nl <= HTPASSWD_MAX_USER && u->line >= 1 && u->line <= s.max_line);
		for (size_t k = 0; k < nl; k++)
			CHECK((unsigned char)u->name[k] >= 0x20 && u->name[k] != 0x7f && u->name[k] != ':');
		CHECK(hl > 3 && u->hash[0] == '$' && strpbrk(u->hash, " \t\r\n:") == NULL);
		CHECK((u->hash[1] == '2' && hl == 60) || u->hash[1] == '5' || u->hash[1] == '6');
		if (i > 0)
			CHECK(strcmp(h.v[i - 1].name, u->name) < 0);
		CHECK(htpasswd_find(&h, u->name, nl) == u);
		dummy |= h.dummy == u->hash;
	}
	CHECK(dummy);
	htpasswd_free(&h);
}

static void
b64(const unsigned char *in, size_t len, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = 0;

	for (size_t i = 0; i < len; i += 3) {
		unsigned w = (unsigned)in[i] << 16;
		if (i + 1 < len)
			w |= (unsigned)in[i + 1] << 8;
		if (i + 2 < len)
			w |= in[i + 2];
		out[n++] = a[w >> 18 & 63];
		out[n++] = a[w >> 12 & 63];
		out[n++] = i + 1 < len ? a[w >> 6 & 63] : '=';
		out[n++] = i + 2 < len ? a[w & 63] : '=';
	}
	out[n] = '\0';
}

static void
fuzz_decoder(const char *data, size_t len)
{
	char out[BASIC_MAX_CREDENTIALS + 1], again[(BASIC_MAX_CREDENTIALS + 2) / 3 * 4 + 1];
	size_t ulen = (size_t)-1;
	int n = basic_credentials(data, len, out, sizeof(out), &ulen);

	if (n < 0)
		return;
	CHECK(n >= 1 && n <= BASIC_MAX_CREDENTIALS && out[n] == '\0' && ulen < (size_t)n);
	CHECK(out[ulen] == ':' && memchr(out, ':', ulen) == NULL);
	for (int k = 0; k < n; k++)
		CHECK((unsigned char)out[k] >= 0x20 && out[k] != 0x7f);
	CHECK(len > 6 && strncasecmp(data, "basic ", 6) == 0);
	size_t i = 6;
	while (data[i] == ' ')
		i++;
	b64((const unsigned char *)out, (size_t)n, again);
	CHECK(strlen(again) == len - i && memcmp(again, data + i, len - i) == 0);
	char *small = malloc((size_t)n);
	CHECK(small != NULL);
	CHECK(basic_credentials(data, len, small, (size_t)n, &ulen) == -1);
	free(small);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t len = size - 1;
	char *v = malloc(len != 0 ? len : 1);
	if (v == NULL)
		abort();
	memcpy(v, data + 1, len);
	if (data[0] % 2 == 0)
		fuzz_loader(v, len);
	else
		fuzz_decoder(v, len);
	free(v);
	return 0;
}
