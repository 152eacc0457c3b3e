/*
 * test_balance.c - population balancing: the pool of empty populated pages
 * between the marks, memory given back after frees (checked with mincore
 * over the chunk address range), pages in use never depopulated, the
 * background thread refilling after an atomic failure, fork.
 *
 * Each scenario runs in its own forked child (one configuration per
 * process).
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pool_init.h"
#include "pool_verify.h"
#include "kit.h"
#include "pool_kit.h"
#include "percpu.h"

/* Resident pages in the dynamic chunks' address range (not the first chunk). */
static long resident_dynamic_pages(void)
{
	size_t page = pcpu_pool.page_size, stride = (size_t)1 << pcpu_pool.stride_shift;
	size_t len = (size_t)pcpu_pool.chunk_hiwater * stride - stride;
	unsigned char *vec;
	long n = 0;

	if (!len)
		return 0;
	vec = malloc(len / page);
	REQUIRE(vec && mincore(pcpu_pool.region + stride, len, vec) == 0, "mincore");
	for (size_t i = 0; i < len / page; i++)
		n += vec[i] & 1;
	free(vec);
	return n;
}

static int child_marks(long arg)
{
	struct pcpu_config cfg = { .flags = PCPU_CFG_NO_BALANCER };
	struct pcpu_stats st;
	int n = 0;
	void **h = malloc(sizeof(void *) * 200000);

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "init");
	/* Drain populated space with atomic allocations. */
	while ((h[n] = pcpu_alloc_flags(64, 4, PCPU_ATOMIC | PCPU_NOWARN)))
		n++;
	pcpu_stats_get(&st);
	CHECK(st.nr_empty_pop_pages == 0, "drained: %llu empty populated pages",
	      (unsigned long long)st.nr_empty_pop_pages);
	CHECK(pcpu_balance() == 0, "balance");
	pcpu_stats_get(&st);
	CHECK(st.nr_empty_pop_pages >= (uint64_t)pcpu_pool.empty_pop_low &&
	      st.nr_empty_pop_pages <= (uint64_t)pcpu_pool.empty_pop_high,
	      "after balance %llu empty populated pages, marks %d..%d",
	      (unsigned long long)st.nr_empty_pop_pages, pcpu_pool.empty_pop_low, pcpu_pool.empty_pop_high);
	CHECK(st.nr_balance_populated > 0 && st.nr_balance_passes == 1, "balancer counters");
	void *a = pcpu_alloc_flags(64, 4, PCPU_ATOMIC);
	CHECK(a != NULL, "atomic allocation after balance");
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

static int child_release(long mixed)
{
	struct pcpu_config cfg = { .flags = PCPU_CFG_NO_BALANCER };
	int n = 1 << 20;
	void **h = malloc(sizeof(void *) * (size_t)n);

	REQUIRE(pcpu_init(&cfg) == 0, "init");
	for (int i = 0; i < n; i++) {
		size_t size = mixed ? (size_t)4 << rng_below(6) : 4;

		h[i] = pcpu_alloc(size, 4);
		REQUIRE(h[i], "alloc %d", i);
		*(int *)this_cpu_ptr(h[i]) = i;
		if (mixed && i == n / 8)
			break;
	}
	if (mixed)
		n = n / 8 + 1;
	long before = resident_dynamic_pages();
	CHECK(pcpu_verify() == 0, "verify with everything live");
	for (int i = 0; i < n; i++)
		pcpu_free(h[i]);
	CHECK(pcpu_balance() == 0 && pcpu_verify() == 0, "balance + verify after free-all");
	long after = resident_dynamic_pages(), populated = kit_dynamic_populated(NULL);

	printf("%s: resident dynamic pages %ld -> %ld, populated after %ld (one chunk = %d x %u units)\n",
	       mixed ? "mixed" : "4 B", before, after, populated, pcpu_pool.unit_pages, pcpu_pool.nr_cpus);
	CHECK(kit_free_chunks() <= 1, "at most one fully free dynamic chunk, %d", kit_free_chunks());
	CHECK(populated <= pcpu_pool.unit_pages, "populated pages outside the first chunk (%ld) <= one chunk", populated);
	CHECK(after <= (long)pcpu_pool.unit_pages * (long)pcpu_pool.nr_cpus, "resident after (%ld) <= one chunk", after);
	CHECK(after < before / 4, "resident memory released: %ld -> %ld", before, after);
	return 0;
}

