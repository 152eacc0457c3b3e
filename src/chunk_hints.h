/*
 * chunk_hints.h - chunk-wide hints and the run tree, private to the chunk
 * layer.
 *
 * The tree summarises every block's edge and longest runs; chunk_md's
 * contig and edge runs are kept exact after each operation, in O(1) when the
 * operation alone decides them and from the tree (O(log blocks)) otherwise.
 * Blocks whose hints changed are marked in c->dirty and re-read lazily.
 */
#ifndef PCPU_CHUNK_HINTS_H
#define PCPU_CHUNK_HINTS_H

#include "bitops.h"
#include "chunk_map.h"

/* Build the whole tree from the block hints. */
void chunk_tree_build(struct chunk *c);
/* Chunk hints after allocating [off, off + bits). */
void chunk_hints_alloc(struct chunk *c, int off, int bits);
/* Chunk hints after a free merged into a run (see chunk_hints.c). */
void chunk_hints_free(struct chunk *c, int sb, int start, int eb, int end);

/* Bring the summary tree up to date and read chunk_md's contig and edge
 * runs from it (chunk_sync in chunk.h: after closing an open run). */
void chunk_tree_flush(struct chunk *c);
/* The value inner tree node i should hold given its children (for verify). */
struct run_node chunk_tree_expected(const struct chunk *c, int i);

/* Blocks b0..b1 changed: their leaves are re-read at the next flush. */
static inline void chunk_mark_dirty(struct chunk *c, int b0, int b1)
{
	if (b0 == b1)
		bit_set(c->dirty, (size_t)b0);
	else
		bitmap_set_range(c->dirty, (size_t)b0, (size_t)(b1 - b0 + 1));
}

/* Account blocks [b0, b1] that are (were) empty: sign -1 before, +1 after. */
static inline void chunk_count_empty(struct chunk *c, int b0, int b1, int sign)
{
	for (int b = b0; b <= b1; b++) {
		if (c->md[b].contig != c->block_bits)
			continue;
		c->nr_empty_pages += sign;
		if (page_populated(c, b))
			c->nr_empty_pop_pages += sign;
	}
}

#endif
