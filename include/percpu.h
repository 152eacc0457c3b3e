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

/* ---- version ------------------------------------------------------------ */

/*
 * The version this header belongs to.  PCPU_VERSION is one comparable
 * number, major * 10000 + minor * 100 + patch (minor and patch stay below
 * 100): 0.1.0 is 100, 1.2.3 would be 10203.  The same version is the
 * pkg-config and CMake package version, and the major number is the shared
 * library's SONAME (libpercpu.so.MAJOR).
 */
#define PCPU_VERSION_MAJOR 0
#define PCPU_VERSION_MINOR 1
#define PCPU_VERSION_PATCH 0
#define PCPU_VERSION \
	(PCPU_VERSION_MAJOR * 10000 + PCPU_VERSION_MINOR * 100 + PCPU_VERSION_PATCH)

/*
 * PCPU_VERSION of the library loaded at run time, which may be newer than
 * the header the program was compiled with.  Needs no initialisation.
 */
PCPU_PUBLIC int pcpu_version(void);

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

/*
 * The calling thread's CPU, wrapped to < pcpu_nr_cpus(): on a machine with
 * more CPUs than units, CPU c uses slot c % pcpu_nr_cpus().  Initialises the
 * allocator with defaults if nothing else has.  The answer may be stale as
 * soon as it is returned (threads migrate): use it to pick a copy, never for
 * mutual exclusion.
 *
 * Where glibc registered the thread's restartable-sequences area (glibc 2.35
 * or later on Linux 4.18 or later), the kernel keeps the current CPU number
 * there; the inline version below reads it with a few loads and no call.
 * It falls back to the library function when that number is unusable (no
 * registration, outside the unit range, allocator not yet initialised),
 * which reads the area again or calls sched_getcpu().  Define
 * PCPU_NO_INLINE_CPU before including this header to always call the
 * library; (pcpu_current_cpu)() does so for one call.
 */
PCPU_PUBLIC unsigned int pcpu_current_cpu(void);

/* Internal (the inline fast path): pcpu_nr_cpus() once initialised, else 0. */
PCPU_PUBLIC extern unsigned int pcpu_nr_cpus_ready_;

#if !defined(PCPU_NO_INLINE_CPU) && defined(__linux__) && defined(__GLIBC__) && \
	defined(__has_include) && (defined(__x86_64__) || defined(__aarch64__))
