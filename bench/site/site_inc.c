/*
 * site_inc.c, site_atomic.c - call sites whose disassembly evaluation 7
 * counts: compiled with the project's flags into objects of their own
 * (never linked; one function per file, so the compiler cannot fold the
 * two into one), then count_insns.cmake counts their instructions.
 */
#include "percpu.h"

void pcpu_bench_site_inc(long __percpu *p);

/* this_cpu_inc, however percpu.h implements it. */
void pcpu_bench_site_inc(long __percpu *p)
{
	this_cpu_inc(p);
}
