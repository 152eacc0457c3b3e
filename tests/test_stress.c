/*
 * test_stress.c - many threads against one allocator, for a given number of
 * operations.
 *
 * 8 worker threads (more than the CI machine's cores) on 4 CPU slots with
 * 64 KiB units (so chunks come and go), the background balancer running.
 * Each worker allocates (sizes from 1 byte to a whole unit, alignments 4 to
 * a page, a fifth PCPU_ATOMIC, a few PCPU_RESERVED), writes a pattern into
 * every unit, checks it before freeing, hands objects to other threads
 * through an exchange (so most frees are not made by the allocating
 * thread), rewrites patterns, increments shared per-CPU counters.  Every
 * 2000 steps a worker runs pcpu_verify, another pcpu_balance, another forks:
 * the child checks the forking thread's objects, frees some, allocates and
 * frees, verifies and exits.  At the end: every object intact, counters
 * exact, nr_cur_alloc equal to what the threads hold, and after freeing
 * everything and balancing, a clean allocator.
 *
 * A plain allocation must succeed (the address space is large and no fault
 * is injected); atomic and reserved ones may fail with ENOMEM only.
 *
 * Usage: test_stress [seed [operations]]
 *   environment: PCPU_SEED, PCPU_STRESS_OPS (default 1000000 operations in
 *   all; the second phase makes a thirtieth as many allocations), PCPU_STRESS_THREADS
 *   (default 8).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "kit.h"
#include "percpu.h"

#define MAX_THREADS 64
#define LOCAL_MAX 256
#define XCHG_MAX 128
#define NCOUNTERS 4
#define NR_CPUS 4
#define UNIT (64u << 10)
#define PERIOD 2000
#define FORK_CHILD_ALARM 60  /* seconds a fork child of a worker may take */

/* A pattern object (kit.h; size rounded to 4) and who allocated it. */
struct obj {
	struct kit_obj o;
	int owner;             /* the allocating thread, -1 in a fork child */
};

struct worker {
	int id;
	uint64_t rng;
	int n;
	struct obj objs[LOCAL_MAX];
	unsigned long steps, allocs, atomic, atomic_fail, reserved, reserved_fail, frees, xfrees,
		given, taken, incs[NCOUNTERS], verifies, balances, forks;
};

static uint64_t g_seed;
static struct worker *workers;
static int nthreads;
static unsigned long steps_per_thread;
static struct obj xchg[XCHG_MAX];
static int nxchg;
static pthread_mutex_t xchg_lock = PTHREAD_MUTEX_INITIALIZER;
static long *counters[NCOUNTERS];
static size_t page_size;

/* ---- one worker step ------------------------------------------------------ */

static size_t pick_size(struct worker *w)
{
	unsigned r = (unsigned)rng_below_r(&w->rng, 100);

	if (r < 60)
		return 1 + rng_below_r(&w->rng, 64);
	if (r < 85)
		return 65 + rng_below_r(&w->rng, 960);
	if (r < 95)
		return 1025 + rng_below_r(&w->rng, 7 * 1024);
	if (r < 99)
		return 8193 + rng_below_r(&w->rng, UNIT / 2 - 8192);
	return UNIT;
}

