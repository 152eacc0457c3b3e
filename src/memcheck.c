/*
 * memcheck.c - ASan and Valgrind annotations of unit memory (memcheck.h).
 */
#include <stddef.h>

#include "bitops.h"
#include "memcheck.h"

#if PCPU_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if defined(PCPU_HAVE_VALGRIND) && PCPU_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND 1
#else
#define HAVE_VALGRIND 0
#endif

/* Address of byte `off` of CPU cpu's unit in chunk ch. */
static char *unit_addr(const struct pcpu_chunk *ch, unsigned cpu, size_t off)
{
	return ch->base + pcpu_pool.layout->unit_off[cpu] + off;
}

/*
 * Making an area unusable also takes in a free 4-byte neighbour that shares
 * an 8-byte ASan granule with either end, so a granule is poisoned as soon
 * as all of it is free (ASan cannot poison the first half of a granule
 * whose second half is in use).  `lock` held, or the range otherwise
 * private.
 */
void memcheck_range(const struct pcpu_chunk *ch, int bit_off, int bits, bool usable)
{
	const unsigned long *map = ch->map->alloc_map;
	size_t len;

	if (ch == pcpu_pool.reserved_chunk || bits <= 0)
		return;
	if (!usable && (bit_off & 1) && !bit_test(map, (size_t)bit_off - 1)) {
		bit_off--;
		bits++;
	}
	if (!usable && ((bit_off + bits) & 1) && bit_off + bits < ch->map->nr_bits &&
	    !bit_test(map, (size_t)(bit_off + bits)))
		bits++;
	len = (size_t)bits * PCPU_MIN_ALLOC_BYTES;
	for (unsigned cpu = 0; cpu < pcpu_pool.nr_cpus; cpu++) {
		char *p = unit_addr(ch, cpu, (size_t)bit_off * PCPU_MIN_ALLOC_BYTES);

		(void)p;
#if PCPU_ASAN
		if (usable)
			ASAN_UNPOISON_MEMORY_REGION(p, len);
		else
			ASAN_POISON_MEMORY_REGION(p, len);
#endif
#if HAVE_VALGRIND
		if (pcpu_pool.debug & POOL_DEBUG_VALGRIND) {
			if (usable)
				VALGRIND_MAKE_MEM_UNDEFINED(p, len);
			else
				VALGRIND_MAKE_MEM_NOACCESS(p, len);
		}
#endif
	}
	(void)len;
}

/* Pages [page_start, page_end) of ch were populated: poison their free
 * parts.  `lock` held, so the allocation map is stable. */
void memcheck_populated(const struct pcpu_chunk *ch, int page_start, int page_end)
{
	const struct chunk *c = ch->map;
	size_t end = (size_t)page_end << c->block_shift, s, e;

	for (s = (size_t)page_start << c->block_shift;
	     bitmap_next_clear_run(c->alloc_map, end, &s, &e); s = e)
		memcheck_range(ch, (int)s, (int)(e - s), false);
}

/* Pages [page_start, page_end) of ch are about to be depopulated (they are
 * empty): inaccessible as a whole.  In the default mode they stay mapped
 * and read zeros, so this is what reports a stray access to them; being
 * populated again poisons only their free parts, as for any page. */
void memcheck_depopulated(const struct pcpu_chunk *ch, int page_start, int page_end)
{
	size_t len = (size_t)(page_end - page_start) << pcpu_pool.page_shift;

	if (ch == pcpu_pool.reserved_chunk)
		return;
	for (unsigned cpu = 0; cpu < pcpu_pool.nr_cpus; cpu++) {
		char *p = unit_addr(ch, cpu, (size_t)page_start << pcpu_pool.page_shift);

		(void)p;
#if PCPU_ASAN
		ASAN_POISON_MEMORY_REGION(p, len);
#endif
#if HAVE_VALGRIND
		if (pcpu_pool.debug & POOL_DEBUG_VALGRIND)
			VALGRIND_MAKE_MEM_NOACCESS(p, len);
#endif
	}
	(void)len;
}

void memcheck_init(void)
{
#if HAVE_VALGRIND
	/* Only memcheck answers GET_VBITS (1); under callgrind, helgrind and
	 * the others the annotations would be wasted work. */
	unsigned char probe = 0, vbits;

	if (RUNNING_ON_VALGRIND && VALGRIND_GET_VBITS(&probe, &vbits, 1) == 1)
		pcpu_pool.debug |= POOL_DEBUG_VALGRIND;
#endif
	/* ASan builds poisoned the first chunk as it was populated; Valgrind
	 * learns about it now. */
	if (!PCPU_ASAN && (pcpu_pool.debug & POOL_DEBUG_VALGRIND) && pcpu_pool.first_chunk) {
		pcpu_lock(&pcpu_pool.lock);
		memcheck_populated(pcpu_pool.first_chunk, 0, pcpu_pool.first_chunk->map->nr_pages);
		pcpu_unlock(&pcpu_pool.lock);
	}
}
