/*
 * test_chunk.c - the in-chunk bitmap allocator: directed cases for every
 * hint transition, aligned fits and the bump path, then a randomised model
 * test against a plain array of used bits (which knows every free run),
 * with chunk_verify after every step.  chunk_alloc's open run is
 * test_chunk_run.c's.
 *
 * Usage: test_chunk [seed [steps]]   (defaults: random seed, 200000 steps)
 */
#include <string.h>

#include "bitops.h"
#include "check.h"
#include "chunk.h"

static void verify(struct chunk *c, const char *what)
{
	char msg[256];

	REQUIRE(chunk_verify(c, msg, sizeof(msg)) == 0, "%s: %s", what, msg);
}

/* Small pages (256 B = 64 bits per block) keep multi-block cases cheap. */
static void test_hints_directed(void)
{
	struct chunk *c = chunk_create(4, 256, 0, 0);
	int a, b, d;

	REQUIRE(c, "create");
	CHECK(c->chunk_md.contig == 256 && c->nr_empty_pages == 4, "fresh chunk");

	/* One fragment at the very start. */
	a = chunk_alloc(c, 4, 4, false);
	CHECK(a == 0, "first alloc at 0, got %d", a);
	/* the front path left the chunk in bump state: it opened a run for
	 * the next 4 B allocations, whose block hints wait for its close */
	CHECK(c->run_bits == 1 && c->run_start == 1 && c->md[0].contig == 63, "an open run of 4 B");
	verify(c, "with the run open");
	chunk_sync(c);
	CHECK(c->run_bits == 0, "closed by chunk_sync");
	CHECK(c->md[0].first_free == 1 && c->md[0].left_free == 0 && c->md[0].contig == 63 &&
	      c->md[0].contig_start == 1 && c->md[0].right_free == 63, "block 0 after 4 B");
	CHECK(c->chunk_md.contig == 255 && c->chunk_md.contig_start == 1, "chunk contig 255@1");
	CHECK(c->nr_empty_pages == 3, "3 empty pages");
	verify(c, "after first alloc");

	/* An aligned allocation leaves a hole that becomes the scan hint. */
	b = chunk_alloc(c, 60, 64, false);
	CHECK(b == 64, "aligned alloc at byte 64, got %d", b);
	CHECK(c->md[0].contig == 33 && c->md[0].contig_start == 31 && c->md[0].scan == 15 &&
	      c->md[0].scan_start == 1, "hole [1,16) is the scan hint, got contig %d@%d scan %d@%d",
	      c->md[0].contig, c->md[0].contig_start, c->md[0].scan, c->md[0].scan_start);
	CHECK(c->chunk_md.contig == 225 && c->chunk_md.contig_start == 31, "chunk contig 225@31");
	verify(c, "after aligned alloc");

	/* A request larger than the scan hint starts after it. */
	CHECK(chunk_find_fit(c, 20, 1, false) == 16, "find_fit starts after the scan hole");
	CHECK(chunk_find_fit(c, 10, 1, false) == 1, "small request starts at first_free");

	/* Across two blocks: 40 bits from 31 end in block 1. */
	d = chunk_alloc(c, 160, 4, false);
	CHECK(d == 31 * 4, "cross-block alloc at bit 31, got %d", d / 4);
	CHECK(c->md[0].right_free == 0 && c->md[1].left_free == 0 && c->md[1].first_free == 7,
	      "edges after cross-block alloc");
	CHECK(c->nr_empty_pages == 2, "2 empty pages");
	verify(c, "after cross-block alloc");

	/* Across three blocks. */
	int e = chunk_alloc(c, 4 * 150, 4, false);
	CHECK(e == 71 * 4, "three-block alloc at bit 71, got %d", e / 4);
	CHECK(c->md[2].contig == 0 && c->md[2].first_free == 64, "middle block full");
	verify(c, "after three-block alloc");

	/* Exact fit of the hole [1,16). */
	int f = chunk_alloc(c, 60, 4, false);
	CHECK(f == 4, "exact fit of the 15-bit hole, got %d", f / 4);
	CHECK(c->md[0].scan == 0 && c->md[0].contig == 0 && c->md[0].first_free == 64, "block 0 full");
	verify(c, "after exact fit");

	/* Frees: merge right (f then its right neighbour b), left, both. */
	CHECK(chunk_free(c, f) == 60, "free exact-fit area");
	verify(c, "free f");
	CHECK(c->md[0].contig == 15 && c->md[0].contig_start == 1, "hole back");
	CHECK(chunk_free(c, b) == 60, "free b merges left with the hole");
	CHECK(c->md[0].contig == 30 && c->md[0].contig_start == 1, "merged [1,31)");
	verify(c, "free b");
	CHECK(chunk_free(c, a) == 4, "free a merges right");
	CHECK(c->md[0].left_free == 31 && c->md[0].first_free == 0, "left run 31");
	verify(c, "free a");
	CHECK(chunk_free(c, e) == 600, "free the three-block area");
	CHECK(c->md[2].contig == 64 && c->nr_empty_pages == 2, "middle block empty again");
	verify(c, "free e");
	CHECK(chunk_free(c, d) == 160, "free d: merge both sides, whole chunk free");
	verify(c, "free d");
	CHECK(c->chunk_md.contig == 256 && c->nr_empty_pages == 4 && chunk_is_empty(c),
	      "whole chunk free");

	/* Invalid frees are refused without changing anything. */
	CHECK(chunk_free(c, 0) == -1 && chunk_free(c, 2) == -1 && chunk_free(c, 4096) == -1,
	      "invalid frees refused");
	a = chunk_alloc(c, 64, 4, false);
	CHECK(chunk_area_bits(c, a / 4 + 1) == 0 && chunk_area_bits(c, a / 4) == 16, "interior refused");
	CHECK(chunk_free(c, a) == 64 && chunk_free(c, a) == -1, "double free refused");
	verify(c, "after invalid frees");
	chunk_destroy(c);
}

