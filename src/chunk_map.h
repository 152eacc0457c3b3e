/*
 * chunk_map.h - the in-chunk bitmap allocator's data: a chunk's maps,
 * hints and run tree, and the invariants that bind them (the functions are
 * in chunk.h; the hints' upkeep in chunk_hints.h).
 *
 * A chunk manages the offsets of one region (one unit's worth of address
 * space, the same offsets being used in every unit) in PCPU_MIN_ALLOC_SIZE
 * (4-byte) fragments.  It never touches the memory it manages: the
 * allocator above maps, populates and zeroes.  This layer is pure logic and
 * is tested without any OS memory.
 *
 *   alloc_map   one bit per fragment, 1 = in use;
 *   bound_map   nr_bits + 1 bits; a set bit marks where a live allocation
 *               starts and where it ends (one past its last fragment).  Inside
 *               a live allocation only its start bit is set, so a free needs
 *               no per-object record and bound[off] && alloc[off] is exactly
 *               "off starts a live allocation"; no bit after bound_clean is
 *               set and bit bound_clean is (the last end written; unless 0),
 *               so an allocation from there only sets its end; the
 *               words after the one holding bit bound_clean are not written
 *               yet (nothing reads them: every read is of a live
 *               allocation's bits) and are zeroed as allocations reach them.
 *               The owner of an allocation may read its size without the
 *               lock (chunk_area_bits_shared), so every write to it is a
 *               relaxed atomic word store;
 *   md          one block_md per page (block.h);
 *   tree        a max-run summary over blocks (prefix, suffix and longest
 *               free run per node), giving the chunk's longest free run --
 *               runs may span blocks -- in O(log nr_blocks).  Leaves are
 *               refreshed lazily (the `dirty` bitmap): allocations and frees
 *               whose effect on the longest run is known locally (it was not
 *               cut, or the merged run's ends are known) skip the tree.  A
 *               chunk created with nothing hidden builds it on first use;
 *   chunk_md    the chunk-wide hints: contig, contig_start, first_free,
 *               left_free (the run from bit 0), right_free (the run to the
 *               end).  Exact after every allocation and every free.
 *   populated   one bit per page, 1 = backed by memory in every unit;
 *   run         the open bump run: in bump state (the only free run is the
 *               tail) chunk_alloc hands out areas of run_bits bits back to
 *               back from run_start, writing only chunk_md and the counters
 *               (free_bytes, nr_alloc), which count them and stay exact.  The
 *               maps, block hints, empty-page counts, dirty bits and tree
 *               still describe the chunk as it was at run_start: its only
 *               free run [run_start, end_bits).  The run's areas are
 *               [run_start, first_free) (none yet when the front path
 *               opened it after its own allocation); an open run always
 *               has room for one more area (chunk_md.contig >= run_bits),
 *               else it is closed.  Closing writes the areas into the maps
 *               and block hints at once (chunk_run_close); every chunk
 *               function but chunk_alloc's run path and the readers of
 *               chunk_md and the counters closes it first, and
 *               chunk_area_bits reads it.  The lock-free reader
 *               chunk_area_bits_shared does not know it: its callers (the
 *               pool) never allocate with chunk_alloc, so their chunks
 *               never have an open run.  run_bits 0: none;
 *   nofit       a remembered failure: when nofit_bits > 0, no free run (on
 *               populated pages when nofit_pop) holds nofit_bits bits at
 *               alignment nofit_align.  Allocations keep it true; a free, or
 *               populating a page while nofit_pop, forgets it.
 *
 * A hidden head [0, start_bits) and tail [end_bits, nr_bits) are marked in
 * use without boundaries: the first chunk hides its static area and any
 * unused end this way.  They can never be freed.
 */
#ifndef PCPU_CHUNK_MAP_H
#define PCPU_CHUNK_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "bitops.h"
#include "block.h"

#define PCPU_MIN_ALLOC_SHIFT 2
#define PCPU_MIN_ALLOC_BYTES (1 << PCPU_MIN_ALLOC_SHIFT)

struct run_node {               /* a tree node over a range of blocks */
	int pre;                /* free bits from the range's start */
	int suf;                /* free bits up to the range's end */
	int best;               /* longest free run inside the range */
	int best_start;         /* chunk bit offset where that run starts */
};

struct chunk {
	int nr_pages;
	int block_bits;         /* bits per block = page_size / 4 */
	int block_shift;        /* log2(block_bits) */
	int nr_bits;            /* nr_pages * block_bits */
	int start_bits;         /* hidden head */
	int end_bits;           /* hidden tail starts here */

	unsigned long *alloc_map;
	unsigned long *bound_map;
	unsigned long *populated;
	struct block_md *md;
	struct block_md chunk_md;

	int tree_leaves;        /* power of two >= nr_pages */
	struct run_node *tree;  /* 2 * tree_leaves nodes, root at 1 */
	bool tree_built;        /* false: not built yet (a new chunk, nothing hidden) */
	unsigned long *dirty;   /* blocks whose tree leaf is stale */

	int free_bytes;         /* free bytes in [start_bits, end_bits) */
	int nr_alloc;           /* live allocations */
	int nr_populated;       /* populated pages */
	int nr_empty_pages;     /* blocks with no bit in use */
	int nr_empty_pop_pages; /* blocks with no bit in use, populated */

	int bound_clean;        /* no bound_map bit after this index is set, this
				   one is (but at 0); words after the one holding
				   it are not written yet */

	int run_start;          /* the open bump run (see above); */
	int run_bits;           /* 0 when there is none */

	bool owns_mem;          /* chunk_create's malloc: chunk_destroy frees it */

	int nofit_bits;         /* 0, or a request known to fail (see above) */
	int nofit_align;
	bool nofit_pop;
};

/* Block b's words of the allocation map. */
static inline unsigned long *block_map(const struct chunk *c, int b)
{
	return c->alloc_map + ((size_t)b << c->block_shift) / BITS_PER_LONG;
}

static inline bool page_populated(const struct chunk *c, int p)
{
	return bit_test(c->populated, (size_t)p);
}

/* True if every page covering bits [bit_off, bit_off + bits) is populated. */
static inline bool chunk_range_populated(const struct chunk *c, int bit_off, int bits)
{
	size_t ps = (size_t)bit_off >> c->block_shift;
	size_t pe = ((size_t)(bit_off + bits) + (size_t)c->block_bits - 1) >> c->block_shift;

	return bitmap_range_set(c->populated, ps, pe);
}

#endif
