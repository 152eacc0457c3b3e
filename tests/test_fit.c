/*
 * test_fit.c - an aligned request finds an aligned hole, through
 * pcpu_alloc, whatever order the holes were freed in.
 *
 * The first chunk is filled with 4 B objects; two 8 B holes are freed, one
 * at a unit offset of 4 mod 8 and one at 0 mod 8, in either order.  Then
 * pcpu_alloc(8, 8) must take the aligned hole:
 *   one chunk of address space   it must not fail with ENOMEM;
 *   two chunks                   it must not create the second chunk.
 * (The chunk hints keep the leftmost of equal runs; when the misaligned
 * hole was freed first, the chunk used to be rejected for the request.)
 * pcpu_verify() runs only after the request: it refreshes the chunk's run
 * tree, which would hide the miss.  Each case runs in a forked child, with
 * the per-CPU caches off (the chunk alone decides) and, with one chunk of
 * address space, on: the freed objects then sit in a cache, and the
 * allocation must still not fail while they could serve it (caches are
 * drained before ENOMEM), nor an 8 B request at 4 B alignment while only a
 * misaligned hole is left (the class's 8 B alignment is only preferred).
 *
 * Usage: test_fit [seed]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "kit.h"
#include "percpu.h"
#include "pool.h"

#define UNIT (64u << 10)
#define MAXOBJ 65536

static void *objs[MAXOBJ];
static int nobj;

static size_t chunk_stride(unsigned nr_cpus)
{
	size_t stride = 4096;

	while (stride < (size_t)nr_cpus * UNIT)
		stride *= 2;
	return stride;
}

static uintptr_t addr(void *h)
{
	return (uintptr_t)per_cpu_ptr((char __percpu *)h, 0);
}

static int by_addr(const void *a, const void *b)
{
	uintptr_t x = addr(*(void *const *)a), y = addr(*(void *const *)b);

	return (x > y) - (x < y);
}

/* First i >= from where objects i and i + 1 are adjacent and i sits at
 * `rem` mod 8 in its unit; -1 if none. */
static int find_pair(int from, uintptr_t rem)
{
	for (int i = from; i + 1 < nobj; i++)
		if (addr(objs[i]) % 8 == rem && addr(objs[i + 1]) == addr(objs[i]) + 4)
			return i;
	return -1;
}

/* arg: bit 0 = free the aligned hole first; bit 1 = caches on; bits 2.. =
 * chunks of address space. */
static int child(long arg)
{
	bool aligned_first = arg & 1, cached = arg & 2;
	long k = arg >> 2;
	struct pcpu_config cfg = { .nr_cpus = 2, .min_unit_size = UNIT,
				   .flags = PCPU_CFG_NO_BALANCER | (cached ? 0 : PCPU_CFG_NO_CACHE),
				   .addr_space = (size_t)k * chunk_stride(2) };
	struct chunk *first;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
	REQUIRE(pcpu_pool.max_chunks == k, "%ld chunk slots, got %d", k, pcpu_pool.max_chunks);
	first = pcpu_pool.first_chunk->map;

	/* Fill the first chunk's dynamic area with 4 B objects (with caches,
	 * until the allocator says ENOMEM: a refill may leave objects cached). */
	while (first->free_bytes > 0 || cached) {
		REQUIRE(nobj < MAXOBJ, "more than %d objects in the first chunk", MAXOBJ);
		errno = 0;
		objs[nobj] = pcpu_alloc_flags(4, 4, cached ? PCPU_NOWARN : 0);
		if (cached && !objs[nobj]) {
			REQUIRE(errno == ENOMEM && first->free_bytes == 0,
				"fill: errno %d with %d bytes free", errno, first->free_bytes);
			break;
		}
		REQUIRE(objs[nobj], "4 B object %d: %s", nobj, strerror(errno));
		nobj++;
	}
	REQUIRE(kit_stats().nr_chunks == 0, "the fill stayed in the first chunk");
	if (k == 1) {
		errno = 0;
		CHECK(!pcpu_alloc_flags(4, 4, PCPU_NOWARN) && errno == ENOMEM, "full: 4 B fails with ENOMEM");
	}
	qsort(objs, (size_t)nobj, sizeof(objs[0]), by_addr);

	int mis = find_pair(0, 4), al = mis < 0 ? -1 : find_pair(mis + 3, 0);

	REQUIRE(mis >= 0 && al >= 0, "two pairs of adjacent objects at 4 and 0 mod 8");
	uintptr_t want = addr(objs[al]), other = addr(objs[mis]);
	int order[2] = { aligned_first ? al : mis, aligned_first ? mis : al };

	for (int j = 0; j < 2; j++) {
		pcpu_free(objs[order[j]]);
		pcpu_free(objs[order[j] + 1]);
	}

	errno = 0;
	void *h = pcpu_alloc_flags(8, 8, PCPU_NOWARN);

	CHECK(h != NULL, "%ld chunk(s), %s hole freed first: pcpu_alloc(8, 8) failed (errno %d) with an "
	      "aligned 8 B hole free", k, aligned_first ? "aligned" : "misaligned", errno);
	CHECK(!h || addr(h) == want, "pcpu_alloc(8, 8) took %#lx, not the aligned hole %#lx",
	      (unsigned long)(h ? addr(h) : 0), (unsigned long)want);
	CHECK(kit_stats().nr_chunks == 0, "no new chunk while the aligned hole was free (%u chunks)",
	      kit_stats().nr_chunks);
	CHECK(pcpu_verify() == 0, "pcpu_verify after the aligned fit");

	/* The misaligned hole serves 4 B alignment, never 8.  (With two
	 * chunks, the failed 8 B request sidelined the first chunk until its
	 * next free, so the 4 B-aligned request goes to the new one.) */
	errno = 0;
	void *h8 = pcpu_alloc_flags(8, 8, PCPU_NOWARN);

	if (k == 1)
		CHECK(!h8 && errno == ENOMEM, "no aligned 8 B left: ENOMEM");
	else
		CHECK(h8 && kit_stats().nr_chunks == 1, "no aligned 8 B left: a new chunk");
	void *h4 = pcpu_alloc(8, 4);

	CHECK(h4 && (k > 1 || addr(h4) == other), "pcpu_alloc(8, 4) takes the misaligned hole");
	CHECK(pcpu_verify() == 0, "pcpu_verify at the end");
	printf("%s, %ld chunk(s) of address space, %s hole freed first: 8 B at 8 B alignment in the hole "
	       "(%d objects of 4 B)\n", cached ? "caches on" : "caches off", k, aligned_first ? "aligned" : "misaligned", nobj);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t seed = test_seed(argc, argv);

	for (long k = 1; k <= 2; k++) {
		for (long arg = 0; arg < 4; arg++) {
			if ((arg & 2) && k > 1)
				continue;       /* caches may hold space while a chunk is made */
			struct kit_child *c = kit_fork(child, k << 2 | arg, seed, 120);

			KIT_EXPECT(c, KIT_EXIT(0), "%ld chunk(s), %s hole first, caches %s", k,
				   arg & 1 ? "aligned" : "misaligned", arg & 2 ? "on" : "off");
		}
	}
	TEST_DONE();
}
