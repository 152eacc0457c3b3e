/*
 * eval_mixed.c - evaluation 9: a mixed multi-threaded workload against
 * calloc(nr_cpus, size) (T11).
 *
 * The workload, the same for both sides:
 *   - object sizes follow a power law from 8 B to 4 KiB: density ~ size^-2
 *     (Pareto, alpha 1), rounded up to 8 B; half are 8-16 B, about 1 in
 *     100 is above 800 B;
 *   - a shared transfer array of slots: a thread allocates an object,
 *     checks it reads zero in every CPU's copy, writes a pattern into every
 *     copy, and swaps it into a random slot; the object it gets back
 *     (usually another thread's) has its pattern checked in every copy and
 *     is freed;
 *   - epochs: the threads are joined and new ones created at every epoch;
 *     odd epochs use only the first eighth of the slots (the main thread
 *     frees the rest first), so the live set shrinks and regrows and chunks
 *     come and go;
 *   - at the end every remaining object is checked and freed.
 * A pattern or zero mismatch fails the evaluation.
 *
 * Each run of a side is a forked child (VmHWM is per process), under
 * bench_fixed_conditions; the sides alternate, taking turns going first.
 * The child reports the workload's time, its peak resident memory above
 * the RSS at its start (taken after the threads were created and joined
 * once with no work, so their stacks, which the C library keeps for reuse,
 * are part of the start), and the RSS above the start after free-all and an
 * idle interval: for pcpu, the library's own decay (pcpu_stats.decay_ms)
 * plus --decay-ms, with no call (the balancer thread gives memory back by
 * itself), then again after pcpu_balance(); for calloc, malloc_trim(0)
 * then --decay-ms.  The pcpu side also reports the library's counters
 * (struct pcpu_stats): system calls, chunks, time in balance passes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "percpu.h"

#define MAX_COUNTS  3
#define MAX_THREADS 1024
#define MIN_SIZE    8
#define MAX_SIZE    4096
enum { SIDE_PCPU, SIDE_CALLOC, NR_SIDES };
static const char *const side_name[NR_SIDES] = { "pcpu", "calloc" };

struct mix_args {
	int side;
	int threads;
	long steps;             /* allocations in all, over all epochs and threads */
	long nr_slots;
	int epochs;
	int decay_ms;
	unsigned nr_cpus;
	unsigned long seed;
};

struct mix_result {
	double time_ms;
	long rss_start_kb, peak_kb, after_kb;   /* peak and after: above the start */
	long balanced_kb;                       /* pcpu: after pcpu_balance() too */
	long pop_after;                         /* pcpu: populated pages per unit after
						   the decay, beyond those at the start */
	long chunk_pages;                       /* pcpu: pages per unit of a chunk */
	long chunk_kb;                          /* one chunk: unit_size x nr_units */
	long lib_decay_ms;                      /* pcpu: the library's decay */
	/* pcpu, during the workload and the idle interval: system calls
	 * (populate, depopulate, mprotect), ms in balance passes, allocations
	 * not cleared because known zero */
	unsigned long calls[3];
	double balance_ms;
	unsigned long prezeroed;
	unsigned long chunks_created, chunks_destroyed;
	long allocated, checked, mismatches, not_zeroed, freed_by_other;
	int ok;
	char error[160];
};

/* ---- the workload --------------------------------------------------------- */

struct mix_ctx {
	const struct mix_args *a;
	int go;                 /* every thread of the epoch is up: start */
	void **slots;
	long active;            /* slots in use this epoch */
	long mismatches, not_zeroed, checked, freed_by_other;   /* atomics */
};

struct mix_thread {
	pthread_t tid;
	struct mix_ctx *x;
	unsigned id;            /* unique over the run: epoch * threads + index */
	long steps;
	uint64_t rng, serial;
};

static uint64_t next_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Pareto (alpha 1) between MIN_SIZE and MAX_SIZE, rounded up to 8 B. */
static size_t draw_size(uint64_t *rng)
{
	double u = (double)(next_rand(rng) >> 11) / 9007199254740992.0;       /* [0, 1) */
	double x = MIN_SIZE / (1 - u * (1 - (double)MIN_SIZE / MAX_SIZE));
	size_t s = ((size_t)x + 7) & ~(size_t)7;

	return s < MIN_SIZE ? MIN_SIZE : s > MAX_SIZE ? MAX_SIZE : s;
}

