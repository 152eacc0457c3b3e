/*
 * areamap.h - the area-map in-chunk allocator, the evaluation's baseline.
 *
 * This is the allocator the kernel's bitmap allocator replaced, rebuilt
 * from its published description so the benchmark can run both side by
 * side.  A chunk's region is described by a sorted array of area start
 * offsets; the low bit of each entry says "in use".  Allocation is first
 * fit from a first-free index, guarded by a contig hint; splitting and
 * merging areas shifts the tail of the array with memmove.
 *
 * Sizes are rounded up to 4 bytes and alignments raised to 4 (as the
 * bitmap allocator does), so every area start is even and the low bit is
 * free for the in-use flag.
 *
 * Invariants checked by areamap_verify():
 *   - entries are strictly increasing, the first starts at 0 and a
 *     terminating in-use entry sits at the region end;
 *   - no area is empty and no two free areas are adjacent (frees merge);
 *   - the free areas add up to areamap_free_bytes();
 *   - no free area sits below the first-free index;
 *   - the contig hint never under-estimates: it is >= every free area
 *     (it may be stale-high after allocations, as in the old design; it is
 *     exact after any allocation whose scan reached the end of the map,
 *     and after any failed scan), and it is <= the usable region size.
 */
#ifndef PCPU_BENCH_AREAMAP_H
#define PCPU_BENCH_AREAMAP_H

#include <stddef.h>

struct areamap;

/*
 * A region of unit_bytes bytes (a multiple of 4) whose first head_bytes
 * (a multiple of 4, may be 0) are a hidden, never-freeable allocation.
 * NULL on bad arguments or no memory.
 */
struct areamap *areamap_create(int unit_bytes, size_t head_bytes);
void areamap_destroy(struct areamap *am);

/* First-fit allocation: byte offset, or -1 when nothing fits. */
int areamap_alloc(struct areamap *am, size_t size, size_t align);

/* Free the allocation starting at off: bytes freed, or -1 if off is not
 * the start of a live allocation (the map is then left unchanged). */
int areamap_free(struct areamap *am, int off);

int areamap_contig_bytes(const struct areamap *am);  /* the contig hint */
int areamap_free_bytes(const struct areamap *am);
int areamap_nr_areas(const struct areamap *am);      /* entries in use, terminator excluded */

/* Check the invariants above: 0, or -1 with the first violation in msg. */
int areamap_verify(const struct areamap *am, char *msg, size_t len);

#endif
