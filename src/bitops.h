/*
 * bitops.h - bit operations on arrays of unsigned long words.
 *
 * The lowest layer of libpercpu: everything the chunk allocator needs to
 * read and write its allocation, boundary and population bitmaps, done a
 * word at a time.  Bit n lives in word n / BITS_PER_LONG at position
 * n % BITS_PER_LONG.  Ranges are half open: [start, end).  Functions that
 * search return `size` (or the given bound) when nothing is found.
 */
#ifndef PCPU_BITOPS_H
#define PCPU_BITOPS_H

#include <stdbool.h>
#include <stddef.h>

#define BITS_PER_LONG (8 * (int)sizeof(unsigned long))
#define BITS_TO_LONGS(n) (((size_t)(n) + BITS_PER_LONG - 1) / BITS_PER_LONG)

static inline bool bit_test(const unsigned long *map, size_t n)
{
	return (map[n / BITS_PER_LONG] >> (n % BITS_PER_LONG)) & 1UL;
}

static inline void bit_set(unsigned long *map, size_t n)
{
	map[n / BITS_PER_LONG] |= 1UL << (n % BITS_PER_LONG);
}

static inline void bit_clear(unsigned long *map, size_t n)
{
	map[n / BITS_PER_LONG] &= ~(1UL << (n % BITS_PER_LONG));
}

/* Set / clear bits [start, start + len). */
void bitmap_set_range_slow(unsigned long *map, size_t start, size_t len);
void bitmap_clear_range_slow(unsigned long *map, size_t start, size_t len);

/* Ranges inside one word (most small allocations) are done inline. */
static inline unsigned long bitmap_word_mask(size_t start, size_t len)
{
	size_t shift = start % BITS_PER_LONG;

	return (len >= (size_t)BITS_PER_LONG ? ~0UL : ((1UL << len) - 1)) << shift;
}

static inline void bitmap_set_range(unsigned long *map, size_t start, size_t len)
{
	if (len && start % BITS_PER_LONG + len <= (size_t)BITS_PER_LONG)
		map[start / BITS_PER_LONG] |= bitmap_word_mask(start, len);
	else
		bitmap_set_range_slow(map, start, len);
}

static inline void bitmap_clear_range(unsigned long *map, size_t start, size_t len)
{
	if (len && start % BITS_PER_LONG + len <= (size_t)BITS_PER_LONG)
		map[start / BITS_PER_LONG] &= ~bitmap_word_mask(start, len);
	else
		bitmap_clear_range_slow(map, start, len);
}

/*
 * Maps shared with readers that hold no lock.  Writers still exclude each
 * other (a lock), but store whole words with relaxed atomic stores, so a
 * lockless reader (which loads with relaxed atomic loads) never sees a
 * torn word and the memory model sees no data race.  On x86_64 and
 * aarch64 these are the same instructions as the plain versions.
 */
static inline unsigned long bitmap_word_shared(const unsigned long *map, size_t w)
{
	return __atomic_load_n(&map[w], __ATOMIC_RELAXED);
}

static inline void bitmap_word_store_shared(unsigned long *map, size_t w, unsigned long v)
{
	__atomic_store_n(&map[w], v, __ATOMIC_RELAXED);
}

static inline void bit_set_shared(unsigned long *map, size_t n)
{
	size_t w = n / BITS_PER_LONG;

	bitmap_word_store_shared(map, w, map[w] | 1UL << (n % BITS_PER_LONG));
}

/* Clear bits [start, start + len) of a shared map. */
void bitmap_clear_range_shared(unsigned long *map, size_t start, size_t len);

/*
 * Maps changed concurrently by threads holding no lock: single-bit atomic
 * read-modify-writes.  bit_test_and_clear_atomic returns whether the bit
 * was set (so of two racing clears exactly one sees true).
 */
static inline void bit_set_atomic(unsigned long *map, size_t n)
{
	__atomic_fetch_or(&map[n / BITS_PER_LONG], 1UL << (n % BITS_PER_LONG), __ATOMIC_RELAXED);
}

static inline bool bit_test_and_clear_atomic(unsigned long *map, size_t n)
{
	unsigned long m = 1UL << (n % BITS_PER_LONG);

	return __atomic_fetch_and(&map[n / BITS_PER_LONG], ~m, __ATOMIC_RELAXED) & m;
}

static inline bool bit_test_atomic(const unsigned long *map, size_t n)
{
	return (bitmap_word_shared(map, n / BITS_PER_LONG) >> (n % BITS_PER_LONG)) & 1UL;
}

/* First set / clear bit in [start, size); size if none. */
size_t bitmap_next_set(const unsigned long *map, size_t size, size_t start);
size_t bitmap_next_clear(const unsigned long *map, size_t size, size_t start);

/* Last set / clear bit in [0, before); `before` if none. */
size_t bitmap_last_set_before(const unsigned long *map, size_t before);
size_t bitmap_last_clear_before(const unsigned long *map, size_t before);

/* Number of set bits in [start, end). */
size_t bitmap_weight_range(const unsigned long *map, size_t start, size_t end);

/* True when every bit in [start, end) is clear / set. */
bool bitmap_range_clear(const unsigned long *map, size_t start, size_t end);
bool bitmap_range_set(const unsigned long *map, size_t start, size_t end);

/*
 * First index i >= start with i & align_mask == 0 such that bits
 * [i, i + nr) are all clear and i + nr <= size.  Returns size when there is
 * none (nr >= 1).  align_mask is 2^k - 1.
 */
size_t bitmap_find_zero_area(const unsigned long *map, size_t size, size_t start,
			     size_t nr, size_t align_mask);

/*
 * Iterate maximal runs of clear (or set) bits inside [start, end):
 *   for (size_t s = start, e; bitmap_next_clear_run(map, end, &s, &e); s = e)
 * yields each run as [s, e).  Runs are clipped to [start, end).
 */
bool bitmap_next_clear_run(const unsigned long *map, size_t end, size_t *s, size_t *e);
bool bitmap_next_set_run(const unsigned long *map, size_t end, size_t *s, size_t *e);

#endif
