/*
 * test_cache.c - the per-CPU caches of free objects in front of the chunks.
 *
 * What must hold with the caches as without them: memory comes back zeroed
 * in every unit (a cached object was written by its last user); a double
 * free of an object that sits in a cache, an alloc_size of it, an interior
 * or foreign pointer all abort before anything changes; PCPU_ATOMIC is
 * served from a cache; the caches stay within their limit; pcpu_balance()
 * empties them (so freed memory goes back to the OS); the balancer empties
 * caches left idle; a forked child's caches are consistent; the caches can
 * be turned off; a CPU whose cache is held (its holder preempted) uses its
 * spare cache.  pcpu_verify, which checks every cached object against its
 * chunk, runs after every step of a random sequence.  Random parts print
 * their seed; pass it back as the first argument.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "kit.h"
#include "pool_kit.h"
#include "percpu.h"
#include "pool_init.h"
#include "cache.h"
#include "cache_lock.h"
#include "os_cpu.h"

#define MAX_OBJS 4096

static struct pcpu_config config(unsigned flags)
{
	return (struct pcpu_config){ .nr_cpus = 2, .flags = PCPU_CFG_NO_BALANCER | flags };
}

/* A freed object comes back (from the cache) zeroed in every unit. */
static int child_zeroed(long arg)
{
	struct pcpu_config cfg = config(0);

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "init");
	for (size_t size = 4; size <= 256; size += 4) {
		void *h = pcpu_alloc(size, 0);
		struct kit_obj o = { h, size, (uint32_t)size };

		REQUIRE(h, "alloc %zu", size);
		kit_fill(&o);
		pcpu_free(h);
		void *g = pcpu_alloc(size, 0);

		CHECK(g == h, "size %zu: the cache hands back the object just freed", size);
		CHECK(g && kit_zeroed(g, size, 4), "size %zu: zeroed in every unit", size);
		pcpu_free(g);
	}
	struct pcpu_stats st = kit_stats();

	CHECK(st.nr_cache_hits >= 64 && st.nr_cached > 0, "served from the caches: %llu hits, %llu cached",
	      (unsigned long long)st.nr_cache_hits, (unsigned long long)st.nr_cached);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/*
 * Objects allocated in a row and freed in a row, up and down: refills take
 * a chunk's tail in one batch and drains free back-to-back objects as one
 * span.  Every object is distinct, aligned to its class, zeroed in every
 * unit; pcpu_verify holds after each phase; nothing is left live.
 */
static int child_in_a_row(long arg)
{
	static const size_t sizes[] = { 4, 12, 16, 64, 100, 256 };
	static void *h[MAX_OBJS];
	struct pcpu_config cfg = config(0);

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "init");
	for (int round = 0; round < 2 * (int)(sizeof(sizes) / sizeof(sizes[0])); round++) {
		size_t size = sizes[round / 2];
		bool down = round & 1;

		for (int i = 0; i < MAX_OBJS; i++) {
			REQUIRE((h[i] = pcpu_alloc(size, 0)) != NULL, "alloc %zu #%d", size, i);
			CHECK(kit_zeroed(h[i], size, 4), "size %zu #%d: zeroed in every unit", size, i);
			CHECK(((uintptr_t)h[i] & ((size & -size) < 64 ? (size & -size) - 1 : 63)) == 0,
			      "size %zu #%d: aligned to its class", size, i);
			memset(pcpu_ptr(h[i], 1), 0xa5, size);
		}
		CHECK(pcpu_verify() == 0, "size %zu: verify after the allocations", size);
		for (int i = 0; i < MAX_OBJS; i++)
			pcpu_free(h[down ? MAX_OBJS - 1 - i : i]);
		CHECK(pcpu_verify() == 0, "size %zu %s: verify after the frees", size, down ? "down" : "up");
	}
	pcpu_balance();
	struct pcpu_stats st = kit_stats();

	CHECK(st.nr_alloc == st.nr_dealloc, "nothing live: %llu allocations, %llu frees",
	      (unsigned long long)st.nr_alloc, (unsigned long long)st.nr_dealloc);
	CHECK(pcpu_verify() == 0, "verify after balance");
	return 0;
}

