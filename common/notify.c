/*
 * notify: sd_notify(3)'s protocol, see notify.h.
 */
#include "common/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

_Static_assert(sizeof(((struct notify *)0)->addr) >= sizeof(struct sockaddr_un),
    "struct notify holds a struct sockaddr_un");

int
notify_open(struct notify *n)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len;

	n->fd = -1;
	if (path == NULL || path[0] == '\0')
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sun.sun_path)) {
		log_warnx("NOTIFY_SOCKET \"%s\" is not a socket path: not telling the service "
		    "manager when we are ready", path);
		unsetenv("NOTIFY_SOCKET");
		return -1;
	}
	memcpy(sun.sun_path, path, len);
	if (path[0] == '@')
		sun.sun_path[0] = '\0'; /* abstract: no terminating NUL counted */
	else
		len++;
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (n->fd < 0) {
		log_warn("NOTIFY_SOCKET: socket");
		unsetenv("NOTIFY_SOCKET");
		return -1;
	}
	memcpy(n->addr, &sun, sizeof(sun));
	n->addrlen = (unsigned)(offsetof(struct sockaddr_un, sun_path) + len);
	unsetenv("NOTIFY_SOCKET");
	return 0;
}

void
notify_send(const struct notify *n, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int len;

	if (n->fd < 0)
		return;
	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(msg))
		return;
	if (sendto(n->fd, msg, (size_t)len, MSG_NOSIGNAL, (const struct sockaddr *)n->addr,
	    n->addrlen) < 0)
		log_debug("NOTIFY_SOCKET: cannot send \"%.*s\": %s", (int)strcspn(msg, "\n"), msg,
		    strerror(errno));
}

void
notify_close(struct notify *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}
