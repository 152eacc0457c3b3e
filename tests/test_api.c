/*
 * test_api.c - the public interface end to end, at 1, 2, 8 and 64 CPU slots
 * (simulated units; each configuration runs in its own forked child since
 * the allocator is configured once per process).
 *
 * Every allocation's units get a distinct pattern that is re-checked after
 * many other allocations and frees: no overlap in any unit, memory zeroed
 * on return, alignment in every unit, pcpu_alloc_size right, pcpu_verify
 * clean after every step.
 */
#include <string.h>
#include <unistd.h>

#include "kit.h"
#include "percpu.h"

#define NOBJ 3000

static void run_config(unsigned nr_cpus, unsigned long steps)
{
	/* Small units where pcpu_verify runs after every step (it rechecks every
	 * chunk), the default unit size elsewhere. */
	struct pcpu_config cfg = { .nr_cpus = nr_cpus, .flags = PCPU_CFG_NO_BALANCER,
				   .min_unit_size = nr_cpus <= 2 ? 64 << 10 : 0 };
	static struct kit_obj objs[NOBJ];
	struct pcpu_stats st;
	int n = 0;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init nr_cpus %u", nr_cpus);
	REQUIRE(pcpu_nr_cpus() == nr_cpus, "nr_cpus");
	REQUIRE(pcpu_stats_get(&st) == 0, "stats");
	size_t max = st.unit_size, page = st.page_size;

	CHECK(pcpu_current_cpu() < nr_cpus, "current cpu wraps");
	for (unsigned long step = 0; step < steps; step++) {
		if (n < NOBJ && (n == 0 || rng_below(100) < 55)) {
			unsigned r = (unsigned)rng_below(100);
			size_t size, align;
			void *h;

			size = r < 70 ? 1 + rng_below(64) : r < 95 ? 1 + rng_below(4096) : 1 + rng_below(max);
			if (nr_cpus >= 64 && size > 8192)
				size = 1 + rng_below(8192);
			align = (size_t)1 << rng_below(13);
			if (align > page)
				align = page;
			h = pcpu_alloc(size, align);
			REQUIRE(h, "step %lu: alloc %zu align %zu failed", step, size, align);
			size = (size + 3) & ~(size_t)3;
			if (align < 4)
				align = 4;
			CHECK(pcpu_alloc_size(h) == size, "step %lu: alloc_size %zu != %zu", step,
			      pcpu_alloc_size(h), size);
			CHECK(kit_zeroed(h, size, align), "step %lu: not zeroed or not aligned", step);
			kit_keep(objs, &n, NOBJ, h, size, (uint32_t)step);
		} else {
			int k = (int)rng_below((uint64_t)n);
			size_t size = objs[k].size;

			REQUIRE(kit_drop(objs, &n, k), "step %lu: object %d (size %zu) was overwritten", step,
				k, size);
		}
		if (step % 16 == 0 || nr_cpus <= 2)
			REQUIRE(pcpu_verify() == 0, "step %lu: pcpu_verify", step);
	}
	for (int k = 0; k < n; k++) {
		CHECK(kit_intact(&objs[k]), "final check of object %d", k);
		pcpu_free(objs[k].h);
	}
	REQUIRE(pcpu_verify() == 0, "verify after freeing everything");
	pcpu_stats_get(&st);
	CHECK(st.nr_cur_alloc == 0 && st.nr_alloc == st.nr_dealloc, "counters balance: %llu live",
	      (unsigned long long)st.nr_cur_alloc);

	/* The largest allowed allocation works; one byte more is EINVAL. */
	void *big = pcpu_alloc(max, 4);
	CHECK(big && pcpu_alloc_size(big) == max, "a whole-unit allocation");
	pcpu_free(big);
	CHECK(pcpu_balance() == 0 && pcpu_verify() == 0, "balance and verify");
}

static const unsigned cpus[] = { 1, 2, 8, 64 };

/* In a child: configuration cpus[i]. */
static int child_config(long i)
{
	run_config(cpus[i], cpus[i] >= 64 ? 6000 : 20000);
	printf("nr_cpus %u: ", cpus[i]);
	TEST_DONE();
}

int main(int argc, char **argv)
{
	uint64_t seed = test_seed(argc, argv);

	for (size_t i = 0; i < sizeof(cpus) / sizeof(cpus[0]); i++)
		KIT_EXPECT(kit_fork(child_config, (long)i, seed + i, 0), KIT_EXIT(0),
			   "configuration nr_cpus %u", cpus[i]);
	TEST_DONE();
}
