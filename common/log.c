#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Process-wide logging state.  The fd is set before the workers start and
 * keeps its number until they have ended: a reopen puts the new file under
 * that number (log_reopen), so no worker can write to an fd just closed, or
 * to whatever took its number.  fd and level are atomics all the same, as
 * workers read them on every line.
 */
static struct {
	_Atomic int fd;
	_Atomic int level;
	char path[4096];
	uid_t uid;                    /* owner given to files created as root, or -1 */
	gid_t gid;
} log_state = { .fd = STDERR_FILENO, .level = LOG_LVL_INFO, .uid = (uid_t)-1, .gid = (gid_t)-1 };

static const char *const level_names[] = { "error", "warn", "info", "debug" };

const char *
log_level_name(enum log_level l)
{
	return level_names[l];
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i <= LOG_LVL_DEBUG; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int
log_enabled(enum log_level l)
{
	return (int)l <= atomic_load_explicit(&log_state.level, memory_order_relaxed);
}

/*
 * While root, a log file is handed to the user the process will run as, so
 * that user can still write to it, and create its successor, after a
 * rotation (SIGUSR1 arrives after privileges are gone).
 */
static int
give_away(int fd)
{
	struct stat st;

	if (log_state.uid == (uid_t)-1 || geteuid() != 0)
		return 0;
	if (fstat(fd, &st) < 0)
		return -1;
	if (st.st_uid == log_state.uid && st.st_gid == log_state.gid)
		return 0;
	return fchown(fd, log_state.uid, log_state.gid);
}

int
log_file_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd >= 0 && give_away(fd) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int
is_stderr(const char *path)
{
	return path == NULL || path[0] == '\0' || strcmp(path, "stderr") == 0;
}

static void
set_fd(int fd)
{
	int old = atomic_exchange(&log_state.fd, fd);

	if (old != STDERR_FILENO && old != fd)
		close(old);
}

int
log_open(const char *path, enum log_level level)
{
	int fd = is_stderr(path) ? STDERR_FILENO : log_file_open(path);

	if (fd == -1)
		return -1;
	if (!is_stderr(path) && strlen(path) >= sizeof(log_state.path)) {
		close(fd);
		errno = ENAMETOOLONG;
		return -1;
	}
	set_fd(fd);
	snprintf(log_state.path, sizeof(log_state.path), "%s", is_stderr(path) ? "stderr" : path);
	atomic_store(&log_state.level, (int)level);
	return 0;
}

int
log_set_owner(uid_t uid, gid_t gid)
{
	log_state.uid = uid;
	log_state.gid = gid;
	if (strcmp(log_state.path, "stderr") == 0 || log_state.path[0] == '\0')
		return 0;
	return give_away(atomic_load(&log_state.fd));
}

const char *
log_path(void)
{
	return log_state.path;
}

/*
 * Workers write to the fd while this runs (main thread, SIGUSR1).  Closing
 * it and publishing another number would let a worker that had read the old
 * number write after the close, to a client's socket that took the number;
 * dup2 swaps the file under the same number atomically instead: a line
 * goes to the old file or to the new one.
 */
int
log_reopen(void)
{
	if (strcmp(log_state.path, "stderr") == 0 || log_state.path[0] == '\0')
		return 0;
	int fd = log_file_open(log_state.path);
	if (fd == -1)
		return -1;
	int rc = dup2(fd, atomic_load(&log_state.fd)) < 0 ? -1 : 0;
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

void
log_close(void)
{
	int old = atomic_exchange(&log_state.fd, STDERR_FILENO);

	if (old != STDERR_FILENO)
		close(old);
}

static void
vlog(enum log_level l, int with_errno, const char *fmt, va_list ap)
{
	char line[2048];
	int saved = errno;
	struct timespec ts;
	struct tm tm;
	size_t n;

	if (!log_enabled(l))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, "[%s] ", level_names[l]);
	int w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (w > 0)
		n = n + (size_t)w < sizeof(line) ? n + (size_t)w : sizeof(line) - 1;
	if (with_errno && n < sizeof(line) - 1)
		n += (size_t)snprintf(line + n, sizeof(line) - n, ": %s", strerror(saved));
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	/* A hostile client can put anything into a logged field; keep lines single. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
	line[n++] = '\n';
	ssize_t r = write(atomic_load_explicit(&log_state.fd, memory_order_relaxed), line, n);
	(void)r;
	errno = saved;
}

#define LOG_FN(name, lvl, en)                      \
	void name(const char *fmt, ...)            \
	{                                          \
		va_list ap;                        \
		va_start(ap, fmt);                 \
		vlog(lvl, en, fmt, ap);            \
		va_end(ap);                        \
	}

LOG_FN(log_error, LOG_LVL_ERROR, 0)
LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_debug, LOG_LVL_DEBUG, 0)

void
fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
