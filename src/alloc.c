/*
 * alloc.c - the public allocation entry points: pcpu_alloc*, pcpu_free,
 * pcpu_alloc_size, pcpu_nr_cpus.
 *
 * An allocation of a cached size (up to 256 bytes) is a pop from the
 * calling CPU's cache, a free of one a push (cache.h, inline here: a hit
 * makes no call).  Otherwise an allocation first looks for room on
 * populated pages holding only the pool's metadata lock (the path atomic
 * allocations take, which therefore makes no system call).  Only when
 * that fails does a blocking allocation take the population mutex,
 * search again allowing unpopulated pages, create a chunk if nothing
 * fits, and populate the pages under its new area before returning.
 * Memory is zeroed in every unit outside both locks.  A free validates
 * the handle before anything changes and aborts on anything that is not
 * a live allocation.
 */
#include <errno.h>
#include <string.h>

#include "cache.h"
#include "diag.h"
#include "memcheck.h"
#include "pool_chunk.h"
#include "pool_init.h"
#include "pool_verify.h"
#include "probes.h"

#define KNOWN_FLAGS (PCPU_ATOMIC | PCPU_RESERVED | PCPU_NOWARN)

/* The probe's reason code (probes.h) for a failure message (unused when
 * probes compile to nothing). */
static inline __attribute__((unused)) int fail_reason(unsigned flags, const char *msg)
{
	if (flags & PCPU_RESERVED)
		return PCPU_FAIL_RESERVED;
	if (flags & PCPU_ATOMIC)
		return PCPU_FAIL_ATOMIC;
	return msg && strstr(msg, "populate") ? PCPU_FAIL_POPULATE : PCPU_FAIL_NOSPACE;
}

/* The size's switch outside the loop: a few stores per unit.  `small`:
 * size is at most 64 (no call at all). */
static inline __attribute__((always_inline)) void zero_units(void *handle, size_t size, bool small)
{
	unsigned int n = pcpu_pool.nr_cpus;

#define Z(k) case k:                                                   \
		for (unsigned int cpu = 0; cpu < n; cpu++)                    \
			__builtin_memset(pcpu_ptr(handle, cpu), 0, k);         \
		return
	switch (size) {
	Z(4); Z(8); Z(12); Z(16); Z(20); Z(24); Z(28); Z(32);
	Z(36); Z(40); Z(44); Z(48); Z(52); Z(56); Z(60); Z(64);
	default:
		if (small)
			__builtin_unreachable();
		for (unsigned int cpu = 0; cpu < n; cpu++)
			memset(pcpu_ptr(handle, cpu), 0, size);
	}
#undef Z
}

/* A failed allocation: counted, reported (deferred on the atomic path, which
 * may make no system call), errno ENOMEM.  `lock` held on entry, not on return. */
static void *alloc_failed(size_t size, size_t align, unsigned flags, const char *err)
{
	bool atomic = flags & PCPU_ATOMIC;

	pcpu_pool.stats.nr_alloc_fail++;
	if (atomic) {
		pcpu_pool.stats.nr_atomic_fail++;
		pool_unlock_atomic();
		pool_want_balance(POOL_BALANCE_ATOMIC);
		pcpu_warn_defer(PCPU_WARN_ATOMIC, flags);
	} else {
		pcpu_unlock(&pcpu_pool.lock);
		pcpu_warn(PCPU_WARN_NOMEM, flags, "pcpu_alloc(size %zu, align %zu, flags %#x) failed: %s",
			  size, align, flags, err);
	}
	PCPU_PROBE(alloc_fail, size, align, flags, fail_reason(flags, err), err);
	pool_after_op(POOL_OP_ALLOC, NULL);
	errno = ENOMEM;
	return NULL;
}

/* A successful allocation of a live handle: the balancer told, the probe
 * fired, the memory zeroed in every unit (unless it is known to read zero:
 * pool_area_is_zero). */
static inline __attribute__((always_inline)) void *alloc_done(void *handle, size_t size, size_t align, unsigned int flags,
			       bool zeroed)
{
	/* The balancer hears of a low pool: by the flag alone on the atomic
	 * path, by a wake-up (a system call) elsewhere. */
	if (!(flags & PCPU_ATOMIC) && __builtin_expect(pool_balance_unkicked(), 0))
		pool_kick_balance(0);
	(void)align;            /* only the probe reads it */
	if (PCPU_PROBES_ENABLED) {
		size_t idx;
		int off;

		pool_handle_split(handle, &idx, &off);
		PCPU_PROBE(alloc, size, align, flags, handle, idx, (size_t)off);
	}
	if (!zeroed)
		zero_units(handle, size, false);
	pool_after_op(POOL_OP_ALLOC, handle);
	return handle;
}

