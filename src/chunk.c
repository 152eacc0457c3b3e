/*
 * chunk.c - the in-chunk bitmap allocator (see chunk.h).
 *
 * Allocation: chunk_find_fit walks block hints from the chunk's first free
 * block to a block whose contig run (or a run spanning block edges) can take
 * the request, then chunk_alloc_area scans the bitmap from there, never
 * further than one block past the candidate.  Free: the boundary map gives
 * the size; the freed range is merged with its neighbours inside the first
 * and last blocks it touches, and each block reports its merged run once.
 * After either, the blocks touched are re-summarised into the run tree, so
 * the chunk-wide longest run is exact at O(log nr_blocks).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitops.h"
#include "chunk.h"

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((a) - 1))

static inline unsigned long *block_map(const struct chunk *c, int b)
{
	return c->alloc_map + ((size_t)b << c->block_shift) / BITS_PER_LONG;
}

static inline bool page_populated(const struct chunk *c, int p)
{
	return bit_test(c->populated, (size_t)p);
}

/* ---- the run tree ---------------------------------------------------- */

static void tree_set_leaf(struct chunk *c, int b)
{
	const struct block_md *md = &c->md[b];

	c->tree[c->tree_leaves + b] = (struct run_node){
		.pre = md->left_free, .suf = md->right_free, .best = md->contig,
		.best_start = (b << c->block_shift) + md->contig_start,
	};
}

/*
 * Combine two children covering `half` bits each, the right one starting at
 * bit rstart.  Leaves past the last block are padding: a right child made
 * only of padding is ignored, one partly made of it counts its real length.
 * Ties keep the leftmost run.
 */
static void tree_combine(const struct chunk *c, struct run_node *out, const struct run_node *l,
			 const struct run_node *r, int half, int rstart)
{
	int rlen = c->nr_bits - rstart;   /* the right child's real length */

	if (rlen <= 0) {
		*out = *l;
		return;
	}
	if (rlen > half)
		rlen = half;
	out->pre = l->pre == half ? half + r->pre : l->pre;
	out->suf = r->suf == rlen ? rlen + l->suf : r->suf;
	out->best = l->best;
	out->best_start = l->best_start;
	if (l->suf + r->pre > out->best) {
		out->best = l->suf + r->pre;
		out->best_start = rstart - l->suf;
	}
	if (r->best > out->best) {
		out->best = r->best;
		out->best_start = r->best_start;
	}
}

/* Re-summarise blocks [b0, b1] and every ancestor, then chunk_md. */
static void tree_update(struct chunk *c, int b0, int b1)
{
	int lo = c->tree_leaves + b0, hi = c->tree_leaves + b1;
	int half = c->block_bits, level_nodes = c->tree_leaves;

	for (int b = b0; b <= b1; b++)
		tree_set_leaf(c, b);
	for (lo >>= 1, hi >>= 1; lo >= 1; lo >>= 1, hi >>= 1) {
		for (int i = lo; i <= hi; i++) {
			int rstart = (2 * i + 1 - level_nodes) * half;

			tree_combine(c, &c->tree[i], &c->tree[2 * i], &c->tree[2 * i + 1], half,
				     rstart);
		}
		half *= 2;
		level_nodes >>= 1;
	}
	c->chunk_md.contig = c->tree[1].best;
	c->chunk_md.contig_start = c->tree[1].best ? c->tree[1].best_start : 0;
	c->chunk_md.left_free = c->tree[1].pre;
	c->chunk_md.right_free = c->tree[1].suf;
}

/* ---- creation -------------------------------------------------------- */

struct chunk *chunk_create(int nr_pages, size_t page_size, size_t head_bytes, size_t tail_bytes)
{
	struct chunk *c;
	int block_bits, shift, nr_bits, leaves = 1;

	if (nr_pages < 1 || page_size < 256 || (page_size & (page_size - 1)) ||
	    page_size / PCPU_MIN_ALLOC_BYTES > (size_t)INT_MAX / 4 / (size_t)nr_pages ||
	    head_bytes % PCPU_MIN_ALLOC_BYTES || tail_bytes % PCPU_MIN_ALLOC_BYTES) {
		errno = EINVAL;
		return NULL;
	}
	block_bits = (int)(page_size / PCPU_MIN_ALLOC_BYTES);
	shift = __builtin_ctz((unsigned)block_bits);
	nr_bits = nr_pages * block_bits;
	if (head_bytes / PCPU_MIN_ALLOC_BYTES + tail_bytes / PCPU_MIN_ALLOC_BYTES >= (size_t)nr_bits) {
		errno = EINVAL;
		return NULL;
	}
	while (leaves < nr_pages)
		leaves *= 2;

	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->nr_pages = nr_pages;
	c->block_bits = block_bits;
	c->block_shift = shift;
	c->nr_bits = nr_bits;
	c->start_bits = (int)(head_bytes / PCPU_MIN_ALLOC_BYTES);
	c->end_bits = nr_bits - (int)(tail_bytes / PCPU_MIN_ALLOC_BYTES);
	c->tree_leaves = leaves;
	c->alloc_map = calloc(BITS_TO_LONGS(nr_bits), sizeof(unsigned long));
	c->bound_map = calloc(BITS_TO_LONGS(nr_bits + 1), sizeof(unsigned long));
	c->populated = calloc(BITS_TO_LONGS(nr_pages), sizeof(unsigned long));
	c->md = calloc((size_t)nr_pages, sizeof(*c->md));
	c->tree = calloc(2 * (size_t)leaves, sizeof(*c->tree));
	if (!c->alloc_map || !c->bound_map || !c->populated || !c->md || !c->tree) {
		chunk_destroy(c);
		errno = ENOMEM;
		return NULL;
	}

