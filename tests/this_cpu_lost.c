/*
 * this_cpu_lost.c - how many updates a plain `(*this_cpu_ptr(h))++` loses
 * when threads share CPUs, against this_cpu_inc on the same kind of
 * counter.  Not a test (CTest does not run it): the figure in README.md
 * and percpu(3) comes from it.
 *
 * T threads (default 6) on the first C allowed CPUs (default 2) each add 1
 * N times (default 10^7) to a per-CPU long, three ways:
 *   ptr ++     p = this_cpu_ptr(h); (*p)++: on x86_64 at -O2 the ++ is one
 *              add-to-memory instruction, which preemption cannot split, so
 *              only a migration between choosing the copy and the add loses
 *              an update;
 *   ptr ld/st  the same with the load and the store apart (a compiler
 *              barrier between them): what ++ is on load/store machines
 *              (aarch64), at -O0, or for any update longer than one
 *              instruction; a thread preempted between them overwrites the
 *              updates other threads made on that CPU meanwhile;
 *   this_cpu_inc  one indivisible step.
 * Each line is one run; the sides run one after the other in each run.
 * Lost = T * N - pcpu_sum.
 *
 * Usage: this_cpu_lost [-t THREADS] [-c CPUS] [-n N] [-r RUNS]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "percpu.h"

static long n_ops = 10000000;
static long __percpu *counter;
enum side { PTR_INC, PTR_LDST, THIS_CPU_INC, NR_SIDES };
static enum side side;
static pthread_barrier_t start;

static void *worker(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&start);
	for (long i = 0; i < n_ops; i++) {
		long *p, v;

		switch (side) {
		case PTR_INC:
			p = this_cpu_ptr(counter);
			__asm__ __volatile__("" ::: "memory");
			(*p)++;
			break;
		case PTR_LDST:
			p = this_cpu_ptr(counter);
			v = *p;
			__asm__ __volatile__("" ::: "memory");
			*p = v + 1;
			break;
		default:
			this_cpu_inc(counter);
			break;
		}
	}
	return NULL;
}

/* Updates lost by one run of side s with `threads` threads. */
static long run(int threads, enum side s)
{
	pthread_t tid[256];

	side = s;
	counter = pcpu_alloc(sizeof(long), sizeof(long));
	if (!counter)
		exit(1);
	pthread_barrier_init(&start, NULL, (unsigned)threads);
	for (int i = 0; i < threads; i++)
		pthread_create(&tid[i], NULL, worker, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&start);
	long lost = (long)threads * n_ops - pcpu_sum(counter);

	pcpu_free(counter);
	return lost;
}

int main(int argc, char **argv)
{
	int threads = 6, cpus = 2, runs = 3, opt;
	cpu_set_t set, mine;

	while ((opt = getopt(argc, argv, "t:c:n:r:")) != -1) {
		switch (opt) {
		case 't': threads = atoi(optarg); break;
		case 'c': cpus = atoi(optarg); break;
		case 'n': n_ops = atol(optarg); break;
		case 'r': runs = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-t threads] [-c cpus] [-n ops] [-r runs]\n", argv[0]);
			return 2;
		}
	}
	if (threads < 1 || threads > 256 || cpus < 1)
		return 2;
	/* Confine the process to its first `cpus` allowed CPUs. */
	CPU_ZERO(&set);
	sched_getaffinity(0, sizeof(mine), &mine);
	for (int c = 0, k = 0; c < CPU_SETSIZE && k < cpus; c++)
		if (CPU_ISSET(c, &mine))
			CPU_SET(c, &set), k++;
	sched_setaffinity(0, sizeof(set), &set);
	printf("%d threads on %d CPUs, %ld increments each (this_cpu mode %#x)\n", threads,
	       CPU_COUNT(&set), n_ops, pcpu_this_cpu_mode());
	for (int r = 0; r < runs; r++) {
		double total = (double)threads * (double)n_ops;
		long inc = run(threads, PTR_INC), ldst = run(threads, PTR_LDST), op = run(threads, THIS_CPU_INC);

		printf("run %d lost: ptr ++ %ld (%.4f%%), ptr ld/st %ld (%.4f%%), this_cpu_inc %ld\n", r,
		       inc, 100.0 * (double)inc / total, ldst, 100.0 * (double)ldst / total, op);
	}
	return 0;
}
