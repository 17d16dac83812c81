/*
 * Unit tests for proxy/pool.c: a server's address, which the main thread's
 * resolver changes while workers read it (backend_set_addr, backend_addr).
 * A reader must get the old address or the new one, whole, however often
 * it changes: before the sequence lock the address was double-buffered,
 * and a second change while a worker still read the first slot tore it
 * (and ThreadSanitizer reports it under `make tsan`).
 */
#include "proxy/pool.h"
#include "t/unit/tap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define CHANGES 20000
#define READS 20000

static struct backend b;
static struct sockaddr_in a4;
static struct sockaddr_in6 a6;
static atomic_int writing;
static atomic_long reads;
static long changes;

static int
is_a4(const struct sockaddr_storage *ss, socklen_t len)
{
	return len == sizeof(a4) && memcmp(ss, &a4, sizeof(a4)) == 0;
}

static int
is_a6(const struct sockaddr_storage *ss, socklen_t len)
{
	return len == sizeof(a6) && memcmp(ss, &a6, sizeof(a6)) == 0;
}

/* The resolver's part: the address flips between two of different families
 * and lengths, as a name with an A and an AAAA record might, until both
 * sides have done their share (either may start well before the other). */
static void *
resolver(void *arg)
{
	(void)arg;
	for (changes = 0; changes < CHANGES || atomic_load(&reads) < READS; changes++) {
		if (changes & 1)
			backend_set_addr(&b, (const struct sockaddr *)&a4, sizeof(a4));
		else
			backend_set_addr(&b, (const struct sockaddr *)&a6, sizeof(a6));
	}
	atomic_store(&writing, 0);
	return NULL;
}

int
main(void)
{
	struct sockaddr_storage ss;
	pthread_t t;
	long torn = 0;

	a4.sin_family = AF_INET;
	a4.sin_port = htons(8080);
	inet_pton(AF_INET, "127.0.0.1", &a4.sin_addr);
	a6.sin6_family = AF_INET6;
	a6.sin6_port = htons(8443);
	inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);

	is(backend_addr(&b, &ss), 0, "never set: no address (length 0)");
	is(backend_set_addr(&b, (const struct sockaddr *)&a4, sizeof(a4)), 1, "the first address is a change");
	socklen_t len = backend_addr(&b, &ss);
	ok(is_a4(&ss, len), "read back whole");
	is(backend_set_addr(&b, (const struct sockaddr *)&a4, sizeof(a4)), 0, "the same address again: no change");
	is(backend_set_addr(&b, (const struct sockaddr *)&a6, sizeof(a6)), 1, "another family: a change");
	len = backend_addr(&b, &ss);
	ok(is_a6(&ss, len), "the IPv6 address read back whole");

	atomic_store(&writing, 1);
	if (pthread_create(&t, NULL, resolver, NULL) != 0) {
		ok(0, "cannot start the resolver thread");
		return done_testing();
	}
	while (atomic_load(&writing)) {
		len = backend_addr(&b, &ss);
		atomic_fetch_add(&reads, 1);
		if (!is_a4(&ss, len) && !is_a6(&ss, len))
			torn++;
	}
	pthread_join(t, NULL);
	ok(torn == 0 && changes >= CHANGES && atomic_load(&reads) >= READS,
	    "%ld changes in another thread meanwhile: %ld reads, each the old or the new address "
	    "whole (%ld torn)", changes, atomic_load(&reads), torn);
	len = backend_addr(&b, &ss);
	ok((changes & 1) ? is_a6(&ss, len) : is_a4(&ss, len), "the last address set is the one read");
	return done_testing();
}
