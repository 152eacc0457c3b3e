/*
 * chunk.h - the in-chunk bitmap allocator.
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
 *   nofit       a remembered failure: when nofit_bits > 0, no free run (on
 *               populated pages when nofit_pop) holds nofit_bits bits at
 *               alignment nofit_align.  Allocations keep it true; a free, or
 *               populating a page while nofit_pop, forgets it.
 *
 * A hidden head [0, start_bits) and tail [end_bits, nr_bits) are marked in
 * use without boundaries: the first chunk hides its static area and any
 * unused end this way.  They can never be freed.
 */
#ifndef PCPU_CHUNK_H
#define PCPU_CHUNK_H

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

	int nofit_bits;         /* 0, or a request known to fail (see above) */
	int nofit_align;
	bool nofit_pop;
};

/*
 * Create a chunk of nr_pages pages of page_size bytes (page_size a power of
 * two, >= 64) whose first head_bytes and last tail_bytes are hidden.  All
 * pages start unpopulated.  NULL + errno (ENOMEM, EINVAL) on failure.
 */
struct chunk *chunk_create(int nr_pages, size_t page_size, size_t head_bytes, size_t tail_bytes);
void chunk_destroy(struct chunk *c);

/*
 * Find where to start looking for `bits` free bits aligned to align_bits
 * (a power of two, at most block_bits).  Consults chunk_md first, then walks
 * block hints without reading the bitmaps.  Only when that walk fails and
 * some block was passed over for alignment alone (its longest run holds
 * `bits` bits, but not at align_bits) are those blocks' bitmaps scanned;
 * a failure after that is remembered (nofit) until the next free.  With
 * pop_only, only populated pages are considered.  Returns a bit offset to
 * hand to chunk_alloc_area, or -1.
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
 * caller falls back to chunk_find_fit.
 */
int chunk_find_next_fit(const struct chunk *c, int prev, int bits, int align_bits, bool pop_only);

/*
 * Allocate `bits` at alignment align_bits, scanning the allocation map from
 * `start` (a chunk_find_fit result) and at most one block past it.  Updates
 * both maps and every hint exactly.  Returns the bit offset, or -1.
 */
int chunk_alloc_area(struct chunk *c, int bits, int align_bits, int start);

/* chunk_find_fit + chunk_alloc_area in bytes: byte offset, or -1. */
int chunk_alloc(struct chunk *c, size_t size, size_t align, bool pop_only);

/*
 * Size in bits of the live allocation starting at bit_off, or 0 when
 * bit_off is not the start of a live allocation (never allocated, interior,
 * freed, hidden head/tail, out of range).  O(1) to reject, O(size) to size.
 */
int chunk_area_bits(const struct chunk *c, int bit_off);

/*
 * The size in bits of the live allocation starting at bit_off if it is at
 * most max_bits, else 0, read without the lock: the caller must own that
 * allocation (no one else can free it meanwhile), so its boundary bits are
 * stable; words shared with other allocations are read atomically (every
 * write to bound_map is a relaxed atomic store, see bitops.h).
 */
static inline int chunk_area_bits_shared(const struct chunk *c, int bit_off, int max_bits)
{
	size_t pos = (size_t)bit_off + 1, limit = (size_t)bit_off + (size_t)max_bits + 1;

	if (limit > (size_t)c->nr_bits + 1)
		limit = (size_t)c->nr_bits + 1;
	while (pos < limit) {
		size_t w = pos / BITS_PER_LONG;
		unsigned long v = bitmap_word_shared(c->bound_map, w) & (~0UL << (pos % BITS_PER_LONG));

		if (v) {
			size_t end = w * BITS_PER_LONG + (size_t)__builtin_ctzl(v);

			return end < limit ? (int)(end - (size_t)bit_off) : 0;
		}
		pos = (w + 1) * BITS_PER_LONG;
	}
	return 0;
}

/*
 * Free the live allocation of `bits` bits starting at bit_off, as validated
 * and sized by chunk_area_bits.  Returns bits.
 */
int chunk_free_area(struct chunk *c, int bit_off, int bits);

/* Byte-level free: validates, returns freed bytes or -1 if invalid. */
int chunk_free(struct chunk *c, int off);

/* Record that pages [start, end) are now populated / depopulated. */
void chunk_mark_populated(struct chunk *c, int page_start, int page_end);
void chunk_mark_depopulated(struct chunk *c, int page_start, int page_end);

/* True if every page covering bits [bit_off, bit_off + bits) is populated. */
bool chunk_range_populated(const struct chunk *c, int bit_off, int bits);

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

/*
 * Recompute every hint and counter from the bitmaps and compare; then bring
 * the summary tree up to date (a cache: no hint changes) and check every
 * node.  Returns 0, or -1 with the first mismatch (block index, field,
 * stored and recomputed values) in msg.
 */
int chunk_verify(struct chunk *c, char *msg, size_t msglen);

/* Bring the summary tree up to date (tests, verify). */
void chunk_sync(struct chunk *c);

/* The value inner tree node i should hold given its children (for verify). */
struct run_node chunk_tree_expected(const struct chunk *c, int i);

#endif