static void worker_alloc(struct worker *w)
{
	size_t size = pick_size(w), rsize = (size + 3) & ~(size_t)3;
	size_t align = (size_t)1 << (rng_below_r(&w->rng, 4) ? rng_below_r(&w->rng, 5) :
							  rng_below_r(&w->rng, 13));
	unsigned r = (unsigned)rng_below_r(&w->rng, 100);
	unsigned flags = r < 20 ? PCPU_ATOMIC | PCPU_NOWARN :
			 r < 23 && size <= 256 ? PCPU_RESERVED | PCPU_NOWARN : 0;
	void *h;

	errno = 0;
	h = pcpu_alloc_flags(size, align, flags);
	w->atomic += !!(flags & PCPU_ATOMIC);
	w->reserved += !!(flags & PCPU_RESERVED);
	if (!h) {
		TCHECK(flags && errno == ENOMEM, "thread %d: alloc(%zu, %zu, %#x) failed, errno %d",
		       w->id, size, align, flags, errno);
		w->atomic_fail += !!(flags & PCPU_ATOMIC);
		w->reserved_fail += !!(flags & PCPU_RESERVED);
		return;
	}
	w->allocs++;
	TCHECK(kit_zeroed(h, rsize, align < 4 ? 4 : align), "thread %d: %p (%zu B) not zeroed/aligned",
	       w->id, h, rsize);
	TCHECK(pcpu_alloc_size(h) == rsize, "thread %d: alloc_size %zu, want %zu", w->id,
	       pcpu_alloc_size(h), rsize);
	w->objs[w->n] = (struct obj){ { h, rsize, (uint32_t)(w->id << 24) ^ (uint32_t)w->steps }, w->id };
	kit_fill(&w->objs[w->n++].o);
}

static void worker_free(struct worker *w, int k)
{
	bool foreign = w->objs[k].owner != w->id;

	TCHECK(kit_intact(&w->objs[k].o), "thread %d: object %p tag %#x overwritten", w->id,
	       w->objs[k].o.h, w->objs[k].o.tag);
	pcpu_free(w->objs[k].o.h);
	w->objs[k] = w->objs[--w->n];
	w->frees++;
	w->xfrees += foreign;
}

static void child_after_fork(struct worker *w)
{
	static struct obj mine[64];
	int n = 0, bad = 0;

	alarm(FORK_CHILD_ALARM);
	for (int k = 0; k < w->n; k++)
		bad += !kit_intact(&w->objs[k].o);
	for (int k = 0; k < w->n; k += 2)
		pcpu_free(w->objs[k].o.h);        /* the parent's handles are valid here */
	for (int i = 0; i < 400; i++) {
		if (n < 64 && (n == 0 || rng_below_r(&w->rng, 100) < 60)) {
			size_t size = 4 * (1 + rng_below_r(&w->rng, i % 10 ? 64 : UNIT / 8));
			void *h = pcpu_alloc(size, 4);

			if (!h || !kit_zeroed(h, size, 4)) {
				bad++;
				continue;
			}
			mine[n] = (struct obj){ { h, size, 0xc0de0000u + (uint32_t)i }, -1 };
			kit_fill(&mine[n++].o);
		} else {
			int k = (int)rng_below_r(&w->rng, (uint64_t)n);

			bad += !kit_intact(&mine[k].o);
			pcpu_free(mine[k].o.h);
			mine[k] = mine[--n];
		}
	}
	for (int k = 1; k < w->n; k += 2)
		bad += !kit_intact(&w->objs[k].o);
	bad += pcpu_verify() != 0;
	bad += pcpu_balance() != 0;
	bad += pcpu_verify() != 0;
	_exit(bad ? 1 : 0);
}

