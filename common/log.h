/*
 * log: the one place error-log lines are written.
 *
 * Lines go to stderr or to the file named by error_log, one write(2) each,
 * so lines from different workers never interleave.  log_warn appends
 * strerror(errno); the x variants do not.  fatal/fatalx log and exit(1).
 */
#ifndef PORTICO_LOG_H
#define PORTICO_LOG_H

#include <stdarg.h>
#include <sys/types.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Opens path ("stderr" or NULL means standard error) for appending and sets
 * the threshold.  Returns 0, or -1 with errno set; the old target stays.
 * Only before the workers start: it closes the fd they would write to. */
int log_open(const char *path, enum log_level level);
/* Reopens the current file (SIGUSR1, for logrotate): a new file takes the
 * place of a renamed one, under the same fd, so other threads may go on
 * logging meanwhile.  0, or -1 with errno set; the old file stays. */
int log_reopen(void);
/* The error log's path, or "stderr". */
const char *log_path(void);
/* Files opened from now on while root, and the error log open now, are
 * given to uid:gid, the user privileges are dropped to.  0 or -1. */
int log_set_owner(uid_t uid, gid_t gid);
/* Opens a log file (the error log or the access log) for appending,
 * creating it 0640 and giving it to the owner above.  An fd or -1. */
int log_file_open(const char *path);
void log_close(void);
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level l);
/* Whether lines at level l are written now; lets callers skip formatting. */
int log_enabled(enum log_level l);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
