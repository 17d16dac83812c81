/*
 * clock: monotonic time, the one clock for timeouts, deadlines and the
 * durations the log and the counters show.
 */
#ifndef PORTICO_CLOCK_H
#define PORTICO_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic microseconds. */
static inline int64_t
clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Monotonic milliseconds. */
static inline int64_t
clock_ms(void)
{
	return clock_us() / 1000;
}

/* Microseconds since t0 (from CLOCK_MONOTONIC), 0 if t0 is ahead. */
static inline uint64_t
usec_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t us = (int64_t)(now.tv_sec - t0->tv_sec) * 1000000 +
	    (now.tv_nsec - t0->tv_nsec) / 1000;
	return us < 0 ? 0 : (uint64_t)us;
}

#endif
