/*
 * mime: file extension to media type, from a built-in table of the web's
 * common types, optionally extended by a mime.types file (the format of
 * Debian's /etc/mime.types: "type ext ext ..." per line, # comments).
 */
#ifndef PORTICO_MIME_H
#define PORTICO_MIME_H

#include <stddef.h>

struct mime_entry {
	char *ext;
	char *type;
	size_t seq;     /* line order while loading */
};

struct mime_table {
	struct mime_entry *v;   /* sorted by ext */
	size_t n;
};

/*
 * Loads path into t (which the caller zeroed).  Returns 0, or -1 with a
 * message in err (errlen bytes) naming the line; t is then freed.
 */
int mime_load(struct mime_table *t, const char *path, char *err, size_t errlen);
void mime_free(struct mime_table *t);
/*
 * The media type for file name (its text after the last dot, any case):
 * from t first (may be NULL), then the built-in table, else
 * "application/octet-stream".  Text types carry "; charset=utf-8".
 */
const char *mime_lookup(const struct mime_table *t, const char *name, size_t len);

#endif
