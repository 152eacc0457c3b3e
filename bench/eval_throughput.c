/*
 * eval_throughput.c - evaluation 8: allocation throughput and how it
 * scales with threads (T9, T10).
 *
 * Each thread does rounds of 256 pcpu_alloc(16, 0) then 256 pcpu_free (in
 * allocation order), against rounds of calloc(nr_cpus, 16) / free, for a
 * fixed time; 1, nr_cpus and 4 x nr_cpus threads.  Throughput counts an
 * allocation and a free as two operations, over the wall-clock time from
 * the threads' common start to the last one's finish.  The scaling factor
 * of a side is its throughput at N threads / at 1 thread in the same run.
 *
 * Everything runs in one forked child (the allocator's default
 * configuration; calloc uses the same nr_cpus); in every run each thread
 * count measures both sides, taking turns going first.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "percpu.h"

#define ROUND       256
#define OBJ_SIZE    16
#define MAX_COUNTS  3
#define MAX_THREADS 4096
enum { SIDE_PCPU, SIDE_CALLOC, NR_SIDES };
static const char *const side_name[NR_SIDES] = { "pcpu", "calloc" };

struct tp_args {
	int counts[MAX_COUNTS], nr_counts;
	int duration_ms;
};

struct tp_result {
	double mops[NR_SIDES][MAX_COUNTS][BENCH_MAX_RUNS];
	unsigned nr_cpus;
	int ok;
	char error[160];
};

struct tp_shared {
	int side;
	unsigned nr_cpus;
	int go;                 /* every thread is up: start */
	int stop;               /* set by the timing thread */
	int failed;
};

struct tp_thread {
	pthread_t tid;
	struct tp_shared *sh;
	long rounds;
	double end_ms;
};

/* Rounds until told to stop; an allocation failure stops everyone. */
static void *tp_thread_main(void *arg)
{
	struct tp_thread *t = arg;
	struct tp_shared *sh = t->sh;
	void *obj[ROUND];

	while (!__atomic_load_n(&sh->go, __ATOMIC_ACQUIRE))
		sched_yield();
	while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
		if (sh->side == SIDE_PCPU) {
			for (int i = 0; i < ROUND; i++)
				obj[i] = pcpu_alloc(OBJ_SIZE, 0);
		} else {
			for (int i = 0; i < ROUND; i++)
				obj[i] = calloc(sh->nr_cpus, OBJ_SIZE);
		}
		for (int i = 0; i < ROUND; i++)
			if (!obj[i])
				__atomic_store_n(&sh->failed, 1, __ATOMIC_RELAXED);
		if (sh->side == SIDE_PCPU) {
			for (int i = 0; i < ROUND; i++)
				pcpu_free(obj[i]);
		} else {
			for (int i = 0; i < ROUND; i++)
				free(obj[i]);
		}
		t->rounds++;
		if (__atomic_load_n(&sh->failed, __ATOMIC_RELAXED))
			break;
	}
	t->end_ms = bench_now_ms();
	return NULL;
}

/* Mops/s of one side with `threads` threads for duration_ms, or -1. */
static double tp_measure(int side, int threads, int duration_ms, unsigned nr_cpus,
			 struct tp_result *r)
{
	static struct tp_thread th[MAX_THREADS];
	struct tp_shared sh = { .side = side, .nr_cpus = nr_cpus };
	double t0, end = 0;
	long rounds = 0;
	int started = 0;

	for (int i = 0; i < threads; i++) {
		th[i] = (struct tp_thread){ .sh = &sh };
		if (pthread_create(&th[i].tid, NULL, tp_thread_main, &th[i]))
			break;
		started++;
	}
	if (started != threads)         /* the started ones see stop at once */
		__atomic_store_n(&sh.stop, 1, __ATOMIC_RELAXED);
	t0 = bench_now_ms();
	__atomic_store_n(&sh.go, 1, __ATOMIC_RELEASE);
	if (started == threads) {
		usleep((useconds_t)duration_ms * 1000);
		__atomic_store_n(&sh.stop, 1, __ATOMIC_RELAXED);
	}
	for (int i = 0; i < started; i++) {
		pthread_join(th[i].tid, NULL);
		rounds += th[i].rounds;
		if (th[i].end_ms > end)
			end = th[i].end_ms;
	}
	if (started != threads) {
		snprintf(r->error, sizeof(r->error), "cannot create %d threads", threads);
		return -1;
	}
	if (sh.failed) {
		snprintf(r->error, sizeof(r->error), "%s: an allocation failed with %d threads",
			 side_name[side], threads);
		return -1;
	}
	return (double)rounds * 2 * ROUND / ((end - t0) * 1e3);
}