/* Full allocation, failure, free-all: the chunk returns to its initial state. */
static void test_full_roundtrip(size_t page, int pages, size_t head, size_t tail)
{
	struct chunk *c = chunk_create(pages, page, head, tail);
	struct chunk *fresh = chunk_create(pages, page, head, tail);
	int usable;

	REQUIRE(c && fresh, "create");
	chunk_mark_populated(c, 0, pages);
	chunk_mark_populated(fresh, 0, pages);
	usable = chunk_usable_bytes(c);
	int off = chunk_alloc(c, (size_t)usable, 4, false);
	CHECK(off == (int)head, "full-chunk alloc at the head's end, got %d", off);
	CHECK(c->chunk_md.contig == 0 && c->free_bytes == 0, "chunk full");
	CHECK(chunk_alloc(c, 4, 4, false) == -1, "alloc on a full chunk fails");
	verify(c, "full");
	CHECK(chunk_free(c, off) == usable, "free the whole area");
	verify(c, "freed");
	CHECK(memcmp(&c->chunk_md, &fresh->chunk_md, sizeof(c->chunk_md)) == 0, "chunk_md restored");
	CHECK(memcmp(c->md, fresh->md, sizeof(*c->md) * (size_t)pages) == 0, "block hints restored");
	chunk_sync(fresh);      /* builds its tree */
	CHECK(memcmp(c->tree + 1, fresh->tree + 1, sizeof(*c->tree) * (2 * (size_t)c->tree_leaves - 1)) == 0,
	      "tree restored");
	CHECK(c->nr_empty_pop_pages == fresh->nr_empty_pop_pages && c->free_bytes == fresh->free_bytes,
	      "counters restored");

	/* Many small allocations filling the chunk, then free all in reverse. */
	int n = usable / 16, *offs = malloc(sizeof(int) * (size_t)n);
	for (int i = 0; i < n; i++)
		offs[i] = chunk_alloc(c, 16, 4, false);
	CHECK(offs[n - 1] >= 0 && chunk_alloc(c, 16, 4, false) == -1, "filled with 16 B objects");
	verify(c, "filled");
	for (int i = n; i-- > 0;)
		CHECK(chunk_free(c, offs[i]) == 16, "free %d", i);
	verify(c, "emptied");
	CHECK(memcmp(c->md, fresh->md, sizeof(*c->md) * (size_t)pages) == 0, "hints restored again");
	free(offs);
	chunk_destroy(c);
	chunk_destroy(fresh);
}

