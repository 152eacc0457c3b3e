/*
 * test_this_cpu_cid.c - PCPU_CFG_INDEX_BY_CID: copies indexed by the rseq
 * concurrency ID (mm_cid, Linux 6.3+).  Exit 77 where the kernel (or glibc's
 * registration) does not offer it.  Each part in a forked child:
 *
 *   index     the mode has PCPU_THIS_CPU_CID; pinned to each CPU in turn,
 *             in the main thread and a new one, pcpu_current_cpu() (inline
 *             and library) equals the mm_cid field of the rseq area
 *   compact   this program again with only its highest CPU c > 0 allowed:
 *             the lone main thread's index is 0 while sched_getcpu() is c
 *             (a CPU-number index would be c)
 *   stress    this_cpu_kit's stress indexed by ID: exact, and no switch
 *             (IDs stay below the number of CPUs = units)
 *   1 unit    the stress again on one unit: any second thread running at
 *             the same time holds ID 1, which shares copy 0, so the process
 *             switches to atomic mode; exact; two threads pinned to two
 *             CPUs then make sure the switch happened
 *   hidden    mm_cid hidden (the OS hook): the flag falls back to CPU
 *             numbers, no CID bit, the index is sched_getcpu() when pinned
 */
#define _GNU_SOURCE
#include "os_cpu.h"
#include "this_cpu_kit.h"

static long g_ops = 500000;

static void init_cid(unsigned units)
{
	struct pcpu_config cfg = { .nr_cpus = units,
				   .flags = PCPU_CFG_NO_BALANCER | PCPU_CFG_INDEX_BY_CID };

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
}

static uint32_t raw_cid(void)
{
	struct os_rseq rs;

	REQUIRE(os_rseq_probe(&rs) == 0, "probe");
	return os_rseq_read(rs.area + OS_RSEQ_MM_CID);
}

/* Pinned to every allowed CPU in turn: the index is the raw mm_cid
 * (whenever two raw reads around it agree). */
static void *index_walk(void *arg)
{
	long bad = 0;

	for (int i = 0; i < kit_nr_allowed; i++) {
		if (!kit_pin(kit_nth_allowed((unsigned)i)))
			bad++;
		for (int k = 0; k < 100; k++) {
			uint32_t a = raw_cid();
			unsigned fast = pcpu_current_cpu(), slow = (pcpu_current_cpu)();
			uint32_t b = raw_cid();

			if (a == b && (fast != a || slow != a))
				bad++;
		}
	}
	kit_unpin();
	*(long *)arg = bad;
	return NULL;
}

static int child_index(long arg)
{
	long bad_main = -1, bad_thread = -1;
	pthread_t t;

	(void)arg;
	init_cid(0);
	CHECK(pcpu_this_cpu_mode() & PCPU_THIS_CPU_CID, "mode %#x", pcpu_this_cpu_mode());
	index_walk(&bad_main);
	REQUIRE(pthread_create(&t, NULL, index_walk, &bad_thread) == 0, "pthread_create");
	pthread_join(t, NULL);
	CHECK(bad_main == 0 && bad_thread == 0, "index != mm_cid: %ld / %ld", bad_main, bad_thread);
	return 0;
}

/* Started with one allowed CPU, c > 0, and no other thread. */
static int compact_main(void)
{
	int cpu = sched_getcpu();
	unsigned idx;

	init_cid(0);
	if (!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_CID))
		return 77;
	idx = pcpu_current_cpu();
	printf("  compact: on CPU %d alone, index %u\n", cpu, idx);
	CHECK(cpu > 0 && idx == 0, "one thread on CPU %d: index %u, want 0", cpu, idx);
	CHECK((pcpu_current_cpu)() == 0, "library index");
	TEST_DONE();
}

static int child_stress(long units)
{
	init_cid((unsigned)units);
	CHECK((pcpu_this_cpu_mode() & (PCPU_THIS_CPU_CID | PCPU_THIS_CPU_RSEQ)) ==
		      (PCPU_THIS_CPU_CID | PCPU_THIS_CPU_RSEQ),
	      "mode %#x at start", pcpu_this_cpu_mode());
	REQUIRE(kit_alloc_handles(true, NULL) == 0, "pcpu_alloc");
	kit_stress(4 * kit_nr_allowed, g_ops);
	if (units == 0) {
		CHECK(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ, "rseq mode at the end");
		CHECK(pcpu_cpu_switches() == 0, "%lu switches", pcpu_cpu_switches());
	}
	return 0;
}

/* Spins on this_cpu_inc pinned to a CPU until the process is atomic. */
static void *spinner(void *arg)
{
	long cpu = (long)arg;

	kit_pin((int)cpu);
	for (long i = 0; i < 100000000 && (pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ); i++)
		this_cpu_inc(kit_h.c64);
	return NULL;
}

static int child_one_unit(long arg)
{
	pthread_t t[2];

	(void)arg;
	child_stress(1);
	if (kit_nr_allowed >= 2) {
		for (long i = 0; i < 2; i++)
			REQUIRE(pthread_create(&t[i], NULL, spinner,
					       (void *)(long)kit_nth_allowed((unsigned)i)) == 0,
				"pthread_create");
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		CHECK(!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ), "ID 1 shares copy 0: atomic mode");
		CHECK(pcpu_cpu_switches() >= 1, "%lu switches", pcpu_cpu_switches());
	}
	return 0;
}

static int child_hidden(long arg)
{
	long bad = 0;

	(void)arg;
	os_cpu_test_set(OS_CPU_HIDE_MM_CID);
	init_cid(0);
	CHECK(!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_CID), "no mm_cid: CPU numbers");
	for (int i = 0; i < kit_nr_allowed; i++) {
		int c = kit_nth_allowed((unsigned)i);

		if (!kit_pin(c) || pcpu_current_cpu() != (unsigned)c % pcpu_nr_cpus())
			bad++;
	}
	kit_unpin();
	CHECK(bad == 0, "%ld CPU-number mismatches", bad);
	return 0;
}

int main(int argc, char **argv)
{
	const char *ops = getenv("PCPU_THIS_CPU_OPS");
	struct os_rseq rs;
	int high;

	kit_seed = test_seed(argc, argv);
	kit_init_cpus();
	if (argc > 2 && !strcmp(argv[2], "compact"))
		return compact_main();
	if (os_rseq_probe(&rs) || !rs.registered || !rs.mm_cid) {
		printf("no rseq mm_cid here (registered %d, %u bytes kept): skipping\n",
		       (int)rs.registered, rs.size);
		return 77;
	}
#ifndef PCPU_HAVE_RSEQ_OPS
	printf("no sequences in this build: skipping\n");
	return 77;
#endif
	if (ops)
		g_ops = atol(ops);
	kit_run("index", child_index, 0);
	high = kit_highest_allowed();
	if (high > 0 && !getenv("PCPU_TEST_NO_EXEC")) {
		int rc = kit_exec_self(argv[0], "compact", NULL, high);

		CHECK(rc == 0, "compact run: status %d", rc);
	}
	kit_run("stress", child_stress, 0);
	kit_run("1 unit", child_one_unit, 0);
	kit_run("hidden", child_hidden, 0);
	TEST_DONE();
}
