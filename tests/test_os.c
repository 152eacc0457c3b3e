/*
 * test_os.c - tests for the OS layer (src/os.c): topology parsing (on the
 * real sysfs and on a fabricated tree), reserve/populate/depopulate semantics
 * checked with mincore(2) and forked children that must fault, fault
 * injection (nth, random, PCPU_FAULT syntax and the environment variable),
 * call counters, and counter atomicity under threads.
 *
 * Usage: test_os [seed]   (or PCPU_SEED=seed) - seeds the random-fault test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kit.h"
#include "os.h"
#include "os_fault.h"


static size_t PS;

/* Number of resident pages among npages starting at addr (mincore). */
static size_t resident_pages(void *addr, size_t npages)
{
	unsigned char vec[256];
	size_t n = 0;

	if (npages > sizeof(vec) || mincore(addr, npages * PS, vec))
		return (size_t)-1;
	for (size_t i = 0; i < npages; i++)
		n += vec[i] & 1;
	return n;
}

static volatile unsigned char *g_touch;

/* In a child: read g_touch[0], or write it if `write`. */
static int touch(long write)
{
	signal(SIGSEGV, SIG_DFL);
	if (write)
		g_touch[0] = 1;
	else
		(void)g_touch[0];
	return 0;
}

/* Does touching addr (read, or write if `write`) kill a child with SIGSEGV? */
static int access_faults(void *addr, int write)
{
	g_touch = addr;
	return kit_signaled(kit_fork(touch, write, 0, 0), SIGSEGV);
}

/* Resident pages of the whole process (second field of /proc/self/statm). */
static long rss_pages(void)
{
	long size, rss = -1;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss;
}

static int all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

static void test_topology(void)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = os_possible_cpus();
	size_t ps = os_page_size();

	CHECK(ps >= 4096 && (ps & (ps - 1)) == 0);
	CHECK(ps == (size_t)sysconf(_SC_PAGESIZE));
	CHECK(n >= 1);
	CHECK(online < 1 || n >= (unsigned)online);
	CHECK(os_nr_nodes() >= 1);
	for (unsigned c = 0; c < n && c < 256; c++) {
		CHECK(os_cpu_node(c) >= 0);
		CHECK(os_cpu_distance(c, c) == OS_LOCAL_DISTANCE);
	}
	CHECK(os_node_distance(0, 0) == OS_LOCAL_DISTANCE);
	CHECK(os_cpu_node(n + 1000) == 0);
	/* unknown nodes fall back to 10 / 20 */
	CHECK(os_node_distance(3000, 3000) == OS_LOCAL_DISTANCE);
	CHECK(os_node_distance(3000, 3001) == OS_REMOTE_DISTANCE);
}

static void max_cb(unsigned v, void *arg)
{
	unsigned *m = arg;

	if (v + 1 > *m)
		*m = v + 1;
}

static void test_parse_list(void)
{
	static const char *const bad[] = {
		"3-1", "a", "1,", "1-", "-1", "1 2", "0-3,,5", "1;2", "99999999999",
		"0-99999999",
	};
	unsigned m = 0;

	CHECK(os_parse_list("0-3,5\n", max_cb, &m) == 5 && m == 6);
	m = 0;
	CHECK(os_parse_list("7", max_cb, &m) == 1 && m == 8);
	CHECK(os_parse_list("0,2,4-6,10-11\n", NULL, NULL) == 7);
	CHECK(os_parse_list("", NULL, NULL) == 0);
	CHECK(os_parse_list("\n", NULL, NULL) == 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		CHECK(os_parse_list(bad[i], NULL, NULL) == -1 && errno == EINVAL);
	}
}

