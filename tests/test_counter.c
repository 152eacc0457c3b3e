/*
 * test_counter.c - struct pcpu_counter (include/percpu_counter.h).  Each
 * scenario runs in a forked child under alarm() (kit_run).
 *
 *   basic     initial value, the fold unit U (max(32, 2 x CPUs) rounded
 *             down to a power of two), adds of every size and sign keep
 *             sum exact and 0 <= sum - read <= CPUs x (U - 1) after every
 *             step; pinned to one CPU, read moves exactly when the copy's
 *             total crosses a multiple of U; add_batch below U is seen by
 *             read at once; the library's copies of the inline functions;
 *             wrap-around modulo 2^64
 *   compare   residues of U - 1 left on every CPU, so read lags sum by the
 *             most it can: compare(c, rhs) == sign(sum - rhs) for every rhs
 *             from below read - CPUs x U to above sum + CPUs x U (both the
 *             quick answer and the exact one, right at the boundary), and
 *             at the ends of the long long range
 *   reuse     init / destroy 1000 times (in a struct array, alternating
 *             initial values): each starts from its initial value, nothing
 *             leaks; init(NULL) is EINVAL; init fails with ENOMEM when
 *             per-CPU memory is exhausted, and works again after a free
 *   stress    4 x allowed-CPUs threads of random adds (every size, sign,
 *             add and add_batch) while a 0.5 ms timer's handler adds too,
 *             workers sched_yield, and a thread moves them between CPUs;
 *             one counter only grows, and a checker thread keeps asserting
 *             of its concurrent sums: no smaller than the adds completed
 *             before, no larger than those started before, never
 *             decreasing.  At the end every sum is exact and read within
 *             its bound.  With units = CPUs (rseq mode where available)
 *             and with 1 unit (the switch to atomic mode on the way).
 *
 * CTest runs it also with GLIBC_TUNABLES=glibc.pthread.rseq=0
 * (test_counter_norseq).  PCPU_COUNTER_OPS sets the adds per worker
 * (default 200000).  Usage: test_counter [seed]
 */
#define _GNU_SOURCE
#include <limits.h>

#include "this_cpu_kit.h"

static long g_ops = 200000;

/* Live allocations (kit.h has this too, but its kit_exec_self clashes
 * with this_cpu_kit.h's). */
static uint64_t kit_cur_alloc(void)
{
	struct pcpu_stats st;

	REQUIRE(pcpu_stats_get(&st) == 0, "pcpu_stats_get");
	return st.nr_cur_alloc;
}

static unsigned long long unit_of(const struct pcpu_counter *c)
{
	return c->fold_mask + 1;
}

/* sum - read, as the counter's modular arithmetic has it. */
static unsigned long long lag(struct pcpu_counter *c)
{
	return (unsigned long long)pcpu_counter_sum(c) - (unsigned long long)pcpu_counter_read(c);
}

static bool lag_ok(struct pcpu_counter *c)
{
	return lag(c) <= (unsigned long long)c->nr_cpus * (unit_of(c) - 1);
}

/* ---- basic ----------------------------------------------------------------- */

