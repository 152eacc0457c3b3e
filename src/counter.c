/*
 * counter.c - struct pcpu_counter, the batched counter: initialisation,
 * the exact sum and comparison, and library copies of the inline
 * operations (for callers that take their address or use
 * (pcpu_counter_add)(c, v)).
 *
 * Built on the public API only (PCPU_ALLOC, pcpu_free, pcpu_nr_cpus, the
 * this-CPU operations): above the layer-7 entry points, like api.c.  The
 * design and the invariant that keeps sums exact are written once, in
 * <percpu_counter.h>.
 */
#include <errno.h>

#include "percpu.h"

/* The kernel's default batch: max(32, 2 x nr_cpus). */
static unsigned long long default_batch(unsigned int nr_cpus)
{
	unsigned long long twice = 2ull * nr_cpus;

	return twice > 32 ? twice : 32;
}

PCPU_PUBLIC int pcpu_counter_init(struct pcpu_counter *c, long long initial)
{
	long long __percpu *local;
	unsigned long long unit;

	if (!c) {
		errno = EINVAL;
		return -1;
	}
	local = PCPU_ALLOC(long long);
	if (!local)
		return -1;
	c->nr_cpus = pcpu_nr_cpus();
	/* The fold unit: the default batch rounded down to a power of two. */
	unit = 1ull << (63 - __builtin_clzll(default_batch(c->nr_cpus)));
	c->fold_mask = unit - 1;
	c->count = initial;
	c->base = initial;
	c->local = local;
	return 0;
}

PCPU_PUBLIC void pcpu_counter_destroy(struct pcpu_counter *c)
{
	if (!c)
		return;
	pcpu_free(c->local);
	c->local = NULL;
}

PCPU_PUBLIC void (pcpu_counter_add)(struct pcpu_counter *c, long long v)
{
	pcpu_counter_add_inline_(c, v);
}

PCPU_PUBLIC void (pcpu_counter_add_batch)(struct pcpu_counter *c, long long v, long batch)
{
	pcpu_counter_add_batch_inline_(c, v, batch);
}

PCPU_PUBLIC long long (pcpu_counter_read)(const struct pcpu_counter *c)
{
	return pcpu_counter_read_inline_(c);
}

PCPU_PUBLIC long long pcpu_counter_sum(struct pcpu_counter *c)
{
	/* Unsigned: the copies wrap modulo 2^64, and so does their sum. */
	unsigned long long sum = (unsigned long long)__atomic_load_n(&c->base, __ATOMIC_RELAXED);

	pcpu_for_each_ptr(cpu, p, c->local)
		sum += (unsigned long long)__atomic_load_n(p, __ATOMIC_RELAXED);
	return (long long)sum;
}

PCPU_PUBLIC int pcpu_counter_compare(struct pcpu_counter *c, long long rhs)
{
	long long count = pcpu_counter_read(c), diff, sum;
	long long bound = (long long)c->nr_cpus * (long long)(c->fold_mask + 1);

	/* A difference that overflows is far beyond the bound. */
	if (__builtin_sub_overflow(count, rhs, &diff))
		return count > rhs ? 1 : -1;
	if (diff > bound)
		return 1;
	if (diff < -bound)
		return -1;
	sum = pcpu_counter_sum(c);
	return sum > rhs ? 1 : sum < rhs ? -1 : 0;
}
