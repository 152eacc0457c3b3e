/*
 * static_lib_init.c - preloaded (LD_PRELOAD) into a copy of test_static: its
 * constructor initialises the allocator with defaults before the program's
 * own constructors run, so the program's static per-CPU variables register
 * late and must be placed like a library's, in the reserved area.
 */
#include <percpu.h>

static void __attribute__((constructor)) early_init(void)
{
	(void)pcpu_nr_cpus();
}
