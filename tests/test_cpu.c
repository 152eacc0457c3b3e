/*
 * test_cpu.c - pcpu_current_cpu() and the this_cpu_* operations.
 *
 * Each configuration runs in a forked child: the machine's CPU count
 * (default), fewer units than CPUs (nr_cpus 1: every CPU wraps to 0) and
 * more units than CPUs (nr_cpus 64).
 *
 *   pinned    pinned with sched_setaffinity to each allowed CPU in turn, in
 *             the main thread and in a new thread, pcpu_current_cpu() (the
 *             inline path and the library function) equals sched_getcpu()
 *             modulo the unit count
 *   counters  T threads x M this_cpu_inc on a dynamic handle and on a
 *             PCPU_DEFINE variable (program linked with the static
 *             library), plus add/sub pairs, sum to exactly T x M: threads
 *             pinned, unpinned, and hopping between CPUs mid-way
 *   no rseq   the pinned test again in a copy of this program started with
 *             GLIBC_TUNABLES=glibc.pthread.rseq=0: the sched_getcpu()
 *             fallback gives the same answers
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "cpu_kit.h"
#include "kit.h"
#include "percpu.h"
#include "cpu.h"

PCPU_DEFINE(long, c_count) = 0;

static uint64_t g_seed;

/* ---- helpers ------------------------------------------------------------- */

/* Run fn(arg) in a forked child that must exit 0 (a hang of 120 s is a failure). */
static void run(const char *name, int (*fn)(long), long arg)
{
	KIT_EXPECT(kit_fork(fn, arg, g_seed + (uint64_t)arg, 120), KIT_EXIT(0), "%s(%ld)", name, arg);
}

static void init_units(long nr_cpus)
{
	struct pcpu_config cfg = { .nr_cpus = (unsigned)nr_cpus, .flags = PCPU_CFG_NO_BALANCER };

	REQUIRE(pcpu_init(nr_cpus ? &cfg : NULL) == 0, "pcpu_init(%ld): %s", nr_cpus, strerror(errno));
	if (nr_cpus)
		REQUIRE(pcpu_nr_cpus() == (unsigned)nr_cpus, "nr_cpus");
}

/* ---- pinned -------------------------------------------------------------- */

/* Pin to every allowed CPU in turn; count mismatches. */
static void *pinned_walk(void *arg)
{
	unsigned n = pcpu_nr_cpus();
	long bad = 0;

	for (int i = 0; i < kit_nr_allowed; i++) {
		int c = kit_nth_allowed((unsigned)i), now;
		unsigned want = (unsigned)c % n, fast, slow;

		if (!kit_pin(c)) {
			fprintf(stderr, "sched_setaffinity(%d): %s\n", c, strerror(errno));
			bad++;
			continue;
		}
		now = sched_getcpu();
		fast = pcpu_current_cpu();
		slow = (pcpu_current_cpu)();
		if (now != c || fast != want || slow != want) {
			fprintf(stderr, "pinned to %d: sched_getcpu %d, pcpu_current_cpu %u / %u, want %u\n",
				c, now, fast, slow, want);
			bad++;
		}
	}
	kit_unpin();
	*(long *)arg = bad;
	return NULL;
}

static int child_pinned(long nr_cpus)
{
	long bad_main = -1, bad_thread = -1;
	pthread_t t;

	init_units(nr_cpus);
	pinned_walk(&bad_main);
	kit_start_threads(&t, 1, pinned_walk, &bad_thread, 0);
	kit_join_threads(&t, 1, NULL);
	CHECK(bad_main == 0 && bad_thread == 0, "units %u: %ld / %ld mismatches", pcpu_nr_cpus(),
	      bad_main, bad_thread);
	for (int i = 0; i < 1000; i++)
		if (pcpu_current_cpu() >= pcpu_nr_cpus()) {
			CHECK(false, "pcpu_current_cpu() >= pcpu_nr_cpus()");
			break;
		}
	return 0;
}

/* ---- counters ------------------------------------------------------------ */