/*
 * An aligned fit is found whatever order the holes were freed in.  The
 * hints keep the leftmost of equal runs, so a misaligned hole freed first
 * used to hide an aligned one of the same length (chunk_find_fit failed
 * although the hole was free); a shorter aligned run behind a longer
 * misaligned one was missed the same way, in a chunk and inside a block.
 */
static void test_aligned_fit(void)
{
	for (int order = 0; order < 2; order++) {
		struct chunk *c = chunk_create(1, 4096, 0, 0);
		int n = 1024, holes[2][2] = { { 4, 8 }, { 40, 44 } };   /* 4 and 0 mod 8 */

		REQUIRE(c, "create");
		chunk_mark_populated(c, 0, 1);
		for (int i = 0; i < n; i++)
			REQUIRE(chunk_alloc(c, 4, 4, false) == 4 * i, "fill %d", i);
		for (int h = 0; h < 2; h++)
			for (int k = 0; k < 2; k++)
				CHECK(chunk_free(c, holes[order ? 1 - h : h][k]) == 4, "free");
		/* (no chunk_verify here: it refreshes the run tree, which moves
		 * the chunk's hint to the block's, and would hide the miss) */
		CHECK(c->chunk_md.contig == 2, "two 8 B holes, contig %d", c->chunk_md.contig);
		CHECK(chunk_alloc(c, 8, 8, true) == 40, "freed %s: 8 B at 8 B alignment takes the aligned hole",
		      order ? "aligned hole first" : "misaligned hole first");
		verify(c, "aligned fit");
		CHECK(chunk_alloc(c, 8, 8, false) == -1, "no aligned 8 B left");
		CHECK(c->nofit_bits == 2 && c->nofit_align == 2, "the failure is remembered");
		CHECK(chunk_alloc(c, 8, 8, false) == -1 && chunk_alloc(c, 16, 16, true) == -1,
		      "covered requests fail");
		verify(c, "remembered failure");
		CHECK(chunk_alloc(c, 8, 4, false) == 4, "the misaligned hole still serves 4 B alignment");
		CHECK(chunk_free(c, 16) == 4 && chunk_free(c, 20) == 4 && c->nofit_bits == 0,
		      "a free forgets the failure");
		CHECK(chunk_alloc(c, 8, 8, false) == 16, "the new aligned hole is found");
		verify(c, "after the frees");
		chunk_destroy(c);
	}

	/* Two blocks of 64 bits.  Block 0: a run of 4 at bit 1 (no 2 bits at
	 * 4-bit alignment) and a run of 2 at bit 8 (aligned); block 1 full. */
	struct chunk *c = chunk_create(2, 256, 0, 0);

	REQUIRE(c, "create");
	REQUIRE(chunk_alloc(c, 512, 4, false) == 0, "fill");
	REQUIRE(chunk_free(c, 0) == 512, "empty");
	for (int i = 0; i < 128; i++)
		REQUIRE(chunk_alloc(c, 4, 4, false) == 4 * i, "fill %d", i);
	for (int bit = 1; bit < 5; bit++)
		CHECK(chunk_free(c, 4 * bit) == 4, "free bit %d", bit);
	CHECK(chunk_free(c, 32) == 4 && chunk_free(c, 36) == 4, "free bits 8, 9");
	verify(c, "runs 4@1 and 2@8");
	CHECK(c->md[0].contig == 4 && c->md[0].contig_start == 1, "block contig 4@1");
	CHECK(chunk_find_fit(c, 2, 4, false) == 8, "2 bits at 4-bit alignment: bit 8, got %d",
	      chunk_find_fit(c, 2, 4, false));
	CHECK(chunk_find_fit(c, 2, 4, true) == -1 && c->nofit_pop, "pop_only: nothing populated");
	chunk_mark_populated(c, 0, 1);
	CHECK(c->nofit_bits == 0, "populating forgets a pop_only failure");
	CHECK(chunk_alloc(c, 8, 16, true) == 32, "pop_only aligned fit in block 0");
	CHECK(chunk_alloc(c, 12, 8, false) == 8, "3 bits at 2-bit alignment in the run at 1");
	verify(c, "block fallback");
	chunk_destroy(c);
}

