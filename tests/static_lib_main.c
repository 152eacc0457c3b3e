/*
 * static_lib_main.c - second translation unit of test_static's program:
 * one more main-program variable, and handles of test_static.c's variable
 * taken through PCPU_DECLARE (the same handle from every unit).
 */
#include <percpu.h>

PCPU_DECLARE(long, m_hits);
PCPU_DEFINE(unsigned int, m_other) = 0xfeed;

long __percpu *main2_hits_handle(void)
{
	return PCPU_VAR(m_hits);
}

unsigned int __percpu *main2_other_handle(void)
{
	return PCPU_VAR(m_other);
}