/* Keep one object per page live: balance must not depopulate those pages. */
static int child_sparse(long arg)
{
	struct pcpu_config cfg = { .flags = PCPU_CFG_NO_BALANCER, .reclaim_frac = 1 };
	int n = 1 << 17;
	void **h = malloc(sizeof(void *) * (size_t)n);
	int per_page;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "init");
	per_page = (int)(pcpu_pool.page_size / 16);
	for (int i = 0; i < n; i++) {
		REQUIRE((h[i] = pcpu_alloc(16, 16)), "alloc");
		for (unsigned cpu = 0; cpu < pcpu_nr_cpus(); cpu++)
			*(int *)per_cpu_ptr(h[i], cpu) = i ^ (int)cpu;
	}
	for (int i = 0; i < n; i++)
		if (i % per_page != per_page / 2) {
			pcpu_free(h[i]);
			h[i] = NULL;
		}
	CHECK(pcpu_balance() == 0 && pcpu_verify() == 0, "balance + verify");
	bool ok = true;
	for (int i = 0; i < n; i++)
		for (unsigned cpu = 0; h[i] && cpu < pcpu_nr_cpus(); cpu++)
			ok &= *(int *)per_cpu_ptr(h[i], cpu) == (i ^ (int)cpu);
	CHECK(ok, "sparse survivors intact after balance");
	/* Now free the survivors: the pages can go. */
	for (int i = 0; i < n; i++)
		pcpu_free(h[i]);
	CHECK(pcpu_balance() == 0 && pcpu_verify() == 0, "balance + verify after all freed");
	CHECK(kit_dynamic_populated(NULL) <= pcpu_pool.unit_pages, "pages released");
	return 0;
}

/* After fork, with the balancer thread in the parent: balance, allocate atomically. */
static int after_fork(long arg)
{
	(void)arg;
	int ok = pcpu_balance() == 0 && pcpu_alloc_flags(64, 4, PCPU_ATOMIC) != NULL &&
		 pcpu_verify() == 0;
	return ok ? 0 : 1;
}

