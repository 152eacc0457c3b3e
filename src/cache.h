/*
 * cache.h - per-CPU caches of free objects in front of the chunk
 * allocator, for the allocation entry points (alloc.c): their fast paths,
 * inline here so that a cache hit makes no call; the slow halves (refill,
 * a full bin, memory-checker annotations), draining and set-up in cache.c.
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
#include "chunk.h"
#include "memcheck.h"
#include "pool.h"

/* May an allocation of size bytes (a multiple of 4) at align (0 or a power
 * of two) with flags come from a cache? */
static inline bool cache_serves(size_t size, size_t align, unsigned int flags)
{
	return pcpu_cache_enabled && size <= CACHE_MAX_SIZE &&
	       (align <= PCPU_MIN_ALLOC_BYTES || align <= cache_class_align(size)) &&
	       !(flags & ~(PCPU_ATOMIC | PCPU_NOWARN));
}

/* ---- the fast paths, inline in the entry points ---------------------------- */

/* Slow halves (cache.c). */
void *cache_alloc_empty(struct pcpu_cache *c, size_t size, unsigned int flags, bool *zeroed);
void cache_annotate(void *handle, int bits, bool usable);
int cache_free_full(struct pcpu_cache *c, struct cache_bin *b, void *handle, unsigned long *live,
		    size_t bit, int bits);

/* Lock mode: the unit the thread last found itself on, plus 1 (0: not yet
 * looked).  Any cache may be locked from anywhere in that mode, so a stale
 * value costs locality only; cache_lock_this refreshes it. */
extern __thread unsigned int cache_home_cpu
	__attribute__((tls_model("initial-exec"), visibility("hidden")));

/*
 * The fast paths' lock: the calling CPU's cache (in lock mode, the home
 * unit's), else the first of its spares that is free, locked; NULL when all
 * are taken (or, in rseq mode, there is none for this CPU: more CPUs than
 * units): the caller takes the slow path, then the pool.  Makes no call.
 */
static inline __attribute__((always_inline)) struct pcpu_cache *cache_lock_fast(void)
{
	struct pcpu_cache *c;
	unsigned int cpu;

	if (__builtin_expect(cache_lock_rseq, 1)) {
		c = (struct pcpu_cache *)cache_lock_here_rseq((char *)caches, sizeof(*caches),
							      nr_caches);
		if (__builtin_expect(c != NULL, 1))
			return c;
		cpu = os_rseq_read(cache_lock_area + OS_RSEQ_CPU_ID);
	} else {
		cpu = cache_home_cpu - 1;
		if (cpu >= nr_caches)
			return NULL;
		c = &caches[cpu];
		if (__builtin_expect(cache_lock_try(&c->lk), 1))
			return c;
	}
	if (cpu >= nr_caches)
		return NULL;
	for (unsigned int s = 1; s <= CACHE_SPARES; s++) {
		c = cache_of(cpu, s);
		if (cache_lock_try(&c->lk))
			return c;
	}
	return NULL;
}

/* The slow paths' lock: cache_lock_fast, the home unit refreshed first in
 * lock mode. */
static inline struct pcpu_cache *cache_lock_this(void)
{
	if (!cache_lock_rseq)
		cache_home_cpu = pcpu_current_cpu() + 1;
	return cache_lock_fast();
}

static inline void cache_unlock(struct pcpu_cache *c)
{
	cache_lock_release(&c->lk);
}

/* The caller holds c and b (of size's class) is not empty: pop an object and
 * make it live (whether it reads zero in *zeroed); unlocks c. */
static inline __attribute__((always_inline)) void *cache_hand_out(struct pcpu_cache *c,
								   struct cache_bin *b, size_t size,
								   bool *zeroed)
{
	void *h = b->slots[--b->n];

	*zeroed = b->n < b->clean;
	if (*zeroed)
		b->clean = b->n;

	/* Live from here: the object belongs to the user. */
	bit_set_atomic(pool_live_words(), pool_live_bit(h));
	b->nr_alloc++;
	c->bytes -= size;
	__atomic_store_n(&c->net, c->net + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&c->used, 1, __ATOMIC_RELAXED);
	cache_unlock(c);
	return h;
}

/*
 * The allocation fast path: an object of size bytes from the calling CPU's
 * cache, live, not annotated for memory checkers, zeroed if *zeroed.  NULL
 * when the cache is busy or that bin is empty (the caller takes
 * cache_alloc's path).
 */
static inline __attribute__((always_inline)) void *cache_pop(size_t size, bool *zeroed)
{
	struct pcpu_cache *c = cache_lock_fast();
	struct cache_bin *b;

	if (__builtin_expect(!c, 0))
		return NULL;
	b = &c->bins[size / PCPU_MIN_ALLOC_BYTES - 1];
	if (__builtin_expect(b->n == 0, 0)) {
		cache_unlock(c);
		return NULL;
	}
	return cache_hand_out(c, b, size, zeroed);
}

/*
 * An object of size bytes from the calling CPU's cache, refilled in a
 * batch from populated pages when empty; live, zeroed if *zeroed.  NULL
 * when the cache is busy or nothing is populated: the caller takes the
 * pool's path (which may populate).
 */
