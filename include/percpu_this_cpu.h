/*
 * percpu_this_cpu.h - libpercpu's this-CPU operations and current CPU
 * index, inline.  Included by <percpu.h>; do not include it directly.
 *
 * Operations (ptr a handle of a 1, 2, 4 or 8-byte integer; read, write,
 * xchg and cmpxchg also take pointers):
 *
 *     this_cpu_read(ptr)                  the copy's value
 *     this_cpu_write(ptr, val)
 *     this_cpu_add(ptr, val)   this_cpu_sub(ptr, val)
 *     this_cpu_inc(ptr)        this_cpu_dec(ptr)
 *     this_cpu_add_return(ptr, val)       the new value
 *     this_cpu_xchg(ptr, val)             the old value
 *     this_cpu_cmpxchg(ptr, old, new)     the value found; new is stored iff
 *                                         it equalled old
 *
 * Semantics.  Each operation is one indivisible step on the copy of the CPU
 * (or, with PCPU_CFG_INDEX_BY_CID, the concurrency ID) the thread holds when
 * the step takes effect: exact under preemption, migration and signals
 * (a handler may use them too), with respect to every other this_cpu
 * operation on the same copy, from any thread.  Values are converted to the
 * copy's type first; arithmetic wraps.  No ordering beyond relaxed atomics:
 * the operations are not barriers.  A reader of another CPU's copy
 * (per_cpu_ptr, pcpu_sum) sees no torn value when the copy is naturally
 * aligned (allocate with align >= size).  A plain write through per_cpu_ptr
 * to a copy that this_cpu operations also update races with them, as in the
 * kernel: it may be lost.
 *
 * Implementation.  On x86_64 and aarch64 with glibc 2.35+ (which registers
 * every thread's rseq area) and gcc 11+ / clang 11+ (asm goto with
 * outputs), each operation is a restartable sequence: it points the area's
 * rseq_cs at a descriptor, reads the index the kernel keeps in the area,
 * checks it against pcpu_this_cpu_.ops_nr and computes the copy's address,
 * then commits with one store (on x86_64 the add is a single unlocked
 * read-modify-write instruction).  If the thread is preempted, migrated or
 * signalled before the commit, the kernel resumes it at the abort handler,
 * which restarts the sequence; after the commit it clears rseq_cs, so no
 * descriptor stays referenced by a thread after the module holding it is
 * unloaded with dlclose.  Descriptors (struct rseq_cs) are 32-byte aligned
 * in section __pcpu_rseq_cs; abort handlers live in __pcpu_rseq_abort, each
 * preceded by the 4-byte RSEQ_SIG the kernel checks.
 *
 * The atomic path.  Elsewhere (other architectures, older compilers or
 * glibc, GLIBC_TUNABLES=glibc.pthread.rseq=0, a translation unit compiled
 * with PCPU_NO_RSEQ defined) the operations are relaxed atomic
 * read-modify-writes on the chosen copy.
 *
 * Why the two paths must never mix on a copy: an rseq load/add/store is
 * indivisible only against threads on the same CPU.  An atomic RMW issued on
 * the same copy from another CPU (by a thread with no rseq area that took a
 * stale sched_getcpu(), or by a CPU whose slot is shared because it is >=
 * pcpu_nr_cpus(), or from a PCPU_NO_RSEQ unit) can fall between the load and
 * the store and be lost.  So the process is in one mode at a time:
 *
 *   rseq mode    ops_nr = number of units.  Sequences commit only when the
 *                index is below ops_nr, which they read inside the critical
 *                section.  Only threads on that index touch its copy.
 *   atomic mode  ops_nr = 0 and `atomic` = 1, sticky for the life of the
 *                process: every sequence fails its check and every
 *                operation is an atomic RMW.
 *
 * A thread that needs the atomic path in rseq mode (index >= ops_nr, no rseq
 * area, or PCPU_NO_RSEQ code) calls the library, which stores ops_nr = 0 and
 * then calls membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ): it returns
 * once every running thread of the process has restarted or left its
 * critical section, and a thread that was not running restarts on resume.
 * Every sequence that read the old ops_nr has therefore either committed or
 * will restart and see 0, before the caller's first atomic RMW.  Only then
 * is `atomic` set; threads that see it skip the sequence's library call.
 * Where membarrier-rseq is missing (Linux < 5.10, seccomp) the switch could
 * not be made safe, so the process starts in atomic mode.
 *
 * pcpu_current_cpu() reads the same index (cpu_id, or mm_cid with
 * PCPU_CFG_INDEX_BY_CID) from the rseq area, wrapped below pcpu_nr_cpus().
 */
