/*
 * portico: command line, configuration, start.  This is the one file that
 * names handlers from both origin/ and proxy/; everything else in common/
 * knows them only through struct handler_ops.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/opensslv.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/conf_read.h"
#include "common/config.h"
#include "common/http.h"
#include "common/log.h"
#include "common/pipeline.h"
#include "common/return.h"
#include "common/runenv.h"
#include "common/sbuf.h"
#include "common/server.h"
#include "origin/health.h"
#include "origin/static.h"
#include "origin/status.h"
#include "origin/prometheus.h"
#include "origin/websocket.h"
#include "proxy/admin.h"
#include "proxy/proxy.h"

#ifndef PORTICO_DEFAULT_CONF
#define PORTICO_DEFAULT_CONF "/etc/portico/portico.ini"
#endif

#define QUICK_ADDRESS "127.0.0.1:8000"

static const struct handler_ops *const handlers[] = {
	&status_ops, &health_ops, &return_ops, &static_ops, &proxy_ops, &websocket_ops,
	&pipeline_section_ops, &prometheus_ops, &admin_ops, NULL,
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: portico [-tTVh] [-c file]\n"
	    "       portico -s signal [-c file]\n"
	    "       portico -r dir [-l address] [-a file]\n"
	    "       portico -b backend [-b backend ...] [-l address] [-a file]\n"
	    "  -c file  configuration file (default " PORTICO_DEFAULT_CONF ")\n"
	    "  -r dir   serve the files in dir, with no configuration file\n"
	    "  -b addr  proxy to the backend at addr (HOST:PORT), round-robin, with no\n"
	    "           configuration file; repeat for more backends\n"
	    "  -l addr  with -r or -b: listen on addr (default " QUICK_ADDRESS ")\n"
	    "  -a file  with -r or -b: the access log, a file, - for standard output\n"
	    "           (the default) or off\n"
	    "  -t       check the configuration and exit\n"
	    "  -T       check the configuration, print it with defaults and exit\n"
	    "  -s sig   signal the server running with this configuration (its\n"
	    "           pid_file): reload, stop, quit or reopen\n"
	    "  -V, --version  print versions and exit\n"
	    "  -h, --help     print this help and exit\n");
}

static void
versions(void)
{
	printf("portico %s\nlibevent %s\n%s\n", PORTICO_VERSION, event_get_version(),
	    OpenSSL_version(OPENSSL_VERSION));
}

/*
 * A value the command line puts into the configuration it builds: one
 * line's worth, with nothing that would end the line or start a comment.
 */
