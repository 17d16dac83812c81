/*
 * http_chunked: the chunked transfer coding's decoder (RFC 9112 section 7.1),
 * the part of http_parse that reads message bodies rather than heads.  A
 * state machine fed any number of bytes at a time; see http_parse.h.
 */
#include "common/http_parse.h"

#include <string.h>

void
http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

/* Longest chunk-size or chunk-ext line we accept; a line this long is an attack. */
#define CHUNK_LINE_MAX 4096

ssize_t
http_chunked_parse(struct http_chunked *c, const char *buf, size_t len,
    size_t *data_off, size_t *data_len, size_t max_trailer)
{
	size_t i = 0;

	*data_off = 0;
	*data_len = 0;
	while (i < len && c->state != CHUNK_DONE) {
		unsigned char ch = (unsigned char)buf[i];
		int h;

		switch (c->state) {
		case CHUNK_SIZE:
			if ((h = http_hexval(ch)) >= 0) {
				if (c->size_digits >= 15)
					return -1; /* would overflow; no real chunk is this big */
				c->remaining = c->remaining * 16 + (uint64_t)h;
				c->size_digits++;
				break;
			}
			if (c->size_digits == 0)
				return -1;
			if (ch == '\r')
				c->state = CHUNK_SIZE_LF;
			else if (ch == ';')
				c->state = CHUNK_EXT;
			else if (ch == ' ' || ch == '\t')
				c->state = CHUNK_SIZE_WS;
			else
				return -1;
			break;
		case CHUNK_SIZE_WS:
			/* BWS is allowed only before a chunk extension. */
			if (ch == ';')
				c->state = CHUNK_EXT;
			else if (ch != ' ' && ch != '\t')
				return -1;
			break;
		case CHUNK_EXT:
			if (ch == '\r')
				c->state = CHUNK_SIZE_LF;
			else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return -1;
			break;
		case CHUNK_SIZE_LF:
			if (ch != '\n')
				return -1;
			c->line_len = 0;
			c->size_digits = 0;
			c->state = c->remaining == 0 ? CHUNK_TRAILER_START : CHUNK_DATA;
			break;
		case CHUNK_DATA: {
			size_t avail = len - i;
			size_t take = avail < c->remaining ? avail : (size_t)c->remaining;
			*data_off = i;
			*data_len = take;
			c->remaining -= take;
			c->total += take;
			i += take;
			if (c->remaining == 0)
				c->state = CHUNK_DATA_CR;
			return (ssize_t)i; /* one payload run per call */
		}
		case CHUNK_DATA_CR:
			if (ch != '\r')
				return -1;
			c->state = CHUNK_DATA_LF;
			break;
		case CHUNK_DATA_LF:
			if (ch != '\n')
				return -1;
			c->state = CHUNK_SIZE;
			c->line_len = 0;
			break;
		case CHUNK_TRAILER_START:
			if (ch == '\r') {
				c->state = CHUNK_END_LF;
			} else if (ch == ' ' || ch == '\t' || ch == ':' || !http_tchar[ch]) {
				return -1; /* folding or a field without a name */
			} else {
				c->state = CHUNK_TRAILER_NAME;
				c->trailers++;
			}
			break;
		case CHUNK_TRAILER_NAME:
			/* A trailer field is a field line like a header's (RFC 9112 7.1.2):
			 * a token, then the colon at once. */
			if (ch == ':')
				c->state = CHUNK_TRAILER;
			else if (!http_tchar[ch])
				return -1;
			break;
		case CHUNK_TRAILER:
			if (ch == '\r')
				c->state = CHUNK_TRAILER_LF;
			else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return -1;
			break;
		case CHUNK_TRAILER_LF:
			if (ch != '\n')
				return -1;
			c->state = CHUNK_TRAILER_START;
			break;
		case CHUNK_END_LF:
			if (ch != '\n')
				return -1;
			c->state = CHUNK_DONE;
			break;
		case CHUNK_DONE:
			break;
		}
		i++;
		if (c->state == CHUNK_SIZE || c->state == CHUNK_SIZE_WS || c->state == CHUNK_EXT) {
			if (++c->line_len > CHUNK_LINE_MAX)
				return -1;
			if (c->state == CHUNK_EXT)
				c->ext_bytes++;
		} else if (c->state == CHUNK_TRAILER_NAME || c->state == CHUNK_TRAILER ||
		    c->state == CHUNK_TRAILER_LF ||
		    (c->state == CHUNK_TRAILER_START && c->trailers > 0)) {
			/* Counts the field lines with their CRLFs (RFC 9112 7.1.2), not
			 * the last-chunk line's LF nor the final CRLF. */
			if (++c->trailer_bytes > max_trailer)
				return -1;
		}
	}
	return (ssize_t)i;
}
