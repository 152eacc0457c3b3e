/*
 * bench.h - the shared frame of pcpu-bench, the evaluation behind `make
 * bench`.
 *
 * An evaluation is a file in bench/ that registers itself with BENCH_EVAL
 * and uses the helpers here: the options, a monotonic clock, a progress
 * line on stderr, one CSV row per measurement, figures over runs (median
 * and spread, figures.c), tables in the seed's format, plot series, the
 * target lines, and forked measurements under fixed conditions (proc.c),
 * with the thread counts and schedule of the threaded evaluations.
 * main.c parses the command line, runs the selected evaluations in order,
 * then prints the targets, writes the plots and closes the CSV.
 */
#ifndef PCPU_BENCH_H
#define PCPU_BENCH_H

#include <stdbool.h>
#include <stddef.h>

#define BENCH_MIN_RUNS 3        /* fewer only under --quick, and then nothing is judged */
#define BENCH_MAX_RUNS 64

struct bench_opts {
	bool quick;             /* small N, one run, small caps */
	bool check;             /* verify allocator state around measurements */
	int runs;               /* repetitions; the median is reported */
	double cap_sec;         /* time cap for runs that may explode */
	int unit_kb;            /* unit size in KiB */
	int nr_cpus;            /* units per chunk: --cpus, else online CPUs */
	bool cpus_given;        /* --cpus was on the command line */
	int page_size;          /* bytes, from sysconf */
	long n;                 /* objects per measurement (2^20, quick 2^14) */
	int decay_ms;           /* evaluation 9: idle interval after free-all */
	unsigned long seed;     /* evaluation 9: workload seed */
	const char *csv_path;
	const char *only;       /* comma-separated evaluation names, or NULL */
	const char *sizes;      /* comma-separated object sizes to run, or NULL (all) */
	bool no_plot;
	bool no_pool;           /* fresh mmap per chunk: page faults inside the timings */
};

extern struct bench_opts bench_opts;

/* One evaluation; `order` sorts them (10, 20, 30 ... leaves gaps). */
struct bench_eval {
	const char *name;       /* what --only matches, e.g. "eval1" */
	const char *title;
	int order;
	int (*run)(void);       /* 0, or -1 after printing why */
};

void bench_register(const struct bench_eval *ev);

/* Define and register an evaluation from any file in bench/. */
#define BENCH_EVAL(id, ...)                                                     \
	static const struct bench_eval id = { __VA_ARGS__ };                    \
	__attribute__((constructor)) static void id##_register(void)            \
	{                                                                       \
		bench_register(&id);                                            \
	}

/* Milliseconds on CLOCK_MONOTONIC. */
double bench_now_ms(void);

/* One progress line on stderr (rewritten in place on a terminal). */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_progress_clear(void);

/*
 * CSV columns: eval, allocator, case (free order, scenario, thread
 * count), object size, align, n (objects, or operations), run number,
 * phase (what was measured), value, unit, note.  bench_csv writes a time
 * in ms (negative: not finished within the cap); bench_csv_value any unit.
 */
void bench_csv(const char *eval, const char *allocator, const char *scase, long size,
	       long align, long n, int run, const char *phase, double ms, const char *note);
void bench_csv_value(const char *eval, const char *allocator, const char *scase, long size,
		     long n, int run, const char *phase, double value, const char *unit,
		     const char *note);

/* ---- figures over runs (figures.c) ------------------------------------- */

/* Median of n values (the array is reordered). */
double bench_median(double *v, int n);

/* A figure over n runs: the median and the spread. */
struct bench_stat {
	double med, min, max;
	int n;
};

/* Of n values (not reordered; at most 4 * BENCH_MAX_RUNS are used). */
struct bench_stat bench_stat_of(const double *v, int n);
/*
 * A ratio of two interleaved sides: a[i] / b[i] for each run i (run i of
 * both sides ran back to back), then the median and min..max of those.
 */
struct bench_stat bench_stat_ratio(const double *a, const double *b, int n);