	bitmap_set_range(c->alloc_map, 0, (size_t)c->start_bits);
	bitmap_set_range(c->alloc_map, (size_t)c->end_bits, (size_t)(nr_bits - c->end_bits));
	for (int b = 0; b < nr_pages; b++) {
		c->md[b].nr_bits = block_bits;
		block_rebuild(&c->md[b], block_map(c, b));
		if (c->md[b].contig == block_bits)
			c->nr_empty_pages++;
	}
	c->chunk_md.nr_bits = nr_bits;
	c->chunk_md.first_free = c->start_bits;
	c->free_bytes = (c->end_bits - c->start_bits) * PCPU_MIN_ALLOC_BYTES;
	tree_update(c, 0, nr_pages - 1);
	return c;
}

void chunk_destroy(struct chunk *c)
{
	if (!c)
		return;
	free(c->alloc_map);
	free(c->bound_map);
	free(c->populated);
	free(c->md);
	free(c->tree);
	free(c);
}

/* ---- population bookkeeping ------------------------------------------ */

void chunk_mark_populated(struct chunk *c, int page_start, int page_end)
{
	for (int p = page_start; p < page_end; p++) {
		if (page_populated(c, p))
			continue;
		bit_set(c->populated, (size_t)p);
		c->nr_populated++;
		if (c->md[p].contig == c->block_bits)
			c->nr_empty_pop_pages++;
	}
}

void chunk_mark_depopulated(struct chunk *c, int page_start, int page_end)
{
	for (int p = page_start; p < page_end; p++) {
		if (!page_populated(c, p))
			continue;
		bit_clear(c->populated, (size_t)p);
		c->nr_populated--;
		if (c->md[p].contig == c->block_bits)
			c->nr_empty_pop_pages--;
	}
}

bool chunk_range_populated(const struct chunk *c, int bit_off, int bits)
{
	size_t ps = (size_t)bit_off >> c->block_shift;
	size_t pe = ((size_t)(bit_off + bits) + (size_t)c->block_bits - 1) >> c->block_shift;

	return bitmap_range_set(c->populated, ps, pe);
}

/* Account blocks [b0, b1] that are (were) empty: sign -1 before, +1 after. */
static void count_empty(struct chunk *c, int b0, int b1, int sign)
{
	for (int b = b0; b <= b1; b++) {
		if (c->md[b].contig != c->block_bits)
			continue;
		c->nr_empty_pages += sign;
		if (page_populated(c, b))
			c->nr_empty_pop_pages += sign;
	}
}

/* ---- finding a fit ---------------------------------------------------- */

int chunk_find_fit(const struct chunk *c, int bits, int align_bits, bool pop_only)
{
	int bb = c->block_bits;
	int carry_start = -1, carry_len = 0;

	if (c->chunk_md.contig < bits)
		return -1;

	for (int b = c->chunk_md.first_free >> c->block_shift; b < c->nr_pages; b++) {
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
		int pad = ALIGN_UP(md->contig_start, align_bits) - md->contig_start;

		if (md->contig >= pad + bits) {
			if (md->scan && bits > md->scan)
				return base + md->scan_start + md->scan;
			return base + md->first_free;
		}
		/* The run touching the block's end may continue in the next. */
		if (md->right_free) {
			carry_start = ALIGN_UP(base + bb - md->right_free, align_bits);
			carry_len = base + bb - carry_start;
		}
	}
	return -1;
}

/* ---- allocation ------------------------------------------------------- */

/* First free bit at or after bit `from` (all bits before `from` are used). */
static int next_free_from(const struct chunk *c, int from)
{
	for (int b = from >> c->block_shift; b < c->nr_pages; b++) {
		int in_block = b == from >> c->block_shift ? from & (c->block_bits - 1) : 0;

		if (c->md[b].first_free < c->block_bits) {
			int f = c->md[b].first_free;

			return (b << c->block_shift) + (f > in_block ? f : in_block);
		}
	}
	return c->nr_bits;
}

