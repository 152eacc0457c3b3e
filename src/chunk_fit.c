/*
 * chunk_fit.c - where an allocation of a given size and alignment can go in
 * a chunk (see chunk_fit.h): the hint walk over blocks, the bitmap
 * fallback for blocks passed over for alignment alone, the remembered
 * failure, and the walk resumed for a batch.
 */
#include "chunk_fit.h"
#include "chunk_run.h"
#include "util.h"

/* Does the remembered failure (nofit, chunk_map.h) cover this request? */
static inline bool nofit_covers(const struct chunk *c, int bits, int align_bits, bool pop_only)
{
	return c->nofit_bits && bits >= c->nofit_bits && align_bits >= c->nofit_align &&
	       (pop_only || !c->nofit_pop);
}

/*
 * The fallback: blocks from b on whose longest run holds `bits` bits but
 * not at align_bits were passed over by the hint walk.  Scan the bitmap of
 * each such block for an aligned fit inside it; runs crossing block edges
 * were judged exactly by the walk already.  O(bits in the chunk) at most.
 */
static int fit_in_blocks(const struct chunk *c, int b, int bits, int align_bits, bool pop_only)
{
	for (; b < c->nr_pages; b++) {
		const struct block_md *md = &c->md[b];
		size_t base = (size_t)b << c->block_shift, end = base + (size_t)c->block_bits;
		size_t off;

		if (md->contig < bits || (pop_only && !page_populated(c, b)))
			continue;
		off = bitmap_find_zero_area(c->alloc_map, end, base + (size_t)md->first_free, (size_t)bits,
					    (size_t)align_bits - 1);
		if (off < end)
			return (int)off;
	}
	return -1;
}

/*
 * Walk block hints from block b0 for a fit (see chunk_find_fit); the first
 * block passed over for alignment alone goes to *misfit.  -1 if none.
 */
static int walk_blocks(const struct chunk *c, int b0, int bits, int align_bits, bool pop_only,
		       int *misfit)
{
	int bb = c->block_bits;
	int carry_start = -1, carry_len = 0;

	for (int b = b0; b < c->nr_pages; b++) {
		const struct block_md *md = &c->md[b];
		int base = b << c->block_shift;

		if (pop_only && !page_populated(c, b)) {
			carry_start = -1;
			continue;
		}
		/* A run that began in an earlier block continues here. */
		if (carry_start >= 0) {
			carry_len += md->left_free;
			if (carry_len >= bits)
				return carry_start;
			if (md->left_free == bb)
				continue;
			carry_start = -1;
		}
		/* The block's longest run, at the requested alignment. */
		int pad = PCPU_ALIGN_UP(md->contig_start, align_bits) - md->contig_start;

		if (md->contig >= pad + bits) {
			if (md->scan && bits > md->scan)
				return base + md->scan_start + md->scan;
			return base + md->first_free;
		}
		if (md->contig >= bits && *misfit < 0)
			*misfit = b;    /* passed over for alignment alone */
		/* The run touching the block's end may continue in the next. */
		if (md->right_free) {
			carry_start = PCPU_ALIGN_UP(base + bb - md->right_free, align_bits);
			carry_len = base + bb - carry_start;
		}
	}
	return -1;
}

/* The first free bit starts the longest run, aligned and big enough. */
static inline bool first_free_fits(const struct chunk *c, int bits, int align_bits, bool pop_only)
{
	int ff = c->chunk_md.first_free;

	return ff == c->chunk_md.contig_start && !(ff & (align_bits - 1)) &&
	       c->chunk_md.contig >= bits && (!pop_only || chunk_range_populated(c, ff, bits));
}

int chunk_find_fit(struct chunk *c, int bits, int align_bits, bool pop_only)
{
	int misfit = -1, off;

	chunk_run_close(c);     /* the walk reads the block hints and maps */
	if (first_free_fits(c, bits, align_bits, pop_only))
		return c->chunk_md.first_free;
	if (c->chunk_md.contig < bits || nofit_covers(c, bits, align_bits, pop_only))
		return -1;
	off = walk_blocks(c, c->chunk_md.first_free >> c->block_shift, bits, align_bits, pop_only, &misfit);
	if (off >= 0)
		return off;
	if (misfit >= 0) {
		off = fit_in_blocks(c, misfit, bits, align_bits, pop_only);
		if (off >= 0)
			return off;
	}
	c->nofit_bits = bits;
	c->nofit_align = align_bits;
	c->nofit_pop = pop_only;
	return -1;
}

int chunk_find_next_fit(const struct chunk *c, int prev, int bits, int align_bits, bool pop_only)
{
	int misfit = -1, b0 = prev >> c->block_shift;

	if (c->run_bits)
		return -1;      /* stale block hints: chunk_find_fit closes the run */
	if (first_free_fits(c, bits, align_bits, pop_only))
		return c->chunk_md.first_free;
	if (c->chunk_md.contig < bits || nofit_covers(c, bits, align_bits, pop_only))
		return -1;
	if (b0 < c->chunk_md.first_free >> c->block_shift)
		b0 = c->chunk_md.first_free >> c->block_shift;
	return walk_blocks(c, b0, bits, align_bits, pop_only, &misfit);
}
