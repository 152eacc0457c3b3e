/*
 * static_lib_a.c - a test shared library linked to test_static at start-up
 * (with static_lib_a2.c: two translation units, one module).  Its per-CPU
 * variables live in the reserved area; the accessors hand their handles to
 * the program, since PCPU_VAR works only inside the defining module.
 */
#include <percpu.h>

#include "static_lib_a.h"

PCPU_DEFINE(long, liba_counter) = LIBA_COUNTER_INIT;
PCPU_DEFINE_STATIC(struct liba_pair, liba_pair) = { LIBA_PAIR_X, LIBA_PAIR_Y };

long __percpu *liba_counter_handle(void)
{
	return PCPU_VAR(liba_counter);
}

struct liba_pair __percpu *liba_pair_handle(void)
{
	return PCPU_VAR(liba_pair);
}

void liba_inc(void)
{
	this_cpu_inc(PCPU_VAR(liba_counter));
}
