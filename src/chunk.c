/*
 * chunk.c - the in-chunk bitmap allocator (see chunk.h).
 *
 * Allocation: chunk_find_fit walks block hints from the chunk's first free
 * block to a block whose contig run (or a run spanning block edges) can take
 * the request, then chunk_alloc_area scans the bitmap from there, never
 * further than one block past the candidate.  When the first free bit
 * opens its block's only free run and that holds the request, the front
 * path (take_front) allocates there with every hint updated in O(1).
 * When that run is the chunk's tail (bump state), chunk_alloc opens a run
 * instead: allocations of the same size only advance first_free, and the
 * maps and block hints take them all at once when it closes (chunk_run.h).
 * Free: the boundary map gives the size; the freed range is merged with its
 * neighbours inside the first and last blocks it touches, and each block
 * reports its merged run once.  After either, the blocks touched are
 * re-summarised into the run tree, so the chunk-wide longest run is exact
 * at O(log nr_blocks).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitops.h"
#include "chunk.h"
#include "chunk_fit.h"
#include "chunk_hints.h"
#include "chunk_run.h"
#include "chunk_take.h"
#include "util.h"

/* ---- creation -------------------------------------------------------- */

/* Sizes and shape of a chunk's one block of metadata; false if invalid. */
struct chunk_shape {
	int block_bits, shift, nr_bits, leaves;
	size_t head, map_words, bound_words, page_words, zeroed, bytes;
};

static bool chunk_shape(struct chunk_shape *sh, int nr_pages, size_t page_size, size_t head_bytes,
			size_t tail_bytes)
{
	if (nr_pages < 1 || page_size < 256 || (page_size & (page_size - 1)) ||
	    page_size / PCPU_MIN_ALLOC_BYTES > (size_t)INT_MAX / 4 / (size_t)nr_pages ||
	    head_bytes % PCPU_MIN_ALLOC_BYTES || tail_bytes % PCPU_MIN_ALLOC_BYTES)
		return false;
	sh->block_bits = (int)(page_size / PCPU_MIN_ALLOC_BYTES);
	sh->shift = __builtin_ctz((unsigned)sh->block_bits);
	sh->nr_bits = nr_pages * sh->block_bits;
	if (head_bytes / PCPU_MIN_ALLOC_BYTES + tail_bytes / PCPU_MIN_ALLOC_BYTES >= (size_t)sh->nr_bits)
		return false;
	for (sh->leaves = 1; sh->leaves < nr_pages;)
		sh->leaves *= 2;
	/*
	 * One block: the struct, the allocation map and the populated and
	 * dirty bitmaps (zeroed); then the boundary map (its first word zeroed,
	 * the rest as allocations reach it, see bound_open), the block hints
	 * and the tree (written at creation or when first needed).
	 */
	sh->head = PCPU_ALIGN_UP(sizeof(struct chunk), (size_t)64);
	sh->map_words = BITS_TO_LONGS(sh->nr_bits);
	sh->bound_words = BITS_TO_LONGS(sh->nr_bits + 1);
	sh->page_words = BITS_TO_LONGS(nr_pages);
	sh->zeroed = sh->map_words + 2 * sh->page_words;
	sh->bytes = sh->head + (sh->zeroed + sh->bound_words) * sizeof(long) +
		    (size_t)nr_pages * sizeof(struct block_md) + 2 * (size_t)sh->leaves * sizeof(struct run_node);
	return true;
}

size_t chunk_meta_bytes(int nr_pages, size_t page_size, size_t head_bytes, size_t tail_bytes)
{
	struct chunk_shape sh;

	return chunk_shape(&sh, nr_pages, page_size, head_bytes, tail_bytes) ? sh.bytes : 0;
}

struct chunk *chunk_create(int nr_pages, size_t page_size, size_t head_bytes, size_t tail_bytes)
{
	size_t bytes = chunk_meta_bytes(nr_pages, page_size, head_bytes, tail_bytes);
	void *mem;
	struct chunk *c;

