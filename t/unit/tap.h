/*
 * A tiny TAP producer for C unit tests: ok(), is(), is_str(), done_testing().
 * Each test file is one program; prove reads its output.
 */
#ifndef PORTICO_TAP_H
#define PORTICO_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

/* Out of line, so the compiler does not conclude from the NULL test that a
 * message argument may be NULL. */
static int __attribute__((noinline, unused))
tap_streq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is(got, want, ...) do { long long g_ = (long long)(got), w_ = (long long)(want); \
	if (!ok(g_ == w_, __VA_ARGS__)) printf("#   got %lld, want %lld\n", g_, w_); } while (0)
#define is_str(got, want, ...) do { const char *g_ = (got), *w_ = (want); \
	int same_ = tap_streq(g_, w_); \
	if (!ok(same_, __VA_ARGS__)) printf("#   got '%s', want '%s'\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); } while (0)
/* Compares a (pointer, length) slice with a C string. */
#define is_slice(p, n, want, ...) do { const char *p_ = (p); size_t n_ = (n); const char *w_ = (want); \
	int same_ = p_ != NULL && strlen(w_) == n_ && memcmp(p_, w_, n_) == 0; \
	if (!ok(same_, __VA_ARGS__)) printf("#   got '%.*s', want '%s'\n", p_ ? (int)n_ : 6, p_ ? p_ : "(null)", w_); } while (0)

static int __attribute__((format(printf, 4, 5)))
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", pass ? "ok" : "not ok", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!pass) {
		tap_failed++;
		printf("#   failed at %s line %d\n", file, line);
	}
	return pass;
}

static int
done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
