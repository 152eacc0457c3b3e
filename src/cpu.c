/*
 * cpu.c - the this-CPU layer: the calling thread's index (CPU number or
 * concurrency ID, wrapped to the unit count) and the mode of the this_cpu
 * operations, restartable sequences or atomics.
 *
 * The operations themselves are inline in <percpu_this_cpu.h>, whose head
 * comment explains the two modes and why they never mix on a copy.  This
 * file owns the state they read (pcpu_this_cpu_) and every change to it:
 *
 *   cpu_ready          at the end of initialisation (a pool client's
 *                      ready hook): find glibc's rseq area
 *                      (os_cpu.c), pick the index field (cpu_id, or mm_cid
 *                      with PCPU_CFG_INDEX_BY_CID), register for
 *                      membarrier-rseq and open rseq mode, or start in
 *                      atomic mode when any of that is missing;
 *   enter_atomic_mode  the one-way switch: ops_nr = 0, membarrier, atomic = 1;
 *   pcpu_this_cpu_slow_ what a sequence that bailed out, or atomic-path code
 *                      in rseq mode, calls.
 *
 * State, written only here: pcpu_this_cpu_.idx_off and cpu_nr once at
 * initialisation; ops_nr at initialisation and (to 0) at the switch;
 * atomic once, to 1, after ops_nr is 0 and the membarrier returned.
 * Invariant: atomic == 1 implies ops_nr == 0 for ever after.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cpu.h"
#include "os_cpu.h"
#include "pool_init.h"

/* The architectures <percpu_rseq_ops.h> has sequences for. */
#if (defined(__x86_64__) && !defined(__ILP32__)) || \
	(defined(__aarch64__) && !defined(__AARCH64EB__) && !defined(__ILP32__))
#define HAVE_SEQUENCES 1
#else
#define HAVE_SEQUENCES 0
#endif

PCPU_PUBLIC struct pcpu_this_cpu_state_ pcpu_this_cpu_ __attribute__((aligned(64)));

static unsigned int g_nr;       /* units, once initialised (release); else 0 */
static bool g_area;             /* glibc's rseq area is registered in every thread */
static bool g_cid;              /* idx_off is mm_cid */
static bool g_opened;           /* rseq mode was opened: a switch needs membarrier */
static unsigned long g_switches;

static void cpu_ready(void)
{
	unsigned int nr = pcpu_pool.nr_cpus;
	struct os_rseq rs;
	bool area = os_rseq_probe(&rs) == 0 && rs.registered;

	g_area = area;
	g_cid = area && rs.mm_cid && (pcpu_pool.cfg.flags & PCPU_CFG_INDEX_BY_CID);
	pcpu_this_cpu_.idx_off = rs.area + (g_cid ? OS_RSEQ_MM_CID : OS_RSEQ_CPU_ID);
	if (area && HAVE_SEQUENCES && os_membarrier_rseq_register() == 0) {
		g_opened = true;
		__atomic_store_n(&pcpu_this_cpu_.ops_nr, nr, __ATOMIC_RELEASE);
	} else {
		__atomic_store_n(&pcpu_this_cpu_.atomic, 1, __ATOMIC_RELEASE);
	}
	if (area)
		__atomic_store_n(&pcpu_this_cpu_.cpu_nr, nr, __ATOMIC_RELEASE);
	/* Last: until now every slow path waits for initialisation, so
	 * nothing can have switched modes behind our back. */
	__atomic_store_n(&g_nr, nr, __ATOMIC_RELEASE);
}

/* The thread's raw index: the rseq field, else sched_getcpu(), else 0. */
static unsigned int thread_index(void)
{
	if (g_area) {
		uint32_t v = os_rseq_read(pcpu_this_cpu_.idx_off);

		if ((int32_t)v >= 0)
			return v;
	}
	int cpu = os_getcpu();

	return cpu < 0 ? 0 : (unsigned int)cpu;
}

static void die(const char *msg, size_t len)
{
	ssize_t r = write(STDERR_FILENO, msg, len);

	(void)r;
	abort();
}