	if (!bytes) {
		errno = EINVAL;
		return NULL;
	}
	if (!(mem = malloc(bytes))) {
		errno = ENOMEM;
		return NULL;
	}
	c = chunk_create_in(mem, nr_pages, page_size, head_bytes, tail_bytes);
	c->owns_mem = true;
	return c;
}

struct chunk *chunk_create_in(void *block, int nr_pages, size_t page_size, size_t head_bytes,
			      size_t tail_bytes)
{
	struct chunk_shape sh;
	char *mem = block;
	struct chunk *c;

	if (!chunk_shape(&sh, nr_pages, page_size, head_bytes, tail_bytes)) {
		errno = EINVAL;
		return NULL;
	}
	int block_bits = sh.block_bits, shift = sh.shift, nr_bits = sh.nr_bits, leaves = sh.leaves;
	size_t head = sh.head, map_words = sh.map_words, bound_words = sh.bound_words;
	size_t page_words = sh.page_words, zeroed = sh.zeroed;

	c = (struct chunk *)mem;
	memset(c, 0, sizeof(*c));
	c->nr_pages = nr_pages;
	c->block_bits = block_bits;
	c->block_shift = shift;
	c->nr_bits = nr_bits;
	c->start_bits = (int)(head_bytes / PCPU_MIN_ALLOC_BYTES);
	c->end_bits = nr_bits - (int)(tail_bytes / PCPU_MIN_ALLOC_BYTES);
	c->tree_leaves = leaves;
	c->alloc_map = (unsigned long *)(mem + head);
	memset(c->alloc_map, 0, zeroed * sizeof(long));
	c->populated = c->alloc_map + map_words;
	c->dirty = c->populated + page_words;
	c->bound_map = c->dirty + page_words;
	bound_store(c->bound_map, 0, 0);
	c->md = (struct block_md *)(c->bound_map + bound_words);
	c->tree = (struct run_node *)(c->md + nr_pages);

	if (!c->start_bits && c->end_bits == nr_bits) {
		/* Nothing hidden: every block is one free run, so is the chunk;
		 * the tree is built when first needed (chunk_tree_flush). */
		block_init_empty(&c->md[0], block_bits);
		for (int b = 1; b < nr_pages; b++)
			c->md[b] = c->md[0];
		c->nr_empty_pages = nr_pages;
		c->chunk_md.contig = c->chunk_md.left_free = c->chunk_md.right_free = nr_bits;
	} else {
		bitmap_set_range(c->alloc_map, 0, (size_t)c->start_bits);
		bitmap_set_range(c->alloc_map, (size_t)c->end_bits, (size_t)(nr_bits - c->end_bits));
		for (int b = 0; b < nr_pages; b++) {
			c->md[b].nr_bits = block_bits;
			block_rebuild(&c->md[b], block_map(c, b));
			if (c->md[b].contig == block_bits)
				c->nr_empty_pages++;
		}
		chunk_tree_build(c);
		c->tree_built = true;
	}
	c->chunk_md.nr_bits = nr_bits;
	c->chunk_md.first_free = c->start_bits;
	c->free_bytes = (c->end_bits - c->start_bits) * PCPU_MIN_ALLOC_BYTES;
	return c;
}

void chunk_destroy(struct chunk *c)
{
	if (c && c->owns_mem)
		free(c);        /* every array lives in the same allocation */
}

/* ---- population bookkeeping ------------------------------------------ */

void chunk_mark_populated(struct chunk *c, int page_start, int page_end)
{
	chunk_run_close(c);
	if (c->nofit_pop)
		c->nofit_bits = 0;
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
	chunk_run_close(c);
	for (int p = page_start; p < page_end; p++) {
		if (!page_populated(c, p))
			continue;
		bit_clear(c->populated, (size_t)p);
		c->nr_populated--;
		if (c->md[p].contig == c->block_bits)
			c->nr_empty_pop_pages--;
	}
}

/* ---- allocation ------------------------------------------------------- */