/*
 * The bump path: a chunk whose only free run is its tail takes allocations
 * of every size at its first free bit, inside a block, across block edges,
 * filling blocks and the chunk, with hidden heads and tails; every hint is
 * exact after each step (chunk_verify recomputes them all from the maps).
 * Then everything is freed and the chunk is filled again, now over the
 * boundary bits the first round left behind.
 */
static void test_bump(void)
{
	static const struct { int pages; size_t page, head, tail; } shapes[] = {
		{ 4, 256, 0, 0 }, { 8, 4096, 0, 0 }, { 3, 4096, 1000, 2000 }, { 5, 256, 4, 96 },
		{ 1, 256, 0, 0 }, { 16, 1024, 256, 0 },
	};

	for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
		struct chunk *c = chunk_create(shapes[k].pages, shapes[k].page, shapes[k].head, shapes[k].tail);
		int *offs = malloc(sizeof(int) * (size_t)c->nr_bits), n;

		REQUIRE(c && offs, "create");
		chunk_mark_populated(c, 0, c->nr_pages);
		for (int round = 0; round < 2; round++) {
			int next = c->start_bits;

			for (n = 0;; n++) {
				int left = c->end_bits - next;
				int bits = 1 + (int)rng_below(rng_below(4) ? 70 : (uint64_t)2 * c->block_bits + 1);
				int off;

				if (bits > left)
					bits = left;
				if (!bits)
					break;
				off = chunk_alloc(c, (size_t)bits * 4, 4, rng_below(2));
				REQUIRE(off == next * 4, "shape %zu round %d: %d bits at bit %d, got byte %d", k,
					round, bits, next, off);
				offs[n] = off;
				next += bits;
				verify(c, "bump step");
				REQUIRE(c->chunk_md.first_free == (next < c->end_bits ? next : c->nr_bits) &&
					c->chunk_md.contig == c->end_bits - next, "shape %zu: chunk hints after "
					"bump to %d", k, next);
			}
			CHECK(chunk_alloc(c, 4, 4, false) == -1 && c->free_bytes == 0, "shape %zu: full", k);
			while (n--)
				REQUIRE(chunk_free(c, offs[n]) > 0, "shape %zu: free", k);
			verify(c, "bump drained");
			CHECK(chunk_is_empty(c), "shape %zu round %d: empty again", k, round);
		}
		free(offs);
		chunk_destroy(c);
	}
}

/*
 * chunk_bump_many on a front run: a chunk whose longest free run starts at
 * its first free bit but is not its tail (a large area freed at the front,
 * a small one still in use after it).  The batch takes exactly
 * min(n, room / bits) areas from the front (room limited to populated
 * pages with pop_only), each an allocation of `bits`, every hint exact.
 */
static void test_front_run_batch(void)
{
	for (int pop_only = 0; pop_only < 2; pop_only++) {
		for (int bits = 1; bits <= 64; bits = bits * 3 + 1) {
			struct chunk *c = chunk_create(8, 4096, 0, 0);
			int big = 5 * 1024 + 37, room, m, want = 1 << 20;

			REQUIRE(c, "create");
			chunk_mark_populated(c, 0, pop_only ? 3 : 8);
			REQUIRE(chunk_alloc(c, (size_t)big * 4, 4, false) == 0 &&
				chunk_alloc(c, 8, 4, false) == big * 4, "front area and its neighbour");
			REQUIRE(chunk_free(c, 0) == big * 4, "free the front area");
			verify(c, "front run");
			REQUIRE(c->chunk_md.first_free == 0 && c->chunk_md.contig_start == 0 &&
				c->chunk_md.contig == big, "the front run is the longest");
			room = pop_only ? 3 * 1024 : big;
			m = chunk_bump_many(c, bits, 1, want, pop_only);
			CHECK(m == room / bits, "bits %d%s: %d areas from the front run, want %d", bits,
			      pop_only ? " pop_only" : "", m, room / bits);
			for (int k = 0; k < m; k++)
				REQUIRE(chunk_area_bits(c, k * bits) == bits, "area %d of the batch", k);
			verify(c, "front run batch");
			CHECK(c->chunk_md.first_free == (m * bits < big ? m * bits : big + 2),
			      "bits %d: first free bit %d after the batch", bits, c->chunk_md.first_free);
			chunk_destroy(c);
		}
	}
}

