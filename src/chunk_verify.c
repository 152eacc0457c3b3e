/*
 * chunk_verify.c - recompute everything a chunk believes from its bitmaps.
 *
 * The checker is the executable statement of the chunk's invariants: block
 * hints (block.h), the run tree and chunk hints, the counters, and the
 * boundary map's encoding of live allocations (chunk_map.h).  Tests call it
 * after every step of random sequences; it never changes the chunk.
 */
#include <stdio.h>
#include <string.h>

#include "bitops.h"
#include "chunk.h"
#include "chunk_hints.h"
#include "util.h"

#define FAIL PCPU_VERIFY_FAIL

static int check_blocks(const struct chunk *c, char *msg, size_t msglen)
{
	char sub[160];

	for (int b = 0; b < c->nr_pages; b++) {
		const unsigned long *map = c->alloc_map + ((size_t)b << c->block_shift) / BITS_PER_LONG;

		if (c->md[b].nr_bits != c->block_bits)
			FAIL("block %d: nr_bits %d != %d", b, c->md[b].nr_bits, c->block_bits);
		if (block_check(&c->md[b], map, sub, sizeof(sub)))
			FAIL("block %d: %s", b, sub);
	}
	return 0;
}

/* Longest run of clear bits in the whole map, and where the first one starts. */
static int longest_run(const struct chunk *c, int *first_longest)
{
	size_t s, e;
	int best = 0;

	*first_longest = 0;
	for (s = 0; bitmap_next_clear_run(c->alloc_map, (size_t)c->nr_bits, &s, &e); s = e) {
		if ((int)(e - s) > best) {
			best = (int)(e - s);
			*first_longest = (int)s;
		}
	}
	return best;
}

static int check_chunk_hints(const struct chunk *c, char *msg, size_t msglen)
{
	int first_longest, longest = longest_run(c, &first_longest);
	int first = (int)bitmap_next_clear(c->alloc_map, (size_t)c->nr_bits, 0);
	int left = first ? 0 : (int)bitmap_next_set(c->alloc_map, (size_t)c->nr_bits, 0);
	int last_used = (int)bitmap_last_set_before(c->alloc_map, (size_t)c->nr_bits);
	int right = last_used == c->nr_bits ? c->nr_bits : c->nr_bits - 1 - last_used;

	if (c->chunk_md.contig != longest)
		FAIL("chunk: contig %d != %d", c->chunk_md.contig, longest);
	if (longest) {
		int cs = c->chunk_md.contig_start, ce = cs + longest;

		if (cs < 0 || ce > c->nr_bits ||
		    !bitmap_range_clear(c->alloc_map, (size_t)cs, (size_t)ce) ||
		    (cs > 0 && !bit_test(c->alloc_map, (size_t)cs - 1)) ||
		    (ce < c->nr_bits && !bit_test(c->alloc_map, (size_t)ce)))
			FAIL("chunk: contig run at %d len %d is not a maximal free run (first longest at %d)",
			     cs, longest, first_longest);
	}
	if (c->chunk_md.first_free != first)
		FAIL("chunk: first_free %d != %d", c->chunk_md.first_free, first);
	if (c->chunk_md.left_free != left)
		FAIL("chunk: left_free %d != %d", c->chunk_md.left_free, left);
	if (c->chunk_md.right_free != right)
		FAIL("chunk: right_free %d != %d", c->chunk_md.right_free, right);
	return 0;
}

/* Every tree leaf mirrors its block; every inner node is its children's sum. */
static int check_tree(const struct chunk *c, char *msg, size_t msglen)
{
	for (int b = 0; b < c->nr_pages; b++) {
		const struct run_node *n = &c->tree[c->tree_leaves + b];
		const struct block_md *md = &c->md[b];

		if (n->pre != md->left_free || n->suf != md->right_free || n->best != md->contig ||
		    n->best_start != (b << c->block_shift) + md->contig_start)
			FAIL("tree leaf %d: {%d,%d,%d@%d} != block {%d,%d,%d@%d}", b, n->pre, n->suf,
			     n->best, n->best_start, md->left_free, md->right_free, md->contig,
			     (b << c->block_shift) + md->contig_start);
	}
	for (int i = c->tree_leaves - 1; i >= 1; i--) {
		struct run_node want = chunk_tree_expected(c, i), *n = &c->tree[i];

		if (memcmp(&want, n, sizeof(want)))
			FAIL("tree node %d: {%d,%d,%d@%d} != {%d,%d,%d@%d} from its children", i, n->pre,
			     n->suf, n->best, n->best_start, want.pre, want.suf, want.best, want.best_start);
	}
	return 0;
}

