/* site_atomic.c - see site_inc.c. */
#include "percpu.h"

void pcpu_bench_site_atomic(long __percpu *p);

/* The comparison: a relaxed atomic add on the copy of the current CPU. */
void pcpu_bench_site_atomic(long __percpu *p)
{
	__atomic_fetch_add(per_cpu_ptr(p, pcpu_current_cpu()), 1, __ATOMIC_RELAXED);
}