enum mode { UNPINNED, PINNED, HOPPING };

struct counter_arg {
	long __percpu *dyn;
	int id;
	long incs;
	enum mode mode;
};

static void *counter_thread(void *p)
{
	struct counter_arg *a = p;

	if (a->mode == PINNED)
		kit_pin(kit_nth_allowed((unsigned)a->id));
	for (long i = 0; i < a->incs; i++) {
		this_cpu_inc(a->dyn);
		this_cpu_inc(PCPU_VAR(c_count));
		if (i % 7 == 0) {
			this_cpu_add(a->dyn, 3);
			this_cpu_sub(a->dyn, 3);
		}
		if (a->mode == HOPPING && i % 4096 == 0)
			kit_pin(kit_nth_allowed((unsigned)(a->id + (int)(i / 4096))));
	}
	return NULL;
}

static int child_counters(long nr_cpus)
{
	struct counter_arg args[8];
	pthread_t t[8];
	int nthreads = 2 + (int)rng_below(7);
	long incs = 50000 + (long)rng_below(100000);

	init_units(nr_cpus);
	for (enum mode mode = UNPINNED; mode <= HOPPING; mode++) {
		long __percpu *dyn = pcpu_alloc(sizeof(long), sizeof(long));
		long before = pcpu_sum(PCPU_VAR(c_count)), total = (long)nthreads * incs;

		REQUIRE(dyn, "pcpu_alloc");
		for (int i = 0; i < nthreads; i++)
			args[i] = (struct counter_arg){ dyn, i, incs, mode };
		kit_start_threads(t, nthreads, counter_thread, args, sizeof(args[0]));
		kit_join_threads(t, nthreads, NULL);
		CHECK(pcpu_sum(dyn) == total, "units %u, mode %d, %d threads x %ld: dynamic sum %ld",
		      pcpu_nr_cpus(), mode, nthreads, incs, pcpu_sum(dyn));
		CHECK(pcpu_sum(PCPU_VAR(c_count)) - before == total, "static sum %ld, want %ld",
		      pcpu_sum(PCPU_VAR(c_count)) - before, total);
		if (pcpu_nr_cpus() == 1)
			CHECK(*per_cpu_ptr(dyn, 0) == total, "one unit takes everything");
		pcpu_free(dyn);
	}
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* ---- without rseq -------------------------------------------------------- */

/* Started by exec with glibc's rseq registration turned off. */
static int norseq_main(void)
{
	printf("no-rseq copy: rseq area %s\n", pcpu_cpu_rseq_active() ? "registered" : "not registered");
	CHECK(!pcpu_cpu_rseq_active(), "GLIBC_TUNABLES=glibc.pthread.rseq=0 leaves it unregistered");
	run("pinned", child_pinned, 0);
	run("pinned", child_pinned, 1);
	run("counters", child_counters, 0);
	TEST_DONE();
}

/* In a child: this program again, with glibc's rseq registration off. */
static int exec_norseq(long arg)
{
	char seed[32];

	(void)arg;
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)g_seed);
	setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0", 1);
	return kit_exec_self(seed, "--norseq", NULL);
}

int main(int argc, char **argv)
{
	kit_init_cpus();
	g_seed = test_seed(argc, argv);
	if (argc > 2 && !strcmp(argv[2], "--norseq"))
		return norseq_main();

	printf("%d CPUs allowed; rseq area %s\n", kit_nr_allowed,
	       pcpu_cpu_rseq_active() ? "registered: pcpu_current_cpu() reads it" :
					"not registered: sched_getcpu() fallback");
	for (long nr = 0; nr <= 64; nr = nr ? nr * 64 : 1) {
		run("pinned", child_pinned, nr);
		run("counters", child_counters, nr);
	}
	if (!getenv("PCPU_TEST_NO_EXEC"))      /* qemu-user cannot exec */
		KIT_EXPECT(kit_fork(exec_norseq, 0, 0, 0), KIT_EXIT(0), "no-rseq copy");
	TEST_DONE();
}
