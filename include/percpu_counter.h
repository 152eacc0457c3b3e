/*
 * percpu_counter.h - libpercpu's batched counter, struct pcpu_counter: the
 * Linux kernel's percpu_counter for programs.  Included by <percpu.h>; do
 * not include it directly.
 *
 *     struct pcpu_counter free_blocks;          (embed it anywhere)
 *
 *     pcpu_counter_init(&free_blocks, 1000);    0, or -1 with errno
 *     pcpu_counter_add(&free_blocks, -1);       one this-CPU operation
 *     pcpu_counter_read(&free_blocks);          O(1), approximate
 *     pcpu_counter_sum(&free_blocks);           exact, O(CPUs)
 *     pcpu_counter_compare(&free_blocks, 10);   -1, 0, 1: exact
 *     pcpu_counter_destroy(&free_blocks);
 *
 * How it counts.  Every CPU's copy holds the running total of the adds made
 * on that CPU since init; they are never reset.  The shared `count` follows
 * them in steps of the fold unit U, a power of two: the default batch
 * max(32, 2 x nr_cpus) (the kernel's rule) rounded down to a power of two.
 * An add is one this_cpu_add_return on the copy.  When the copy's new
 * total crosses a multiple of U (a test of two values: an xor and a
 * compare), the add folds: it adds to `count` (one atomic add) the
 * difference between the new and the old total, each rounded down to a
 * multiple of U.  Both totals come from the value this_cpu_add_return
 * returned and the amount added, so the fold is right whichever CPU the add
 * landed on, however the thread migrated or was signalled before or after.
 *
 * The invariant (the fields below):
 *
 *     value = base + sum over CPUs of local[cpu]                      always
 *     count = base + sum over CPUs of round_down(local[cpu], U)
 *                  - the folds of adds between their two steps
 *
 * so when no add is between its this-CPU step and its fold,
 *     0 <= value - count <= nr_cpus x (U - 1)  <  nr_cpus x batch.
 *
 * Every add changes one place of the first line: a copy, or `base` for an
 * add made straight to the shared count.  A fold moves nothing out of a
 * copy (the copies are the truth; `count` only follows them), so a sum
 * running beside folds reads each add exactly once: in its copy, or in
 * base.  There is no fold-versus-sum race to lose or double an update, and
 * no lock anywhere: add, read, sum and compare are async-signal-safe once
 * the counter is initialised (a signal handler may use them).
 *
 * The price of having no lock: between an add's this-CPU step and its fold
 * (two instructions apart, unless the thread is preempted or signalled just
 * there) `count` lacks that fold, so read's error can exceed the bound by U
 * (plus the amount) for each add caught there, and compare's quick answer
 * (below) is exact only when no add is.  Adds that have returned are always
 * complete.
 *
 * Values are long long and wrap modulo 2^64 like the copies.
 */
#ifndef PERCPU_COUNTER_H
#define PERCPU_COUNTER_H

#ifndef PERCPU_H
#error "include <percpu.h>, not <percpu_counter.h>"
#endif

#define PCPU_HAVE_COUNTER 1

/* Fields are the library's: read-only to callers (fold_mask + 1 is U). */
struct pcpu_counter {
	long long count;                 /* read()'s estimate (atomic) */
	long long base;                  /* initial value + adds made straight to it (atomic) */
	long long __percpu *local;       /* each CPU's total of its adds since init */
	unsigned long long fold_mask;    /* U - 1 */
	unsigned int nr_cpus;            /* pcpu_nr_cpus() at init: read's error bound */
};

/*
 * Initialise c with value initial: 0, or -1 with errno ENOMEM (no per-CPU
 * memory) or EINVAL (c NULL).  A destroyed counter may be initialised
 * again.  Not async-signal-safe (it allocates).
 */
PCPU_PUBLIC int pcpu_counter_init(struct pcpu_counter *c, long long initial);

/* Free c's per-CPU copies; c may be initialised again.  Any use of c in
 * between is undefined (most likely a fault). */
PCPU_PUBLIC void pcpu_counter_destroy(struct pcpu_counter *c);

/*
 * Add v (negative to subtract): one this-CPU operation, and a fold into the
 * shared count when the CPU's total crosses a multiple of U (an add of U or
 * more always folds all but its last partial unit).  Inline (see below).
 */
PCPU_PUBLIC void pcpu_counter_add(struct pcpu_counter *c, long long v);

/*
 * pcpu_counter_add with a batch of the caller's: a batch smaller than U
 * (0 included) adds v straight to the shared count, so read() sees it at
 * once (two atomic adds: base and count); any batch >= U is
 * pcpu_counter_add (the fold unit stays U: it is what keeps count
 * following the copies exactly).  So a small batch buys precision, as in
 * the kernel; a large one buys nothing beyond U.
 */
PCPU_PUBLIC void pcpu_counter_add_batch(struct pcpu_counter *c, long long v, long batch);

/* The shared count: O(1), one relaxed load; approximate as said above. */
PCPU_PUBLIC long long pcpu_counter_read(const struct pcpu_counter *c);

/* The exact value: base plus every CPU's copy (relaxed loads), O(CPUs). */
PCPU_PUBLIC long long pcpu_counter_sum(struct pcpu_counter *c);

/*
 * Compare the value with rhs: 1 if greater, 0 if equal, -1 if less.  When
 * read() is more than nr_cpus x U from rhs its sign decides (the value lies
 * within that distance of it); otherwise the exact sum does, so the answer
 * is exact right at the boundary.
 */
PCPU_PUBLIC int pcpu_counter_compare(struct pcpu_counter *c, long long rhs);

/* ---- inline versions ------------------------------------------------------ */

/* The same steps as the library functions, inlined: (pcpu_counter_add)(c, v)
 * calls the library instead. */
static __inline__ void pcpu_counter_add_inline_(struct pcpu_counter *c, long long v)
{
	unsigned long long now = (unsigned long long)this_cpu_add_return(c->local, v);
	unsigned long long before = now - (unsigned long long)v;
	unsigned long long keep = ~c->fold_mask;

	/* Totals in different units of U (two's complement rounds down). */
	if (__builtin_expect((now ^ before) > c->fold_mask, 0))
		(void)__atomic_fetch_add(&c->count, (long long)((now & keep) - (before & keep)),
					 __ATOMIC_RELAXED);
}

static __inline__ void pcpu_counter_add_batch_inline_(struct pcpu_counter *c, long long v,
						      long batch)
{
	if (batch >= 0 && (unsigned long long)batch > c->fold_mask) {
		pcpu_counter_add_inline_(c, v);
	} else {
		(void)__atomic_fetch_add(&c->base, v, __ATOMIC_RELAXED);
		(void)__atomic_fetch_add(&c->count, v, __ATOMIC_RELAXED);
	}
}

static __inline__ long long pcpu_counter_read_inline_(const struct pcpu_counter *c)
{
	return __atomic_load_n(&c->count, __ATOMIC_RELAXED);
}

#define pcpu_counter_add(c, v) pcpu_counter_add_inline_((c), (v))
#define pcpu_counter_add_batch(c, v, batch) pcpu_counter_add_batch_inline_((c), (v), (batch))
#define pcpu_counter_read(c) pcpu_counter_read_inline_(c)

#endif /* PERCPU_COUNTER_H */
