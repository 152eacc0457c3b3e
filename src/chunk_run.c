/*
 * chunk_run.c - closing the open bump run, and the bump path's block
 * hints (see chunk_run.h).  Pure logic on chunk metadata.
 */
#include "chunk_run.h"
#include "block.h"
#include "chunk_hints.h"
#include "chunk_take.h"

/* The allocation [off, end) fills its first block or crosses into others. */
static void bump_blocks_many(struct chunk *c, int off, int end)
{
	int bb = c->block_bits, sb = off >> c->block_shift, eb = (end - 1) >> c->block_shift;
	int base = eb << c->block_shift, e = end - base;
	int r = c->end_bits - base < bb ? c->end_bits - base : bb;

	chunk_count_empty(c, sb, eb, -1);
	for (int b = sb; b < eb; b++)
		block_init_full(&c->md[b], bb);
	if (e < r)
		c->md[eb] = (struct block_md){ .contig = r - e, .contig_start = e,
					       .right_free = r == bb ? r - e : 0, .first_free = e,
					       .free = r - e, .nr_bits = bb };
	else
		block_init_full(&c->md[eb], bb);
	chunk_mark_dirty(c, sb, eb);
}

/* In bump state every block's only free run is its part of the chunk's
 * tail, so an area that stays inside one block and leaves some of it free
 * just moves that block's run start. */
void chunk_bump_blocks(struct chunk *c, int off, int bits)
{
	int b = off >> c->block_shift;
	struct block_md *md = &c->md[b];

	if (bits < md->contig) {
		if (md->contig == c->block_bits) {
			c->nr_empty_pages--;
			c->nr_empty_pop_pages -= page_populated(c, b);
		}
		block_take_front(md, bits);
		bit_set(c->dirty, (size_t)b);
	} else {
		bump_blocks_many(c, off, off + bits);
	}
}

/* The run's areas are [run_start, first_free) (to end_bits when they
 * filled the chunk): maps_take_many writes them a word at a time, the
 * block hints move once. */
void chunk_run_write(struct chunk *c)
{
	int end = c->chunk_md.contig ? c->chunk_md.first_free : c->end_bits;
	int bits = c->run_bits, n = (end - c->run_start) / bits;

	c->run_bits = 0;
	if (n) {
		maps_take_many(c, c->run_start, bits, n);
		chunk_bump_blocks(c, c->run_start, n * bits);
	}
}
