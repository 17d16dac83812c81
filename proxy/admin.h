/*
 * admin: the admin API (`admin = on` on a route): JSON REST below the
 * route's path to list pools, add, remove, reweight, drain and disable
 * their servers, reload, and read the effective configuration with its
 * secrets redacted.  Every request carries the bearer token of
 * admin_token_file.
 *
 * A change is published as a new configuration snapshot: the running one,
 * as -T prints it, with the pool's server lines changed, put in service by
 * the main thread exactly as a reload (admin_main.c).  So it reaches every
 * worker at once, requests in flight keep the snapshot they started on
 * (draining is just that), and it lasts until the next reload reads the
 * file again.
 */
#ifndef PORTICO_ADMIN_H
#define PORTICO_ADMIN_H

#include <stdint.h>

#include "common/handler.h"
#include "common/server.h"

extern const struct handler_ops admin_ops;

#define ADMIN_MAX_BODY (64 * 1024)  /* a request body; more is 413 */
#define ADMIN_ADDR_MAX 255          /* a server's HOST:PORT */

enum admin_op { ADMIN_ADD, ADMIN_DELETE, ADMIN_SET, ADMIN_RELOAD };

/*
 * One change, from the worker that took the request to the main thread
 * and back.  The worker makes it and owns it; the main thread fills in
 * status and body, then writes to efd, and touches it no more.  The
 * worker frees it when efd wakes it, answering r unless the client went
 * away (r NULL).
 */
struct admin_job {
	struct server_call call;
	struct server *srv;
	struct request *r;             /* the worker's; NULL once aborted */
	struct event *ev;              /* on the worker's base, for efd */
	int efd;
	enum admin_op op;
	char who[64];                  /* the client's address, for the log */
	char pool[CONF_MAX_NAME + 1];
	char addr[ADMIN_ADDR_MAX + 1];
	unsigned weight, max_conns;
	int has_weight, state, has_state, backup, tls;
	int64_t deadline;              /* monotonic ms: give up waiting on workers */
	/* The answer: set (release) after efd is written, the main thread's
	 * last touch of the job; the worker reads it (acquire) before using
	 * the answer or closing efd.  The eventfd only wakes: it orders no
	 * memory for TSan (io_sync=0). */
	_Atomic int answered;
	int status;
	char *body;                    /* JSON, malloc'd */
};

/* Main thread (admin_main.c): performs job->op, answers through efd. */
void admin_main_run(struct server *srv, void *job);

struct pool;
struct json_t;
/* A pool as the API shows it: {"name", "balance", "in_service", "servers": [...]}. */
struct json_t *admin_pool_json(const struct pool *p);
/* {"error": msg, "field": field} (field left out when NULL), dumped. */
char *admin_error_body(const char *msg, const char *field);

#endif
