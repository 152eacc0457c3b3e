/*
 * cpu.c - the calling thread's CPU number, wrapped to the unit count.
 *
 * Since glibc 2.35 every thread created by the C library has a
 * restartable-sequences (rseq) area registered with the kernel, at the
 * thread pointer plus __rseq_offset; the kernel writes the current CPU into
 * its cpu_id field whenever the thread returns to user space on a CPU
 * different from the recorded one.  Reading it is a plain load.  An area that
 * is not registered (tunable glibc.pthread.rseq=0, an old kernel, a thread
 * not made by glibc) holds a negative cpu_id; then sched_getcpu() answers.
 *
 * percpu.h inlines the fast path (cpu_id below the unit count) and calls
 * pcpu_current_cpu() for everything else; pcpu_nr_cpus_ready_ stays 0 until
 * the allocator is initialised so the first call initialises it here.
 */
#define _GNU_SOURCE   /* sched_getcpu */
#include <sched.h>
#include <stddef.h>

#include "cpu.h"
#include "pool_init.h"

#if defined(__has_include)
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#if defined(RSEQ_SIG) && (defined(__x86_64__) || defined(__aarch64__) || defined(__i386__) || \
			  defined(__arm__) || defined(__powerpc64__) || defined(__s390x__) || \
			  defined(__riscv))
#define HAVE_RSEQ_AREA 1
#endif
#endif
#endif

/* cpu_id from the thread's rseq area, or -1 if there is none registered. */
static int rseq_cpu(void)
{
#ifdef HAVE_RSEQ_AREA
	if (__rseq_size >= offsetof(struct rseq, cpu_id) + sizeof(uint32_t)) {
		const struct rseq *rs = (const struct rseq *)
			((const char *)__builtin_thread_pointer() + __rseq_offset);
		int cpu = (int)__atomic_load_n(&rs->cpu_id, __ATOMIC_RELAXED);

		if (cpu >= 0)
			return cpu;
	}
#endif
	return -1;
}

int pcpu_cpu_rseq_active(void)
{
	return rseq_cpu() >= 0;
}

/* Parenthesised: percpu.h may define pcpu_current_cpu() as a macro. */
PCPU_PUBLIC unsigned int (pcpu_current_cpu)(void)
{
	unsigned int n = __atomic_load_n(&pcpu_nr_cpus_ready_, __ATOMIC_ACQUIRE);
	int cpu;

	if (__builtin_expect(!n, 0))
		n = pcpu_nr_cpus();     /* initialises; 1 if that fails */
	cpu = rseq_cpu();
	if (cpu < 0)
		cpu = sched_getcpu();
	if (cpu < 0)
		cpu = 0;
	return (unsigned)cpu < n ? (unsigned)cpu : (unsigned)cpu % n;
}
