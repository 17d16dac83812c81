#include "proxy/resolve.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "common/config.h"
#include "common/log.h"
#include "proxy/pool.h"

struct lookup {
	struct resolver *rs;
	struct pool *pool;
	struct backend *b;
	struct evdns_getaddrinfo_request *req;   /* in flight, or NULL */
	int failing;                             /* the last lookup failed (log once) */
	struct event *timer;
};

struct resolver {
	struct evdns_base *dns;
	struct lookup *v;
	size_t n;
	int stopping;
};

static void lookup_start(struct lookup *lk);

static void
on_answer(int err, struct evutil_addrinfo *res, void *arg)
{
	struct lookup *lk = arg;
	struct backend *b = lk->b;
	char text[INET6_ADDRSTRLEN] = "?";

	lk->req = NULL;
	if (err == EVUTIL_EAI_CANCEL || lk->rs->stopping) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	if (err != 0 || res == NULL) {
		if (!lk->failing)
			log_warnx("[pool:%s] server %s: cannot resolve %s: %s%s", lk->pool->name, b->name,
			    b->host, evutil_gai_strerror(err), atomic_load(&b->gen) != 0 ?
			    " (keeping the last address)" : " (the server stays down)");
		lk->failing = 1;
		return;
	}
	lk->failing = 0;
	if (backend_set_addr(b, res->ai_addr, (socklen_t)res->ai_addrlen)) {
		const void *a = res->ai_family == AF_INET ?
		    (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr :
		    (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
		inet_ntop(res->ai_family, a, text, sizeof(text));
		log_info("[pool:%s] server %s is at %s", lk->pool->name, b->name, text);
	}
	evutil_freeaddrinfo(res);
}

static void
lookup_start(struct lookup *lk)
{
	struct evutil_addrinfo hints;

	if (lk->req != NULL)
		return; /* the last one has not answered yet */
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	/* May answer at once (hosts file, cache) and call on_answer before returning. */
	struct evdns_getaddrinfo_request *req =
	    evdns_getaddrinfo(lk->rs->dns, lk->b->host, lk->b->port, &hints, on_answer, lk);
	lk->req = req;
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	lookup_start(arg);
}

void *
resolve_start(struct event_base *base, const struct config *conf)
{
	struct resolver *rs = calloc(1, sizeof(*rs));
	size_t n = 0;

	if (rs == NULL)
		return NULL;
	for (size_t i = 0; i < conf->nsections; i++) {
		struct pool *p = conf->sections[i].data;
		if (strcmp(conf->sections[i].kind, "pool") != 0 || p == NULL)
			continue;
		for (unsigned s = 0; s < p->nservers; s++)
			n += p->servers[s].host != NULL;
	}
	if (n == 0) {
		free(rs);
		return NULL;
	}
	rs->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (rs->dns == NULL) {
		/* No resolv.conf: names still resolve from the hosts file. */
		rs->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	}
	if (rs->dns == NULL || (rs->v = calloc(n, sizeof(*rs->v))) == NULL) {
		log_warnx("cannot start the DNS resolver: named servers stay down");
		if (rs->dns != NULL)
			evdns_base_free(rs->dns, 0);
		free(rs);
		return NULL;
	}
	evdns_base_load_hosts(rs->dns, NULL);
	for (size_t i = 0; i < conf->nsections; i++) {
		struct pool *p = conf->sections[i].data;
		if (strcmp(conf->sections[i].kind, "pool") != 0 || p == NULL)
			continue;
		for (unsigned s = 0; s < p->nservers; s++) {
			if (p->servers[s].host == NULL)
				continue;
			struct lookup *lk = &rs->v[rs->n++];
			struct timeval tv = { p->resolve / 1000, (p->resolve % 1000) * 1000 };
			lk->rs = rs;
			lk->pool = p;
			lk->b = &p->servers[s];
			lk->timer = event_new(base, -1, EV_PERSIST, on_timer, lk);
			event_add(lk->timer, &tv);
		}
	}
	for (size_t i = 0; i < rs->n; i++)
		lookup_start(&rs->v[i]);
	return rs;
}

void
resolve_stop(void *state)
{
	struct resolver *rs = state;

	if (rs == NULL)
		return;
	rs->stopping = 1;
	for (size_t i = 0; i < rs->n; i++) {
		if (rs->v[i].req != NULL)
			evdns_getaddrinfo_cancel(rs->v[i].req);
		event_free(rs->v[i].timer);
	}
	evdns_base_free(rs->dns, 1);
	free(rs->v);
	free(rs);
}
