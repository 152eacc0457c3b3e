/*
 * test_faults.c - the allocator under injected OS failures (src/os.h).
 *
 * Every reserve, populate, depopulate and bind call can fail, by count or at
 * random.  The contract checked here: every failure the caller sees is NULL
 * + ENOMEM from an allocation that hit an injected fault (never from one
 * that did not, never another errno), or a background step (balance
 * population or depopulation, NUMA binding) that is skipped and done again
 * later; nothing live is lost (every object keeps its pattern in every
 * unit, pcpu_verify holds); once the faults stop, everything works again.
 * Each scenario runs in a forked child; machines with one NUMA node get a
 * fabricated two-node topology (os_topology_reload) so bind is called.
 *
 *   random     single thread, populate/depopulate/bind faults at random
 *   bind       every bind fails: nothing visible at all
 *   threads    6 threads and the balancer thread under random faults
 *   retry      the balancer's population and depopulation fail, then
 *              succeed on the next pass; atomic allocations recover
 *   reserve    init with reserve faults: ENOMEM, or a smaller reservation
 *              (the first failure halves it) that works
 *   env        PCPU_FAULT in the environment (re-executes this program);
 *              a malformed value is ignored
 *
 * Prints the faults injected per scenario and in total.
 * Usage: test_faults [seed [steps]]   (default 20000 steps per scenario)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pool_init.h"
#include "pool_verify.h"
#include "kit.h"
#include "os.h"
#include "os_fault.h"
#include "percpu.h"

#define UNIT (64u << 10)
#define MAXOBJ 2048

static uint64_t g_seed;
static unsigned long g_steps = 20000;
static unsigned long *g_total;          /* shared with the children: faults injected */

/* ---- objects (kit.h) ----------------------------------------------------- */

/* A single-threaded object set. */
static struct kit_obj objs[MAXOBJ];
static int nobj;
static unsigned long n_allocs, n_fails, n_frees;

static bool all_intact(void) { return kit_all_intact(objs, nobj); }

/*
 * One allocation.  A failure must be ENOMEM; a plain one (not atomic, not
 * reserved) must also have met an injected fault or the end of the address
 * space.  Returns the object.
 */
static struct kit_obj *try_alloc(size_t size, size_t align, unsigned flags)
{
	unsigned long f0 = os_fault_count();
	size_t rsize = (size + 3) & ~(size_t)3;
	void *h;

	errno = 0;
	h = pcpu_alloc_flags(size, align, flags | PCPU_NOWARN);
	if (!h) {
		n_fails++;
		REQUIRE(errno == ENOMEM, "alloc(%zu, %zu, %#x): errno %d", size, align, flags, errno);
		if (!(flags & (PCPU_ATOMIC | PCPU_RESERVED)))
			REQUIRE(os_fault_count() > f0 || kit_stats().nr_chunks + 1 >= (unsigned)pcpu_pool.max_chunks,
				"alloc(%zu, %zu) failed without an injected fault", size, align);
		return NULL;
	}
	REQUIRE(kit_zeroed(h, rsize, align < 4 ? 4 : align), "%p not zeroed or aligned", h);
	n_allocs++;
	return kit_keep(objs, &nobj, MAXOBJ, h, rsize, (uint32_t)n_allocs);
}

static void free_obj(int k)
{
	void *h = objs[k].h;

	REQUIRE(kit_drop(objs, &nobj, k), "object %p overwritten", h);
	n_frees++;
}

static size_t random_size(void)
{
	unsigned r = (unsigned)rng_below(100);

	return r < 60 ? 1 + rng_below(64) : r < 90 ? 65 + rng_below(4000) :
	       r < 98 ? 4097 + rng_below(UNIT / 2) : UNIT;
}

/* A random single-threaded workload: allocations of every kind, frees,
 * balance passes, pcpu_verify every 50 steps. */
