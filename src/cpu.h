/*
 * cpu.h - internals of the this-CPU layer (cpu.c) that tests observe; the
 * public side is <percpu_this_cpu.h>.
 */
#ifndef PCPU_CPU_H
#define PCPU_CPU_H

/* 1 if the calling thread has a registered rseq area with a valid CPU
 * number, 0 if it falls back to sched_getcpu(). */
int pcpu_cpu_rseq_active(void);

/* Switches from rseq mode to atomic mode that issued a membarrier (0 or 1
 * in a process, more only when threads raced to switch). */
unsigned long pcpu_cpu_switches(void);

#endif