/*
 * The chunk's first free bit after an allocation that started at the old
 * one and ended in block eb: every bit before the allocation's end is used,
 * so it is the first free bit of block eb or of a block after it.
 */
static inline int first_free_after(const struct chunk *c, int eb)
{
	for (int b = eb; b < c->nr_pages; b++)
		if (c->md[b].first_free < c->block_bits)
			return (b << c->block_shift) + c->md[b].first_free;
	return c->nr_bits;
}

/*
 * Does the chunk's longest free run start at its first free bit, and the
 * request fit there (chunk_bump_many's state)?
 */
static inline bool front_run_fits(const struct chunk *c, int bits, int align_bits, bool pop_only)
{
	const struct block_md *cm = &c->chunk_md;
	int ff = cm->first_free;

	return ff == cm->contig_start && cm->contig >= bits && !(ff & (align_bits - 1)) &&
	       (!pop_only || chunk_range_populated(c, ff, bits));
}

/*
 * Is the chunk in bump state for this request: its only free run is its
 * tail [first_free, end_bits), and the request fits at first_free?
 */
static inline bool bump_fits(const struct chunk *c, int bits, int align_bits, bool pop_only)
{
	return c->chunk_md.first_free + c->chunk_md.contig == c->end_bits &&
	       front_run_fits(c, bits, align_bits, pop_only);
}

/*
 * The bump path's hints after [off, off + bits) was taken from the start
 * of the chunk's only free run (maps and counters done by the caller): the
 * blocks' (chunk_bump_blocks), then the chunk's only run shrinks from its
 * start (bump_chunk_hints).  Every hint stays exact.
 */
static inline void bump_chunk_hints(struct chunk *c, int end, int bits)
{
	struct block_md *cm = &c->chunk_md;

	cm->contig -= bits;
	cm->contig_start = cm->contig ? end : 0;
	cm->first_free = cm->contig ? end : c->nr_bits;
	cm->left_free = 0;
	if (cm->right_free)
		cm->right_free = cm->contig;
}

static void bump_hints(struct chunk *c, int off, int bits)
{
	chunk_bump_blocks(c, off, bits);
	bump_chunk_hints(c, off + bits, bits);
}

/* The bump path (bump_fits holds): allocate at first_free. */
static int chunk_bump(struct chunk *c, int bits)
{
	int off = c->chunk_md.first_free;

	maps_take(c, off, bits);
	c->free_bytes -= bits * PCPU_MIN_ALLOC_BYTES;
	c->nr_alloc++;
	bump_hints(c, off, bits);
	return off;
}

static void note_area(struct chunk *c, int off, int bits);

/* The end of the free run [off, end), cut at the first unpopulated page from
 * off on. */
static int populated_end(const struct chunk *c, int off, int end)
{
	int p = (int)bitmap_next_clear(c->populated, (size_t)c->nr_pages,
				       (size_t)(off >> c->block_shift)) << c->block_shift;

	return p < end ? p : end;
}

/* n areas of `bits` back to back from off, free: the maps and the chunk's
 * counts (its hints are the caller's). */
static void take_areas(struct chunk *c, int off, int bits, int n)
{
	maps_take_many(c, off, bits, n);
	c->free_bytes -= n * bits * PCPU_MIN_ALLOC_BYTES;
	c->nr_alloc += n;
}

int chunk_bump_many(struct chunk *c, int bits, int align_bits, int n, bool pop_only)
{
	const struct block_md *cm = &c->chunk_md;
	int off, end;
	bool bump;

	chunk_run_close(c);
	off = cm->first_free;
	if (n <= 0 || (bits & (align_bits - 1)) || !front_run_fits(c, bits, align_bits, pop_only))
		return 0;
	/* Bump state (the run is the tail) keeps O(1) hints; otherwise the
	 * hints of an area allocated there (note_area). */
	end = off + cm->contig;
	bump = end == c->end_bits;
	if (pop_only)
		end = populated_end(c, off, end);
	if (n > (end - off) / bits)
		n = (end - off) / bits;
	take_areas(c, off, bits, n);
	if (bump)
		bump_hints(c, off, n * bits);
	else
		note_area(c, off, n * bits);
	return n;
}

