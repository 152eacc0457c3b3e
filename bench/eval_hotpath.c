/*
 * eval_hotpath.c - evaluation 7: the cost of a per-CPU increment (T8).
 *
 * Threads count into one shared pcpu_alloc'ed long for a fixed number of
 * iterations each, with this_cpu_inc (however percpu.h implements it),
 * with a relaxed __atomic_fetch_add on the same copy (the current CPU's,
 * chosen the same way), into a plain __thread long (the floor: one add to
 * memory, nothing atomic), and into one shared atomic counter (what
 * per-CPU counting avoids).  1, nr_cpus and 4 x nr_cpus threads.  The
 * per-CPU sums must be exact.
 *
 * Cost per operation = the threads' CPU time (CLOCK_THREAD_CPUTIME_ID)
 * summed / all increments, so threads time-sharing a CPU do not count
 * their waits.  Everything runs in one forked child (the allocator's
 * default configuration); in every run each thread count measures every
 * method once, the methods taking turns going first.
 *
 * The instruction count of this_cpu_inc's fast path comes from the
 * disassembly of a compiled call site (site/, generated site_insns.h).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "percpu.h"
#include "site_insns.h"

#define MAX_COUNTS 3            /* thread counts: 1, nr_cpus, 4 x nr_cpus */
#define MAX_THREADS 4096

struct hot_ctx {
	long __percpu *handle;  /* the shared per-CPU long */
	long shared;            /* the one shared atomic counter */
	long tl_total;          /* __thread counts, summed as threads finish */
#ifdef PCPU_HAVE_COUNTER
	struct pcpu_counter counter;
#endif
};

/*
 * One counting method: set the context up, count `iters` times from one
 * thread, and return the total seen afterwards (which must be threads x
 * iters).  setup/total may fail: -1.
 */
struct hot_method {
	const char *name;
	int (*setup)(struct hot_ctx *c);
	void (*count)(struct hot_ctx *c, long iters);
	long (*total)(struct hot_ctx *c);
};

static int setup_handle(struct hot_ctx *c)
{
	c->handle = pcpu_alloc(sizeof(long), sizeof(long));
	return c->handle ? 0 : -1;
}

static long total_handle(struct hot_ctx *c)
{
	long sum = pcpu_sum(c->handle);

	pcpu_free(c->handle);
	c->handle = NULL;
	return sum;
}

static __attribute__((noinline)) void count_this_cpu_inc(struct hot_ctx *c, long iters)
{
	long __percpu *h = c->handle;

	for (long i = 0; i < iters; i++)
		this_cpu_inc(h);
}

static __attribute__((noinline)) void count_atomic(struct hot_ctx *c, long iters)
{
	long __percpu *h = c->handle;

	for (long i = 0; i < iters; i++)
		__atomic_fetch_add(per_cpu_ptr(h, pcpu_current_cpu()), 1, __ATOMIC_RELAXED);
}

static __thread long tl_count;

static int setup_plain(struct hot_ctx *c)
{
	c->tl_total = 0;
	c->shared = 0;
	return 0;
}

static __attribute__((noinline)) void count_thread_local(struct hot_ctx *c, long iters)
{
	tl_count = 0;
	for (long i = 0; i < iters; i++) {
		tl_count++;
		__asm__ volatile("" ::: "memory");      /* one add to memory per iteration */
	}
	__atomic_fetch_add(&c->tl_total, tl_count, __ATOMIC_RELAXED);
}

static long total_thread_local(struct hot_ctx *c) { return c->tl_total; }

static __attribute__((noinline)) void count_shared(struct hot_ctx *c, long iters)
{
	for (long i = 0; i < iters; i++)
		__atomic_fetch_add(&c->shared, 1, __ATOMIC_RELAXED);
}

static long total_shared(struct hot_ctx *c) { return c->shared; }

/*
 * The batched counter (struct pcpu_counter, <percpu_counter.h>, which
 * defines PCPU_HAVE_COUNTER): pcpu_counter_add(c, 1) is one
 * this_cpu_add_return on the thread's CPU's copy, plus one shared atomic
 * add every fold unit (32 here) per copy.  It joins the table, with the
 * line "pcpu_counter_add against one shared atomic counter" below; the
 * sum it is checked by is pcpu_counter_sum, the exact one.
 */
#ifdef PCPU_HAVE_COUNTER
static int setup_counter(struct hot_ctx *c)
{
	return pcpu_counter_init(&c->counter, 0) ? -1 : 0;
}

static __attribute__((noinline)) void count_counter(struct hot_ctx *c, long iters)
{
	for (long i = 0; i < iters; i++)
		pcpu_counter_add(&c->counter, 1);
}

