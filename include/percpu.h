/*
 * percpu.h - libpercpu, a per-CPU memory allocator for Linux programs.
 *
 * One allocation of N bytes reserves N bytes in every CPU's unit.  The
 * allocator returns a *handle* (marked __percpu); per_cpu_ptr(handle, cpu)
 * gives that CPU's copy.  A handle is not a pointer to memory: it points
 * into a guard range that is never mapped, so dereferencing it directly
 * faults at once instead of silently touching one CPU's copy.
 *
 * Everything here is thread-safe.  pcpu_ptr() and the per_cpu_ptr /
 * this_cpu_* macros take no lock.  After fork() the child keeps every
 * handle valid and may allocate and free.  The allocator initialises itself
 * on first use; call pcpu_init() first to configure it.
 *
 * This is the only public header of the library.
 */
#ifndef PERCPU_H
#define PERCPU_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef __percpu
#define __percpu                     /* marks a per-CPU handle: never dereference it */
#endif

#define PCPU_MIN_ALLOC_SIZE 4        /* allocation granule, bytes */
#define PCPU_MAX_CPUS 4096           /* upper bound of pcpu_nr_cpus() */

#if defined(__GNUC__)
#define PCPU_PUBLIC __attribute__((visibility("default")))
#else
#define PCPU_PUBLIC
#endif

/* ---- configuration ------------------------------------------------------ */

#define PCPU_CFG_NO_BALANCER 0x1u    /* no background balancer thread */

/*
 * Configuration for pcpu_init().  Zero means "default" for every field:
 *   nr_cpus        CPU slots (units): the machine's possible CPUs;
 *   reserved_size  first chunk's reserved area (PCPU_RESERVED allocations and
 *                  shared libraries' static per-CPU variables): 8 KiB;
 *   dyn_size       first chunk's dynamic area: 20 KiB;
 *   min_unit_size  lower bound of unit_size: 256 KiB (the kernel's usual unit
 *                  on x86_64; only the first chunk's used part is populated
 *                  up front, dynamic chunks are populated on demand);
 *   atom_size      allocation atom for unit placement: the page size;
 *   cpu_distance   NUMA distance between CPUs: read from sysfs;
 *   flags          PCPU_CFG_*.
 * Fields after `flags` are libpercpu extensions (also zero = default):
 *   addr_space     bytes of address space reserved for chunks: the largest
 *                  of 64 GiB and 256 chunks, shrunk if the system refuses;
 *                  allocations fail with ENOMEM when it is exhausted
 *                  (environment: PCPU_ADDR_SPACE, bytes with k/m/g suffix);
 *   empty_pop_low  the balancer populates when fewer empty populated pages
 *   empty_pop_high than empty_pop_low remain, up to empty_pop_high: 2 and 4
 *                  (the kernel's), raised to keep at least 1/64 and 1/32 of
 *                  a chunk's pages when chunks are large (environment:
 *                  PCPU_EMPTY_POP_LOW, PCPU_EMPTY_POP_HIGH);
 *   reclaim_frac   a chunk is isolated for reclaim by a free that leaves at
 *                  least 1/reclaim_frac of its pages empty and populated
 *                  while the pool stays above the high mark without them:
 *                  4 (environment: PCPU_RECLAIM_FRAC).
 */
struct pcpu_config {
	unsigned int nr_cpus;
	size_t reserved_size;
	size_t dyn_size;
	size_t min_unit_size;
	size_t atom_size;
	int (*cpu_distance)(unsigned int from, unsigned int to);
	unsigned int flags;
	size_t addr_space;
	unsigned int empty_pop_low;
	unsigned int empty_pop_high;
	unsigned int reclaim_frac;
};

/*
 * Initialise with cfg (NULL: defaults).  Optional: every other function
 * initialises with defaults on first use.  Returns 0, or -1 with errno:
 * EBUSY if the allocator is already initialised, EINVAL for an impossible
 * configuration, ENOMEM if the first chunk cannot be set up.
 */
PCPU_PUBLIC int pcpu_init(const struct pcpu_config *cfg);

/* ---- allocation --------------------------------------------------------- */

#define PCPU_ATOMIC   0x1u           /* no blocking, no syscalls, populated memory only */
#define PCPU_RESERVED 0x2u           /* serve from the first chunk's reserved area */
#define PCPU_NOWARN   0x4u           /* no diagnostic line on failure */

/*
 * Allocate size bytes (rounded up to a multiple of 4) aligned to align
 * (rounded up to 4; a power of two no larger than the page size) in every
 * CPU's unit, zeroed in every unit.  Returns a handle, or NULL with errno:
 * EINVAL for a bad size, alignment or flag (one rate-limited line on
 * stderr unless PCPU_NOWARN), ENOMEM when memory or address space runs out
 * (or, with PCPU_ATOMIC, when no populated space is free: the balancer is
 * then woken to refill).  The allocator is unchanged by a failure.
 */
PCPU_PUBLIC void __percpu *pcpu_alloc(size_t size, size_t align);
PCPU_PUBLIC void __percpu *pcpu_alloc_flags(size_t size, size_t align, unsigned int flags);

/*
 * Free a handle from pcpu_alloc*.  NULL is a no-op.  Anything that is not a
 * live allocation (never allocated, interior, already freed, a static
 * variable, garbage) is detected before any state changes: a message naming
 * the pointer goes to stderr and the process aborts.
 */
PCPU_PUBLIC void pcpu_free(void __percpu *ptr);

