/*
 * version.c - the version of the loaded library, so that a program can
 * compare it with the PCPU_VERSION of the header it was compiled with.
 */
#include "percpu.h"

PCPU_PUBLIC int pcpu_version(void)
{
	return PCPU_VERSION;
}