/*
 * Everything but a cache hit: initialisation, invalid requests, sizes the
 * caches do not serve, busy caches, failures.  `cache_tried`: the fast
 * path found the caches busy or empty of populated space.
 */
static __attribute__((noinline)) void *alloc_slow(size_t size, size_t align, unsigned int flags,
						  bool cache_tried)
{
	struct pcpu_chunk *ch = NULL;
	int bits, align_bits, req_align_bits, off = -1;
	bool zeroed = false;
	const char *err;

	if (pool_ensure_init())
		return NULL;
	/* align 0 means "no requirement"; any other align must be a power of
	 * two (checked before rounding up to 4, so 3 is refused). */
	if (!size || size > pcpu_pool.unit_size || (align & (align - 1)) ||
	    align > pcpu_pool.page_size || (flags & ~KNOWN_FLAGS)) {
		if (flags & PCPU_ATOMIC)        /* no system call, even to say so */
			pcpu_warn_defer(PCPU_WARN_INVALID, flags);
		else
			pcpu_warn(PCPU_WARN_INVALID, flags, "pcpu_alloc(size %zu, align %zu, flags %#x): "
				  "invalid request", size, align, flags);
		PCPU_PROBE(alloc_fail, size, align, flags, PCPU_FAIL_INVALID, "invalid request");
		errno = EINVAL;
		return NULL;
	}
	size = PCPU_ALIGN_UP(size, (size_t)PCPU_MIN_ALLOC_BYTES);
	bits = (int)(size / PCPU_MIN_ALLOC_BYTES);
	align_bits = align > PCPU_MIN_ALLOC_BYTES ? (int)(align / PCPU_MIN_ALLOC_BYTES) : 1;
	req_align_bits = align_bits;
	if (cache_serves(size, align, flags)) {
		void *h = cache_tried ? NULL : cache_alloc(size, flags, &zeroed);

		if (h)
			return alloc_done(h, size, cache_class_align(size), flags, zeroed);
		/* Taken from the pool instead, at the class's alignment, so the
		 * object can go to a cache when it is freed. */
		align_bits = (int)(cache_class_align(size) / PCPU_MIN_ALLOC_BYTES);
	}

	pool_lock_for(flags & PCPU_ATOMIC);
	if (flags & PCPU_RESERVED) {
		ch = pool_find_reserved(bits, align_bits, &off);
		if (!ch)
			return alloc_failed(size, align, flags, "reserved area exhausted");
	} else {
		/* The class's alignment is a preference: where only the request's
		 * own fits, take that (the object bypasses the caches when freed).
		 * Only on populated pages here; a blocking allocation looks for the
		 * class's alignment on unpopulated pages first (the blocking path). */
		ch = flags & PCPU_ATOMIC ?
		     pool_find_area_either(size, bits, align_bits, req_align_bits, true, &off) :
		     pool_find_area(size, bits, align_bits, true, &off);
	}
	if (ch) {
		pool_account_alloc(ch, size);
		pool_live_set(ch, off);
		memcheck_alloc(ch, off, bits);
		zeroed = pool_area_is_zero(ch, off, bits);
		if (pcpu_pool.nr_empty_pop_pages < pcpu_pool.empty_pop_low)
			pool_want_balance(POOL_BALANCE_LOW);
		pool_unlock_for(flags & PCPU_ATOMIC);
	} else if (flags & PCPU_ATOMIC) {
		return alloc_failed(size, align, flags, "no populated space for an atomic allocation");
	} else {
		pcpu_unlock(&pcpu_pool.lock);
		ch = pool_alloc_blocking(size, bits, align_bits, req_align_bits, true, &off, &err);
		if (!ch) {
			pcpu_lock(&pcpu_pool.lock);
			return alloc_failed(size, align, flags, err);
		}
	}
	return alloc_done(pool_chunk_handle(ch, off * PCPU_MIN_ALLOC_BYTES), size,
			  (size_t)align_bits * PCPU_MIN_ALLOC_BYTES, flags, zeroed);
}

/* Debug hooks that send a cache hit to the out-of-line paths: memory
 * checkers' annotations, verification after every operation. */
static inline bool op_hooks_on(void)
{
	return PCPU_ASAN ||
	       __builtin_expect(pcpu_pool.debug & (POOL_DEBUG_VERIFY | POOL_DEBUG_VALGRIND), 0);
}