static void workload(unsigned long steps)
{
	for (unsigned long step = 0; step < steps; step++) {
		if (nobj < MAXOBJ && (nobj == 0 || rng_below(100) < 55)) {
			unsigned r = (unsigned)rng_below(100);
			unsigned flags = r < 15 ? PCPU_ATOMIC : r < 18 ? PCPU_RESERVED : 0;
			size_t size = flags & PCPU_RESERVED ? 1 + rng_below(256) : random_size();

			try_alloc(size, (size_t)1 << rng_below(13), flags);
		} else {
			free_obj((int)rng_below((uint64_t)nobj));
		}
		if (step % 300 == 299)
			REQUIRE(pcpu_balance() == 0, "pcpu_balance");
		if (step % 50 == 0)
			REQUIRE(pcpu_verify() == 0 && all_intact(), "step %lu: verify", step);
	}
}

/* Faults off: every object intact, then free all, balance, and the
 * allocator is clean and serves a whole unit. */
static void recover(const char *what)
{
	os_fault_clear();
	CHECK(pcpu_verify() == 0 && all_intact(), "%s: state after the faults", what);
	CHECK(kit_stats().nr_cur_alloc == (uint64_t)nobj, "%s: nr_cur_alloc %llu, holding %d", what,
	      (unsigned long long)kit_stats().nr_cur_alloc, nobj);
	while (nobj)
		free_obj(nobj - 1);
	CHECK(pcpu_balance() == 0 && pcpu_balance() == 0 && pcpu_verify() == 0, "%s: balance", what);
	struct pcpu_stats st = kit_stats();
	CHECK(st.nr_cur_alloc == 0 && st.nr_chunks <= 1, "%s: drained (%u chunks)", what, st.nr_chunks);
	CHECK((long)st.nr_empty_pop_pages >= pcpu_pool.empty_pop_high, "%s: pool refilled", what);
	CHECK(try_alloc(UNIT, 4096, 0) && try_alloc(100, 4, PCPU_ATOMIC), "%s: allocations work", what);
}

static void report(const char *what)
{
	unsigned long n = os_fault_count();

	printf("%s: %lu faults injected (reserve %lu, populate %lu, depopulate %lu, bind %lu calls); "
	       "%lu allocations, %lu failed, %lu frees\n", what, n, os_call_count(OS_OP_RESERVE),
	       os_call_count(OS_OP_POPULATE), os_call_count(OS_OP_DEPOPULATE),
	       os_call_count(OS_OP_BIND), n_allocs, n_fails, n_frees);
	__atomic_fetch_add(g_total, n, __ATOMIC_RELAXED);
}

/* ---- a two-node topology ------------------------------------------------- */

/* Before pcpu_init: make sure there are two nodes (8 CPUs, 4 per node). */
static void two_nodes(void)
{
	char root[] = "/tmp/pcpu-faults-XXXXXX";
	static const char *const files[][2] = {
		{ "cpu/possible", "0-7\n" }, { "node/online", "0-1\n" },
		{ "node/node0/cpulist", "0-3\n" }, { "node/node1/cpulist", "4-7\n" },
		{ "node/node0/distance", "10 20\n" }, { "node/node1/distance", "20 10\n" },
	};

	if (os_nr_nodes() > 1)
		return;
	REQUIRE(kit_tree_make(root, files, 6), "fabricated sysfs tree");
	REQUIRE(os_topology_reload(root) == 0 && os_nr_nodes() == 2, "fabricated topology");
	kit_tree_remove(root, files, 6);
}

static void init(unsigned nr_cpus, unsigned flags)
{
	struct pcpu_config cfg = { .nr_cpus = nr_cpus, .min_unit_size = UNIT, .flags = flags };

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
}

/* ---- scenarios --------------------------------------------------------------- */

static int child_random(long arg)
{
	two_nodes();
	init(8, PCPU_CFG_NO_BALANCER);
	REQUIRE(kit_stats().nr_groups == 2, "two groups");
	os_fault_random(OS_OP_POPULATE, 0.15, (unsigned long)arg);
	os_fault_random(OS_OP_DEPOPULATE, 0.2, (unsigned long)arg + 1);
	os_fault_random(OS_OP_BIND, 0.3, (unsigned long)arg + 2);
	workload(g_steps);
	CHECK(n_fails > 0 && os_fault_count() > 0 && os_call_count(OS_OP_BIND) > 0,
	      "faults had an effect (%lu failures, %lu bind calls)", n_fails, os_call_count(OS_OP_BIND));
	report("random populate/depopulate/bind faults");
	recover("random");
	return 0;
}

