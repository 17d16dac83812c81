/*
 * htpasswd: the user file of `type = basic` (mw_basic.c), read into a
 * sorted table, and the check of a password against one of its hashes.
 *
 * The file is Apache's: one "user:hash" a line, lines whose first
 * non-blank is '#' are comments, blank lines are skipped, blanks around a
 * line and a CR before its LF are dropped.  Only slow salted hashes are
 * taken: bcrypt ($2y$, $2b$, $2a$), SHA-256 crypt ($5$) and SHA-512 crypt
 * ($6$).  MD5 ($apr1$, $1$), SHA-1 ({SHA}), DES crypt and plain text are
 * refused with the line, so a file that would have worked with a weaker
 * server is never half taken.
 */
#ifndef PORTICO_HTPASSWD_H
#define PORTICO_HTPASSWD_H

#include <stddef.h>

struct crypt_data;

#define HTPASSWD_MAX_FILE (16 * 1024 * 1024) /* bytes of the whole file */
#define HTPASSWD_MAX_LINE 1024   /* bytes of a user line, its line end not counted */
#define HTPASSWD_MAX_USER 255    /* bytes of a user name */
#define HTPASSWD_MAX_USERS 65536
#define HTPASSWD_MAX_ERRORS 20   /* reported one by one; the rest counted */
/* Above these a check would hold a worker thread for about a second or more. */
#define HTPASSWD_MAX_BCRYPT_COST 14
#define HTPASSWD_MAX_SHA_ROUNDS 1000000

struct htpasswd_user {
	char *name;
	char *hash;
	int line;
};

struct htpasswd {
	struct htpasswd_user *v;     /* sorted by name (bytes), no two alike */
	size_t n;
	const char *dummy;           /* the hash of the file's first user: see mw_basic.c */
};

/*
 * Reports one problem of the file: line is the file's (0: the file as a
 * whole), msg a sentence without the file name.
 */
struct htpasswd_report {
	void (*err)(void *arg, int line, const char *msg);
	void *arg;
};

/*
 * Parses a file's bytes (data need not be NUL-terminated; a NUL byte is an
 * error).  Returns 0 with *out filled (at least one user; the caller owns
 * it: htpasswd_free), or -1 after at least one report, *out then empty.
 */
int htpasswd_parse(const char *data, size_t len, struct htpasswd *out,
    const struct htpasswd_report *rep);
/* Reads path (at most HTPASSWD_MAX_FILE bytes) and parses it, as above;
 * a file that cannot be read is reported with line 0. */
int htpasswd_load(const char *path, struct htpasswd *out, const struct htpasswd_report *rep);
void htpasswd_free(struct htpasswd *h);

/* The user named name[0, len), or NULL. */
const struct htpasswd_user *htpasswd_find(const struct htpasswd *h, const char *name, size_t len);

/*
 * Whether the NUL-terminated password pw hashes to hash (one htpasswd_parse
 * took) with crypt_rn, cd being its scratch (about 32 KiB, the caller's);
 * the hashes are compared in constant time.  1 on a match, else 0.
 * bcrypt reads only the first 72 bytes of a password.
 */
int htpasswd_verify(const char *hash, const char *pw, struct crypt_data *cd);

#endif
