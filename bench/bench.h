/*
 * bench.h - the shared frame of pcpu-bench (SPEC section 6).
 *
 * An evaluation is a file in bench/ that registers itself with BENCH_EVAL
 * and uses the helpers here: the options, a monotonic clock, a progress
 * line on stderr, one CSV row per measurement, tables in the seed's
 * format, plot series and the SPEC section 7 target lines.  main.c parses
 * the command line, runs the selected evaluations in order and prints the
 * targets, writes the plots and closes the CSV at the end.
 */
#ifndef PCPU_BENCH_H
#define PCPU_BENCH_H

#include <stdbool.h>
#include <stddef.h>

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
 * One CSV row per timed phase: eval, allocator, case (free order or
 * scenario), object size, align, objects, run number, phase ("alloc" or
 * "free"), milliseconds (negative: not finished within the cap), note.
 */
void bench_csv(const char *eval, const char *allocator, const char *scase, long size,
	       long align, long n, int run, const char *phase, double ms, const char *note);

/* Median of n values (the array is reordered). */
double bench_median(double *v, int n);

/* A table row: object size and the alloc/free milliseconds. */
struct bench_row {
	long size;
	double alloc_ms;
	double free_ms;
};

/* "  <title>:" then the seed's Object Size | Alloc | Free table. */
void bench_table_print(const char *title, const struct bench_row *rows, int nrows);

/*
 * Side by side: our area map and bitmap rows with area/bitmap ratios,
 * and the seed's published figures with theirs.  seed_* may be NULL.
 */
void bench_compare_print(const char *title, const struct bench_row *area,
			 const struct bench_row *bitmap, const struct bench_row *seed_area,
			 const struct bench_row *seed_bitmap, int nrows);

/* Remember two allocators' rows for the plot of evaluation `eval`. */
void bench_plot_add(const char *eval, const char *title, const char *name_a,
		    const struct bench_row *a, const char *name_b,
		    const struct bench_row *b, int nrows);

/*
 * Report a measured value against a SPEC section 7 target.  Several calls
 * with the same id keep the worst value (the smallest for ">=" goals, the
 * largest for "<="), with `where` naming that cell.  main prints one line
 * per target at the end: value, goal and "met" / "NOT met".
 */
enum bench_sense { BENCH_AT_LEAST, BENCH_AT_MOST };
void bench_target(const char *id, const char *what, enum bench_sense sense, double goal,
		  double value, const char *where, const char *note);

/* "2^20" for powers of two, else the number. */
const char *bench_count_str(long n, char *buf, size_t len);

#endif
