/*
 * seqlock: a small value that one thread changes now and then while others
 * copy it out, with neither a lock nor a pointer whose memory would have to
 * be reclaimed once no reader holds it (a server's address, the session
 * ticket keys).  A sequence lock in C11 atomics; Boehm, "Can seqlocks get
 * along with programming language memory models?" (2012), weighs the ways
 * to write one.
 *
 * The writer makes gen odd, stores the words, makes gen even again; a
 * reader copies the words and copies again if gen was odd or has moved.
 * The words are atomics, so a copy that meets a write is a second try,
 * never a data race.  gen 0 means never written.  One writer at a time:
 * the caller sees to that (the main thread, or start-up).
 *
 * Each word is stored with release and loaded with acquire rather than
 * relaxed between two fences: a reader that loads a word of a write in
 * progress then sees the odd gen that write began with.  It costs nothing
 * on x86, and ThreadSanitizer, which does not model fences, follows it.
 */
#ifndef PORTICO_SEQLOCK_H
#define PORTICO_SEQLOCK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Copies the nwords words into out.  Returns the generation copied, or 0
 * (out untouched) if nothing was ever written.  Waits while a write is
 * under way: a few stores in another thread.
 */
static inline unsigned
seqlock_read(const _Atomic unsigned *gen, const _Atomic uint64_t *words, uint64_t *out, size_t nwords)
{
	for (;;) {
		unsigned g = atomic_load_explicit(gen, memory_order_acquire);
		if (g == 0)
			return 0;
		if (g & 1)
			continue;
		for (size_t i = 0; i < nwords; i++)
			out[i] = atomic_load_explicit(&words[i], memory_order_acquire);
		if (atomic_load_explicit(gen, memory_order_relaxed) == g)
			return g;
	}
}

/* Stores the nwords words of in for readers to copy.  One writer at a time. */
static inline void
seqlock_write(_Atomic unsigned *gen, _Atomic uint64_t *words, const uint64_t *in, size_t nwords)
{
	unsigned g = atomic_load_explicit(gen, memory_order_relaxed);

	atomic_store_explicit(gen, g + 1, memory_order_relaxed);
	for (size_t i = 0; i < nwords; i++)
		atomic_store_explicit(&words[i], in[i], memory_order_release);
	/* Even again; wrapping skips 0, which means "never written". */
	atomic_store_explicit(gen, g + 2 == 0 ? 2 : g + 2, memory_order_release);
}

#endif