/* Binding is an optimisation: when every bind fails, no caller notices. */
static int child_bind(long arg)
{
	(void)arg;
	two_nodes();
	os_fault_random(OS_OP_BIND, 1.0, 1);
	init(8, PCPU_CFG_NO_BALANCER);
	unsigned long f0 = os_fault_count();

	for (unsigned long i = 0; i < g_steps / 4; i++) {
		REQUIRE(nobj < MAXOBJ - 1, "objects");
		if (rng_below(3) || !nobj)
			REQUIRE(try_alloc(random_size(), 4, 0), "allocation with bind failing");
		else
			free_obj((int)rng_below((uint64_t)nobj));
		if (i % 100 == 99)
			REQUIRE(pcpu_balance() == 0 && pcpu_verify() == 0, "balance, verify");
	}
	CHECK(n_fails == 0 && os_fault_count() > f0, "no failure seen, %lu binds failed",
	      os_fault_count() - f0);
	report("every bind failing");
	recover("bind");
	return 0;
}

/* ---- threads ---------------------------------------------------------------- */

#define NTHREADS 6
#define TLOCAL 128

struct tworker {
	uint64_t rng;
	int n;
	struct kit_obj o[TLOCAL];
	unsigned long allocs, fails, frees, bad;
};

static void *tworker_main(void *arg)
{
	struct tworker *w = arg;

	for (unsigned long i = 0; i < g_steps; i++) {
		w->rng ^= w->rng << 13, w->rng ^= w->rng >> 7, w->rng ^= w->rng << 17;
		unsigned r = (unsigned)(w->rng % 100);

		if (r < 55 && w->n < TLOCAL) {
			size_t size = 4 * (1 + (w->rng >> 8) % (r < 50 ? 32 : 4096));
			unsigned flags = r < 12 ? PCPU_ATOMIC | PCPU_NOWARN : PCPU_NOWARN;
			void *h;

			errno = 0;
			h = pcpu_alloc_flags(size, (size_t)4 << (w->rng >> 40) % 6, flags);
			if (!h) {
				w->fails++;
				w->bad += errno != ENOMEM;
				continue;
			}
			w->allocs++;
			w->bad += !kit_zeroed(h, size, 4);
			kit_keep(w->o, &w->n, TLOCAL, h, size, (uint32_t)(w->rng >> 16));
		} else if (w->n) {
			int k = (int)((w->rng >> 20) % (unsigned)w->n);

			w->bad += !kit_drop(w->o, &w->n, k);
			w->frees++;
		}
	}
	return NULL;
}

static int child_threads(long arg)
{
	static struct tworker w[NTHREADS];
	pthread_t tid[NTHREADS];
	unsigned long allocs = 0, fails = 0, frees = 0, bad = 0, held = 0;

	two_nodes();
	init(8, 0);                       /* with the balancer thread */
	os_fault_random(OS_OP_POPULATE, 0.1, (unsigned long)arg);
	os_fault_random(OS_OP_DEPOPULATE, 0.2, (unsigned long)arg + 1);
	os_fault_random(OS_OP_BIND, 0.2, (unsigned long)arg + 2);
	for (int i = 0; i < NTHREADS; i++)
		w[i].rng = g_seed * 31 + (uint64_t)i + 1;
	kit_start_threads(tid, NTHREADS, tworker_main, w, sizeof(w[0]));
	kit_join_threads(tid, NTHREADS, NULL);
	for (int i = 0; i < NTHREADS; i++) {
		allocs += w[i].allocs, fails += w[i].fails, frees += w[i].frees, bad += w[i].bad;
		held += (unsigned)w[i].n;
	}
	CHECK(bad == 0, "%lu errors in the threads (errno other than ENOMEM, lost patterns)", bad);
	CHECK(pcpu_verify() == 0 && kit_stats().nr_cur_alloc == held, "verify, live count");
	for (int i = 0; i < NTHREADS; i++)
		for (int k = 0; k < w[i].n; k++)
			CHECK(kit_intact(&w[i].o[k]), "thread %d object %d at the end", i, k);
	n_allocs = allocs, n_fails = fails, n_frees = frees;
	report("6 threads and the balancer thread under random faults");
	os_fault_clear();
	for (int i = 0; i < NTHREADS; i++)
		while (w[i].n)
			pcpu_free(w[i].o[--w[i].n].h);
	recover("threads");
	return 0;
}

