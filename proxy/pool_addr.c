/*
 * pool_addr: a pool server's address: HOST:PORT, [V6]:PORT or unix:/PATH
 * as the configuration and the admin API write it, and the copy workers
 * read under the resolver's sequence lock.
 */
#include "proxy/pool.h"

#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/seqlock.h"
#include "common/units.h"

#define ADDR_WORDS (1 + sizeof(struct sockaddr_storage) / 8)

socklen_t
backend_addr(const struct backend *b, struct sockaddr_storage *out)
{
	uint64_t w[ADDR_WORDS];

	if (seqlock_read(&b->gen, b->addr, w, ADDR_WORDS) == 0)
		return 0;
	memcpy(out, w + 1, sizeof(*out));
	return (socklen_t)w[0];
}

int
backend_set_addr(struct backend *b, const struct sockaddr *sa, socklen_t len)
{
	uint64_t w[ADDR_WORDS] = { len }, cur[ADDR_WORDS];

	if (len > sizeof(struct sockaddr_storage))
		return 0;
	memcpy(w + 1, sa, len);
	/* The only writer reads its own last words: no retry can happen. */
	if (seqlock_read(&b->gen, b->addr, cur, ADDR_WORDS) != 0 && memcmp(cur, w, sizeof(w)) == 0)
		return 0;
	seqlock_write(&b->gen, b->addr, w, ADDR_WORDS);
	return 1;
}

/* unix:/PATH, an absolute path that fits a sockaddr_un. */
static int
parse_unix(const char *path, struct backend *b, const char **why)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = strlen(path);

	if (path[0] != '/')
		return *why = "expected unix:/ABSOLUTE/PATH", -1;
	if (len >= sizeof(sun.sun_path))
		return *why = "a Unix socket path has at most 107 bytes", -1;
	memcpy(sun.sun_path, path, len + 1);
	backend_set_addr(b, (const struct sockaddr *)&sun,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1));
	return 0;
}

/*
 * Splits HOST:PORT or [V6]:PORT, or takes unix:/PATH.  A numeric address
 * is set at once; a name is kept for the main thread's resolver, so
 * start-up never waits on DNS.
 */
int
pool_parse_address(const char *hostport, struct backend *b, const char **why)
{
	char host[256], port[24];
	const char *colon;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, *res = NULL;

	if (strncmp(hostport, "unix:", 5) == 0)
		return parse_unix(hostport + 5, b, why);
	if (hostport[0] == '[') {
		const char *rb = strchr(hostport, ']');
		if (rb == NULL || rb[1] != ':' || (size_t)(rb - hostport - 1) >= sizeof(host))
			return *why = "expected HOST:PORT or [IPV6]:PORT", -1;
		snprintf(host, sizeof(host), "%.*s", (int)(rb - hostport - 1), hostport + 1);
		colon = rb + 1;
	} else {
		colon = strrchr(hostport, ':');
		if (colon == NULL || colon == hostport || (size_t)(colon - hostport) >= sizeof(host))
			return *why = "expected HOST:PORT", -1;
		snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
	}
	uint64_t pn;
	if (units_count(colon + 1, 65535, &pn) < 0 || pn == 0)
		return *why = "expected a port from 1 to 65535", -1;
	snprintf(port, sizeof(port), "%llu", (unsigned long long)pn);
	if (getaddrinfo(host, port, &hints, &res) == 0 && res != NULL) {
		backend_set_addr(b, res->ai_addr, res->ai_addrlen);
		freeaddrinfo(res);
		return 0;
	}
	if (hostport[0] == '[')
		return *why = "not an IPv6 address", -1;
	for (const char *c = host; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		    *c == '-' || *c == '.' || *c == '_'))
			return *why = "expected an IP address or a host name", -1;
	b->host = strdup(host);
	b->port = strdup(port);
	return 0;
}

const char *
backend_host(const struct backend *b)
{
	return strncmp(b->name, "unix:", 5) == 0 ? "localhost" : b->name;
}

int
pool_check_address(const char *hostport, const char **why)
{
	struct backend b;

	memset(&b, 0, sizeof(b));
	int rc = pool_parse_address(hostport, &b, why);
	free(b.host);
	free(b.port);
	return rc;
}