/* A fabricated sysfs: 8 CPUs, nodes 0 and 2 online, interleaved CPUs. */
static void test_fake_sysfs(void)
{
	char root[] = "/tmp/pcpu-sysfs-XXXXXX", p[600];
	unsigned real_cpus = os_possible_cpus();
	int real_nodes = os_nr_nodes();
	static const char *const files[][2] = {
		{ "cpu/possible", "0-7\n" }, { "node/online", "0,2\n" },
		{ "node/node0/cpulist", "0-1,4-5\n" }, { "node/node2/cpulist", "2-3,6-7\n" },
		{ "node/node0/distance", "10 21\n" }, { "node/node2/distance", "31 10\n" },
	};

	if (!kit_tree_make(root, files, 6))
		return;

	CHECK(os_topology_reload(root) == 0);
	CHECK(os_possible_cpus() == 8);
	CHECK(os_nr_nodes() == 2);
	CHECK(os_cpu_node(0) == 0 && os_cpu_node(5) == 0);
	CHECK(os_cpu_node(2) == 2 && os_cpu_node(7) == 2);
	CHECK(os_node_distance(0, 2) == 21);
	CHECK(os_node_distance(2, 0) == 31);       /* rows are per source node */
	CHECK(os_node_distance(2, 2) == 10);
	CHECK(os_node_distance(1, 1) == 10);       /* not online: fallback */
	CHECK(os_cpu_distance(1, 3) == 21 && os_cpu_distance(3, 1) == 31);
	CHECK(os_cpu_distance(4, 1) == 10);
	{
		/* node 1 is not online in this topology: rejected before mbind */
		void *r = os_reserve(PS, 0);

		errno = 0;
		CHECK(r && os_bind_node(r, PS, 1) == -1 && errno == EINVAL);
		CHECK(r && os_bind_node(r, PS, -1) == 0);
		os_unreserve(r, PS);
	}

	/* an empty tree: everything falls back */
	snprintf(p, sizeof(p), "%s/nonexistent", root);
	CHECK(os_topology_reload(p) == 0);
	CHECK(os_possible_cpus() >= 1);
	CHECK(os_nr_nodes() == 1);
	CHECK(os_cpu_node(0) == 0);
	CHECK(os_node_distance(0, 1) == 20);

	CHECK(os_topology_reload(NULL) == 0);
	CHECK(os_possible_cpus() == real_cpus);
	CHECK(os_nr_nodes() == real_nodes);
	kit_tree_remove(root, files, 6);
}

