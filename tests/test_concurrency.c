/*
 * test_concurrency.c - threads and fork.  Each scenario runs in a forked
 * child with its own configuration; the parent checks its exit status.
 *
 *   threads   6 threads allocate (4 B..2 KiB, align up to 256, some
 *             PCPU_ATOMIC), fill a per-object per-CPU pattern, check and free,
 *             hand objects to each other through an exchange array, with the
 *             balancer thread running; at the end every pattern is intact,
 *             pcpu_verify() is clean and nr_cur_alloc equals what is held.
 *   counter   this_cpu_inc/add/sub from 6 threads sums exactly.
 *   fork      the child sees the parent's objects, allocates (new chunks),
 *             frees parent objects, verifies; the parent is untouched; fork
 *             while other threads allocate leaves the child usable (24
 *             times; each child's balancer destroys chunks while it
 *             allocates, which is how the balance_free() race showed up).
 *   handles   writing or reading through a handle faults and leaves every
 *             CPU's copy intact; memory of a destroyed chunk faults.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "pool_init.h"
#include "pool_verify.h"
#include "kit.h"
#include "percpu.h"

#define NTHREADS 6

static uint64_t g_seed;

/* Run fn(arg) in a forked child (a hang of 120 s is a failure). */
static struct kit_child *run_child(int (*fn)(long), long arg)
{
	return kit_fork(fn, arg, g_seed + (uint64_t)arg, 120);
}

/* ---- 1. threads ------------------------------------------------------------ */

#define LOCAL_MAX 300
#define XCHG_MAX 64
#define STEPS 25000

struct worker {
	int id;
	uint64_t rng;
	int n;
	struct kit_obj objs[LOCAL_MAX];
	unsigned long atomic_fail, allocs;
};

static struct worker workers[NTHREADS];
static struct kit_obj xchg[XCHG_MAX];
static int nxchg;
static pthread_mutex_t xchg_lock = PTHREAD_MUTEX_INITIALIZER;
static int stop_workers;
static unsigned long progress;
static unsigned worker_steps = STEPS;   /* the fork test runs them until stopped */

static bool worker_alloc(struct worker *w, unsigned tag)
{
	unsigned r = (unsigned)rng_below_r(&w->rng, 100);
	size_t size = r < 70 ? 4 + rng_below_r(&w->rng, 61) : 4 + rng_below_r(&w->rng, 2045);
	size_t align = (size_t)1 << rng_below_r(&w->rng, 9);
	bool atomic = rng_below_r(&w->rng, 5) == 0;
	void *h;

	errno = 0;
	h = pcpu_alloc_flags(size, align, atomic ? PCPU_ATOMIC | PCPU_NOWARN : 0);
	if (!h) {
		TCHECK(atomic && errno == ENOMEM, "thread %d: alloc %zu/%zu%s failed, errno %d", w->id,
		       size, align, atomic ? " atomic" : "", errno);
		w->atomic_fail++;
		return false;
	}
	w->allocs++;
	TCHECK(kit_zeroed(h, size, align < 4 ? 4 : align), "thread %d: %p not zeroed or aligned", w->id, h);
	TCHECK(pcpu_alloc_size(h) == ((size + 3) & ~(size_t)3), "thread %d: alloc_size", w->id);
	kit_keep(w->objs, &w->n, LOCAL_MAX, h, size, tag);
	return true;
}

