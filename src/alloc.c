/*
 * alloc.c - the public allocation entry points: pcpu_alloc*, pcpu_free,
 * pcpu_alloc_size, pcpu_nr_cpus.
 *
 * An allocation first looks for room on populated pages holding only the
 * pool's metadata lock (the path atomic allocations take, which therefore
 * makes no system call).  Only when that fails does a blocking allocation
 * take the population mutex, search again allowing unpopulated pages,
 * create a chunk if nothing fits, and populate the pages under its new
 * area before returning.  Memory is zeroed in every unit outside both
 * locks.  A free validates the handle before anything changes and aborts
 * on anything that is not a live allocation.
 */
#include <errno.h>
#include <string.h>

#include "diag.h"
#include "memcheck.h"
#include "pool_chunk.h"
#include "pool_init.h"
#include "pool_verify.h"
#include "probes.h"

#define KNOWN_FLAGS (PCPU_ATOMIC | PCPU_RESERVED | PCPU_NOWARN)

/* The probe's reason code (probes.h) for a failure message. */
static inline int fail_reason(unsigned flags, const char *msg)
{
	if (flags & PCPU_RESERVED)
		return PCPU_FAIL_RESERVED;
	if (flags & PCPU_ATOMIC)
		return PCPU_FAIL_ATOMIC;
	return msg && strstr(msg, "populate") ? PCPU_FAIL_POPULATE : PCPU_FAIL_NOSPACE;
}

static void zero_units(void *handle, size_t size)
{
	for (unsigned cpu = 0; cpu < pcpu_pool.nr_cpus; cpu++) {
		char *p = pcpu_ptr(handle, cpu);

		if (size == 4)
			*(uint32_t *)p = 0;
		else if (size == 8)
			memset(p, 0, 8);   /* may be only 4-aligned: no uint64_t store */
		else
			memset(p, 0, size);
	}
}

/*
 * The blocking path: unpopulated pages allowed, chunks may be created, the
 * area's pages populated.  Returns the chunk (the area accounted) or NULL
 * with *err set; no lock held on entry or return.
 */
static struct pcpu_chunk *alloc_blocking(size_t size, int bits, int align_bits, int *off,
					 const char **err)
{
	struct pcpu_chunk *ch;

	pcpu_lock(&pcpu_pool.pop_mutex);
	for (;;) {
		pcpu_lock(&pcpu_pool.lock);
		ch = pool_find_area(size, bits, align_bits, false, off);
		if (ch)
			break;
		/* Chunks isolated for reclaim still hold free space: before a new
		 * chunk is made (or the address space runs out), take them back. */
		if (pool_reintegrate_all()) {
			pcpu_unlock(&pcpu_pool.lock);
			continue;
		}
		bool have_free = pcpu_pool.slots[pcpu_pool.free_slot].head != NULL;

		pcpu_unlock(&pcpu_pool.lock);
		if (have_free || !pool_create_chunk()) {
			pcpu_unlock(&pcpu_pool.pop_mutex);
			*err = "out of memory or address space";
			return NULL;
		}
	}
	pool_account_alloc(ch, size);
	memcheck_alloc(ch, *off, bits);
	if (pcpu_pool.nr_empty_pop_pages < pcpu_pool.empty_pop_low)
		pool_want_balance(POOL_BALANCE_LOW);
	pcpu_unlock(&pcpu_pool.lock);
	if (pool_populate_area(ch, *off, bits)) {
		pcpu_lock(&pcpu_pool.lock);
		memcheck_free(ch, *off, bits);
		pool_free_area(ch, *off, bits);
		pool_unaccount_alloc(size);
		pcpu_unlock(&pcpu_pool.lock);
		pcpu_unlock(&pcpu_pool.pop_mutex);
		*err = "cannot populate memory";
		return NULL;
	}
	pcpu_unlock(&pcpu_pool.pop_mutex);
	return ch;
}

/* A failed allocation: counted, reported (deferred on the atomic path, which
 * may make no system call), errno ENOMEM.  `lock` held on entry, not on return. */
static void *alloc_failed(size_t size, size_t align, unsigned flags, const char *err)
{
	bool atomic = flags & PCPU_ATOMIC;

	pcpu_pool.stats.nr_alloc_fail++;
	if (atomic)
		pcpu_pool.stats.nr_atomic_fail++;
	pcpu_unlock(&pcpu_pool.lock);
	if (atomic) {
		pool_want_balance(POOL_BALANCE_ATOMIC);
		pcpu_warn_defer(PCPU_WARN_ATOMIC, flags);
	} else {
		pcpu_warn(PCPU_WARN_NOMEM, flags, "pcpu_alloc(size %zu, align %zu, flags %#x) failed: %s",
			  size, align, flags, err);
	}
	PCPU_PROBE(alloc_fail, size, align, flags, fail_reason(flags, err), err);
	pool_after_op(POOL_OP_ALLOC, NULL);
	errno = ENOMEM;
	return NULL;
}

