/*
 * cpu.h - internals of the this-CPU layer (cpu.c) that tests observe.  The
 * hooks the allocator core calls (pcpu_cpu_ready) are in static.h; the
 * public side is <percpu_this_cpu.h>.
 */
#ifndef PCPU_CPU_H
#define PCPU_CPU_H

/* Switches from rseq mode to atomic mode that issued a membarrier (0 or 1
 * in a process, more only when threads raced to switch). */
unsigned long pcpu_cpu_switches(void);

#endif