/* Misuse of a cached object: each aborts with a message, nothing changed. */
static void *g_cached;

static int child_misuse(long kind)
{
	struct pcpu_config cfg = config(0);
	void *h;

	REQUIRE(pcpu_init(&cfg) == 0, "init");
	h = pcpu_alloc(16, 0);
	REQUIRE(h, "alloc");
	pcpu_free(h);                  /* now in the calling CPU's cache */
	g_cached = h;
	REQUIRE(kit_stats().nr_cached >= 1, "the object is cached");
	switch (kind) {
	case 0: pcpu_free(h); break;                    /* double free of a cached object */
	case 1: (void)pcpu_alloc_size(h); break;
	case 2: pcpu_free((char *)h + 4); break;        /* interior of a cached object */
	}
	return 3;                      /* not reached: the call must abort */
}

/* PCPU_ATOMIC with nothing populated left is served from the cache. */
static int child_atomic(long arg)
{
	struct pcpu_config cfg = config(0);
	static void *held[1 << 16];
	int n = 0;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "init");
	/* Use up every populated page with atomic allocations of a size
	 * the caches do not hold. */
	while (n < (int)(sizeof(held) / sizeof(held[0])) &&
	       (held[n] = pcpu_alloc_flags(512, 0, PCPU_ATOMIC | PCPU_NOWARN)))
		n++;
	CHECK(n > 0 && !pcpu_alloc_flags(512, 0, PCPU_ATOMIC | PCPU_NOWARN), "the pool is exhausted");
	void *h = pcpu_alloc(16, 0);   /* blocking: may populate */

	REQUIRE(h, "blocking alloc");
	pcpu_free(h);
	uint64_t hits = kit_stats().nr_cache_hits;
	void *a = pcpu_alloc_flags(16, 0, PCPU_ATOMIC);

	CHECK(a != NULL, "an atomic allocation from the cache");
	CHECK(kit_stats().nr_cache_hits == hits + 1, "counted as a cache hit");
	CHECK(a && kit_zeroed(a, 16, 4), "zeroed");
	pcpu_free(a);
	while (n)
		pcpu_free(held[--n]);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* Random allocations and frees of cacheable and other sizes; verify after
 * every step; the caches stay within their limit; pcpu_balance empties them
 * and gives the pages back. */
static int child_random(long arg)
{
	struct pcpu_config cfg = config(0);
	static struct kit_obj objs[MAX_OBJS];
	int n = 0;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "init");
	for (int step = 0; step < 20000; step++) {
		if (n && (n == MAX_OBJS || rng_below(100) < 48)) {
			int k = (int)rng_below((uint64_t)n);

			CHECK(kit_drop(objs, &n, k), "step %d: object %d intact until freed", step, k);
		} else {
			size_t size = rng_below(8) ? 4 * (1 + rng_below(64)) : 1 + rng_below(2000);
			size_t align = rng_below(4) ? 0 : (size_t)4 << rng_below(4);
			unsigned flags = rng_below(8) ? 0 : PCPU_ATOMIC | PCPU_NOWARN;
			void *h = pcpu_alloc_flags(size, align, flags);

			if (!h) {
				CHECK(flags & PCPU_ATOMIC, "step %d: blocking alloc %zu failed", step, size);
				continue;
			}
			CHECK(kit_zeroed(h, size, align ? align : 4), "step %d: alloc %zu zeroed", step, size);
			kit_keep(objs, &n, MAX_OBJS, h, size, (uint32_t)step);
		}
		if (step % 7 == 0 && pcpu_verify() != 0) {
			CHECK(0, "step %d: pcpu_verify", step);
			break;
		}
		struct pcpu_stats st = kit_stats();

		if (st.cached_bytes > st.cache_limit_bytes) {
			CHECK(0, "step %d: %llu bytes cached, limit %llu", step,
			      (unsigned long long)st.cached_bytes, (unsigned long long)st.cache_limit_bytes);
			break;
		}
	}
	CHECK(kit_all_intact(objs, n), "all intact");
	while (n)
		kit_drop(objs, &n, n - 1);
	struct pcpu_stats st = kit_stats();

	CHECK(st.nr_cur_alloc == 0 && st.nr_cache_hits > 0, "all freed, caches used");
	CHECK(pcpu_balance() == 0, "balance");
	st = kit_stats();
	CHECK(st.nr_cached == 0 && st.cached_bytes == 0, "pcpu_balance empties the caches (%llu left)",
	      (unsigned long long)st.nr_cached);
	long dyn_pages = kit_dynamic_populated(NULL);

	CHECK(dyn_pages <= pcpu_pool.unit_pages,
	      "populated pages outside the first chunk after free-all and balance: %ld (one chunk: %d)",
	      dyn_pages, pcpu_pool.unit_pages);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* Threads on every CPU free each other's objects; afterwards, with no
 * pcpu_balance() call, the background balancer empties the idle caches. */