static void worker_fork(struct worker *w)
{
	bool killed = false;
	int status = 0;
	pid_t pid = fork();

	TCHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		child_after_fork(w);
	if (pid < 0)
		return;
	TCHECK(child_wait(pid, &status, FORK_CHILD_ALARM + CHILD_WAIT_GRACE, &killed) == pid && !killed &&
	       WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "thread %d: fork child status %#x%s", w->id, status, killed ? " (hung, killed)" : "");
	w->forks++;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (w->steps = 0; w->steps < steps_per_thread; w->steps++) {
		unsigned r = (unsigned)rng_below_r(&w->rng, 100);

		if (r < 40 && w->n < LOCAL_MAX) {
			worker_alloc(w);
		} else if (r < 65 && w->n) {
			worker_free(w, (int)rng_below_r(&w->rng, (uint64_t)w->n));
		} else if (r < 75 && w->n) {              /* hand one to another thread */
			pthread_mutex_lock(&xchg_lock);
			if (nxchg < XCHG_MAX) {
				int k = (int)rng_below_r(&w->rng, (uint64_t)w->n);

				xchg[nxchg++] = w->objs[k];
				w->objs[k] = w->objs[--w->n];
				w->given++;
			}
			pthread_mutex_unlock(&xchg_lock);
		} else if (r < 85 && w->n < LOCAL_MAX) {  /* take one: free it or keep it */
			pthread_mutex_lock(&xchg_lock);
			bool got = nxchg > 0;

			if (got) {
				int k = (int)rng_below_r(&w->rng, (uint64_t)nxchg);

				w->objs[w->n++] = xchg[k];
				xchg[k] = xchg[--nxchg];
			}
			pthread_mutex_unlock(&xchg_lock);
			w->taken += got;
			if (got && rng_below_r(&w->rng, 3))
				worker_free(w, w->n - 1);
		} else if (r < 90 && w->n) {              /* a new pattern */
			struct kit_obj *o = &w->objs[rng_below_r(&w->rng, (uint64_t)w->n)].o;

			TCHECK(kit_intact(o), "thread %d: object %p before rewrite", w->id, o->h);
			o->tag = ~o->tag + (uint32_t)w->steps;
			kit_fill(o);
		} else if (r < 95) {
			int c = (int)rng_below_r(&w->rng, NCOUNTERS);

			this_cpu_inc(counters[c]);
			w->incs[c]++;
		} else if (w->n) {
			struct kit_obj *o = &w->objs[rng_below_r(&w->rng, (uint64_t)w->n)].o;

			TCHECK(kit_intact(o) && pcpu_alloc_size(o->h) == o->size, "thread %d: spot check %p",
			       w->id, o->h);
		}
		if (w->steps % PERIOD == PERIOD - 1) {
			switch (w->id % 4) {
			case 0:
				TCHECK(pcpu_verify() == 0, "thread %d: pcpu_verify at step %lu", w->id,
				       w->steps);
				w->verifies++;
				break;
			case 1:
				TCHECK(pcpu_balance() == 0, "pcpu_balance");
				w->balances++;
				break;
			case 2:
				worker_fork(w);
				break;
			default:
				break;
			}
		}
	}
	return NULL;
}

static unsigned long env_ul(const char *name, unsigned long dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : dflt;
}

/* ---- phase 1: the mixed workload ------------------------------------------- */

