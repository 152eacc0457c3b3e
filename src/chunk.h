/*
 * chunk.h - the in-chunk bitmap allocator: creation, population marks,
 * allocation and free, verification (the fit search is chunk_fit.h).  The
 * data it works on, and its invariants, are described in chunk_map.h.
 */
#ifndef PCPU_CHUNK_H
#define PCPU_CHUNK_H

#include <stdbool.h>
#include <stddef.h>

#include "chunk_fit.h"
#include "chunk_hints.h"
#include "chunk_map.h"

/*
 * Create a chunk of nr_pages pages of page_size bytes (page_size a power of
 * two, >= 64) whose first head_bytes and last tail_bytes are hidden.  All
 * pages start unpopulated.  NULL + errno (ENOMEM, EINVAL) on failure.
 */
struct chunk *chunk_create(int nr_pages, size_t page_size, size_t head_bytes, size_t tail_bytes);
/* The same in `block` (64-byte aligned, chunk_meta_bytes long, owned by the
 * caller, who gives it back after chunk_destroy); chunk_meta_bytes is 0 for
 * an invalid shape. */
size_t chunk_meta_bytes(int nr_pages, size_t page_size, size_t head_bytes, size_t tail_bytes);
struct chunk *chunk_create_in(void *block, int nr_pages, size_t page_size, size_t head_bytes,
			      size_t tail_bytes);
void chunk_destroy(struct chunk *c);


/*
 * Allocate `bits` at alignment align_bits, scanning the allocation map from
 * `start` (a chunk_find_fit result) and at most one block past it.  Updates
 * both maps and every hint exactly.  Returns the bit offset, or -1.
 */
int chunk_alloc_area(struct chunk *c, int bits, int align_bits, int start);

/*
 * When the chunk's longest free run starts at its first free bit (its
 * only run is its tail, or chunk_md.contig_start is first_free) and `bits`
 * at align_bits fit there (bits a multiple of align_bits): allocate up to
 * n areas of `bits` back to back from there (only on populated pages with
 * pop_only), with the hints updated once.  Returns how many (0 when the
 * chunk is not in that state); the first starts at the old
 * chunk_md.first_free.
 */
int chunk_bump_many(struct chunk *c, int bits, int align_bits, int n, bool pop_only);

/*
 * Allocate up to n areas of `bits` back to back from `start` (aligned as
 * the caller needs), as far as the free run at start goes (and, with
 * pop_only, its populated pages), with the hints updated once.  Returns
 * how many (0 when start is not free).  A batch's next objects after one
 * chunk_alloc_area placed in a hole.
 */
int chunk_take_run(struct chunk *c, int start, int bits, int n, bool pop_only);

/*
 * chunk_find_fit + chunk_alloc_area in bytes: byte offset, or -1.  In bump
 * state it opens a run (chunk_map.h): the next allocations of the same
 * size only advance first_free, and the maps and block hints are written
 * once for all of them, when the run closes.
 */
int chunk_alloc(struct chunk *c, size_t size, size_t align, bool pop_only);

/*
 * Size in bits of the live allocation starting at bit_off, or 0 when
 * bit_off is not the start of a live allocation (never allocated, interior,
 * freed, hidden head/tail, out of range).  O(1) to reject, O(size) to size.
 */
int chunk_area_bits(const struct chunk *c, int bit_off);

/*
 * The size in bits of the live allocation starting at bit_off if it is at
 * most max_bits, else 0, read without the lock (from the maps only: never
 * on a chunk with an open run, chunk_map.h): the caller must own that
 * allocation (no one else can free it meanwhile), so its boundary bits are
 * stable; words shared with other allocations are read atomically (every
 * write to bound_map is a relaxed atomic store, see bitops.h).  Its end bit
 * is in the map (bound_map has nr_bits + 1 bits): the common case finds it
 * in bit_off's word (chunk_area_bits_near, from the map alone: -1 when it
 * is not there); the next words are read up to the map's end only (a
 * racing double free may have cleared the bits meanwhile).
 */
static inline int chunk_area_bits_near(const unsigned long *bound_map, int bit_off, int max_bits)
{
	size_t pos = (size_t)bit_off + 1;
	unsigned long v = bitmap_word_shared(bound_map, pos / BITS_PER_LONG) >> (pos % BITS_PER_LONG);

	if (__builtin_expect(v == 0, 0))
		return -1;
	return (size_t)__builtin_ctzl(v) + 1 <= (size_t)max_bits ? __builtin_ctzl(v) + 1 : 0;
}

/* The same when chunk_area_bits_near found no end in bit_off's word: the
 * words after it. */
static inline int chunk_area_bits_far(const struct chunk *c, int bit_off, int max_bits)
{
	size_t pos = (size_t)bit_off + 1, limit = (size_t)bit_off + (size_t)max_bits + 1;

	if (limit > (size_t)c->nr_bits + 1)
		limit = (size_t)c->nr_bits + 1;
	for (size_t w = pos / BITS_PER_LONG + 1; w * BITS_PER_LONG < limit; w++) {
		unsigned long v = bitmap_word_shared(c->bound_map, w);

		if (v) {
			size_t end = w * BITS_PER_LONG + (size_t)__builtin_ctzl(v);

			return end < limit ? (int)(end - (size_t)bit_off) : 0;
		}
	}
	return 0;
}

static inline int chunk_area_bits_shared(const struct chunk *c, int bit_off, int max_bits)
{
	int near = chunk_area_bits_near(c->bound_map, bit_off, max_bits);

	return __builtin_expect(near >= 0, 1) ? near : chunk_area_bits_far(c, bit_off, max_bits);
}

/*
 * Free nr_areas live allocations that lie back to back and cover exactly
 * [bit_off, bit_off + bits), each validated and sized by chunk_area_bits
 * (or known live by the caller): the maps and hints change once for the
 * whole span.  Returns bits.
 */
int chunk_free_span(struct chunk *c, int bit_off, int bits, int nr_areas);

/* Free the live allocation of `bits` bits starting at bit_off. */
static inline int chunk_free_area(struct chunk *c, int bit_off, int bits)
{
	return chunk_free_span(c, bit_off, bits, 1);
}

/* Byte-level free: validates, returns freed bytes or -1 if invalid. */
int chunk_free(struct chunk *c, int off);

/* Record that pages [start, end) are now populated / depopulated. */
void chunk_mark_populated(struct chunk *c, int page_start, int page_end);
void chunk_mark_depopulated(struct chunk *c, int page_start, int page_end);


/* Longest free run in bytes (exact). */
static inline int chunk_contig_bytes(const struct chunk *c)
{
	return c->chunk_md.contig * PCPU_MIN_ALLOC_BYTES;
}

/* Bytes the chunk can ever hand out: end_bits - start_bits, in bytes. */
static inline int chunk_usable_bytes(const struct chunk *c)
{
	return (c->end_bits - c->start_bits) * PCPU_MIN_ALLOC_BYTES;
}

static inline bool chunk_is_empty(const struct chunk *c)
{
	return c->free_bytes == chunk_usable_bytes(c);
}

/* Bring the summary tree up to date (an open run closed first). */
void chunk_sync(struct chunk *c);

/*
 * Recompute every hint and counter from the bitmaps and compare; then bring
 * the summary tree up to date (a cache: no hint changes) and check every
 * node.  Returns 0, or -1 with the first mismatch (block index, field,
 * stored and recomputed values) in msg.
 */
int chunk_verify(struct chunk *c, char *msg, size_t msglen);

#endif
