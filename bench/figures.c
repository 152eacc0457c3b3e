/*
 * figures.c - figures over repeated runs and the target lines.
 *
 * Every timed figure of pcpu-bench is the median of the runs with the
 * spread (min..max) printed beside it.  The two sides of a comparison run
 * interleaved (A B A B ..., taking turns going first), so run i of one
 * side and run i of the other saw the same machine; a ratio is the median
 * of those per-run ratios, and its spread their min..max.  A target is
 * "met" only when the whole spread meets the goal, "NOT met" when none of
 * it does, and "unsettled" when the spread crosses the goal.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_TARGETS 24

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct bench_stat bench_stat_of(const double *v, int n)
{
	struct bench_stat s = { 0 };
	double tmp[4 * BENCH_MAX_RUNS];

	if (n <= 0)
		return s;
	if (n > 4 * BENCH_MAX_RUNS)
		n = 4 * BENCH_MAX_RUNS;
	memcpy(tmp, v, sizeof(*v) * (size_t)n);
	s.n = n;
	s.med = bench_median(tmp, n);
	s.min = tmp[0];
	s.max = tmp[n - 1];
	return s;
}

struct bench_stat bench_stat_ratio(const double *a, const double *b, int n)
{
	double r[4 * BENCH_MAX_RUNS];

	if (n > 4 * BENCH_MAX_RUNS)
		n = 4 * BENCH_MAX_RUNS;
	for (int i = 0; i < n; i++)
		r[i] = b[i] > 0 ? a[i] / b[i] : INFINITY;
	return bench_stat_of(r, n);
}

/* Three significant digits, no exponent: 0.0123, 1.23, 12.3, 123, 12345; whole numbers as such. */
const char *bench_num_str(double v, char *buf, size_t len)
{
	double a = fabs(v);

	if (isinf(v))
		snprintf(buf, len, "inf");
	else if (a >= 100 || (a < 1e15 && v == floor(v)))     /* whole numbers as such */
		snprintf(buf, len, "%.0f", v);
	else if (a >= 10)
		snprintf(buf, len, "%.1f", v);
	else if (a >= 1)
		snprintf(buf, len, "%.2f", v);
	else if (a >= 0.1)
		snprintf(buf, len, "%.3f", v);
	else
		snprintf(buf, len, "%.4f", v);
	return buf;
}

const char *bench_stat_str(struct bench_stat s, const char *suffix, char *buf, size_t len)
{
	char m[32], lo[32], hi[32];

	if (!suffix)
		suffix = "";
	if (s.n <= 0)
		snprintf(buf, len, "-");
	else if (s.n == 1)
		snprintf(buf, len, "%s%s", bench_num_str(s.med, m, sizeof(m)), suffix);
	else
		snprintf(buf, len, "%s%s [%s..%s]", bench_num_str(s.med, m, sizeof(m)), suffix,
			 bench_num_str(s.min, lo, sizeof(lo)), bench_num_str(s.max, hi, sizeof(hi)));
	return buf;
}

/* ---- targets ----------------------------------------------------------- */

enum verdict { MET, UNSETTLED, NOT_MET, NOT_JUDGED };
static const char *const verdict_str[] = { "met", "unsettled", "NOT met", "quick: not judged" };

struct target {
	char id[8], what[120], where[200], note[240];
	enum bench_sense sense;
	double goal;
	struct bench_stat value;
	enum verdict verdict;
};
static struct target targets[MAX_TARGETS];
static int nr_targets;

static bool meets(enum bench_sense sense, double v, double goal)
{
	return sense == BENCH_AT_LEAST ? v >= goal : v <= goal;
}

static enum verdict judge(enum bench_sense sense, double goal, struct bench_stat v)
{
	bool lo = meets(sense, v.min, goal), hi = meets(sense, v.max, goal);

	if (bench_opts.quick || v.n < BENCH_MIN_RUNS)
		return NOT_JUDGED;
	return lo && hi ? MET : !lo && !hi ? NOT_MET : UNSETTLED;
}

/* Is a worse than b: a worse verdict, or the same verdict and a worse median. */
static bool worse(const struct target *t, enum verdict va, struct bench_stat a, enum verdict vb,
		  struct bench_stat b)
{
	if (va != vb)
		return va > vb;
	return t->sense == BENCH_AT_LEAST ? a.med < b.med : a.med > b.med;
}

void bench_target(const char *id, const char *what, enum bench_sense sense, double goal,
		  struct bench_stat value, const char *where, const char *note)
{
	struct target *t = NULL;
	enum verdict v = judge(sense, goal, value);

	for (int i = 0; i < nr_targets; i++)
		if (!strcmp(targets[i].id, id))
			t = &targets[i];
	if (!t) {
		if (nr_targets == MAX_TARGETS)
			return;
		t = &targets[nr_targets++];
		snprintf(t->id, sizeof(t->id), "%s", id);
		snprintf(t->what, sizeof(t->what), "%s", what);
		t->sense = sense;
		t->goal = goal;
	} else if (!worse(t, v, value, t->verdict, t->value)) {
		return;
	}
	t->value = value;
	t->verdict = v;
	snprintf(t->where, sizeof(t->where), "%s", where ? where : "");
	snprintf(t->note, sizeof(t->note), "%s", note ? note : "");
}

/* T1 < T2 < ... < T10 < T11; a suffix (T4m) sorts after its number. */
static int cmp_target(const void *a, const void *b)
{
	const char *x = ((const struct target *)a)->id, *y = ((const struct target *)b)->id;
	long nx = strtol(x + 1, NULL, 10), ny = strtol(y + 1, NULL, 10);

	if (nx != ny)
		return (nx > ny) - (nx < ny);
	return strcmp(x, y);
}

void bench_targets_print(void)
{
	if (!nr_targets)
		return;
	qsort(targets, (size_t)nr_targets, sizeof(targets[0]), cmp_target);
	printf("Targets: median of the runs [min..max of the per-run values]; a spread that\n"
	       "crosses the goal is \"unsettled\"%s:\n",
	       bench_opts.quick ? " (quick mode: small sizes, nothing is judged)" : "");
	for (int i = 0; i < nr_targets; i++) {
		const struct target *t = &targets[i];
		char v[96], g[32];

		printf("  %-4s %s: %s (goal %s %s) -- %s\n", t->id, t->what,
		       bench_stat_str(t->value, "", v, sizeof(v)),
		       t->sense == BENCH_AT_LEAST ? ">=" : "<=", bench_num_str(t->goal, g, sizeof(g)),
		       verdict_str[t->verdict]);
		if (t->where[0])
			printf("         at: %s\n", t->where);
		if (t->note[0])
			printf("         %s\n", t->note);
	}
	printf("\n");
}