static int check_counters(const struct chunk *c, char *msg, size_t msglen)
{
	int used = (int)bitmap_weight_range(c->alloc_map, (size_t)c->start_bits, (size_t)c->end_bits);
	int free_bytes = (c->end_bits - c->start_bits - used) * PCPU_MIN_ALLOC_BYTES;
	int empty = 0, empty_pop = 0;
	int populated = (int)bitmap_weight_range(c->populated, 0, (size_t)c->nr_pages);

	if (!bitmap_range_set(c->alloc_map, 0, (size_t)c->start_bits))
		FAIL("hidden head [0,%d) not fully in use", c->start_bits);
	if (!bitmap_range_set(c->alloc_map, (size_t)c->end_bits, (size_t)c->nr_bits))
		FAIL("hidden tail [%d,%d) not fully in use", c->end_bits, c->nr_bits);
	if (c->free_bytes != free_bytes)
		FAIL("free_bytes %d != %d", c->free_bytes, free_bytes);
	for (int b = 0; b < c->nr_pages; b++) {
		size_t s = (size_t)b << c->block_shift;

		if (bitmap_range_clear(c->alloc_map, s, s + (size_t)c->block_bits)) {
			empty++;
			empty_pop += bit_test(c->populated, (size_t)b);
		}
	}
	if (c->nr_empty_pages != empty)
		FAIL("nr_empty_pages %d != %d", c->nr_empty_pages, empty);
	if (c->nr_empty_pop_pages != empty_pop)
		FAIL("nr_empty_pop_pages %d != %d", c->nr_empty_pop_pages, empty_pop);
	if (c->nr_populated != populated)
		FAIL("nr_populated %d != %d", c->nr_populated, populated);
	return 0;
}

/*
 * Inside every used run of the managed region, boundary bits must cut it
 * into allocations: a bit at the run's start, only allocation starts set
 * inside, and a bit at the run's end.  Counts the allocations.
 */
static int check_bounds(const struct chunk *c, char *msg, size_t msglen)
{
	size_t s, e;
	int nr_alloc = 0;

	for (s = (size_t)c->start_bits;
	     bitmap_next_set_run(c->alloc_map, (size_t)c->end_bits, &s, &e); s = e) {
		if (!bit_test(c->bound_map, s))
			FAIL("bound: used run at bit %zu has no start boundary", s);
		if (!bit_test(c->bound_map, e))
			FAIL("bound: used run [%zu,%zu) has no end boundary", s, e);
		nr_alloc += (int)bitmap_weight_range(c->bound_map, s, e);
	}
	if (c->nr_alloc != nr_alloc)
		FAIL("nr_alloc %d != %d allocations found in the boundary map", c->nr_alloc, nr_alloc);
	/* Only the written words: those up to the one holding bit bound_clean. */
	size_t written = ((size_t)c->bound_clean / BITS_PER_LONG + 1) * BITS_PER_LONG;

	if (written > (size_t)c->nr_bits + 1)
		written = (size_t)c->nr_bits + 1;
	s = bitmap_next_set(c->bound_map, written, (size_t)c->bound_clean + 1);
	if (c->bound_clean < 0 || c->bound_clean > c->nr_bits || s < written)
		FAIL("bound: bit %zu set after bound_clean %d", s, c->bound_clean);
	if (c->bound_clean && !bit_test(c->bound_map, (size_t)c->bound_clean))
		FAIL("bound: bit bound_clean %d is clear", c->bound_clean);
	return 0;
}

/* Does a piece of the free run [s, e) on allowed pages (populated ones only
 * when pop) hold `bits` bits at alignment a?  Returns where, or -1. */
static long run_holds(const struct chunk *c, size_t s, size_t e, size_t bits, size_t a, bool pop)
{
	size_t sh = (size_t)c->block_shift;

	while (s < e) {
		size_t pe = e, at;

		if (pop) {
			while (s < e && !bit_test(c->populated, s >> sh))
				s = ((s >> sh) + 1) << sh;
			for (pe = s; pe < e && bit_test(c->populated, pe >> sh);)
				pe = ((pe >> sh) + 1) << sh;
			if (pe > e)
				pe = e;
		}
		at = (s + a - 1) & ~(a - 1);
		if (s < e && at + bits <= pe)
			return (long)at;
		s = pe;
	}
	return -1;
}

/* The remembered failure holds: no free run (on populated pages when
 * nofit_pop) has nofit_bits bits at alignment nofit_align. */
