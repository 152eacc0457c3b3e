/*
 * areamap.c - the area-map in-chunk allocator (see areamap.h).
 *
 * Layout: ent[0 .. nr_areas - 1] are the starts of the areas that tile the
 * region, in increasing order, each with bit 0 set when the area is in use;
 * ent[nr_areas] is the region end with bit 0 set, so area i always spans
 * [ent[i] & ~1, ent[i + 1] & ~1).  Because starts are even and distinct,
 * the raw entries (flag included) are strictly increasing too, which lets
 * a free find its entry by binary search on off | 1.
 */
#include "areamap.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AM_MIN_SIZE   4         /* smallest area worth tracking, in bytes */
#define AM_INIT_ENTS  16        /* first array size, as in the old kernel */

struct areamap {
	int *ent;               /* area starts | in-use bit, then the end | 1 */
	int nr_areas;           /* areas described; ent[nr_areas] is the end */
	int cap;                /* entries allocated in ent */
	int first_free;         /* no free area has a smaller index */
	int contig_hint;        /* >= every free area's size */
	int free_bytes;         /* sum of the free areas */
	int end;                /* region size in bytes */
	int head;               /* hidden head bytes (area 0 when non-zero) */
};

static inline int max_int(int a, int b)
{
	return a > b ? a : b;
}

struct areamap *areamap_create(int unit_bytes, size_t head_bytes)
{
	struct areamap *am;

	if (unit_bytes <= 0 || unit_bytes % AM_MIN_SIZE || unit_bytes == INT_MAX ||
	    head_bytes % AM_MIN_SIZE || head_bytes >= (size_t)unit_bytes)
		return NULL;
	am = calloc(1, sizeof(*am));
	if (!am)
		return NULL;
	am->cap = AM_INIT_ENTS;
	am->ent = malloc(sizeof(am->ent[0]) * am->cap);
	if (!am->ent) {
		free(am);
		return NULL;
	}
	am->end = unit_bytes;
	am->head = (int)head_bytes;
	if (am->head) {
		/* the hidden head is an in-use area that has no way out */
		am->ent[0] = 0 | 1;
		am->ent[1] = am->head;
		am->nr_areas = 2;
		am->first_free = 1;
	} else {
		am->ent[0] = 0;
		am->nr_areas = 1;
		am->first_free = 0;
	}
	am->ent[am->nr_areas] = unit_bytes | 1;
	am->free_bytes = unit_bytes - am->head;
	am->contig_hint = am->free_bytes;
	return am;
}

void areamap_destroy(struct areamap *am)
{
	if (!am)
		return;
	free(am->ent);
	free(am);
}

/* Double the entry array; the old kernel extended its map the same way. */
static int areamap_grow(struct areamap *am)
{
	int ncap = am->cap * 2;
	int *nent;

	if (ncap <= am->cap)
		return -1;
	nent = realloc(am->ent, sizeof(nent[0]) * (size_t)ncap);
	if (!nent)
		return -1;
	am->ent = nent;
	am->cap = ncap;
	return 0;
}

/*
 * Carve `size` bytes at `head` bytes into free area i (start `start`,
 * length `len`, known to fit).  `max_contig` and `seen_free` carry what the
 * scan learnt about the free areas it passed.  Returns the offset.
 */
static int areamap_take(struct areamap *am, int i, int start, int len, int head,
			int size, int max_contig, bool seen_free)
{
	int *p = am->ent + i;
	int tail, extra;

	/*
	 * A head too small to track, or one that borders a free area, is not
	 * given an entry of its own: it joins the area before.  If that area
	 * is in use the bytes are simply lost to it.  (With 4-byte granules
	 * and merged free areas neither case arises in practice, but the old
	 * allocator handled them and so do we.)
	 */
	if (head && i > 0 && (head < AM_MIN_SIZE || !(p[-1] & 1))) {
		start += head;
		*p = start;
		if (p[-1] & 1)
			am->free_bytes -= head;
		else
			max_contig = max_int(max_contig, start - p[-1]);
		len -= head;
		head = 0;
	}

	/* a tail too small to track stays with the allocation */
	tail = len - head - size;
	if (tail < AM_MIN_SIZE) {
		size = len - head;
		tail = 0;
	}

	extra = (head != 0) + (tail != 0);
	if (extra) {
		/* open room for the new entries: everything after i moves up */
		memmove(p + 1 + extra, p + 1, sizeof(*p) * (size_t)(am->nr_areas - i));
		am->nr_areas += extra;
		if (head) {
			/* area i stays free and shrinks to the head */
			if (!seen_free) {
				am->first_free = i;
				seen_free = true;
			}
			max_contig = max_int(max_contig, head);
			start += head;
			*++p = start;
			i++;
		}
		if (tail) {
			p[1] = start + size;
			max_contig = max_int(max_contig, tail);
		}
	}

	if (!seen_free)
		am->first_free = i + 1;

	/*
	 * If the taken area is the last one, the scan has seen every free
	 * area and the hint becomes exact; otherwise it can only be raised
	 * by what was seen (it stays an upper bound).
	 */
	if (i + 1 == am->nr_areas)
		am->contig_hint = max_contig;
	else
		am->contig_hint = max_int(am->contig_hint, max_contig);

	am->free_bytes -= size;
	*p |= 1;
	return start;
}