/*
 * chunk_take_run with power-of-two sizes, below, at and above the word,
 * from starts at every phase modulo the size: each area is its own (its
 * boundaries set a word at a time), every hint exact.
 */
static void test_take_run_pow2(void)
{
	for (int bits = 1; bits <= 256; bits *= 2) {
		for (int phase = 1; phase < 70; phase += 23) {
			struct chunk *c = chunk_create(8, 4096, 0, 0);
			int n = 5, m;

			REQUIRE(c, "create");
			chunk_mark_populated(c, 0, 8);
			REQUIRE(chunk_alloc(c, (size_t)phase * 4, 4, false) == 0, "the area before");
			m = chunk_take_run(c, phase, bits, n, false);
			CHECK(m == n, "bits %d phase %d: %d areas, want %d", bits, phase, m, n);
			for (int k = 0; k < m; k++)
				CHECK(chunk_area_bits(c, phase + k * bits) == bits, "bits %d phase %d: area %d",
				      bits, phase, k);
			verify(c, "run of powers of two");
			chunk_destroy(c);
		}
	}
}

/* ---- the randomised model test ------------------------------------------ */

struct live { int off, bits; };

static bool *model;            /* model[bit]: used */
static struct live *lives;
static int nr_lives;

/* Longest free run in the model, restricted to populated pages if asked. */
static int model_longest(struct chunk *c, bool pop_only)
{
	int best = 0, cur = 0;

	for (int i = 0; i < c->nr_bits; i++) {
		bool usable = !model[i] &&
			      (!pop_only || bit_test(c->populated, (size_t)(i >> c->block_shift)));

		cur = usable ? cur + 1 : 0;
		if (cur > best)
			best = cur;
	}
	return best;
}

/* Does some free run of the model (on populated pages if pop_only) hold
 * `bits` bits at alignment align_bits? */
static bool model_fits(struct chunk *c, int bits, int align_bits, bool pop_only)
{
	for (int s = 0, e; s < c->nr_bits; s = e + 1) {
		int at;

		while (s < c->nr_bits &&
		       (model[s] || (pop_only && !bit_test(c->populated, (size_t)(s >> c->block_shift)))))
			s++;
		for (e = s; e < c->nr_bits && !model[e] &&
			    (!pop_only || bit_test(c->populated, (size_t)(e >> c->block_shift)));)
			e++;
		at = (s + align_bits - 1) & ~(align_bits - 1);
		if (s < e && at + bits <= e)
			return true;
	}
	return false;
}

/* Most chunks are verified after every step; some every few steps, so the
 * lazily refreshed tree accumulates stale leaves between checks (chunk_md is
 * compared with the model after every step either way). */
static unsigned long verify_every = 1;

/*
 * A refill batch: after an allocation starting at `prev`, more of the same
 * size where chunk_find_next_fit resumes the walk.  Each answer it gives
 * must be chunk_find_fit's own (the walk is only shortened, not changed)
 * and a valid free aligned area.
 */
