/*
 * pool_kit.h - what the tests that look inside the pool share: counts of
 * the dynamic chunks' pages and of the fully free chunks, read under the
 * pool lock.  Kept apart from kit.h, which uses only the public API.
 */
#ifndef PCPU_TEST_POOL_KIT_H
#define PCPU_TEST_POOL_KIT_H

#include "pool_init.h"

/* Populated pages of the dynamic chunks (all but the first chunk), and
 * in *empty (unless NULL) those of them that are empty. */
static inline long kit_dynamic_populated(long *empty)
{
	long n = 0, e = 0;

	pcpu_lock(&pcpu_pool.lock);
	for (int i = 1; i < pcpu_pool.chunk_hiwater; i++) {
		const struct pcpu_chunk *ch = pcpu_pool.chunk_table[i];

		if (ch) {
			n += ch->map->nr_populated;
			e += ch->map->nr_empty_pop_pages;
		}
	}
	pcpu_unlock(&pcpu_pool.lock);
	if (empty)
		*empty = e;
	return n;
}

/* Chunks in the free slot (nothing allocated in them). */
static inline int kit_free_chunks(void)
{
	int n = 0;

	pcpu_lock(&pcpu_pool.lock);
	for (struct pcpu_chunk *ch = pcpu_pool.slots[pcpu_pool.free_slot].head; ch; ch = ch->next)
		n++;
	pcpu_unlock(&pcpu_pool.lock);
	return n;
}

#endif