/*
 * Word 0 of CPU 0's copy is the object's tag: size / 8 (bits 0-9), the
 * allocating thread's id (bits 10-29) and its serial (bits 30-63).  Every
 * other word of every copy holds pattern(tag, cpu, word).
 */
static uint64_t make_tag(size_t size, unsigned id, uint64_t serial)
{
	return (uint64_t)(size / 8) | (uint64_t)(id & 0xfffff) << 10 | serial << 30;
}

static uint64_t pattern(uint64_t tag, unsigned cpu, size_t word)
{
	uint64_t z = tag ^ ((uint64_t)cpu << 48) ^ ((uint64_t)word * 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t *copy_of(const struct mix_ctx *x, void *obj, unsigned cpu, size_t size)
{
	if (x->a->side == SIDE_PCPU)
		return pcpu_ptr(obj, cpu);
	return (uint64_t *)((char *)obj + (size_t)cpu * size);
}

static void *obj_alloc(const struct mix_ctx *x, size_t size)
{
	if (x->a->side == SIDE_PCPU)
		return pcpu_alloc(size, 8);
	return calloc(x->a->nr_cpus, size);
}

static void obj_free(const struct mix_ctx *x, void *obj)
{
	if (x->a->side == SIDE_PCPU)
		pcpu_free(obj);
	else
		free(obj);
}

/* Allocate, check zeroed, write the pattern; NULL on failure. */
static void *obj_new(struct mix_ctx *x, struct mix_thread *t)
{
	size_t size = draw_size(&t->rng), words = size / 8;
	uint64_t tag = make_tag(size, t->id, t->serial++);
	void *obj = obj_alloc(x, size);
	long dirty = 0;

	if (!obj)
		return NULL;
	for (unsigned cpu = 0; cpu < x->a->nr_cpus; cpu++) {
		uint64_t *w = copy_of(x, obj, cpu, size);

		for (size_t i = 0; i < words; i++)
			dirty |= w[i] != 0;
		for (size_t i = 0; i < words; i++)
			w[i] = cpu == 0 && i == 0 ? tag : pattern(tag, cpu, i);
	}
	if (dirty)
		__atomic_fetch_add(&x->not_zeroed, 1, __ATOMIC_RELAXED);
	return obj;
}

/* Check the pattern in every copy, then free.  by: the freeing thread's id. */
static void obj_retire(struct mix_ctx *x, void *obj, unsigned by)
{
	uint64_t tag = *copy_of(x, obj, 0, 0);
	size_t size = (size_t)(tag & 0x3ff) * 8, words = size / 8;
	long bad = 0;

	if (size < MIN_SIZE || size > MAX_SIZE) {
		bad = 1;        /* the tag itself is damaged: nothing more to compare */
	} else {
		for (unsigned cpu = 0; cpu < x->a->nr_cpus; cpu++) {
			const uint64_t *w = copy_of(x, obj, cpu, size);

			for (size_t i = 0; i < words; i++)
				bad |= w[i] != (cpu == 0 && i == 0 ? tag : pattern(tag, cpu, i));
		}
	}
	if (bad)
		__atomic_fetch_add(&x->mismatches, 1, __ATOMIC_RELAXED);
	if ((unsigned)(tag >> 10 & 0xfffff) != (by & 0xfffff))
		__atomic_fetch_add(&x->freed_by_other, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&x->checked, 1, __ATOMIC_RELAXED);
	obj_free(x, obj);
}

static void *mix_thread_main(void *arg)
{
	struct mix_thread *t = arg;
	struct mix_ctx *x = t->x;

	while (!__atomic_load_n(&x->go, __ATOMIC_ACQUIRE))
		sched_yield();
	for (long s = 0; s < t->steps; s++) {
		void *obj = obj_new(x, t), *old;

		if (!obj)
			return (void *)1;
		old = __atomic_exchange_n(&x->slots[next_rand(&t->rng) % (uint64_t)x->active], obj,
					  __ATOMIC_ACQ_REL);
		if (old)
			obj_retire(x, old, t->id);
	}
	return NULL;
}

/* Check and free every object in slots [from, nr_slots), from the main thread. */
static void drain(struct mix_ctx *x, long from)
{
	for (long i = from; i < x->a->nr_slots; i++) {
		if (x->slots[i]) {
			obj_retire(x, x->slots[i], 0xfffff);
			x->slots[i] = NULL;
		}
	}
}

/* The whole workload: 0, or -1 with r->error set. */
static int mix_run(struct mix_ctx *x, struct mix_result *r)
{
	const struct mix_args *a = x->a;
	static struct mix_thread th[MAX_THREADS];
	long per_thread = a->steps / ((long)a->epochs * a->threads);

	for (int e = 0; e < a->epochs; e++) {
		int started = 0, failed = 0;

		x->active = e % 2 ? a->nr_slots / 8 : a->nr_slots;
		if (e % 2)
			drain(x, x->active);
		x->go = 0;
		for (int i = 0; i < a->threads; i++) {
			th[i] = (struct mix_thread){ .x = x, .steps = per_thread,
						     .id = (unsigned)(e * a->threads + i) };
			th[i].rng = a->seed * 0x9e3779b97f4a7c15ULL + th[i].id * 2654435761ULL + 1;
			if (pthread_create(&th[i].tid, NULL, mix_thread_main, &th[i]))
				break;
			started++;
		}
		__atomic_store_n(&x->go, 1, __ATOMIC_RELEASE);
		for (int i = 0; i < started; i++) {
			void *ret;

			pthread_join(th[i].tid, &ret);
			failed |= ret != NULL;
		}
		if (started != a->threads || failed) {
			snprintf(r->error, sizeof(r->error), "%s", started != a->threads ?
				 "cannot create the threads" : "an allocation failed");
			return -1;
		}
	}
	drain(x, 0);
	return 0;
}

static void mix_child(void *argp, void *resp)
{
	const struct mix_args *a = argp;
	struct mix_result *r = resp;
	struct mix_ctx x = { .a = a };
	struct pcpu_stats st0, st1;
	long idle_ms = a->decay_ms;

	memset(r, 0, sizeof(*r));
	bench_fixed_conditions();
	if (a->side == SIDE_PCPU) {
		struct pcpu_config cfg = { .nr_cpus = a->nr_cpus };

		if (pcpu_init(&cfg) || pcpu_stats_get(&st0)) {
			snprintf(r->error, sizeof(r->error), "pcpu_init: %s", strerror(errno));
			return;
		}
		if (pcpu_nr_cpus() != a->nr_cpus) {
			snprintf(r->error, sizeof(r->error), "pcpu_nr_cpus() is %u, not %u",
				 pcpu_nr_cpus(), a->nr_cpus);
			return;
		}
		r->chunk_kb = (long)(st0.unit_size * st0.nr_units / 1024);
		r->chunk_pages = (long)(st0.unit_size / st0.page_size);
		r->lib_decay_ms = (long)st0.decay_ms;
		if (st0.decay_ms > 0)
			idle_ms += (long)st0.decay_ms;
	}
	x.slots = calloc((size_t)a->nr_slots, sizeof(void *));
	if (!x.slots) {
		snprintf(r->error, sizeof(r->error), "no memory for the slots");
		return;
	}
	/* Resident before the start: a write to every page (a memset of
	 * calloc'ed memory may be dropped by the compiler). */
	for (long i = 0; i < a->nr_slots; i += 512)
		((void *volatile *)x.slots)[i] = NULL;
	/* The threads once, with no work: their stacks (kept by the C
	 * library for reuse) and the thread code's pages are in the baseline,
	 * which is the process before any allocation. */
	struct mix_args warm = *a;
	struct mix_ctx wx = { .a = &warm, .slots = x.slots };

	warm.steps = 0;
	warm.epochs = 1;
	if (mix_run(&wx, r))
		return;
	r->rss_start_kb = bench_rss_kb();

	double t0 = bench_now_ms();
	if (mix_run(&x, r))
		return;
	r->time_ms = bench_now_ms() - t0;
	r->peak_kb = bench_hwm_kb() - r->rss_start_kb;
	if (a->side == SIDE_CALLOC)
		malloc_trim(0);
	usleep((useconds_t)idle_ms * 1000);
	r->after_kb = bench_rss_kb() - r->rss_start_kb;
	if (a->side == SIDE_PCPU) {
		pcpu_stats_get(&st1);
		r->calls[0] = st1.nr_populate_calls - st0.nr_populate_calls;
		r->calls[1] = st1.nr_depopulate_calls - st0.nr_depopulate_calls;
		r->calls[2] = st1.nr_mprotect_calls - st0.nr_mprotect_calls;
		r->balance_ms = (double)(st1.balance_ns - st0.balance_ns) / 1e6;
		r->prezeroed = st1.nr_alloc_prezeroed - st0.nr_alloc_prezeroed;
		r->chunks_created = st1.nr_chunks_created - st0.nr_chunks_created;
		r->chunks_destroyed = st1.nr_chunks_destroyed - st0.nr_chunks_destroyed;
		r->pop_after = (long)st1.nr_populated_pages - (long)st0.nr_populated_pages;
		pcpu_balance();
		r->balanced_kb = bench_rss_kb() - r->rss_start_kb;
	}
	r->allocated = a->steps / ((long)a->epochs * a->threads) * a->epochs * a->threads;
	r->checked = x.checked;
	r->mismatches = x.mismatches;
	r->not_zeroed = x.not_zeroed;
	r->freed_by_other = x.freed_by_other;
	free(x.slots);
	r->ok = 1;
}

/* ---- the evaluation ---------------------------------------------------------- */

static int eval_mixed(void)
{
	static struct mix_result res[MAX_COUNTS][NR_SIDES][BENCH_MAX_RUNS];
	int cpus = bench_online_cpus(), runs = bench_opts.runs, counts[MAX_COUNTS];
	int nr_counts = bench_thread_counts(cpus, MAX_THREADS, counts);
	struct mix_args a = {
		.steps = bench_opts.quick ? 1L << 13 : 1L << 20,
		.nr_slots = bench_opts.quick ? 1L << 10 : 1L << 15,
		.epochs = bench_opts.quick ? 4 : 8,
		.decay_ms = bench_opts.decay_ms,
		.nr_cpus = bench_machine_cpus(),
		.seed = bench_opts.seed,
	};
	long bad = 0, lost = 0;
	char nb[32], nb2[32];

	printf("  %s allocations of power-law sizes (8 B to 4 KiB, density ~ size^-2), passed\n"
	       "  between threads through %s slots, a pattern checked in all %u CPU copies\n"
	       "  before every free; threads re-created every epoch (%d), odd epochs on 1/8 of the\n"
	       "  slots; pcpu_alloc(size, 8) against calloc(%u, size), seed %lu.  Each run of a side\n"
	       "  is a fresh process; %d runs, the sides interleaved.  Peak: VmHWM above the RSS at\n"
	       "  the start (taken after the threads ran once with no work: their stacks are in it);\n"
	       "  after decay: RSS above the start after free-all and the library's\n"
	       "  decay + %d ms idle, no call (calloc: malloc_trim(0), then the idle time).\n"
	       "  Conditions: %s.\n\n",
	       bench_count_str(a.steps, nb, sizeof(nb)), bench_count_str(a.nr_slots, nb2, sizeof(nb2)),
	       a.nr_cpus, a.epochs, a.nr_cpus, a.seed, runs, a.decay_ms, bench_conditions_str());

	for (int k = 0; k < runs * nr_counts * NR_SIDES; k++) {
		struct bench_turn t = bench_turn(k, nr_counts, NR_SIDES, true);
		struct mix_result *m = &res[t.c][t.side][t.run];

		a.side = t.side;
		a.threads = counts[t.c];
		bench_turn_progress("eval9", side_name[t.side], counts[t.c], t.run, runs);
		if (bench_in_child(mix_child, &a, m, sizeof(*m)))
			return -1;
		if (!m->ok) {
			bench_progress_clear();
			printf("  FAILED (%s, %d threads): %s\n", side_name[t.side], counts[t.c], m->error);
			return -1;
		}
		bad += m->mismatches + m->not_zeroed;
		lost += m->checked != m->allocated;
	}
	bench_progress_clear();

	printf("        Threads Side   | %-20s | %-20s | %-20s\n", "Time (ms)", "Peak RSS (KiB)",
	       "After decay (KiB)");
	printf("        ------------------------------------------------------------------------\n");
	for (int c = 0; c < nr_counts; c++) {
		double v[NR_SIDES][4][BENCH_MAX_RUNS], start[NR_SIDES] = { 0 };
		struct bench_stat time_ratio, peak_ratio, after_chunks;
		char where[64], scase[32];

		snprintf(scase, sizeof(scase), "threads=%d", counts[c]);
		for (int s = 0; s < NR_SIDES; s++) {
			double st[BENCH_MAX_RUNS];

			for (int r = 0; r < runs; r++) {
				const struct mix_result *m = &res[c][s][r];

				v[s][0][r] = m->time_ms;
				v[s][1][r] = (double)m->peak_kb;
				v[s][2][r] = (double)m->after_kb;
				v[s][3][r] = m->chunk_kb ? (double)m->after_kb / (double)m->chunk_kb : 0;
				st[r] = (double)m->rss_start_kb;
				if (s == SIDE_PCPU)
					bench_csv_value("eval9", side_name[s], scase, 0, a.steps, r + 1,
							"rss_after_balance", (double)m->balanced_kb, "KiB",
							"above the start, after pcpu_balance()");
				bench_csv_value("eval9", side_name[s], scase, 0, a.steps, r + 1, "time",
						m->time_ms, "ms", "");
				bench_csv_value("eval9", side_name[s], scase, 0, a.steps, r + 1, "peak_rss",
						(double)m->peak_kb, "KiB", "above the start");
				bench_csv_value("eval9", side_name[s], scase, 0, a.steps, r + 1,
						"rss_after_decay", (double)m->after_kb, "KiB", "above the start");
				bench_csv_value("eval9", side_name[s], scase, 0, a.steps, r + 1, "rss_start",
						(double)m->rss_start_kb, "KiB", "");
			}
			start[s] = bench_stat_of(st, runs).med;
			printf("        %7d %-6s | %20s | %20s | %20s\n", counts[c], side_name[s],
			       BENCH_STAT(bench_stat_of(v[s][0], runs), ""),
			       BENCH_STAT(bench_stat_of(v[s][1], runs), ""),
			       BENCH_STAT(bench_stat_of(v[s][2], runs), ""));
		}
		time_ratio = bench_stat_ratio(v[SIDE_PCPU][0], v[SIDE_CALLOC][0], runs);
		peak_ratio = bench_stat_ratio(v[SIDE_PCPU][1], v[SIDE_CALLOC][1], runs);
		after_chunks = bench_stat_of(v[SIDE_PCPU][3], runs);
		double bal[BENCH_MAX_RUNS], pop[BENCH_MAX_RUNS];

		for (int r = 0; r < runs; r++) {
			const struct mix_result *m = &res[c][SIDE_PCPU][r];

			bal[r] = (double)m->balanced_kb;
			pop[r] = m->chunk_pages ? (double)m->pop_after / (double)m->chunk_pages : 0;
			bench_csv_value("eval9", "pcpu", scase, 0, a.steps, r + 1, "populated_after_decay",
					(double)m->pop_after, "pages", "per unit, beyond those at the start");
		}
		printf("        %7s pcpu / calloc: time %s, peak RSS %s\n"
		       "        %7s pcpu after decay: %s chunks above the start (decay %ld ms), of which\n"
		       "        %7s populated by the library: %s chunks; after pcpu_balance(): %s KiB\n"
		       "        %7s (RSS at start: pcpu %.0f KiB, calloc %.0f KiB; one chunk: %ld KiB)\n", "",
		       BENCH_STAT(time_ratio, "x"), BENCH_STAT(peak_ratio, "x"), "",
		       BENCH_STAT(after_chunks, ""), res[c][SIDE_PCPU][0].lib_decay_ms, "",
		       BENCH_STAT(bench_stat_of(pop, runs), ""), BENCH_STAT(bench_stat_of(bal, runs), ""), "",
		       start[SIDE_PCPU], start[SIDE_CALLOC], res[c][SIDE_PCPU][0].chunk_kb);
		snprintf(where, sizeof(where), "%d thread%s", counts[c], counts[c] > 1 ? "s" : "");
		bench_target("T11", "mixed workload: pcpu time / calloc time, every thread count",
			     BENCH_AT_MOST, 1.5, time_ratio, where, "");
		bench_target("T11m", "mixed workload: pcpu peak RSS / calloc's, every thread count",
			     BENCH_AT_MOST, 0.5, peak_ratio, where, "peak: VmHWM above the RSS at the start");
		bench_target("T11r", "mixed workload: pcpu RSS above the start after free-all + decay, in chunks",
			     BENCH_AT_MOST, 1.0, after_chunks, where, "goal: within one chunk of the start");
	}

	printf("\n  The library's counters during a pcpu run, workload and idle interval\n"
	       "  (struct pcpu_stats: system calls populating, depopulating, mprotect; chunks\n"
	       "  created and destroyed; ms in balance passes; allocations not cleared because\n"
	       "  known zero, %% of all), and the objects freed by a thread other than the one\n"
	       "  that allocated them (both sides):\n\n");
	printf("        Threads | %-14s | %-14s | %-14s | %-13s | %-13s | %-16s | %-16s | %s\n",
	       "Populate", "Depopulate", "mprotect", "Created", "Destroyed", "Balance (ms)",
	       "Not cleared (%)", "Freed by another");
	printf("        --------------------------------------------------------------------------"
	       "-------------------------------------------------------------------\n");
	for (int c = 0; c < nr_counts; c++) {
		double k[7][BENCH_MAX_RUNS], other[2 * BENCH_MAX_RUNS];
		char scase[32];
		static const char *const names[7] = { "populate_calls", "depopulate_calls",
			"mprotect_calls", "chunks_created", "chunks_destroyed", "balance_time",
			"not_cleared" };
		static const char *const units[7] = { "calls", "calls", "calls", "chunks", "chunks",
						      "ms", "%" };

		snprintf(scase, sizeof(scase), "threads=%d", counts[c]);
		for (int r = 0; r < runs; r++) {
			const struct mix_result *m = &res[c][SIDE_PCPU][r];

			k[0][r] = (double)m->calls[0];
			k[1][r] = (double)m->calls[1];
			k[2][r] = (double)m->calls[2];
			k[3][r] = (double)m->chunks_created;
			k[4][r] = (double)m->chunks_destroyed;
			k[5][r] = m->balance_ms;
			k[6][r] = 100.0 * (double)m->prezeroed / (double)(m->allocated ? m->allocated : 1);
			for (int i = 0; i < 7; i++)
				bench_csv_value("eval9", "pcpu", scase, 0, a.steps, r + 1, names[i], k[i][r],
						units[i], "");
			for (int s = 0; s < NR_SIDES; s++)
				other[s * runs + r] = 100.0 * (double)res[c][s][r].freed_by_other /
						      (double)(res[c][s][r].checked ? res[c][s][r].checked : 1);
		}
		printf("        %7d | %14s | %14s | %14s | %13s | %13s | %16s | %16s | %s %%\n", counts[c],
		       BENCH_STAT(bench_stat_of(k[0], runs), ""), BENCH_STAT(bench_stat_of(k[1], runs), ""),
		       BENCH_STAT(bench_stat_of(k[2], runs), ""), BENCH_STAT(bench_stat_of(k[3], runs), ""),
		       BENCH_STAT(bench_stat_of(k[4], runs), ""), BENCH_STAT(bench_stat_of(k[5], runs), ""),
		       BENCH_STAT(bench_stat_of(k[6], runs), ""),
		       BENCH_STAT(bench_stat_of(other, NR_SIDES * runs), ""));
	}
	printf("\n  Pattern checks: %s.\n\n", bad || lost ? "FAILED" : "every object intact in every copy");
	if (bad || lost) {
		printf("  %ld object%s with a damaged pattern or not zeroed at allocation, %ld run%s "
		       "that did not get every object back\n\n", bad, bad == 1 ? "" : "s", lost,
		       lost == 1 ? "" : "s");
		return -1;
	}
	return 0;
}

BENCH_EVAL(eval9_def, .name = "eval9", .order = 90, .run = eval_mixed,
	   .title = "mixed workload: power-law sizes, objects passed between threads")
