/*
 * main.c - pcpu-bench: command line, the evaluation registry, and the
 * output helpers of bench.h (CSV, tables, gnuplot plots).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct bench_opts bench_opts;

#define MAX_EVALS   32
#define MAX_PLOTS   8
#define MAX_ROWS    16

static const struct bench_eval *evals[MAX_EVALS];
static int nr_evals;
static FILE *csv;
static bool progress_tty, progress_shown;

void bench_register(const struct bench_eval *ev)
{
	if (nr_evals == MAX_EVALS) {
		fprintf(stderr, "pcpu-bench: too many evaluations (raise MAX_EVALS)\n");
		exit(2);
	}
	evals[nr_evals++] = ev;
}

double bench_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void bench_progress(const char *fmt, ...)
{
	va_list ap;

	fputs(progress_tty ? "\r\033[K" : "", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(progress_tty ? "" : "\n", stderr);
	fflush(stderr);
	progress_shown = true;
}

void bench_turn_progress(const char *eval, const char *name, int threads, int run, int runs)
{
	bench_progress("%s: %s, %d thread%s, run %d/%d", eval, name, threads, threads > 1 ? "s" : "",
		       run + 1, runs);
}

void bench_progress_clear(void)
{
	if (progress_tty && progress_shown)
		fputs("\r\033[K", stderr);
	progress_shown = false;
}

void bench_csv(const char *eval, const char *allocator, const char *scase, long size,
	       long align, long n, int run, const char *phase, double ms, const char *note)
{
	if (!csv)
		return;
	fprintf(csv, "%s,%s,%s,%ld,%ld,%ld,%d,%s,%.3f,ms,%s\n", eval, allocator, scase, size,
		align, n, run, phase, ms, note ? note : "");
	fflush(csv);
}

void bench_csv_value(const char *eval, const char *allocator, const char *scase, long size,
		     long n, int run, const char *phase, double value, const char *unit,
		     const char *note)
{
	if (!csv)
		return;
	fprintf(csv, "%s,%s,%s,%ld,0,%ld,%d,%s,%.4f,%s,%s\n", eval, allocator, scase, size, n,
		run, phase, value, unit, note ? note : "");
	fflush(csv);
}

const char *bench_count_str(long n, char *buf, size_t len)
{
	if (n > 0 && !(n & (n - 1)))
		snprintf(buf, len, "2^%d", __builtin_ctzl((unsigned long)n));
	else
		snprintf(buf, len, "%ld", n);
	return buf;
}

/* Milliseconds the way the seed printed them: whole numbers, decimals when small. */
static const char *fmt_ms(double ms, char *buf, size_t len)
{
	if (ms < 0)
		snprintf(buf, len, "-");
	else if (ms < 10)
		snprintf(buf, len, "%.2f", ms);
	else if (ms < 100)
		snprintf(buf, len, "%.1f", ms);
	else
		snprintf(buf, len, "%.0f", ms);
	return buf;
}

void bench_table_print(const char *title, const struct bench_row *rows, int nrows)
{
	char a[32], f[32];

	printf("  %s:\n\n", title);
	printf("        Object Size | Alloc Time (ms) | Free Time (ms)\n");
	printf("        ----------------------------------------------\n");
	for (int i = 0; i < nrows; i++) {
		char sz[24];

		snprintf(sz, sizeof(sz), "%ldB", rows[i].size);
		printf("        %8s    | %10s      | %8s\n", sz, fmt_ms(rows[i].alloc_ms, a, sizeof(a)),
		       fmt_ms(rows[i].free_ms, f, sizeof(f)));
	}
	printf("\n");
}

/* ---- plots ------------------------------------------------------------- */

struct plot {
	char eval[24], title[120], name_a[24], name_b[24];
	struct bench_row a[MAX_ROWS], b[MAX_ROWS];
	int nrows;
};
static struct plot plots[MAX_PLOTS];
static int nr_plots;

