/*
 * portico: command line, configuration, start.  This is the one file that
 * names handlers from both origin/ and proxy/; everything else in common/
 * knows them only through struct handler_ops.
 */
#include <errno.h>
#include <getopt.h>
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
#include "common/runenv.h"
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

static const struct handler_ops *const handlers[] = {
	&status_ops, &health_ops, &return_ops, &static_ops, &proxy_ops, NULL,
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: portico [-tTVh] [-c file]\n"
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

int
main(int argc, char *argv[])
{
	const char *file = PORTICO_DEFAULT_CONF, *root = NULL, *listen_addr = NULL;
	const char *access_log = NULL;
	struct sbuf backends = { 0 };
	int test = 0, dump = 0, ch;
	struct conf_ctx ctx = { 0 };
	struct server srv = { 0 };

	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	opterr = 0; /* our own messages, which name "portico" however it was run */
	while ((ch = getopt_long(argc, argv, "+:a:b:c:l:r:tTVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			access_log = optarg;
			break;
		case 'b':
			if (quick_value("-b", optarg, 1) < 0)
				return EXIT_USAGE;
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
	if ((listen_addr != NULL || access_log != NULL) && root == NULL && backends.len == 0) {
		fprintf(stderr, "portico: -%c needs -r or -b\n", listen_addr != NULL ? 'l' : 'a');
		return EXIT_USAGE;
	}
	if (root != NULL && backends.len > 0) {
		fprintf(stderr, "portico: -r and -b do not go together; write a configuration file\n");
		return EXIT_USAGE;
	}
	if ((root != NULL && quick_value("-r", root, 0) < 0) ||
	    (listen_addr != NULL && quick_value("-l", listen_addr, 1) < 0) ||
	    (access_log != NULL && quick_value("-a", access_log, 0) < 0))
		return EXIT_USAGE;
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
		/* Each request is printed, as quick servers of other kinds do. */
		if (access_log == NULL || strcmp(access_log, "-") == 0)
			access_log = "stdout";
		sbuf_printf(&q, "[global]\naccess_log = %s\n[listen:quick]\naddress = %s\n",
		    access_log, listen_addr);
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
	/* What the file asks of this machine (users, log directories), checked
	 * by -t as by a start. */
	if (conf != NULL) {
		runenv_check(&ctx, conf);
		if (ctx.nerrors > 0) {
			config_free(conf);
			conf = NULL;
		}
	}
	if (conf == NULL || test || dump)
		for (size_t i = 0; i < ctx.nwarnings; i++)
			fprintf(stderr, "portico: [warn] %s\n", ctx.warnings[i]);
	if (conf == NULL) {
		for (size_t i = 0; i < ctx.nerrors; i++)
			fprintf(stderr, "%s\n", ctx.errors[i]);
		fprintf(stderr, "portico: configuration file %s has %zu error%s\n", file,
		    ctx.nerrors, ctx.nerrors == 1 ? "" : "s");
		conf_ctx_free(&ctx);
		return test || dump ? 1 : EXIT_CONFIG;
	}
	if (dump || test) {
		if (dump)
			config_dump(conf, stdout);
		else
			fprintf(stderr, "portico: configuration file %s is valid\n", file);
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
	srv.conf_file = file;
	int rc = server_run(&srv);
	config_free(conf);
	log_close();
	return rc;
}