/* ---- background steps fail, then are done again ------------------------------- */

static int child_retry(long arg)
{
	(void)arg;
	init(2, PCPU_CFG_NO_BALANCER);
	const size_t page = kit_stats().page_size;

	/* Use up the pool of empty populated pages. */
	while ((long)kit_stats().nr_empty_pop_pages > 0)
		REQUIRE(try_alloc(page, page, 0), "page allocation");
	errno = 0;
	CHECK(!try_alloc(page, page, PCPU_ATOMIC), "atomic allocation with an empty pool");

	/* Population fails: the pass changes nothing and reports nothing. */
	os_fault_random(OS_OP_POPULATE, 1.0, 1);
	unsigned long f0 = os_fault_count();
	CHECK(pcpu_balance() == 0 && os_fault_count() > f0, "balance pass with population failing");
	CHECK(kit_stats().nr_empty_pop_pages == 0 && pcpu_verify() == 0 && all_intact(),
	      "nothing populated, state consistent");
	CHECK(!try_alloc(page, page, PCPU_ATOMIC), "atomic still fails");
	os_fault_clear();
	CHECK(pcpu_balance() == 0, "balance pass without faults");
	CHECK((long)kit_stats().nr_empty_pop_pages >= pcpu_pool.empty_pop_high, "the next pass populates");
	for (int i = 0; i < pcpu_pool.empty_pop_high; i++)
		CHECK(try_alloc(page, page, PCPU_ATOMIC), "atomic page allocation %d after the retry", i);

	/* Depopulation fails: pages stay resident but are bookkept as
	 * unpopulated; they are populated again (and zeroed) before use. */
	for (int i = 0; i < 40; i++)
		REQUIRE(try_alloc(page, page, 0), "page allocation");
	struct pcpu_stats s0 = kit_stats();
	for (int k = nobj; k-- > 0;)
		if (k % 4)
			free_obj(k);
	os_fault_random(OS_OP_DEPOPULATE, 1.0, 1);
	f0 = os_fault_count();
	CHECK(pcpu_balance() == 0 && pcpu_verify() == 0 && all_intact(), "balance with depopulation failing");
	struct pcpu_stats s1 = kit_stats();
	CHECK(os_fault_count() > f0 && s1.nr_balance_depopulated > s0.nr_balance_depopulated,
	      "depopulation attempted (%lu faults)", os_fault_count() - f0);
	for (int i = 0; i < 40; i++)
		REQUIRE(try_alloc(page, page, 0), "page allocation over failed depopulations");
	CHECK(all_intact() && pcpu_verify() == 0, "intact after reuse");
	os_fault_clear();
	report("background steps failing, then retried");
	recover("retry");
	return 0;
}

/* ---- reservation at init -------------------------------------------------------- */

static int child_reserve(long arg)
{
	size_t stride = 4096;

	while (stride < 2 * (size_t)UNIT)
		stride *= 2;
	struct pcpu_config cfg = { .nr_cpus = 2, .min_unit_size = UNIT, .flags = PCPU_CFG_NO_BALANCER,
				   .addr_space = 8 * stride };
	if (arg == 0) {                  /* the first reservation fails: half the size */
		os_fault_nth(OS_OP_RESERVE, 0, 1);
		REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init after one reserve failure: %s", strerror(errno));
		CHECK(pcpu_pool.max_chunks == 4 && os_fault_count() == 1, "reservation halved: %d chunks",
		      pcpu_pool.max_chunks);
	} else {                         /* at random: ENOMEM or a smaller reservation */
		os_fault_random(OS_OP_RESERVE, 0.5, (unsigned long)arg);
		errno = 0;
		int rc = pcpu_init(&cfg);

		CHECK(rc == 0 || (errno == ENOMEM && !pcpu_pool.ready), "pcpu_init: %d errno %d", rc, errno);
		if (rc) {
			os_fault_clear();
			REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init once faults stop");
		}
		CHECK(pcpu_pool.max_chunks >= 1 && pcpu_pool.max_chunks <= 8, "%d chunks", pcpu_pool.max_chunks);
	}
	os_fault_clear();
	int nbig = 0;

	while (nbig < 10 && try_alloc(UNIT, 4, 0))
		nbig++;
	CHECK(nbig == pcpu_pool.max_chunks - 1, "%d whole units in %d chunk slots", nbig, pcpu_pool.max_chunks);
	CHECK(try_alloc(64, 4, 0) && pcpu_verify() == 0 && all_intact(), "small allocations, verify");
	report(arg ? "reserve faults at random" : "first reservation failing");
	return 0;
}

