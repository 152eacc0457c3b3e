/*
 * test_this_cpu_ops.c - what each this_cpu operation returns and stores,
 * which path runs, and the restartable sequences' descriptors.
 *
 *   semantics     this_cpu_semantics() (every operation, width and
 *                 signedness, pointers, an enum) and a PCPU_DEFINE variable,
 *                 with the machine's unit count and with one unit; with one
 *                 unit, an operation on a CPU >= 1 switches the process to
 *                 atomic mode (one membarrier) and the results stay right
 *   mode          rseq mode where glibc registered rseq and membarrier-rseq
 *                 works; atomic mode from the start (the fallback) under
 *                 GLIBC_TUNABLES=glibc.pthread.rseq=0 (this program run
 *                 again; also the CTest entry test_this_cpu_ops_norseq) and
 *                 when membarrier is hidden
 *   PCPU_NO_RSEQ  a unit compiled with it (this_cpu_norseq.c) has no
 *                 sequences; its first operation switches the process to
 *                 atomic mode; the semantics hold on its typed atomic path
 *                 and on the sequences' bail path afterwards
 *   descriptors   every struct rseq_cs in section __pcpu_rseq_cs is 32-byte
 *                 aligned, version and flags 0, a non-empty range starting
 *                 in this program's text, an abort handler outside the
 *                 range and preceded by RSEQ_SIG
 *   fake rseq     where glibc's area is not registered (the run under the
 *                 tunable; qemu-user, which lacks rseq) the library is told
 *                 it is and the test writes cpu_id itself: every operation
 *                 runs its sequence (one thread, so nothing restarts) and
 *                 lands in the copy chosen; cpu_id >= units bails out and
 *                 switches to atomic mode.  Exit 77 where glibc registered.
 *
 * Usage: test_this_cpu_ops [SEED [fake]].  PCPU_TEST_NO_EXEC=1 skips the
 * runs that re-execute this program (qemu-user cannot exec).
 */
#define _GNU_SOURCE
#include <sys/rseq.h>

#include "os_cpu.h"
#include "this_cpu_kit.h"
#include "this_cpu_semantics.h"

PCPU_DEFINE(long, ops_static) = 5;

int norseq_semantics(void);
int norseq_has_sequences(void);

static void init_units(long nr, unsigned flags)
{
	struct pcpu_config cfg = { .nr_cpus = (unsigned)nr, .flags = PCPU_CFG_NO_BALANCER | flags };

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init(%ld units): %s", nr, strerror(errno));
}

static void check_static(void)
{
	long before = pcpu_sum(PCPU_VAR(ops_static));

	this_cpu_add(PCPU_VAR(ops_static), 10);
	this_cpu_dec(PCPU_VAR(ops_static));
	CHECK(this_cpu_add_return(PCPU_VAR(ops_static), 0) >= 5, "static copy");
	CHECK(pcpu_sum(PCPU_VAR(ops_static)) == before + 9, "static sum %ld, want %ld",
	      pcpu_sum(PCPU_VAR(ops_static)), before + 9);
}

static int child_semantics(long units)
{
	bool rseq = kit_rseq_expected();
	int high = kit_highest_allowed();

	init_units(units, 0);
	CHECK(!!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ) == rseq, "mode %#x, rseq %s expected",
	      pcpu_this_cpu_mode(), rseq ? "" : "not");
	CHECK(this_cpu_semantics() == 0, "semantics, mode %#x", pcpu_this_cpu_mode());
	check_static();
	if (units == 1 && high >= 1) {
		/* CPU high shares copy 0 with CPU 0: the first operation there
		 * must leave rseq mode. */
		REQUIRE(kit_pin(high), "pin");
		CHECK(this_cpu_semantics() == 0, "semantics on CPU %d", high);
		CHECK(!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ), "CPU %d shares copy 0: atomic mode",
		      high);
		CHECK(pcpu_cpu_switches() == (rseq ? 1u : 0u), "%lu switches", pcpu_cpu_switches());
		kit_unpin();
		CHECK(this_cpu_semantics() == 0, "semantics after the switch");
		check_static();
	} else {
		CHECK(pcpu_cpu_switches() == 0, "%lu switches", pcpu_cpu_switches());
	}
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

static int child_no_membarrier(long arg)
{
	(void)arg;
	os_cpu_test_set(OS_CPU_HIDE_MEMBARRIER);
	init_units(0, 0);
	CHECK(!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ), "no membarrier: atomic mode from the start");
	CHECK(this_cpu_semantics() == 0, "semantics");
	check_static();
	CHECK(pcpu_cpu_switches() == 0, "%lu switches", pcpu_cpu_switches());
	return 0;
}

static int child_norseq_unit(long arg)
{
	bool rseq = kit_rseq_expected();

	(void)arg;
	init_units(0, 0);
	CHECK(!norseq_has_sequences(), "PCPU_NO_RSEQ unit has no sequences");
	CHECK(!!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ) == rseq, "mode before");
	CHECK(norseq_semantics() == 0, "semantics on the typed atomic path");
	CHECK(!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ), "PCPU_NO_RSEQ code leaves rseq mode");
	CHECK(pcpu_cpu_switches() == (rseq ? 1u : 0u), "%lu switches", pcpu_cpu_switches());
	CHECK(this_cpu_semantics() == 0, "semantics on the bail path");
	check_static();
	return 0;
}

