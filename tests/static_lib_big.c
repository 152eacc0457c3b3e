/*
 * static_lib_big.c - a test library whose per-CPU variables (16 KiB) do not
 * fit the default 8 KiB reserved area: loading it must report that on one
 * line and leave its handles faulting; with a larger reserved area it fits.
 */
#include <percpu.h>

PCPU_DEFINE(char[16384], big_buf) = "big";

char (*big_handle(void))[16384]
{
	return PCPU_VAR(big_buf);
}