int chunk_take_run(struct chunk *c, int start, int bits, int n, bool pop_only)
{
	int limit, end, m;

	chunk_run_close(c);
	if (n <= 0 || start < 0 || start >= c->nr_bits)
		return 0;
	limit = n > (c->nr_bits - start) / bits ? c->nr_bits : start + n * bits;
	end = (int)bitmap_next_set(c->alloc_map, (size_t)limit, (size_t)start);
	if (pop_only)
		end = populated_end(c, start, end);
	m = end > start ? (end - start) / bits : 0;
	if (!m)
		return 0;
	take_areas(c, start, bits, m);
	note_area(c, start, m * bits);
	return m;
}

/* Every hint after [off, off + bits), free before, was taken (maps and
 * counters done by the caller). */
static void note_area(struct chunk *c, int off, int bits)
{
	int bmask = c->block_bits - 1;
	int sb = off >> c->block_shift, eb = (off + bits - 1) >> c->block_shift;

	chunk_count_empty(c, sb, eb, -1);
	if (sb == eb) {
		block_note_alloc(&c->md[sb], block_map(c, sb), off & bmask, ((off + bits - 1) & bmask) + 1);
	} else {
		block_note_alloc(&c->md[sb], block_map(c, sb), off & bmask, c->block_bits);
		for (int b = sb + 1; b < eb; b++)
			block_init_full(&c->md[b], c->block_bits);
		block_note_alloc(&c->md[eb], block_map(c, eb), 0, ((off + bits - 1) & bmask) + 1);
	}
	chunk_mark_dirty(c, sb, eb);
	if (off == c->chunk_md.first_free)
		c->chunk_md.first_free = first_free_after(c, eb);
	chunk_hints_alloc(c, off, bits);
}

/* Allocate [off, off + bits), known to be free: maps, counters, every hint. */
static int alloc_at(struct chunk *c, int off, int bits)
{
	maps_take(c, off, bits);
	c->free_bytes -= bits * PCPU_MIN_ALLOC_BYTES;
	c->nr_alloc++;
	note_area(c, off, bits);
	return off;
}

/*
 * The front path: the request fits at first_free, at the front of its
 * block's only free run (the run starts there, first_free being the first
 * free bit).  The common case of a chunk filled in order, from its tail
 * (bump state) or from a hole at the front of every block.  md is
 * first_free's block; false when the chunk is full (first_free has none).
 */
static inline bool front_fits(const struct chunk *c, const struct block_md *md, int bits, bool pop_only)
{
	return c->chunk_md.contig >= bits && md->free == md->contig && md->contig >= bits &&
	       (!pop_only || page_populated(c, c->chunk_md.first_free >> c->block_shift));
}

/* take_front took all of block b's free bits: the chunk's first free bit
 * is in a later block. */
static void __attribute__((noinline)) front_fill(struct chunk *c, int b)
{
	c->md[b] = (struct block_md){ .first_free = c->block_bits, .nr_bits = c->block_bits };
	c->chunk_md.first_free = first_free_after(c, b + 1);
}

/*
 * take_front cut the chunk's longest run at its start, and other runs
 * remain: as long a one can only lie after off's block (off was first_free
 * and the cut run was the longest in its block).
 */
static void __attribute__((noinline)) front_cut(struct chunk *c, int off, int bits)
{
	struct block_md *cm = &c->chunk_md;
	int b = (off >> c->block_shift) + 1;

	if (b < c->nr_pages && c->md[b].contig == cm->contig)
		cm->contig_start = (b << c->block_shift) + c->md[b].contig_start;
	else
		chunk_hints_alloc(c, off, bits);
}