/* ---- PCPU_FAULT ----------------------------------------------------------------- */

/* Runs in a re-executed process: PCPU_FAULT was read at the first call.
 * Population faults also hit the first chunk at init: ENOMEM, try again. */
static int env_child(void)
{
	struct pcpu_config cfg = { .nr_cpus = 2, .min_unit_size = UNIT, .flags = PCPU_CFG_NO_BALANCER };
	int tries = 1;

	if (os_fault_env_status() != 0) {
		CHECK(!getenv("PCPU_FAULT") || strchr(getenv("PCPU_FAULT"), '!'), "PCPU_FAULT rejected");
		REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
		workload(g_steps / 4);
		CHECK(os_fault_count() == 0, "a malformed PCPU_FAULT injected faults");
		report("malformed PCPU_FAULT (ignored)");
		return check_failed ? 1 : 0;
	}
	CHECK(!strchr(getenv("PCPU_FAULT"), '!'), "a malformed PCPU_FAULT was accepted");
	while (pcpu_init(&cfg)) {
		REQUIRE(errno == ENOMEM && !pcpu_pool.ready && tries < 100, "pcpu_init: %s", strerror(errno));
		tries++;
	}
	workload(g_steps);
	CHECK(os_fault_count() > 0 && n_fails > 0, "PCPU_FAULT injected faults");
	printf("PCPU_FAULT: pcpu_init succeeded at attempt %d\n", tries);
	report("PCPU_FAULT=populate:0.1,depopulate:0.3,seed=N");
	recover("env");
	return check_failed ? 1 : 0;
}

static int child_env(long arg)
{
	char spec[128], seed[32], steps[32];

	if (arg)
		snprintf(spec, sizeof(spec), "populate:0.1,depopulate:0.3,seed=%llu",
			 (unsigned long long)g_seed % 1000003);
	else
		snprintf(spec, sizeof(spec), "populate:0.1,!bad");
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)g_seed);
	snprintf(steps, sizeof(steps), "%lu", g_steps);
	setenv("PCPU_FAULT", spec, 1);
	return kit_exec_self(seed, steps, "--env-child", NULL);
}

/* ---- main -------------------------------------------------------------------------- */

/* Run fn(arg) in a forked child that must exit 0 (a hang of 300 s is a failure). */
static void run(int (*fn)(long), long arg, const char *what)
{
	KIT_EXPECT(kit_fork(fn, arg, g_seed + (uint64_t)arg * 7919, 300), KIT_EXIT(0), "%s", what);
}

int main(int argc, char **argv)
{
	g_seed = test_seed(argc, argv);
	if (argc > 2)
		g_steps = strtoul(argv[2], NULL, 0);
	g_total = mmap(NULL, sizeof(*g_total), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	REQUIRE(g_total != MAP_FAILED, "mmap");
	if (argc > 3 && !strcmp(argv[3], "--env-child")) {
		rng_state = g_seed;
		return env_child();
	}

	run(child_random, (long)(g_seed % 1000003), "random faults");
	run(child_bind, 0, "bind faults");
	run(child_threads, (long)(g_seed % 999983), "threads under faults");
	run(child_retry, 0, "background retry");
	run(child_reserve, 0, "reserve nth");
	for (long s = 1; s <= 4; s++)
		run(child_reserve, (long)(g_seed % 1000) * 4 + s, "reserve random");
	run(child_env, 1, "PCPU_FAULT");
	run(child_env, 0, "malformed PCPU_FAULT");
	printf("fault injection: %lu faults injected in all\n", *g_total);
	TEST_DONE();
}