#define NR_THREADS 6
static void *shared[NR_THREADS][256];

static void *worker(void *arg)
{
	long t = (long)arg;
	uint64_t r = 0x9e3779b97f4a7c15ULL * (uint64_t)(t + 1);

	for (int round = 0; round < 200; round++) {
		for (int i = 0; i < 256; i++) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			/* A slot the neighbour has not emptied yet: free its old
			 * object here (this thread allocated it). */
			pcpu_free(__atomic_exchange_n(&shared[t][i], pcpu_alloc(4 * (1 + r % 64), 0),
						      __ATOMIC_ACQ_REL));
		}
		/* Free the neighbour's last round when there is one. */
		for (int i = 0; i < 256; i++) {
			void **slot = &shared[(t + 1) % NR_THREADS][i];
			void *h = __atomic_exchange_n(slot, NULL, __ATOMIC_ACQ_REL);

			pcpu_free(h);
		}
		sched_yield();
	}
	return NULL;
}

static int child_threads(long arg)
{
	pthread_t tids[NR_THREADS];
	int tries = 0;

	(void)arg;
	REQUIRE(pcpu_init(&(struct pcpu_config){ .nr_cpus = 0 }) == 0, "init");
	kit_start_threads(tids, NR_THREADS, worker, NULL, 0);
	kit_join_threads(tids, NR_THREADS, NULL);
	for (int t = 0; t < NR_THREADS; t++)
		for (int i = 0; i < 256; i++)
			pcpu_free(shared[t][i]);
	CHECK(pcpu_verify() == 0, "verify after the threads");
	/* Idle caches are emptied by the balancer thread (deadline 20 s; no
	 * timing is asserted). */
	while (kit_stats().nr_cached && tries++ < 2000)
		usleep(10000);
	CHECK(kit_stats().nr_cached == 0, "the balancer emptied the idle caches (%llu left)",
	      (unsigned long long)kit_stats().nr_cached);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* fork with objects cached: both sides stay consistent and usable. */
static int child_fork(long arg)
{
	struct pcpu_config cfg = config(0);
	void *h[64];
	bool killed = false;
	int status;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "init");
	for (int i = 0; i < 64; i++)
		h[i] = pcpu_alloc(8 * (1 + i % 4), 0);
	for (int i = 0; i < 32; i++)
		pcpu_free(h[i]);
	pid_t pid = fork();

	if (pid == 0) {
		bool ok = pcpu_verify() == 0 && kit_stats().nr_cached >= 32;

		for (int i = 32; i < 64; i++)
			pcpu_free(h[i]);
		for (int i = 0; i < 64 && ok; i++)
			ok = (h[i] = pcpu_alloc(8 * (1 + i % 4), 0)) && kit_zeroed(h[i], 8, 8);
		ok = ok && pcpu_verify() == 0;
		_exit(ok ? 0 : 1);
	}
	REQUIRE(pid > 0 && child_wait(pid, &status, CHILD_WAIT_STEP, &killed) == pid, "fork");
	CHECK(!killed && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child with cached objects%s",
	      killed ? ": hung, killed" : "");
	for (int i = 32; i < 64; i++)
		pcpu_free(h[i]);
	CHECK(pcpu_verify() == 0, "parent after fork");
	return 0;
}

/* Hold (or drop) the lock of every CPU's cache (which 0) or of every
 * CPU's spare number which, as threads preempted inside them would. */
