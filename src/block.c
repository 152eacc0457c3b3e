/*
 * block.c - maintenance of one block's hints (see block.h for the
 * invariants).  The free path reports each merged run once
 * (block_note_run); the allocation path adjusts hints in O(1) and rescans
 * the block only when the longest run was cut (block_note_alloc).
 */
#include <stdio.h>

#include "bitops.h"
#include "block.h"
#include "util.h"

void block_init_empty(struct block_md *md, int nr_bits)
{
	*md = (struct block_md){
		.contig = nr_bits, .contig_start = 0, .scan = 0, .scan_start = 0,
		.left_free = nr_bits, .right_free = nr_bits, .first_free = 0,
		.free = nr_bits, .nr_bits = nr_bits,
	};
}

void block_init_full(struct block_md *md, int nr_bits)
{
	*md = (struct block_md){ .first_free = nr_bits, .nr_bits = nr_bits };
}

static inline int scan_end(const struct block_md *md)
{
	return md->scan ? md->scan_start + md->scan : 0;
}

/*
 * A run [start, end) appeared or grew.  The contig hint takes it if it is
 * longer.  The scan hint must keep its promise (no run starting before
 * scan_start is longer than scan, and it lies before the contig run):
 *  - a new contig run after the old one, longer or as long, makes the old
 *    one the scan hint, since the old contig was the longest of everything
 *    before it;
 *  - a new contig run before the old scan run's end voids the scan hint;
 *  - a run before the contig run becomes the scan hint when it is provably
 *    the longest of all runs up to its end: it ties the contig length, or
 *    it reaches back before the current scan end (so it precedes or
 *    swallowed the scan run) while being at least as long, or it is the
 *    first run of the block.
 */
void block_note_run(struct block_md *md, int start, int end)
{
	int len = end - start;

	if (start < md->first_free)
		md->first_free = start;
	if (start == 0)
		md->left_free = len;
	if (end == md->nr_bits)
		md->right_free = len;

	if (len > md->contig) {
		if (md->contig && start > md->contig_start) {
			md->scan = md->contig;
			md->scan_start = md->contig_start;
		} else if (scan_end(md) > start) {
			md->scan = 0;
		}
		md->contig = len;
		md->contig_start = start;
	} else if (len == md->contig && start > md->contig_start) {
		/* A tie after the contig run: move the contig hint forward and
		 * let the old one become the scan hint (it is as long as any run
		 * before it), so later rescans start further on. */
		md->scan = md->contig;
		md->scan_start = md->contig_start;
		md->contig_start = start;
	} else if (start < md->contig_start) {
		if (len == md->contig ||
		    (len >= md->scan && (start < scan_end(md) || start == md->first_free))) {
			md->scan = len;
			md->scan_start = start;
		}
	}
}

/* Recompute the contig (and scan) hints after the contig run was cut. */
static void block_refresh(struct block_md *md, const unsigned long *map)
{
	size_t from, s, e;

	if (md->scan) {
		/* Nothing before the scan run's end is longer than it. */
		md->contig = md->scan;
		md->contig_start = md->scan_start;
		from = (size_t)scan_end(md);
		md->scan = 0;
	} else {
		md->contig = 0;
		md->contig_start = 0;
		from = (size_t)md->first_free;
	}
	for (s = from; bitmap_next_clear_run(map, (size_t)md->nr_bits, &s, &e); s = e)
		block_note_run(md, (int)s, (int)e);
}

static inline bool overlaps(int a, int alen, int b, int bend)
{
	return alen && a < bend && b < a + alen;
}

