/*
 * static_lib_user.c - a test library that test_static loads with dlopen,
 * linked against static_lib_a: it uses static_lib_a's exported per-CPU
 * variable (PCPU_DECLARE_EXTERN in static_lib_a.h) from another module.
 */
#include <percpu.h>

#include "static_lib_a.h"

long __percpu *user_exported_handle(void)
{
	return PCPU_EXTERN_VAR(liba_exported);
}

/* n increments of the exported variable, on whichever CPU we run. */
void user_inc(long n)
{
	long __percpu *h = PCPU_EXTERN_VAR(liba_exported);

	for (long i = 0; i < n; i++)
		this_cpu_inc(h);
}