static void hold_all(unsigned int which, bool hold)
{
	for (unsigned int cpu = 0; cpu < pcpu_nr_cpus(); cpu++)
		REQUIRE(cache_test_hold(cpu, which, hold) == 0, "cpu %u: hold %u %d", cpu, which, hold);
}

/* Allocate n objects of 16 B into h (via: where they should come from),
 * then free them all, each checked to read zero if check_zero. */
static void alloc_then_free(void **h, int n, const char *via, bool check_zero)
{
	for (int i = 0; i < n; i++)
		h[i] = pcpu_alloc(16, 0);
	for (int i = 0; i < n; i++) {
		REQUIRE(h[i], "alloc %d %s", i, via);
		if (check_zero)
			CHECK(kit_zeroed(h[i], 16, 4), "zeroed");
		pcpu_free(h[i]);
	}
}

/*
 * A CPU's cache held (its holder preempted): allocations and frees go
 * through the CPU's first spare, which pcpu_verify checks and pcpu_balance
 * and fork handle like any cache; with it held too, through the second;
 * with every spare held too, through the pool.  kind 1: a double free of
 * an object in a spare aborts.
 */
static int child_spare(long kind)
{
	struct pcpu_config cfg = { .nr_cpus = 0, .flags = PCPU_CFG_NO_BALANCER };
	enum { N = 100 };
	void *h[N];
	uint64_t hits, cached, refills;
	bool killed = false;
	int status;

	REQUIRE(pcpu_init(&cfg) == 0, "init");
	REQUIRE(pcpu_balance() == 0 && kit_stats().nr_cached == 0, "empty caches");
	hold_all(0, true);
	alloc_then_free(h, N, "through the first spare", false);
	CHECK(cache_test_count(false) == 0 && cache_test_count(true) >= N,
	      "with the CPUs' caches held, freed objects went to the spares: %zu in the caches, "
	      "%zu in the spares", cache_test_count(false), cache_test_count(true));
	if (kind == 1)
		pcpu_free(h[N - 1]);    /* double free of an object in a spare: aborts */
	hold_all(0, false);
	struct pcpu_stats st = kit_stats();

	/* Every allocation was a hit in a spare or refilled it (through the
	 * pool, a batch at a time). */
	CHECK(st.nr_cache_hits + st.nr_cache_refills == N && st.nr_cache_hits >= N / 2 &&
	      st.nr_cached >= N, "spares counted: %llu hits, %llu refills, %llu cached",
	      (unsigned long long)st.nr_cache_hits, (unsigned long long)st.nr_cache_refills,
	      (unsigned long long)st.nr_cached);
	CHECK(st.cached_bytes <= st.cache_limit_bytes, "within the limit");
	CHECK(pcpu_verify() == 0, "verify with objects in the spares");

	/* The cache and the first spare held: the second spare serves. */
	hits = st.nr_cache_hits;
	refills = st.nr_cache_refills;
	hold_all(0, true);
	hold_all(1, true);
	alloc_then_free(h, N, "through the second spare", false);
	hold_all(1, false);
	hold_all(0, false);
	st = kit_stats();
	CHECK(st.nr_cache_hits - hits + (st.nr_cache_refills - refills) == N && st.nr_alloc == 2 * N &&
	      st.nr_cur_alloc == 0 && cache_test_count(true) >= 2 * N,
	      "cache and first spare held: the second spare served (%llu hits, %llu refills, "
	      "%zu in the spares)", (unsigned long long)(st.nr_cache_hits - hits),
	      (unsigned long long)(st.nr_cache_refills - refills), cache_test_count(true));
	CHECK(pcpu_verify() == 0, "verify with objects in both spares");

	/* All held: the pool serves, the caches hold what they held. */
	hits = st.nr_cache_hits;
	cached = st.nr_cached;
	for (unsigned int w = 0; w <= CACHE_SPARES; w++)
		hold_all(w, true);
	alloc_then_free(h, N, "through the pool", true);
	for (unsigned int w = 0; w <= CACHE_SPARES; w++)
		hold_all(w, false);
	st = kit_stats();
	CHECK(st.nr_cache_hits == hits && st.nr_cached == cached && st.nr_alloc == 3 * N &&
	      st.nr_cur_alloc == 0, "all held: through the pool (%llu hits, %llu cached)",
	      (unsigned long long)st.nr_cache_hits, (unsigned long long)st.nr_cached);
	CHECK(pcpu_verify() == 0, "verify");

	/* fork with objects in the spares: the child's are consistent. */
	pid_t pid = fork();

	if (pid == 0) {
		bool ok = pcpu_verify() == 0 && cache_test_count(true) >= N;

		for (int i = 0; i < N && ok; i++)
			ok = (h[i] = pcpu_alloc(16, 0)) && kit_zeroed(h[i], 16, 4);
		for (int i = 0; i < N && ok; i++)
			pcpu_free(h[i]);
		_exit(ok && pcpu_verify() == 0 ? 0 : 1);
	}
	REQUIRE(pid > 0 && child_wait(pid, &status, CHILD_WAIT_STEP, &killed) == pid, "fork");
	CHECK(!killed && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "child with objects in the spares%s", killed ? ": hung, killed" : "");

	/* pcpu_balance empties the spares too. */
	CHECK(pcpu_balance() == 0, "balance");
	st = kit_stats();
	CHECK(st.nr_cached == 0 && cache_test_count(true) == 0, "pcpu_balance emptied the spares "
	      "(%llu left)", (unsigned long long)st.nr_cached);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* Resident pages strictly inside every cache's slots (mincore). */
static size_t resident_slot_pages(void)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	size_t n = 0;

	for (unsigned int cpu = 0; cpu < pcpu_nr_cpus(); cpu++) {
		for (unsigned int w = 0; w <= CACHE_SPARES; w++) {
			void *at;
			size_t len = cache_test_slots(cpu, w, &at);
			uintptr_t a = ((uintptr_t)at + page - 1) & ~(page - 1);
			uintptr_t e = ((uintptr_t)at + len) & ~(page - 1);
			unsigned char vec[256];

			REQUIRE(len, "cpu %u cache %u has slots", cpu, w);
			for (; a < e; a += page) {
				REQUIRE(mincore((void *)a, page, vec) == 0, "mincore");
				n += vec[0] & 1;
			}
		}
	}
	return n;
}

