/*
 * server: the process (config, workers, signals, shutdown) and the worker
 * threads.  Each worker has its own event_base, its own SO_REUSEPORT
 * listening socket per [listen:NAME], its own connections, pools and
 * counters; nothing on the request path is shared but the immutable config
 * and a few atomics.
 */
#ifndef PORTICO_SERVER_H
#define PORTICO_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "common/config.h"
#include "common/exchange.h"
#include "common/freelist.h"
#include "common/metrics.h"
#include "common/notify.h"
#include "common/stats.h"

struct server;

/*
 * A configuration snapshot as one worker uses it.  The worker holds one
 * reference on conf (config_hold) for as long as any of its connections
 * runs on it, and counts those connections itself, without atomics: the
 * request path never touches the shared count.
 */
struct worker_snap {
	struct config *conf;
	unsigned users;                /* connections on it */
	struct worker_snap *next;      /* the worker's older ones still in use */
	struct metrics_cell **mcache;  /* the worker's metrics cells of conf's routes,
	                                * listeners and sections (metrics.c), or NULL */
};

/* What the main thread hands a worker at a reload (worker->next). */
struct worker_switch {
	struct worker_snap *snap;      /* its conf holds a reference that becomes the worker's */
	struct listener *listeners;    /* one per snap->conf->listens[i], fd set */
};

struct listener {
	int fd;
	struct event *ev;
	unsigned idx;                  /* index in conf->listens */
	struct worker *w;              /* owner */
};

/* State kept for one handler ops table: as many as there are tables. */
struct ops_state {
	const struct handler_ops *ops;
	void *state;
};

struct worker {
	int id;
	pthread_t thread;
	struct server *srv;
	const struct config *conf;     /* the newest it knows: snap->conf */
	struct worker_snap *snap;      /* what new connections and requests take */
	struct worker_snap *old;       /* older snapshots some connection still uses */
	_Atomic(struct worker_switch *) next; /* a reload not taken yet */
	struct event_base *base;
	struct listener *listeners;
	size_t nlisteners;
	int notify_fd;                 /* eventfd: the main thread asks us to stop or switch */
	struct event *notify_ev;
	struct event *resume_ev;       /* re-enables accept after a pause */
	struct event *tick_ev;         /* once a second: flush logs */
	unsigned log_budget;           /* client-error log lines left this second */
	unsigned log_suppressed;       /* ... and how many were dropped */
	unsigned blog_budget;          /* backend-error log lines left this second */
	unsigned blog_suppressed;      /* ... and how many were dropped */
	int accept_paused;
	int draining;
	_Atomic int stop_now;
	_Atomic int stop_soon;         /* graceful: stop accepting, finish what runs */
	struct conn_list conns;
	unsigned nconns;
	struct freelist rbufs;             /* read and write buffers */
	struct freelist heads;             /* struct exchange plus its path buffer */
	struct conn_env cenv;              /* what the worker lends its connections */
	struct http_limits limits;
	const struct timeval *tv_header, *tv_body, *tv_keepalive, *tv_send, *tv_linger;
	struct timeval tv_spare[5];    /* theirs when libevent has no common timeout left */
	time_t date_sec;               /* second the cached strings were made for */
	char date[40];                 /* "Fri, 27 Nov 2026 15:00:00 GMT" */
	char logtime[40];              /* "27/Nov/2026:15:00:00 +0000" */
	char isotime[32];              /* "2026-11-27T15:00:00Z" (RFC 3339) */
	char *alog;                    /* access log lines not yet written */
	size_t alog_len;
	struct stats stats;
	struct metrics_worker metrics; /* counters by route, listener, middleware name */
	struct ops_state *hstate;      /* per-worker handler state, see worker_handler_state */
	unsigned nhstate;
};

#define SERVER_RPS_WINDOW 10           /* requests_per_second averages this many seconds */

