/*
 * mw_compress: `type = compress`, response bodies compressed on the fly
 * with zstd, brotli or gzip, as the client's Accept-Encoding and the
 * configured order choose.
 *
 *   [middleware:squeeze]
 *   type = compress
 *   encodings = zstd, br, gzip
 *   types = text/html, text/css, application/json
 *   min_length = 256
 *   gzip_level = 6
 *
 * The response-head phase decides (type, length, status, Cache-Control:
 * no-transform, an existing Content-Encoding) and changes the head
 * (Content-Encoding, Vary, a weak ETag, no Content-Length); the body
 * filter streams the body through the encoder, emitting as it produces
 * and flushing whenever the producer pauses.  See portico.ini(5).
 */
#ifndef PORTICO_MW_COMPRESS_H
#define PORTICO_MW_COMPRESS_H

#include "common/pipeline.h"

extern const struct mw_ops compress_mw_ops;

#endif