static void test_reserve(void)
{
	size_t aligns[] = { 0, 1, PS, 64 * 1024, 1u << 20, 2u << 20 };

	for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
		size_t a = aligns[i] < PS ? PS : aligns[i];
		unsigned char *p = os_reserve(3 * PS + 1, aligns[i]);

		CHECK(p != NULL);
		if (!p)
			continue;
		CHECK(((uintptr_t)p & (a - 1)) == 0);
		CHECK(resident_pages(p, 4) == 0);
		CHECK(access_faults(p, 0) == 1);
		CHECK(access_faults(p + 3 * PS, 1) == 1);
		CHECK(os_unreserve(p, 3 * PS + 1) == 0);
	}
	errno = 0;
	CHECK(os_reserve(0, PS) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(os_reserve(PS, 3 * PS) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(os_reserve(SIZE_MAX - 10, PS) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(os_reserve((size_t)1 << 62, (size_t)1 << 62) == NULL && errno == ENOMEM);
}

static void test_populate_cycle(int touch)
{
	const size_t np = 8;
	unsigned char *p = os_reserve(np * PS, 0);

	CHECK(p != NULL);
	if (!p)
		return;
	os_force_touch_populate(touch);
	/* populate pages 2..5 only */
	CHECK(os_populate(p + 2 * PS, 4 * PS) == 0);
	CHECK(resident_pages(p + 2 * PS, 4) == 4);
	CHECK(resident_pages(p, 2) == 0 && resident_pages(p + 6 * PS, 2) == 0);
	CHECK(all_zero(p + 2 * PS, 4 * PS));
	memset(p + 2 * PS, 0xab, 4 * PS);
	CHECK(p[2 * PS] == 0xab && p[6 * PS - 1] == 0xab);
	CHECK(access_faults(p + PS, 0) == 1);
	CHECK(access_faults(p + 6 * PS, 0) == 1);
	CHECK(access_faults(p + 2 * PS, 1) == 0);

	/* give back the middle two: they drop out, neighbours stay */
	CHECK(os_depopulate(p + 3 * PS, 2 * PS) == 0);
	CHECK(resident_pages(p + 3 * PS, 2) == 0);
	CHECK(resident_pages(p + 2 * PS, 1) == 1 && resident_pages(p + 5 * PS, 1) == 1);
	CHECK(access_faults(p + 3 * PS, 0) == 1);
	CHECK(access_faults(p + 4 * PS + 100, 1) == 1);
	CHECK(p[2 * PS] == 0xab && p[5 * PS] == 0xab);

	/* again: zeros, resident */
	CHECK(os_populate(p + 3 * PS, 2 * PS) == 0);
	CHECK(resident_pages(p + 3 * PS, 2) == 2);
	CHECK(all_zero(p + 3 * PS, 2 * PS));
	CHECK(p[2 * PS] == 0xab && p[5 * PS] == 0xab);

	CHECK(os_depopulate(p, np * PS) == 0);
	CHECK(resident_pages(p, np) == 0);
	CHECK(os_populate(p, 0) == 0 && os_depopulate(p, 0) == 0);
	errno = 0;
	CHECK(os_populate(p + 1, PS) == -1 && errno == EINVAL);
	os_force_touch_populate(0);
	CHECK(os_unreserve(p, np * PS) == 0);
}

/*
 * mincore also counts pages mapped to the shared zero page (a read fault), so
 * check with the process RSS that populate really allocates memory and that
 * depopulate really gives it back.
 */
static void test_rss(int touch)
{
	const size_t np = 1024;
	unsigned char *p = os_reserve(np * PS, 0);
	long r0, r1, r2;

	CHECK(p != NULL);
	if (!p)
		return;
	os_force_touch_populate(touch);
	r0 = rss_pages();
	CHECK(os_populate(p, np * PS) == 0);
	r1 = rss_pages();
	CHECK(os_depopulate(p, np * PS) == 0);
	r2 = rss_pages();
	os_force_touch_populate(0);
	CHECK(r0 > 0 && r1 > 0 && r2 > 0);
	CHECK(r1 - r0 >= (long)(np * 9 / 10));
	CHECK(r1 - r2 >= (long)(np * 9 / 10));
	os_unreserve(p, np * PS);
}

/* A real (not injected) failure in the middle must be rolled back. */
static void test_populate_real_failure(void)
{
	unsigned char *p = os_reserve(3 * PS, 0);

	CHECK(p != NULL);
	if (!p)
		return;
	CHECK(munmap(p + PS, PS) == 0);         /* punch a hole */
	errno = 0;
	CHECK(os_populate(p, 3 * PS) == -1 && errno == ENOMEM);
	CHECK(resident_pages(p, 1) == 0);
	CHECK(access_faults(p, 0) == 1);
	CHECK(access_faults(p + 2 * PS, 0) == 1);
	munmap(p, PS);
	munmap(p + 2 * PS, PS);
}

static void test_fault_nth(void)
{
	unsigned char *p = os_reserve(4 * PS, 0);
	unsigned long f0 = os_fault_count(), c0 = os_call_count(OS_OP_POPULATE);
	void *r;

	CHECK(p != NULL);
	if (!p)
		return;
	os_fault_nth(OS_OP_POPULATE, 1, 2);
	CHECK(os_populate(p, PS) == 0);                 /* skipped */
	errno = 0;
	CHECK(os_populate(p + PS, PS) == -1 && errno == ENOMEM);
	errno = 0;
	CHECK(os_populate(p + PS, PS) == -1 && errno == ENOMEM);
	CHECK(resident_pages(p + PS, 1) == 0);          /* untouched */
	CHECK(access_faults(p + PS, 0) == 1);
	CHECK(os_populate(p + PS, PS) == 0);            /* window over */
	CHECK(os_fault_count() - f0 == 2);
	CHECK(os_call_count(OS_OP_POPULATE) - c0 == 4);

	/* depopulate failure leaves data in place */
	p[PS] = 42;
	os_fault_nth(OS_OP_DEPOPULATE, 0, 1);
	errno = 0;
	CHECK(os_depopulate(p + PS, PS) == -1 && errno == ENOMEM);
	CHECK(p[PS] == 42 && resident_pages(p + PS, 1) == 1);
	CHECK(os_depopulate(p + PS, PS) == 0);
	CHECK(resident_pages(p + PS, 1) == 0);

	os_fault_nth(OS_OP_RESERVE, 0, 1);
	errno = 0;
	CHECK(os_reserve(PS, 0) == NULL && errno == ENOMEM);
	r = os_reserve(PS, 0);
	CHECK(r != NULL);
	if (r)
		os_unreserve(r, PS);

	os_fault_nth(OS_OP_BIND, 0, 1);
	errno = 0;
	CHECK(os_bind_node(p, PS, 0) == -1 && errno == ENOMEM);
	CHECK(os_bind_node(p, PS, 0) == 0);

	/* count 0 disarms; clear disarms everything */
	os_fault_nth(OS_OP_POPULATE, 0, 0);
	CHECK(os_populate(p + 2 * PS, PS) == 0);
	os_fault_nth(OS_OP_POPULATE, 0, 100);
	os_fault_clear();
	CHECK(os_populate(p + 3 * PS, PS) == 0);
	os_unreserve(p, 4 * PS);
}

/* Run 64 populate+depopulate attempts; returns the failure bit pattern. */
static uint64_t random_pattern(unsigned char *p, int *untouched_ok)
{
	uint64_t bits = 0;

	*untouched_ok = 1;
	for (int i = 0; i < 64; i++) {
		if (os_populate(p, 2 * PS) == 0) {
			if (resident_pages(p, 2) != 2 || !all_zero(p, 2 * PS))
				*untouched_ok = 0;
			p[0] = 1;
			if (os_depopulate(p, 2 * PS))
				*untouched_ok = 0;
			continue;
		}
		if (errno != ENOMEM || resident_pages(p, 2) != 0)
			*untouched_ok = 0;
		bits |= 1ull << i;
	}
	return bits;
}

static void test_fault_random(unsigned long seed)
{
	unsigned char *p = os_reserve(2 * PS, 0);
	uint64_t a = 0, b = 0;
	int ok, fails = 0;
	unsigned long f0;

	CHECK(p != NULL);
	if (!p)
		return;
	/* one random draw per populate: replay call by call */
	for (int pass = 0; pass < 2; pass++) {
		uint64_t bits = 0;

		os_fault_random(OS_OP_POPULATE, 0.5, seed);
		f0 = os_fault_count();
		for (int i = 0; i < 64; i++) {
			errno = 0;
			if (os_populate(p, 2 * PS) == 0) {
				CHECK(resident_pages(p, 2) == 2 && all_zero(p, 2 * PS));
				p[5] = 9;
				CHECK(os_depopulate(p, 2 * PS) == 0);
			} else {
				CHECK(errno == ENOMEM);
				CHECK(resident_pages(p, 2) == 0);
				bits |= 1ull << i;
			}
		}
		CHECK(os_fault_count() - f0 == (unsigned long)__builtin_popcountll(bits));
		if (pass == 0)
			a = bits;
		else
			b = bits;
	}
	fails = __builtin_popcountll(a);
	CHECK(a == b);                  /* same seed, same pattern */
	CHECK(fails > 5 && fails < 59); /* p = 0.5 over 64 draws */

	/* the PCPU_FAULT syntax gives the same generator */
	{
		char spec[64];

		snprintf(spec, sizeof(spec), "seed=%lu,populate:0.5", seed);
		CHECK(os_fault_parse(spec) == 0);
		CHECK(random_pattern(p, &ok) == a);
		CHECK(ok);
	}

	os_fault_random(OS_OP_POPULATE, 1.0, seed);
	for (int i = 0; i < 10; i++)
		CHECK(os_populate(p, PS) == -1);
	os_fault_random(OS_OP_POPULATE, 0.0, seed);
	for (int i = 0; i < 10; i++)
		CHECK(os_populate(p, PS) == 0 && os_depopulate(p, PS) == 0);
	os_fault_clear();
	os_unreserve(p, 2 * PS);
}

static void test_fault_parse(void)
{
	static const char *const good[] = {
		"", "populate:0.01,reserve:nth=3", "seed=7,bind:1", "depopulate:nth=1",
		" populate:0.5 , seed=3 ", "reserve:0", "populate:.25", "populate:1.0",
	};
	static const char *const bad[] = {
		"populate", "foo:0.1", "populate:1.5", "populate:nth=0", "populate:nth=x",
		"populate:0.1,", "seed=", "seed=abc", ",", "populate:-0.1", "populate:",
		"populate:0.1x", "reserve:nth=3,,bind:0", "Populate:0.1", "populate:.",
		"seed=1 2",
	};
	void *r;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(os_fault_parse(good[i]) == 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		CHECK(os_fault_parse(bad[i]) == -1 && errno == EINVAL);
	}
	CHECK(os_fault_parse(NULL) == -1);

	/* nth=2: second call fails, first and third succeed */
	CHECK(os_fault_parse("reserve:nth=2") == 0);
	r = os_reserve(PS, 0);
	CHECK(r != NULL);
	os_unreserve(r, PS);
	CHECK(os_reserve(PS, 0) == NULL);
	r = os_reserve(PS, 0);
	CHECK(r != NULL);
	os_unreserve(r, PS);

	/* a bad string leaves the previous configuration alone */
	CHECK(os_fault_parse("reserve:nth=1") == 0);
	CHECK(os_fault_parse("reserve:2") == -1);
	CHECK(os_reserve(PS, 0) == NULL);

	/* a valid string replaces it */
	CHECK(os_fault_parse("reserve:nth=1") == 0);
	CHECK(os_fault_parse("bind:1") == 0);
	r = os_reserve(PS, 0);
	CHECK(r != NULL);
	CHECK(r && os_bind_node(r, PS, 0) == -1);
	os_fault_clear();
	CHECK(r && os_bind_node(r, PS, 0) == 0);
	os_unreserve(r, PS);
}

static void test_counters(void)
{
	unsigned long c[OS_NR_OPS], f = os_fault_count();
	void *r;

	for (int op = 0; op < OS_NR_OPS; op++)
		c[op] = os_call_count(op);
	r = os_reserve(2 * PS, 0);
	CHECK(r != NULL);
	if (!r)
		return;
	CHECK(os_bind_node(r, 2 * PS, 0) == 0);
	CHECK(os_populate(r, 2 * PS) == 0);
	CHECK(os_populate((char *)r + PS, 0) == 0);     /* size 0: not a call */
	CHECK(os_depopulate(r, PS) == 0);
	CHECK(os_depopulate((char *)r + PS, PS) == 0);
	CHECK(os_call_count(OS_OP_RESERVE) - c[OS_OP_RESERVE] == 1);
	CHECK(os_call_count(OS_OP_BIND) - c[OS_OP_BIND] == 1);
	CHECK(os_call_count(OS_OP_POPULATE) - c[OS_OP_POPULATE] == 1);
	CHECK(os_call_count(OS_OP_DEPOPULATE) - c[OS_OP_DEPOPULATE] == 2);
	CHECK(os_fault_count() == f);
	CHECK(os_call_count(OS_NR_OPS) == 0);
	os_unreserve(r, 2 * PS);

	os_counters_reset();
	CHECK(os_fault_count() == 0);
	for (int op = 0; op < OS_NR_OPS; op++)
		CHECK(os_call_count(op) == 0);
}

#define NTHREADS 4
#define PER_THREAD 2000

static void *bind_loop(void *arg)
{
	long fails = 0;

	for (int i = 0; i < PER_THREAD; i++)
		if (os_bind_node(arg, PS, 0))
			fails++;
	return (void *)fails;
}

/* Counters and the nth window are exact under concurrency. */
static void test_threads(void)
{
	pthread_t t[NTHREADS];
	void *r = os_reserve(PS, 0), *rets[NTHREADS];
	unsigned long c0 = os_call_count(OS_OP_BIND), f0 = os_fault_count();
	long fails = 0;

	CHECK(r != NULL);
	if (!r)
		return;
	os_fault_nth(OS_OP_BIND, 1000, 77);
	kit_start_threads(t, NTHREADS, bind_loop, r, 0);   /* every thread gets r */
	kit_join_threads(t, NTHREADS, rets);
	for (int i = 0; i < NTHREADS; i++)
		fails += (long)rets[i];
	CHECK(fails == 77);
	CHECK(os_call_count(OS_OP_BIND) - c0 == NTHREADS * PER_THREAD);
	CHECK(os_fault_count() - f0 == 77);
	os_fault_clear();
	os_unreserve(r, PS);
}

/* Child mode: check what PCPU_FAULT (set by the parent) did. */
static int env_child(const char *mode)
{
	void *r;

	if (!strcmp(mode, "--env-good")) {
		CHECK(os_reserve(PS, 0) == NULL && errno == ENOMEM);
		r = os_reserve(PS, 0);
		CHECK(r != NULL);
		CHECK(os_fault_env_status() == 0);
	} else {
		r = os_reserve(PS, 0);
		CHECK(r != NULL);
		CHECK(os_fault_env_status() == -1);
	}
	return check_failed ? 1 : 0;
}

/* The env_child modes and the PCPU_FAULT each runs with. */
static const char *const env_cases[][2] = {
	{ "--env-good", "seed=4,reserve:nth=1" },
	{ "--env-bad", "reserve:nth=1,bogus" },
};

/* In a child: this program again, in env_child mode env_cases[i]. */
static int exec_env_child(long i)
{
	setenv("PCPU_FAULT", env_cases[i][1], 1);
	return kit_exec_self(env_cases[i][0], NULL);
}

int main(int argc, char **argv)
{
	uint64_t seed;

	PS = (size_t)sysconf(_SC_PAGESIZE);
	if (argc > 1 && !strncmp(argv[1], "--env-", 6))
		return env_child(argv[1]);
	unsetenv("PCPU_FAULT");         /* this run controls injection itself */
	seed = test_seed(argc, argv);

	test_topology();
	test_parse_list();
	test_fake_sysfs();
	test_reserve();
	test_populate_cycle(0);
	test_populate_cycle(1);
	test_rss(0);
	test_rss(1);
	test_populate_real_failure();
	test_fault_nth();
	test_fault_random((unsigned long)seed);
	test_fault_parse();
	test_counters();
	test_threads();
	for (long i = 0; i < 2; i++)
		KIT_EXPECT(kit_fork(exec_env_child, i, 0, 0), KIT_EXIT(0), "PCPU_FAULT=%s", env_cases[i][1]);

	printf("test_os: %s\n", check_failed ? "FAIL" : "PASS");
	TEST_DONE();
}
