/*
 * chunk_take.h - writing an allocation into a chunk's two maps (the
 * allocation bitmap and the boundary map), for the chunk layer's allocation
 * paths, the closing of an open run and chunk creation only.  Inline: the bump and front paths write the maps
 * of every allocation they make.
 */
#ifndef PCPU_CHUNK_TAKE_H
#define PCPU_CHUNK_TAKE_H

#include "bitops.h"
#include "chunk_map.h"

/* Every write to the boundary map is a relaxed atomic word store: an
 * allocation's owner may read its size without the lock (chunk_map.h). */
static inline void bound_store(unsigned long *bm, size_t w, unsigned long v)
{
	bitmap_word_store_shared(bm, w, v);
}

/* Zero the boundary map's unwritten words up to the one holding bit `bit`. */
static void bound_open(struct chunk *c, size_t bit)
{
	for (size_t w = (size_t)c->bound_clean / BITS_PER_LONG + 1; w <= bit / BITS_PER_LONG; w++) {
		__asm__("" : "+r"(w));          /* a loop, not a memset call */
		bound_store(c->bound_map, w, 0);
	}
}

/*
 * Mark [off, end), free, in use in both maps: allocation bits set; boundary
 * bits set at off and at end (bound_map has nr_bits + 1 bits) and cleared
 * between them (a free run may hold stale ones).  Words between the two
 * ends are stored without being read (no wait for a cold line).  From
 * bound_clean on no boundary bit is set and the words past the one holding
 * it are unwritten: those are stored, not merged.  maps_take_fast does the
 * common shapes inline, maps_take_span any.
 */
static void __attribute__((noinline)) maps_take_span(struct chunk *c, unsigned off, unsigned end)
{
	unsigned long *am = c->alloc_map, *bm = c->bound_map;
	unsigned w = off / BITS_PER_LONG, ew = end / BITS_PER_LONG, cw = (unsigned)c->bound_clean / BITS_PER_LONG;
	unsigned long start_bit = 1UL << off % BITS_PER_LONG, end_bit = 1UL << end % BITS_PER_LONG;
	bool fresh = (int)off >= c->bound_clean;

	if (!fresh && (int)end > c->bound_clean && ew > cw)
		bound_open(c, end);
	if ((int)end > c->bound_clean)
		c->bound_clean = (int)end;
	am[w] |= -start_bit;
	bound_store(bm, w, (fresh && w > cw ? 0 : bm[w] & (start_bit - 1)) | start_bit);
	for (unsigned x = w + 1; x < ew; x++) {
		__asm__("" : "+r"(x));          /* a loop, not a pair of memset calls */
		am[x] = ~0UL;
		bound_store(bm, x, 0);
	}
	if (end_bit != 1)
		am[ew] |= end_bit - 1;
	/* fresh: ew is past the old bound_clean's word, unwritten */
	bound_store(bm, ew, (fresh ? 0 : bm[ew] & -end_bit) | end_bit);
}

/*
 * The common shapes: inside one word (with the end boundary), the rest of
 * one word (the end boundary opening the next), whole words; none of them
 * straddling bound_clean.  False for the others, having changed nothing.
 */
static inline __attribute__((always_inline)) bool maps_take_fast(struct chunk *c, unsigned off,
								  unsigned end)
{
	size_t w = off / BITS_PER_LONG, ew = end / BITS_PER_LONG;
	unsigned long *am = c->alloc_map, *bm = c->bound_map, last = 1;

	if (w == ew) {
		/* a word past bound_clean's is unwritten: taken as 0 */
		unsigned long start_bit = 1UL << off % BITS_PER_LONG, end_bit = 1UL << end % BITS_PER_LONG;
		unsigned long m = end_bit - start_bit;  /* bits [off, end) */
		unsigned long old = w > (unsigned)c->bound_clean / BITS_PER_LONG ? 0 : bm[w] & ~m;

		am[w] |= m;
		bound_store(bm, w, old | start_bit | end_bit);
		if ((int)end > c->bound_clean)
			c->bound_clean = (int)end;
		return true;
	}
	if (((int)off < c->bound_clean && (int)end > c->bound_clean) || end % BITS_PER_LONG)
		return false;
	if (off % BITS_PER_LONG) {
		/* the rest of word w from off on; the end boundary opens word ew */
		unsigned long start_bit = 1UL << off % BITS_PER_LONG;
		unsigned long old = w > (unsigned)c->bound_clean / BITS_PER_LONG ? 0 : bm[w] & (start_bit - 1);

		if (w + 1 != ew)
			return false;
		am[w] |= -start_bit;
		bound_store(bm, w, old | start_bit);
		if ((int)off >= c->bound_clean)
			c->bound_clean = (int)end;
		else
			last |= bm[ew];
		bound_store(bm, ew, last);
		return true;
	}
	/* whole words, every one stored; but the end boundary's word when it
	 * was written before (off < bound_clean): it may hold later ones */
	if ((int)off >= c->bound_clean)
		c->bound_clean = (int)end;
	else
		last |= bm[ew];
	am[w] = ~0UL;
	bound_store(bm, w, 1);
	for (size_t x = w + 1; x < ew; x++) {
		__asm__("" : "+r"(x));          /* a loop, not a pair of memset calls */
		am[x] = ~0UL;
		bound_store(bm, x, 0);
	}
	bound_store(bm, ew, last);
	return true;
}

static inline __attribute__((always_inline)) void maps_take(struct chunk *c, int off, int bits)
{
	if (!maps_take_fast(c, (unsigned)off, (unsigned)(off + bits)))
		maps_take_span(c, (unsigned)off, (unsigned)(off + bits));
}

/*
 * n areas of `bits` back to back from off, free: the span taken as one
 * area, then the boundaries between the areas set, a word at a time (the
 * span's words are written, so merged).  When bits is a power of two up
 * to the word, every word's boundaries are one pattern shifted to off's
 * phase.
 */
static void maps_take_many(struct chunk *c, int off, int bits, int n)
{
	unsigned long *bm = c->bound_map, mask = 0;
	size_t w = (size_t)(off + bits) / BITS_PER_LONG;

	maps_take(c, off, n * bits);
	if (n > 1 && bits <= BITS_PER_LONG && !(bits & (bits - 1))) {
		size_t first = (size_t)(off + bits), end = (size_t)off + (size_t)n * (size_t)bits;
		size_t ew = (end - 1) / BITS_PER_LONG;
		/* a bit every `bits` (a power of two up to the word) */
		unsigned long pattern = (~0UL / ((bits < BITS_PER_LONG ? 1UL << bits : 0) - 1)) <<
					((size_t)off % (size_t)bits);

		for (; w <= ew; w++) {
			unsigned long m = pattern;

			if (w == first / BITS_PER_LONG)
				m &= ~0UL << first % BITS_PER_LONG;
			if (w == ew && end % BITS_PER_LONG)
				m &= (1UL << end % BITS_PER_LONG) - 1;
			bound_store(bm, w, bm[w] | m);
		}
		return;
	}
	for (int k = 1; k < n; k++) {
		size_t pos = (size_t)(off + k * bits);

		if (pos / BITS_PER_LONG != w) {
			if (mask)
				bound_store(bm, w, bm[w] | mask);
			w = pos / BITS_PER_LONG;
			mask = 0;
		}
		mask |= 1UL << pos % BITS_PER_LONG;
	}
	if (mask)
		bound_store(bm, w, bm[w] | mask);
}

#endif