/*
 * Draining an emptied cache gives its slot pages back: after objects of
 * every class went through the caches (and the spares, their CPUs' caches
 * held), pcpu_balance() leaves none of their pages resident, and the
 * caches work on.
 */
static int child_slot_pages(long arg)
{
	static void *h[NR_CLASSES * 64];
	struct pcpu_config cfg = { .nr_cpus = 0, .flags = PCPU_CFG_NO_BALANCER };
	size_t before, after;
	int n = 0;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "init");
	for (unsigned int w = 0; w <= CACHE_SPARES; w++) {
		for (unsigned int held = 0; held < w; held++)
			hold_all(held, true);
		for (size_t size = 4; size <= CACHE_MAX_SIZE; size += 4)
			for (int i = 0; i < 64; i++)
				REQUIRE((h[n++] = pcpu_alloc(size, 0)), "alloc %zu", size);
		while (n)
			pcpu_free(h[--n]);
		for (unsigned int held = 0; held < w; held++)
			hold_all(held, false);
	}
	before = resident_slot_pages();
	CHECK(before > 0, "the slots were written: %zu pages resident", before);
	REQUIRE(pcpu_balance() == 0, "balance");
	after = resident_slot_pages();
	CHECK(after == 0, "after pcpu_balance, %zu of %zu slot pages still resident", after, before);
	for (int i = 0; i < 1000; i++)
		pcpu_free(pcpu_alloc(16, 0));
	CHECK(pcpu_verify() == 0 && kit_stats().nr_cur_alloc == 0, "the caches work on");
	return 0;
}

