/*
 * static.h - hooks between the allocator core and static per-CPU variables
 * (static.c) and the CPU number (cpu.c).
 *
 * Initialisation (alloc.c, do_init) asks static.c how large the main
 * program's static area must be before it builds the layout, then, once the
 * first chunk exists, lets static.c copy the templates and place the
 * libraries registered so far.  cpu.c learns the unit count last, which
 * opens the inline fast path of pcpu_current_cpu().
 */
#ifndef PCPU_STATIC_H
#define PCPU_STATIC_H

#include <stddef.h>

/* Bytes of the main program's static per-CPU variables, rounded up to the
 * allocation granule; 0 if it has none or it has not registered.  Called
 * under the initialisation mutex, before the layout is built. */
size_t pcpu_static_main_size(void);

/* Copy templates into every unit and place registered libraries in the
 * reserved area.  Called at the end of a successful initialisation. */
void pcpu_static_attach(void);

/* cpu.c: the allocator is ready with nr units. */
void pcpu_cpu_ready(unsigned int nr);

/* cpu.c: 1 if the calling thread reads its CPU from a registered rseq area
 * (the fast path), 0 if it falls back to sched_getcpu(). */
int pcpu_cpu_rseq_active(void);

#endif
