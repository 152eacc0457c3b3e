/*
 * this_cpu_cost.c - what one this_cpu_inc costs, against the alternatives
 * on the same copy.  Not a test (CTest does not run it): timing belongs to
 * measurements, the numbers in README.md come from it.
 *
 * Sides, each a loop of N increments of an 8-byte per-CPU counter:
 *   this_cpu_inc    the inline operation (a restartable sequence, or the
 *                   atomic path when the process is in atomic mode)
 *   atomic(ptr)     __atomic_fetch_add(this_cpu_ptr(h), 1, relaxed): the
 *                   copy chosen per operation, as this_cpu_inc was before
 *   atomic(fixed)   __atomic_fetch_add(p, 1, relaxed) on one copy p chosen
 *                   before the loop: the locked instruction alone
 *   __thread        a plain increment of a thread-local variable (a compiler
 *                   barrier keeps one load and store per iteration): the floor
 * With T threads each thread runs the loop at the same time; ns/op is the
 * run's wall time over N.  Runs interleave the sides (rotating the order);
 * each line gives the median over runs and the spread (min..max), then the
 * ratios this_cpu_inc / atomic per run, median and spread.
 *
 * Usage: this_cpu_cost [-n N] [-r RUNS] [-t THREADS]...  (defaults 10^7, 7,
 * 1 and 2).  this_cpu_cost --loop SIDE N [atomic] runs one side once, for
 * valgrind --tool=callgrind --toggle-collect=loop_inc (or loop_atomic_ptr,
 * ...).  valgrind has no rseq: unless "atomic" is given, the test hook
 * fakes the registration (cpu_id 0) so the sequences run as they would on
 * CPU 0; with "atomic" the process stays in atomic mode.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "os_cpu.h"
#include "percpu.h"
#include "cpu.h"

enum side { INC, ATOMIC_PTR, ATOMIC_FIXED, TLS, NR_SIDES };
static const char *side_name[NR_SIDES] = { "this_cpu_inc", "atomic(ptr)", "atomic(fixed)", "__thread" };

static uint64_t __percpu *g_counter;
static __thread uint64_t tls_counter;

__attribute__((noinline)) static void loop_inc(long n)
{
	for (long i = 0; i < n; i++)
		this_cpu_inc(g_counter);
}

__attribute__((noinline)) static void loop_atomic_ptr(long n)
{
	for (long i = 0; i < n; i++)
		__atomic_fetch_add(this_cpu_ptr(g_counter), 1, __ATOMIC_RELAXED);
}

__attribute__((noinline)) static void loop_atomic_fixed(long n)
{
	uint64_t *p = this_cpu_ptr(g_counter);

	for (long i = 0; i < n; i++)
		__atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

__attribute__((noinline)) static void loop_tls(long n)
{
	for (long i = 0; i < n; i++) {
		tls_counter++;
		__asm__ __volatile__("" : : : "memory");
	}
}

static void run_side(enum side s, long n)
{
	switch (s) {
	case INC: loop_inc(n); break;
	case ATOMIC_PTR: loop_atomic_ptr(n); break;
	case ATOMIC_FIXED: loop_atomic_fixed(n); break;
	default: loop_tls(n); break;
	}
}

struct job {
	enum side side;
	long n;
	pthread_barrier_t *start;
};

static void *job_main(void *arg)
{
	struct job *j = arg;

	pthread_barrier_wait(j->start);
	run_side(j->side, j->n);
	return NULL;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ns per operation of one run of side s with t threads. */
static double measure(enum side s, long n, int t)
{
	pthread_t thr[64];
	pthread_barrier_t start;
	struct job j = { s, n, &start };
	double t0;

	pthread_barrier_init(&start, NULL, (unsigned)t + 1);
	for (int i = 0; i < t; i++)
		pthread_create(&thr[i], NULL, job_main, &j);
	pthread_barrier_wait(&start);
	t0 = now_ns();
	for (int i = 0; i < t; i++)
		pthread_join(thr[i], NULL);
	pthread_barrier_destroy(&start);
	return (now_ns() - t0) / (double)n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void summary(double *v, int runs, double *med, double *lo, double *hi)
{
	qsort(v, (size_t)runs, sizeof(*v), cmp_double);
	*med = runs % 2 ? v[runs / 2] : (v[runs / 2 - 1] + v[runs / 2]) / 2;
	*lo = v[0];
	*hi = v[runs - 1];
}

int main(int argc, char **argv)
{
	long n = 10000000;
	int runs = 7, nthreads[8], nt = 0;

	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "--loop")) {
		struct os_rseq rs;
		int s;

		for (s = 0; s < NR_SIDES && strcmp(argv[2], side_name[s]); s++)
			;
		if (s == NR_SIDES)
			return 2;
		if (!pcpu_cpu_rseq_active() && argc == 4) {
			os_cpu_test_set(OS_CPU_FAKE_RSEQ);  /* valgrind: no rseq */
			if (os_rseq_probe(&rs) == 0)
				*(volatile uint32_t *)((char *)__builtin_thread_pointer() + rs.area +
						       OS_RSEQ_CPU_ID) = 0;
		}
		g_counter = pcpu_alloc(8, 8);
		printf("mode %#x\n", pcpu_this_cpu_mode());
		run_side((enum side)s, atol(argv[3]));
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			n = atol(argv[++i]);
		else if (!strcmp(argv[i], "-r") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-t") && i + 1 < argc && nt < 8)
			nthreads[nt++] = atoi(argv[++i]);
	}
	if (!nt) {
		nthreads[nt++] = 1;
		nthreads[nt++] = 2;
	}
	if (runs < 1 || runs > 99 || n < 1)
		return 2;
	g_counter = pcpu_alloc(8, 8);
	if (!g_counter)
		return 1;
	printf("mode %#x (1: restartable sequences, 0: atomic); %ld ops per thread per run, %d runs\n",
	       pcpu_this_cpu_mode(), n, runs);
	for (int k = 0; k < nt; k++) {
		int t = nthreads[k] < 1 ? 1 : nthreads[k] > 64 ? 64 : nthreads[k];
		double v[NR_SIDES][99], r_ptr[99], r_fixed[99], med, lo, hi;

		for (int s = 0; s < NR_SIDES; s++)
			measure((enum side)s, n / 10, t);        /* warm up */
		for (int r = 0; r < runs; r++) {
			for (int i = 0; i < NR_SIDES; i++) {
				int s = (i + r) % NR_SIDES;

				v[s][r] = measure((enum side)s, n, t);
			}
			r_ptr[r] = v[INC][r] / v[ATOMIC_PTR][r];
			r_fixed[r] = v[INC][r] / v[ATOMIC_FIXED][r];
		}
		printf("%d thread%s:\n", t, t > 1 ? "s" : "");
		for (int s = 0; s < NR_SIDES; s++) {
			summary(v[s], runs, &med, &lo, &hi);
			printf("  %-14s %6.2f ns/op  (%.2f..%.2f)\n", side_name[s], med, lo, hi);
		}
		summary(r_ptr, runs, &med, &lo, &hi);
		printf("  this_cpu_inc / atomic(ptr)   %.2f  (%.2f..%.2f)\n", med, lo, hi);
		summary(r_fixed, runs, &med, &lo, &hi);
		printf("  this_cpu_inc / atomic(fixed) %.2f  (%.2f..%.2f)\n", med, lo, hi);
	}
	return 0;
}
