/*
 * chunk_run.h - a chunk's deferred writes (chunk_map.h): chunk_alloc's open
 * bump run, written into the maps and block hints at once when it closes,
 * and a new chunk's allocation map, written when first needed; and the
 * block hints of the bump path, which the run shares with chunk.c.  Below
 * the fit search (chunk_fit.c) and the allocator (chunk.c), both of which
 * settle a chunk before they read its maps or block hints.
 */
#ifndef PCPU_CHUNK_RUN_H
#define PCPU_CHUNK_RUN_H

#include "chunk_map.h"

/*
 * Block hints after [off, off + bits) was taken from the start of the
 * chunk's only free run, its tail (bump state): every block before the
 * last one touched is full, the last one's only free run is what is left
 * of the tail in it.  Empty-page counts and dirty bits follow.
 */
void chunk_bump_blocks(struct chunk *c, int off, int bits);

/*
 * Write what is deferred (chunk_map.h): the allocation map's words, when
 * none is written yet (those the open run covers whole are left to it),
 * then the open run's areas into the maps and the block hints, closing it.
 * Afterwards the maps and every hint are written out.
 */
void chunk_settle_slow(struct chunk *c);

/* Before reading or writing the maps or the block hints. */
static inline void chunk_settle(struct chunk *c)
{
	if (__builtin_expect(c->run_bits != 0 || c->map_unwritten, 0))
		chunk_settle_slow(c);
}

/* Before reading or writing the block hints or empty-page counts only (an
 * unwritten allocation map can stay). */
static inline void chunk_close_run(struct chunk *c)
{
	if (__builtin_expect(c->run_bits != 0, 0))
		chunk_settle_slow(c);
}

#endif