static void model_batch(struct chunk *c, unsigned long step, int prev, int bits, int align_bits,
			bool pop_only)
{
	for (int k = 0; k < 8; k++) {
		int next = chunk_find_next_fit(c, prev, bits, align_bits, pop_only);

		if (next < 0)
			return;
		REQUIRE(next == chunk_find_fit(c, bits, align_bits, pop_only),
			"step %lu: next fit %d, find_fit %d (%d bits align %d)", step, next,
			chunk_find_fit(c, bits, align_bits, pop_only), bits, align_bits);
		int off = chunk_alloc_area(c, bits, align_bits, next);
		bool ok = off >= c->start_bits && off + bits <= c->end_bits && off % align_bits == 0 &&
			  (!pop_only || chunk_range_populated(c, off, bits));

		for (int i = off; ok && i < off + bits; i++)
			ok = !model[i];
		REQUIRE(ok, "step %lu: batch alloc %d bits align %d got bad area %d", step, bits,
			align_bits, off);
		for (int i = off; i < off + bits; i++)
			model[i] = true;
		lives[nr_lives++] = (struct live){ off, bits };
		prev = off;
	}
}

/*
 * chunk_bump_many: it must hand out exactly min(n, room / bits) areas when
 * the model's free run at its first free bit is its only one (its tail) or
 * the one the chunk's hint names as its longest (verify checks that hint),
 * with room that run, or its populated start with pop_only, and the
 * request aligned there; none otherwise; every area free in the model,
 * aligned, back to back.
 */
static unsigned long nr_bumped, nr_front_runs, nr_spans;     /* coverage, printed */

static void model_bump_many(struct chunk *c, unsigned long step, int bits, int align_bits,
			    bool pop_only)
{
	int n = 1 + (int)rng_below(64), ff = -1, room = 0, expect = 0, m, first;
	bool front_run = false;     /* the run at ff is not the tail */

	for (int i = c->start_bits; i < c->end_bits && ff < 0; i++)
		if (!model[i])
			ff = i;
	if (ff >= 0) {
		int run = 0;

		while (ff + run < c->end_bits && !model[ff + run])
			run++;
		front_run = ff + run < c->end_bits;
		room = !front_run || c->chunk_md.contig_start == ff ? run : 0;
		REQUIRE(!room || run == c->chunk_md.contig, "step %lu: the run at first free bit %d "
			"is %d bits, the hint's longest %d", step, ff, run, c->chunk_md.contig);
		for (int i = ff; pop_only && i < ff + room; i++)
			if (!bit_test(c->populated, (size_t)(i >> c->block_shift)))
				room = i - ff;
		if (room >= bits && ff % align_bits == 0 && bits % align_bits == 0)
			expect = n < room / bits ? n : room / bits;
	}
	nr_front_runs += expect && front_run;
	first = c->chunk_md.first_free;
	m = chunk_bump_many(c, bits, align_bits, n, pop_only);
	REQUIRE(m == expect, "step %lu: bump_many(%d bits align %d, %d%s) gave %d, model %d", step,
		bits, align_bits, n, pop_only ? " pop_only" : "", m, expect);
	nr_bumped += m > 1;
	for (int k = 0; k < m; k++) {
		int off = first + k * bits;

		for (int i = off; i < off + bits; i++) {
			REQUIRE(!model[i], "step %lu: bump_many took used bit %d", step, i);
			model[i] = true;
		}
		lives[nr_lives++] = (struct live){ off, bits };
	}
}

/*
 * chunk_take_run after an area placed at off - bits: it must hand out
 * exactly min(n, room / bits) areas back to back from off, room being the
 * model's free run there (cut at the first unpopulated page with
 * pop_only); every hint exact (the step's verify).
 */
static unsigned long nr_runs;     /* coverage, printed */

static void model_take_run(struct chunk *c, unsigned long step, int off, int bits, bool pop_only)
{
	int n = 1 + (int)rng_below(64), room = 0, expect, m;

	while (off + room < c->end_bits && !model[off + room] &&
	       (!pop_only || bit_test(c->populated, (size_t)((off + room) >> c->block_shift))))
		room++;
	expect = n < room / bits ? n : room / bits;
	m = chunk_take_run(c, off, bits, n, pop_only);
	REQUIRE(m == expect, "step %lu: take_run(at %d, %d bits, %d%s) gave %d, model %d", step, off,
		bits, n, pop_only ? " pop_only" : "", m, expect);
	nr_runs += m > 1;
	for (int k = 0; k < m; k++) {
		for (int i = off + k * bits; i < off + (k + 1) * bits; i++)
			model[i] = true;
		lives[nr_lives++] = (struct live){ off + k * bits, bits };
	}
}