static void worker_free(struct worker *w, int k)
{
	uint32_t tag = w->objs[k].tag;

	TCHECK(kit_drop(w->objs, &w->n, k), "thread %d: object tag %#x overwritten", w->id, tag);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (unsigned step = 0; step < worker_steps && !__atomic_load_n(&stop_workers, __ATOMIC_RELAXED);
	     step++) {
		unsigned r = (unsigned)rng_below_r(&w->rng, 100);

		if (r < 45 && w->n < LOCAL_MAX) {
			worker_alloc(w, (unsigned)w->id << 24 | step);
		} else if (r < 75 && w->n) {
			worker_free(w, (int)rng_below_r(&w->rng, (uint64_t)w->n));
		} else if (r < 85 && w->n) {           /* give one away */
			pthread_mutex_lock(&xchg_lock);
			if (nxchg < XCHG_MAX) {
				int k = (int)rng_below_r(&w->rng, (uint64_t)w->n);
				xchg[nxchg++] = w->objs[k];
				w->objs[k] = w->objs[--w->n];
			}
			pthread_mutex_unlock(&xchg_lock);
		} else if (r < 95 && w->n < LOCAL_MAX) { /* take one, free it or keep it */
			pthread_mutex_lock(&xchg_lock);
			bool got = nxchg > 0;
			if (got)
				w->objs[w->n++] = xchg[--nxchg];
			pthread_mutex_unlock(&xchg_lock);
			if (got && rng_below_r(&w->rng, 2))
				worker_free(w, w->n - 1);
		} else if (w->n) {
			struct kit_obj *o = &w->objs[rng_below_r(&w->rng, (uint64_t)w->n)];
			TCHECK(kit_intact(o) && pcpu_alloc_size(o->h) == ((o->size + 3) & ~(size_t)3),
			       "thread %d: spot check", w->id);
		}
		if (w->id == 0 && step % 2000 == 1999)
			TCHECK(pcpu_verify() == 0, "verify during the run");
		if (w->id == 1 && step % 3000 == 2999)
			TCHECK(pcpu_balance() == 0, "balance during the run");
		__atomic_fetch_add(&progress, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void start_workers(pthread_t *tids, int n, uint64_t seed)
{
	for (int i = 0; i < n; i++) {
		workers[i].id = i;
		workers[i].rng = seed * 2654435761u + (uint64_t)i + 1;
	}
	kit_start_threads(tids, n, worker_main, workers, sizeof(workers[0]));
}

/* Check every object held by workers and the exchange; return the count. */
static uint64_t check_held(int n)
{
	uint64_t held = 0;

	for (int i = 0; i < n; i++)
		for (int k = 0; k < workers[i].n; k++, held++)
			CHECK(kit_intact(&workers[i].objs[k]), "thread %d object %d at the end", i, k);
	for (int k = 0; k < nxchg; k++, held++)
		CHECK(kit_intact(&xchg[k]), "exchange object %d at the end", k);
	return held;
}

static int child_threads(long nr_cpus)
{
	struct pcpu_config cfg = { .nr_cpus = (unsigned)nr_cpus };
	pthread_t tids[NTHREADS];
	unsigned long allocs = 0, afail = 0;

	REQUIRE(pcpu_init(nr_cpus ? &cfg : NULL) == 0, "pcpu_init");
	start_workers(tids, NTHREADS, g_seed + (uint64_t)nr_cpus);
	kit_join_threads(tids, NTHREADS, NULL);
	for (int i = 0; i < NTHREADS; i++)
		allocs += workers[i].allocs, afail += workers[i].atomic_fail;
	uint64_t held = check_held(NTHREADS);
	CHECK(pcpu_verify() == 0, "verify after the threads");
	CHECK(kit_cur_alloc() == held, "nr_cur_alloc %llu, the test holds %llu",
	      (unsigned long long)kit_cur_alloc(), (unsigned long long)held);
	CHECK(allocs > NTHREADS * STEPS / 4, "threads allocated (%lu)", allocs);
	printf("threads (nr_cpus %u): %lu allocations, %lu atomic failures, %llu held at the end\n",
	       pcpu_nr_cpus(), allocs, afail, (unsigned long long)held);
	for (int i = 0; i < NTHREADS; i++)
		while (workers[i].n)
			worker_free(&workers[i], 0);
	while (nxchg)
		pcpu_free(xchg[--nxchg].h);
	CHECK(kit_cur_alloc() == 0 && pcpu_balance() == 0 && pcpu_verify() == 0, "all freed");
	return 0;
}

/* ---- 2. this_cpu_inc -------------------------------------------------------- */

#define INCS 1000000
static long *counter;
static pthread_barrier_t inc_start;

static void *inc_main(void *arg)
{
	pthread_barrier_wait(&inc_start);     /* all threads contend from the start */
	for (long i = 0; i < INCS; i++) {
		this_cpu_inc(counter);
		if (i % 64 == (long)(intptr_t)arg) {
			this_cpu_add(counter, 5);
			this_cpu_sub(counter, 5);
		}
	}
	return NULL;
}

static void *churn_main(void *arg)
{
	struct worker *w = arg;

	while (!__atomic_load_n(&stop_workers, __ATOMIC_RELAXED)) {
		if (w->n < LOCAL_MAX && rng_below_r(&w->rng, 2))
			worker_alloc(w, (unsigned)w->allocs);
		else if (w->n)
			worker_free(w, (int)rng_below_r(&w->rng, (uint64_t)w->n));
	}
	return NULL;
}

static int child_counter(long nr_cpus)
{
	struct pcpu_config cfg = { .nr_cpus = (unsigned)nr_cpus };
	pthread_t tids[NTHREADS], churn;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	counter = pcpu_alloc(sizeof(long), sizeof(long));
	REQUIRE(counter && pcpu_sum(counter) == 0, "counter");
	pthread_barrier_init(&inc_start, NULL, NTHREADS);
	workers[0].rng = g_seed | 1;
	kit_start_threads(&churn, 1, churn_main, &workers[0], 0);
	kit_start_threads(tids, NTHREADS, inc_main, NULL, 0);
	kit_join_threads(tids, NTHREADS, NULL);
	__atomic_store_n(&stop_workers, 1, __ATOMIC_RELAXED);
	kit_join_threads(&churn, 1, NULL);
	long sum = pcpu_sum(counter);
	CHECK(sum == (long)NTHREADS * INCS, "nr_cpus %ld: sum %ld, want %ld", nr_cpus, sum,
	      (long)NTHREADS * INCS);
	check_held(1);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* ---- 3. fork ------------------------------------------------------------------ */

#define NPARENT 40

static struct kit_obj parent[NPARENT];

/* In a child of the child: the parent's objects, allocations, frees. */
static int grandchild_work(long arg)
{
	static struct kit_obj mine[400];
	int n = 0;

	(void)arg;
	for (int i = 0; i < NPARENT; i++)
		CHECK(kit_intact(&parent[i]), "parent object %d not visible intact in the child", i);
	for (int i = 0; i < 2000; i++) {
		if (n < 400 && (n == 0 || rng_below(100) < 60)) {
			size_t size = rng_below(20) == 0 ? 16384 + rng_below(32768) : 1 + rng_below(512);
			void *h = pcpu_alloc(size, 4);
			REQUIRE(h && kit_zeroed(h, size, 4), "child alloc %zu", size);
			kit_keep(mine, &n, 400, h, size, (uint32_t)i + 7);
		} else {
			int k = (int)rng_below((uint64_t)n);
			CHECK(kit_drop(mine, &n, k), "child object %d", k);
		}
	}
	for (int i = 0; i < NPARENT; i++) {
		if (i % 2)
			pcpu_free(parent[i].h);          /* the parent's handles are valid here */
		else
			memset(per_cpu_ptr(parent[i].h, 0), 0xee, parent[i].size); /* private copy */
	}
	CHECK(pcpu_verify() == 0, "child verify");
	CHECK(pcpu_balance() == 0, "child balance");
	void *a = pcpu_alloc_flags(64, 8, PCPU_ATOMIC);
	CHECK(a && kit_zeroed(a, 64, 8), "child atomic allocation after pcpu_balance");
	for (int k = 0; k < n; k++)
		CHECK(kit_intact(&mine[k]), "child object %d at the end", k);
	CHECK(pcpu_verify() == 0, "child verify at the end");
	return 0;
}

static int child_fork(long arg)
{
	/* Small units: the child's large objects create and free many chunks. */
	struct pcpu_config cfg = { .nr_cpus = 4, .min_unit_size = 64 << 10 };
	pthread_t tids[4];
	int nforks = arg ? 24 : 1;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	for (int i = 0; i < NPARENT; i++) {    /* small ones in the first chunk, large in new chunks */
		size_t size = i % 4 == 3 ? 20000 : 8 + rng_below(200);
		parent[i] = (struct kit_obj){ pcpu_alloc(size, 8), size, 1000u + (unsigned)i };
		REQUIRE(parent[i].h, "parent alloc");
		kit_fill(&parent[i]);
	}
	uint64_t live = kit_cur_alloc();
	if (arg) {
		worker_steps = ~0u;
		start_workers(tids, 4, g_seed + 99);
	}
	for (int f = 0; f < nforks; f++) {
		unsigned long p0 = __atomic_load_n(&progress, __ATOMIC_RELAXED);
		while (arg && __atomic_load_n(&progress, __ATOMIC_RELAXED) < p0 + 500)
			sched_yield();
		KIT_EXPECT(kit_fork(grandchild_work, 0, g_seed + (uint64_t)f * 7 + 3, 60), KIT_EXIT(0),
			   "fork %d", f);
	}
	if (arg) {
		__atomic_store_n(&stop_workers, 1, __ATOMIC_RELAXED);
		kit_join_threads(tids, 4, NULL);
		live += check_held(4);
	}
	for (int i = 0; i < NPARENT; i++)
		CHECK(kit_intact(&parent[i]), "parent object %d changed by the child", i);
	CHECK(kit_cur_alloc() == live, "parent's live count changed");
	CHECK(pcpu_verify() == 0, "parent verify after the children");
	return 0;
}

/* ---- 4. handles fault ------------------------------------------------------------ */

static sigjmp_buf fault_jmp;

static void on_fault(int sig)
{
	siglongjmp(fault_jmp, sig);
}

/* Write (or read) through h itself: true if it faulted.  Not instrumented:
 * the fault itself is the check, not a sanitizer report. */
__attribute__((no_sanitize_address, no_sanitize_thread))
static void poke(void *h, bool write)
{
	if (write)
		*(volatile int *)h = 1;
	else
		(void)*(volatile int *)h;
}

static bool faults(void *h, bool write)
{
	if (sigsetjmp(fault_jmp, 1))
		return true;
	poke(h, write);
	return false;
}

static int child_handles(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 4, .flags = PCPU_CFG_NO_BALANCER };
	struct pcpu_stats st;

	REQUIRE(pcpu_init(&cfg) == 0 && pcpu_stats_get(&st) == 0, "init");
	struct kit_obj o[4] = {
		{ pcpu_alloc(16, 4), 16, 1 },                        /* first chunk */
		{ pcpu_alloc_flags(16, 4, PCPU_RESERVED), 16, 2 },  /* reserved area */
		{ pcpu_alloc(st.unit_size / 2, 4096), 64, 3 },       /* a new chunk */
		{ pcpu_alloc(64, 4), 64, 4 },
	};
	for (int i = 0; i < 4; i++) {
		REQUIRE(o[i].h, "alloc %d", i);
		kit_fill(&o[i]);
	}
	if (arg == 0) {   /* no handler, not even ASan's or TSan's: the process dies */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		poke(o[0].h, true);
		return 3;
	}
	struct sigaction sa = { .sa_handler = on_fault };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	for (int i = 0; i < 4; i++) {
		CHECK(faults(o[i].h, true) && faults(o[i].h, false), "handle %d did not fault", i);
		CHECK(kit_intact(&o[i]), "handle %d: a CPU's copy changed", i);
	}
	/* A destroyed chunk's memory goes back to the OS and faults. */
	void *x = pcpu_alloc(st.unit_size, 4), *y = pcpu_alloc(st.unit_size, 4);
	int off;
	REQUIRE(x && y, "two whole-unit chunks");
	pcpu_free(x);
	pcpu_free(y);
	pcpu_balance();
	void *gone = pool_handle_chunk(x, &off) ? y : x;
	CHECK(!pool_handle_chunk(gone, &off), "one free chunk destroyed");
	for (unsigned cpu = 0; cpu < pcpu_nr_cpus(); cpu++)
		CHECK(faults(pcpu_ptr(gone, cpu), false), "cpu %u copy of a destroyed chunk readable", cpu);
	for (int i = 0; i < 4; i++)
		CHECK(kit_intact(&o[i]), "object %d after balance", i);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

int main(int argc, char **argv)
{
	struct kit_child *c;

	g_seed = test_seed(argc, argv);
	KIT_EXPECT(run_child(child_threads, 0), KIT_EXIT(0), "threads, default config");
	KIT_EXPECT(run_child(child_threads, 8), KIT_EXIT(0), "threads, 8 CPU slots");
	KIT_EXPECT(run_child(child_counter, 0), KIT_EXIT(0), "counter, default");
	KIT_EXPECT(run_child(child_counter, 1), KIT_EXIT(0), "counter, 1 CPU slot");
	KIT_EXPECT(run_child(child_fork, 0), KIT_EXIT(0), "fork");
	KIT_EXPECT(run_child(child_fork, 1), KIT_EXIT(0), "fork with threads");
	c = run_child(child_handles, 0);
	CHECK(kit_signaled(c, SIGSEGV) || kit_signaled(c, SIGBUS),
	      "writing through a handle: %s, want SIGSEGV", kit_status(c));
	KIT_EXPECT(run_child(child_handles, 1), KIT_EXIT(0), "handles fault");
	TEST_DONE();
}