void bench_plot_add(const char *eval, const char *title, const char *name_a,
		    const struct bench_row *a, const char *name_b,
		    const struct bench_row *b, int nrows)
{
	struct plot *p;

	if (nr_plots == MAX_PLOTS || nrows > MAX_ROWS)
		return;
	p = &plots[nr_plots++];
	snprintf(p->eval, sizeof(p->eval), "%s", eval);
	snprintf(p->title, sizeof(p->title), "%s", title);
	snprintf(p->name_a, sizeof(p->name_a), "%s", name_a);
	snprintf(p->name_b, sizeof(p->name_b), "%s", name_b);
	memcpy(p->a, a, sizeof(a[0]) * (size_t)nrows);
	memcpy(p->b, b, sizeof(b[0]) * (size_t)nrows);
	p->nrows = nrows;
}

static bool on_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	while (path && *path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
		if (n && access(buf, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/*
 * For each plot, generate a self-contained gnuplot script (data inline)
 * in a temporary file, run it to make <prefix>-<eval>.png, and remove the
 * script; it is kept, and named, only when gnuplot fails.
 */
static void write_plots(const char *prefix)
{
	if (!nr_plots || bench_opts.no_plot)
		return;
	if (!on_path("gnuplot")) {
		printf("Plots: gnuplot is not on PATH; `apt-get install gnuplot` enables them.\n");
		return;
	}
	for (int i = 0; i < nr_plots; i++) {
		const struct plot *p = &plots[i];
		char gp[] = "/tmp/pcpu-bench-plot-XXXXXX", *png = NULL, *cmd = NULL;
		int fd = mkstemp(gp);
		FILE *f = fd < 0 ? NULL : fdopen(fd, "w");

		if (!f || asprintf(&png, "%s-%s.png", prefix, p->eval) < 0 ||
		    asprintf(&cmd, "gnuplot '%s' 2>&1", gp) < 0) {
			printf("Plots: cannot write a gnuplot script: %s\n", strerror(errno));
			if (f)
				fclose(f);
			free(png);
			return;
		}
		fprintf(f, "$data << EOD\n# size %s_alloc %s_free %s_alloc %s_free (ms)\n",
			p->name_a, p->name_a, p->name_b, p->name_b);
		for (int r = 0; r < p->nrows; r++)
			fprintf(f, "%ld %.3f %.3f %.3f %.3f\n", p->a[r].size, p->a[r].alloc_ms,
				p->a[r].free_ms, p->b[r].alloc_ms, p->b[r].free_ms);
		fprintf(f,
			"EOD\n"
			"if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
			"  set terminal pngcairo size 1000,600\n"
			"} else {\n"
			"  set terminal png size 1000,600\n"
			"}\n"
			"set termoption noenhanced\n"
			"set output '%s'\n"
			"set title '%s'\n"
			"set xlabel 'object size (bytes)'\n"
			"set ylabel 'time for all objects (ms)'\n"
			"set logscale xy 2\n"
			"set format y '%%g'\n"
			"set key top left\n"
			"set grid\n"
			"plot $data using 1:2 with linespoints lw 2 title '%s alloc', \\\n"
			"     $data using 1:3 with linespoints lw 2 dt 2 title '%s free', \\\n"
			"     $data using 1:4 with linespoints lw 2 title '%s alloc', \\\n"
			"     $data using 1:5 with linespoints lw 2 dt 2 title '%s free'\n",
			png, p->title, p->name_a, p->name_a, p->name_b, p->name_b);
		fclose(f);
		fflush(stdout);
		if (system(cmd) == 0) {
			printf("Plot: %s\n", png);
			unlink(gp);
		} else {
			printf("Plots: gnuplot failed; the script is kept in %s\n", gp);
		}
		free(png);
		free(cmd);
	}
}

/* ---- command line ------------------------------------------------------ */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: pcpu-bench [options]\n"
		"  --quick          small run (N = 2^14, 2 runs, 2 s cap, --check): checks that it works;\n"
		"                   its target lines are not judged\n"
		"  --only LIST      run only these evaluations (comma-separated; see --list)\n"
		"  --list           list the evaluations and exit\n"
		"  --sizes LIST     object sizes for evals 1 and 2 (default 4,16,64,256,1024)\n"
		"  --runs N         interleaved runs per figure, median and spread reported (default 3,\n"
		"                   at least 3; 1 or 2 only with --quick)\n"
		"  --n N            objects per measurement (default 2^20)\n"
		"  --cap-sec S      time cap for the area map in evaluation 3 (default 60)\n"
		"  --unit-kb K      unit size in KiB, a power of two (default 256, a typical x86_64 kernel unit)\n"
		"  --cpus N         units per chunk (default: online CPUs)\n"
		"  --decay-ms MS    evaluation 9: idle interval after free-all before RSS is read\n"
		"                   (default 1000, quick 100)\n"
		"  --seed N         evaluation 9: workload seed (default 1)\n"
		"  --csv FILE       CSV of every measurement (default pcpu-bench.csv)\n"
		"  --check          verify allocator invariants around every measurement\n"
		"  --no-pool        map fresh memory per chunk (page faults count in the times)\n"
		"  --no-plot        do not run gnuplot\n"
		"  --help\n");
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s ? s : "", &end, 0);
	if (!s || errno || *end || v < min || v > max) {
		fprintf(stderr, "pcpu-bench: %s wants a number in [%ld, %ld], got '%s'\n", opt, min,
			max, s ? s : "");
		exit(2);
	}
	return v;
}