static int child_basic(long units)
{
	struct pcpu_config cfg = { .nr_cpus = (unsigned)units, .flags = PCPU_CFG_NO_BALANCER };
	unsigned long long want, u, batch;
	struct pcpu_counter c;
	long long r;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	REQUIRE(pcpu_counter_init(&c, 1000) == 0, "pcpu_counter_init: %s", strerror(errno));
	batch = 2ull * pcpu_nr_cpus() > 32 ? 2ull * pcpu_nr_cpus() : 32;
	u = unit_of(&c);
	CHECK((u & (u - 1)) == 0 && u <= batch && 2 * u > batch, "fold unit %llu for batch %llu", u,
	      batch);
	CHECK(c.nr_cpus == pcpu_nr_cpus(), "nr_cpus");
	CHECK(pcpu_counter_read(&c) == 1000 && pcpu_counter_sum(&c) == 1000, "initial value");

	/* Random adds of every size and sign, checked after each. */
	want = 1000;
	for (int i = 0; i < 20000; i++) {
		uint64_t r64 = rng_next();
		long long v = r64 % 4 == 0 ? (long long)(r64 >> 8) % 3 - 1 :
			      r64 % 4 == 1 ? (long long)(r64 >> 8) % (long long)(4 * u) - (long long)(2 * u) :
			      r64 % 4 == 2 ? (long long)(r64 >> 8) % (1LL << 40) - (1LL << 39) : 1;

		if (r64 % 16 == 3)
			pcpu_counter_add_batch(&c, v, (long)(r64 >> 40) % (long)(2 * u));
		else
			pcpu_counter_add(&c, v);
		want += (unsigned long long)v;
		if ((unsigned long long)pcpu_counter_sum(&c) != want || !lag_ok(&c)) {
			CHECK(false, "step %d: sum %lld, want %lld, read %lld", i, pcpu_counter_sum(&c),
			      (long long)want, pcpu_counter_read(&c));
			break;
		}
	}

	/* Pinned to one CPU: read moves exactly at the multiples of U. */
	REQUIRE(kit_pin(kit_nth_allowed(0)), "pin");
	pcpu_counter_destroy(&c);
	REQUIRE(pcpu_counter_init(&c, 0) == 0, "init");
	for (unsigned long long i = 1; i <= 3 * u; i++) {
		pcpu_counter_add(&c, 1);
		r = pcpu_counter_read(&c);
		if ((unsigned long long)r != i / u * u) {
			CHECK(false, "after %llu adds of 1: read %lld, want %llu", i, r, i / u * u);
			break;
		}
	}
	pcpu_counter_add(&c, -1);             /* back below 3U: folds -U */
	CHECK(pcpu_counter_read(&c) == (long long)(2 * u), "a step down folds: %lld",
	      pcpu_counter_read(&c));
	pcpu_counter_add(&c, (long long)(10 * u + 3));     /* 3U - 1 + 10U + 3 */
	CHECK(pcpu_counter_read(&c) == (long long)(13 * u), "a large add folds all its units: %lld",
	      pcpu_counter_read(&c));
	r = pcpu_counter_read(&c);
	pcpu_counter_add_batch(&c, 5, 0);
	CHECK(pcpu_counter_read(&c) == r + 5, "batch 0: read sees it at once");
	pcpu_counter_add_batch(&c, 5, (long)u - 1);
	CHECK(pcpu_counter_read(&c) == r + 10, "batch below U: read sees it at once");
	pcpu_counter_add_batch(&c, 1, (long)u);
	CHECK(pcpu_counter_read(&c) == r + 10, "batch U: per-CPU");
	CHECK(pcpu_counter_sum(&c) == (long long)(13 * u + 13), "sum %lld", pcpu_counter_sum(&c));
	kit_unpin();

	/* The library's copies of the inline functions. */
	r = pcpu_counter_sum(&c);
	(pcpu_counter_add)(&c, 7);
	(pcpu_counter_add_batch)(&c, 8, 0);
	CHECK((pcpu_counter_read)(&c) == pcpu_counter_read(&c), "(pcpu_counter_read)");
	CHECK(pcpu_counter_sum(&c) == r + 15, "function copies add");
	pcpu_counter_destroy(&c);

	/* Modulo 2^64, like the copies. */
	REQUIRE(pcpu_counter_init(&c, LLONG_MAX - 5) == 0, "init");
	pcpu_counter_add(&c, 10);
	CHECK(pcpu_counter_sum(&c) == LLONG_MIN + 4, "wraps: %lld", pcpu_counter_sum(&c));
	CHECK(lag_ok(&c), "read within the bound across the wrap: lag %llu", lag(&c));
	pcpu_counter_add(&c, -10);
	CHECK(pcpu_counter_sum(&c) == LLONG_MAX - 5, "and back");
	pcpu_counter_destroy(&c);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* ---- compare at the boundary ---------------------------------------------- */

static int sign(long long a, long long b) { return a > b ? 1 : a < b ? -1 : 0; }

static int child_compare(long units)
{
	struct pcpu_config cfg = { .nr_cpus = (unsigned)units, .flags = PCPU_CFG_NO_BALANCER };
	struct pcpu_counter c;
	long long sum, read, bound, bad = 0, lo, hi;
	unsigned long long u;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	for (int round = 0; round < 3; round++) {
		long long initial = round == 0 ? 0 : round == 1 ? -12345 : 1LL << 50;

		REQUIRE(pcpu_counter_init(&c, initial) == 0, "init");
		u = unit_of(&c);
		bound = (long long)c.nr_cpus * (long long)u;
		/* U - 1 on the copy of every CPU we may run on: read lags the
		 * most it can (units shared by CPUs hold more, folded). */
		for (int i = 0; i < kit_nr_allowed; i++) {
			REQUIRE(kit_pin(kit_nth_allowed((unsigned)i)), "pin");
			pcpu_counter_add(&c, (long long)u - 1);
		}
		kit_unpin();
		sum = pcpu_counter_sum(&c);
		read = pcpu_counter_read(&c);
		CHECK(sum == initial + (long long)kit_nr_allowed * ((long long)u - 1), "sum %lld", sum);
		CHECK(lag_ok(&c) && (kit_nr_allowed == 1 || sum > read || pcpu_nr_cpus() == 1),
		      "read %lld lags sum %lld within the bound", read, sum);
		lo = read - bound - 3;
		hi = sum + bound + 3;
		for (long long rhs = lo; rhs <= hi; rhs++)
			if (pcpu_counter_compare(&c, rhs) != sign(sum, rhs) && bad++ < 5)
				CHECK(false, "compare(%lld): %d, sum %lld, read %lld", rhs,
				      pcpu_counter_compare(&c, rhs), sum, read);
		CHECK(pcpu_counter_compare(&c, LLONG_MIN) == 1 && pcpu_counter_compare(&c, LLONG_MAX) == -1,
		      "the ends of the range");
		CHECK(pcpu_counter_compare(&c, sum) == 0, "equal");
		pcpu_counter_destroy(&c);
	}
	CHECK(bad == 0, "%lld wrong answers", bad);
	printf("    compare: every rhs within %lld of the value\n", bound + 3);
	return 0;
}

/* ---- init / destroy -------------------------------------------------------- */

struct holder {
	int before;
	struct pcpu_counter c;           /* embedded */
	int after;
};

static int child_reuse(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 3, .flags = PCPU_CFG_NO_BALANCER, .addr_space = 1 };
	static struct holder h[16];
	static void *fill[1 << 14];
	struct pcpu_counter c;
	uint64_t base;
	size_t n = 0;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	base = kit_cur_alloc();
	errno = 0;
	CHECK(pcpu_counter_init(NULL, 1) == -1 && errno == EINVAL, "init(NULL): EINVAL");
	for (int round = 0; round < 1000; round++) {
		struct holder *x = &h[round % 16];
		long long initial = round % 2 ? -round : round * 1000LL;

		if (round >= 16)
			pcpu_counter_destroy(&x->c);
		x->before = x->after = round;
		REQUIRE(pcpu_counter_init(&x->c, initial) == 0, "init, round %d", round);
		if (pcpu_counter_sum(&x->c) != initial || pcpu_counter_read(&x->c) != initial) {
			CHECK(false, "round %d: starts at %lld / %lld, want %lld", round,
			      pcpu_counter_sum(&x->c), pcpu_counter_read(&x->c), initial);
			break;
		}
		pcpu_counter_add(&x->c, round);
		pcpu_counter_add_batch(&x->c, 1, 0);
		if (pcpu_counter_sum(&x->c) != initial + round + 1 || x->before != round || x->after != round) {
			CHECK(false, "round %d: sum %lld", round, pcpu_counter_sum(&x->c));
			break;
		}
	}
	CHECK(kit_cur_alloc() == base + 16, "16 live counters: %" PRIu64 " allocations",
	      kit_cur_alloc() - base);
	for (int i = 0; i < 16; i++)
		pcpu_counter_destroy(&h[i].c);
	CHECK(kit_cur_alloc() == base, "destroy frees: %" PRIu64 " left", kit_cur_alloc() - base);

	/* One chunk of address space: exhausted, then freed.  First the
	 * caches give back what they hold (a cached 8-byte object would
	 * serve the counter). */
	CHECK(pcpu_balance() == 0, "balance");
	while (n < sizeof(fill) / sizeof(fill[0]) && (fill[n] = pcpu_alloc_flags(4, 4, PCPU_NOWARN)))
		n++;
	errno = 0;
	CHECK(pcpu_counter_init(&c, 5) == -1 && errno == ENOMEM, "init without memory: ENOMEM (%s)",
	      strerror(errno));
	for (size_t i = 0; i < n; i++)
		pcpu_free(fill[i]);
	CHECK(pcpu_counter_init(&c, 5) == 0 && pcpu_counter_sum(&c) == 5, "init after the free");
	pcpu_counter_destroy(&c);
	pcpu_counter_destroy(&c);         /* a second destroy frees nothing */
	CHECK(kit_cur_alloc() == base && pcpu_verify() == 0, "verify");
	return 0;
}