PCPU_PUBLIC void __percpu *pcpu_alloc_flags(size_t size, size_t align, unsigned int flags)
{
	struct pcpu_chunk *ch = NULL;
	int bits, align_bits, off = -1;
	bool zeroed = false;
	const char *err;

	if (pool_ensure_init())
		return NULL;
	/* align 0 means "no requirement"; any other align must be a power of
	 * two (checked before rounding up to 4, so 3 is refused). */
	if (!size || size > pcpu_pool.unit_size || (align & (align - 1)) ||
	    align > pcpu_pool.page_size || (flags & ~KNOWN_FLAGS)) {
		pcpu_warn(PCPU_WARN_INVALID, flags,
			  "pcpu_alloc(size %zu, align %zu, flags %#x): invalid request", size, align, flags);
		PCPU_PROBE(alloc_fail, size, align, flags, PCPU_FAIL_INVALID, "invalid request");
		errno = EINVAL;
		return NULL;
	}
	size = PCPU_ALIGN_UP(size, (size_t)PCPU_MIN_ALLOC_BYTES);
	bits = (int)(size / PCPU_MIN_ALLOC_BYTES);
	align_bits = align > PCPU_MIN_ALLOC_BYTES ? (int)(align / PCPU_MIN_ALLOC_BYTES) : 1;

	pcpu_lock(&pcpu_pool.lock);
	if (flags & PCPU_RESERVED) {
		ch = pool_find_reserved(bits, align_bits, &off);
		if (!ch)
			return alloc_failed(size, align, flags, "reserved area exhausted");
	} else {
		ch = pool_find_area(size, bits, align_bits, true, &off);
	}
	if (ch) {
		pool_account_alloc(ch, size);
		memcheck_alloc(ch, off, bits);
		zeroed = pool_area_is_zero(ch, off, bits);
		if (pcpu_pool.nr_empty_pop_pages < pcpu_pool.empty_pop_low)
			pool_want_balance(POOL_BALANCE_LOW);
		pcpu_unlock(&pcpu_pool.lock);
	} else if (flags & PCPU_ATOMIC) {
		return alloc_failed(size, align, flags, "no populated space for an atomic allocation");
	} else {
		pcpu_unlock(&pcpu_pool.lock);
		ch = alloc_blocking(size, bits, align_bits, &off, &err);
		if (!ch) {
			pcpu_lock(&pcpu_pool.lock);
			return alloc_failed(size, align, flags, err);
		}
	}
	/* The balancer hears of a low pool: by the flag alone on the atomic
	 * path, by a wake-up (a system call) elsewhere. */
	if (!(flags & PCPU_ATOMIC) &&
	    __builtin_expect(__atomic_load_n(&pcpu_pool.balance_wanted, __ATOMIC_RELAXED) != 0, 0))
		pool_kick_balance(0);

	void *handle = pool_chunk_handle(ch, off * PCPU_MIN_ALLOC_BYTES);

	PCPU_PROBE(alloc, size, (size_t)align_bits * PCPU_MIN_ALLOC_BYTES, flags, handle, ch->index,
		   (size_t)off * PCPU_MIN_ALLOC_BYTES);
	if (!zeroed)    /* memory known to read zero (pool.h) is not cleared again */
		zero_units(handle, size);
	pool_after_op(POOL_OP_ALLOC, handle);
	return handle;
}

PCPU_PUBLIC void __percpu *pcpu_alloc(size_t size, size_t align)
{
	return pcpu_alloc_flags(size, align, 0);
}

/* Chunk and bit offset of a live allocation, or abort naming the pointer.
 * `lock` held; released before aborting. */
static struct pcpu_chunk *validate(const char *fn, const void *ptr, int *bit_off, int *bits)
{
	struct pcpu_chunk *ch = pool_handle_chunk(ptr, bit_off);
	const char *why = "not a per-CPU handle from this allocator";

	if (ch) {
		if (*bit_off % PCPU_MIN_ALLOC_BYTES) {
			why = "misaligned: not the start of an allocation";
		} else {
			*bit_off /= PCPU_MIN_ALLOC_BYTES;
			*bits = chunk_area_bits(ch->map, *bit_off);
			if (*bits)
				return ch;
			if (*bit_off < ch->map->start_bits && ch->immutable)
				why = "a static per-CPU variable, not a dynamic allocation";
			else
				why = "not a live allocation (never allocated, interior, or already freed)";
		}
	}
	pcpu_unlock(&pcpu_pool.lock);
	pcpu_invalid_pointer(fn, ptr, why);
}

/*
 * Reclaim runs on the balancer's decay timer, not on frees; only with a
 * decay of 0 does a free that leaves a second fully free chunk, or enough
 * of a chunk empty, wake the balancer at once.  `lock` held.
 */
static bool free_wants_balance(struct pcpu_chunk *ch)
{
	return pool_free_wants_reclaim(ch);
}

PCPU_PUBLIC void pcpu_free(void __percpu *ptr)
{
	struct pcpu_chunk *ch;
	int off, bits;
	bool wake;

	if (!ptr)
		return;
	if (!pool_ready())
		pcpu_invalid_pointer("pcpu_free", ptr, "the allocator has made no allocation");
	pcpu_lock(&pcpu_pool.lock);
	ch = validate("pcpu_free", ptr, &off, &bits);
	PCPU_PROBE(free, ptr, (size_t)bits * PCPU_MIN_ALLOC_BYTES);
	memcheck_free(ch, off, bits);
	pool_free_area(ch, off, bits);
	pool_account_free();
	wake = free_wants_balance(ch);
	pcpu_unlock(&pcpu_pool.lock);
	if (wake)
		pool_kick_balance(POOL_BALANCE_FREE);
	pool_after_op(POOL_OP_FREE, NULL);
}

PCPU_PUBLIC size_t pcpu_alloc_size(const void __percpu *ptr)
{
	int off, bits;

	if (!ptr)
		return 0;
	if (!pool_ready())
		pcpu_invalid_pointer("pcpu_alloc_size", ptr, "the allocator has made no allocation");
	pcpu_lock(&pcpu_pool.lock);
	validate("pcpu_alloc_size", ptr, &off, &bits);
	pcpu_unlock(&pcpu_pool.lock);
	return (size_t)bits * PCPU_MIN_ALLOC_BYTES;
}

PCPU_PUBLIC unsigned int pcpu_nr_cpus(void)
{
	if (pool_ensure_init())
		return 1;
	return pcpu_pool.nr_cpus;
}