/* PCPU_CFG_NO_CACHE, and PCPU_CACHE_SIZE=0, turn the caches off. */
static int child_off(long how)
{
	struct pcpu_config cfg = config(how == 0 ? PCPU_CFG_NO_CACHE : 0);

	if (how == 1)
		setenv("PCPU_CACHE_SIZE", "0", 1);
	else if (how == 2)
		setenv("PCPU_CACHE_SIZE", "4k", 1);
	REQUIRE(pcpu_init(&cfg) == 0, "init");
	for (int i = 0; i < 1000; i++)
		pcpu_free(pcpu_alloc(16, 0));
	struct pcpu_stats st = kit_stats();

	if (how == 2) {
		/* Two CPUs, each with a cache and its spares. */
		CHECK(st.cache_limit_bytes == (1 + CACHE_SPARES) * 2 * 4096 && st.nr_cache_hits > 900,
		      "PCPU_CACHE_SIZE=4k: limit %llu", (unsigned long long)st.cache_limit_bytes);
	} else {
		CHECK(st.cache_limit_bytes == 0 && st.nr_cache_hits == 0 && st.nr_cached == 0,
		      "caches off: limit %llu, hits %llu", (unsigned long long)st.cache_limit_bytes,
		      (unsigned long long)st.nr_cache_hits);
	}
	CHECK(st.nr_alloc == 1000 && st.nr_dealloc == 1000, "counted");
	return 0;
}

/* The lock mode: restartable sequences wherever the machine offers them
 * (x86_64, glibc's rseq area, membarrier), else atomic exchanges. */
static int child_lock_mode(long arg)
{
	struct os_rseq rs;
	bool want;

	(void)arg;
	REQUIRE(pcpu_init(NULL) == 0, "init");
	want = CACHE_LOCK_HAVE_RSEQ && os_rseq_probe(&rs) == 0 && rs.registered &&
	       os_membarrier_rseq_register() == 0;
#if defined(__SANITIZE_THREAD__)
	want = false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
	want = false;
#endif
#endif
	printf("cache lock mode: %s\n", cache_lock_rseq ? "restartable sequences" : "atomic exchange");
	CHECK(cache_lock_rseq == want, "lock mode %d, want %d", cache_lock_rseq, want);
	void *h = pcpu_alloc(16, 0);
	CHECK(h != NULL, "alloc");
	pcpu_free(h);
	return pcpu_verify() == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const char *const misuse[] = { "double free of a cached object",
		"alloc_size of a cached object", "interior of a cached object" };
	uint64_t seed = test_seed(argc, argv);
	struct kit_child *c;

	KIT_EXPECT(kit_fork(child_lock_mode, 0, seed, 60), KIT_EXIT(0), "lock mode");
	KIT_EXPECT(kit_fork(child_zeroed, 0, seed, 60), KIT_EXIT(0), "zeroed reuse");
	KIT_EXPECT(kit_fork(child_in_a_row, 0, seed, 120), KIT_EXIT(0), "in a row, up and down");
	for (long k = 0; k < 3; k++) {
		c = kit_fork(child_misuse, k, seed, 60);
		KIT_EXPECT(c, KIT_SIGNAL(SIGABRT), "%s", misuse[k]);
		CHECK(strstr(c->err, "invalid pointer") && strstr(c->err, "not a live allocation"),
		      "%s: the message names it: %s", misuse[k], c->err);
	}
	KIT_EXPECT(kit_fork(child_atomic, 0, seed, 60), KIT_EXIT(0), "atomic from the cache");
	KIT_EXPECT(kit_fork(child_random, 0, seed, 300), KIT_EXIT(0), "random sequence");
	KIT_EXPECT(kit_fork(child_threads, 0, seed, 300), KIT_EXIT(0), "threads, idle drain");
	KIT_EXPECT(kit_fork(child_fork, 0, seed, 60), KIT_EXIT(0), "fork");
	KIT_EXPECT(kit_fork(child_spare, 0, seed, 60), KIT_EXIT(0), "spare caches");
	c = kit_fork(child_spare, 1, seed, 60);
	KIT_EXPECT(c, KIT_SIGNAL(SIGABRT), "double free of an object in a spare cache");
	CHECK(strstr(c->err, "not a live allocation"), "the message names it: %s", c->err);
	KIT_EXPECT(kit_fork(child_slot_pages, 0, seed, 60), KIT_EXIT(0), "slot pages given back");
	for (long how = 0; how < 3; how++)
		KIT_EXPECT(kit_fork(child_off, how, seed, 60), KIT_EXIT(0), "cache setting %ld", how);
	TEST_DONE();
}