int areamap_alloc(struct areamap *am, size_t size_in, size_t align_in)
{
	int size, mask, max_contig = 0;
	bool seen_free = false;
	const int *ent;

	if (size_in == 0 || size_in > (size_t)am->end || align_in > (size_t)am->end ||
	    (align_in & (align_in - 1)))
		return -1;
	size = (int)((size_in + AM_MIN_SIZE - 1) & ~(size_t)(AM_MIN_SIZE - 1));
	mask = align_in < AM_MIN_SIZE ? AM_MIN_SIZE - 1 : (int)align_in - 1;

	/* the old allocator's caller skipped a chunk whose hint was too small */
	if (size > am->contig_hint)
		return -1;
	/* keep room for the two entries a split may add */
	if (am->cap < am->nr_areas + 3 && areamap_grow(am))
		return -1;

	ent = am->ent;
	for (int i = am->first_free; i < am->nr_areas; i++) {
		int start = ent[i], len, head;

		if (start & 1)
			continue;
		len = (ent[i + 1] & ~1) - start;
		head = ((start + mask) & ~mask) - start;
		if (len >= head + size)
			return areamap_take(am, i, start, len, head, size,
					    max_contig, seen_free);
		if (!seen_free) {
			am->first_free = i;
			seen_free = true;
		}
		max_contig = max_int(max_contig, len);
	}

	/* scanned to the end without a fit: the hint is now exact */
	am->contig_hint = max_contig;
	return -1;
}

/* Index of the entry equal to key, or -1 (binary search over ent[0, n)). */
static int areamap_find(const struct areamap *am, int key)
{
	int lo = 0, hi = am->nr_areas;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		int v = am->ent[mid];

		if (v < key)
			lo = mid + 1;
		else if (v > key)
			hi = mid;
		else
			return mid;
	}
	return -1;
}

int areamap_free(struct areamap *am, int off)
{
	int i, freed, drop = 0;
	int *p;

	if (off < 0 || off >= am->end || (off & 1))
		return -1;
	/* an in-use area starting at off is stored as off | 1 */
	i = areamap_find(am, off | 1);
	if (i < 0 || (i == 0 && am->head))
		return -1;

	if (i < am->first_free)
		am->first_free = i;
	p = am->ent + i;
	*p = off;
	freed = (p[1] & ~1) - off;
	am->free_bytes += freed;

	/* merge with a free area after, then with a free area before */
	if (!(p[1] & 1))
		drop++;
	if (i > 0 && !(p[-1] & 1)) {
		drop++;
		i--;
		p--;
	}
	if (drop) {
		am->nr_areas -= drop;
		memmove(p + 1, p + 1 + drop, sizeof(*p) * (size_t)(am->nr_areas - i));
	}

	/* the merged area is free and bounded by in-use entries: raise the hint */
	am->contig_hint = max_int(am->contig_hint, (p[1] & ~1) - *p);
	return freed;
}

int areamap_contig_bytes(const struct areamap *am)
{
	return am->contig_hint;
}

int areamap_free_bytes(const struct areamap *am)
{
	return am->free_bytes;
}

int areamap_nr_areas(const struct areamap *am)
{
	return am->nr_areas;
}

int areamap_verify(const struct areamap *am, char *msg, size_t len)
{
	int free_sum = 0, largest = 0;

#define AM_FAIL(...) do { snprintf(msg, len, __VA_ARGS__); return -1; } while (0)
	if (am->nr_areas < 1 || am->nr_areas + 1 > am->cap)
		AM_FAIL("nr_areas %d outside [1, cap %d - 1]", am->nr_areas, am->cap);
	if ((am->ent[0] & ~1) != 0)
		AM_FAIL("first area starts at %d, not 0", am->ent[0] & ~1);
	if (am->ent[am->nr_areas] != (am->end | 1))
		AM_FAIL("terminator is %d, expected %d", am->ent[am->nr_areas], am->end | 1);
	if (am->head && (am->ent[0] != 1 || am->nr_areas < 2 || (am->ent[1] & ~1) < am->head))
		AM_FAIL("hidden head of %d bytes lost (ent[0]=%d)", am->head, am->ent[0]);
	if (am->first_free < 0 || am->first_free > am->nr_areas)
		AM_FAIL("first_free %d outside [0, %d]", am->first_free, am->nr_areas);

	for (int i = 0; i < am->nr_areas; i++) {
		int s = am->ent[i] & ~1, e = am->ent[i + 1] & ~1;
		bool used = am->ent[i] & 1;

		if (e <= s)
			AM_FAIL("area %d is empty or out of order: [%d, %d)", i, s, e);
		if (used)
			continue;
		if (i < am->first_free)
			AM_FAIL("free area %d [%d, %d) below first_free %d", i, s, e,
				am->first_free);
		if (!(am->ent[i + 1] & 1))
			AM_FAIL("free areas %d and %d are adjacent (not merged) at %d",
				i, i + 1, e);
		free_sum += e - s;
		largest = max_int(largest, e - s);
	}
	if (free_sum != am->free_bytes)
		AM_FAIL("free areas add up to %d, free_bytes says %d", free_sum, am->free_bytes);
	if (am->contig_hint < largest)
		AM_FAIL("contig hint %d under-estimates the largest free area %d",
			am->contig_hint, largest);
	if (am->contig_hint > am->end - am->head)
		AM_FAIL("contig hint %d exceeds the usable region %d",
			am->contig_hint, am->end - am->head);
#undef AM_FAIL
	return 0;
}
