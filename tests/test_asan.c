/*
 * test_asan.c - memory checkers see per-CPU memory the way the allocator
 * does: allocated copies are usable, freed and never-allocated parts of
 * populated units are not.
 *
 * Without arguments: a random workload (single-threaded, then several
 * threads) that writes and re-reads every CPU's copy of every allocation,
 * with 4-byte neighbours sharing AddressSanitizer's 8-byte granules, frees,
 * reuse, and balance passes that depopulate and repopulate pages -- under
 * ASan any false report kills the test.  Then, in an ASan build (the
 * asan_memcheck CTest configuration, built by sanitize.sh with
 * address,undefined), forked children make bad accesses -- a write to a
 * freed per-CPU copy, a read of a never-allocated part of a populated unit
 * -- and each must die with an AddressSanitizer report on stderr.  In a
 * build without ASan the workload alone runs.
 *
 * Modes for tests/test_valgrind.sh:  --workload runs the workload only;
 * --bad-write writes to a freed copy and exits 0 (Valgrind must report it).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "bitops.h"
#include "memcheck.h"
#include "pool_init.h"
#include "pool_verify.h"
#include "kit.h"
#include "percpu.h"

#define NR_CPUS 4

static void init(void)
{
	struct pcpu_config cfg = { .nr_cpus = NR_CPUS, .min_unit_size = 64 << 10,
				   .flags = PCPU_CFG_NO_BALANCER };

	REQUIRE(pcpu_init(&cfg) == 0, "init");
}

static void workload(unsigned steps)
{
	static struct kit_obj live[2048];
	int n = 0;

	for (unsigned step = 0; step < steps; step++) {
		if (n < 2048 && (rng_below(100) < 55 || !n)) {
			size_t size = rng_below(3) ? 4 : 1 + rng_below(300);
			size_t align = (size_t)4 << rng_below(5);
			void *h = pcpu_alloc(size, align);

			REQUIRE(h, "alloc %zu", size);
			CHECK(kit_zeroed(h, size, align), "fresh allocation of %zu not zeroed", size);
			kit_keep(live, &n, 2048, h, size, (uint32_t)rng_next());
		} else {
			int i = (int)rng_below((uint64_t)n);
			size_t size = live[i].size;

			CHECK(kit_drop(live, &n, i), "allocation of %zu overwritten", size);
		}
		if (step % 4000 == 3999) {
			/* empty pages go back and come again */
			while (n > 16) {
				pcpu_free(live[--n].h);
			}
			CHECK(pcpu_balance() == 0, "balance");
		}
	}
	for (int i = 0; i < n; i++) {
		CHECK(kit_intact(&live[i]), "allocation overwritten at the end");
		pcpu_free(live[i].h);
	}
}

static void *thread_main(void *arg)
{
	uint64_t x = ((uint64_t)(uintptr_t)arg + 1) * 0x9e3779b97f4a7c15ULL + 1;
	unsigned char *h[64] = { 0 };

	for (int i = 0; i < 20000; i++) {
		int k;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		k = (int)(x % 64);
		if (h[k]) {
			for (unsigned cpu = 0; cpu < NR_CPUS; cpu++)
				if (*per_cpu_ptr(h[k], cpu) != (unsigned char)k)
					return (void *)1;
			pcpu_free(h[k]);
			h[k] = NULL;
		} else {
			h[k] = pcpu_alloc(4 + 4 * (x >> 60 & 1), 4);
			if (!h[k])
				return (void *)1;
			for (unsigned cpu = 0; cpu < NR_CPUS; cpu++)
				memset(per_cpu_ptr(h[k], cpu), k, 4);
		}
	}
	for (int k = 0; k < 64; k++)
		pcpu_free(h[k]);
	return NULL;
}

static void threads(void)
{
	pthread_t t[4];
	void *ret[4];

	kit_start_threads(t, 4, thread_main, NULL, 0);
	kit_join_threads(t, 4, ret);
	for (int i = 0; i < 4; i++)
		CHECK(ret[i] == NULL, "thread %d saw a copy change under it", i);
}

/* ---- bad accesses, each in a child that must be stopped ------------------ */

static void bad_write_freed(void)
{
	unsigned char *h = pcpu_alloc(64, 64), *copy;

	copy = per_cpu_ptr(h, 2);
	memset(copy, 1, 64);
	pcpu_free(h);
	*(volatile unsigned char *)(copy + 8) = 2;      /* use after free */
}

/* A never-allocated 8-byte granule (ASan's unit) of a populated page of
 * chunk ch, in CPU 1's unit, or NULL. */
static volatile unsigned char *free_granule(const struct pcpu_chunk *ch)
{
	const struct chunk *c = ch->map;

	for (int page = 0; page < c->nr_pages; page++) {
		if (!bit_test(c->populated, (size_t)page))
			continue;
		for (int bit = page * c->block_bits; bit < (page + 1) * c->block_bits; bit += 2) {
			if (bit < c->start_bits || bit + 2 > c->end_bits ||
			    bit_test(c->alloc_map, (size_t)bit) || bit_test(c->alloc_map, (size_t)bit + 1))
				continue;
			return per_cpu_ptr((unsigned char *)pool_chunk_handle(ch, bit * PCPU_MIN_ALLOC_BYTES), 1);
		}
	}
	return NULL;
}

/* Read a never-allocated granule of a populated page: of the chunk a new
 * object lies in, else of any chunk (the workload may have left the first
 * one's populated pages full: cached and live objects), else of the page a
 * half-page object leaves half free. */
static void bad_read_unallocated(void)
{
	unsigned char *h = pcpu_alloc(64, 64);
	int off;
	volatile unsigned char *p = free_granule(pool_handle_chunk(h, &off));

	for (int i = 0; !p && i < pcpu_pool.chunk_hiwater; i++)
		if (pcpu_pool.chunk_table[i])
			p = free_granule(pcpu_pool.chunk_table[i]);
	if (!p) {
		unsigned char *half = pcpu_alloc(pcpu_pool.page_size / 2, pcpu_pool.page_size);

		p = half ? free_granule(pool_handle_chunk(half, &off)) : NULL;
	}
	if (!p) {
		dprintf(kit_report_fd, "no free granule on a populated page\n");
		return;
	}
	(void)p[3];                     /* never allocated */
}

/* In a child: bad access number which; exit 0 means it was not stopped. */
static int bad_access(long which)
{
	(which ? bad_read_unallocated : bad_write_freed)();
	return 0;
}

static void expect_report(long which, const char *what, const char *kind)
{
	struct kit_child *c = kit_fork(bad_access, which, 0, 0);

	CHECK(!kit_exited(c, 0), "%s: not stopped", what);
	CHECK(*c->err && strstr(c->err, "AddressSanitizer") && strstr(c->err, kind),
	      "%s: no '%s' AddressSanitizer report; stderr was:\n%s", what, kind, c->err);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--bad-write")) {
		init();
		bad_write_freed();
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "--workload")) {
		init();
		workload(6000);
		threads();
		CHECK(pcpu_verify() == 0, "verify");
		TEST_DONE();
	}
	test_seed(argc, argv);
	init();
	workload(30000);
	threads();
	CHECK(pcpu_verify() == 0, "verify");
	if (PCPU_ASAN) {
		expect_report(0, "write to a freed copy", "use-after-poison");
		expect_report(1, "read of an unallocated part", "use-after-poison");
	} else {
		printf("not an AddressSanitizer build: the bad accesses are checked by asan_memcheck\n");
	}
	TEST_DONE();
}
