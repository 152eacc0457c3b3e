/*
 * test_areamap.c - the benchmark's area-map baseline (bench/areamap.c)
 * against a reference interval model, plus directed merge/split cases.
 *
 * The area map is first fit over maximal free areas, so for every request
 * the model can say exactly which offset it must return.  The random test
 * checks that, alignment, bounds, non-overlap, free bytes and the
 * allocator's own invariants after every step.  Seed: argv[1] or
 * $PCPU_SEED.
 *
 * The file pulls in bench/areamap.c directly so it builds on its own
 * (tests link only the library): gcc -Isrc tests/test_areamap.c
 */
#include <stdbool.h>
#include <string.h>

#include "../bench/areamap.c"
#include "check.h"

#define UNIT      (256 * 1024)
#define MAX_LIVE  (UNIT / 4)
#define STEPS     100000

struct ival {
	int off, size;
};

/* The model: live allocations sorted by offset; the hidden head is one. */
static struct ival live[MAX_LIVE + 1];
static int nr_live;
static int model_head;

static int model_free_bytes(void)
{
	int used = 0;

	for (int i = 0; i < nr_live; i++)
		used += live[i].size;
	return UNIT - used;
}

static int model_largest_gap(void)
{
	int prev_end = 0, best = 0;

	for (int i = 0; i <= nr_live; i++) {
		int next = i < nr_live ? live[i].off : UNIT;

		if (next - prev_end > best)
			best = next - prev_end;
		if (i < nr_live)
			prev_end = live[i].off + live[i].size;
	}
	return best;
}

/* Lowest aligned offset where size fits in a gap, or -1. */
static int model_first_fit(int size, int align)
{
	int prev_end = 0;

	for (int i = 0; i <= nr_live; i++) {
		int next = i < nr_live ? live[i].off : UNIT;
		int cand = (prev_end + align - 1) & ~(align - 1);

		if (cand + size <= next)
			return cand;
		if (i < nr_live)
			prev_end = live[i].off + live[i].size;
	}
	return -1;
}

