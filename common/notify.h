/*
 * notify: the service manager's readiness protocol (systemd's
 * sd_notify(3), spoken without libsystemd): datagrams of "KEY=VALUE"
 * lines to the Unix socket named by $NOTIFY_SOCKET (a path, or an
 * abstract name written with a leading '@').  Without the variable every
 * call does nothing, so portico runs the same outside a Type=notify unit.
 */
#ifndef PORTICO_NOTIFY_H
#define PORTICO_NOTIFY_H

/* The process's link to its service manager; fd -1 when there is none. */
struct notify {
	int fd;
	unsigned char addr[112];         /* a struct sockaddr_un */
	unsigned addrlen;
};

/* Reads $NOTIFY_SOCKET and removes it from the environment (nothing we
 * start is the service's main process).  0, or -1 when it is set but
 * unusable (logged; the server runs on without notifying). */
int notify_open(struct notify *n);
/* Sends one message: lines like "READY=1\nSTATUS=serving".  Failures are
 * logged at debug level only: the manager may have gone away. */
void notify_send(const struct notify *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void notify_close(struct notify *n);

#endif
