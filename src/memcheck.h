/*
 * memcheck.h - telling memory checkers which bytes of the units are live.
 *
 * Per-CPU memory comes from mmap, not malloc, so neither AddressSanitizer
 * nor Valgrind knows which parts of a unit are allocated.  The pool tells
 * them: in every CPU's unit, free areas on populated pages are made
 * inaccessible ("poisoned") and an area becomes accessible when it is
 * allocated, so a write through a stale per_cpu_ptr() after pcpu_free() is
 * reported where it happens.
 *   - AddressSanitizer builds (compile time) always do this.  ASan tracks
 *     8-byte granules, with only a prefix of a granule addressable, so a
 *     free 4-byte area sharing a granule with a live neighbour may stay
 *     accessible: the check never reports a live allocation, and may miss
 *     a few bytes.
 *   - Valgrind's memcheck (when <valgrind/memcheck.h> was found at build
 *     time and the program runs under memcheck; callgrind and the other
 *     tools are left alone) gets the same annotations, byte exact.
 *   - The reserved area is left alone: static per-CPU variables of shared
 *     libraries are placed there without going through pcpu_alloc (those
 *     that overflow into a dynamic chunk are annotated like allocations).
 * Each hook below is one predictable branch unless a checker is active.
 */
#ifndef PCPU_MEMCHECK_H
#define PCPU_MEMCHECK_H

#include <stdbool.h>

#include "pool.h"

#if defined(__SANITIZE_ADDRESS__)
#define PCPU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PCPU_ASAN 1
#endif
#endif
#ifndef PCPU_ASAN
#define PCPU_ASAN 0
#endif

/* Detect Valgrind's memcheck (sets POOL_DEBUG_VALGRIND) and annotate the
 * first chunk.  End of initialisation. */
void memcheck_init(void);
/* Make [bit_off, bit_off + bits) of ch usable or not in every unit. */
void memcheck_range(const struct pcpu_chunk *ch, int bit_off, int bits, bool usable);
void memcheck_populated(const struct pcpu_chunk *ch, int page_start, int page_end);
void memcheck_depopulated(const struct pcpu_chunk *ch, int page_start, int page_end);

static inline bool memcheck_active(void)
{
	return PCPU_ASAN || __builtin_expect(pcpu_pool.debug & POOL_DEBUG_VALGRIND, 0);
}

/* An area was allocated: `lock` held (the order of annotations on a
 * shared granule must follow the order of the map's changes). */
static inline void memcheck_alloc(const struct pcpu_chunk *ch, int bit_off, int bits)
{
	if (memcheck_active())
		memcheck_range(ch, bit_off, bits, true);
}

/* An area is being freed: `lock` held (its neighbours are read). */
static inline void memcheck_free(const struct pcpu_chunk *ch, int bit_off, int bits)
{
	if (memcheck_active())
		memcheck_range(ch, bit_off, bits, false);
}

/* Pages were populated and recorded (`lock` held) / are being depopulated. */
static inline void memcheck_pages_populated(const struct pcpu_chunk *ch, int page_start, int page_end)
{
	if (memcheck_active())
		memcheck_populated(ch, page_start, page_end);
}

static inline void memcheck_pages_depopulated(const struct pcpu_chunk *ch, int page_start, int page_end)
{
	if (memcheck_active())
		memcheck_depopulated(ch, page_start, page_end);
}

#endif
