/*
 * static_lib_a2.c - second translation unit of the start-up test library:
 * defines one more variable and uses static_lib_a.c's through PCPU_DECLARE
 * (the module registers once however many units define variables), and
 * exports one (PCPU_DEFINE_EXPORTED) to the program and to
 * static_lib_user.c.
 */
#include <percpu.h>

#include "static_lib_a.h"

PCPU_DECLARE(long, liba_counter);
PCPU_DEFINE(liba_line_t, liba_aligned) = LIBA_ALIGNED_INIT;

long __percpu *liba_counter_handle2(void)
{
	return PCPU_VAR(liba_counter);
}

liba_line_t __percpu *liba_aligned_handle(void)
{
	return PCPU_VAR(liba_aligned);
}

PCPU_DEFINE_EXPORTED(long, liba_exported) = LIBA_EXPORTED_INIT;

/* The handle as the defining module sees it, without the accessor. */
long __percpu *liba_exported_own_handle(void)
{
	return PCPU_VAR(liba_exported);
}
