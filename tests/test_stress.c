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
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "percpu.h"

#define MAX_THREADS 64
#define LOCAL_MAX 256
#define XCHG_MAX 128
#define NCOUNTERS 4
#define NR_CPUS 4
#define UNIT (64u << 10)
#define PERIOD 2000

struct obj {
	uint32_t *h;
	size_t size;           /* rounded to 4 */
	uint32_t tag;
	int owner;             /* the allocating thread */
};

struct worker {
	int id;
	uint64_t rng;
	int n;
	struct obj objs[LOCAL_MAX];
	unsigned long steps, allocs, atomic, atomic_fail, reserved, reserved_fail, frees, xfrees,
		given, taken, incs[NCOUNTERS], verifies, balances, forks;
	pthread_t tid;
};

static struct worker *workers;
static int nthreads;
static unsigned long steps_per_thread;
static struct obj xchg[XCHG_MAX];
static int nxchg;
static pthread_mutex_t xchg_lock = PTHREAD_MUTEX_INITIALIZER;
static long *counters[NCOUNTERS];
static unsigned long failures;
static size_t page_size;

/* Thread-safe failure report: a line per failure (the first 20). */
#define TCHECK(cond, ...)                                                          \
	do {                                                                       \
		if (!(cond) && __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED) < 20) { \
			fprintf(stderr, "%s:%d: %s failed: ", __FILE__, __LINE__, #cond);  \
			fprintf(stderr, __VA_ARGS__);                              \
			fputc('\n', stderr);                                       \
		}                                                                  \
	} while (0)

static uint64_t trng(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}
static uint64_t trng_below(uint64_t *s, uint64_t n) { return n ? trng(s) % n : 0; }

static uint32_t pat(uint32_t tag, unsigned cpu, size_t i)
{
	uint32_t x = tag * 0x9e3779b1u ^ (cpu + 1) * 0x85ebca77u ^ (uint32_t)i * 0xc2b2ae3du;

	return x ^ x >> 15;
}

static void fill(const struct obj *o)
{
	for (unsigned cpu = 0; cpu < NR_CPUS; cpu++) {
		uint32_t *w = per_cpu_ptr(o->h, cpu);

		for (size_t i = 0; i < o->size / 4; i++)
			w[i] = pat(o->tag, cpu, i);
	}
}

static bool intact(const struct obj *o)
{
	for (unsigned cpu = 0; cpu < NR_CPUS; cpu++) {
		const uint32_t *w = per_cpu_ptr(o->h, cpu);

		for (size_t i = 0; i < o->size / 4; i++)
			if (w[i] != pat(o->tag, cpu, i))
				return false;
	}
	return true;
}

static bool zeroed(const void *h, size_t size, size_t align)
{
	for (unsigned cpu = 0; cpu < NR_CPUS; cpu++) {
		const uint32_t *w = pcpu_ptr(h, cpu);

		if ((uintptr_t)w % align)
			return false;
		for (size_t i = 0; i < size / 4; i++)
			if (w[i])
				return false;
	}
	return true;
}

static uint64_t cur_alloc(void)
{
	struct pcpu_stats st;

	REQUIRE(pcpu_stats_get(&st) == 0, "stats");
	return st.nr_cur_alloc;
}

/* ---- one worker step ------------------------------------------------------ */

static size_t pick_size(struct worker *w)
{
	unsigned r = (unsigned)trng_below(&w->rng, 100);

	if (r < 60)
		return 1 + trng_below(&w->rng, 64);
	if (r < 85)
		return 65 + trng_below(&w->rng, 960);
	if (r < 95)
		return 1025 + trng_below(&w->rng, 7 * 1024);
	if (r < 99)
		return 8193 + trng_below(&w->rng, UNIT / 2 - 8192);
	return UNIT;
}