static int model_find(int off)
{
	int lo = 0, hi = nr_live;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (live[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;      /* insertion point; equal when present */
}

static void model_insert(int off, int size)
{
	int i = model_find(off);

	memmove(live + i + 1, live + i, sizeof(live[0]) * (size_t)(nr_live - i));
	live[i].off = off;
	live[i].size = size;
	nr_live++;
}

static void model_remove(int i)
{
	memmove(live + i, live + i + 1, sizeof(live[0]) * (size_t)(nr_live - i - 1));
	nr_live--;
}

static void require_valid(struct areamap *am, const char *when, long step)
{
	char msg[256];

	REQUIRE(areamap_verify(am, msg, sizeof(msg)) == 0, "step %ld after %s: %s", step, when, msg);
	REQUIRE(areamap_free_bytes(am) == model_free_bytes(), "step %ld after %s: free %d, model %d",
		step, when, areamap_free_bytes(am), model_free_bytes());
	REQUIRE(areamap_contig_bytes(am) >= model_largest_gap(),
		"step %ld after %s: contig hint %d below largest gap %d", step, when,
		areamap_contig_bytes(am), model_largest_gap());
}

static int random_size(void)
{
	uint64_t r = rng_below(100);

	if (r < 50)
		return 4 * (int)(1 + rng_below(16));            /* 4..64 */
	if (r < 85)
		return 4 * (int)(1 + rng_below(256));           /* 4..1024 */
	return 4 * (int)(1 + rng_below(1024));                  /* 4..4096 */
}

static int random_align(void)
{
	if (rng_below(10) < 6)
		return 4;
	return 4 << rng_below(11);                              /* 4..4096 */
}

/* One random run of STEPS operations on a map with the given hidden head. */
static void random_run(int head)
{
	struct areamap *am = areamap_create(UNIT, (size_t)head);
	static const int alloc_pct[] = { 30, 50, 70, 90 };
	int pct = 50, nfail = 0, ninvalid = 0;

	REQUIRE(am, "create(%d, %d)", UNIT, head);
	nr_live = 0;
	model_head = head;
	if (head)
		model_insert(0, head);
	require_valid(am, "create", 0);

	for (long step = 1; step <= STEPS; step++) {
		bool have_user = nr_live > (head ? 1 : 0);

		if (step % 2000 == 0)
			pct = alloc_pct[rng_below(4)];

		if (!have_user || rng_below(100) < (uint64_t)pct) {
			int size = random_size(), align = random_align();
			int want = model_first_fit(size, align);
			int off = areamap_alloc(am, (size_t)size, (size_t)align);

			REQUIRE(off == want, "step %ld: alloc(%d, %d) = %d, first fit is %d",
				step, size, align, off, want);
			if (off < 0) {
				nfail++;
			} else {
				int i = model_find(off);

				CHECK(off % align == 0, "step %ld: %d not aligned to %d", step, off, align);
				CHECK(off >= head && off + size <= UNIT, "step %ld: [%d, %d) out of bounds",
				      step, off, off + size);
				CHECK(i == nr_live || off + size <= live[i].off,
				      "step %ld: [%d, %d) overlaps the next live area at %d", step, off,
				      off + size, live[i].off);
				CHECK(i == 0 || live[i - 1].off + live[i - 1].size <= off,
				      "step %ld: [%d, %d) overlaps the live area before", step, off, off + size);
				model_insert(off, size);
			}
			require_valid(am, "alloc", step);
		} else if (rng_below(20) == 0) {
			/* a bogus free must be refused and change nothing */
			int off = (int)rng_below(UNIT / 4) * 4, i;
			int areas = areamap_nr_areas(am), fb = areamap_free_bytes(am);

			switch (rng_below(4)) {
			case 0: off += 2; break;                /* odd/unaligned */
			case 1: off = head ? 0 : -4; break;     /* hidden head or negative */
			case 2: off = UNIT + 4 * (int)rng_below(4); break;
			default: break;                         /* random interior/free */
			}
			i = model_find(off);
			if (off >= 0 && i < nr_live && live[i].off == off && !(head && off == 0))
				continue;                       /* happened to be live */
			CHECK(areamap_free(am, off) == -1, "step %ld: free(%d) of a non-allocation accepted",
			      step, off);
			CHECK(areamap_nr_areas(am) == areas && areamap_free_bytes(am) == fb,
			      "step %ld: refused free(%d) changed the map", step, off);
			ninvalid++;
			require_valid(am, "bad free", step);
		} else {
			int first = head ? 1 : 0;
			int i = first + (int)rng_below((uint64_t)(nr_live - first));
			int got = areamap_free(am, live[i].off);

			REQUIRE(got == live[i].size, "step %ld: free(%d) returned %d, size %d", step,
				live[i].off, got, live[i].size);
			model_remove(i);
			require_valid(am, "free", step);
		}
	}

	/* drain: everything merges back into one free area */
	while (nr_live > (head ? 1 : 0)) {
		int i = nr_live - 1 - (int)rng_below((uint64_t)(nr_live - (head ? 1 : 0)));

		REQUIRE(areamap_free(am, live[i].off) == live[i].size, "drain free(%d)", live[i].off);
		model_remove(i);
	}
	require_valid(am, "drain", STEPS + 1);
	CHECK(areamap_nr_areas(am) == (head ? 2 : 1), "drained map has %d areas", areamap_nr_areas(am));
	CHECK(areamap_contig_bytes(am) == UNIT - head, "drained contig %d, want %d",
	      areamap_contig_bytes(am), UNIT - head);
	printf("random run (head %d): %d steps, %d failed allocs, %d bad frees refused\n", head,
	       STEPS, nfail, ninvalid);
	areamap_destroy(am);
}

/* Allocate n objects of 16 bytes back to back from offset 0. */
static struct areamap *packed(int unit, int n)
{
	struct areamap *am = areamap_create(unit, 0);

	REQUIRE(am, "create(%d)", unit);
	for (int i = 0; i < n; i++)
		REQUIRE(areamap_alloc(am, 16, 4) == 16 * i, "packed alloc %d", i);
	return am;
}

static void expect(struct areamap *am, int areas, int contig, int free_bytes, const char *what)
{
	char msg[256];

	CHECK(areamap_verify(am, msg, sizeof(msg)) == 0, "%s: %s", what, msg);
	CHECK(areamap_nr_areas(am) == areas, "%s: %d areas, want %d", what, areamap_nr_areas(am), areas);
	if (contig >= 0)
		CHECK(areamap_contig_bytes(am) == contig, "%s: contig %d, want %d", what,
		      areamap_contig_bytes(am), contig);
	CHECK(areamap_free_bytes(am) == free_bytes, "%s: free %d, want %d", what,
	      areamap_free_bytes(am), free_bytes);
}

static void directed(void)
{
	struct areamap *am;

	/* a region of exactly five objects: the last alloc makes the hint exact (0) */
	am = packed(80, 5);
	expect(am, 5, 0, 0, "full");
	CHECK(areamap_alloc(am, 4, 4) == -1, "alloc from a full map");
	CHECK(areamap_free(am, 16) == 16, "free B");
	expect(am, 5, 16, 16, "free B: no neighbour free, no merge");
	CHECK(areamap_free(am, 48) == 16, "free D");
	expect(am, 5, 16, 32, "free D: no merge");
	CHECK(areamap_free(am, 32) == 16, "free C");
	expect(am, 3, 48, 48, "free C: merges left (B) and right (D)");
	CHECK(areamap_free(am, 32) == -1, "double free of C refused");
	CHECK(areamap_free(am, 24) == -1, "interior free refused");
	CHECK(areamap_alloc(am, 48, 4) == 16, "the merged hole is reused whole");
	expect(am, 3, 48, 0, "hole refilled");
	areamap_destroy(am);

	am = packed(80, 5);
	CHECK(areamap_free(am, 16) == 16, "free B");
	CHECK(areamap_free(am, 0) == 16, "free A");
	expect(am, 4, 32, 32, "free A: merges right into B");
	CHECK(areamap_free(am, 32) == 16, "free C");
	expect(am, 3, 48, 48, "free C: merges left into A+B");
	CHECK(areamap_free(am, 64) == 16, "free E");
	expect(am, 3, 48, 64, "free E: no merge (D in use)");
	CHECK(areamap_free(am, 48) == 16, "free D");
	expect(am, 1, 80, 80, "free D: merges both ways into one area");
	areamap_destroy(am);

	/* a free next to the unallocated tail merges into it */
	am = packed(4096, 3);
	expect(am, 4, -1, 4096 - 48, "three objects and a tail");
	CHECK(areamap_free(am, 32) == 16, "free last object");
	expect(am, 3, -1, 4096 - 32, "merged into the tail");
	areamap_destroy(am);

	/* alignment leaves a free head area in front of the allocation */
	am = areamap_create(4096, 0);
	CHECK(areamap_alloc(am, 4, 4) == 0, "first alloc at 0");
	CHECK(areamap_alloc(am, 4, 64) == 64, "aligned alloc at 64");
	expect(am, 4, -1, 4096 - 8, "A, head hole [4, 64), B, tail");
	CHECK(areamap_alloc(am, 60, 4) == 4, "first fit takes the head hole");
	expect(am, 4, -1, 4096 - 68, "hole filled exactly: no new entry");
	areamap_destroy(am);

	/* the hint may be stale-high after an allocation; a failed scan fixes it */
	am = areamap_create(4096, 0);
	CHECK(areamap_alloc(am, 4092, 4) == 0, "big alloc");
	CHECK(areamap_contig_bytes(am) == 4096, "hint not rescanned yet: %d",
	      areamap_contig_bytes(am));
	CHECK(areamap_alloc(am, 8, 4) == -1, "8 bytes do not fit in the 4-byte tail");
	CHECK(areamap_contig_bytes(am) == 4, "failed scan made the hint exact: %d",
	      areamap_contig_bytes(am));
	CHECK(areamap_alloc(am, 8, 4) == -1, "rejected by the hint alone");
	CHECK(areamap_alloc(am, 4, 4) == 4092, "the tail still serves 4 bytes");
	areamap_destroy(am);

	/* the hidden head is never handed out nor freed */
	am = areamap_create(4096, 64);
	REQUIRE(am, "create with head");
	expect(am, 2, 4032, 4032, "hidden head");
	CHECK(areamap_alloc(am, 16, 4) == 64, "first alloc after the head");
	CHECK(areamap_free(am, 0) == -1, "the head cannot be freed");
	CHECK(areamap_free(am, 64) == 16, "free after head");
	expect(am, 2, 4032, 4032, "back to head + one free area");
	areamap_destroy(am);

	/* the entry array grows by doubling, contents intact */
	am = areamap_create(65536, 0);
	for (int i = 0; i < 4000; i++)
		REQUIRE(areamap_alloc(am, 4, 4) == 4 * i, "grow alloc %d", i);
	expect(am, 4001, -1, 65536 - 16000, "4000 small objects");
	for (int i = 0; i < 4000; i += 2)
		REQUIRE(areamap_free(am, 4 * i) == 4, "grow free %d", i);
	expect(am, 4001, -1, 65536 - 8000, "every other freed");
	for (int i = 1; i < 4000; i += 2)
		REQUIRE(areamap_free(am, 4 * i) == 4, "grow free %d", i);
	expect(am, 1, 65536, 65536, "all freed");
	areamap_destroy(am);

	/* bad arguments */
	CHECK(areamap_create(0, 0) == NULL, "zero unit");
	CHECK(areamap_create(4094, 0) == NULL, "unit not a multiple of 4");
	CHECK(areamap_create(4096, 4096) == NULL, "head fills the unit");
	am = areamap_create(4096, 0);
	CHECK(areamap_alloc(am, 0, 4) == -1, "size 0");
	CHECK(areamap_alloc(am, 8, 12) == -1, "align not a power of two");
	CHECK(areamap_alloc(am, 8192, 4) == -1, "larger than the unit");
	CHECK(areamap_alloc(am, 3, 1) == 0, "size rounds up to 4, align up to 4");
	CHECK(areamap_alloc(am, 4, 4) == 4, "next object after the rounded one");
	CHECK(areamap_free(am, -4) == -1 && areamap_free(am, 4096) == -1 &&
	      areamap_free(am, 2) == -1, "out of range / odd offsets refused");
	areamap_destroy(am);
}

int main(int argc, char **argv)
{
	test_seed(argc, argv);
	directed();
	random_run(0);
	random_run(4 * (int)(1 + rng_below(1024)));
	TEST_DONE();
}