static int check_nofit(const struct chunk *c, char *msg, size_t msglen)
{
	size_t s, e, a = (size_t)c->nofit_align;

	if (!c->nofit_bits)
		return 0;
	if (c->nofit_bits < 0 || a < 1 || (a & (a - 1)))
		FAIL("nofit: %d bits at alignment %d is not a request", c->nofit_bits, c->nofit_align);
	for (s = 0; bitmap_next_clear_run(c->alloc_map, (size_t)c->nr_bits, &s, &e); s = e) {
		long at = run_holds(c, s, e, (size_t)c->nofit_bits, a, c->nofit_pop);

		if (at >= 0)
			FAIL("nofit: %d bits at alignment %d%s fit at bit %ld", c->nofit_bits,
			     c->nofit_align, c->nofit_pop ? " on populated pages" : "", at);
	}
	return 0;
}

/* chunk_md of a chunk whose only free run is its tail from bit s. */
static struct block_md tail_hints(const struct chunk *c, int s)
{
	struct block_md md = c->chunk_md;
	int len = c->end_bits - s;

	md.contig = len;
	md.contig_start = len ? s : 0;
	md.first_free = len ? s : c->nr_bits;
	md.left_free = s == 0 ? len : 0;
	md.right_free = c->end_bits == c->nr_bits ? len : 0;
	return md;
}

/*
 * The open run (chunk_map.h): whole areas inside the managed region, room
 * for one more, and chunk_md the tail from the run's end.
 */
static int check_run(const struct chunk *c, char *msg, size_t msglen)
{
	int bits = c->run_bits, s = c->run_start, ff = c->chunk_md.first_free;
	struct block_md want = tail_hints(c, ff);
	const struct block_md *cm = &c->chunk_md;

	if (bits < 0 || s < c->start_bits || ff < s || ff > c->end_bits || (ff - s) % bits)
		FAIL("run: %d bits from %d to first_free %d is not whole areas in [%d,%d)", bits, s, ff,
		     c->start_bits, c->end_bits);
	if (cm->contig < bits)
		FAIL("run: no room for another %d bits (contig %d)", bits, cm->contig);
	if (cm->contig != want.contig || cm->contig_start != want.contig_start ||
	    cm->left_free != want.left_free || cm->right_free != want.right_free)
		FAIL("run: chunk contig %d@%d left %d right %d, not the tail from %d", cm->contig,
		     cm->contig_start, cm->left_free, cm->right_free, ff);
	return 0;
}

/*
 * An open run: check it, then everything else against the chunk as it was
 * at run_start (what its maps and block hints still describe), put in
 * place for the check and taken back after it.
 */
static int verify_open_run(struct chunk *c, char *msg, size_t msglen)
{
	struct block_md cm = c->chunk_md;
	int bits = c->run_bits, span = cm.first_free - c->run_start, ret;

	if (check_run(c, msg, msglen))
		return -1;
	c->chunk_md = tail_hints(c, c->run_start);
	c->free_bytes += span * PCPU_MIN_ALLOC_BYTES;
	c->nr_alloc -= span / bits;
	c->run_bits = 0;
	ret = chunk_verify(c, msg, msglen);
	c->run_bits = bits;
	c->nr_alloc += span / bits;
	c->free_bytes -= span * PCPU_MIN_ALLOC_BYTES;
	c->chunk_md = cm;
	return ret;
}

int chunk_verify(struct chunk *c, char *msg, size_t msglen)
{
	if (c->run_bits)
		return verify_open_run(c, msg, msglen);
	if (check_blocks(c, msg, msglen) || check_chunk_hints(c, msg, msglen) ||
	    check_counters(c, msg, msglen) || check_bounds(c, msg, msglen) ||
	    check_nofit(c, msg, msglen))
		return -1;
	/* The tree is a cache of the block hints: refresh it, then check that
	 * it agrees with them and with the (already checked) chunk hints. */
	struct block_md before = c->chunk_md;

	chunk_tree_flush(c);
	if (before.contig != c->chunk_md.contig || before.left_free != c->chunk_md.left_free ||
	    before.right_free != c->chunk_md.right_free)
		FAIL("chunk: contig/left/right %d/%d/%d, the tree says %d/%d/%d", before.contig,
		     before.left_free, before.right_free, c->chunk_md.contig, c->chunk_md.left_free,
		     c->chunk_md.right_free);
	if (check_tree(c, msg, msglen))
		return -1;
	if (msglen)
		msg[0] = '\0';
	return 0;
}
