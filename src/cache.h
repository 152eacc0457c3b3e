/*
 * cache.h - per-CPU caches of free objects in front of the chunk
 * allocator (cache.c), for the allocation entry points (alloc.c).
 *
 * Objects of up to CACHE_MAX_SIZE bytes, in classes of every multiple of 4
 * bytes, each aligned to its class's natural alignment (the largest power
 * of two dividing the size, at most CACHE_MAX_ALIGN).  A cached object is
 * allocated in its chunk's maps but is not live: its bit in the pool's
 * live map is clear, so freeing it again is detected exactly.
 */
#ifndef PCPU_CACHE_H
#define PCPU_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "cache_bins.h"
#include "pool.h"

/* May an allocation of size bytes (a multiple of 4) at align (0 or a power
 * of two) with flags come from a cache? */
static inline bool cache_serves(size_t size, size_t align, unsigned int flags)
{
	return pcpu_cache_enabled && size <= CACHE_MAX_SIZE && align <= cache_class_align(size) &&
	       !(flags & ~(PCPU_ATOMIC | PCPU_NOWARN));
}

/*
 * An object of size bytes from the calling CPU's cache, refilled in a
 * batch from populated pages when empty; live, not yet zeroed.  NULL when
 * the cache is busy or nothing is populated: the caller takes the pool's
 * path (which may populate).
 */
void *cache_alloc(size_t size, unsigned int flags);

/*
 * Take back the handle at byte offset off of chunk index idx (located with
 * pool_handle_locate; its live map exists).  Returns its size in bits if
 * the calling CPU's cache took it (its live bit cleared), 0 if the cache
 * cannot (busy, full, not a cacheable size or alignment: the caller frees
 * it to its chunk, the live bit still set), -1 if it is not a live
 * allocation (nothing changed: the caller aborts).
 */
int cache_free(void *handle, size_t idx, int off);

/*
 * Tests only.  cache_test_hold takes (hold) or drops the lock of CPU cpu's
 * cache, or of its spare, leaving it held as a fast path preempted inside
 * would; -1 if there is no such cache.  While one is held nothing may take
 * every cache's lock (pcpu_stats_get, pcpu_verify, pcpu_balance, fork).
 * cache_test_count: objects held now by the CPUs' caches or by the spares
 * (read without their locks: for a test whose other threads are quiet).
 */
int cache_test_hold(unsigned int cpu, bool spare, bool hold);
size_t cache_test_count(bool spares);

#endif
