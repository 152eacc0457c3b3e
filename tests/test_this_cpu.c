/*
 * test_this_cpu.c - every this_cpu operation and width exact under stress
 * (this_cpu_kit.h: 4 x allowed-CPUs threads, a 0.5 ms signal timer whose
 * handler uses this_cpu operations, sched_yield, a thread moving the
 * workers between CPUs), each configuration in a forked child:
 *
 *   units = CPUs    rseq mode throughout where glibc registered rseq: no
 *                   index reaches the unit count, so no switch
 *   1 unit          every CPU >= 1 shares copy 0 with CPU 0: the first
 *                   operation there switches the process to atomic mode
 *                   while the others run sequences; still exact; then an
 *                   operation pinned to such a CPU proves the switch (one
 *                   membarrier, or none if the process started atomic)
 *   no membarrier   (the OS hook hides it) atomic mode from the start
 *
 *   switch race     (one unit, rseq mode, >= 2 CPUs) a thread on CPU 0 runs
 *                   add_return sequences on copy 0 while a thread pinned to
 *                   another CPU makes the switch with its first operation
 *                   and goes on with atomic RMWs on the same copy: no update
 *                   is lost; 100 times, each a fresh process
 *
 * CTest runs it twice: as is, and with GLIBC_TUNABLES=glibc.pthread.rseq=0
 * (test_this_cpu_norseq), where every configuration must be in atomic mode
 * from the start: the fallback is taken.  PCPU_THIS_CPU_OPS sets the
 * operations per thread (default 200000).
 */
#define _GNU_SOURCE
#include "os_cpu.h"
#include "this_cpu_kit.h"

PCPU_DEFINE(uint64_t, stress_static);

static long g_ops = 1000000;

static int child_stress(long units)
{
	struct pcpu_config cfg = { .nr_cpus = (unsigned)units, .flags = PCPU_CFG_NO_BALANCER };
	bool rseq = kit_rseq_expected() && units >= 0;
	int high = kit_highest_allowed();

	if (units < 0) {
		os_cpu_test_set(OS_CPU_HIDE_MEMBARRIER);
		cfg.nr_cpus = 0;
	}
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
	CHECK(!!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ) == rseq, "mode %#x at start, rseq %s expected",
	      pcpu_this_cpu_mode(), rseq ? "" : "not");
	REQUIRE(kit_alloc_handles(true, PCPU_VAR(stress_static)) == 0, "pcpu_alloc");
	kit_stress(4 * kit_nr_allowed, g_ops);
	if ((unsigned)high >= pcpu_nr_cpus()) {
		REQUIRE(kit_pin(high), "pin");
		this_cpu_inc(kit_h.c64);
		kit_unpin();
		CHECK(!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ), "CPU %d shares a copy: atomic mode",
		      high);
		CHECK(pcpu_cpu_switches() >= (rseq ? 1u : 0u) && pcpu_cpu_switches() <= (rseq ? 64u : 0u),
		      "%lu switches", pcpu_cpu_switches());
	} else {
		CHECK(!!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ) == rseq, "mode %#x at the end",
		      pcpu_this_cpu_mode());
		CHECK(pcpu_cpu_switches() == 0, "%lu switches", pcpu_cpu_switches());
	}
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* ---- switch race ---------------------------------------------------------- */

static uint64_t __percpu *race_copy;
static long race_a_ops, race_b_ops;
static int race_b_done;

static void *race_a(void *arg)
{
	(void)arg;
	kit_pin(kit_nth_allowed(0));
	while (!__atomic_load_n(&race_b_done, __ATOMIC_ACQUIRE) || race_a_ops < 20000) {
		(void)this_cpu_add_return(race_copy, 1);
		__atomic_store_n(&race_a_ops, race_a_ops + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void *race_b(void *arg)
{
	(void)arg;
	kit_pin(kit_highest_allowed());
	while (__atomic_load_n(&race_a_ops, __ATOMIC_ACQUIRE) < 10000)
		sched_yield();
	for (; race_b_ops < 20000; race_b_ops++)
		(void)this_cpu_add_return(race_copy, 1);
	__atomic_store_n(&race_b_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int child_switch_race(long iter)
{
	struct pcpu_config cfg = { .nr_cpus = 1, .flags = PCPU_CFG_NO_BALANCER };
	pthread_t a, b;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	race_copy = (uint64_t __percpu *)pcpu_alloc(8, 8);
	REQUIRE(race_copy, "pcpu_alloc");
	REQUIRE(pthread_create(&a, NULL, race_a, NULL) == 0 && pthread_create(&b, NULL, race_b, NULL) == 0,
		"pthread_create");
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	CHECK(*per_cpu_ptr(race_copy, 0) == (uint64_t)(race_a_ops + race_b_ops),
	      "iteration %ld: copy %llu, want %ld", iter, (unsigned long long)*per_cpu_ptr(race_copy, 0),
	      race_a_ops + race_b_ops);
	CHECK(!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ) && pcpu_cpu_switches() >= 1 && pcpu_cpu_switches() <= 2,
	      "switched: mode %#x, %lu switches", pcpu_this_cpu_mode(), pcpu_cpu_switches());
	return 0;
}

int main(int argc, char **argv)
{
	const char *ops = getenv("PCPU_THIS_CPU_OPS");

	kit_seed = test_seed(argc, argv);
	kit_init_cpus();
	if (ops)
		g_ops = atol(ops);
	printf("%d CPUs allowed; glibc rseq %s; expecting %s mode\n", kit_nr_allowed,
	       kit_rseq_tunable_off() ? "off" : "on", kit_rseq_expected() ? "rseq" : "atomic");
	if (kit_rseq_tunable_off())
		CHECK(!kit_rseq_expected(), "glibc.pthread.rseq=0: no rseq");
	kit_run("units = CPUs", child_stress, 0);
	kit_run("1 unit", child_stress, 1);
	kit_run("no membarrier", child_stress, -1);
	if (kit_rseq_expected() && kit_highest_allowed() > 0) {
		int failed = 0;

		for (long i = 0; i < 100 && failed < 3; i++)
			failed += !kit_run_quiet("switch race", child_switch_race, i);
		printf("  switch race: 100 processes, %d failed\n", failed);
	}
	TEST_DONE();
}
