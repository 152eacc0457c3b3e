/*
 * cpu.h - the this-CPU layer's internals (cpu.c), for tests.
 */
#ifndef PCPU_CPU_H
#define PCPU_CPU_H

/* 1 if the calling thread reads its CPU from a registered rseq area
 * (the fast path), 0 if it falls back to sched_getcpu(). */
int pcpu_cpu_rseq_active(void);

#endif
