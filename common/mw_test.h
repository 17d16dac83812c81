/*
 * mw_test: `type = test`, the test suite's middleware.  Not for users: it
 * exists only when portico starts with PORTICO_TEST_MODULES set in its
 * environment, and the man page does not name it.  It drives every phase
 * of the pipeline from t/57pipeline.t:
 *
 *   [middleware:t1]
 *   type = test
 *   upper = on        ; body filter: upper-cases the body (same length)
 *   expand = on       ; body filter: every byte twice (length unknown)
 *   shrink = on       ; body filter: keeps the bytes at offsets 0, 1024,
 *                     ; 2048 ... and drops the rest (length unknown), as
 *                     ; compressing zeros would
 *   delay = 200ms     ; the request phase pauses this long, then resumes
 *   answer = 403      ; the request phase answers (short-circuit); with
 *                     ; delay, it answers when the delay is over
 *   fail = 100k       ; body filter: fails past this many bytes (the response is cut)
 *
 * Always: the request phase adds "X-Trace: NAME" to the request, the
 * response-head phase adds it to the response, and the log phase adds the
 * access-log field NAME ("status=S bytes=B flushes=F") and writes, at
 * level info, "test NAME: log call N: PATH STATUS: k=v k=v" with every
 * field of the exchange.  The filter holds up to 4k of output until its
 * buffer fills, a flush, or the end, as a compressor would.
 */
#ifndef PORTICO_MW_TEST_H
#define PORTICO_MW_TEST_H

#include "common/pipeline.h"

extern const struct mw_ops test_mw_ops;

#endif