/* Free the live area k and the live areas back to back after it (up to 8)
 * as one span, as a drained cache does. */
static void model_free_span(struct chunk *c, unsigned long step, int k)
{
	int off = lives[k].off, end = off + lives[k].bits, n = 1;

	lives[k] = lives[--nr_lives];
	for (int found = 1; found && n < 8;) {
		found = 0;
		for (int j = 0; j < nr_lives; j++) {
			if (lives[j].off == end) {
				end += lives[j].bits;
				lives[j] = lives[--nr_lives];
				n++;
				found = 1;
				break;
			}
		}
	}
	nr_spans += n > 1;
	REQUIRE(chunk_free_span(c, off, end - off, n) == end - off, "step %lu: span free size", step);
	REQUIRE(chunk_area_bits(c, off) == 0, "step %lu: freed span still valid", step);
	REQUIRE(c->nr_alloc == nr_lives, "step %lu: %d allocations after a span of %d, model %d", step,
		c->nr_alloc, n, nr_lives);
	for (int i = off; i < end; i++)
		model[i] = false;
}

static void model_step(struct chunk *c, unsigned long step)
{
	int r = (int)rng_below(100);

	if (r < 55 || nr_lives == 0) {
		/* Sizes mostly small, sometimes up to the whole unit. */
		int max_bits = c->end_bits - c->start_bits;
		int bits = rng_below(10) ? 1 + (int)rng_below(16) :
					   1 + (int)rng_below((uint64_t)max_bits);
		int align_bits = 1 << rng_below((uint64_t)c->block_shift + 1);
		bool pop_only = rng_below(4) == 0;
		int start = chunk_find_fit(c, bits, align_bits, pop_only);
		int off = start < 0 ? -1 : chunk_alloc_area(c, bits, align_bits, start);

		if (off >= 0) {
			bool ok = off >= c->start_bits && off + bits <= c->end_bits && off % align_bits == 0;
			for (int i = off; ok && i < off + bits; i++)
				ok = !model[i];
			REQUIRE(ok, "step %lu: alloc %d bits align %d got bad area %d", step, bits,
				align_bits, off);
			if (pop_only)
				REQUIRE(chunk_range_populated(c, off, bits),
					"step %lu: atomic alloc on unpopulated page", step);
			for (int i = off; i < off + bits; i++)
				model[i] = true;
			lives[nr_lives++] = (struct live){ off, bits };
			if (rng_below(4) == 0)
				model_batch(c, step, off, bits, align_bits, pop_only);
			else if (rng_below(3) == 0)
				model_bump_many(c, step, bits, align_bits, pop_only);
			else if (rng_below(2) == 0 && bits % align_bits == 0)
				model_take_run(c, step, off + bits, bits, pop_only);
		} else {
			/* The documented guarantee (chunk.h): failure only when no
			 * free run holds `bits` bits at alignment align_bits. */
			REQUIRE(start < 0, "step %lu: find_fit gave %d but alloc_area failed", step, start);
			REQUIRE(!model_fits(c, bits, align_bits, pop_only), "step %lu: alloc %d bits align "
				"%d%s failed but an aligned fit exists", step, bits, align_bits,
				pop_only ? " pop_only" : "");
		}
	} else if (r < 65) {
		model_free_span(c, step, (int)rng_below((uint64_t)nr_lives));
	} else if (r < 95) {
		int k = (int)rng_below((uint64_t)nr_lives);
		struct live l = lives[k];

		/* Interior and neighbour offsets are never valid starts. */
		if (l.bits > 1)
			REQUIRE(chunk_area_bits(c, l.off + 1 + (int)rng_below((uint64_t)l.bits - 1)) == 0,
				"step %lu: interior accepted", step);
		REQUIRE(chunk_area_bits(c, l.off) == l.bits, "step %lu: size of live area", step);
		REQUIRE(chunk_free_area(c, l.off, l.bits) == l.bits, "step %lu: free size", step);
		REQUIRE(chunk_area_bits(c, l.off) == 0, "step %lu: freed area still valid", step);
		for (int i = l.off; i < l.off + l.bits; i++)
			model[i] = false;
		lives[k] = lives[--nr_lives];
	} else {
		int p0 = (int)rng_below((uint64_t)c->nr_pages);
		int p1 = p0 + 1 + (int)rng_below((uint64_t)(c->nr_pages - p0));
		if (rng_below(2))
			chunk_mark_populated(c, p0, p1);
		else
			chunk_mark_depopulated(c, p0, p1);
	}
	char msg[256];
	int longest = model_longest(c, false);
	REQUIRE(c->chunk_md.contig == longest, "step %lu: chunk contig %d, model %d", step,
		c->chunk_md.contig, longest);
	if (step % verify_every == 0)
		REQUIRE(chunk_verify(c, msg, sizeof(msg)) == 0, "step %lu: %s", step, msg);
	int used = 0;
	for (int i = c->start_bits; i < c->end_bits; i++)
		used += model[i];
	REQUIRE(c->free_bytes == (c->end_bits - c->start_bits - used) * 4, "step %lu: free bytes", step);
}

