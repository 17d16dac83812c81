/*
 * range: the Range request header (RFC 9110 section 14.2) for byte ranges.
 */
#ifndef PORTICO_RANGE_H
#define PORTICO_RANGE_H

#include <stddef.h>
#include <stdint.h>

#define RANGE_MAX 16 /* more ranges than this (after merging): served whole */

struct byte_range {
	uint64_t first, last; /* inclusive */
};

enum range_result {
	RANGE_NONE = 0,       /* no usable Range: send the whole representation (200) */
	RANGE_UNSATISFIABLE,  /* 416 with Content-Range: bytes *\/size */
	RANGE_OK,             /* 206 with out[0..*n) sorted and merged */
};

/*
 * Parses v[0..len) against a representation of size bytes.  A syntax error
 * or a unit other than bytes is RANGE_NONE, as the RFC asks; overlapping and
 * adjacent ranges are merged; more than RANGE_MAX of them is RANGE_NONE.
 */
enum range_result range_parse(const char *v, size_t len, uint64_t size,
    struct byte_range *out, unsigned *n);

#endif