/*
 * Allocate at first_free (front_fits holds; md is its block).  Every bit
 * before it is in use, so the allocation cuts the chunk's longest run only
 * when that run starts there; the block keeps one run, shorter from its
 * start, or is full; the chunk's leading run is gone and its trailing
 * run shrinks if it was this one.  Every hint stays exact in O(1), but
 * when the chunk's longest run was cut and other runs remain (front_cut).
 */
static void run_open_empty(struct chunk *c, int bits);

static inline __attribute__((always_inline)) int take_front(struct chunk *c, struct block_md *md,
							     int bits, bool may_open)
{
	struct block_md *cm = &c->chunk_md;
	int off = cm->first_free, end = off + bits, b = off >> c->block_shift;

	maps_take(c, off, bits);
	c->free_bytes -= bits * PCPU_MIN_ALLOC_BYTES;
	c->nr_alloc++;
	bit_set(c->dirty, (size_t)(off >> c->block_shift));    /* (not b: fewer spills) */
	if (md->contig == c->block_bits) {
		c->nr_empty_pages--;
		c->nr_empty_pop_pages -= page_populated(c, b);
	}
	if (bits < md->contig) {
		block_take_front(md, bits);
		cm->first_free = end;
	} else {
		front_fill(c, b);
	}
	cm->left_free = 0;      /* nonzero only when first_free was 0 */
	if (off == cm->contig_start &&
	    (unsigned)c->free_bytes / PCPU_MIN_ALLOC_BYTES + (unsigned)bits == (unsigned)cm->contig) {
		/* it was the chunk's only run: the rest of it is, and it is the
		 * trailing run if there is one */
		cm->contig -= bits;
		cm->contig_start = cm->contig ? end : 0;
		if (cm->right_free)
			cm->right_free = cm->contig;
		/* chunk_alloc: the chunk in bump state, the next ones of this
		 * size take a run */
		if (may_open && end + cm->contig == c->end_bits && cm->contig >= bits)
			run_open_empty(c, bits);
		return off;
	}
	if (end > c->nr_bits - cm->right_free)
		cm->right_free = c->nr_bits - end;
	if (off == cm->contig_start)
		front_cut(c, off, bits);
	return off;
}

int chunk_alloc_area(struct chunk *c, int bits, int align_bits, int start)
{
	int end = start + bits + c->block_bits, off;
	const struct block_md *smd = &c->md[start >> c->block_shift];

	chunk_run_close(c);
	if (start == c->chunk_md.first_free && !(start & (align_bits - 1))) {
		if (front_fits(c, smd, bits, false))
			return take_front(c, (struct block_md *)smd, bits, false);
		if (bump_fits(c, bits, align_bits, false))
			return chunk_bump(c, bits);
	}
	if (!(start & (align_bits - 1)) &&
	    (((start & (c->block_bits - 1)) == smd->contig_start && smd->contig >= bits) ||
	     (start == c->chunk_md.contig_start && c->chunk_md.contig >= bits)))
		return alloc_at(c, start, bits);  /* start opens a run known to be long enough */
	if (end > c->nr_bits)
		end = c->nr_bits;
	off = (int)bitmap_find_zero_area(c->alloc_map, (size_t)end, (size_t)start, (size_t)bits,
					 (size_t)align_bits - 1);
	return off < end ? alloc_at(c, off, bits) : -1;
}

static int run_open(struct chunk *c, int bits);

/*
 * chunk_alloc past the run and the front path (no open run): a run
 * for a request that crosses blocks in bump state; first fit at
 * first_free when its block's longest run starts there and holds the
 * request; else find a fit and allocate there.  Bytes or -1.
 */
static int __attribute__((noinline)) chunk_alloc_fit(struct chunk *c, int bits, int align_bits,
						     bool pop_only)
{
	int ff = c->chunk_md.first_free, start, off;

	if (bump_fits(c, bits, align_bits, pop_only))
		return run_open(c, bits) * PCPU_MIN_ALLOC_BYTES;
	if (ff < c->nr_bits && !(ff & (align_bits - 1))) {
		const struct block_md *md = &c->md[ff >> c->block_shift];

		if ((ff & (c->block_bits - 1)) == md->contig_start && md->contig >= bits &&
		    (!pop_only || page_populated(c, ff >> c->block_shift)))
			return alloc_at(c, ff, bits) * PCPU_MIN_ALLOC_BYTES;
	}
	start = chunk_find_fit(c, bits, align_bits, pop_only);

	if (start < 0)
		return -1;
	off = chunk_alloc_area(c, bits, align_bits, start);
	return off < 0 ? -1 : off * PCPU_MIN_ALLOC_BYTES;
}

