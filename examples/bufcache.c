/*
 * bufcache.c - a per-CPU cache of I/O buffers in front of malloc.
 *
 * Each CPU has a small stack of free buffers (one struct per CPU from
 * pcpu_alloc).  buf_get() pops from the calling CPU's stack and buf_put()
 * pushes onto it; only when the stack is empty or full does the code fall
 * back to a shared pool (here: a mutex-protected list, standing in for an
 * expensive global allocator).
 *
 * Two threads can run on the same CPU (preemption) or move between CPUs
 * mid-operation, so a CPU's stack has a tiny lock.  It is never waited for:
 * a thread that finds it taken uses the shared pool instead.  Threads that
 * share a CPU take turns on that CPU's lock, so it rarely bounces between
 * caches.
 *
 * The program runs the same workload against the shared pool alone and
 * with the per-CPU caches in front, prints throughput, the caches' hit rate
 * per CPU, and checks that no buffer was lost.
 *
 *     usage: bufcache [threads] [rounds per thread]
 *     e.g.   ./build/examples/bufcache 4 1000000
 */
#include <percpu.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE 2048
#define CACHE_SLOTS 32
#define BURST 8                 /* buffers a worker holds at once, at most */

struct cpu_cache {
	int busy;               /* 0 free, 1 taken (compare-and-swap, never waited on) */
	int count;
	void *bufs[CACHE_SLOTS];
	unsigned long hits, misses, puts, spills, contended;
};

static struct cpu_cache __percpu *caches;
static int use_cache;

/* The shared pool: a list threaded through the free buffers. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static void *pool;
static long outstanding;        /* buffers malloc'd and not yet freed */

static void *pool_get(void)
{
	void *b;

	pthread_mutex_lock(&pool_lock);
	b = pool;
	if (b)
		pool = *(void **)b;
	pthread_mutex_unlock(&pool_lock);
	if (!b && (b = malloc(BUF_SIZE)))
		__atomic_fetch_add(&outstanding, 1, __ATOMIC_RELAXED);
	return b;
}

static void pool_put(void *b)
{
	pthread_mutex_lock(&pool_lock);
	*(void **)b = pool;
	pool = b;
	pthread_mutex_unlock(&pool_lock);
}

/* The calling CPU's cache, locked; NULL if another thread holds it. */
static struct cpu_cache *cache_lock(void)
{
	struct cpu_cache *c = this_cpu_ptr(caches);
	int expected = 0;

	if (__atomic_compare_exchange_n(&c->busy, &expected, 1, 0, __ATOMIC_ACQUIRE,
					__ATOMIC_RELAXED))
		return c;
	this_cpu_inc(&caches->contended);   /* the field's handle: same offset, any CPU */
	return NULL;
}

static void cache_unlock(struct cpu_cache *c)
{
	__atomic_store_n(&c->busy, 0, __ATOMIC_RELEASE);
}

static void *buf_get(void)
{
	struct cpu_cache *c = use_cache ? cache_lock() : NULL;

	if (c) {
		void *b = c->count ? c->bufs[--c->count] : NULL;

		if (b)
			c->hits++;
		else
			c->misses++;
		cache_unlock(c);
		if (b)
			return b;
	}
	return pool_get();
}

static void buf_put(void *b)
{
	struct cpu_cache *c = use_cache ? cache_lock() : NULL;

	if (c) {
		bool kept = c->count < CACHE_SLOTS;

		if (kept) {
			c->bufs[c->count++] = b;
			c->puts++;
		} else {
			c->spills++;
		}
		cache_unlock(c);
		if (kept)
			return;
	}
	pool_put(b);
}

static long rounds;

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	void *held[BURST];

	for (long r = 0; r < rounds; r++) {
		int n = 1 + rand_r(&seed) % BURST;

		for (int i = 0; i < n; i++) {
			held[i] = buf_get();
			if (!held[i])
				abort();
			memset(held[i], i, 64);          /* use the buffer a little */
		}
		for (int i = n; i-- > 0;)
			buf_put(held[i]);
	}
	return NULL;
}

static double run(long nthreads)
{
	pthread_t t[1024];
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < nthreads; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1))) {
			perror("pthread_create");
			exit(1);
		}
	for (long i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
}

int main(int argc, char **argv)
{
	long nthreads = argc > 1 ? atol(argv[1]) : 4;
	unsigned long hits = 0, misses = 0;
	double t_pool, t_cache;
	unsigned cpu;
	long freed = 0;

	rounds = argc > 2 ? atol(argv[2]) : 1000000;
	if (nthreads < 1 || nthreads > 1024 || rounds < 1) {
		fprintf(stderr, "usage: %s [threads 1-1024] [rounds per thread]\n", argv[0]);
		return 2;
	}
	caches = pcpu_alloc(sizeof(struct cpu_cache), 64);   /* zeroed on every CPU */
	if (!caches) {
		perror("pcpu_alloc");
		return 1;
	}

	t_pool = run(nthreads);
	use_cache = 1;
	t_cache = run(nthreads);

	printf("%ld threads x %ld rounds of 1-%d buffers, %u CPU slots\n", nthreads, rounds, BURST,
	       pcpu_nr_cpus());
	printf("shared pool only:      %8.3f s\n", t_pool);
	printf("per-CPU caches + pool: %8.3f s (%.1fx)\n\n", t_cache, t_pool / t_cache);
	printf("%-5s %12s %10s %10s %10s %10s %7s\n", "cpu", "hits", "misses", "spills", "contended",
	       "cached", "hit %");
	pcpu_for_each_cpu(cpu) {
		struct cpu_cache *c = per_cpu_ptr(caches, cpu);

		hits += c->hits;
		misses += c->misses;
		if (c->hits + c->misses)
			printf("%-5u %12lu %10lu %10lu %10lu %10d %6.1f%%\n", cpu, c->hits, c->misses,
			       c->spills, c->contended, c->count,
			       100.0 * (double)c->hits / (double)(c->hits + c->misses));
		/* Drain: everything goes back to malloc. */
		while (c->count) {
			free(c->bufs[--c->count]);
			freed++;
		}
	}
	while (pool) {
		void *b = pool;

		pool = *(void **)b;
		free(b);
		freed++;
	}
	printf("total %12lu %10lu  hit rate %.1f%%\n", hits, misses,
	       hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 0.0);
	pcpu_free(caches);
	if (freed != outstanding) {
		printf("LOST BUFFERS: %ld allocated, %ld freed\n", outstanding, freed);
		return 1;
	}
	printf("all %ld buffers accounted for\n", freed);
	return 0;
}
