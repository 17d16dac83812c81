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
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

static const char *
unix_path(const struct conf_listen *l)
{
	return ((const struct sockaddr_un *)&l->addr)->sun_path;
}

/*
 * A unix:PATH listener's file before it is bound: none, or a socket left
 * by a process that is gone (no one accepts on it), which is removed.  A
 * socket someone listens on, or a file of another kind, is refused: never
 * a file removed that is not a dead socket.  0, or -1 (logged).
 */
static int
unix_prepare(const struct conf_listen *l)
{
	const char *path = unix_path(l);
	struct stat st;
	int fd, rc, err;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		log_warn("[listen:%s] cannot bind %s", l->name, l->address);
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		log_warnx("[listen:%s] cannot bind %s: the file exists and is not a socket", l->name,
		    l->address);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		log_warn("[listen:%s] socket", l->name);
		return -1;
	}
	/* Only a refusal proves no one listens: accepted or a full backlog
	 * (EAGAIN) is a live socket, and EACCES one we may not even try. */
	rc = connect(fd, (const struct sockaddr *)&l->addr, l->addrlen);
	err = rc == 0 ? 0 : errno;
	close(fd);
	if (err == ENOENT)
		return 0; /* gone meanwhile */
	if (err != ECONNREFUSED) {
		if (err == 0 || err == EAGAIN)
			log_warnx("[listen:%s] cannot bind %s: address already in use (another "
			    "process listens there)", l->name, l->address);
		else
			log_warnx("[listen:%s] cannot bind %s: a socket is there and connecting to it "
			    "fails (%s): not removed", l->name, l->address, strerror(err));
		return -1;
	}
	if (unlink(path) < 0) {
		log_warn("[listen:%s] cannot remove the stale socket %s", l->name, path);
		return -1;
	}
	log_info("[listen:%s] removed the stale socket %s", l->name, path);
	return 0;
}

/* The socket of a unix:PATH listener, with the file's mode, for every
 * worker (a Unix socket has no SO_REUSEPORT: they share it). */
static int
unix_socket(struct conf_listen *l)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct stat st;
	mode_t old;
	int rc;

	if (fd < 0) {
		log_warn("[listen:%s] socket", l->name);
		return -1;
	}
	/* Connecting takes write permission on the file: the mode says who.
	 * Made with it (the umask of this instant), never a chmod by path
	 * after, which a symlink put there meanwhile would redirect.  Only
	 * the main thread makes files while workers run. */
	old = umask(~(mode_t)l->mode & 0777);
	rc = bind(fd, (const struct sockaddr *)&l->addr, l->addrlen);
	umask(old);
	if (rc < 0) {
		log_warn("[listen:%s] cannot bind %s", l->name, l->address);
		close(fd);
		return -1;
	}
	if (lstat(unix_path(l), &st) < 0 || listen(fd, (int)l->backlog) < 0) {
		log_warn("[listen:%s] listen on %s", l->name, l->address);
		close(fd);
		unlink(unix_path(l));
		return -1;
	}
	l->unix_dev = st.st_dev;
	l->unix_ino = st.st_ino;
	return fd;
}

/* What is at l's path now: nothing, the socket portico made, or another
 * file (put there by someone else since). */
enum { UNIX_GONE, UNIX_OURS, UNIX_OTHER };

static int
unix_state(const struct conf_listen *l)
{
	struct stat st;

	if (lstat(unix_path(l), &st) < 0)
		return UNIX_GONE;
	return S_ISSOCK(st.st_mode) && st.st_dev == l->unix_dev && st.st_ino == l->unix_ino ?
	    UNIX_OURS : UNIX_OTHER;
}

/* Whether two listeners are on one address (for a Unix socket: one path). */
static int
same_addr(const struct conf_listen *a, const struct conf_listen *b)
{
	return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

void
listen_own(const struct config *conf, uid_t uid, gid_t gid)
{
	for (size_t i = 0; i < conf->nlistens; i++) {
		const struct conf_listen *l = &conf->listens[i];
		/* lchown: a symlink put there is changed itself, not its target. */
		if (l->addr.ss_family == AF_UNIX && unix_state(l) == UNIX_OURS &&
		    lchown(unix_path(l), uid, gid) < 0)
			log_warn("[listen:%s] cannot give %s to the run user", l->name, unix_path(l));
	}
}

void
listen_unlink(const struct config *conf, const struct config *keep)
{
	for (size_t i = 0; i < conf->nlistens; i++) {
		const struct conf_listen *l = &conf->listens[i];
		int kept = 0, state;
		if (l->addr.ss_family != AF_UNIX)
			continue;
		for (size_t j = 0; keep != NULL && j < keep->nlistens && !kept; j++)
			kept = same_addr(&keep->listens[j], l);
		if (kept || (state = unix_state(l)) == UNIX_GONE)
			continue;
		if (state == UNIX_OTHER) {
			log_warnx("[listen:%s] %s is no longer the socket portico made: left in place",
			    l->name, unix_path(l));
			continue;
		}
		/* After the switch to another user this may fail: the next
		 * start finds a dead socket and removes it then. */
		if (unlink(unix_path(l)) < 0)
			log_warn("[listen:%s] cannot remove %s (the next start replaces it)", l->name,
			    unix_path(l));
	}
}

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

	if (ss->ss_family == AF_UNIX)
		return 0;
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
		if (!taken[j] && same_addr(&run->listens[j], l))
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
bind_listeners(struct server *srv, struct config *conf, const struct config *run)
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
		if (l->addr.ss_family == AF_UNIX ? unix_prepare(l) < 0 :
		    port != 0 && probe_address(l) < 0)
			goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		const struct conf_listen *l = &conf->listens[i];
		uint16_t port = 0;
		if (from[i] >= 0) {
			const struct conf_listen *o = &run->listens[from[i]];
			int backlog_changed = l->backlog != o->backlog;
			conf->listens[i].unix_dev = o->unix_dev;
			conf->listens[i].unix_ino = o->unix_ino;
			if (l->addr.ss_family == AF_UNIX && l->mode != o->mode)
				log_warnx("[listen:%s] unix_mode %04o takes effect at the next start "
				    "(the socket is kept: its file stays %04o)", l->name, l->mode, o->mode);
			conf->listens[i].mode = o->mode;
			for (int k = 0; k < srv->nworkers; k++) {
				fds[k][i] = srv->listen_fds[k][from[i]];
				/* Linux takes a new backlog on a listening socket. */
				if (backlog_changed)
					listen(fds[k][i], (int)l->backlog);
			}
			continue;
		}
		if (l->addr.ss_family == AF_UNIX) {
			for (int k = 0; k < srv->nworkers; k++)
				if ((fds[k][i] = k == 0 ? unix_socket(&conf->listens[i]) :
				    dup(fds[0][i])) < 0)
					goto fail;
			log_info("[listen:%s] listening on %s (mode %04o)", l->name, l->address, l->mode);
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
	for (size_t i = 0; i < n; i++) {
		if (from[i] >= 0)
			continue;
		if (conf->listens[i].addr.ss_family == AF_UNIX && fds[0][i] >= 0 &&
		    unix_state(&conf->listens[i]) == UNIX_OURS)
			unlink(unix_path(&conf->listens[i]));
		for (int k = 0; k < srv->nworkers; k++)
			if (fds[k][i] >= 0)
				close(fds[k][i]);
	}
	fds_free(fds, srv->nworkers);
	free(from);
	free(taken);
	return NULL;
}

