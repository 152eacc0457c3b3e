/*
 * util.h - small arithmetic and checker helpers shared by every layer.
 *
 * One definition per idiom: power-of-two tests and rounding, and the
 * "describe the first broken invariant" helper the checkers use.  Pure
 * header, no state, usable from the lowest layer up.
 */
#ifndef PCPU_UTIL_H
#define PCPU_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

static inline bool pcpu_is_pow2(size_t v)
{
	return v && !(v & (v - 1));
}

/* v rounded up to a multiple of the power of two a (no overflow check). */
#define PCPU_ALIGN_UP(v, a) (((v) + (a) - 1) & ~((__typeof__(v))(a) - 1))

/* *out = v rounded up to a multiple of the power of two a; false on overflow. */
static inline bool pcpu_align_up_checked(size_t v, size_t a, size_t *out)
{
	if (v > SIZE_MAX - (a - 1))
		return false;
	*out = (v + a - 1) & ~(a - 1);
	return true;
}

/*
 * Checkers (block_check, chunk_verify, pool_verify) describe the first
 * broken invariant in msg[msglen] and return -1.  Use inside a function
 * with `char *msg` and `size_t msglen` parameters.
 */
#define PCPU_VERIFY_FAIL(...) \
	do { snprintf(msg, msglen, __VA_ARGS__); return -1; } while (0)

#endif