static void test_model(unsigned long steps)
{
	static const size_t pages[] = { 256, 512, 1024, 4096 };
	unsigned long done = 0;

	while (done < steps) {
		size_t page = pages[rng_below(4)];
		int nr_pages = 1 + (int)rng_below(page == 4096 ? 16 : 64);
		int bits = nr_pages * (int)(page / 4);
		size_t head = rng_below(3) ? 0 : 4 * rng_below((uint64_t)bits / 4);
		size_t tail = rng_below(3) ? 0 : 4 * rng_below((uint64_t)bits / 4);
		struct chunk *c = chunk_create(nr_pages, page, head, tail);
		unsigned long n = 2000 + rng_below(8000);

		REQUIRE(c, "create %d pages of %zu", nr_pages, page);
		model = calloc((size_t)bits, sizeof(bool));
		lives = malloc(sizeof(*lives) * (size_t)bits);
		for (int i = 0; i < c->start_bits; i++)
			model[i] = true;
		for (int i = c->end_bits; i < bits; i++)
			model[i] = true;
		nr_lives = 0;
		verify_every = rng_below(4) ? 1 : 2 + rng_below(15);
		if (rng_below(2))
			chunk_mark_populated(c, 0, nr_pages);
		verify(c, "fresh");
		/* A fresh chunk is in bump state: refill-like batches first. */
		for (int j = (int)rng_below(12); j > 0; j--) {
			model_bump_many(c, done, 1 + (int)rng_below(16), 1 << rng_below(4), !rng_below(4));
			verify(c, "bump_many");
		}
		for (unsigned long i = 0; i < n && done < steps; i++, done++)
			model_step(c, done);
		/* Free everything: back to an empty chunk. */
		while (nr_lives)
			{ nr_lives--; chunk_free_area(c, lives[nr_lives].off, lives[nr_lives].bits); }
		verify(c, "drained");
		CHECK(chunk_is_empty(c) && c->chunk_md.contig == c->end_bits - c->start_bits,
		      "drained chunk is one free run");
		free(model);
		free(lives);
		chunk_destroy(c);
	}
	printf("model test: %lu steps, chunk_verify after each (every 2-16 on a quarter of the chunks); "
	       "%lu multi-area bumps (%lu from a front run), %lu multi-area runs after a hole, "
	       "%lu multi-area span frees\n", done, nr_bumped, nr_front_runs, nr_runs, nr_spans);
}

int main(int argc, char **argv)
{
	unsigned long steps = argc > 2 ? strtoul(argv[2], NULL, 0) : 200000;

	test_seed(argc, argv);
	test_hints_directed();
	test_full_roundtrip(256, 4, 0, 0);
	test_full_roundtrip(4096, 8, 0, 0);
	test_full_roundtrip(4096, 3, 1000, 2000);
	test_full_roundtrip(256, 1, 0, 0);
	test_aligned_fit();
	test_bump();
	test_front_run_batch();
	test_take_run_pow2();
	test_model(steps);
	TEST_DONE();
}