/* A cache hit the inline path does not finish: hooks, a balancer to wake,
 * sizes zeroed by a call. */
static __attribute__((noinline)) void *alloc_hit_slow(void *h, size_t size, unsigned int flags,
						      bool zeroed)
{
	if (memcheck_active())
		cache_annotate(h, (int)(size / PCPU_MIN_ALLOC_BYTES), true);
	return alloc_done(h, size, cache_class_align(size), flags, zeroed);
}

/*
 * The fast path: a valid request of a cached size from a ready allocator
 * whose cache holds an object of its class.  No call on the way (the
 * rest are tail calls): anything else goes to alloc_slow, which checks
 * again and refills.
 */
static inline __attribute__((always_inline)) void *alloc_fast(size_t size, size_t align,
							     unsigned int flags)
{
	size_t rounded = PCPU_ALIGN_UP(size, (size_t)PCPU_MIN_ALLOC_BYTES);
	bool zeroed;

	if (__builtin_expect(pool_ready() && size - 1 < CACHE_MAX_SIZE && !(align & (align - 1)) &&
			     cache_serves(rounded, align, flags), 1)) {
		void *h = cache_pop(rounded, &zeroed);

		if (__builtin_expect(h != NULL, 1)) {
			if (__builtin_expect(op_hooks_on() || rounded > 64 ||
					     (!(flags & PCPU_ATOMIC) && pool_balance_unkicked()), 0))
				return alloc_hit_slow(h, rounded, flags, zeroed);
			if (PCPU_PROBES_ENABLED) {
				size_t idx;
				int off;

				pool_handle_split(h, &idx, &off);
				PCPU_PROBE(alloc, rounded, cache_class_align(rounded), flags, h, idx,
					   (size_t)off);
			}
			if (!zeroed)
				zero_units(h, rounded, true);
			return h;
		}
	}
	return alloc_slow(size, align, flags, false);
}

PCPU_PUBLIC void __percpu *pcpu_alloc_flags(size_t size, size_t align, unsigned int flags)
{
	return alloc_fast(size, align, flags);
}

PCPU_PUBLIC void __percpu *pcpu_alloc(size_t size, size_t align)
{
	return alloc_fast(size, align, 0);
}

/*
 * Why ptr is not a live allocation, for the abort message: it is not (or
 * no longer) one, which the caller found without the lock.  `lock` held.
 */
static const char *invalid_reason(const void *ptr)
{
	int off;
	struct pcpu_chunk *ch = pool_handle_chunk(ptr, &off);

	if (!ch)
		return "not a per-CPU handle from this allocator";
	if (off % PCPU_MIN_ALLOC_BYTES)
		return "misaligned: not the start of an allocation";
	off /= PCPU_MIN_ALLOC_BYTES;
	if (off < ch->map->start_bits && ch->immutable)
		return "a static per-CPU variable, not a dynamic allocation";
	return "not a live allocation (never allocated, interior, or already freed)";
}

static void __attribute__((noreturn, cold)) invalid(const char *fn, const void *ptr)
{
	const char *why = "the allocator has made no allocation";

	if (pool_ready()) {
		pcpu_lock(&pcpu_pool.lock);
		why = invalid_reason(ptr);
		pcpu_unlock(&pcpu_pool.lock);
	}
	pcpu_invalid_pointer(fn, ptr, why);
}

/* pcpu_free of a live handle (checked again here) the caches did not take:
 * freed to its chunk under the pool's lock. */
static __attribute__((noinline)) void free_to_chunk(void *ptr, unsigned long *live, size_t idx, int off)
{
	struct pcpu_chunk *ch;
	int bits;
	bool wake;

	off /= PCPU_MIN_ALLOC_BYTES;
	pcpu_lock(&pcpu_pool.lock);
	if (!bit_test_and_clear_atomic(live, (size_t)off)) {
		pcpu_unlock(&pcpu_pool.lock);
		invalid("pcpu_free", ptr);
	}
	ch = pool_live_chunk(idx, off * PCPU_MIN_ALLOC_BYTES);
	bits = chunk_area_bits(ch->map, off);
	PCPU_PROBE(free, ptr, (size_t)bits * PCPU_MIN_ALLOC_BYTES);
	memcheck_free(ch, off, bits);
	pool_free_area(ch, off, bits, POOL_NOW);
	pool_account_free();
	wake = pool_free_wants_reclaim(ch);   /* only with a decay of 0 */
	pcpu_unlock(&pcpu_pool.lock);
	if (wake)
		pool_kick_balance(POOL_BALANCE_FREE);
	pool_after_op(POOL_OP_FREE, NULL);
}