static int phase_mixed(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = NR_CPUS, .min_unit_size = UNIT };
	struct pcpu_stats st;
	struct worker sum = { 0 };
	uint64_t held = 0;
	pthread_t tids[MAX_THREADS];

	(void)arg;
	workers = calloc((size_t)nthreads, sizeof(*workers));
	REQUIRE(workers, "calloc");
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
	REQUIRE(pcpu_stats_get(&st) == 0 && st.unit_size == UNIT, "64 KiB units");
	page_size = st.page_size;
	for (int c = 0; c < NCOUNTERS; c++)
		REQUIRE((counters[c] = pcpu_alloc(sizeof(long), sizeof(long))), "counter");
	for (int i = 0; i < nthreads; i++) {
		workers[i].id = i;
		workers[i].rng = g_seed * 0x9e3779b97f4a7c15ull + (uint64_t)i + 1;
	}
	kit_start_threads(tids, nthreads, worker_main, workers, sizeof(workers[0]));
	kit_join_threads(tids, nthreads, NULL);
	for (int i = 0; i < nthreads; i++) {
		struct worker *w = &workers[i];

		sum.steps += w->steps, sum.allocs += w->allocs, sum.frees += w->frees;
		sum.xfrees += w->xfrees, sum.atomic += w->atomic, sum.atomic_fail += w->atomic_fail;
		sum.reserved += w->reserved, sum.reserved_fail += w->reserved_fail;
		sum.given += w->given, sum.forks += w->forks, sum.verifies += w->verifies;
		sum.balances += w->balances;
		for (int c = 0; c < NCOUNTERS; c++)
			sum.incs[c] += w->incs[c];
	}
	CHECK(check_thread_failed == 0, "%lu failures in the threads", check_thread_failed);

	/* Everything held is intact and accounted for; counters are exact. */
	for (int i = 0; i < nthreads; i++)
		for (int k = 0; k < workers[i].n; k++, held++)
			CHECK(kit_intact(&workers[i].objs[k].o), "thread %d object %d at the end", i, k);
	for (int k = 0; k < nxchg; k++, held++)
		CHECK(kit_intact(&xchg[k].o), "exchange object %d at the end", k);
	CHECK(kit_cur_alloc() == held + NCOUNTERS, "nr_cur_alloc %llu, held %llu + %d counters",
	      (unsigned long long)kit_cur_alloc(), (unsigned long long)held, NCOUNTERS);
	for (int c = 0; c < NCOUNTERS; c++)
		CHECK(pcpu_sum(counters[c]) == (long)sum.incs[c], "counter %d: %ld, want %lu", c,
		      pcpu_sum(counters[c]), sum.incs[c]);
	CHECK(pcpu_verify() == 0, "verify after the threads");

	for (int i = 0; i < nthreads; i++)
		while (workers[i].n)
			worker_free(&workers[i], workers[i].n - 1);
	while (nxchg)
		pcpu_free(xchg[--nxchg].o.h);
	for (int c = 0; c < NCOUNTERS; c++)
		pcpu_free(counters[c]);
	CHECK(pcpu_balance() == 0 && pcpu_balance() == 0 && pcpu_verify() == 0, "balance, verify");
	REQUIRE(pcpu_stats_get(&st) == 0, "stats");
	CHECK(st.nr_cur_alloc == 0 && st.nr_chunks <= 1, "after freeing everything: %llu live, %u chunks",
	      (unsigned long long)st.nr_cur_alloc, st.nr_chunks);
	void *h = pcpu_alloc(UNIT, page_size);
	CHECK(h && kit_zeroed(h, UNIT, page_size), "a whole-unit allocation at the end");
	pcpu_free(h);

	printf("stress: %lu operations: %lu allocations (%lu atomic, %lu failed; %lu reserved, %lu "
	       "failed), %lu frees (%lu by another thread than the allocating one), %lu handed over, "
	       "%lu forks, %lu verifies, %lu balance calls\n",
	       sum.steps, sum.allocs, sum.atomic, sum.atomic_fail, sum.reserved, sum.reserved_fail,
	       sum.frees, sum.xfrees, sum.given, sum.forks, sum.verifies, sum.balances);
	printf("allocator: %llu allocations, %llu chunks created, %llu destroyed, %llu balance passes "
	       "(%llu pages populated, %llu depopulated by the balancer), %llu pages populated\n",
	       (unsigned long long)st.nr_alloc, (unsigned long long)st.nr_chunks_created,
	       (unsigned long long)st.nr_chunks_destroyed, (unsigned long long)st.nr_balance_passes,
	       (unsigned long long)st.nr_balance_populated,
	       (unsigned long long)st.nr_balance_depopulated,
	       (unsigned long long)st.nr_pages_populated);
	return 0;
}

/* ---- phase 2: allocations against chunk destruction ------------------------- */

/*
 * One thread runs pcpu_balance() in a loop, one makes chunks fully free
 * (allocate a whole unit, free it), the main thread takes half-unit atomic
 * allocations -- too big for the first chunk, so they come from the
 * populated pages of those free chunks -- writes them in every unit and
 * frees them.  A chunk the balancer destroys must not be handed out
 * meanwhile: writing such an object would fault, and pcpu_verify (after
 * every allocation) or the next pcpu_free would find it missing.
 */
static int race_stop;