#ifndef PERCPU_THIS_CPU_H
#define PERCPU_THIS_CPU_H

#ifndef PERCPU_H
#error "include <percpu.h>, not <percpu_this_cpu.h>"
#endif

/* Shared with the library (src/cpu.c), which writes it: at initialisation,
 * and once more when switching to atomic mode. */
struct pcpu_this_cpu_state_ {
	intptr_t idx_off;       /* thread-pointer offset of the index: rseq cpu_id or mm_cid */
	unsigned int cpu_nr;    /* units once idx_off is readable, else 0 */
	unsigned int ops_nr;    /* units in rseq mode, else 0 (atomic mode, or not initialised) */
	unsigned int atomic;    /* 1 in atomic mode, once it is safe: sticky */
};
PCPU_PUBLIC extern struct pcpu_this_cpu_state_ pcpu_this_cpu_;

/*
 * The slow path: initialises if needed.  from_rseq != 0 (a sequence bailed
 * out): returns PCPU_RETRY_RSEQ_ if the sequence should run again, else the
 * index for an atomic RMW.  from_rseq == 0 (atomic-path code): switches the
 * process to atomic mode if it is not, returns the index.
 */
PCPU_PUBLIC unsigned int pcpu_this_cpu_slow_(int from_rseq);
#define PCPU_RETRY_RSEQ_ (~0u)

#define PCPU_THIS_CPU_RSEQ 0x1u      /* this_cpu operations use restartable sequences */
#define PCPU_THIS_CPU_CID  0x2u      /* copies are indexed by concurrency ID */

/*
 * How this_cpu operations run now: PCPU_THIS_CPU_RSEQ if they are
 * restartable sequences (0: atomic mode, see above), PCPU_THIS_CPU_CID if
 * pcpu_current_cpu() and the operations use the rseq mm_cid.  Initialises
 * the allocator with defaults if nothing else has.  Atomic mode is sticky,
 * so once the RSEQ bit is clear it stays clear.
 */
PCPU_PUBLIC unsigned int pcpu_this_cpu_mode(void);

/* ---- the current index, inline ------------------------------------------ */

#if defined(__linux__) && defined(__GLIBC__) && defined(__has_include) && \
	((defined(__x86_64__) && !defined(__ILP32__)) ||                 \
	 (defined(__aarch64__) && !defined(__AARCH64EB__) && !defined(__ILP32__)))
#if __has_include(<sys/rseq.h>) && \
	(__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#include <sys/rseq.h>
#if defined(RSEQ_SIG)
#define PCPU_HAVE_RSEQ_ABI_ 1
#endif
#endif
#endif

#if defined(PCPU_HAVE_RSEQ_ABI_) && !defined(PCPU_NO_INLINE_CPU)
#define PCPU_HAVE_INLINE_CPU 1

/* The calling thread's u32 at thread-pointer offset off. */
static __inline__ unsigned int pcpu_tp_u32_(intptr_t off)
{
	unsigned int v;
#if defined(__x86_64__)
	__asm__ __volatile__("movl %%fs:(%1), %0" : "=r"(v) : "r"(off));
#else
	v = *(volatile const unsigned int *)((const char *)__builtin_thread_pointer() + off);
#endif
	return v;
}

static __inline__ unsigned int pcpu_current_cpu_inline_(void)
{
	unsigned int n = __atomic_load_n(&pcpu_this_cpu_.cpu_nr, __ATOMIC_RELAXED);
	/* Before initialisation idx_off is 0, which is readable memory. */
	unsigned int idx = pcpu_tp_u32_(pcpu_this_cpu_.idx_off);

	if (__builtin_expect(idx < n, 1))
		return idx;
	return (pcpu_current_cpu)();
}
#define pcpu_current_cpu() pcpu_current_cpu_inline_()
#endif

/* ---- type checks and conversions ---------------------------------------- */

#ifdef __cplusplus
#define PCPU_TC_ASSERT_(cond, msg) static_assert(cond, msg)
#else
#define PCPU_TC_ASSERT_(cond, msg) _Static_assert(cond, msg)
#endif
#define PCPU_TC_SIZE_OK_(p) \
	(sizeof(*(p)) == 1 || sizeof(*(p)) == 2 || sizeof(*(p)) == 4 || sizeof(*(p)) == 8)
/* __builtin_classify_type: 1 integer, 2 char, 3 enum, 4 bool, 5 pointer. */
#define PCPU_TC_INT_(p)                                                             \
	PCPU_TC_ASSERT_(PCPU_TC_SIZE_OK_(p) && __builtin_classify_type(*(p)) >= 1 &&  \
				__builtin_classify_type(*(p)) <= 3,                   \
			"this_cpu arithmetic needs a 1, 2, 4 or 8-byte integer")
#define PCPU_TC_SCALAR_(p)                                                          \
	PCPU_TC_ASSERT_(PCPU_TC_SIZE_OK_(p) && __builtin_classify_type(*(p)) >= 1 &&  \
				__builtin_classify_type(*(p)) <= 5,                   \
			"this_cpu operations need a 1, 2, 4 or 8-byte integer or pointer")

/* this_cpu_read is a relaxed load on either path: one load is indivisible. */
#define this_cpu_read(ptr)                                                          \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_rp_ = (ptr);                                   \
		PCPU_TC_SCALAR_(pcpu_rp_);                                          \
		__atomic_load_n(this_cpu_ptr(pcpu_rp_), __ATOMIC_RELAXED);          \
	})
