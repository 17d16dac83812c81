#include "common/runenv.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"

/* Who will write the log files and read the ticket key after start-up. */
struct runner {
	int switching;                /* root now, user = ... later */
	uid_t uid;
	gid_t gid;
	const char *name;
};

/* Whether the runner may do `want` (S_IRUSR/S_IWUSR/S_IXUSR bits) on st, by
 * its mode bits alone; it keeps no supplementary groups. */
static int
may(const struct runner *r, const struct stat *st, mode_t want)
{
	if (st->st_uid == r->uid)
		return (st->st_mode & want) == want;
	if (st->st_gid == r->gid)
		return (st->st_mode & (want >> 3)) == (want >> 3);
	return (st->st_mode & (want >> 6)) == (want >> 6);
}

static void
check_log(struct conf_ctx *ctx, const struct config *conf, const struct runner *r,
    const char *key, const char *path)
{
	int line = conf_key_line(conf, "global", key);
	struct stat st, dst;
	char *dir = strdup(path), *slash;

	if (dir == NULL)
		return;
	slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &dst) < 0) {
		conf_err(ctx, line, "global", key, "directory %s: %s", dir, strerror(errno));
		goto out;
	}
	if (!S_ISDIR(dst.st_mode)) {
		conf_err(ctx, line, "global", key, "%s is not a directory", dir);
		goto out;
	}
	int exists = stat(path, &st) == 0;
	if (exists && S_ISDIR(st.st_mode)) {
		conf_err(ctx, line, "global", key, "%s is a directory", path);
		goto out;
	}
	if (exists && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode)) {
		conf_err(ctx, line, "global", key, "%s is not a file", path);
		goto out;
	}
	/* Opened by whoever starts the process; checked by access(2), which
	 * knows ACLs and read-only mounts. */
	if (access(exists ? path : dir, W_OK | (exists ? 0 : X_OK)) < 0) {
		conf_err(ctx, line, "global", key, "%s: %s", exists ? path : dir, strerror(errno));
		goto out;
	}
	/* Reopened after a rotation by the user privileges go to. */
	if (r->switching && !may(r, &dst, S_IWUSR | S_IXUSR))
		conf_warn(ctx, line, "global", key, "user %s cannot create files in %s: once a "
		    "rotation renames %s, SIGUSR1 cannot make a new one (give the directory to %s)",
		    r->name, dir, path, r->name);
out:
	free(dir);
}

void
runenv_check(struct conf_ctx *ctx, const struct config *conf)
{
	const struct conf_global *g = &conf->global;
	struct runner r = { 0, geteuid(), getegid(), "" };
	struct passwd *pw = NULL;
	struct group *gr = NULL;

	if (g->user != NULL && (pw = getpwnam(g->user)) == NULL)
		conf_err(ctx, conf_key_line(conf, "global", "user"), "global", "user",
		    "no such user \"%s\"", g->user);
	if (g->group != NULL && g->user == NULL)
		conf_err(ctx, conf_key_line(conf, "global", "group"), "global", "group",
		    "only goes with user");
	else if (g->group != NULL && (gr = getgrnam(g->group)) == NULL)
		conf_err(ctx, conf_key_line(conf, "global", "group"), "global", "group",
		    "no such group \"%s\"", g->group);
	if (pw != NULL && geteuid() == 0) {
		r.switching = 1;
		r.uid = pw->pw_uid;
		r.gid = gr != NULL ? gr->gr_gid : pw->pw_gid;
		r.name = g->user;
	}
	if (g->error_log != NULL && strcmp(g->error_log, "stderr") != 0)
		check_log(ctx, conf, &r, "error_log", g->error_log);
	if (g->access_log != NULL && strcmp(g->access_log, "off") != 0 &&
	    strcmp(g->access_log, "stdout") != 0 && strcmp(g->access_log, "stderr") != 0)
		check_log(ctx, conf, &r, "access_log", g->access_log);
	/* Written at start, before privileges go: by whoever starts it. */
	if (g->pid_file != NULL) {
		struct runner starter = r;
		starter.switching = 0;
		check_log(ctx, conf, &starter, "pid_file", g->pid_file);
	}
	/* The ticket key is read once privileges are gone. */
	struct stat st;
	int any_tls = 0;
	for (size_t i = 0; i < conf->nlistens; i++)
		any_tls |= conf->listens[i].tls_cert.n > 0;
	if (r.switching && any_tls && g->tls_ticket_key != NULL && stat(g->tls_ticket_key, &st) == 0 &&
	    !may(&r, &st, S_IRUSR))
		conf_err(ctx, conf_key_line(conf, "global", "tls_ticket_key"), "global",
		    "tls_ticket_key", "%s is not readable by user %s, who reads it at start-up",
		    g->tls_ticket_key, r.name);
}
