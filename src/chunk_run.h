/*
 * chunk_run.h - closing chunk_alloc's open bump run (chunk_map.h): writing
 * its areas into the maps and block hints at once, and the block hints of
 * the bump path, which the run shares with chunk.c.  Below the fit search
 * (chunk_fit.c) and the allocator (chunk.c), both of which close the run
 * before they read the maps or the block hints.
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

/* Write the open run's areas into the maps and the block hints and close
 * it (run_bits becomes 0). */
void chunk_run_write(struct chunk *c);

/* Before reading or writing the maps or the block hints. */
static inline void chunk_run_close(struct chunk *c)
{
	if (__builtin_expect(c->run_bits != 0, 0))
		chunk_run_write(c);
}

#endif
