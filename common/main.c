/*
 * portico: command line, configuration, start.  This is the one file that
 * names handlers from both origin/ and proxy/; everything else in common/
 * knows them only through struct handler_ops.
 */
#include <errno.h>
#include <openssl/opensslv.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/http.h"
#include "common/log.h"
#include "common/return.h"
#include "common/sbuf.h"
#include "common/server.h"
#include "origin/health.h"
#include "origin/static.h"
#include "origin/status.h"
#include "proxy/proxy.h"

#ifndef PORTICO_DEFAULT_CONF
#define PORTICO_DEFAULT_CONF "/etc/portico/portico.ini"
#endif

#define QUICK_ADDRESS "127.0.0.1:8000"
#define EXIT_USAGE 64
#define EXIT_CONFIG 78

static const struct handler_ops *const handlers[] = {
	&status_ops, &health_ops, &return_ops, &static_ops, &proxy_ops, NULL,
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: portico [-tTVh] [-c file]\n"
	    "       portico -r dir [-l address]\n"
	    "       portico -b backend [-b backend ...] [-l address]\n"
	    "  -c file  configuration file (default " PORTICO_DEFAULT_CONF ")\n"
	    "  -r dir   serve the files in dir, with no configuration file\n"
	    "  -b addr  proxy to the backend at addr (HOST:PORT), round-robin, with no\n"
	    "           configuration file; repeat for more backends\n"
	    "  -l addr  with -r or -b: listen on addr (default " QUICK_ADDRESS ")\n"
	    "  -t       check the configuration and exit\n"
	    "  -T       check the configuration, print it with defaults and exit\n"
	    "  -V       print versions and exit\n"
	    "  -h       print this help and exit\n");
}

int
main(int argc, char *argv[])
{
	const char *file = PORTICO_DEFAULT_CONF, *root = NULL, *listen_addr = NULL;
	struct sbuf backends = { 0 };
	int test = 0, dump = 0, ch;
	struct conf_ctx ctx = { 0 };
	struct server srv = { 0 };

	while ((ch = getopt(argc, argv, "b:c:l:r:tTVh")) != -1) {
		switch (ch) {
		case 'b':
			sbuf_printf(&backends, "server = %s\n", optarg);
			break;
		case 'l':
			listen_addr = optarg;
			break;
		case 'r':
			root = optarg;
			break;
		case 'c':
			file = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'T':
			dump = 1;
			break;
		case 'V':
			printf("portico %s\nlibevent %s\n%s\n", PORTICO_VERSION,
			    event_get_version(), OpenSSL_version(OPENSSL_VERSION));
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "portico: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (listen_addr != NULL && root == NULL && backends.len == 0) {
		fprintf(stderr, "portico: -l needs -r or -b\n");
		return EXIT_USAGE;
	}
	if (root != NULL && backends.len > 0) {
		fprintf(stderr, "portico: -r and -b do not go together; write a configuration file\n");
		return EXIT_USAGE;
	}
	struct config *conf;
	if (root != NULL || backends.len > 0) {
		/* Quick mode: the same configuration path as a file would take. */
		struct sbuf q = { 0 };
		char port[16];
		if (listen_addr == NULL)
			listen_addr = QUICK_ADDRESS;
		else if (strspn(listen_addr, "0123456789") == strlen(listen_addr)) {
			snprintf(port, sizeof(port), "127.0.0.1:%s", listen_addr);
			listen_addr = port;
		}
		sbuf_printf(&q, "[listen:quick]\naddress = %s\n", listen_addr);
		if (root != NULL)
			sbuf_printf(&q, "[route:files]\nroot = %s\nindex = index.html\n"
			    "precompressed = br, gzip\nautoindex = off\n", root);
		else
			sbuf_printf(&q, "[pool:backends]\n%s[route:proxy]\npool = backends\n", backends.p);
		if (sbuf_failed(&q))
			return 1;
		file = "(command line)";
		conf = config_load_string(file, q.p, handlers, &ctx);
		sbuf_free(&q);
		sbuf_free(&backends);
	} else {
		conf = config_load(file, handlers, &ctx);
	}
	if (conf == NULL) {
		for (size_t i = 0; i < ctx.nerrors; i++)
			fprintf(stderr, "%s\n", ctx.errors[i]);
		fprintf(stderr, "portico: configuration file %s has %zu error%s\n", file,
		    ctx.nerrors, ctx.nerrors == 1 ? "" : "s");
		conf_ctx_free(&ctx);
		return test || dump ? 1 : EXIT_CONFIG;
	}
	if (dump) {
		config_dump(conf, stdout);
		config_free(conf);
		return 0;
	}
	if (test) {
		fprintf(stderr, "portico: configuration file %s is valid\n", file);
		config_free(conf);
		return 0;
	}
	if (log_open(conf->global.error_log, conf->global.log_level) < 0) {
		fprintf(stderr, "portico: cannot open error_log %s: %s\n", conf->global.error_log,
		    strerror(errno));
		config_free(conf);
		return 1;
	}
	srv.conf = conf;
	srv.conf_file = file;
	int rc = server_run(&srv);
	config_free(conf);
	log_close();
	return rc;
}
