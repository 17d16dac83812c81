/*
 * conf_read: the INI reader and the errors of a load.
 *
 * What only the loader's files need; handlers see config.h.
 */
#ifndef PORTICO_CONF_READ_H
#define PORTICO_CONF_READ_H

#include "common/config.h"

/* What the reader hands the loader, line by line. */
struct conf_read_ops {
	/* "[hdr]" with the brackets off; NULL for a malformed header, which
	 * was reported: the keys up to the next header belong nowhere. */
	void (*section)(void *arg, int line, const char *hdr);
	/* "key = value": both trimmed of blanks, an inline comment cut off,
	 * the key not empty (the value may be). */
	void (*key)(void *arg, int line, const char *key, const char *value);
};

/*
 * Reads file, or text when not NULL (file then names it in messages), and
 * calls ops for each header and key line.  Lines that are neither are
 * reported to ctx, naming *section, the caller's current section ("" before
 * the first).  Returns the number of lines read, or -1 when the file could
 * not be read whole (reported as "FILE: cannot ...", line 0).
 */
int conf_read(struct conf_ctx *ctx, const char *file, const char *text, const char *section,
    const struct conf_read_ops *ops, void *arg);

/* Puts the errors from index from on in the order of their lines. */
void conf_sort_errors(struct conf_ctx *ctx, size_t from);

/* Writes ` (did you mean "x"?)` to out when a word of cands (NULL-terminated)
 * is close enough to word, else "". */
void conf_suggest(const char *word, const char *const *cands, char *out, size_t len);

#endif
