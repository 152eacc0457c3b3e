/*
 * libstats.c - a shared library with per-CPU statistics, loaded with
 * dlopen by stats_dlopen.c.
 *
 * The statistics are one static per-CPU struct: PCPU_DEFINE in a library
 * places it in libpercpu's reserved area when the library is loaded (with
 * the initial values below on every CPU) and gives the space back at
 * dlclose.  Nothing to allocate, nothing to free.
 *
 * User space cannot stop a thread from being preempted or migrated, so two
 * threads can update the same CPU's copy at once: every update is an atomic
 * operation on the copy.  Only threads on the same CPU ever touch it, so the
 * cache line stays local and the atomics stay cheap.
 */
#include <percpu.h>
#include <stdint.h>

#include "libstats.h"

struct pkt_stats {
	uint64_t packets, bytes, errors;
	uint64_t min_len, max_len;
};

PCPU_DEFINE_STATIC(struct pkt_stats, pkt_stats) = { .min_len = UINT64_MAX };

/* Lower *p to v, or raise it with raise set; atomic against other threads. */
static void cas_bound(uint64_t *p, uint64_t v, int raise)
{
	uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);

	while ((raise ? v > cur : v < cur) &&
	       !__atomic_compare_exchange_n(p, &cur, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

void stats_record(uint64_t len, int error)
{
	struct pkt_stats *s = this_cpu_ptr(PCPU_VAR(pkt_stats));

	__atomic_fetch_add(&s->packets, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->bytes, len, __ATOMIC_RELAXED);
	if (error)
		__atomic_fetch_add(&s->errors, 1, __ATOMIC_RELAXED);
	cas_bound(&s->min_len, len, 0);
	cas_bound(&s->max_len, len, 1);
}

void stats_totals(struct pkt_totals *out)
{
	unsigned cpu;

	*out = (struct pkt_totals){ .min_len = UINT64_MAX };
	pcpu_for_each_cpu(cpu) {
		struct pkt_stats *s = per_cpu_ptr(PCPU_VAR(pkt_stats), cpu);
		uint64_t lo = __atomic_load_n(&s->min_len, __ATOMIC_RELAXED);
		uint64_t hi = __atomic_load_n(&s->max_len, __ATOMIC_RELAXED);

		out->packets += __atomic_load_n(&s->packets, __ATOMIC_RELAXED);
		out->bytes += __atomic_load_n(&s->bytes, __ATOMIC_RELAXED);
		out->errors += __atomic_load_n(&s->errors, __ATOMIC_RELAXED);
		out->min_len = lo < out->min_len ? lo : out->min_len;
		out->max_len = hi > out->max_len ? hi : out->max_len;
	}
}

void stats_print(FILE *out)
{
	unsigned cpu;

	fprintf(out, "%-5s %12s %14s %8s %8s %8s\n", "cpu", "packets", "bytes", "errors", "min", "max");
	pcpu_for_each_cpu(cpu) {
		const struct pkt_stats *s = per_cpu_ptr(PCPU_VAR(pkt_stats), cpu);

		if (s->min_len == UINT64_MAX)
			fprintf(out, "%-5u %12s\n", cpu, "-");
		else
			fprintf(out, "%-5u %12llu %14llu %8llu %8llu %8llu\n", cpu,
				(unsigned long long)s->packets, (unsigned long long)s->bytes,
				(unsigned long long)s->errors, (unsigned long long)s->min_len,
				(unsigned long long)s->max_len);
	}
}

/* The variable's handle, to show that a reload reuses the same space. */
void *stats_handle(void)
{
	return PCPU_VAR(pkt_stats);
}