/* ---- stress ------------------------------------------------------------------ */

#define MAX_WORKERS 256

struct worker {
	pthread_t thr;
	uint64_t rng;
	unsigned long long mix_exp;      /* applied to the mixed counter */
	unsigned long long started;      /* the growing counter: started adds' total */
	unsigned long long done;         /* and completed adds' total */
	pid_t tid;
};

static struct pcpu_counter g_mix, g_grow;
static struct worker g_workers[MAX_WORKERS];
static int g_nr_workers, g_finished;
static unsigned long g_sigs;
static unsigned long long g_unit;

static void on_signal(int sig)
{
	(void)sig;
	pcpu_counter_add(&g_mix, 3);
	__atomic_fetch_add(&g_sigs, 1, __ATOMIC_RELAXED);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	long long u = (long long)g_unit;

	__atomic_store_n(&w->tid, gettid(), __ATOMIC_RELAXED);
	for (long i = 0; i < g_ops; i++) {
		uint64_t r = rng_next_r(&w->rng);
		long long v;

		switch (r % 8) {
		case 0: case 1: case 2:
			v = (r >> 8) % 2 ? 1 : -1;
			pcpu_counter_add(&g_mix, v);
			break;
		case 3:
			v = (long long)((r >> 8) % (uint64_t)(6 * u)) - 3 * u;
			pcpu_counter_add(&g_mix, v);
			break;
		case 4:
			v = (long long)((r >> 8) % (1ull << 36)) - (1LL << 35);
			pcpu_counter_add_batch(&g_mix, v, (long)((r >> 48) % (uint64_t)(2 * u)));
			break;
		default: {
			/* The growing counter: publish the start, add, publish the end. */
			unsigned long long k = r % 16 == 5 ? 1 + (r >> 8) % (3 * g_unit) : 1;

			__atomic_store_n(&w->started, w->started + k, __ATOMIC_RELAXED);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			pcpu_counter_add(&g_grow, (long long)k);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			__atomic_store_n(&w->done, w->done + k, __ATOMIC_RELAXED);
			v = 0;
			if ((r >> 40) % 64 == 0)
				sched_yield();
			break;
		}
		}
		w->mix_exp += (unsigned long long)v;
	}
	__atomic_fetch_add(&g_finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Sums of the growing counter read while workers add to it. */
static void *checker_main(void *arg)
{
	long long prev = 0, initial = (long long)(intptr_t)arg;
	unsigned long sums = 0, bad = 0;

	while (__atomic_load_n(&g_finished, __ATOMIC_ACQUIRE) < g_nr_workers) {
		unsigned long long lo = 0, hi = 0;
		long long s;

		for (int i = 0; i < g_nr_workers; i++)
			lo += __atomic_load_n(&g_workers[i].done, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		s = pcpu_counter_sum(&g_grow) - initial;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		for (int i = 0; i < g_nr_workers; i++)
			hi += __atomic_load_n(&g_workers[i].started, __ATOMIC_RELAXED);
		if ((unsigned long long)s < lo || (unsigned long long)s > hi || s < prev) {
			if (bad++ < 5)
				TCHECK(false, "concurrent sum %lld: completed %llu, started %llu, previous %lld",
				       s, lo, hi, prev);
		}
		prev = s;
		sums++;
	}
	return (void *)(uintptr_t)sums;
}

static void *flipper_main(void *arg)
{
	uint64_t rng = (uint64_t)(uintptr_t)arg | 1;

	while (__atomic_load_n(&g_finished, __ATOMIC_ACQUIRE) < g_nr_workers) {
		struct worker *w = &g_workers[rng_next_r(&rng) % (uint64_t)g_nr_workers];

		kit_flip(__atomic_load_n(&w->tid, __ATOMIC_RELAXED), rng);
	}
	return NULL;
}

static int child_stress(long units)
{
	struct pcpu_config cfg = { .nr_cpus = (unsigned)units, .flags = PCPU_CFG_NO_BALANCER };
	struct itimerspec its = { { 0, 500000 }, { 0, 500000 } };
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	const long long mix0 = -777, grow0 = 1LL << 40;
	unsigned long long mix_exp = (unsigned long long)mix0, grow_exp = 0;
	pthread_t checker, flipper;
	void *sums;
	timer_t timer;
	sigset_t usr1;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	REQUIRE(pcpu_counter_init(&g_mix, mix0) == 0 && pcpu_counter_init(&g_grow, grow0) == 0, "init");
	g_unit = unit_of(&g_mix);
	g_nr_workers = 4 * kit_nr_allowed > MAX_WORKERS ? MAX_WORKERS : 4 * kit_nr_allowed;
	sigemptyset(&sa.sa_mask);
	REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	REQUIRE(timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0, "timer_create: %s", strerror(errno));
#if KIT_TSAN
	/* No timer signals under ThreadSanitizer, as in kit_stress: its
	 * runtime can deadlock when a signal lands inside one of its locks. */
	(void)its;
#else
	REQUIRE(timer_settime(timer, 0, &its, NULL) == 0, "timer_settime");
#endif
	for (int i = 0; i < g_nr_workers; i++) {
		g_workers[i] = (struct worker){ .rng = rng_next() | 1 };
		REQUIRE(pthread_create(&g_workers[i].thr, NULL, worker_main, &g_workers[i]) == 0,
			"pthread_create");
	}
	REQUIRE(pthread_create(&checker, NULL, checker_main, (void *)(intptr_t)grow0) == 0 &&
		pthread_create(&flipper, NULL, flipper_main, (void *)(uintptr_t)rng_next()) == 0,
		"pthread_create");
	for (int i = 0; i < g_nr_workers; i++)
		pthread_join(g_workers[i].thr, NULL);
	pthread_join(checker, &sums);
	pthread_join(flipper, NULL);
	/* No handler runs after this (as in this_cpu_kit.h's stress). */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	timer_delete(timer);

	for (int i = 0; i < g_nr_workers; i++) {
		mix_exp += g_workers[i].mix_exp;
		grow_exp += g_workers[i].done;
		CHECK(g_workers[i].done == g_workers[i].started, "worker %d finished its adds", i);
	}
	mix_exp += 3ull * g_sigs;
	printf("    %d threads x %ld adds, %lu signals, %lu concurrent sums checked, mode %#x, U %llu\n",
	       g_nr_workers, g_ops, g_sigs, (unsigned long)(uintptr_t)sums, pcpu_this_cpu_mode(), g_unit);
	CHECK((unsigned long long)pcpu_counter_sum(&g_mix) == mix_exp, "mixed sum %lld, want %lld",
	      pcpu_counter_sum(&g_mix), (long long)mix_exp);
	CHECK(pcpu_counter_sum(&g_grow) == grow0 + (long long)grow_exp, "growing sum %lld, want %lld",
	      pcpu_counter_sum(&g_grow), grow0 + (long long)grow_exp);
	CHECK(lag_ok(&g_mix) && lag_ok(&g_grow), "read within the bound at rest: lags %llu, %llu",
	      lag(&g_mix), lag(&g_grow));
	CHECK(pcpu_counter_compare(&g_grow, grow0 + (long long)grow_exp) == 0 &&
	      pcpu_counter_compare(&g_mix, (long long)mix_exp) == 0, "compare at rest");
	pcpu_counter_destroy(&g_mix);
	pcpu_counter_destroy(&g_grow);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

int main(int argc, char **argv)
{
	const char *ops = getenv("PCPU_COUNTER_OPS");

	kit_seed = test_seed(argc, argv);
	kit_init_cpus();
	if (ops)
		g_ops = atol(ops);
	printf("%d CPUs allowed; glibc rseq %s\n", kit_nr_allowed, kit_rseq_tunable_off() ? "off" : "on");
	kit_run("basic, units = CPUs", child_basic, 0);
	kit_run("basic, 1 unit", child_basic, 1);
	kit_run("compare, units = CPUs", child_compare, 0);
	kit_run("compare, 1 unit", child_compare, 1);
	kit_run("reuse", child_reuse, 0);
	kit_run("stress, units = CPUs", child_stress, 0);
	kit_run("stress, 1 unit", child_stress, 1);
	TEST_DONE();
}