static long total_counter(struct hot_ctx *c)
{
	long sum = (long)pcpu_counter_sum(&c->counter);

	pcpu_counter_destroy(&c->counter);
	return sum;
}
#endif

enum { M_THIS_CPU_INC, M_ATOMIC, M_THREAD_LOCAL, M_SHARED, M_COUNTER, NR_METHODS_MAX };

static const struct hot_method methods[] = {
	[M_THIS_CPU_INC] = { "this_cpu_inc", setup_handle, count_this_cpu_inc, total_handle },
	[M_ATOMIC] = { "atomic fetch_add", setup_handle, count_atomic, total_handle },
	[M_THREAD_LOCAL] = { "__thread ++", setup_plain, count_thread_local, total_thread_local },
	[M_SHARED] = { "one shared atomic", setup_plain, count_shared, total_shared },
#ifdef PCPU_HAVE_COUNTER
	[M_COUNTER] = { "pcpu_counter_add", setup_counter, count_counter, total_counter },
#endif
};
#define NR_METHODS ((int)(sizeof(methods) / sizeof(methods[0])))

struct hot_args {
	int counts[MAX_COUNTS], nr_counts;
	long iters;             /* per thread */
};

struct hot_result {
	double ns[NR_METHODS_MAX][MAX_COUNTS][BENCH_MAX_RUNS];
	unsigned nr_cpus;       /* pcpu_nr_cpus() */
	int ok;
	char error[200];
};

struct hot_thread {
	pthread_t tid;
	struct hot_ctx *ctx;
	const struct hot_method *m;
	int *go;                /* every thread is up: start */
	long iters;
	double cpu_ns;
};

static double thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *hot_thread_main(void *arg)
{
	struct hot_thread *t = arg;
	double t0;

	while (!__atomic_load_n(t->go, __ATOMIC_ACQUIRE))
		sched_yield();
	t0 = thread_cpu_ns();
	t->m->count(t->ctx, t->iters);
	t->cpu_ns = thread_cpu_ns() - t0;
	return NULL;
}

/* One measurement: ns per increment, or -1 with r->error set. */
static double hot_measure(const struct hot_method *m, int threads, long iters,
			  struct hot_result *r)
{
	static struct hot_thread th[MAX_THREADS];
	struct hot_ctx ctx = { 0 };
	double cpu = 0;
	long total;
	int started = 0, go = 0;

	if (m->setup(&ctx)) {
		snprintf(r->error, sizeof(r->error), "%s: setup failed", m->name);
		return -1;
	}
	for (int i = 0; i < threads; i++) {
		th[i] = (struct hot_thread){ .ctx = &ctx, .m = m, .go = &go, .iters = iters };
		if (i && pthread_create(&th[i].tid, NULL, hot_thread_main, &th[i]))
			break;
		started++;
	}
	/* a thread that could not be created: the others count anyway, then fail */
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	hot_thread_main(&th[0]);                /* the calling thread is thread 0 */
	for (int i = 1; i < started; i++)
		pthread_join(th[i].tid, NULL);
	if (started != threads) {
		snprintf(r->error, sizeof(r->error), "cannot create %d threads", threads);
		return -1;
	}
	for (int i = 0; i < threads; i++)
		cpu += th[i].cpu_ns;
	total = m->total(&ctx);
	if (total != (long)threads * iters) {
		snprintf(r->error, sizeof(r->error), "%s with %d threads: the sum is %ld, not %ld",
			 m->name, threads, total, (long)threads * iters);
		return -1;
	}
	return cpu / ((double)threads * (double)iters);
}

static void hot_child(void *argp, void *resp)
{
	const struct hot_args *a = argp;
	struct hot_result *r = resp;
	int runs = bench_opts.runs;

	memset(r, 0, sizeof(*r));
	bench_fixed_conditions();
	r->nr_cpus = pcpu_nr_cpus();
	for (int k = 0; k < runs * a->nr_counts * NR_METHODS; k++) {
		struct bench_turn t = bench_turn(k, a->nr_counts, NR_METHODS, false);
		double ns;

		bench_turn_progress("eval7", methods[t.side].name, a->counts[t.c], t.run, runs);
		ns = hot_measure(&methods[t.side], a->counts[t.c], a->iters, r);
		if (ns < 0)
			return;
		r->ns[t.side][t.c][t.run] = ns;
	}
	r->ok = 1;
}

static const char *insns_str(int n, char *buf, size_t len)
{
	if (n < 0)
		snprintf(buf, len, "n/a");
	else
		snprintf(buf, len, "%d", n);
	return buf;
}

