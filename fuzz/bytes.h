/*
 * bytes.h - what the fuzz targets (fuzz_alloc.c, fuzz_chunk.c) share: the
 * reader of their input bytes and NO_COVERAGE for their checkers.
 *
 * An input is read front to back; past its end every byte reads as 0, so
 * any input, however short, is a complete program.
 */
#ifndef PCPU_FUZZ_BYTES_H
#define PCPU_FUZZ_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* The checkers' loops are not the code under test: no coverage
 * instrumentation (its comparison hooks would dominate the run time). */
#if defined(__clang__)
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define NO_COVERAGE
#endif

/* The bytes of the input not read yet. */
struct input {
	const uint8_t *p;
	size_t n;
};

static inline unsigned get8(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* Two bytes, little-endian. */
static inline unsigned get16(struct input *in)
{
	unsigned lo = get8(in);

	return lo | get8(in) << 8;
}

#endif
