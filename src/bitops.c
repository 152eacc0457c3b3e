/*
 * bitops.c - word-at-a-time operations on bitmaps (see bitops.h).
 *
 * Every search looks at whole words and uses count-trailing/leading-zero
 * instructions to locate bits inside a word; no loop walks bit by bit.
 */
#include "bitops.h"

#define WORD(n) ((n) / BITS_PER_LONG)
#define BIT(n) ((n) % BITS_PER_LONG)
/* Mask of bits [lo, BITS_PER_LONG) and of bits [0, hi) within one word. */
#define MASK_FROM(lo) (~0UL << (lo))
#define MASK_BELOW(hi) ((hi) ? ~0UL >> (BITS_PER_LONG - (hi)) : 0UL)

static inline size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Set (set true) or clear bits [start, start + len): the edge words by
 * mask, whole words between them outright. */
static inline void write_range(unsigned long *map, size_t start, size_t len, bool set)
{
	size_t end = start + len;

	if (!len)
		return;
	size_t w = WORD(start), we = WORD(end - 1);
	unsigned long first = MASK_FROM(BIT(start));
	unsigned long last = MASK_BELOW(BIT(end - 1) + 1);

	if (w == we)
		first &= last;
	map[w] = set ? map[w] | first : map[w] & ~first;
	if (w == we)
		return;
	while (++w < we)
		map[w] = set ? ~0UL : 0;
	map[we] = set ? map[we] | last : map[we] & ~last;
}

void bitmap_set_range_slow(unsigned long *map, size_t start, size_t len)
{
	write_range(map, start, len, true);
}

void bitmap_clear_range_slow(unsigned long *map, size_t start, size_t len)
{
	write_range(map, start, len, false);
}

/* Shared search: first bit in [start, size) whose value XOR invert is 1. */
static inline size_t find_next(const unsigned long *map, size_t size, size_t start,
			       unsigned long invert)
{
	if (start >= size)
		return size;
	size_t w = WORD(start);
	unsigned long word = (map[w] ^ invert) & MASK_FROM(BIT(start));

	for (;;) {
		if (word) {
			size_t n = w * BITS_PER_LONG + (size_t)__builtin_ctzl(word);
			return min_sz(n, size);
		}
		if (++w * BITS_PER_LONG >= size)
			return size;
		word = map[w] ^ invert;
	}
}

size_t bitmap_next_set(const unsigned long *map, size_t size, size_t start)
{
	return find_next(map, size, start, 0UL);
}

size_t bitmap_next_clear(const unsigned long *map, size_t size, size_t start)
{
	return find_next(map, size, start, ~0UL);
}

/* Shared backward search: last bit in [0, before) whose value XOR invert is 1. */
static inline size_t find_last(const unsigned long *map, size_t before, unsigned long invert)
{
	if (!before)
		return before;
	size_t w = WORD(before - 1);
	unsigned long word = (map[w] ^ invert) & MASK_BELOW(BIT(before - 1) + 1);

	for (;;) {
		if (word)
			return w * BITS_PER_LONG + (size_t)(BITS_PER_LONG - 1 - __builtin_clzl(word));
		if (!w)
			return before;
		word = map[--w] ^ invert;
	}
}

size_t bitmap_last_set_before(const unsigned long *map, size_t before)
{
	return find_last(map, before, 0UL);
}

size_t bitmap_last_clear_before(const unsigned long *map, size_t before)
{
	return find_last(map, before, ~0UL);
}

size_t bitmap_weight_range(const unsigned long *map, size_t start, size_t end)
{
	size_t n = 0;

	if (start >= end)
		return 0;
	size_t w = WORD(start), we = WORD(end - 1);
	unsigned long first = MASK_FROM(BIT(start));
	unsigned long last = MASK_BELOW(BIT(end - 1) + 1);

	if (w == we)
		return (size_t)__builtin_popcountl(map[w] & first & last);
	n += (size_t)__builtin_popcountl(map[w++] & first);
	while (w < we)
		n += (size_t)__builtin_popcountl(map[w++]);
	return n + (size_t)__builtin_popcountl(map[we] & last);
}

bool bitmap_range_clear(const unsigned long *map, size_t start, size_t end)
{
	return bitmap_next_set(map, end, start) >= end;
}

bool bitmap_range_set(const unsigned long *map, size_t start, size_t end)
{
	return bitmap_next_clear(map, end, start) >= end;
}

/*
 * Small areas: test every aligned start of a word at once.  free has a bit
 * set where a run of nr clear bits starts (looking into the next word for
 * runs that cross), masked to the aligned positions.
 */
static size_t find_small_zero_area(const unsigned long *map, size_t size, size_t start,
				   size_t nr, size_t align_mask)
{
	unsigned long aligned = align_mask == 63 ? 1UL : ~0UL / ((2UL << align_mask) - 1);
	size_t w = WORD(start), nwords = BITS_TO_LONGS(size);
	unsigned long first = MASK_FROM(BIT(start));

	for (; w < nwords; w++, first = ~0UL) {
		unsigned long cur = ~map[w];
		unsigned long next = w + 1 < nwords ? ~map[w + 1] : 0;
		unsigned long f = cur & aligned & first;

		for (size_t k = 1; f && k < nr; k++)
			f &= (cur >> k) | (next << (BITS_PER_LONG - k));
		if (f) {
			size_t pos = w * BITS_PER_LONG + (size_t)__builtin_ctzl(f);

			return pos + nr <= size ? pos : size;
		}
	}
	return size;
}

size_t bitmap_find_zero_area(const unsigned long *map, size_t size, size_t start,
			     size_t nr, size_t align_mask)
{
	if (start >= size)
		return size;
	if (nr <= 8 && align_mask < (size_t)BITS_PER_LONG && align_mask)
		return find_small_zero_area(map, size, start, nr, align_mask);
	for (;;) {
		size_t idx = bitmap_next_clear(map, size, start);

		idx = (idx + align_mask) & ~align_mask;
		if (idx >= size || nr > size - idx)
			return size;
		size_t busy = bitmap_next_set(map, idx + nr, idx);

		if (busy >= idx + nr)
			return idx;
		start = busy + 1;
	}
}

bool bitmap_next_clear_run(const unsigned long *map, size_t end, size_t *s, size_t *e)
{
	size_t rs = bitmap_next_clear(map, end, *s);

	if (rs >= end)
		return false;
	*s = rs;
	*e = bitmap_next_set(map, end, rs + 1);
	return true;
}

bool bitmap_next_set_run(const unsigned long *map, size_t end, size_t *s, size_t *e)
{
	size_t rs = bitmap_next_set(map, end, *s);

	if (rs >= end)
		return false;
	*s = rs;
	*e = bitmap_next_clear(map, end, rs + 1);
	return true;
}

void bitmap_clear_range_shared(unsigned long *map, size_t start, size_t len)
{
	while (len) {
		size_t w = start / BITS_PER_LONG, n = (size_t)BITS_PER_LONG - start % BITS_PER_LONG;

		if (n > len)
			n = len;
		bitmap_word_store_shared(map, w, map[w] & ~bitmap_word_mask(start, n));
		start += n;
		len -= n;
	}
}