#define this_cpu_inc(ptr) this_cpu_add((ptr), 1)
#define this_cpu_dec(ptr) this_cpu_sub((ptr), 1)

/* The index for an atomic RMW: one predictable branch in atomic mode. */
static __inline__ unsigned int pcpu_atomic_index_(void)
{
	if (__builtin_expect(__atomic_load_n(&pcpu_this_cpu_.atomic, __ATOMIC_ACQUIRE) != 0, 1))
		return pcpu_current_cpu();
	return pcpu_this_cpu_slow_(0);
}

#if defined(PCPU_HAVE_RSEQ_ABI_) && !defined(PCPU_NO_RSEQ)
#if defined(__clang__)
#if defined(__has_extension)
#if __has_extension(gnu_asm_goto_with_outputs)
#define PCPU_HAVE_RSEQ_OPS 1
#endif
#endif
#elif defined(__GNUC__) && __GNUC__ >= 11
#define PCPU_HAVE_RSEQ_OPS 1
#endif
#endif

#ifdef PCPU_HAVE_RSEQ_OPS
#include "percpu_rseq_ops.h"
#else
/* ---- the atomic path, typed --------------------------------------------- */

#define PCPU_TC_COPY_(p) ((__typeof__(p))pcpu_ptr((p), pcpu_atomic_index_()))

#define this_cpu_write(ptr, val)                                                    \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_p_ = (ptr);                                    \
		PCPU_TC_SCALAR_(pcpu_p_);                                           \
		__atomic_store_n(PCPU_TC_COPY_(pcpu_p_), (__typeof__(*pcpu_p_))(val), \
				 __ATOMIC_RELAXED);                                 \
	})
#define this_cpu_add(ptr, val)                                                      \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_p_ = (ptr);                                    \
		PCPU_TC_INT_(pcpu_p_);                                              \
		(void)__atomic_fetch_add(PCPU_TC_COPY_(pcpu_p_), (__typeof__(*pcpu_p_))(val), \
					 __ATOMIC_RELAXED);                         \
	})
#define this_cpu_sub(ptr, val)                                                      \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_p_ = (ptr);                                    \
		PCPU_TC_INT_(pcpu_p_);                                              \
		(void)__atomic_fetch_sub(PCPU_TC_COPY_(pcpu_p_), (__typeof__(*pcpu_p_))(val), \
					 __ATOMIC_RELAXED);                         \
	})
#define this_cpu_add_return(ptr, val)                                               \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_p_ = (ptr);                                    \
		PCPU_TC_INT_(pcpu_p_);                                              \
		__atomic_add_fetch(PCPU_TC_COPY_(pcpu_p_), (__typeof__(*pcpu_p_))(val), \
				   __ATOMIC_RELAXED);                               \
	})
#define this_cpu_xchg(ptr, val)                                                     \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_p_ = (ptr);                                    \
		PCPU_TC_SCALAR_(pcpu_p_);                                           \
		__atomic_exchange_n(PCPU_TC_COPY_(pcpu_p_), (__typeof__(*pcpu_p_))(val), \
				    __ATOMIC_RELAXED);                              \
	})
#define this_cpu_cmpxchg(ptr, old, new)                                             \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_p_ = (ptr);                                    \
		__typeof__(*pcpu_p_) pcpu_o_ = (__typeof__(*pcpu_p_))(old);         \
		PCPU_TC_SCALAR_(pcpu_p_);                                           \
		(void)__atomic_compare_exchange_n(PCPU_TC_COPY_(pcpu_p_), &pcpu_o_,  \
						  (__typeof__(*pcpu_p_))(new), 0,    \
						  __ATOMIC_RELAXED, __ATOMIC_RELAXED); \
		pcpu_o_;                                                            \
	})
#endif /* PCPU_HAVE_RSEQ_OPS */

#endif /* PERCPU_THIS_CPU_H */