struct server {
	struct config *conf;           /* the newest snapshot; the main thread's */
	const char *conf_file;
	/* For config_load at a reload; NULL: no file to reload (-r, -b). */
	const struct handler_ops *const *handlers;
	int **listen_fds;              /* [worker][listen] sockets of conf, as handed out */
	struct config **retired;       /* older snapshots, freed once unreferenced */
	size_t nretired;
	int gc_fd;                     /* eventfd: a worker dropped a last reference */
	_Atomic unsigned reloads;      /* successful ones, for /status */
	struct event *reload_ev;       /* retries a reload the workers have not caught up with */
	int pid_written;               /* pid_file is ours to remove at exit */
	int stopping;                  /* a stop began: no more reloads */
	struct notify notify;          /* systemd's NOTIFY_SOCKET, if it set one */
	struct event *delay_timer;     /* set while shutdown_delay runs */
	_Atomic int health_failing;    /* a stop began: health = on answers 503 */
	struct event_base *base;       /* the main thread's: signals, timers */
	struct worker *workers;
	int nworkers;
	_Atomic unsigned nconns;       /* for max_connections */
	int access_log_fd;             /* -1 when off */
	uid_t run_uid;                 /* user = ..., when started as root; else -1 */
	gid_t run_gid;
	time_t start_time;
	struct timespec start_mono;
	_Atomic uint64_t rps_ring[SERVER_RPS_WINDOW + 1]; /* requests_total, one per second */
	_Atomic unsigned rps_pos;
	_Atomic int rps_filled;
	struct event *shutdown_timer;  /* set once a graceful stop began */
	struct event *ticket_ev;       /* rotates the TLS session ticket keys */
	struct ops_state *mstate;      /* main-thread work of handlers (main_start) */
	unsigned nmstate;
	int done_fd;                   /* eventfd: workers tell the main thread they ended */
	int call_fd[2];                /* pipe: struct server_call pointers for the main thread */
	struct event *call_ev;
	_Atomic int workers_left;
	int exit_code;
};

/* Exit statuses (sysexits.h): a command line or a configuration that
 * cannot work as given; a restart would fail the same way. */
#define EXIT_USAGE 64
#define EXIT_CONFIG 78

/* Opens listeners, drops privileges, starts workers and runs until a
 * signal stops the process.  Returns the exit status: 0, 1 for a failure
 * at run time (an address in use), EXIT_CONFIG for one of the
 * configuration found at start (a log file that cannot be opened). */
int server_run(struct server *srv);
/* Refreshes the cached Date and log time strings if the second changed. */
void worker_update_time(struct worker *w);
/* Sums the counters of every worker into out (zeroed first). */
void server_stats(struct server *srv, struct stats *out);
/* Requests per second over the last SERVER_RPS_WINDOW seconds. */
double server_rps(struct server *srv);
/* A connection ended (through conn_env.closed): resumes a paused accept. */
void worker_conn_closed(struct worker *w);
/* Whether a line about a client's error may be logged now: at most a few
 * per second per worker, so a hostile client cannot flood the log. */
int worker_log_client_error(struct worker *w);
/* The same for a line about a backend server's failure, with a budget of
 * its own: a client sending garbage must not hide a server going down. */
int worker_log_backend_error(struct worker *w);
/* The calling worker's state for handler ops (made with ops->worker_new
 * on first use), or NULL if it could not be made. */
void *worker_handler_state(struct worker *w, const struct handler_ops *ops);
/*
 * Moves connection c to its worker's newest snapshot, its listener found
 * there by name.  Returns 0, or -1 when that listener is gone (c stays on
 * its snapshot, and should close after its request).
 */
int worker_conn_follow(struct conn *c);
/* A connection no longer uses snap (it closes). */
void worker_snap_put(struct worker *w, struct worker_snap *snap);
/*
 * Work a worker hands the main thread (the admin API's changes, which
 * publish a snapshot as a reload does): fn(srv, arg) runs there soon.
 * The pointer goes through a pipe, one write of its 8 bytes, atomic
 * under PIPE_BUF, so no lock.  The call struct stays the caller's: it
 * must live until fn ran, and fn tells the caller it is done.  Returns
 * 0, or -1 when it cannot be queued (fn will not run).
 */
struct server_call {
	void (*fn)(struct server *srv, void *arg);
	void *arg;
	/* Set (release) before the pointer is written, read (acquire) before
	 * fn runs: what the caller wrote before is seen by fn, with no reliance
	 * on the pipe ordering memory (TSan runs with io_sync=0). */
	_Atomic int posted;
};
int server_main_call(struct server *srv, struct server_call *call);
/* Main thread: whether every worker has taken the newest snapshot. */
int server_workers_current(struct server *srv);
/*
 * Main thread: a reload (SIGHUP's) from the configuration file, or from
 * text when not NULL (read as if it were the file).  0: a new generation
 * is in service (srv->conf); -1: it failed, errors in ctx (none when out
 * of memory) and logged; 1: a worker has not taken the last one yet, try
 * again soon.  The caller frees ctx (conf_ctx_free).
 */
int server_reload_load(struct server *srv, const char *text, struct conf_ctx *ctx);
/* Queues an access log line (written once a second or when 32 KiB gather). */
void worker_access_log(struct worker *w, const char *line, size_t len);

#endif