static void worker_alloc(struct worker *w)
{
	size_t size = pick_size(w), rsize = (size + 3) & ~(size_t)3;
	size_t align = (size_t)1 << (trng_below(&w->rng, 4) ? trng_below(&w->rng, 5) :
							  trng_below(&w->rng, 13));
	unsigned r = (unsigned)trng_below(&w->rng, 100);
	unsigned flags = r < 20 ? PCPU_ATOMIC | PCPU_NOWARN :
			 r < 23 && size <= 256 ? PCPU_RESERVED | PCPU_NOWARN : 0;
	uint32_t *h;

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
	TCHECK(zeroed(h, rsize, align < 4 ? 4 : align), "thread %d: %p (%zu B) not zeroed/aligned",
	       w->id, (void *)h, rsize);
	TCHECK(pcpu_alloc_size(h) == rsize, "thread %d: alloc_size %zu, want %zu", w->id,
	       pcpu_alloc_size(h), rsize);
	w->objs[w->n] = (struct obj){ h, rsize, (uint32_t)(w->id << 24) ^ (uint32_t)w->steps, w->id };
	fill(&w->objs[w->n++]);
}

static void worker_free(struct worker *w, int k)
{
	bool foreign = w->objs[k].owner != w->id;

	TCHECK(intact(&w->objs[k]), "thread %d: object %p tag %#x overwritten", w->id,
	       (void *)w->objs[k].h, w->objs[k].tag);
	pcpu_free(w->objs[k].h);
	w->objs[k] = w->objs[--w->n];
	w->frees++;
	w->xfrees += foreign;
}

static void child_after_fork(struct worker *w)
{
	static struct obj mine[64];
	int n = 0, bad = 0;

	alarm(60);
	for (int k = 0; k < w->n; k++)
		bad += !intact(&w->objs[k]);
	for (int k = 0; k < w->n; k += 2)
		pcpu_free(w->objs[k].h);          /* the parent's handles are valid here */
	for (int i = 0; i < 400; i++) {
		if (n < 64 && (n == 0 || trng_below(&w->rng, 100) < 60)) {
			size_t size = 4 * (1 + trng_below(&w->rng, i % 10 ? 64 : UNIT / 8));
			uint32_t *h = pcpu_alloc(size, 4);

			if (!h || !zeroed(h, size, 4)) {
				bad++;
				continue;
			}
			mine[n] = (struct obj){ h, size, 0xc0de0000u + (uint32_t)i, -1 };
			fill(&mine[n++]);
		} else {
			int k = (int)trng_below(&w->rng, (uint64_t)n);

			bad += !intact(&mine[k]);
			pcpu_free(mine[k].h);
			mine[k] = mine[--n];
		}
	}
	for (int k = 1; k < w->n; k += 2)
		bad += !intact(&w->objs[k]);
	bad += pcpu_verify() != 0;
	bad += pcpu_balance() != 0;
	bad += pcpu_verify() != 0;
	_exit(bad ? 1 : 0);
}

