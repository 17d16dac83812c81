/*
 * server_int: what the files of the process share among themselves
 * (server.c: start, signals, stop; worker.c: the worker threads; listen.c:
 * the listening sockets; reload.c: SIGHUP).  Not for handlers: those use
 * server.h.
 */
#ifndef PORTICO_SERVER_INT_H
#define PORTICO_SERVER_INT_H

#include <event2/event.h>

#include "common/server.h"

/* worker.c */
int worker_init(struct server *srv, struct worker *w, int id);
/* The thread: runs the worker's loop until it is told to stop. */
void *worker_main(void *arg);
void worker_free(struct worker *w);
/* Has w accept on l (unless accepting is paused). */
void listener_arm(struct worker *w, struct listener *l);

/* listen.c */
/* Sockets for every listener of conf, per worker: those of run (the
 * configuration in service, or NULL at start) with the same address are
 * kept, the others bound anew.  NULL after logging why. */
int **bind_listeners(struct server *srv, struct config *conf, const struct config *run);
void fds_free(int **fds, int nworkers);
/* Removes the files of conf's unix:PATH listeners that keep (NULL: none)
 * does not listen on too. */
void listen_unlink(const struct config *conf, const struct config *keep);
/* Gives the files of conf's unix:PATH listeners to uid and gid (at start,
 * before privileges go to user). */
void listen_own(const struct config *conf, uid_t uid, gid_t gid);

/* reload.c */
/* Reads the configuration file again and puts it in service if it is good. */
void server_reload(struct server *srv);
/* A reload that waited for a worker still taking the one before. */
void on_reload_retry(evutil_socket_t fd, short what, void *arg);
/* Frees the retired snapshots no one holds any more (gc_fd woke us). */
void gc_sweep(struct server *srv);
void on_gc(evutil_socket_t fd, short what, void *arg);

/* server.c */
/* Main-thread work of the handlers (health checks, lookups) on the newest snapshot. */
void main_work_start(struct server *srv);
void main_work_stop(struct server *srv);
/* Each route's handler->route_start, for conf going into service. */
void routes_start(struct config *conf);
/* Whether conf has an HTTPS listener. */
int any_tls(const struct config *conf);
/* The session ticket keys and their rotation. */
int start_tickets(struct server *srv, const struct conf_global *g);

#endif