/* The open run's next area (chunk_map.h): chunk_md and the counters only;
 * the run is closed when no further area of its size fits. */
static inline __attribute__((always_inline)) int run_take(struct chunk *c, int bits)
{
	int off = c->chunk_md.first_free;

	bump_chunk_hints(c, off + bits, bits);
	c->free_bytes -= bits * PCPU_MIN_ALLOC_BYTES;
	c->nr_alloc++;
	if (c->chunk_md.contig < bits)
		chunk_run_write(c);
	return off;
}

/* Open a run with no area yet at first_free, in bump state with room for
 * an area of `bits`. */
static void __attribute__((noinline)) run_open_empty(struct chunk *c, int bits)
{
	c->run_start = c->chunk_md.first_free;
	c->run_bits = bits;
}

/* Open a run at first_free (bump_fits holds) and take its first area. */
static int __attribute__((noinline)) run_open(struct chunk *c, int bits)
{
	run_open_empty(c, bits);
	return run_take(c, bits);
}

/* chunk_alloc with no open run, first_free aligned: the front path
 * (opening a run when it leaves the chunk in bump state), else a fit. */
static inline __attribute__((always_inline)) int alloc_no_run(struct chunk *c, int bits, int align_bits,
								bool pop_only)
{
	struct block_md *md = &c->md[c->chunk_md.first_free >> c->block_shift];

	if (!front_fits(c, md, bits, pop_only))
		return chunk_alloc_fit(c, bits, align_bits, pop_only);
	return take_front(c, md, bits, true) * PCPU_MIN_ALLOC_BYTES;
}

/* chunk_alloc with an open run that cannot take the request: close it,
 * then a run of this size or the paths without one. */
static int __attribute__((noinline)) alloc_in_run(struct chunk *c, int bits, int align_bits, bool pop_only)
{
	chunk_run_write(c);
	if (bump_fits(c, bits, align_bits, pop_only))
		return run_open(c, bits) * PCPU_MIN_ALLOC_BYTES;
	return alloc_no_run(c, bits, align_bits, pop_only);
}

int chunk_alloc(struct chunk *c, size_t size, size_t align, bool pop_only)
{
	size_t bits = (size + PCPU_MIN_ALLOC_BYTES - 1) / PCPU_MIN_ALLOC_BYTES;
	int align_bits = 1, ff = c->chunk_md.first_free;

	/* bits - 1 wraps for a size of 0 (or so large that bits did) */
	if (bits - 1 >= (size_t)c->nr_bits)
		return -1;
	if (align > PCPU_MIN_ALLOC_BYTES) {
		if (align / PCPU_MIN_ALLOC_BYTES > (size_t)c->block_bits)
			return -1;
		align_bits = (int)(align / PCPU_MIN_ALLOC_BYTES);
		if (align_bits & (align_bits - 1))
			return -1;
		if (ff & (align_bits - 1)) {
			chunk_run_close(c);
			return chunk_alloc_fit(c, (int)bits, align_bits, pop_only);
		}
	}
	if (c->run_bits) {
		/* first_free is aligned: an open run of this size with room
		 * (and populated pages) left */
		if (c->run_bits == (int)bits && (!pop_only || chunk_range_populated(c, ff, (int)bits)))
			return run_take(c, (int)bits) * PCPU_MIN_ALLOC_BYTES;
		return alloc_in_run(c, (int)bits, align_bits, pop_only);
	}
	return alloc_no_run(c, (int)bits, align_bits, pop_only);
}