void block_note_alloc(struct block_md *md, const unsigned long *map, int start, int end)
{
	int nb = md->nr_bits;

	md->free -= end - start;
	if (md->free + (end - start) == md->contig) {
		/* The block's only free run was cut: what is free is its two
		 * pieces [cs, start) and [end, ce); no scan needed. */
		int cs = md->contig_start, ce = cs + md->contig;
		int lo = start - cs, hi = ce - end;

		md->first_free = lo ? cs : hi ? end : nb;
		if (cs == 0)
			md->left_free = lo;
		if (ce == nb)
			md->right_free = hi;
		md->contig = lo >= hi ? lo : hi;
		md->contig_start = !md->contig ? 0 : lo >= hi ? cs : end;
		/* a shorter left piece is the only run before the contig run */
		md->scan = lo < hi ? lo : 0;
		md->scan_start = lo < hi ? cs : 0;
		return;
	}

	if (start == md->first_free)
		md->first_free = (int)bitmap_next_clear(map, (size_t)nb, (size_t)end);
	if (start < md->left_free)
		md->left_free = start;
	if (end > nb - md->right_free)
		md->right_free = nb - end;
	if (overlaps(md->scan_start, md->scan, start, end))
		md->scan = 0;
	if (overlaps(md->contig_start, md->contig, start, end))
		block_refresh(md, map);
}

void block_rebuild(struct block_md *md, const unsigned long *map)
{
	size_t s, e;

	block_init_full(md, md->nr_bits);
	for (s = 0; bitmap_next_clear_run(map, (size_t)md->nr_bits, &s, &e); s = e) {
		block_note_run(md, (int)s, (int)e);
		md->free += (int)(e - s);
	}
}

/* Is [start, start + len) a maximal run of clear bits in a block of nb bits? */
static bool is_maximal_run(const unsigned long *map, int nb, int start, int len)
{
	if (start < 0 || len <= 0 || start + len > nb)
		return false;
	if (!bitmap_range_clear(map, (size_t)start, (size_t)(start + len)))
		return false;
	if (start > 0 && !bit_test(map, (size_t)start - 1))
		return false;
	return start + len == nb || bit_test(map, (size_t)(start + len));
}

#define FAIL PCPU_VERIFY_FAIL

int block_check(const struct block_md *md, const unsigned long *map, char *msg, size_t msglen)
{
	size_t nb = (size_t)md->nr_bits, s, e;
	int first = (int)bitmap_next_clear(map, nb, 0);
	int left = 0, right = 0, longest = 0, longest_before_scan = 0, free = 0;

	for (s = 0; bitmap_next_clear_run(map, nb, &s, &e); s = e) {
		int len = (int)(e - s);

		free += len;
		if (s == 0)
			left = len;
		if (e == nb)
			right = len;
		if (len > longest)
			longest = len;
		if (md->scan && (int)s < md->scan_start && len > longest_before_scan)
			longest_before_scan = len;
	}
	if (md->first_free != first)
		FAIL("first_free %d != %d", md->first_free, first);
	if (md->left_free != left)
		FAIL("left_free %d != %d", md->left_free, left);
	if (md->right_free != right)
		FAIL("right_free %d != %d", md->right_free, right);
	if (md->contig != longest)
		FAIL("contig %d != %d", md->contig, longest);
	if (md->free != free)
		FAIL("free %d != %d", md->free, free);
	if (longest && !is_maximal_run(map, md->nr_bits, md->contig_start, md->contig))
		FAIL("contig run at %d len %d is not a maximal free run", md->contig_start, md->contig);
	if (md->scan < 0)
		FAIL("scan %d < 0", md->scan);
	if (md->scan) {
		if (!is_maximal_run(map, md->nr_bits, md->scan_start, md->scan))
			FAIL("scan run at %d len %d is not a maximal free run", md->scan_start, md->scan);
		if (md->scan_start + md->scan >= md->contig_start)
			FAIL("scan run [%d,+%d) does not end before contig start %d",
			     md->scan_start, md->scan, md->contig_start);
		if (longest_before_scan > md->scan)
			FAIL("a run of %d starts before scan_start %d but scan is %d",
			     longest_before_scan, md->scan_start, md->scan);
	}
	return 0;
}