static bool selected(const char *name)
{
	const char *p = bench_opts.only;
	size_t len = strlen(name);

	if (!p)
		return true;
	while (*p) {
		size_t n = strcspn(p, ",");

		if (n == len && !strncmp(p, name, n))
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

static int cmp_eval(const void *a, const void *b)
{
	const struct bench_eval *x = *(const struct bench_eval *const *)a;
	const struct bench_eval *y = *(const struct bench_eval *const *)b;

	return (x->order > y->order) - (x->order < y->order);
}

int main(int argc, char **argv)
{
	bool list = false, runs_set = false, cap_set = false, n_set = false, decay_set = false;
	char prefix[4096];
	int rc = 0, ran = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	bench_opts.runs = 3;
	bench_opts.cap_sec = 60;
	bench_opts.unit_kb = 256;
	bench_opts.nr_cpus = ncpu > 0 ? (int)ncpu : 1;
	bench_opts.page_size = (int)sysconf(_SC_PAGESIZE);
	bench_opts.n = 1L << 20;
	bench_opts.csv_path = "pcpu-bench.csv";
	bench_opts.decay_ms = 1000;
	bench_opts.seed = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--quick")) {
			bench_opts.quick = true;
		} else if (!strcmp(a, "--check")) {
			bench_opts.check = true;
		} else if (!strcmp(a, "--no-pool")) {
			bench_opts.no_pool = true;
		} else if (!strcmp(a, "--no-plot")) {
			bench_opts.no_plot = true;
		} else if (!strcmp(a, "--list")) {
			list = true;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--only") && v) {
			bench_opts.only = v, i++;
		} else if (!strcmp(a, "--sizes") && v) {
			bench_opts.sizes = v, i++;
		} else if (!strcmp(a, "--csv") && v) {
			bench_opts.csv_path = v, i++;
		} else if (!strcmp(a, "--runs")) {
			bench_opts.runs = (int)parse_long(a, v, 1, BENCH_MAX_RUNS), i++, runs_set = true;
		} else if (!strcmp(a, "--decay-ms")) {
			bench_opts.decay_ms = (int)parse_long(a, v, 0, 600000), i++, decay_set = true;
		} else if (!strcmp(a, "--seed")) {
			bench_opts.seed = (unsigned long)parse_long(a, v, 0, 1L << 62), i++;
		} else if (!strcmp(a, "--n")) {
			bench_opts.n = parse_long(a, v, 16, 1L << 26), i++, n_set = true;
		} else if (!strcmp(a, "--cap-sec")) {
			bench_opts.cap_sec = (double)parse_long(a, v, 1, 86400), i++, cap_set = true;
		} else if (!strcmp(a, "--unit-kb")) {
			bench_opts.unit_kb = (int)parse_long(a, v, 4, 1 << 20), i++;
		} else if (!strcmp(a, "--cpus")) {
			bench_opts.nr_cpus = (int)parse_long(a, v, 1, 4096), i++;
			bench_opts.cpus_given = true;
		} else {
			fprintf(stderr, "pcpu-bench: unknown or incomplete option '%s'\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (bench_opts.quick) {
		if (!runs_set)
			bench_opts.runs = 2;
		if (!decay_set)
			bench_opts.decay_ms = 100;
		if (!cap_set)
			bench_opts.cap_sec = 2;
		if (!n_set)
			bench_opts.n = 1L << 14;
		bench_opts.check = true;
	} else if (bench_opts.runs < BENCH_MIN_RUNS) {
		fprintf(stderr, "pcpu-bench: --runs must be at least %d (1 or 2 only with --quick)\n",
			BENCH_MIN_RUNS);
		return 2;
	}
	{
		long ub = (long)bench_opts.unit_kb * 1024;

		if ((ub & (ub - 1)) || ub < bench_opts.page_size || ub > (1L << 30)) {
			fprintf(stderr, "pcpu-bench: --unit-kb must give a power of two between the "
				"page size (%d) and 1 GiB\n", bench_opts.page_size);
			return 2;
		}
	}

	qsort(evals, (size_t)nr_evals, sizeof(evals[0]), cmp_eval);
	if (list) {
		for (int i = 0; i < nr_evals; i++)
			printf("%-8s %s\n", evals[i]->name, evals[i]->title);
		return 0;
	}

	progress_tty = isatty(STDERR_FILENO);
	csv = fopen(bench_opts.csv_path, "w");
	if (!csv) {
		fprintf(stderr, "pcpu-bench: cannot write %s: %s\n", bench_opts.csv_path,
			strerror(errno));
		return 1;
	}
	fprintf(csv, "eval,allocator,case,size,align,n,run,phase,value,unit,note\n");
	snprintf(prefix, sizeof(prefix), "%s", bench_opts.csv_path);
	if (strlen(prefix) > 4 && !strcmp(prefix + strlen(prefix) - 4, ".csv"))
		prefix[strlen(prefix) - 4] = '\0';

	{
		char nb[32];

		printf("pcpu-bench: %s objects per measurement, %d interleaved run%s per figure "
		       "(median [min..max]), unit %d KiB, %d unit%s per chunk, page %d B%s\n\n",
		       bench_count_str(bench_opts.n, nb, sizeof(nb)), bench_opts.runs,
		       bench_opts.runs > 1 ? "s" : "", bench_opts.unit_kb, bench_opts.nr_cpus,
		       bench_opts.nr_cpus > 1 ? "s" : "", bench_opts.page_size,
		       bench_opts.quick ? ", quick mode" : "");
	}
	fflush(stdout);

	for (int i = 0; i < nr_evals; i++) {
		double t0;

		if (!selected(evals[i]->name))
			continue;
		printf("== %s: %s ==\n\n", evals[i]->name, evals[i]->title);
		fflush(stdout);
		t0 = bench_now_ms();
		if (evals[i]->run()) {
			printf("%s: FAILED\n\n", evals[i]->name);
			rc = 1;
		}
		bench_progress_clear();
		printf("(%s took %.1f s)\n\n", evals[i]->name, (bench_now_ms() - t0) / 1e3);
		fflush(stdout);
		ran++;
	}
	if (!ran) {
		fprintf(stderr, "pcpu-bench: --only '%s' matches no evaluation (see --list)\n",
			bench_opts.only ? bench_opts.only : "");
		rc = 2;
	}
	bench_targets_print();
	write_plots(prefix);
	if (fclose(csv))
		rc = 1;
	printf("CSV: %s\n", bench_opts.csv_path);
	return rc;
}