/* "12.3", three significant digits */
const char *bench_num_str(double v, char *buf, size_t len);
/* "12.3 [11.8..13.1]" (suffix after the median, e.g. "x"); one run: "12.3" */
const char *bench_stat_str(struct bench_stat s, const char *suffix, char *buf, size_t len);
#define BENCH_STAT(s, suffix) bench_stat_str((s), (suffix), (char[96]){ 0 }, 96)

/*
 * Report a figure against a target.  Several calls with the same id keep
 * the worst one (the worse verdict, then the worse median), with `where`
 * naming it.  The verdict: "met" when the whole spread meets the goal,
 * "NOT met" when none of it does, "unsettled" when it crosses the goal;
 * under --quick, "quick: not judged".
 */
enum bench_sense { BENCH_AT_LEAST, BENCH_AT_MOST };
void bench_target(const char *id, const char *what, enum bench_sense sense, double goal,
		  struct bench_stat value, const char *where, const char *note);
void bench_targets_print(void);

/* ---- tables and plots (main.c) ----------------------------------------- */

/* A table row: object size and the alloc/free milliseconds. */
struct bench_row {
	long size;
	double alloc_ms;
	double free_ms;
};

/* "  <title>:" then the seed's Object Size | Alloc | Free table. */
void bench_table_print(const char *title, const struct bench_row *rows, int nrows);

/* Remember two allocators' rows for the plot of evaluation `eval`. */
void bench_plot_add(const char *eval, const char *title, const char *name_a,
		    const struct bench_row *a, const char *name_b,
		    const struct bench_row *b, int nrows);

/* "2^20" for powers of two, else the number. */
const char *bench_count_str(long n, char *buf, size_t len);

/* ---- measurements in forked children (proc.c) --------------------------- */

/*
 * Run fn(arg, res) in a forked child and copy its res (size bytes) back.
 * 0, or -1 (after printing why) if the child died or sent nothing.  The
 * allocator is configured once per process, so anything that calls
 * pcpu_init runs here; the parent never initialises it.
 */
int bench_in_child(void (*fn)(void *arg, void *res), void *arg, void *res, size_t size);

/*
 * The conditions every measuring child sets first, so both sides of a
 * comparison run alike whatever ran before: transparent huge pages off for
 * the process (prctl), glibc's mmap threshold fixed at its default 128 KiB
 * (no dynamic raise after frees), and no automatic heap trimming (memory
 * goes back to the system only where a measurement asks: malloc_trim).
 */
void bench_fixed_conditions(void);
/* A sentence describing them and the machine's THP mode (two lines). */
const char *bench_conditions_str(void);
/* True if the machine hands free memory back to a hypervisor (virtio
 * balloon free page reporting): first touches then cost a host fault too. */
bool bench_page_reporting(void);

long bench_rss_kb(void);        /* VmRSS */
long bench_hwm_kb(void);        /* VmHWM: the process's peak VmRSS */

/* Online CPUs (the thread counts of evaluations 7-9) and configured CPUs. */
int bench_online_cpus(void);
unsigned bench_machine_cpus(void);

/*
 * The thread counts of evaluations 7-9 into counts[0..2]: 1, cpus and
 * 4 x cpus, leaving out those above max_threads and a count equal to the
 * one before (1 and cpus on one CPU).  Returns how many.
 */
int bench_thread_counts(int cpus, int max_threads, int counts[3]);

/*
 * Their schedule: in every run, every thread count measures every side
 * once, the sides taking turns going first (by run, and with
 * turn_by_count by thread count too).  Turn k, from 0 to runs x
 * nr_counts x nr_sides - 1, is bench_turn(k, ...); bench_turn_progress
 * (main.c) shows it ("<eval>: <name>, N threads, run r/runs").
 */
struct bench_turn {
	int run, c, side;       /* run (from 0), index in counts, side */
};
struct bench_turn bench_turn(int k, int nr_counts, int nr_sides, bool turn_by_count);
void bench_turn_progress(const char *eval, const char *name, int threads, int run, int runs);

#endif
