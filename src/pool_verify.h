/*
 * pool_verify.h - checking the pool's invariants (pool_verify.c), and the
 * PCPU_VERIFY hook the allocation paths call after every operation.
 */
#ifndef PCPU_POOL_VERIFY_H
#define PCPU_POOL_VERIFY_H

#include "pool.h"

/* Check every pool invariant under both locks: 0, or -1 with the first
 * broken one written to stderr. */
int pool_verify(void);

enum { POOL_OP_ALLOC, POOL_OP_FREE, POOL_OP_BALANCE };
void pool_verify_op_slow(int op, const void *ptr);
/* After an operation (POOL_OP_*) that changed the allocator, no lock held;
 * ptr: the handle it returned, or NULL. */
static inline void pool_after_op(int op, const void *ptr)
{
	if (__builtin_expect(pcpu_pool.debug & POOL_DEBUG_VERIFY, 0))
		pool_verify_op_slow(op, ptr);
}

#endif
