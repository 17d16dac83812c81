/*
 * units: the one parser for durations, sizes, counts and booleans, so every
 * config key reads "2s" or "16k" the same way.
 */
#ifndef PORTICO_UNITS_H
#define PORTICO_UNITS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Duration: a decimal number followed by ms, s, m, h or d ("500ms", "2s",
 * "1h"); a bare number means seconds.  Several terms may be joined ("1m30s").
 * Stores milliseconds in *ms and returns 0, or -1 for anything else
 * (empty, negative, unknown unit, overflow past one year).
 */
int units_duration(const char *s, int64_t *ms);
/* Size: a decimal number with an optional k, m or g suffix (powers of 1024,
 * either case, optional trailing "b").  0 or -1 as above (limit 1 TiB). */
int units_size(const char *s, uint64_t *bytes);
/* Count: a plain non-negative decimal integer no larger than max.  0 or -1. */
int units_count(const char *s, uint64_t max, uint64_t *out);
/* Boolean: on/off, yes/no, true/false, 1/0 (case-insensitive).  0 or -1. */
int units_bool(const char *s, int *out);
/* Formats ms back into the shortest exact form ("1500ms", "2s", "1h"). */
void units_format_duration(int64_t ms, char *buf, size_t len);
/* Formats bytes into the shortest exact form ("16k", "1m", "1000"). */
void units_format_size(uint64_t bytes, char *buf, size_t len);

#endif
