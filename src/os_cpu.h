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
static inline uint32_t os_rseq_read(ptrdiff_t off)
{
	const char *tp = (const char *)__builtin_thread_pointer();

	return __atomic_load_n((const uint32_t *)(tp + off), __ATOMIC_RELAXED);
}

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

#if defined(__x86_64__) && !defined(__ILP32__)
#define OS_RSEQ_HAVE_TRYLOCK 1
/*
 * Try to lock, with a restartable sequence, element `cpu` of an array of
 * nr elements of `stride` bytes at base, cpu being the CPU the thread runs
 * on (the cpu_id field of its rseq area, `area` bytes from the thread
 * pointer).  Each element starts with two ints: a lock word and a count of
 * lockers elsewhere that want it.  The sequence checks both are 0, then
 * stores 1 to the lock word as its commit; it restarts when the thread is
 * preempted or migrated before that.  Returns the element, or NULL when
 * the CPU has none, or either word is not 0.  The descriptor and the abort
 * handler follow <percpu_rseq_ops.h>.
 */
static inline __attribute__((always_inline)) void *
os_rseq_trylock_here(ptrdiff_t area, char *base, size_t stride, unsigned int nr)
{
	uintptr_t cs, at;

	__asm__ __volatile__ goto(
		"0:\n\t"
		"leaq 3f(%%rip), %[cs]\n\t"
		"movq %[cs], %%fs:8(%[area])\n"
		"1:\n\t"
		"movl %%fs:4(%[area]), %k[at]\n\t"
		"cmpl %[nr], %k[at]\n\t"
		"jae %l[busy]\n\t"
		"imulq %[stride], %q[at]\n\t"
		"addq %[base], %q[at]\n\t"
		"cmpl $0, 4(%q[at])\n\t"
		"jne %l[busy]\n\t"
		"cmpl $0, (%q[at])\n\t"
		"jne %l[busy]\n\t"
		"movl $1, (%q[at])\n"
		"2:\n\t"
		"movq $0, %%fs:8(%[area])\n\t"
		".pushsection __pcpu_rseq_cs, \"aw\"\n\t"
		".balign 32\n"
		"3:\n\t"
		".long 0, 0\n\t"
		".quad 1b, 2b - 1b, 4f\n\t"
		".popsection\n\t"
		".pushsection __pcpu_rseq_abort, \"ax\"\n\t"
		".byte 0x0f, 0xb9, 0x3d\n\t.long 0x53053053\n"
		"4:\n\t"
		"jmp 0b\n\t"
		".popsection\n"
		: [cs] "=&r"(cs), [at] "=&r"(at)
		: [area] "r"(area), [nr] "r"(nr), [stride] "r"(stride), [base] "r"(base)
		: "memory", "cc"
		: busy);
	if (!at)                /* base + cpu x stride: tell the compiler */
		__builtin_unreachable();
	return (void *)at;
busy:
	__asm__ __volatile__("movq $0, %%fs:8(%0)" : : "r"(area) : "memory");
	return NULL;
}
#else
#define OS_RSEQ_HAVE_TRYLOCK 0
static inline void *os_rseq_trylock_here(ptrdiff_t area, char *base, size_t stride, unsigned int nr)
{
	(void)area, (void)base, (void)stride, (void)nr;
	return NULL;
}
#endif

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