/* With the thread: an atomic failure gets refilled without pcpu_balance(). */
static int child_thread(long arg)
{
	void *h;
	int tries = 0, n = 0;

	(void)arg;
	REQUIRE(pcpu_init(NULL) == 0, "init");
	while ((h = pcpu_alloc_flags(256, 4, PCPU_ATOMIC | PCPU_NOWARN)) && n < 1000000)
		n++;
	CHECK(h == NULL, "atomic allocations eventually fail");
	/* Wait (deadline 20 s, no timing assertion) for the balancer to refill. */
	while (!(h = pcpu_alloc_flags(256, 4, PCPU_ATOMIC | PCPU_NOWARN)) && tries++ < 2000)
		usleep(10000);
	CHECK(h != NULL, "the background balancer refilled populated pages");
	struct pcpu_stats st;
	pcpu_stats_get(&st);
	CHECK(st.nr_balance_passes > 0 && st.nr_atomic_fail > 0, "balancer ran");
	/* Fork while the balancer exists: the child balances and allocates atomically. */
	KIT_EXPECT(kit_fork(after_fork, 0, 0, 0), KIT_EXIT(0), "child after fork");
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/*
 * A forked child has no balancer thread, so a wake its parent sent must not
 * stand in it: its next call that may block asks for a pass itself.
 */
static int child_no_inherited_wake(long arg)
{
	(void)arg;
	return (__atomic_load_n(&pcpu_pool.balance_wanted, __ATOMIC_RELAXED) & POOL_BALANCE_KICKED) ?
	       1 : 0;
}

static int child_fork_wake(long arg)
{
	(void)arg;
	REQUIRE(pcpu_init(NULL) == 0, "init");
	REQUIRE(pcpu_alloc(64, 0) != NULL, "allocator in use");
	/* As if the balancer had been woken and not yet run. */
	__atomic_fetch_or(&pcpu_pool.balance_wanted, POOL_BALANCE_LOW | POOL_BALANCE_KICKED,
			  __ATOMIC_RELAXED);
	KIT_EXPECT(kit_fork(child_no_inherited_wake, 0, 0, 0), KIT_EXIT(0),
		   "the child does not inherit the parent's wake");
	return 0;
}

/*
 * Steady load: three threads make PCPU_ATOMIC allocations of 4 B to a page
 * while freeing their oldest.  Failures happen (the pool is a few pages);
 * the check is that after every failure the same thread succeeds again
 * without anyone calling pcpu_balance(): the background balancer refills.
 */
#define LOAD_THREADS 3
#define LOAD_ITERS 4000
#define LOAD_WINDOW 48

static unsigned long load_failures[LOAD_THREADS], load_stuck[LOAD_THREADS];

static void *load_worker(void *arg)
{
	long t = (long)arg;
	void *held[LOAD_WINDOW] = { 0 };
	uint64_t r = 0x9e3779b97f4a7c15ULL * (uint64_t)(t + 1);

	for (int i = 0; i < LOAD_ITERS; i++) {
		int slot = i % LOAD_WINDOW, waits = 0;
		size_t size;
		void *h;

		r ^= r << 13, r ^= r >> 7, r ^= r << 17;
		size = 4 + (size_t)(r % 4093);
		pcpu_free(held[slot]);
		held[slot] = NULL;
		while (!(h = pcpu_alloc_flags(size, 4, PCPU_ATOMIC | PCPU_NOWARN))) {
			load_failures[t]++;
			if (++waits > 5000) {      /* ~5 s without a refill */
				load_stuck[t]++;
				break;
			}
			usleep(1000);
		}
		if (h)
			*(char *)this_cpu_ptr(h) = 1;
		held[slot] = h;
	}
	for (int i = 0; i < LOAD_WINDOW; i++)
		pcpu_free(held[i]);
	return NULL;
}

static int child_steady_atomic(long arg)
{
	pthread_t tid[LOAD_THREADS];
	struct pcpu_stats st;
	unsigned long failures = 0;

	(void)arg;
	REQUIRE(pcpu_init(NULL) == 0, "init");
	kit_start_threads(tid, LOAD_THREADS, load_worker, NULL, 0);
	kit_join_threads(tid, LOAD_THREADS, NULL);
	for (int t = 0; t < LOAD_THREADS; t++) {
		failures += load_failures[t];
		CHECK(load_stuck[t] == 0, "thread %d: atomic allocations stopped succeeding", t);
	}
	pcpu_stats_get(&st);
	printf("steady atomic load: %d allocations, %lu transient failures, %llu balance passes\n",
	       LOAD_THREADS * LOAD_ITERS, failures, (unsigned long long)st.nr_balance_passes);
	CHECK(pcpu_verify() == 0 && st.nr_cur_alloc == 0, "verify after the load");
	return 0;
}

static void run(const char *name, int (*fn)(long), long arg)
{
	KIT_EXPECT(kit_fork(fn, arg, 0, 0), KIT_EXIT(0), "%s", name);
}

int main(int argc, char **argv)
{
	test_seed(argc, argv);
	run("marks", child_marks, 0);
	run("release 4 B", child_release, 0);
	run("release mixed", child_release, 1);
	run("sparse", child_sparse, 0);
	run("thread", child_thread, 0);
	run("fork and the wake flag", child_fork_wake, 0);
	run("steady atomic load", child_steady_atomic, 0);
	TEST_DONE();
}
