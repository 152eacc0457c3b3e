/*
 * this_cpu_norseq.c - a translation unit compiled with PCPU_NO_RSEQ, linked
 * into test_this_cpu_ops: its this_cpu operations are the typed atomic
 * path, and the first of them switches the process to atomic mode.
 */
#define PCPU_NO_RSEQ 1
#include "this_cpu_semantics.h"

int norseq_semantics(void);
int norseq_has_sequences(void);

/* this_cpu_semantics() on the atomic path; 0 if nothing failed. */
int norseq_semantics(void)
{
	return this_cpu_semantics();
}

/* 1 if this unit was compiled with the sequences anyway (a bug). */
int norseq_has_sequences(void)
{
#ifdef PCPU_HAVE_RSEQ_OPS
	return 1;
#else
	return 0;
#endif
}
