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
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "percpu.h"

struct obj {
	unsigned char *h;   /* handle */
	size_t size, align;
	unsigned char tag;
};

static unsigned char pattern(const struct obj *o, unsigned cpu, size_t i)
{
	return (unsigned char)(o->tag * 31u + cpu * 7u + i);
}

static void fill(const struct obj *o)
{
	for (unsigned cpu = 0; cpu < pcpu_nr_cpus(); cpu++) {
		unsigned char *p = per_cpu_ptr(o->h, cpu);

		for (size_t i = 0; i < o->size; i++)
			p[i] = pattern(o, cpu, i);
	}
}

static bool intact(const struct obj *o)
{
	for (unsigned cpu = 0; cpu < pcpu_nr_cpus(); cpu++) {
		const unsigned char *p = per_cpu_ptr(o->h, cpu);

		for (size_t i = 0; i < o->size; i++)
			if (p[i] != pattern(o, cpu, i))
				return false;
	}
	return true;
}

static bool zeroed_and_aligned(const struct obj *o)
{
	for (unsigned cpu = 0; cpu < pcpu_nr_cpus(); cpu++) {
		const unsigned char *p = per_cpu_ptr(o->h, cpu);

		if ((uintptr_t)p % o->align)
			return false;
		for (size_t i = 0; i < o->size; i++)
			if (p[i])
				return false;
	}
	return true;
}

#define NOBJ 3000

static void run_config(unsigned nr_cpus, unsigned long steps)
{
	/* Small units where pcpu_verify runs after every step (it rechecks every
	 * chunk), the default unit size elsewhere. */
	struct pcpu_config cfg = { .nr_cpus = nr_cpus, .flags = PCPU_CFG_NO_BALANCER,
				   .min_unit_size = nr_cpus <= 2 ? 64 << 10 : 0 };
	static struct obj objs[NOBJ];
	struct pcpu_stats st;
	int n = 0;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init nr_cpus %u", nr_cpus);
	REQUIRE(pcpu_nr_cpus() == nr_cpus, "nr_cpus");
	REQUIRE(pcpu_stats_get(&st) == 0, "stats");
	size_t max = st.unit_size, page = st.page_size;

	CHECK(pcpu_current_cpu() < nr_cpus, "current cpu wraps");
	for (unsigned long step = 0; step < steps; step++) {
		if (n < NOBJ && (n == 0 || rng_below(100) < 55)) {
			struct obj o;
			unsigned r = (unsigned)rng_below(100);

			o.size = r < 70 ? 1 + rng_below(64) : r < 95 ? 1 + rng_below(4096) :
					  1 + rng_below(max);
			if (nr_cpus >= 64 && o.size > 8192)
				o.size = 1 + rng_below(8192);
			o.align = (size_t)1 << rng_below(13);
			if (o.align > page)
				o.align = page;
			o.tag = (unsigned char)step;
			o.h = pcpu_alloc(o.size, o.align);
			REQUIRE(o.h, "step %lu: alloc %zu align %zu failed", step, o.size, o.align);
			o.size = (o.size + 3) & ~(size_t)3;
			if (o.align < 4)
				o.align = 4;
			CHECK(pcpu_alloc_size(o.h) == o.size, "step %lu: alloc_size %zu != %zu", step,
			      pcpu_alloc_size(o.h), o.size);
			CHECK(zeroed_and_aligned(&o), "step %lu: not zeroed or not aligned", step);
			fill(&o);
			objs[n++] = o;
		} else {
			int k = (int)rng_below((uint64_t)n);

			REQUIRE(intact(&objs[k]), "step %lu: object %d (size %zu) was overwritten", step,
				k, objs[k].size);
			pcpu_free(objs[k].h);
			objs[k] = objs[--n];
		}
		if (step % 16 == 0 || nr_cpus <= 2)
			REQUIRE(pcpu_verify() == 0, "step %lu: pcpu_verify", step);
	}
	for (int k = 0; k < n; k++) {
		CHECK(intact(&objs[k]), "final check of object %d", k);
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

int main(int argc, char **argv)
{
	static const unsigned cpus[] = { 1, 2, 8, 64 };
	uint64_t seed = test_seed(argc, argv);

	for (size_t i = 0; i < sizeof(cpus) / sizeof(cpus[0]); i++) {
		pid_t pid = fork();

		if (pid == 0) {
			rng_state = seed + i;
			run_config(cpus[i], cpus[i] >= 64 ? 6000 : 20000);
			printf("nr_cpus %u: ", cpus[i]);
			TEST_DONE();
		}
		int status;

		waitpid(pid, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "configuration nr_cpus %u failed",
		      cpus[i]);
	}
	TEST_DONE();
}