/* Size of a live allocation, rounded up to 4; validates like pcpu_free. */
PCPU_PUBLIC size_t pcpu_alloc_size(const void __percpu *ptr);

/* ---- CPUs and per-CPU pointers ------------------------------------------ */

/* Number of CPU slots (units); CPU numbers are 0 .. pcpu_nr_cpus() - 1. */
PCPU_PUBLIC unsigned int pcpu_nr_cpus(void);

/* The calling thread's CPU, wrapped to < pcpu_nr_cpus(). */
PCPU_PUBLIC unsigned int pcpu_current_cpu(void);

/* Byte distance from a handle to each CPU's copy; set up at initialisation. */
PCPU_PUBLIC extern uintptr_t pcpu_cpu_offset[PCPU_MAX_CPUS];

/* CPU cpu's copy of ptr: one table load and one add, no lock.  cpu must be
 * < pcpu_nr_cpus() and ptr a live handle (or a static variable's). */
static inline void *pcpu_ptr(const void __percpu *ptr, unsigned int cpu)
{
	return (void *)((uintptr_t)ptr + pcpu_cpu_offset[cpu]);
}

/* Typed: the result has the handle's type. */
#define per_cpu_ptr(ptr, cpu) ((__typeof__(ptr))pcpu_ptr((ptr), (cpu)))
#define this_cpu_ptr(ptr) per_cpu_ptr((ptr), pcpu_current_cpu())

/*
 * Add to the calling CPU's copy of an integer.  Correct even if the thread
 * migrates between choosing the CPU and the update: the update is an atomic
 * read-modify-write on the chosen copy (relaxed ordering).
 */
#define this_cpu_add(ptr, val) \
	((void)__atomic_fetch_add(this_cpu_ptr(ptr), (val), __ATOMIC_RELAXED))
#define this_cpu_sub(ptr, val) \
	((void)__atomic_fetch_sub(this_cpu_ptr(ptr), (val), __ATOMIC_RELAXED))
#define this_cpu_inc(ptr) this_cpu_add((ptr), 1)
#define this_cpu_dec(ptr) this_cpu_sub((ptr), 1)
/* Read the calling CPU's copy (atomically, relaxed). */
#define this_cpu_read(ptr) __atomic_load_n(this_cpu_ptr(ptr), __ATOMIC_RELAXED)

/* for (cpu = 0; cpu < pcpu_nr_cpus(); cpu++) */
#define pcpu_for_each_cpu(cpu) \
	for ((cpu) = 0; (cpu) < pcpu_nr_cpus(); (cpu)++)

/* Sum of an integer per-CPU counter over every CPU (relaxed loads). */
#define pcpu_sum(ptr)                                                        \
	__extension__({                                                      \
		__typeof__(*(ptr)) pcpu_sum_total_ = 0;                      \
		unsigned int pcpu_sum_cpu_;                                  \
		pcpu_for_each_cpu(pcpu_sum_cpu_)                             \
			pcpu_sum_total_ += __atomic_load_n(                  \
				per_cpu_ptr((ptr), pcpu_sum_cpu_), __ATOMIC_RELAXED); \
		pcpu_sum_total_;                                             \
	})

/* ---- observability ------------------------------------------------------ */

struct pcpu_stats {
	/* allocation counters */
	uint64_t nr_alloc;            /* successful allocations, ever */
	uint64_t nr_dealloc;          /* frees, ever */
	uint64_t nr_cur_alloc;        /* live allocations */
	uint64_t nr_max_alloc;        /* most live allocations at once */
	uint64_t nr_alloc_fail;       /* failed allocations */
	uint64_t nr_atomic_fail;      /* failed PCPU_ATOMIC allocations */
	uint32_t nr_chunks;           /* dynamic chunks now */
	uint32_t nr_max_chunks;       /* most dynamic chunks at once */
	size_t min_alloc_size;        /* smallest allocation served, bytes */
	size_t max_alloc_size;        /* largest allocation served, bytes */
	/* memory */
	uint64_t nr_empty_pop_pages;  /* populated pages with nothing allocated */
	uint64_t nr_populated_pages;  /* populated pages over all chunks, per unit */
	uint64_t nr_chunks_created;
	uint64_t nr_chunks_destroyed;
	uint64_t nr_pages_populated;  /* population events, pages, ever */
	uint64_t nr_pages_depopulated;
	uint64_t nr_balance_passes;
	uint64_t nr_balance_populated;   /* pages populated by the balancer */
	uint64_t nr_balance_depopulated; /* pages depopulated by the balancer */
	/* layout */
	unsigned int nr_units;
	unsigned int nr_groups;
	size_t unit_size;
	size_t static_size;
	size_t reserved_size;
	size_t dyn_size;
	size_t atom_size;
	size_t alloc_size;
	size_t page_size;
};

/* Fill *out; 0, or -1 with errno. */
PCPU_PUBLIC int pcpu_stats_get(struct pcpu_stats *out);
/* Human report like the kernel's percpu_stats: layout, totals, one section per chunk. */
PCPU_PUBLIC void pcpu_stats_print(FILE *out);
/* Unit / group layout like the kernel's boot-time alloc-info dump. */
PCPU_PUBLIC void pcpu_layout_print(FILE *out);
/* One balance pass, synchronously: 0, or -1 with errno. */
PCPU_PUBLIC int pcpu_balance(void);
/* Check every invariant of every chunk: 0, or -1 with a report on stderr. */
PCPU_PUBLIC int pcpu_verify(void);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_H */
