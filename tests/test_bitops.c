/*
 * test_bitops.c - every bit operation against a naive bit-at-a-time model,
 * on random maps of random sizes, including word-boundary edges.
 */
#include <string.h>

#include "bitops.h"
#include "check.h"

#define MAXBITS 700

static bool ref[MAXBITS];
static unsigned long map[BITS_TO_LONGS(MAXBITS)];

static void randomise(size_t size)
{
	int density = (int)rng_below(5);   /* 0: sparse .. 4: dense, plus runs */

	memset(map, 0, sizeof(map));
	for (size_t i = 0; i < size; i++) {
		bool v;

		if (density == 4 && i && rng_below(8))
			v = ref[i - 1];                    /* long runs */
		else
			v = rng_below(4) < (uint64_t)density;
		ref[i] = v;
		if (v)
			bit_set(map, i);
	}
}

static size_t ref_next(size_t size, size_t start, bool val)
{
	for (size_t i = start; i < size; i++)
		if (ref[i] == val)
			return i;
	return size;
}

static size_t ref_last(size_t before, bool val)
{
	for (size_t i = before; i-- > 0;)
		if (ref[i] == val)
			return i;
	return before;
}

static size_t ref_zero_area(size_t size, size_t start, size_t nr, size_t mask)
{
	for (size_t i = (start + mask) & ~mask; i + nr <= size; i += mask + 1) {
		size_t j = 0;

		while (j < nr && !ref[i + j])
			j++;
		if (j == nr)
			return i;
	}
	return size;
}

int main(int argc, char **argv)
{
	test_seed(argc, argv);

	for (int iter = 0; iter < 20000; iter++) {
		size_t size = 1 + rng_below(MAXBITS);
		size_t a = rng_below(size + 1), b = rng_below(size + 1);

		if (a > b) {
			size_t t = a; a = b; b = t;
		}
		randomise(size);

		CHECK(bitmap_next_set(map, size, a) == ref_next(size, a, true), "next_set size %zu a %zu", size, a);
		CHECK(bitmap_next_clear(map, size, a) == ref_next(size, a, false), "next_clear size %zu a %zu", size, a);
		CHECK(bitmap_last_set_before(map, b) == ref_last(b, true), "last_set b %zu", b);
		CHECK(bitmap_last_clear_before(map, b) == ref_last(b, false), "last_clear b %zu", b);

		size_t w = 0;
		for (size_t i = a; i < b; i++)
			w += ref[i];
		CHECK(bitmap_weight_range(map, a, b) == w, "weight [%zu,%zu)", a, b);
		CHECK(bitmap_range_clear(map, a, b) == (w == 0), "range_clear [%zu,%zu)", a, b);
		CHECK(bitmap_range_set(map, a, b) == (w == b - a), "range_set [%zu,%zu)", a, b);

		size_t nr = 1 + rng_below(80), mask = (1u << rng_below(7)) - 1;
		CHECK(bitmap_find_zero_area(map, size, a, nr, mask) == ref_zero_area(size, a, nr, mask),
		      "zero_area size %zu start %zu nr %zu mask %zu", size, a, nr, mask);

		/* Run iteration: the runs reproduce the map inside [a, b). */
		size_t s, e, covered = 0;
		bool ok = true;
		for (s = a; bitmap_next_clear_run(map, b, &s, &e); s = e) {
			for (size_t i = s; i < e; i++)
				ok &= !ref[i];
			ok &= e == b || ref[e];
			ok &= s == a || ref[s - 1];
			covered += e - s;
		}
		CHECK(ok && covered == (b - a) - w, "clear runs in [%zu,%zu)", a, b);
		covered = 0;
		ok = true;
		for (s = a; bitmap_next_set_run(map, b, &s, &e); s = e) {
			for (size_t i = s; i < e; i++)
				ok &= ref[i];
			ok &= e == b || !ref[e];
			covered += e - s;
		}
		CHECK(ok && covered == w, "set runs in [%zu,%zu)", a, b);

		/* Set and clear a range, compare every bit. */
		size_t len = b - a;
		bool set = rng_below(2);
		if (set)
			bitmap_set_range(map, a, len);
		else
			bitmap_clear_range(map, a, len);
		for (size_t i = a; i < b; i++)
			ref[i] = set;
		ok = true;
		for (size_t i = 0; i < size; i++)
			ok &= bit_test(map, i) == ref[i];
		CHECK(ok, "%s_range(%zu, %zu) size %zu", set ? "set" : "clear", a, len, size);
		/* Nothing past `size` in the last word was touched by ranges inside it. */
	}
	TEST_DONE();
}
