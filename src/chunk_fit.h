/*
 * chunk_fit.h - the fit search of the in-chunk allocator (chunk_fit.c),
 * below the allocation itself (chunk.c).
 */
#ifndef PCPU_CHUNK_FIT_H
#define PCPU_CHUNK_FIT_H

#include "chunk_map.h"

/*
 * Find where to start looking for `bits` free bits aligned to align_bits
 * (a power of two, at most block_bits).  Consults chunk_md first, then walks
 * block hints without reading the bitmaps.  Only when that walk fails and
 * some block was passed over for alignment alone (its longest run holds
 * `bits` bits, but not at align_bits) are those blocks' bitmaps scanned;
 * a failure after that is remembered (nofit) until the next free.  With
 * pop_only, only populated pages are considered.  Closes an open run
 * first.  Returns a bit offset to hand to chunk_alloc_area, or -1.
 *
 * Guarantee (exact): chunk_find_fit returns -1 only if no free run (on
 * populated pages when pop_only) holds `bits` bits at alignment align_bits;
 * otherwise chunk_alloc_area from the result succeeds.
 */
int chunk_find_fit(struct chunk *c, int bits, int align_bits, bool pop_only);

/*
 * For a batch of allocations of one size: where chunk_find_fit would
 * answer next, when the last allocation made started at bit `prev`, was
 * placed by chunk_find_fit or this function, and nothing was freed since.
 * The blocks before prev's were passed over by that search and have not
 * changed (allocations only shrink runs; prev's block's hints may have
 * moved to another run), so the walk resumes at prev's block.  A -1 here
 * is not exact (blocks passed over for alignment are not scanned): the
 * caller falls back to chunk_find_fit (so it does with an open run).
 */
int chunk_find_next_fit(const struct chunk *c, int prev, int bits, int align_bits, bool pop_only);

#endif
