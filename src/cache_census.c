/*
 * cache_census.c - what the per-CPU caches hold, for the statistics and
 * for pcpu_verify: both run with every cache quiesced (pool_quiesce), so
 * they read the bins without their locks.
 */
#include "cache_bins.h"

#include <stdio.h>
#include <stdlib.h>

#include "pool_verify.h"

/* Pool client, quiesced: add what the caches hold and served. */
void cache_census(struct pool_census *acc)
{
	acc->cache_limit_bytes += (uint64_t)cache_limit * nr_all_caches();
	for (unsigned int i = 0; i < nr_all_caches(); i++) {
		struct pcpu_cache *c = &caches[i];

		acc->nr_cache_refills += c->nr_refills;
		acc->nr_cache_drains += c->nr_drains;
		acc->cached_bytes += c->bytes;
		for (unsigned int cls = 0; cls < NR_CLASSES; cls++) {
			const struct cache_bin *b = &c->bins[cls];

			acc->nr_alloc += b->nr_alloc;
			acc->nr_dealloc += b->nr_dealloc;
			acc->nr_cache_hits += b->nr_alloc;
			acc->size_hist[pool_size_bucket((size_t)(cls + 1) * PCPU_MIN_ALLOC_BYTES)] += b->nr_alloc;
			acc->nr_cached += b->n;
		}
	}
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;

	return x < y ? -1 : x > y;
}

/* One cached object of class cls: allocated in its chunk, not live, aligned. */
static int check_cached(void *h, unsigned int cls, char *msg, size_t msglen)
{
	size_t size = (size_t)(cls + 1) * PCPU_MIN_ALLOC_BYTES, idx;
	struct pcpu_chunk *ch;
	int off;

	ch = pool_handle_chunk(h, &off);
	if (!ch || !pool_handle_locate(h, &idx, &off))
		PCPU_VERIFY_FAIL("cached handle %p is in no chunk", h);
	if (((size_t)off & (cache_class_align(size) - 1)))
		PCPU_VERIFY_FAIL("cached handle %p not aligned to %zu", h, cache_class_align(size));
	if (bit_test_atomic(pcpu_pool.live_maps[idx], (size_t)off / PCPU_MIN_ALLOC_BYTES))
		PCPU_VERIFY_FAIL("cached handle %p is also live", h);
	if (chunk_area_bits(ch->map, off / PCPU_MIN_ALLOC_BYTES) != (int)cls + 1)
		PCPU_VERIFY_FAIL("cached handle %p is not an allocation of %zu bytes in chunk %d", h,
				 size, ch->index);
	return 0;
}

/* A clean slot's object (class cls) must read zero in every unit. */
static int check_zero(const void *h, unsigned int cls, char *msg, size_t msglen)
{
	size_t size = (size_t)(cls + 1) * PCPU_MIN_ALLOC_BYTES;

	for (unsigned int cpu = 0; cpu < pcpu_pool.nr_cpus; cpu++) {
		const unsigned char *p = pcpu_ptr(h, cpu);

		for (size_t i = 0; i < size; i++) {
			if (p[i]) {
				snprintf(msg, msglen, "cached handle %p (a clean slot) has byte %zu of "
					 "unit %u set", h, i, cpu);
				return -1;
			}
		}
	}
	return 0;
}

/* Pool client, quiesced: every cached object, and the caches' byte counts. */
int cache_verify(char *msg, size_t msglen)
{
	size_t total = 0, n = 0;
	void **all;
	int ret = 0;

	for (unsigned int i = 0; i < nr_all_caches(); i++)
		for (unsigned int cls = 0; cls < NR_CLASSES; cls++)
			total += caches[i].bins[cls].n < caches[i].bins[cls].cap ?
				 caches[i].bins[cls].n : caches[i].bins[cls].cap;
	all = malloc((total + 1) * sizeof(*all));
	if (!all)
		PCPU_VERIFY_FAIL("caches: no memory to verify them");
	for (unsigned int i = 0; i < nr_all_caches() && !ret; i++) {
		struct pcpu_cache *c = &caches[i];
		const char *kind = is_spare(c) ? "spare cache" : "cache";
		unsigned int cpu = i % nr_caches;
		size_t bytes = 0;

		for (unsigned int cls = 0; cls < NR_CLASSES && !ret; cls++) {
			const struct cache_bin *b = &c->bins[cls];

			if (b->n > b->cap || b->clean > b->n) {
				snprintf(msg, msglen, "%s %u class %u: %u objects (%u clean), room for %u",
					 kind, cpu, cls, b->n, b->clean, b->cap);
				ret = -1;
			}
			for (unsigned int k = 0; k < b->clean && !ret; k++)
				ret = check_zero(b->slots[k], cls, msg, msglen);
			for (unsigned int k = 0; k < b->n && !ret; k++) {
				ret = check_cached(b->slots[k], cls, msg, msglen);
				all[n++] = b->slots[k];
			}
			bytes += (size_t)b->n * (cls + 1) * PCPU_MIN_ALLOC_BYTES;
		}
		if (!ret && bytes != c->bytes) {
			snprintf(msg, msglen, "%s %u holds %zu bytes, counts %zu", kind, cpu, bytes,
				 c->bytes);
			ret = -1;
		}
		if (!ret && c->bytes > cache_limit) {
			snprintf(msg, msglen, "%s %u holds %zu bytes, over its limit %zu", kind, cpu,
				 c->bytes, cache_limit);
			ret = -1;
		}
	}
	qsort(all, n, sizeof(*all), cmp_ptr);
	for (size_t k = 1; k < n && !ret; k++) {
		if (all[k] == all[k - 1]) {
			snprintf(msg, msglen, "handle %p is cached twice", all[k]);
			ret = -1;
		}
	}
	free(all);
	return ret;
}
