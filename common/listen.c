/*
 * listen: the listening sockets, bound by the main thread for every worker,
 * at start and for a reload (those of listeners that stay are kept).
 */
#include "common/server_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

/* Creates one listening socket for l; port 0 takes *port_io once chosen. */
static int
listen_socket(const struct conf_listen *l, uint16_t *port_io)
{
	struct sockaddr_storage ss = l->addr;
	int one = 1;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		log_warn("[listen:%s] socket", l->name);
		return -1;
	}
	if (*port_io != 0) {
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons(*port_io);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(*port_io);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		log_warn("[listen:%s] SO_REUSEPORT", l->name);
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, l->addrlen) < 0) {
		log_warn("[listen:%s] cannot bind %s", l->name, l->address);
		close(fd);
		return -1;
	}
	if (listen(fd, (int)l->backlog) < 0) {
		log_warn("[listen:%s] listen on %s", l->name, l->address);
		close(fd);
		return -1;
	}
	if (*port_io == 0) {
		socklen_t len = sizeof(ss);
		getsockname(fd, (struct sockaddr *)&ss, &len);
		*port_io = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
		    ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return fd;
}

/*
 * SO_REUSEPORT lets every worker have its own socket on one address, but it
 * would equally let a second portico (same user) join the address and take
 * half the connections.  A socket without SO_REUSEPORT cannot be bound where
 * any other socket listens, so binding one first, then closing it, tells
 * whether the address is free.  Returns 0 when it is, -1 (logged) when not.
 *
 * There is a small race: a process that probes between our probe and our
 * listen() also finds the address free, and the two then share it.  Closing
 * that window would need an exclusive claim on the address, which the kernel
 * does not offer alongside SO_REUSEPORT; it takes two starts within
 * microseconds of each other.  SO_REUSEADDR stays on so that connections of
 * a previous run in TIME_WAIT do not block a restart.  Port 0 needs no
 * probe: the kernel only picks a port that no socket is bound to.
 */
static int
probe_address(const struct conf_listen *l)
{
	int one = 1, rc = 0;
	int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		log_warn("[listen:%s] socket", l->name);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* As the real sockets: [::] must not collide with 0.0.0.0. */
	if (l->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0) {
		if (errno == EADDRINUSE)
			log_warnx("[listen:%s] cannot bind %s: address already in use "
			    "(another process listens there)", l->name, l->address);
		else
			log_warn("[listen:%s] cannot bind %s", l->name, l->address);
		rc = -1;
	}
	close(fd);
	return rc;
}

static uint16_t
listen_port(const struct conf_listen *l)
{
	const struct sockaddr_storage *ss = &l->addr;

	return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port :
	    ((const struct sockaddr_in6 *)ss)->sin6_port);
}

void
fds_free(int **fds, int nworkers)
{
	if (fds == NULL)
		return;
	for (int k = 0; k < nworkers; k++)
		free(fds[k]);
	free(fds);
}

/* The listener of run at l's address not taken by another yet, or -1. */
static int
same_address(const struct config *run, const unsigned char *taken, const struct conf_listen *l)
{
	for (size_t j = 0; j < run->nlistens; j++) {
		const struct conf_listen *o = &run->listens[j];
		if (!taken[j] && o->addrlen == l->addrlen && memcmp(&o->addr, &l->addr, l->addrlen) == 0)
			return (int)j;
	}
	return -1;
}

/*
 * The sockets of conf's listeners for every worker (SO_REUSEPORT: one
 * socket each), as a table [worker][listen].  A listener at an address the
 * running configuration run listens on keeps those sockets, so a reload
 * refuses no connection; the others are bound now (run is NULL at start).
 * Every new address is probed before any is bound, so that two listeners
 * of this process on overlapping addresses (0.0.0.0:80 and 127.0.0.1:80)
 * do not take each other for a stranger.  Returns NULL after logging why,
 * with nothing it bound left open.
 */
int **
bind_listeners(struct server *srv, const struct config *conf, const struct config *run)
{
	size_t n = conf->nlistens;
	int **fds = calloc((size_t)srv->nworkers, sizeof(*fds));
	int *from = malloc((n + 1) * sizeof(*from));      /* index in run, or -1: new */
	unsigned char *taken = calloc(run != NULL ? run->nlistens + 1 : 1, 1);
	int ok = fds != NULL && from != NULL && taken != NULL;

	for (int k = 0; ok && k < srv->nworkers; k++)
		ok = (fds[k] = malloc((n + 1) * sizeof(**fds))) != NULL;
	if (!ok) {
		log_error("cannot set up listeners: out of memory");
		n = 0;
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		from[i] = -1;
		for (int k = 0; k < srv->nworkers; k++)
			fds[k][i] = -1;
	}
	for (size_t i = 0; i < n; i++) {
		const struct conf_listen *l = &conf->listens[i];
		uint16_t port = listen_port(l);
		if (run != NULL && (from[i] = same_address(run, taken, l)) >= 0) {
			taken[from[i]] = 1;
			continue;
		}
		/* With CAP_NET_BIND_SERVICE the bind itself will tell. */
		if (run != NULL && srv->run_uid != (uid_t)-1 && port != 0 && port < 1024) {
			log_error("%s:%d: [listen:%s] cannot bind %s: ports below 1024 need root, and "
			    "privileges went to user %s at start; a new privileged port needs a restart",
			    conf->file, l->line, l->name, l->address, conf->global.user);
			goto fail;
		}
		if (port != 0 && probe_address(l) < 0)
			goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		const struct conf_listen *l = &conf->listens[i];
		uint16_t port = 0;
		if (from[i] >= 0) {
			int backlog_changed = l->backlog != run->listens[from[i]].backlog;
			for (int k = 0; k < srv->nworkers; k++) {
				fds[k][i] = srv->listen_fds[k][from[i]];
				/* Linux takes a new backlog on a listening socket. */
				if (backlog_changed)
					listen(fds[k][i], (int)l->backlog);
			}
			continue;
		}
		for (int k = 0; k < srv->nworkers; k++)
			if ((fds[k][i] = listen_socket(l, &port)) < 0)
				goto fail;
		log_info("[listen:%s] listening on %s (port %u)", l->name, l->address, port);
	}
	free(from);
	free(taken);
	return fds;
fail:
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < srv->nworkers && from[i] < 0; k++)
			if (fds[k][i] >= 0)
				close(fds[k][i]);
	fds_free(fds, srv->nworkers);
	free(from);
	free(taken);
	return NULL;
}