static void *race_balancer(void *arg)
{
	unsigned long *n = arg;

	for (; !__atomic_load_n(&race_stop, __ATOMIC_RELAXED); ++*n)
		TCHECK(pcpu_balance() == 0, "pcpu_balance");
	return NULL;
}

static void *race_churn(void *arg)
{
	unsigned long *n = arg;

	while (!__atomic_load_n(&race_stop, __ATOMIC_RELAXED)) {
		void *h = pcpu_alloc(UNIT, 4);

		TCHECK(h != NULL, "whole-unit allocation: %s", strerror(errno));
		pcpu_free(h);
		++*n;
	}
	return NULL;
}

static int phase_destroy_race(long rounds)
{
	struct pcpu_config cfg = { .nr_cpus = 2, .min_unit_size = UNIT, .flags = PCPU_CFG_NO_BALANCER };
	unsigned long passes = 0, churned = 0, got = 0;
	pthread_t tb, tc;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
	kit_start_threads(&tb, 1, race_balancer, &passes, 0);
	kit_start_threads(&tc, 1, race_churn, &churned, 0);
	/* rounds successful allocations, or 100 times as many attempts */
	for (unsigned long i = 0; got < (unsigned long)rounds && i < 100 * (unsigned long)rounds; i++) {
		uint32_t *h = pcpu_alloc_flags(UNIT / 2, 4, PCPU_ATOMIC | PCPU_NOWARN);

		if (!h) {
			sched_yield();
			continue;
		}
		got++;
		/* one word in 256 of the pattern: every page, not every byte */
		for (unsigned cpu = 0; cpu < 2; cpu++)
			for (size_t k = 0; k < UNIT / 2 / 4; k += 256)
				per_cpu_ptr(h, cpu)[k] = kit_pattern((uint32_t)i, cpu, k);
		for (unsigned cpu = 0; cpu < 2; cpu++)
			for (size_t k = 0; k < UNIT / 2 / 4; k += 256)
				TCHECK(per_cpu_ptr(h, cpu)[k] == kit_pattern((uint32_t)i, cpu, k),
				       "object %p overwritten", (void *)h);
		pcpu_free(h);
		/* verify takes both locks: it also paces the other threads */
		TCHECK(pcpu_verify() == 0, "pcpu_verify after %lu allocations", got);
	}
	__atomic_store_n(&race_stop, 1, __ATOMIC_RELAXED);
	kit_join_threads(&tb, 1, NULL);
	kit_join_threads(&tc, 1, NULL);
	CHECK(check_thread_failed == 0, "%lu failures", check_thread_failed);
	CHECK(pcpu_verify() == 0 && kit_cur_alloc() == 0, "verify at the end");
	CHECK(got > 0 && churned > 0, "the race phase ran (%lu allocations, %lu chunks)", got, churned);
	printf("destroy race: %lu atomic half-unit allocations, %lu chunks freed, %lu balance "
	       "passes\n", got, churned, passes);
	return 0;
}

int main(int argc, char **argv)
{
	g_seed = test_seed(argc, argv);
	unsigned long ops = argc > 2 ? strtoul(argv[2], NULL, 0) : env_ul("PCPU_STRESS_OPS", 1000000);

	nthreads = (int)env_ul("PCPU_STRESS_THREADS", 8);
	REQUIRE(nthreads >= 1 && nthreads <= MAX_THREADS, "1 to %d threads", MAX_THREADS);
	steps_per_thread = ops / (unsigned long)nthreads;
	printf("%d threads, %d CPU slots, %lu operations\n", nthreads, NR_CPUS,
	       steps_per_thread * (unsigned long)nthreads);
	/* Each phase in a forked child (one allocator configuration per process). */
	KIT_EXPECT(kit_fork(phase_mixed, 0, 0, 0), KIT_EXIT(0), "mixed workload");
	KIT_EXPECT(kit_fork(phase_destroy_race, (long)(ops / 30 + 1), 0, 0), KIT_EXIT(0),
		   "allocations against chunk destruction");
	TEST_DONE();
}