/* Sync the tree (tests, fuzzing) after closing an open run. */
void chunk_sync(struct chunk *c)
{
	chunk_run_close(c);
	chunk_tree_flush(c);
}

/* ---- free ------------------------------------------------------------- */

/* chunk_area_bits for an offset the maps do not show as a live start: an
 * area of the open run, or nothing. */
static int __attribute__((noinline)) run_area_bits(const struct chunk *c, int bit_off)
{
	if (c->run_bits && bit_off >= c->run_start && bit_off < c->chunk_md.first_free)
		return (bit_off - c->run_start) % c->run_bits ? 0 : c->run_bits;
	return 0;
}

/* chunk_area_bits; `no_run`: the caller knows there is no open run. */
static inline __attribute__((always_inline)) int area_bits(const struct chunk *c, int bit_off, bool no_run)
{
	/* an open run's bits are still clear in the allocation map */
	if (bit_off < c->start_bits || bit_off >= c->end_bits || !bit_test(c->alloc_map, (size_t)bit_off))
		return no_run ? 0 : run_area_bits(c, bit_off);
	if (!bit_test(c->bound_map, (size_t)bit_off))
		return 0;
	return (int)bitmap_next_set(c->bound_map, (size_t)c->nr_bits + 1, (size_t)bit_off + 1) - bit_off;
}

int chunk_area_bits(const struct chunk *c, int bit_off)
{
	return area_bits(c, bit_off, false);
}

/* chunk_free_span with no open run. */
static inline __attribute__((always_inline)) int free_span(struct chunk *c, int bit_off, int bits,
							    int nr_areas)
{
	int bmask = c->block_bits - 1;
	int sb = bit_off >> c->block_shift, eb = (bit_off + bits - 1) >> c->block_shift;
	int s_off = bit_off & bmask, e_off = ((bit_off + bits - 1) & bmask) + 1;
	struct block_md *smd = &c->md[sb], *emd = &c->md[eb];
	int start, end;

	/* Boundary bits stay: bit_off may also end the previous allocation. */
	bitmap_clear_range(c->alloc_map, (size_t)bit_off, (size_t)bits);
	c->free_bytes += bits * PCPU_MIN_ALLOC_BYTES;
	c->nr_alloc -= nr_areas;
	c->nofit_bits = 0;
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
		smd->free += bits;
		block_note_run(smd, start, end);
	} else {
		smd->free += c->block_bits - s_off;
		emd->free += e_off;
		block_note_run(smd, start, c->block_bits);
		for (int b = sb + 1; b < eb; b++)
			block_init_empty(&c->md[b], c->block_bits);
		block_note_run(emd, 0, end);
	}
	chunk_count_empty(c, sb, eb, +1);
	chunk_mark_dirty(c, sb, eb);
	chunk_hints_free(c, sb, start, eb, end);
	return bits;
}

int chunk_free_span(struct chunk *c, int bit_off, int bits, int nr_areas)
{
	chunk_run_close(c);
	return free_span(c, bit_off, bits, nr_areas);
}

/* chunk_free with an open run: validated first, then the run closed. */
static int __attribute__((noinline)) free_in_run(struct chunk *c, int bit_off)
{
	int bits = area_bits(c, bit_off, false);

	if (!bits)
		return -1;
	chunk_run_write(c);
	return free_span(c, bit_off, bits, 1) * PCPU_MIN_ALLOC_BYTES;
}

int chunk_free(struct chunk *c, int off)
{
	int bits;

	if (off < 0 || off % PCPU_MIN_ALLOC_BYTES)
		return -1;
	if (__builtin_expect(c->run_bits != 0, 0))
		return free_in_run(c, off / PCPU_MIN_ALLOC_BYTES);
	if (!(bits = area_bits(c, off / PCPU_MIN_ALLOC_BYTES, true)))
		return -1;
	return free_span(c, off / PCPU_MIN_ALLOC_BYTES, bits, 1) * PCPU_MIN_ALLOC_BYTES;
}