static inline void *cache_alloc(size_t size, unsigned int flags, bool *zeroed)
{
	struct pcpu_cache *c = cache_lock_this();
	struct cache_bin *b;
	void *h;

	if (__builtin_expect(!c, 0))
		return NULL;
	b = &c->bins[size / PCPU_MIN_ALLOC_BYTES - 1];
	if (__builtin_expect(b->n == 0, 0))
		return cache_alloc_empty(c, size, flags, zeroed);      /* unlocks c */
	h = cache_hand_out(c, b, size, zeroed);
	if (memcheck_active())
		cache_annotate(h, (int)(size / PCPU_MIN_ALLOC_BYTES), true);
	return h;
}

/*
 * Whether an object of `bits` bits at byte offset off of its chunk may go
 * to a cache: every cached object is aligned to its class.  (The class
 * alignment, the lowest set bit of the size capped at CACHE_MAX_ALIGN,
 * divides off exactly when off's low bits below it are clear.)
 */
static inline bool cache_takes(int bits, int off)
{
	size_t size = (size_t)bits * PCPU_MIN_ALLOC_BYTES;

	return !((size_t)off & (CACHE_MAX_ALIGN - 1) & ~size & (size - 1));
}

/* The caller holds c, and b (the class of handle, `size` bytes) has room:
 * push the handle, its live bit already cleared; unlocks c. */
static inline __attribute__((always_inline)) void cache_take_back(struct pcpu_cache *c,
								  struct cache_bin *b, void *handle,
								  size_t size)
{
	b->slots[b->n++] = handle;
	b->nr_dealloc++;
	c->bytes += size;
	__atomic_store_n(&c->net, c->net - 1, __ATOMIC_RELAXED);
	__atomic_store_n(&c->used, 1, __ATOMIC_RELAXED);
	cache_unlock(c);
}

/*
 * The free fast path: put the live allocation of `bits` bits (a cacheable
 * size, class-aligned, not reserved, memory checkers off) whose live bit
 * is `bit` of `live` into the calling CPU's cache.  False when the cache
 * is busy or that bin full, or the live bit was found clear (nothing
 * changed in any case: the caller takes cache_free's path, which sorts
 * them out).
 */
static inline __attribute__((always_inline)) bool cache_push(void *handle, unsigned long *live,
							    size_t bit, int bits)
{
	size_t size = (size_t)bits * PCPU_MIN_ALLOC_BYTES;
	struct pcpu_cache *c = cache_lock_fast();
	struct cache_bin *b;

	if (__builtin_expect(!c, 0))
		return false;
	b = &c->bins[bits - 1];
	/* The live bit is taken only with the lock held and room in the bin:
	 * the object is live or cached at every moment a checker can see. */
	if (__builtin_expect(b->n == b->cap || c->bytes + size > cache_limit ||
			     !bit_test_and_clear_atomic(live, bit), 0)) {
		cache_unlock(c);
		return false;
	}
	cache_take_back(c, b, handle, size);
	return true;
}

/*
 * Take back the handle at byte offset off of chunk index idx (located with
 * pool_handle_locate; its live map exists).  Returns its size in bits if
 * the calling CPU's cache took it (its live bit cleared), 0 if the cache
 * cannot (busy, full, not a cacheable size or alignment: the caller frees
 * it to its chunk, the live bit still set), -1 if it is not a live
 * allocation (nothing changed: the caller aborts).
 */
static inline int cache_free(void *handle, size_t idx, int off)
{
	unsigned long *live = pool_live_map(idx);
	size_t bit = (size_t)off / PCPU_MIN_ALLOC_BYTES, size;
	struct pcpu_chunk *ch;
	struct pcpu_cache *c;
	struct cache_bin *b;
	int bits;

	/* Sized without a lock: a live allocation's boundary bits are stable
	 * while its owner, the caller, frees it. */
	if (!bit_test_atomic(live, bit))
		return -1;
	ch = pool_live_chunk(idx, off);
	bits = chunk_area_bits_shared(ch->map, (int)bit, CACHE_MAX_SIZE / PCPU_MIN_ALLOC_BYTES);
	size = (size_t)bits * PCPU_MIN_ALLOC_BYTES;
	if (!bits || ch == pcpu_pool.reserved_chunk || !cache_takes(bits, off))
		return 0;
	if (memcheck_active())
		cache_annotate(handle, bits, false);
	if (!(c = cache_lock_this()))
		return 0;
	b = &c->bins[bits - 1];
	if (__builtin_expect(b->n == b->cap || c->bytes + size > cache_limit, 0))
		return cache_free_full(c, b, handle, live, bit, bits);     /* unlocks c */
	if (!bit_test_and_clear_atomic(live, bit)) {
		cache_unlock(c);
		return -1;              /* freed by another thread meanwhile */
	}
	cache_take_back(c, b, handle, size);
	return bits;
}

/*
 * Tests only.  cache_test_hold takes (hold) or drops the lock of CPU cpu's
 * cache (which 0) or of its spare number which (1 to CACHE_SPARES), leaving
 * it held as a fast path preempted inside would; -1 if there is no such
 * cache.  While one is held nothing may take every cache's lock
 * (pcpu_stats_get, pcpu_verify, pcpu_balance, fork).
 * cache_test_count: objects held now by the CPUs' caches or by the spares
 * (read without their locks: for a test whose other threads are quiet).
 */
int cache_test_hold(unsigned int cpu, unsigned int which, bool hold);
size_t cache_test_count(bool spares);
/* Tests only: where the slots of CPU cpu's cache (which 0) or spare which
 * lie, in *start; their bytes, 0 if there is no such cache. */
size_t cache_test_slots(unsigned int cpu, unsigned int which, void **start);

#endif
