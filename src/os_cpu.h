/*
 * os_cpu.h - the operating-system layer for "which CPU am I on": the
 * thread's restartable-sequences (rseq) area, the membarrier system call and
 * the auxiliary vector.
 *
 * glibc 2.35 and later registers one rseq area per thread (at a fixed offset
 * from the thread pointer, the same for every thread) unless the user turned
 * it off with GLIBC_TUNABLES=glibc.pthread.rseq=0; the kernel then keeps the
 * thread's CPU number (and, since Linux 6.3, its concurrency ID mm_cid) in
 * it.  libpercpu never registers an area of its own: a thread has at most
 * one, glibc owns it where it exists, and glibc aborts the process when it
 * cannot register a new thread, so with __rseq_size > 0 every thread created
 * through pthread_create has one.
 *
 * Everything here is thread-safe and async-signal-safe after os_rseq_probe()
 * ran once, and none of it prints: failures are return values with errno.
 * Test hooks (os_cpu_test_set) hide features to exercise the fallbacks.
 */
#ifndef PCPU_OS_CPU_H
#define PCPU_OS_CPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Offsets of fields inside struct rseq (the kernel's ABI, <linux/rseq.h>). */
#define OS_RSEQ_CPU_ID 4        /* u32 cpu_id: current CPU, or (u32)-1 / -2 if unregistered */
#define OS_RSEQ_CS 8            /* u64 rseq_cs: the active critical section's descriptor */
#define OS_RSEQ_MM_CID 24       /* u32 mm_cid: concurrency ID (Linux 6.3+) */

/* What the process has (the same for every thread). */
struct os_rseq {
	bool registered;        /* glibc registered an area for the threads */
	bool mm_cid;            /* the kernel keeps mm_cid up to date in it */
	ptrdiff_t area;         /* offset of the area from the thread pointer */
	unsigned int size;      /* bytes of the area the kernel keeps up to date */
};

/*
 * Find the rseq area glibc registered.  The kernel keeps up to date the
 * fields inside the smaller of the registered length and the feature size
 * it announces (getauxval(AT_RSEQ_FEATURE_SIZE), 20 bytes if absent).
 * glibc 2.35-2.39 always registered 32 bytes while publishing __rseq_size
 * as 32 or 20; later versions publish the registered length.  Returns 0,
 * or -1 with errno ENOSYS when the library was built without <sys/rseq.h>
 * (out is then all zero).
 */
int os_rseq_probe(struct os_rseq *out);

/* The calling thread's u32 at offset off from its thread pointer: a field
 * of its rseq area (os_rseq.area + OS_RSEQ_CPU_ID, say). */
uint32_t os_rseq_read(ptrdiff_t off);

/* The calling thread's CPU from the kernel (sched_getcpu), or -1. */
int os_getcpu(void);

/*
 * membarrier(2) for rseq.  os_membarrier_rseq_register() must succeed once
 * per process (the registration survives fork, not exec) before
 * os_membarrier_rseq() may be used; the latter returns once every thread of
 * the process that was running has left or restarted its rseq critical
 * section, so none of them commits a value it read before the call.  Both
 * return 0, or -1 with errno (ENOSYS or EINVAL: the kernel lacks it, Linux
 * < 5.10; EPERM: not registered or refused by a seccomp filter).
 */
int os_membarrier_rseq_register(void);
int os_membarrier_rseq(void);
/* The same for the threads running on one CPU only (all of them where the
 * kernel cannot target one CPU). */
int os_membarrier_rseq_cpu(unsigned int cpu);

/* Test hooks: hide features from the probes above (a bitmask of OS_CPU_*,
 * replacing the previous one).  OS_CPU_FAKE_RSEQ makes os_rseq_probe()
 * report glibc's unregistered area as registered, so a single-threaded test
 * can run the rseq code paths where the kernel offers none (qemu-user); the
 * test writes the area's fields itself. */
#define OS_CPU_HIDE_RSEQ       0x1u   /* as if glibc registered no area */
#define OS_CPU_HIDE_MM_CID     0x2u   /* as if the kernel had no mm_cid */
#define OS_CPU_HIDE_MEMBARRIER 0x4u   /* as if membarrier-rseq were missing */
#define OS_CPU_FAKE_RSEQ       0x8u   /* see above; only where nothing is registered */
void os_cpu_test_set(unsigned int hide);
/* OS_CPU_FAKE_RSEQ is set: the area os_rseq_probe() reports is not the
 * kernel's (no sequence in it is ever restarted). */
bool os_rseq_faked(void);

#endif