/* ---- descriptors ---------------------------------------------------------- */

struct tc_desc {
	uint32_t version, flags;
	uint64_t start, post_commit, abort;
};
extern const struct tc_desc __start___pcpu_rseq_cs[] __attribute__((weak));
extern const struct tc_desc __stop___pcpu_rseq_cs[] __attribute__((weak));
extern const char __executable_start[], etext[];

static void check_descriptors(void)
{
	const struct tc_desc *d = __start___pcpu_rseq_cs, *end = __stop___pcpu_rseq_cs;
	unsigned n = 0, bad = 0;

	for (; d && d < end; d++, n++) {
		const unsigned char *abort_ip = (const unsigned char *)(uintptr_t)d->abort;
		uint32_t sig;

		memcpy(&sig, abort_ip - 4, 4);
		if ((uintptr_t)d % 32 || d->version || d->flags || !d->post_commit ||
		    d->start < (uintptr_t)__executable_start || d->start + d->post_commit > (uintptr_t)etext ||
		    (d->abort >= d->start && d->abort < d->start + d->post_commit) || sig != RSEQ_SIG)
			bad++;
#if defined(__x86_64__)
		if (abort_ip[-7] != 0x0f || abort_ip[-6] != 0xb9 || abort_ip[-5] != 0x3d)
			bad++;
#endif
	}
#ifdef PCPU_HAVE_RSEQ_OPS
	CHECK(n > 0, "no descriptor in __pcpu_rseq_cs");
#else
	CHECK(n == 0, "descriptors without sequences");
#endif
	CHECK(bad == 0, "%u of %u descriptors invalid", bad, n);
	printf("  %u critical-section descriptors checked\n", n);
}

/* ---- fake rseq ------------------------------------------------------------ */

static void set_fake_cpu(const struct os_rseq *rs, uint32_t cpu)
{
	__atomic_store_n((uint32_t *)((char *)__builtin_thread_pointer() + rs->area + OS_RSEQ_CPU_ID),
			 cpu, __ATOMIC_RELAXED);
}

static int fake_main(void)
{
	struct os_rseq rs;
	const unsigned units = 4;

	if (pcpu_cpu_rseq_active()) {
		printf("glibc registered rseq: nothing to fake, skipping\n");
		return 77;
	}
	os_cpu_test_set(OS_CPU_FAKE_RSEQ);
	REQUIRE(os_rseq_probe(&rs) == 0 && rs.registered, "fake probe");
	set_fake_cpu(&rs, 0);
	init_units(units, 0);
#ifdef PCPU_HAVE_RSEQ_OPS
	REQUIRE(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ, "fake rseq mode (membarrier missing?)");
#endif
	for (unsigned k = 0; k < units; k++) {
		set_fake_cpu(&rs, k);
		sem_want_copy = (int)k;
		CHECK(pcpu_current_cpu() == k && (pcpu_current_cpu)() == k, "index %u", k);
		CHECK(this_cpu_semantics() == 0, "semantics in copy %u", k);
		check_static();
	}
	CHECK(pcpu_cpu_switches() == 0, "no switch yet");
	set_fake_cpu(&rs, units + 1);           /* wraps to copy 1 */
	sem_want_copy = 1;
	CHECK(this_cpu_semantics() == 0, "semantics after index >= units");
	CHECK(!(pcpu_this_cpu_mode() & PCPU_THIS_CPU_RSEQ), "index >= units: atomic mode");
#ifdef PCPU_HAVE_RSEQ_OPS
	CHECK(pcpu_cpu_switches() == 1, "%lu switches", pcpu_cpu_switches());
#endif
	set_fake_cpu(&rs, 2);
	sem_want_copy = 2;
	CHECK(this_cpu_semantics() == 0, "atomic mode, copy 2");
	TEST_DONE();
}

int main(int argc, char **argv)
{
	bool off = kit_rseq_tunable_off(), no_exec = getenv("PCPU_TEST_NO_EXEC") != NULL;

	kit_seed = test_seed(argc, argv);
	kit_init_cpus();
	if (argc > 2 && !strcmp(argv[2], "fake"))
		return fake_main();
	printf("glibc rseq %s; sequences %s; expecting %s mode\n", off ? "off" : "on",
#ifdef PCPU_HAVE_RSEQ_OPS
	       "compiled in",
#else
	       "not compiled in",
#endif
	       kit_rseq_expected() ? "rseq" : "atomic");
	if (off)
		CHECK(!pcpu_cpu_rseq_active() && !kit_rseq_expected(), "tunable off: no rseq area");
	kit_run("semantics", child_semantics, 0);
	kit_run("semantics", child_semantics, 1);
	kit_run("no membarrier", child_no_membarrier, 0);
	kit_run("PCPU_NO_RSEQ unit", child_norseq_unit, 0);
	check_descriptors();
	if (!no_exec) {
		int rc;

		if (!off) {
			rc = kit_exec_self(argv[0], "", "GLIBC_TUNABLES=glibc.pthread.rseq=0", -1);
			CHECK(rc == 0, "run under glibc.pthread.rseq=0: status %d", rc);
		} else {
			rc = kit_exec_self(argv[0], "fake", NULL, -1);
			CHECK(rc == 0 || rc == 77, "fake rseq run: status %d", rc);
		}
	}
	TEST_DONE();
}