static void tp_child(void *argp, void *resp)
{
	const struct tp_args *a = argp;
	struct tp_result *r = resp;
	int runs = bench_opts.runs;

	memset(r, 0, sizeof(*r));
	bench_fixed_conditions();
	r->nr_cpus = pcpu_nr_cpus();
	for (int k = 0; k < runs * a->nr_counts * NR_SIDES; k++) {
		struct bench_turn t = bench_turn(k, a->nr_counts, NR_SIDES, true);
		double v;

		bench_turn_progress("eval8", side_name[t.side], a->counts[t.c], t.run, runs);
		v = tp_measure(t.side, a->counts[t.c], a->duration_ms, r->nr_cpus, r);
		if (v < 0)
			return;
		r->mops[t.side][t.c][t.run] = v;
	}
	r->ok = 1;
}

static int eval_throughput(void)
{
	static struct tp_result r;
	struct tp_args a = { .duration_ms = bench_opts.quick ? 20 : 1000 };
	int cpus = bench_online_cpus(), runs = bench_opts.runs;

	a.nr_counts = bench_thread_counts(cpus, MAX_THREADS, a.counts);
	printf("  Rounds of %d x pcpu_alloc(%d, 0) then %d x pcpu_free, against calloc(nr_cpus, %d)\n"
	       "  / free, each thread doing its own rounds for %d ms; Mops/s counts an allocation\n"
	       "  and a free as two operations (wall clock).  Scaling: throughput at N threads /\n"
	       "  at 1 thread, per run.  %d runs, the sides interleaved.\n\n",
	       ROUND, OBJ_SIZE, ROUND, OBJ_SIZE, a.duration_ms, runs);
	if (bench_in_child(tp_child, &a, &r, sizeof(r)))
		return -1;
	bench_progress_clear();
	if (!r.ok) {
		printf("  FAILED: %s\n", r.error);
		return -1;
	}
	printf("        Threads | %-22s | %-22s | %-22s | %-20s | %-20s\n", "pcpu (Mops/s)",
	       "calloc (Mops/s)", "pcpu / calloc", "pcpu scaling", "calloc scaling");
	printf("        ---------------------------------------------------------------------------"
	       "-----------------------------------------------\n");
	for (int c = 0; c < a.nr_counts; c++) {
		struct bench_stat ratio = bench_stat_ratio(r.mops[SIDE_PCPU][c], r.mops[SIDE_CALLOC][c], runs);
		struct bench_stat scale[NR_SIDES];
		char scase[32], where[64], note[160];

		for (int s = 0; s < NR_SIDES; s++) {
			scale[s] = bench_stat_ratio(r.mops[s][c], r.mops[s][0], runs);
			for (int run = 0; run < runs; run++) {
				snprintf(scase, sizeof(scase), "threads=%d", a.counts[c]);
				bench_csv_value("eval8", side_name[s], scase, OBJ_SIZE, 2 * ROUND, run + 1,
						"throughput", r.mops[s][c][run], "Mops/s", "");
				bench_csv_value("eval8", side_name[s], scase, OBJ_SIZE, 2 * ROUND, run + 1,
						"scaling", r.mops[s][c][run] / r.mops[s][0][run], "x", "");
			}
		}
		printf("        %7d | %22s | %22s | %22s | %20s | %20s\n", a.counts[c],
		       BENCH_STAT(bench_stat_of(r.mops[SIDE_PCPU][c], runs), ""),
		       BENCH_STAT(bench_stat_of(r.mops[SIDE_CALLOC][c], runs), ""),
		       BENCH_STAT(ratio, "x"), c ? BENCH_STAT(scale[SIDE_PCPU], "x") : "1",
		       c ? BENCH_STAT(scale[SIDE_CALLOC], "x") : "1");
		snprintf(where, sizeof(where), "%d thread%s", a.counts[c], a.counts[c] > 1 ? "s" : "");
		snprintf(note, sizeof(note), "%scalloc's scaling in the same runs, the machine's "
			 "headroom: %s", a.counts[c] == cpus ? "goal 0.8 x nr_cpus (online CPUs); " :
			 "no collapse; ", BENCH_STAT(scale[SIDE_CALLOC], "x"));
		if (c == 0)
			bench_target("T9", "1 thread: pcpu_alloc+free / calloc+free throughput",
				     BENCH_AT_LEAST, 1.0, ratio, where, "");
		else if (a.counts[c] == cpus)
			bench_target("T10", "pcpu throughput at nr_cpus threads / at 1 thread",
				     BENCH_AT_LEAST, 0.8 * cpus, scale[SIDE_PCPU], where, note);
		else
			bench_target("T10x4", "pcpu throughput at 4 x nr_cpus threads / at 1 thread",
				     BENCH_AT_LEAST, 1.0, scale[SIDE_PCPU], where, note);
	}
	printf("\n  (%u CPU slots; the machine's other load shares its %d CPUs)\n\n", r.nr_cpus, cpus);
	return 0;
}

BENCH_EVAL(eval8_def, .name = "eval8", .order = 80, .run = eval_throughput,
	   .title = "allocation throughput: rounds of 256 x 16 B, 1 to 4 x nr_cpus threads")
