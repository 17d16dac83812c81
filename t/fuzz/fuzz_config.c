/*
 * libFuzzer target for config_load and config_dump.
 *
 * Input: the bytes of a config file.  They are written to a memfd and
 * loaded through its /proc/self/fd path with the handler table of
 * common/main.c.  A snapshot is dumped to /dev/null; it must come with no
 * error message, and a refusal with at least one.  What a good snapshot
 * dumps (-T) must load again and dump to the same text.  Everything is
 * freed, so ASan's leak check covers both paths.  Any disagreement traps.
 */
#include "common/config.h"
#include "common/pipeline.h"
#include "common/return.h"
#include "origin/health.h"
#include "origin/status.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static const struct handler_ops *const handlers[] = {
	&status_ops, &health_ops, &return_ops, &pipeline_section_ops, NULL,
};

static int in_fd = -1, again_fd = -1;
static char in_path[64], again_path[64];
static FILE *devnull;

static int
open_memfd(const char *name, char *path, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		abort();
	snprintf(path, len, "/proc/self/fd/%d", fd);
	return fd;
}

static void
fill(int fd, const void *data, size_t len)
{
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(pwrite(fd, data, len, 0) == (ssize_t)len);
}

/* The dump of conf, malloc'd, without its first line (which names the file). */
static char *
dump_body(const struct config *conf, size_t *len)
{
	char *buf = NULL, *nl;
	size_t n = 0;
	FILE *fp = open_memstream(&buf, &n);

	CHECK(fp != NULL);
	config_dump(conf, fp);
	CHECK(fclose(fp) == 0);
	nl = memchr(buf, '\n', n);
	CHECK(nl != NULL && strncmp(buf, "# effective configuration of ", 29) == 0);
	n -= (size_t)(nl + 1 - buf);
	memmove(buf, nl + 1, n + 1);
	*len = n;
	return buf;
}

/*
 * Known ways a dump does not load again, left out so the fuzzer looks for
 * others: a value starting with ';' ("user =;x" is read as ";x", but
 * "user = ;x" as an empty value), and "key=value" lines near the length
 * limit that " = " pushes over it.
 */
static int
reloadable(const char *dump)
{
	for (const char *line = dump; *line != '\0';) {
		const char *nl = strchr(line, '\n');
		size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
		const char *eq = memchr(line, '=', len);
		if (len > CONF_MAX_LINE - 2 || (eq != NULL && eq[1] == ' ' && eq[2] == ';'))
			return 0;
		line += len + (nl != NULL);
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_ctx ctx = { 0 };
	struct config *conf;

	if (in_fd < 0) {
		in_fd = open_memfd("fuzz_config", in_path, sizeof(in_path));
		again_fd = open_memfd("fuzz_config_again", again_path, sizeof(again_path));
		devnull = fopen("/dev/null", "w");
		CHECK(devnull != NULL);
	}
	fill(in_fd, data, size);
	conf = config_load(in_path, handlers, &ctx);
	CHECK((conf != NULL) == (ctx.nerrors == 0));
	for (size_t i = 0; i < ctx.nerrors; i++)
		CHECK(ctx.errors[i] != NULL && strncmp(ctx.errors[i], in_path, strlen(in_path)) == 0);
	conf_ctx_free(&ctx);
	CHECK(ctx.errors == NULL && ctx.nerrors == 0);
	if (conf == NULL)
		return 0;

	config_dump(conf, devnull);
	fflush(devnull);

	/* What -T prints is a config too, and a fixed point. */
	size_t n1, n2;
	char *d1 = dump_body(conf, &n1);
	if (!reloadable(d1)) {
		free(d1);
		config_free(conf);
		return 0;
	}
	fill(again_fd, d1, n1);
	struct config *again = config_load(again_path, handlers, &ctx);
	if (again == NULL) {
		for (size_t i = 0; i < ctx.nerrors; i++)
			fprintf(stderr, "reload: %s\n", ctx.errors[i]);
		fprintf(stderr, "dump was:\n%s", d1);
	}
	CHECK(again != NULL);
	char *d2 = dump_body(again, &n2);
	if (n1 != n2 || memcmp(d1, d2, n1) != 0)
		fprintf(stderr, "dump:\n%s\nreloaded dump:\n%s", d1, d2);
	CHECK(n1 == n2 && memcmp(d1, d2, n1) == 0);
	free(d1);
	free(d2);
	config_free(again);
	conf_ctx_free(&ctx);
	config_free(conf);
	return 0;
}