/*
 * Switch the process to atomic mode; returns once it is safe to issue
 * atomic RMWs on any copy.  Async-signal-safe and idempotent: a signal
 * handler interrupting a switch in progress completes one of its own.
 */
static void enter_atomic_mode(void)
{
	__atomic_store_n(&pcpu_this_cpu_.ops_nr, 0, __ATOMIC_SEQ_CST);
	if (g_opened) {
		/* membarrier allocates a cpumask and may fail with ENOMEM;
		 * EPERM means the registration was lost (it survives fork). */
		for (int tries = 0; os_membarrier_rseq() != 0; tries++) {
			struct timespec ms = { 0, 1000000 };

			if (tries == 100) {
				static const char msg[] =
					"libpercpu: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) "
					"keeps failing: this_cpu operations cannot switch to atomic "
					"mode safely\n";
				die(msg, sizeof(msg) - 1);
			}
			if (errno == EPERM)
				(void)os_membarrier_rseq_register();
			else if (errno != EINTR)
				nanosleep(&ms, NULL);
		}
		__atomic_fetch_add(&g_switches, 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&pcpu_this_cpu_.atomic, 1, __ATOMIC_RELEASE);
}

PCPU_PUBLIC unsigned int pcpu_this_cpu_slow_(int from_rseq)
{
	if (!__atomic_load_n(&g_nr, __ATOMIC_ACQUIRE)) {
		(void)pool_ensure_init();
		if (!__atomic_load_n(&g_nr, __ATOMIC_ACQUIRE))
			return 0;       /* failed: no handle can exist, leave the mode alone */
	}
	if (!__atomic_load_n(&pcpu_this_cpu_.atomic, __ATOMIC_ACQUIRE)) {
		unsigned int nr = __atomic_load_n(&pcpu_this_cpu_.ops_nr, __ATOMIC_ACQUIRE);

		/* Bailed before initialisation, or migrated since: try again. */
		if (from_rseq && nr && os_rseq_read(pcpu_this_cpu_.idx_off) < nr)
			return PCPU_RETRY_RSEQ_;
		enter_atomic_mode();
	}
	return (pcpu_current_cpu)();
}

/* Parenthesised: percpu.h may define pcpu_current_cpu() as a macro. */
PCPU_PUBLIC unsigned int (pcpu_current_cpu)(void)
{
	unsigned int n = __atomic_load_n(&g_nr, __ATOMIC_ACQUIRE), idx;

	if (__builtin_expect(!n, 0))
		n = pool_ensure_init() ? 1 : pcpu_pool.nr_cpus;  /* 1 if that fails */
	idx = thread_index();
	return idx < n ? idx : idx % n;
}

PCPU_PUBLIC unsigned int pcpu_this_cpu_mode(void)
{
	unsigned int mode = 0;

	if (!__atomic_load_n(&g_nr, __ATOMIC_ACQUIRE))
		(void)pool_ensure_init();
	if (!__atomic_load_n(&pcpu_this_cpu_.atomic, __ATOMIC_ACQUIRE) &&
	    __atomic_load_n(&pcpu_this_cpu_.ops_nr, __ATOMIC_ACQUIRE))
		mode |= PCPU_THIS_CPU_RSEQ;
	if (g_cid)
		mode |= PCPU_THIS_CPU_CID;
	return mode;
}

int pcpu_cpu_rseq_active(void)
{
	struct os_rseq rs;

	return os_rseq_probe(&rs) == 0 && rs.registered &&
	       (int32_t)os_rseq_read(rs.area + OS_RSEQ_CPU_ID) >= 0;
}

unsigned long pcpu_cpu_switches(void)
{
	return __atomic_load_n(&g_switches, __ATOMIC_RELAXED);
}

static struct pool_client cpu_client = {
	.ready = cpu_ready,
};

__attribute__((constructor(101))) static void cpu_register(void)
{
	pool_add_client(&cpu_client);
}
