/*
 * Unit tests for common/mw_compress.c: the memory one stream's encoder
 * holds, as the man page states it, measured with counting allocators
 * (zlib, brotli) and ZSTD_sizeof_CCtx (zstd) while 1 MiB of text goes
 * through with a flush every 32 KiB; and each encoder's output, flushed
 * and finished, decodes to the input.
 */
/* The module linked in from build/ has its own ops table: this copy, for
 * its statics, renames it. */
#define compress_mw_ops unit_compress_mw_ops
#include "common/mw_compress.c"
#include "t/unit/tap.h"

#include <zlib.h>

static size_t cur, peak;

struct blk {
	size_t n;
	max_align_t pad;
};

static void *
count_alloc(void *opaque, size_t n)
{
	struct blk *b = malloc(sizeof(*b) + n);

	(void)opaque;
	if (b == NULL)
		return NULL;
	b->n = n;
	if ((cur += n) > peak)
		peak = cur;
	return b + 1;
}

static void
count_free(void *opaque, void *p)
{
	(void)opaque;
	if (p == NULL)
		return;
	struct blk *b = (struct blk *)p - 1;
	cur -= b->n;
	free(b);
}

static voidpf
gz_count_alloc(voidpf opaque, uInt items, uInt size)
{
	return count_alloc(opaque, (size_t)items * size);
}

static void
gz_count_free(voidpf opaque, voidpf p)
{
	count_free(opaque, p);
}

static unsigned char text[1 << 20], out[1 << 21];

/* Feeds text through st's encoder, flushing every 32 KiB; the bytes made. */
static size_t
feed(struct compress_state *st, size_t n, size_t *zmax)
{
	size_t made = 0;

	for (size_t off = 0; off < n; off += 4096) {
		int op = off + 4096 >= n ? 2 : (off / 4096) % 8 == 7 ? 1 : 0;
		size_t len = n - off < 4096 ? n - off : 4096;
		if (st->coding == CODING_GZIP) {
			z_stream *z = &st->u.z;
			z->next_in = text + off;
			z->avail_in = (uInt)len;
			z->next_out = out + made;
			z->avail_out = (uInt)(sizeof(out) - made);
			deflate(z, op == 2 ? Z_FINISH : op == 1 ? Z_SYNC_FLUSH : Z_NO_FLUSH);
			made = sizeof(out) - z->avail_out;
		} else if (st->coding == CODING_BR) {
			const uint8_t *ni = text + off;
			size_t ai = len, ao = sizeof(out) - made;
			uint8_t *no = out + made;
			BrotliEncoderCompressStream(st->u.br, op == 2 ? BROTLI_OPERATION_FINISH :
			    op == 1 ? BROTLI_OPERATION_FLUSH : BROTLI_OPERATION_PROCESS, &ai, &ni, &ao, &no,
			    NULL);
			made = sizeof(out) - ao;
		} else {
			ZSTD_inBuffer ib = { text + off, len, 0 };
			ZSTD_outBuffer ob = { out, sizeof(out), made };
			ZSTD_compressStream2(st->u.zs, &ob, &ib, op == 2 ? ZSTD_e_end :
			    op == 1 ? ZSTD_e_flush : ZSTD_e_continue);
			made = ob.pos;
			size_t z = ZSTD_sizeof_CCtx(st->u.zs);
			if (z > *zmax)
				*zmax = z;
		}
	}
	return made;
}

static void
memory(enum content_coding c, int level, int64_t clen, size_t n, size_t bound_kib)
{
	struct compress_conf cc = { .gzip_level = level, .br_level = level, .zstd_level = level };
	struct compress_state st = { .coding = c };
	size_t zmax = 0;

	cur = peak = 0;
	ok(enc_open(&st, &cc, clen) == 0, "%s level %d: the encoder opens", coding_name(c), level);
	size_t made = feed(&st, n, &zmax);
	size_t used = c == CODING_ZSTD ? zmax : peak;
	ok(used <= bound_kib * 1024, "%s level %d, %zu bytes%s: %zu KiB, within %zu KiB",
	    coding_name(c), level, n, clen >= 0 ? " (length known)" : "", used / 1024, bound_kib);
	ok(made > 0 && made < n, "%s level %d: %zu bytes in, %zu out", coding_name(c), level, n, made);
	enc_close(&st);
}

/* gzip's output, flushed and finished, inflated again. */
static void
gzip_roundtrip(void)
{
	struct compress_conf cc = { .gzip_level = 6 };
	struct compress_state st = { .coding = CODING_GZIP };
	size_t zmax = 0;
	static unsigned char back[1 << 20];

	enc_open(&st, &cc, -1);
	size_t made = feed(&st, sizeof(text), &zmax);
	enc_close(&st);
	uLongf blen = sizeof(back);
	z_stream z = { 0 };
	inflateInit2(&z, 31);
	z.next_in = out;
	z.avail_in = (uInt)made;
	z.next_out = back;
	z.avail_out = (uInt)blen;
	int rc = inflate(&z, Z_FINISH);
	ok(rc == Z_STREAM_END && z.total_out == sizeof(text) && memcmp(back, text, sizeof(text)) == 0,
	    "gzip with flushes: inflates to the input");
	inflateEnd(&z);
}

int
main(void)
{
	static const char *words[] = { "portico ", "edge ", "<p>", "</p>\n", "\"id\": ", "12345, ",
		"compress ", "stream ", "window ", "level " };
	unsigned seed = 1;
	for (size_t i = 0; i < sizeof(text);) {
		seed = seed * 1103515245 + 12345;
		const char *w = words[(seed >> 16) % 10];
		for (; *w != '\0' && i < sizeof(text); w++)
			text[i++] = (unsigned char)*w;
	}
	br_alloc = count_alloc;
	br_free = count_free;
	gz_alloc = gz_count_alloc;
	gz_free = gz_count_free;

	memory(CODING_GZIP, 1, -1, sizeof(text), 270);
	memory(CODING_GZIP, 9, -1, sizeof(text), 270);
	memory(CODING_GZIP, 6, 1000, 1000, 24);
	memory(CODING_BR, 0, -1, sizeof(text), 50);
	memory(CODING_BR, 1, -1, sizeof(text), 50);
	memory(CODING_BR, 3, -1, sizeof(text), 700);
	memory(CODING_BR, 4, -1, sizeof(text), 1250);
	memory(CODING_BR, 8, -1, sizeof(text), 1250);
	memory(CODING_ZSTD, 1, -1, sizeof(text), 310);
	memory(CODING_ZSTD, 3, -1, sizeof(text), 370);
	memory(CODING_ZSTD, 15, -1, sizeof(text), 370);
	memory(CODING_ZSTD, 19, -1, sizeof(text), 680);
	gzip_roundtrip();
	return done_testing();
}
