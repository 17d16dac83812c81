#include "units.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DURATION_MAX_MS (366LL * 24 * 3600 * 1000)
#define SIZE_MAX_BYTES (1ULL << 40)

/* Reads digits at *p into *v, refusing overflow past max.  Returns the digit count. */
static int
read_digits(const char **p, uint64_t max, uint64_t *v)
{
	int n = 0;

	*v = 0;
	while (**p >= '0' && **p <= '9') {
		unsigned d = (unsigned)(**p - '0');
		if (d > max || *v > (max - d) / 10)
			return -1;
		*v = *v * 10 + d;
		(*p)++;
		n++;
	}
	return n;
}

int
units_duration(const char *s, int64_t *ms)
{
	static const struct { const char *name; int64_t mult; } unit[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ "d", 86400000 },
	};
	uint64_t total = 0, v;
	const char *p = s;

	if (s == NULL || *s == '\0')
		return -1;
	while (*p != '\0') {
		int n = read_digits(&p, (uint64_t)DURATION_MAX_MS, &v);
		if (n <= 0)
			return -1;
		int64_t mult = 0;
		if (*p == '\0') {
			if (p - s != n) /* a bare number only on its own */
				return -1;
			mult = 1000;
		} else {
			for (size_t i = 0; i < sizeof(unit) / sizeof(unit[0]); i++) {
				size_t l = strlen(unit[i].name);
				if (strncmp(p, unit[i].name, l) == 0 &&
				    !(l == 1 && p[0] == 'm' && p[1] == 's')) {
					mult = unit[i].mult;
					p += l;
					break;
				}
			}
			if (mult == 0)
				return -1;
		}
		if (v > (uint64_t)DURATION_MAX_MS / (uint64_t)mult)
			return -1;
		total += v * (uint64_t)mult;
		if (total > (uint64_t)DURATION_MAX_MS)
			return -1;
	}
	*ms = (int64_t)total;
	return 0;
}

int
units_size(const char *s, uint64_t *bytes)
{
	const char *p = s;
	uint64_t v, mult = 1;

	if (s == NULL || read_digits(&p, SIZE_MAX_BYTES, &v) <= 0)
		return -1;
	switch (tolower((unsigned char)*p)) {
	case 'k': mult = 1ULL << 10; p++; break;
	case 'm': mult = 1ULL << 20; p++; break;
	case 'g': mult = 1ULL << 30; p++; break;
	default: break;
	}
	if (mult > 1 && tolower((unsigned char)*p) == 'b')
		p++;
	if (*p != '\0' || v > SIZE_MAX_BYTES / mult)
		return -1;
	*bytes = v * mult;
	return 0;
}

int
units_count(const char *s, uint64_t max, uint64_t *out)
{
	const char *p = s;
	uint64_t v;

	if (s == NULL || read_digits(&p, max, &v) <= 0 || *p != '\0')
		return -1;
	*out = v;
	return 0;
}

int
units_bool(const char *s, int *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

void
units_format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % 86400000 == 0)
		snprintf(buf, len, "%lldd", (long long)(ms / 86400000));
	else if (ms != 0 && ms % 3600000 == 0)
		snprintf(buf, len, "%lldh", (long long)(ms / 3600000));
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(buf, len, "%lldm", (long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%llds", (long long)(ms / 1000));
	else
		snprintf(buf, len, "%lldms", (long long)ms);
}

void
units_format_size(uint64_t bytes, char *buf, size_t len)
{
	if (bytes != 0 && bytes % (1ULL << 30) == 0)
		snprintf(buf, len, "%llug", (unsigned long long)(bytes >> 30));
	else if (bytes != 0 && bytes % (1ULL << 20) == 0)
		snprintf(buf, len, "%llum", (unsigned long long)(bytes >> 20));
	else if (bytes != 0 && bytes % (1ULL << 10) == 0)
		snprintf(buf, len, "%lluk", (unsigned long long)(bytes >> 10));
	else
		snprintf(buf, len, "%llu", (unsigned long long)bytes);
}