/*
 * A free validates the handle by its live bit, which it clears: under the
 * lock of the side the object goes to (the calling CPU's cache, else the
 * pool), so the object is live, cached or free at every moment a checker
 * holding every lock can see.  A bit already clear means the handle is not
 * a live allocation: abort, nothing changed.
 */
static __attribute__((noinline)) void free_slow(void *ptr)
{
	unsigned long *live;
	size_t idx;
	int off, bits;

	if (!pool_ready() || !pool_handle_locate(ptr, &idx, &off) || off % PCPU_MIN_ALLOC_BYTES ||
	    !(live = pool_live_map(idx)))
		invalid("pcpu_free", ptr);
	if (pcpu_cache_enabled) {
		bits = cache_free(ptr, idx, off);
		if (__builtin_expect(bits > 0, 1)) {
			PCPU_PROBE(free, ptr, (size_t)bits * PCPU_MIN_ALLOC_BYTES);
			pool_after_op(POOL_OP_FREE, NULL);
			return;
		}
		if (bits < 0)
			invalid("pcpu_free", ptr);
	}
	free_to_chunk(ptr, live, idx, off);
}

/*
 * The fast path: a live allocation of a cached size, class-aligned, outside
 * the reserved area, into the calling CPU's cache with room.  No call on the
 * way; anything else (including every invalid pointer) goes to free_slow,
 * which checks it all again.
 */
PCPU_PUBLIC void pcpu_free(void __percpu *ptr)
{
	const unsigned long *bound;
	unsigned long *live = pool_live_words();
	size_t idx, bit, live_bit = pool_live_bit(ptr);
	int off, bits;

	if (!ptr)
		return;
	/* A chunk at idx (its boundary map published) has its part of the
	 * live map accessible. */
	if (__builtin_expect(pcpu_cache_enabled && !op_hooks_on() && pool_ready() &&
			     pool_handle_locate(ptr, &idx, &off) && !(off % PCPU_MIN_ALLOC_BYTES) &&
			     !(idx == 0 && off < pcpu_pool.reserved_end) &&
			     (bound = pool_live_bound_map(idx)) != NULL, 1)) {
		bit = (size_t)off / PCPU_MIN_ALLOC_BYTES;
		/* Sized without a lock: a live allocation's boundary bits are
		 * stable while its owner, the caller, frees it. */
		if (__builtin_expect(bit_test_atomic(live, live_bit), 1)) {
			bits = chunk_area_bits_near(bound, (int)bit, CACHE_MAX_SIZE / PCPU_MIN_ALLOC_BYTES);
			if (__builtin_expect(bits < 0, 0))     /* it ends in a later word */
				bits = chunk_area_bits_far(pool_live_dyn_chunk(idx)->map, (int)bit,
							   CACHE_MAX_SIZE / PCPU_MIN_ALLOC_BYTES);
			if (__builtin_expect(bits > 0 && cache_takes(bits, off) &&
					     cache_push(ptr, live, live_bit, bits), 1)) {
				PCPU_PROBE(free, ptr, (size_t)bits * PCPU_MIN_ALLOC_BYTES);
				return;
			}
		}
	}
	free_slow(ptr);
}

PCPU_PUBLIC size_t pcpu_alloc_size(const void __percpu *ptr)
{
	struct pcpu_chunk *ch;
	unsigned long *live;
	size_t idx;
	int off, bits = 0;

	if (!ptr)
		return 0;
	if (pool_ready() && pool_handle_locate(ptr, &idx, &off) && !(off % PCPU_MIN_ALLOC_BYTES) &&
	    (live = pool_live_map(idx))) {
		pcpu_lock(&pcpu_pool.lock);
		ch = pool_handle_chunk(ptr, &off);
		if (ch && bit_test_atomic(live, (size_t)off / PCPU_MIN_ALLOC_BYTES))
			bits = chunk_area_bits(ch->map, off / PCPU_MIN_ALLOC_BYTES);
		pcpu_unlock(&pcpu_pool.lock);
	}
	if (!bits)
		invalid("pcpu_alloc_size", ptr);
	return (size_t)bits * PCPU_MIN_ALLOC_BYTES;
}

PCPU_PUBLIC unsigned int pcpu_nr_cpus(void)
{
	if (pool_ensure_init())
		return 1;
	return pcpu_pool.nr_cpus;
}
