/*
 * counters.c - N threads count events three ways and compare:
 *
 *   per-CPU   PCPU_DEFINE(unsigned long, hits); this_cpu_inc(PCPU_VAR(hits))
 *             adds to the copy of the CPU the thread runs on; readers sum
 *             the copies with pcpu_sum().  8 bytes per CPU.
 *   atomic    one shared counter, __atomic_fetch_add from every thread: its
 *             cache line bounces between CPUs.  8 bytes.
 *   padded    calloc(nr_cpus, 64): one cache line per CPU, indexed by
 *             sched_getcpu(), the usual hand-written alternative.  64 bytes
 *             per CPU, per counter.
 *
 * Every thread adds `iters` times; each variant prints its throughput and
 * checks that its sum is exactly threads x iters (exit status 1 if not).
 *
 *     usage: counters [threads] [iterations per thread]
 *     e.g.   ./build/examples/counters 4 5000000
 */
#define _GNU_SOURCE   /* sched_getcpu */
#include <percpu.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

PCPU_DEFINE(unsigned long, hits);       /* starts at 0 on every CPU */

static unsigned long shared_counter __attribute__((aligned(64)));

struct padded {
	unsigned long v;
	char pad[64 - sizeof(unsigned long)];
};
static struct padded *padded;           /* [pcpu_nr_cpus()] */

enum variant { PERCPU, ATOMIC, PADDED, NR_VARIANTS };
static const char *const names[NR_VARIANTS] = { "per-CPU", "atomic", "padded" };

static long iters;
static enum variant current;
static pthread_barrier_t start_line;

static void *worker(void *arg)
{
	unsigned n = pcpu_nr_cpus();

	(void)arg;
	pthread_barrier_wait(&start_line);
	switch (current) {
	case PERCPU:
		for (long i = 0; i < iters; i++)
			this_cpu_inc(PCPU_VAR(hits));
		break;
	case ATOMIC:
		for (long i = 0; i < iters; i++)
			__atomic_fetch_add(&shared_counter, 1, __ATOMIC_RELAXED);
		break;
	case PADDED:
		for (long i = 0; i < iters; i++)
			__atomic_fetch_add(&padded[(unsigned)sched_getcpu() % n].v, 1, __ATOMIC_RELAXED);
		break;
	default:
		break;
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static unsigned long sum(enum variant v)
{
	unsigned long total = 0;

	switch (v) {
	case PERCPU:
		return pcpu_sum(PCPU_VAR(hits));
	case ATOMIC:
		return __atomic_load_n(&shared_counter, __ATOMIC_RELAXED);
	case PADDED:
		for (unsigned cpu = 0; cpu < pcpu_nr_cpus(); cpu++)
			total += __atomic_load_n(&padded[cpu].v, __ATOMIC_RELAXED);
		return total;
	default:
		return 0;
	}
}

int main(int argc, char **argv)
{
	long nthreads = argc > 1 ? atol(argv[1]) : sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = pcpu_nr_cpus();
	pthread_t *t;
	int bad = 0;

	iters = argc > 2 ? atol(argv[2]) : 5000000;
	if (nthreads < 1 || nthreads > 1024 || iters < 1) {
		fprintf(stderr, "usage: %s [threads 1-1024] [iterations per thread]\n", argv[0]);
		return 2;
	}
	t = calloc((size_t)nthreads, sizeof(*t));
	padded = calloc(n, sizeof(*padded));
	if (!t || !padded) {
		perror("calloc");
		return 1;
	}
	printf("%ld threads x %ld increments, %u CPU slots\n\n", nthreads, iters, n);
	printf("%-8s %10s %12s %8s %20s %12s\n", "variant", "seconds", "Mops/s", "ns/op", "sum",
	       "bytes");
	for (current = PERCPU; current < NR_VARIANTS; current++) {
		unsigned long want = (unsigned long)nthreads * (unsigned long)iters, got;
		size_t bytes = current == PERCPU ? n * sizeof(unsigned long) :
			       current == ATOMIC ? sizeof(unsigned long) : n * sizeof(struct padded);
		double t0, secs;

		pthread_barrier_init(&start_line, NULL, (unsigned)nthreads + 1);
		for (long i = 0; i < nthreads; i++)
			if (pthread_create(&t[i], NULL, worker, NULL)) {
				perror("pthread_create");
				return 1;
			}
		t0 = now();
		pthread_barrier_wait(&start_line);
		for (long i = 0; i < nthreads; i++)
			pthread_join(t[i], NULL);
		secs = now() - t0;
		pthread_barrier_destroy(&start_line);
		got = sum(current);
		printf("%-8s %10.3f %12.1f %8.2f %20lu %12zu%s\n", names[current], secs,
		       want / secs / 1e6, secs * 1e9 * (double)nthreads / (double)want, got, bytes,
		       got == want ? "" : "  WRONG SUM");
		bad |= got != want;
	}
	free(t);
	free(padded);
	return bad;
}