static int eval_hotpath(void)
{
	static struct hot_result r;
	struct hot_args a = { .iters = bench_opts.quick ? 1L << 15 : 1L << 23 };
	int cpus = bench_online_cpus(), runs = bench_opts.runs;
	char nb[32], b1[16], b2[16], b3[16], b4[16];

	a.nr_counts = bench_thread_counts(cpus, MAX_THREADS, a.counts);
	printf("  Threads count into one shared pcpu_alloc'ed long, %s iterations each; ns per\n"
	       "  increment = the threads' CPU time / all increments.  %d runs, interleaved.\n"
	       "  Methods: this_cpu_inc; a relaxed __atomic_fetch_add on the same copy\n"
	       "  (per_cpu_ptr(h, pcpu_current_cpu())); a __thread long ++ (the floor); one\n"
	       "  shared atomic long for all threads%s.  Sums checked exact.\n\n",
	       bench_count_str(a.iters, nb, sizeof(nb)), runs,
#ifdef PCPU_HAVE_COUNTER
	       ";\n  pcpu_counter_add(c, 1) on one struct pcpu_counter"
#else
	       ""
#endif
	       );
	printf("  Call site of this_cpu_inc (site/site_inc.c, the project's flags): %s instructions\n"
	       "  on its fall-through path, entry to return (%s in the whole function, slow path\n"
	       "  included); the relaxed fetch_add site: %s (%s).\n\n",
	       insns_str(PCPU_SITE_INC_FAST, b1, sizeof(b1)), insns_str(PCPU_SITE_INC_TOTAL, b2, sizeof(b2)),
	       insns_str(PCPU_SITE_ATOMIC_FAST, b3, sizeof(b3)),
	       insns_str(PCPU_SITE_ATOMIC_TOTAL, b4, sizeof(b4)));
	if (bench_in_child(hot_child, &a, &r, sizeof(r)))
		return -1;
	bench_progress_clear();
	if (!r.ok) {
		printf("  FAILED: %s\n", r.error);
		return -1;
	}

	printf("        Threads |");
	for (int m = 0; m < NR_METHODS; m++)
		printf(" %-20s |", methods[m].name);
	printf(" this_cpu_inc / atomic\n        ");
	for (int m = 0; m < NR_METHODS + 2; m++)
		printf("----------------------");
	printf("\n");
	for (int c = 0; c < a.nr_counts; c++) {
		struct bench_stat ratio = bench_stat_ratio(r.ns[M_THIS_CPU_INC][c], r.ns[M_ATOMIC][c], runs);
		char where[64];

		printf("        %7d |", a.counts[c]);
		for (int m = 0; m < NR_METHODS; m++) {
			printf(" %20s |", BENCH_STAT(bench_stat_of(r.ns[m][c], runs), ""));
			for (int run = 0; run < runs; run++) {
				char scase[32];

				snprintf(scase, sizeof(scase), "threads=%d", a.counts[c]);
				bench_csv_value("eval7", methods[m].name, scase, sizeof(long), a.iters,
						run + 1, "increment", r.ns[m][c][run], "ns/op", "");
			}
		}
		printf(" %s\n", BENCH_STAT(ratio, "x"));
		if (a.counts[c] == 1 || a.counts[c] == cpus) {
			snprintf(where, sizeof(where), "%d thread%s", a.counts[c], a.counts[c] > 1 ? "s" : "");
			bench_target("T8", "this_cpu_inc / relaxed atomic fetch_add on the same copy (ns/op)",
				     BENCH_AT_MOST, 0.4, ratio, where,
				     "checked at 1 and at nr_cpus threads; the worse is shown");
		}
	}
	printf("\n  (ns per increment, median [min..max]; %u CPU slots)\n", r.nr_cpus);
#ifdef PCPU_HAVE_COUNTER
	printf("\n  pcpu_counter_add against one shared atomic counter (ns/op ratio):");
	for (int c = 0; c < a.nr_counts; c++)
		printf(" %d thread%s %s;", a.counts[c], a.counts[c] > 1 ? "s" : "",
		       BENCH_STAT(bench_stat_ratio(r.ns[M_COUNTER][c], r.ns[M_SHARED][c], runs), "x"));
	printf("\n");
#else
	printf("  pcpu_counter_add against one shared atomic counter: not in this library yet\n"
	       "  (the hook is PCPU_HAVE_COUNTER in eval_hotpath.c).\n");
#endif
	printf("\n");
	return 0;
}

BENCH_EVAL(eval7_def, .name = "eval7", .order = 70, .run = eval_hotpath,
	   .title = "hot path: this_cpu_inc against an atomic add on the same copy")