static void worker_fork(struct worker *w)
{
	int status;
	pid_t pid = fork();

	TCHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		child_after_fork(w);
	if (pid < 0)
		return;
	TCHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "thread %d: fork child status %#x", w->id, status);
	w->forks++;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (w->steps = 0; w->steps < steps_per_thread; w->steps++) {
		unsigned r = (unsigned)trng_below(&w->rng, 100);

		if (r < 40 && w->n < LOCAL_MAX) {
			worker_alloc(w);
		} else if (r < 65 && w->n) {
			worker_free(w, (int)trng_below(&w->rng, (uint64_t)w->n));
		} else if (r < 75 && w->n) {              /* hand one to another thread */
			pthread_mutex_lock(&xchg_lock);
			if (nxchg < XCHG_MAX) {
				int k = (int)trng_below(&w->rng, (uint64_t)w->n);

				xchg[nxchg++] = w->objs[k];
				w->objs[k] = w->objs[--w->n];
				w->given++;
			}
			pthread_mutex_unlock(&xchg_lock);
		} else if (r < 85 && w->n < LOCAL_MAX) {  /* take one: free it or keep it */
			pthread_mutex_lock(&xchg_lock);
			bool got = nxchg > 0;

			if (got) {
				int k = (int)trng_below(&w->rng, (uint64_t)nxchg);

				w->objs[w->n++] = xchg[k];
				xchg[k] = xchg[--nxchg];
			}
			pthread_mutex_unlock(&xchg_lock);
			w->taken += got;
			if (got && trng_below(&w->rng, 3))
				worker_free(w, w->n - 1);
		} else if (r < 90 && w->n) {              /* a new pattern */
			struct obj *o = &w->objs[trng_below(&w->rng, (uint64_t)w->n)];

			TCHECK(intact(o), "thread %d: object %p before rewrite", w->id, (void *)o->h);
			o->tag = ~o->tag + (uint32_t)w->steps;
			fill(o);
		} else if (r < 95) {
			int c = (int)trng_below(&w->rng, NCOUNTERS);

			this_cpu_inc(counters[c]);
			w->incs[c]++;
		} else if (w->n) {
			struct obj *o = &w->objs[trng_below(&w->rng, (uint64_t)w->n)];

			TCHECK(intact(o) && pcpu_alloc_size(o->h) == o->size, "thread %d: spot check %p",
			       w->id, (void *)o->h);
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

static int phase_mixed(uint64_t seed)
{
	struct pcpu_config cfg = { .nr_cpus = NR_CPUS, .min_unit_size = UNIT };
	struct pcpu_stats st;
	struct worker sum = { 0 };
	uint64_t held = 0;

	workers = calloc((size_t)nthreads, sizeof(*workers));
	REQUIRE(workers, "calloc");
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
	REQUIRE(pcpu_stats_get(&st) == 0 && st.unit_size == UNIT, "64 KiB units");
	page_size = st.page_size;
	for (int c = 0; c < NCOUNTERS; c++)
		REQUIRE((counters[c] = pcpu_alloc(sizeof(long), sizeof(long))), "counter");
	for (int i = 0; i < nthreads; i++) {
		workers[i].id = i;
		workers[i].rng = seed * 0x9e3779b97f4a7c15ull + (uint64_t)i + 1;
		REQUIRE(pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]) == 0, "thread");
	}
	for (int i = 0; i < nthreads; i++) {
		struct worker *w = &workers[i];

		pthread_join(w->tid, NULL);
		sum.steps += w->steps, sum.allocs += w->allocs, sum.frees += w->frees;
		sum.xfrees += w->xfrees, sum.atomic += w->atomic, sum.atomic_fail += w->atomic_fail;
		sum.reserved += w->reserved, sum.reserved_fail += w->reserved_fail;
		sum.given += w->given, sum.forks += w->forks, sum.verifies += w->verifies;
		sum.balances += w->balances;
		for (int c = 0; c < NCOUNTERS; c++)
			sum.incs[c] += w->incs[c];
	}
	CHECK(failures == 0, "%lu failures in the threads", failures);

	/* Everything held is intact and accounted for; counters are exact. */
	for (int i = 0; i < nthreads; i++)
		for (int k = 0; k < workers[i].n; k++, held++)
			CHECK(intact(&workers[i].objs[k]), "thread %d object %d at the end", i, k);
	for (int k = 0; k < nxchg; k++, held++)
		CHECK(intact(&xchg[k]), "exchange object %d at the end", k);
	CHECK(cur_alloc() == held + NCOUNTERS, "nr_cur_alloc %llu, held %llu + %d counters",
	      (unsigned long long)cur_alloc(), (unsigned long long)held, NCOUNTERS);
	for (int c = 0; c < NCOUNTERS; c++)
		CHECK(pcpu_sum(counters[c]) == (long)sum.incs[c], "counter %d: %ld, want %lu", c,
		      pcpu_sum(counters[c]), sum.incs[c]);
	CHECK(pcpu_verify() == 0, "verify after the threads");

	for (int i = 0; i < nthreads; i++)
		while (workers[i].n)
			worker_free(&workers[i], workers[i].n - 1);
	while (nxchg)
		pcpu_free(xchg[--nxchg].h);
	for (int c = 0; c < NCOUNTERS; c++)
		pcpu_free(counters[c]);
	CHECK(pcpu_balance() == 0 && pcpu_balance() == 0 && pcpu_verify() == 0, "balance, verify");
	REQUIRE(pcpu_stats_get(&st) == 0, "stats");
	CHECK(st.nr_cur_alloc == 0 && st.nr_chunks <= 1, "after freeing everything: %llu live, %u chunks",
	      (unsigned long long)st.nr_cur_alloc, st.nr_chunks);
	void *h = pcpu_alloc(UNIT, page_size);
	CHECK(h && zeroed(h, UNIT, page_size), "a whole-unit allocation at the end");
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

static int phase_destroy_race(unsigned long rounds)
{
	struct pcpu_config cfg = { .nr_cpus = 2, .min_unit_size = UNIT, .flags = PCPU_CFG_NO_BALANCER };
	unsigned long passes = 0, churned = 0, got = 0;
	pthread_t tb, tc;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
	REQUIRE(pthread_create(&tb, NULL, race_balancer, &passes) == 0 &&
		pthread_create(&tc, NULL, race_churn, &churned) == 0, "threads");
	/* rounds successful allocations, or 100 times as many attempts */
	for (unsigned long i = 0; got < rounds && i < 100 * rounds; i++) {
		uint32_t *h = pcpu_alloc_flags(UNIT / 2, 4, PCPU_ATOMIC | PCPU_NOWARN);
		struct obj o = { h, UNIT / 2, (uint32_t)i, 0 };

		if (!h) {
			sched_yield();
			continue;
		}
		got++;
		for (unsigned cpu = 0; cpu < 2; cpu++) {
			uint32_t *w = per_cpu_ptr(h, cpu);

			for (size_t k = 0; k < o.size / 4; k += 256)
				w[k] = pat(o.tag, cpu, k);
		}
		for (unsigned cpu = 0; cpu < 2; cpu++) {
			const uint32_t *w = per_cpu_ptr(h, cpu);

			for (size_t k = 0; k < o.size / 4; k += 256)
				TCHECK(w[k] == pat(o.tag, cpu, k), "object %p overwritten", (void *)h);
		}
		pcpu_free(h);
		/* verify takes both locks: it also paces the other threads */
		TCHECK(pcpu_verify() == 0, "pcpu_verify after %lu allocations", got);
	}
	__atomic_store_n(&race_stop, 1, __ATOMIC_RELAXED);
	pthread_join(tb, NULL);
	pthread_join(tc, NULL);
	CHECK(failures == 0, "%lu failures", failures);
	CHECK(pcpu_verify() == 0 && cur_alloc() == 0, "verify at the end");
	CHECK(got > 0 && churned > 0, "the race phase ran (%lu allocations, %lu chunks)", got, churned);
	printf("destroy race: %lu atomic half-unit allocations, %lu chunks freed, %lu balance "
	       "passes\n", got, churned, passes);
	return 0;
}

/* Run fn in a forked child (one allocator configuration per process). */
static void run_phase(const char *what, int (*fn)(uint64_t), uint64_t arg)
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	REQUIRE(pid >= 0, "fork");
	if (pid == 0) {
		int rc = fn(arg);

		fflush(stdout);
		_exit(rc ? rc : check_failed ? 1 : 0);
	}
	REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: %s %d", what,
	      WIFSIGNALED(status) ? "killed by signal" : "exit status",
	      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

static int destroy_race(uint64_t rounds)
{
	return phase_destroy_race((unsigned long)rounds);
}

int main(int argc, char **argv)
{
	uint64_t seed = test_seed(argc, argv);
	unsigned long ops = argc > 2 ? strtoul(argv[2], NULL, 0) : env_ul("PCPU_STRESS_OPS", 1000000);

	nthreads = (int)env_ul("PCPU_STRESS_THREADS", 8);
	REQUIRE(nthreads >= 1 && nthreads <= MAX_THREADS, "1 to %d threads", MAX_THREADS);
	steps_per_thread = ops / (unsigned long)nthreads;
	printf("%d threads, %d CPU slots, %lu operations\n", nthreads, NR_CPUS,
	       steps_per_thread * (unsigned long)nthreads);
	run_phase("mixed workload", phase_mixed, seed);
	run_phase("allocations against chunk destruction", destroy_race, ops / 30 + 1);
	TEST_DONE();
}
