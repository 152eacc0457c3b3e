/*
 * chunk_setup_cost.c - what a chunk costs before and while it is filled,
 * bitmap against area map, without the benchmark's driver or zeroing: the
 * part of evaluation 1's alloc time that is per chunk, not per object.
 *
 * Usage: chunk-setup-cost [SIZE [ROUNDS]]   (defaults 1024 B, 7 rounds)
 * For each side, NR_CHUNKS chunks of one 256 KiB unit (all live at once,
 * as in evaluation 1) are timed twice: created with one SIZE allocation
 * each ("setup"), then created and filled with SIZE allocations ("fill").
 * fill - setup is the cost of the other allocations; setup / (objects per
 * chunk) is what chunk creation adds to every object.  The sides alternate,
 * the first round is dropped (it faults in the heap), medians with
 * [min..max].  CPU time of this thread; malloc as in pcpu-bench.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "areamap.h"
#include "bench.h"
#include "chunk.h"

#define NR_CHUNKS 4096
#define UNIT      (256 * 1024)
#define MAX_ROUNDS 64

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Create every chunk with `per` allocations of size; returns the ms taken. */
static double run(bool bitmap, void **cs, int per, size_t size, int page)
{
	double t0 = now_ms(), t;

	for (int i = 0; i < NR_CHUNKS; i++) {
		cs[i] = bitmap ? (void *)chunk_create(UNIT / page, (size_t)page, 0, 0)
			       : (void *)areamap_create(UNIT, 0);
		if (!cs[i])
			exit(1);
		for (int k = 0; k < per; k++)
			if ((bitmap ? chunk_alloc(cs[i], size, 4, false) : areamap_alloc(cs[i], size, 4)) < 0)
				exit(1);
	}
	t = now_ms() - t0;
	for (int i = 0; i < NR_CHUNKS; i++) {
		if (bitmap)
			chunk_destroy(cs[i]);
		else
			areamap_destroy(cs[i]);
	}
	return t;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void report(const char *what, double *v, int n, int objects)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	printf("  %-14s %8.2f ms [%.2f..%.2f]  %6.2f ns per object\n", what, v[n / 2], v[0], v[n - 1],
	       v[n / 2] * 1e6 / objects);
}

int main(int argc, char **argv)
{
	size_t size = argc > 1 ? (size_t)atol(argv[1]) : 1024;
	int rounds = argc > 2 ? atoi(argv[2]) : 7, page = (int)sysconf(_SC_PAGESIZE);
	void **cs = malloc(sizeof(*cs) * NR_CHUNKS);
	double setup[2][MAX_ROUNDS], fill[2][MAX_ROUNDS];
	int per = (int)(UNIT / ((size + 3) & ~(size_t)3));

	if (!cs || size < 4 || size > UNIT || rounds < 1 || rounds >= MAX_ROUNDS)
		return 2;
	bench_fixed_conditions();
	for (int r = 0; r <= rounds; r++) {
		for (int k = 0; k < 2; k++) {
			bool bitmap = (r + k) % 2;
			double s = run(bitmap, cs, 1, size, page), f = run(bitmap, cs, per, size, page);

			if (r > 0) {
				setup[bitmap][r - 1] = s;
				fill[bitmap][r - 1] = f;
			}
		}
	}
	printf("%d chunks of %d KiB, %zu B objects (%d per chunk), %d rounds\n", NR_CHUNKS, UNIT / 1024,
	       size, per, rounds);
	for (int b = 1; b >= 0; b--) {
		printf("%s:\n", b ? "bitmap" : "area map");
		report("setup", setup[b], rounds, NR_CHUNKS * per);
		report("setup + fill", fill[b], rounds, NR_CHUNKS * per);
	}
	free(cs);
	return 0;
}