int chunk_alloc_area(struct chunk *c, int bits, int align_bits, int start)
{
	int end = start + bits + c->block_bits;
	int off, sb, eb, bmask = c->block_bits - 1;

	if (end > c->nr_bits)
		end = c->nr_bits;
	off = (int)bitmap_find_zero_area(c->alloc_map, (size_t)end, (size_t)start, (size_t)bits,
					 (size_t)align_bits - 1);
	if (off >= end)
		return -1;

	bitmap_set_range(c->alloc_map, (size_t)off, (size_t)bits);
	bit_set(c->bound_map, (size_t)off);
	bitmap_clear_range(c->bound_map, (size_t)off + 1, (size_t)bits - 1);
	bit_set(c->bound_map, (size_t)(off + bits));
	c->free_bytes -= bits * PCPU_MIN_ALLOC_BYTES;
	c->nr_alloc++;

	sb = off >> c->block_shift;
	eb = (off + bits - 1) >> c->block_shift;
	count_empty(c, sb, eb, -1);
	if (sb == eb) {
		block_note_alloc(&c->md[sb], block_map(c, sb), off & bmask, ((off + bits - 1) & bmask) + 1);
	} else {
		block_note_alloc(&c->md[sb], block_map(c, sb), off & bmask, c->block_bits);
		for (int b = sb + 1; b < eb; b++)
			block_init_full(&c->md[b], c->block_bits);
		block_note_alloc(&c->md[eb], block_map(c, eb), 0, ((off + bits - 1) & bmask) + 1);
	}
	if (off == c->chunk_md.first_free)
		c->chunk_md.first_free = next_free_from(c, off + bits);
	tree_update(c, sb, eb);
	return off;
}

int chunk_alloc(struct chunk *c, size_t size, size_t align, bool pop_only)
{
	int bits, align_bits, start, off;

	if (!size || size > (size_t)c->nr_bits * PCPU_MIN_ALLOC_BYTES)
		return -1;
	bits = (int)((size + PCPU_MIN_ALLOC_BYTES - 1) / PCPU_MIN_ALLOC_BYTES);
	align_bits = align > PCPU_MIN_ALLOC_BYTES ? (int)(align / PCPU_MIN_ALLOC_BYTES) : 1;
	if (align_bits & (align_bits - 1) || align_bits > c->block_bits)
		return -1;
	start = chunk_find_fit(c, bits, align_bits, pop_only);
	if (start < 0)
		return -1;
	off = chunk_alloc_area(c, bits, align_bits, start);
	return off < 0 ? -1 : off * PCPU_MIN_ALLOC_BYTES;
}

/* ---- free ------------------------------------------------------------- */

int chunk_area_bits(const struct chunk *c, int bit_off)
{
	if (bit_off < c->start_bits || bit_off >= c->end_bits ||
	    !bit_test(c->alloc_map, (size_t)bit_off) || !bit_test(c->bound_map, (size_t)bit_off))
		return 0;
	return (int)bitmap_next_set(c->bound_map, (size_t)c->nr_bits + 1, (size_t)bit_off + 1) - bit_off;
}

int chunk_free_area(struct chunk *c, int bit_off)
{
	int bits = (int)bitmap_next_set(c->bound_map, (size_t)c->nr_bits + 1, (size_t)bit_off + 1) - bit_off;
	int bmask = c->block_bits - 1;
	int sb = bit_off >> c->block_shift, eb = (bit_off + bits - 1) >> c->block_shift;
	int s_off = bit_off & bmask, e_off = ((bit_off + bits - 1) & bmask) + 1;
	struct block_md *smd = &c->md[sb], *emd = &c->md[eb];
	int start, end;

	/* Boundary bits stay: bit_off may also end the previous allocation. */
	bitmap_clear_range(c->alloc_map, (size_t)bit_off, (size_t)bits);
	c->free_bytes += bits * PCPU_MIN_ALLOC_BYTES;
	c->nr_alloc--;
	if (bit_off < c->chunk_md.first_free)
		c->chunk_md.first_free = bit_off;

	/* Extent of the merged run inside the first and the last block. */
	if (smd->contig && s_off == smd->contig_start + smd->contig)
		start = smd->contig_start;
	else
		start = (int)bitmap_last_set_before(block_map(c, sb), (size_t)s_off),
		start = start == s_off ? 0 : start + 1;
	if (emd->contig && e_off == emd->contig_start)
		end = emd->contig_start + emd->contig;
	else
		end = (int)bitmap_next_set(block_map(c, eb), (size_t)c->block_bits, (size_t)e_off);

	if (sb == eb) {
		block_note_run(smd, start, end);
	} else {
		block_note_run(smd, start, c->block_bits);
		for (int b = sb + 1; b < eb; b++)
			block_init_empty(&c->md[b], c->block_bits);
		block_note_run(emd, 0, end);
	}
	count_empty(c, sb, eb, +1);
	tree_update(c, sb, eb);
	return bits;
}

int chunk_free(struct chunk *c, int off)
{
	if (off < 0 || off % PCPU_MIN_ALLOC_BYTES || !chunk_area_bits(c, off / PCPU_MIN_ALLOC_BYTES))
		return -1;
	return chunk_free_area(c, off / PCPU_MIN_ALLOC_BYTES) * PCPU_MIN_ALLOC_BYTES;
}
