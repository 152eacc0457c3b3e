/*
 * depopulate_cost.c - what populating and giving back one page range in
 * every unit costs, the ways the OS layer can do it.  Not a test (CTest
 * does not run it): timing belongs to measurements; the table in README.md
 * ("Reclaim") comes from it.
 *
 * Units are 256 KiB apart in one reservation, as in a chunk.  One
 * operation populates pages [8, 8 + P) of every unit, writes a byte in
 * each, then gives them back.  Ways:
 *   per unit    os_populate / os_depopulate on each unit's range: mprotect
 *               read-write + MADV_POPULATE_WRITE, MADV_DONTNEED +
 *               mprotect PROT_NONE (the library before reclaim by decay)
 *   mapped      os_populate_v / os_depopulate_v(OS_DEPOP_DONTNEED) on a
 *               range mapped read-write once: one process_madvise each way
 *               where the kernel takes it (the default)
 *   protect     os_populate_v(protect) / os_depopulate_v(OS_DEPOP_PROTECT):
 *               the same plus one mprotect per unit each way
 * Runs interleave the ways (rotating the order); each line gives the
 * median over runs and the spread (min..max) of µs per populate and per
 * give-back.  With -s a second thread of the process spins, so every TLB
 * flush has another CPU to reach.
 *
 * Usage: depopulate_cost [-u UNITS]... [-p PAGES] [-n OPS] [-r RUNS] [-s]
 * (defaults 2 and 16 units, 1 page, 2000 operations, 5 runs).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "os.h"

#define UNIT (256 * 1024)
#define MAX_UNITS 1024
#define MAX_RUNS 64
enum { WAY_PER_UNIT, WAY_MAPPED, WAY_PROTECT, NR_WAYS };
static const char *const way_name[NR_WAYS] = { "per unit (before)", "mapped (default)", "protect" };

static volatile int stop;

static void *spin(void *arg)
{
	volatile unsigned long x = 0;

	(void)arg;
	while (!stop)
		x++;
	return NULL;
}

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One run of `ops` operations one way: µs per populate and per give-back. */
static void run_way(int way, char *base, int units, size_t len, int ops, double *pop, double *dep)
{
	struct iovec v[MAX_UNITS];
	struct os_syscalls sc = { 0 };
	double tp = 0, td = 0;

	for (int i = 0; i < units; i++) {
		v[i].iov_base = base + (size_t)i * UNIT + 8 * os_page_size();
		v[i].iov_len = len;
	}
	if (way == WAY_MAPPED && os_map_rw(base, (size_t)units * UNIT, &sc)) {
		perror("os_map_rw");
		exit(1);
	}
	for (int op = 0; op < ops; op++) {
		double t0 = now_us(), t1, t2;
		int rc = 0;

		if (way == WAY_PER_UNIT)
			for (int i = 0; i < units; i++)
				rc |= os_populate(v[i].iov_base, len);
		else
			rc = os_populate_v(v, units, way == WAY_PROTECT, &sc);
		if (rc) {
			perror("populate");
			exit(1);
		}
		for (int i = 0; i < units; i++)
			((volatile char *)v[i].iov_base)[op % len] = 1;
		t1 = now_us();
		if (way == WAY_PER_UNIT)
			for (int i = 0; i < units; i++)
				rc |= os_depopulate(v[i].iov_base, len);
		else
			rc = os_depopulate_v(v, units, way == WAY_PROTECT ? OS_DEPOP_PROTECT : OS_DEPOP_DONTNEED, &sc);
		if (rc) {
			perror("depopulate");
			exit(1);
		}
		t2 = now_us();
		tp += t1 - t0;
		td += t2 - t1;
	}
	if (way == WAY_MAPPED)
		(void)os_unmap_rw(base, (size_t)units * UNIT, &sc);
	*pop = tp / ops;
	*dep = td / ops;
}

int main(int argc, char **argv)
{
	int unit_counts[8], nr_counts = 0, pages = 1, ops = 2000, runs = 5, spinning = 0, opt;
	pthread_t spinner;

	while ((opt = getopt(argc, argv, "u:p:n:r:s")) != -1) {
		switch (opt) {
		case 'u':
			if (nr_counts < 8)
				unit_counts[nr_counts++] = atoi(optarg);
			break;
		case 'p': pages = atoi(optarg); break;
		case 'n': ops = atoi(optarg); break;
		case 'r': runs = atoi(optarg); break;
		case 's': spinning = 1; break;
		default:
			fprintf(stderr, "usage: %s [-u UNITS]... [-p PAGES] [-n OPS] [-r RUNS] [-s]\n", argv[0]);
			return 2;
		}
	}
	if (!nr_counts) {
		unit_counts[nr_counts++] = 2;
		unit_counts[nr_counts++] = 16;
	}
	if (pages < 1 || (size_t)(8 + pages) * os_page_size() > UNIT || ops < 1 || runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "depopulate_cost: bad arguments\n");
		return 2;
	}
	if (spinning)
		pthread_create(&spinner, NULL, spin, NULL);
	printf("pages %d per unit, %d operations per run, %d runs%s; us per operation, median [min..max]\n",
	       pages, ops, runs, spinning ? ", a second thread spinning" : "");
	for (int c = 0; c < nr_counts; c++) {
		int units = unit_counts[c];
		double pop[NR_WAYS][MAX_RUNS], dep[NR_WAYS][MAX_RUNS];
		char *base;

		if (units < 1 || units > MAX_UNITS) {
			fprintf(stderr, "depopulate_cost: units in 1..%d\n", MAX_UNITS);
			return 2;
		}
		base = os_reserve((size_t)units * UNIT, UNIT);
		if (!base) {
			perror("os_reserve");
			return 1;
		}
		for (int r = 0; r < runs; r++)
			for (int j = 0; j < NR_WAYS; j++) {
				int way = (j + r) % NR_WAYS;

				run_way(way, base, units, (size_t)pages * os_page_size(), ops, &pop[way][r], &dep[way][r]);
			}
		for (int w = 0; w < NR_WAYS; w++) {
			double p_min = pop[w][0], p_max = pop[w][0], d_min = dep[w][0], d_max = dep[w][0];

			for (int r = 1; r < runs; r++) {
				p_min = pop[w][r] < p_min ? pop[w][r] : p_min;
				p_max = pop[w][r] > p_max ? pop[w][r] : p_max;
				d_min = dep[w][r] < d_min ? dep[w][r] : d_min;
				d_max = dep[w][r] > d_max ? dep[w][r] : d_max;
			}
			printf("%4d units  %-18s  populate %7.1f [%.1f..%.1f]  give back %7.1f [%.1f..%.1f]\n", units,
			       way_name[w], median(pop[w], runs), p_min, p_max, median(dep[w], runs), d_min, d_max);
		}
		os_unreserve(base, (size_t)units * UNIT);
	}
	stop = 1;
	if (spinning)
		pthread_join(spinner, NULL);
	return 0;
}