static int
quick_value(const char *opt, const char *v, int word)
{
	size_t n = strlen(v);
	const char *why = NULL;

	if (n == 0)
		why = "is empty";
	else if (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t')
		why = "starts or ends with a blank";
	for (const char *p = v; why == NULL && *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			why = "holds a control character";
		else if (word && (*p == ' ' || *p == '\t'))
			why = "holds a blank: give HOST:PORT alone, or write a configuration file";
		else if ((*p == ' ' || *p == '\t') && p[1] == ';')
			why = "holds a blank followed by ';', which would start a comment";
	}
	if (why == NULL)
		return 0;
	fprintf(stderr, "portico: %s \"%s\" %s\n", opt, v, why);
	return -1;
}

/* What -s sends, as nginx names them.  stop is the immediate stop
 * (SIGINT): SIGTERM stays the graceful one systemd and Kubernetes send. */
static const struct {
	const char *name;
	int sig;
	const char *signame;
} ctl_signals[] = {
	{ "reload", SIGHUP, "SIGHUP" },
	{ "stop", SIGINT, "SIGINT" },
	{ "quit", SIGQUIT, "SIGQUIT" },
	{ "reopen", SIGUSR1, "SIGUSR1" },
};
#define NCTL (sizeof(ctl_signals) / sizeof(ctl_signals[0]))

/* The command line, once read. */
struct options {
	const char *file, *root, *listen_addr, *access_log;
	int ctl;                      /* -s: index in ctl_signals, or -1 */
	const char *backends[64];     /* -b, up to a pool's 64 servers */
	size_t nbackends;
	int test, dump;
};

/*
 * Reads the command line into o.  Returns -1 to go on, or the exit status
 * when it is all done here (help, versions, a usage error).
 */
static int
parse_args(int argc, char *argv[], struct options *o)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opterr = 0; /* our own messages, which name "portico" however it was run */
	while ((ch = getopt_long(argc, argv, "+:a:b:c:l:r:s:tTVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			for (o->ctl = 0; o->ctl < (int)NCTL && strcmp(ctl_signals[o->ctl].name, optarg) != 0;
			    o->ctl++)
				;
			if (o->ctl == (int)NCTL) {
				fprintf(stderr, "portico: -s takes reload, stop, quit or reopen, not \"%s\"\n",
				    optarg);
				return EXIT_USAGE;
			}
			break;
		case 'a':
			o->access_log = optarg;
			break;
		case 'b':
			if (quick_value("-b", optarg, 1) < 0)
				return EXIT_USAGE;
			if (o->nbackends == sizeof(o->backends) / sizeof(o->backends[0])) {
				fprintf(stderr, "portico: more than 64 -b servers\n");
				return EXIT_USAGE;
			}
			o->backends[o->nbackends++] = optarg;
			break;
		case 'l':
			o->listen_addr = optarg;
			break;
		case 'r':
			o->root = optarg;
			break;
		case 'c':
			o->file = optarg;
			break;
		case 't':
			o->test = 1;
			break;
		case 'T':
			o->dump = 1;
			break;
		case 'V':
			versions();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			fprintf(stderr, "portico: option -%c needs a value\n", optopt);
			usage(stderr);
			return EXIT_USAGE;
		default:
			if (optopt != 0)
				fprintf(stderr, "portico: unknown option -%c\n", optopt);
			else
				fprintf(stderr, "portico: unknown option %s\n", argv[optind - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "portico: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((o->listen_addr != NULL || o->access_log != NULL) && o->root == NULL &&
	    o->nbackends == 0) {
		fprintf(stderr, "portico: -%c needs -r or -b\n", o->listen_addr != NULL ? 'l' : 'a');
		return EXIT_USAGE;
	}
	if (o->ctl >= 0 && (o->root != NULL || o->nbackends > 0 || o->test || o->dump)) {
		fprintf(stderr, "portico: -s goes with -c alone\n");
		return EXIT_USAGE;
	}
	if (o->root != NULL && o->nbackends > 0) {
		fprintf(stderr, "portico: -r and -b do not go together; write a configuration file\n");
		return EXIT_USAGE;
	}
	if ((o->root != NULL && quick_value("-r", o->root, 0) < 0) ||
	    (o->listen_addr != NULL && quick_value("-l", o->listen_addr, 1) < 0) ||
	    (o->access_log != NULL && quick_value("-a", o->access_log, 0) < 0))
		return EXIT_USAGE;
	return -1;
}

/*
 * Quick mode (-r or -b): the configuration the command line stands for, as
 * text, to take the same path as a file would.  NULL when out of memory.
 */
static char *
quick_config(const struct options *o)
{
	struct sbuf q = { 0 };
	const char *listen_addr = o->listen_addr, *access_log = o->access_log;
	char port[16];

	if (listen_addr == NULL) {
		listen_addr = QUICK_ADDRESS;
	} else if (strspn(listen_addr, "0123456789") == strlen(listen_addr)) {
		snprintf(port, sizeof(port), "127.0.0.1:%s", listen_addr);
		listen_addr = port;
	}
	/* Each request is printed, as quick servers of other kinds do. */
	if (access_log == NULL || strcmp(access_log, "-") == 0)
		access_log = "stdout";
	sbuf_printf(&q, "[global]\naccess_log = %s\n[listen:quick]\naddress = %s\n", access_log,
	    listen_addr);
	if (o->root != NULL) {
		sbuf_printf(&q, "[route:files]\nroot = %s\nindex = index.html\n"
		    "precompressed = br, gzip\nautoindex = off\n", o->root);
	} else {
		sbuf_printf(&q, "[pool:backends]\n");
		for (size_t i = 0; i < o->nbackends; i++)
			sbuf_printf(&q, "server = %s\n", o->backends[i]);
		sbuf_printf(&q, "[route:proxy]\npool = backends\n");
	}
	if (sbuf_failed(&q)) {
		sbuf_free(&q);
		return NULL;
	}
	return q.p;
}

/* The name the kernel gives process pid ("portico"), or "" when unknown. */
static void
proc_name(const char *pid, char *buf, size_t len)
{
	char path[64];
	FILE *fp;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%s/comm", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return;
	if (fgets(buf, (int)len, fp) == NULL)
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	fclose(fp);
}

/* [global] pid_file, the last given, read line by line from a file that
 * may not load. */
struct pid_scan {
	int in_global;
	char *pid_file;
};

static void
scan_section(void *arg, int line, const char *hdr)
{
	struct pid_scan *ps = arg;

	(void)line;
	ps->in_global = hdr != NULL && strcmp(hdr, "global") == 0;
}

static void
scan_key(void *arg, int line, const char *key, const char *value)
{
	struct pid_scan *ps = arg;

	(void)line;
	if (ps->in_global && strcmp(key, "pid_file") == 0 && value[0] != '\0') {
		free(ps->pid_file);
		ps->pid_file = strdup(value);
	}
}

/* The pid_file of file, or NULL; the caller frees it. */
static char *
scan_pid_file(const char *file)
{
	static const struct conf_read_ops ops = { scan_section, scan_key };
	struct conf_ctx ctx = { 0 };
	struct pid_scan ps = { 0 };

	if (conf_read(&ctx, file, NULL, "", &ops, &ps) < 0) {
		free(ps.pid_file);
		ps.pid_file = NULL;
	}
	conf_ctx_free(&ctx);
	return ps.pid_file;
}

/*
 * -s: sends a signal to the server whose pid_file the configuration names.
 * For reload, the file is checked first as -t checks it, so that a file
 * that would fail the reload is reported here (the server would log the
 * same errors and keep its running configuration).  Returns the exit
 * status: 0 when the signal went, 1 when not (and why is printed).
 */
static int
signal_server(const struct options *o)
{
	const char *what = ctl_signals[o->ctl].name;
	struct conf_ctx ctx = { 0 };
	struct config *conf = config_load(o->file, handlers, &ctx);
	char buf[32] = { 0 }, self[32], other[32], *scanned = NULL;
	int rc = 1;
	long pid;
	char *end;
	FILE *fp;

	/* No runenv_check: what it checks (user, log files, pid_file, ticket
	 * key) a reload keeps as they are (see reload.c). */
	for (size_t i = 0; i < ctx.nwarnings; i++)
		fprintf(stderr, "portico: [warn] %s\n", ctx.warnings[i]);
	const char *pidfile = conf != NULL ? conf->global.pid_file : NULL;
	if (conf == NULL || ctx.nerrors > 0) {
		for (size_t i = 0; i < ctx.nerrors; i++)
			fprintf(stderr, "%s\n", ctx.errors[i]);
		if (ctl_signals[o->ctl].sig == SIGHUP) {
			fprintf(stderr, "portico: -s %s: configuration file %s has %zu error%s; not "
			    "signalling (the running configuration stays)\n", what, o->file,
			    ctx.nerrors, ctx.nerrors == 1 ? "" : "s");
			goto out;
		}
		/* Stopping a server must not depend on a file that still loads. */
		if ((scanned = scan_pid_file(o->file)) == NULL) {
			fprintf(stderr, "portico: -s %s: configuration file %s has errors and no "
			    "pid_file in [global] could be read from it\n", what, o->file);
			goto out;
		}
		fprintf(stderr, "portico: -s %s: configuration file %s has errors; signalling the "
		    "process in its pid_file %s all the same\n", what, o->file, scanned);
		pidfile = scanned;
	}
	if (pidfile == NULL) {
		fprintf(stderr, "portico: -s %s: %s sets no pid_file in [global]: cannot find the "
		    "running server\n", what, o->file);
		goto out;
	}
	if ((fp = fopen(pidfile, "r")) == NULL) {
		fprintf(stderr, "portico: -s %s: cannot read pid_file %s: %s (is portico running?)\n",
		    what, pidfile, strerror(errno));
		goto out;
	}
	if (fgets(buf, sizeof(buf), fp) == NULL)
		buf[0] = '\0';
	fclose(fp);
	buf[strcspn(buf, "\n")] = '\0';
	pid = strtol(buf, &end, 10);
	if (buf[0] == '\0' || *end != '\0' || pid <= 1 || pid > 0x3fffffff) {
		fprintf(stderr, "portico: -s %s: pid_file %s holds no process id\n", what, pidfile);
		goto out;
	}
	/* A stale file may name a process that has since reused the number. */
	proc_name("self", self, sizeof(self));
	proc_name(buf, other, sizeof(other));
	if (self[0] != '\0' && other[0] != '\0' && strcmp(self, other) != 0) {
		fprintf(stderr, "portico: -s %s: process %ld (from pid_file %s) is %s, not %s: a "
		    "stale pid_file?\n", what, pid, pidfile, other, self);
		goto out;
	}
	if (kill((pid_t)pid, ctl_signals[o->ctl].sig) < 0) {
		if (errno == ESRCH)
			fprintf(stderr, "portico: -s %s: no process %ld (from pid_file %s): is portico "
			    "running?\n", what, pid, pidfile);
		else
			fprintf(stderr, "portico: -s %s: cannot signal process %ld: %s\n", what, pid,
			    strerror(errno));
		goto out;
	}
	fprintf(stderr, "portico: -s %s: %s sent to process %ld\n", what, ctl_signals[o->ctl].signame,
	    pid);
	rc = 0;
out:
	free(scanned);
	config_free(conf);
	conf_ctx_free(&ctx);
	return rc;
}

int
main(int argc, char *argv[])
{
	struct options o = { .file = PORTICO_DEFAULT_CONF, .ctl = -1 };
	struct conf_ctx ctx = { 0 };
	struct server srv = { 0 };
	struct config *conf;
	int rc;

	if ((rc = parse_args(argc, argv, &o)) >= 0)
		return rc;
	if (o.ctl >= 0)
		return signal_server(&o);
	if (o.root != NULL || o.nbackends > 0) {
		char *text = quick_config(&o);
		if (text == NULL)
			return 1;
		o.file = "(command line)";
		conf = config_load_string(o.file, text, handlers, &ctx);
		free(text);
	} else {
		conf = config_load(o.file, handlers, &ctx);
	}
	/* What the file asks of this machine (users, log directories), checked
	 * by -t as by a start. */
	if (conf != NULL) {
		runenv_check(&ctx, conf);
		if (ctx.nerrors > 0) {
			config_free(conf);
			conf = NULL;
		}
	}
	if (conf == NULL || o.test || o.dump)
		for (size_t i = 0; i < ctx.nwarnings; i++)
			fprintf(stderr, "portico: [warn] %s\n", ctx.warnings[i]);
	if (conf == NULL) {
		for (size_t i = 0; i < ctx.nerrors; i++)
			fprintf(stderr, "%s\n", ctx.errors[i]);
		fprintf(stderr, "portico: configuration file %s has %zu error%s\n", o.file,
		    ctx.nerrors, ctx.nerrors == 1 ? "" : "s");
		conf_ctx_free(&ctx);
		return o.test || o.dump ? 1 : EXIT_CONFIG;
	}
	if (o.dump || o.test) {
		if (o.dump)
			config_dump(conf, stdout);
		else
			fprintf(stderr, "portico: configuration file %s is valid\n", o.file);
		conf_ctx_free(&ctx);
		config_free(conf);
		return 0;
	}
	if (log_open(conf->global.error_log, conf->global.log_level) < 0) {
		fprintf(stderr, "portico: cannot open error_log %s: %s\n", conf->global.error_log,
		    strerror(errno));
		conf_ctx_free(&ctx);
		config_free(conf);
		return EXIT_CONFIG;
	}
	for (size_t i = 0; i < ctx.nwarnings; i++)
		log_warnx("%s", ctx.warnings[i]);
	conf_ctx_free(&ctx);
	srv.conf = conf;
	srv.conf_file = o.file;
	/* -r and -b have no file to read again. */
	srv.handlers = o.root != NULL || o.nbackends > 0 ? NULL : handlers;
	rc = server_run(&srv);
	config_free(srv.conf); /* the newest: a reload may have replaced conf */
	log_close();
	return rc;
}
