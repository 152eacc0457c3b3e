/*
 * test_chunk_run.c - chunk_alloc's open run (chunk_map.h): random shapes,
 * sizes, alignments and populated ends, a run filled area by area with
 * chunk_verify after each, then closed in one of its ways.
 *
 * Usage: test_chunk_run [seed]
 */
#include <stdlib.h>

#include "check.h"
#include "chunk.h"

static void verify(struct chunk *c, const char *what)
{
	char msg[256];

	REQUIRE(chunk_verify(c, msg, sizeof(msg)) == 0, "%s: %s", what, msg);
}

/* Every area of a run is sized by both readers once the run is closed. */
static void check_run_areas(struct chunk *c, const int *offs, int n, int bits, const char *what)
{
	for (int i = 0; i < n; i++)
		REQUIRE(chunk_area_bits(c, offs[i]) == bits &&
			chunk_area_bits_shared(c, offs[i], bits) == bits, "%s: area %d at %d", what, i, offs[i]);
}

/*
 * The open run (chunk_map.h): same-size allocations in bump state go back
 * to back while only chunk_md and the counters move; chunk_verify checks
 * the run and the chunk under it after every one; chunk_area_bits sizes
 * the run's areas and rejects their interiors; each way of closing it (a
 * free, an invalid free, another size, population changes, the fit
 * search, a batch, chunk_sync, a full chunk, pop_only's populated end)
 * leaves every area where it was.
 */
static void test_open_run(void)
{
	static const struct { int pages; size_t page, head, tail; } shapes[] = {
		{ 4, 256, 0, 0 }, { 8, 4096, 0, 0 }, { 3, 4096, 1000, 2000 }, { 5, 256, 4, 96 },
		{ 1, 256, 0, 0 }, { 16, 1024, 256, 0 },
	};
	unsigned long in_runs = 0, closes[10] = { 0 };

	for (int round = 0; round < 400; round++) {
		size_t k = rng_below(sizeof(shapes) / sizeof(shapes[0]));
		struct chunk *c = chunk_create(shapes[k].pages, shapes[k].page, shapes[k].head, shapes[k].tail);
		int *offs = malloc(sizeof(int) * (size_t)c->nr_bits);
		int align = 1 << rng_below(4), bits = align * (1 + (int)rng_below(rng_below(4) ? 8 : 40));
		int popped = rng_below(3) ? c->nr_pages : (int)rng_below((uint64_t)c->nr_pages + 1);
		bool pop_only = popped < c->nr_pages || rng_below(2);
		int next = (c->start_bits + align - 1) & -align, n = 0, want = 1 + (int)rng_below(200), how;

		REQUIRE(c && offs, "create");
		chunk_mark_populated(c, 0, popped);
		if (next != c->start_bits)      /* an aligned tail: a filler first */
			REQUIRE(chunk_alloc(c, (size_t)(next - c->start_bits) * 4, 4, false) == c->start_bits * 4,
				"filler");
		int pop_end = popped << c->block_shift;
		int limit = pop_only && pop_end < c->end_bits ? pop_end : c->end_bits;

		while (n < want) {
			int off = chunk_alloc(c, (size_t)bits * 4, (size_t)align * 4, pop_only);

			if (next + bits > limit) {
				REQUIRE(off == -1, "round %d: %d bits past the end %d, got byte %d", round, bits,
					limit, off);
				closes[8]++;
				break;
			}
			REQUIRE(off == next * 4, "round %d: area %d of %d bits at bit %d, got byte %d", round, n,
				bits, next, off);
			offs[n++] = next;
			next += bits;
			in_runs += c->run_bits != 0;
			verify(c, "open run");
			REQUIRE(chunk_area_bits(c, next - bits) == bits &&
				(bits == 1 || chunk_area_bits(c, next - bits + 1) == 0) &&
				chunk_area_bits(c, next) == 0, "round %d: area %d sized", round, n);
			REQUIRE(c->nr_alloc == n + (next - n * bits > c->start_bits) &&
				c->free_bytes == (c->end_bits - next) * 4, "round %d: counters", round);
			REQUIRE(!c->run_bits == (c->end_bits - next < bits), "round %d: the run is open "
				"while another area fits (%d left)", round, c->end_bits - next);
		}
		how = (int)rng_below(8);
		closes[how]++;
		if (!n) {
			how = 6;
		} else if (how == 0) {
			int i = (int)rng_below((uint64_t)n);

			REQUIRE(chunk_free(c, offs[i] * 4) == bits * 4, "free from a run");
			offs[i] = offs[--n];
		} else if (how == 1) {
			REQUIRE(bits == 1 || chunk_free(c, (offs[0] + 1) * 4) == -1, "interior free");
			REQUIRE(chunk_free(c, next * 4) == -1, "free past the run");
		} else if (how == 2) {
			int off = chunk_alloc(c, (size_t)(bits + 1) * 4, 4, false);

			if (off >= 0)
				REQUIRE(off == next * 4 && chunk_area_bits(c, next) == bits + 1, "another size");
		} else if (how == 3) {
			chunk_mark_depopulated(c, c->nr_pages - 1, c->nr_pages);
		} else if (how == 4) {
			(void)chunk_find_fit(c, 1, 1, false);
		} else if (how == 5) {
			int m = chunk_bump_many(c, bits, align, 3, false);

			REQUIRE(m == 0 || chunk_area_bits(c, next) == bits, "bump_many after a run");
		} else {
			chunk_sync(c);
		}
		/* an invalid free changes nothing; another size may open its own run */
		REQUIRE(c->run_bits == 0 || how == 1 || (how == 2 && c->run_bits == bits + 1) || how == 6,
			"round %d: closed by way %d", round, how);
		chunk_sync(c);
		verify(c, "closed");
		check_run_areas(c, offs, n, bits, "closed run");
		chunk_destroy(c);
		free(offs);
	}
	printf("open runs: %lu areas taken with a run open; closed by a free %lu, an invalid free %lu, "
	       "another size %lu, depopulation %lu, the fit search %lu, a batch %lu, chunk_sync %lu, "
	       "pop_only's end or a full chunk %lu\n", in_runs, closes[0], closes[1], closes[2], closes[3],
	       closes[4], closes[5], closes[6] + closes[7], closes[8]);
	CHECK(in_runs > 1000 && closes[8] > 0, "open runs exercised (%lu areas)", in_runs);
}

int main(int argc, char **argv)
{
	test_seed(argc, argv);
	test_open_run();
	TEST_DONE();
}