#if __has_include(<sys/rseq.h>) && \
	(__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#include <sys/rseq.h>
#if defined(RSEQ_SIG)
#define PCPU_HAVE_INLINE_CPU 1

static inline unsigned int pcpu_current_cpu_inline_(void)
{
	/* glibc marks an unregistered area with a negative cpu_id, which is
	 * huge as an unsigned number and so takes the slow path. */
	const struct rseq *rs = (const struct rseq *)
		((const char *)__builtin_thread_pointer() + __rseq_offset);
	unsigned int cpu = __atomic_load_n(&rs->cpu_id, __ATOMIC_RELAXED);

	if (__builtin_expect(cpu < __atomic_load_n(&pcpu_nr_cpus_ready_, __ATOMIC_RELAXED), 1))
		return cpu;
	return (pcpu_current_cpu)();
}
#define pcpu_current_cpu() pcpu_current_cpu_inline_()
#endif /* RSEQ_SIG */
#endif /* sys/rseq.h */
#endif /* inline CPU number */

/* Byte distance from a handle to each CPU's copy; set up at initialisation. */
PCPU_PUBLIC extern uintptr_t pcpu_cpu_offset[PCPU_MAX_CPUS];

/* CPU cpu's copy of ptr: one table load and one add, no lock.  cpu must be
 * < pcpu_nr_cpus() and ptr a live handle (or a static variable's). */
static inline void *pcpu_ptr(const void __percpu *ptr, unsigned int cpu)
{
	return (void *)((uintptr_t)ptr + pcpu_cpu_offset[cpu]);
}

/*
 * True if addr lies inside a unit of a chunk: inside some CPU's copy of the
 * per-CPU memory (a per_cpu_ptr() result, say).  Handles themselves are not
 * (they point into the guard range).  False before initialisation.
 */
PCPU_PUBLIC int pcpu_is_percpu_addr(const void *addr);

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

/* ---- static per-CPU variables ------------------------------------------- */

/*
 * PCPU_DEFINE(type, name) defines a per-CPU variable at file scope of a
 * program or shared library (loaded at start-up or with dlopen).  An
 * initialiser may follow; every CPU's copy starts with its value:
 *
 *     PCPU_DEFINE(long, hits) = 1;
 *     PCPU_DEFINE_STATIC(struct conn_stats, cstats) = { .min_rtt = ~0u };
 *
 *     this_cpu_inc(PCPU_VAR(hits));
 *     per_cpu_ptr(PCPU_VAR(cstats), cpu)->drops++;
 *     long total = pcpu_sum(PCPU_VAR(hits));
 *
 * PCPU_VAR(name) is the variable's handle, of type `type __percpu *`, used
 * like a pcpu_alloc() handle (never freed: pcpu_free and pcpu_alloc_size
 * abort on it).  `name` itself is not an object, so `hits++` does not
 * compile.  The definition only makes a template of the initial value in
 * the module's "pcpu_tmpl" section; writing the template changes no copy.
 *
 * Placement, as the kernel does for its built-in code and its modules: the
 * main program's variables fill the first chunk's static area; a shared
 * library's are one block in the first chunk's reserved area
 * (pcpu_config.reserved_size, 8 KiB by default), taken when the library is
 * loaded and given back when dlclose unloads it.  If the reserved area has
 * no room, one line naming the library and the sizes goes to stderr (at
 * load time, or at initialisation for a library loaded before it) and the
 * library's handles point into never-mapped address space, so any use
 * faults.  If a library's constructor initialises the allocator before the
 * program's constructors run, the program's variables are placed like a
 * library's.
 *
 * Loading only records a module; the allocator is not initialised behind the
 * caller's back, so pcpu_init(&cfg) first thing in main still applies.  The
 * first use of a PCPU_VAR (or any other call) initialises with defaults.
 *
 * Rules: at file scope only; not const; each variable is private to the
 * module (program or library) that defines it: PCPU_DECLARE serves the
 * other files of that module, and a library shares a variable with others
 * by exporting a function that returns PCPU_VAR(name).  For alignment above
 * the type's own, use an aligned type (a typedef with aligned(N), N at most
 * the page size), not an attribute after the name.
 */
#define PCPU_DEFINE(type, name) \
	PCPU_DEFINE_HOOKS_(type, name) \
	__typeof__(type) pcpu_tmpl_##name \
		__attribute__((section("pcpu_tmpl"), used, visibility("hidden")))
#define PCPU_DEFINE_STATIC(type, name) \
	PCPU_DEFINE_HOOKS_(type, name) \
	static __typeof__(type) pcpu_tmpl_##name __attribute__((section("pcpu_tmpl"), used))
#define PCPU_DECLARE(type, name) \
	extern __typeof__(type) pcpu_tmpl_##name __attribute__((visibility("hidden")))
#define PCPU_VAR(name) \
	((__typeof__(pcpu_tmpl_##name) __percpu *)((uintptr_t)&pcpu_tmpl_##name + pcpu_module_bias_()))

/*
 * Internals of the macros above.  Every module has one hidden struct
 * pcpu_module whose `bias` turns a template address into its handle:
 * handle = template address + bias.  A constructor registers the module
 * once (the first of its variables' constructors to run does it), a
 * destructor unregisters it.  The linker provides __start_/__stop_ symbols
 * for the template section and for a section recording each variable's
 * alignment.  A PCPU_VAR evaluated before the module's constructor ran (or
 * before initialisation) takes the slow path, which does both.
 */
struct pcpu_module {
	uintptr_t bias;      /* 0 until the module's variables are placed */
	void *priv;          /* libpercpu's record of the module */
	unsigned int state;  /* 0 new, 1 registered, 2 unregistered */
};

PCPU_PUBLIC int pcpu_module_register(struct pcpu_module *mod, char *start, char *stop,
				     const unsigned int *align_start, const unsigned int *align_stop);
PCPU_PUBLIC void pcpu_module_unregister(struct pcpu_module *mod);
PCPU_PUBLIC uintptr_t pcpu_module_resolve(struct pcpu_module *mod, char *start, char *stop,
					  const unsigned int *align_start,
					  const unsigned int *align_stop);

/* One per module: every translation unit has this weak definition and the
 * linker keeps one; hidden, so each program and library has its own. */
__attribute__((weak, visibility("hidden"))) struct pcpu_module pcpu_this_module_;
extern char __start_pcpu_tmpl[] __attribute__((visibility("hidden")));
extern char __stop_pcpu_tmpl[] __attribute__((visibility("hidden")));
extern const unsigned int __start_pcpu_align[] __attribute__((visibility("hidden")));
extern const unsigned int __stop_pcpu_align[] __attribute__((visibility("hidden")));

static inline void pcpu_module_register_(void)
{
	(void)pcpu_module_register(&pcpu_this_module_, __start_pcpu_tmpl, __stop_pcpu_tmpl,
				   __start_pcpu_align, __stop_pcpu_align);
}

static inline __attribute__((cold)) uintptr_t pcpu_module_slow_(void)
{
	return pcpu_module_resolve(&pcpu_this_module_, __start_pcpu_tmpl, __stop_pcpu_tmpl,
				   __start_pcpu_align, __stop_pcpu_align);
}

/* The module's bias; the slow path registers and initialises if needed. */
static inline uintptr_t pcpu_module_bias_(void)
{
	uintptr_t bias = __atomic_load_n(&pcpu_this_module_.bias, __ATOMIC_ACQUIRE);

	return __builtin_expect(bias != 0, 1) ? bias : pcpu_module_slow_();
}

#define PCPU_DEFINE_HOOKS_(type, name)                                        \
	static const unsigned int pcpu_align_##name                            \
		__attribute__((section("pcpu_align"), used)) = __alignof__(type); \
	static void __attribute__((constructor(101))) pcpu_ctor_##name(void)  \
	{                                                                      \
		pcpu_module_register_();                                       \
	}                                                                      \
	static void __attribute__((destructor(101))) pcpu_dtor_##name(void)   \
	{                                                                      \
		pcpu_module_unregister(&pcpu_this_module_);                    \
	}

/* ---- observability ------------------------------------------------------ */

#define PCPU_SIZE_HIST_BUCKETS 32    /* entries of pcpu_stats.size_hist */

/*
 * A snapshot of the allocator, taken under its lock by pcpu_stats_get().
 * Counters are process-wide and cumulative unless marked "now"; sizes are
 * in bytes, rounded up to PCPU_MIN_ALLOC_SIZE as served; pages are per unit
 * (one page of a chunk is backed in every CPU's unit at once).  The first
 * chunk, with its static and reserved areas, is not counted in nr_chunks.
 */
struct pcpu_stats {
	/* allocation counters */
	uint64_t nr_alloc;            /* successful allocations, ever */
	uint64_t nr_dealloc;          /* frees, ever */
	uint64_t nr_cur_alloc;        /* live allocations now */
	uint64_t nr_max_alloc;        /* most live allocations at once */
	uint64_t nr_alloc_fail;       /* failed allocations (ENOMEM; EINVAL not counted) */
	uint64_t nr_atomic_fail;      /* of which PCPU_ATOMIC */
	uint32_t nr_chunks;           /* dynamic chunks now */
	uint32_t nr_max_chunks;       /* most dynamic chunks at once */
	size_t min_alloc_size;        /* smallest allocation served (0: none yet) */
	size_t max_alloc_size;        /* largest allocation served */
	/* memory */
	uint64_t nr_empty_pop_pages;  /* now: populated pages with nothing allocated, in
	                                 the pool atomic allocations draw from (not the
	                                 reserved area, not chunks queued for reclaim) */
	uint64_t nr_populated_pages;  /* now: populated pages over all chunks */
	uint64_t nr_chunks_created;   /* dynamic chunks created, ever */
	uint64_t nr_chunks_destroyed; /* dynamic chunks destroyed, ever */
	uint64_t nr_pages_populated;  /* pages populated, ever (the first chunk's initial
	                                 pages not counted) */
	uint64_t nr_pages_depopulated;/* pages given back to the OS, ever */
	uint64_t nr_balance_passes;   /* balance passes run (thread or pcpu_balance) */
	uint64_t nr_balance_populated;   /* pages populated by the balancer */
	uint64_t nr_balance_depopulated; /* pages depopulated by the balancer */
	/* layout (fixed at initialisation; see pcpu_layout_print) */
	unsigned int nr_units;        /* units per chunk, padding units included */
	unsigned int nr_groups;       /* groups of CPUs at local distance */
	size_t unit_size;             /* one CPU's share of a chunk */
	size_t static_size;           /* first chunk: the program's PCPU_DEFINEs */
	size_t reserved_size;         /* first chunk: PCPU_RESERVED and libraries' variables */
	size_t dyn_size;              /* first chunk: dynamic area */
	size_t atom_size;             /* granule groups are placed at */
	size_t alloc_size;            /* units placed together: a multiple of atom_size */
	size_t page_size;
	/* added after the fields of SPEC section 5 */
	uint64_t size_hist[PCPU_SIZE_HIST_BUCKETS]; /* successful allocations ever, by
	                                 size: [b] counts sizes in [2^b, 2^(b+1)) */
};

/* Fill *out with a consistent snapshot; 0, or -1 with errno (EINVAL for a
 * NULL out, or an initialisation failure). */
PCPU_PUBLIC int pcpu_stats_get(struct pcpu_stats *out);

/*
 * Write a report to out, in the shape of the kernel's percpu_stats debugfs
 * file: "Percpu Memory Statistics", then blocks of "  name : value" lines:
 * "Allocation Info:" (the layout), "Global Stats:" (every pcpu_stats
 * counter, by field name), "Allocation Sizes:" (size_hist, "lo-hi : count"
 * from the smallest to the largest size seen), and "Per Chunk Stats:" with one
 * "Chunk: <name>" block per chunk: nr_alloc, max_alloc_size (largest ever
 * served by the chunk), empty_pop_pages, first_free_block, free_size,
 * contig_hint (longest free run), sum_frag and max_frag (total and largest
 * free fragment before the chunk's last allocation), cur_min_alloc,
 * cur_med_alloc and cur_max_alloc (over its live allocations), nr_pages,
 * nr_populated, and state (in_use, full, free, sidelined, reclaim,
 * reserved).  Holds the metadata lock while collecting, no lock while
 * writing.  The environment variable PCPU_STATS prints it at exit.
 */
PCPU_PUBLIC void pcpu_stats_print(FILE *out);

/*
 * Write the unit / group layout like the kernel's boot-time alloc-info dump:
 * "pcpu-alloc: s<static> r<reserved> d<dynamic> u<unit> alloc=<n>*<size>
 * atom=<atom>", then lines of "[group] cpu cpu ..." per allocation ("--"
 * for a padding unit).
 */
PCPU_PUBLIC void pcpu_layout_print(FILE *out);

/*
 * One balance pass, synchronously: destroy fully free chunks but one,
 * depopulate pages of chunks queued for reclaim, populate up to the high
 * mark of empty populated pages.  0, or -1 with errno.
 */
PCPU_PUBLIC int pcpu_balance(void);

/*
 * Check every invariant of every chunk and of the allocator as a whole
 * (bitmaps against hints, slot lists, counters).  0, or -1 after writing
 * the first broken invariant to stderr.  Takes both allocator locks.  The
 * environment variable PCPU_VERIFY=1 runs it after every allocation, free
 * and balance pass, and aborts with the report on a failure.
 */
PCPU_PUBLIC int pcpu_verify(void);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_H */
