/*
 * pool_verify.c - the pool's invariants, checked: every chunk (its own
 * checker, chunk_verify), the chunk table against its in-use bits, the
 * slot lists against the table, and the pool's counters against the
 * chunks.  pcpu_verify() and PCPU_VERIFY run it; tests call it after every
 * step of random sequences.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "bitops.h"
#include "pool_verify.h"

/* ---- verification ---------------------------------------------------------- */

#define VFAIL(...) do { fprintf(stderr, "libpercpu: pcpu_verify: " __VA_ARGS__); \
			fputc('\n', stderr); ret = -1; goto out; } while (0)

/*
 * The live map of index i: it starts a cache line; every set bit starts an
 * allocation (of the reserved chunk below its end, else of the chunk), and
 * a map whose index has no chunk is empty.  Adds the set bits to *nr_live.
 */
static int check_live_map(int i, const struct pcpu_chunk *ch, uint64_t *nr_live, char *msg,
			  size_t msglen)
{
	const unsigned long *live = pcpu_pool.live_maps[i];
	const struct pcpu_chunk *rc = i == 0 ? pcpu_pool.reserved_chunk : NULL;
	size_t nbits = pcpu_pool.unit_size / PCPU_MIN_ALLOC_BYTES;

	if (!live)
		return 0;
	if ((uintptr_t)live % 64)
		PCPU_VERIFY_FAIL("live map %d at %p: not on a cache line", i, (const void *)live);
	for (size_t b = bitmap_next_set(live, nbits, 0); b < nbits; b = bitmap_next_set(live, nbits, b + 1)) {
		const struct pcpu_chunk *owner = rc && (int)b < rc->map->end_bits ? rc : ch;

		if (!owner)
			PCPU_VERIFY_FAIL("live map %d: bit %zu set, but there is no chunk", i, b);
		if (!chunk_area_bits(owner->map, (int)b))
			PCPU_VERIFY_FAIL("live map %d: bit %zu set, but no allocation starts there", i, b);
		(*nr_live)++;
	}
	return 0;
}

/*
 * The reclaim and zeroing state of ch: zero marks within their pages, no
 * page emptied in the future, and on populated pages the memory above a
 * page's zero mark reads zero in every unit (what lets an allocation there
 * skip clearing).  Unpopulated pages are not read: in the protect mode
 * they fault, and elsewhere reading them would fault zero pages in.  The
 * memory read is free, so poisoned for the checkers: AddressSanitizer is
 * told not to look, and under Valgrind it is not read.  `lock` held.  0, or
 * -1 with a message in msg.
 */
__attribute__((no_sanitize_address))
static int verify_reclaim_state(const struct pcpu_chunk *ch, int64_t now, char *msg, size_t len)
{
	const struct chunk *c = ch->map;

	for (int p = 0; p < c->nr_pages; p++) {
		if (ch->zero_from[p] < 0 || ch->zero_from[p] > c->block_bits) {
			snprintf(msg, len, "page %d: zero mark %d outside the page", p, ch->zero_from[p]);
			return -1;
		}
		if (ch->empty_since[p] > now) {
			snprintf(msg, len, "page %d: empty since a time to come", p);
			return -1;
		}
		if (ch == pcpu_pool.reserved_chunk || !bit_test(c->populated, (size_t)p) ||
		    (pcpu_pool.debug & POOL_DEBUG_VALGRIND))
			continue;
		size_t from = (size_t)ch->zero_from[p] * PCPU_MIN_ALLOC_BYTES;

		for (unsigned cpu = 0; cpu < pcpu_pool.nr_cpus; cpu++) {
			const unsigned char *b = (const unsigned char *)ch->base +
						 pcpu_pool.layout->unit_off[cpu] +
						 ((size_t)p << pcpu_pool.page_shift);

			for (size_t i = from; i < pcpu_pool.page_size; i++) {
				if (b[i]) {
					snprintf(msg, len, "page %d, unit %u: byte %zu is %#x above the zero "
						 "mark %zu", p, cpu, i, b[i], from);
					return -1;
				}
			}
		}
	}
	return 0;
}

int pool_verify(void)
{
	char msg[256];
	int64_t now;
	long empty_pop = 0, populated = 0;
	uint64_t nr_alloc = 0, hist_sum = 0, nr_live = 0, user_alloc, user_dealloc;
	int ret = 0, nr_listed = 0, nr_chunks = 0;
	struct pool_census cen;

	pcpu_lock(&pcpu_pool.pop_mutex);
	pcpu_lock(&pcpu_pool.lock);
	pool_quiesce(true);
	now = pool_now_ms();

	if (pcpu_pool.reserved_chunk) {
		if (chunk_verify(pcpu_pool.reserved_chunk->map, msg, sizeof(msg)))
			VFAIL("reserved chunk: %s", msg);
		nr_alloc += (uint64_t)pcpu_pool.reserved_chunk->map->nr_alloc;
	}
	if (bitmap_next_set(pcpu_pool.chunk_used, (size_t)pcpu_pool.max_chunks, (size_t)pcpu_pool.chunk_hiwater) <
	    (size_t)pcpu_pool.max_chunks)
		VFAIL("a chunk index at or above the high-water mark %d is in use", pcpu_pool.chunk_hiwater);
	/* Indexes at or above the high-water mark never had a chunk, so no
	 * live map either. */
	for (int i = 0; i < pcpu_pool.chunk_hiwater; i++) {
		struct pcpu_chunk *ch = pcpu_pool.chunk_table[i];

		if (check_live_map(i, ch, &nr_live, msg, sizeof(msg)))
			VFAIL("%s", msg);
		if ((ch != NULL) != bit_test(pcpu_pool.chunk_used, (size_t)i))
			VFAIL("chunk table slot %d and its in-use bit disagree", i);
		if (!ch)
			continue;
		if (ch->index != i || ch->base != pcpu_pool.region + ((size_t)i << pcpu_pool.stride_shift))
			VFAIL("chunk %d: index or base address wrong", i);
		if (chunk_verify(ch->map, msg, sizeof(msg)))
			VFAIL("chunk %d: %s", i, msg);
		/* pcpu_free sizes objects from the maps without the lock
		 * (chunk_area_bits_shared): no area may be waiting in a run */
		if (ch->map->run_bits)
			VFAIL("chunk %d: an open run of %d bits", i, ch->map->run_bits);
		if (verify_reclaim_state(ch, now, msg, sizeof(msg)))
			VFAIL("chunk %d: %s", i, msg);
		if (ch->isolated ? ch->slot != pcpu_pool.to_depopulate_slot :
		    ch->slot != pcpu_pool.sidelined_slot && ch->slot != pool_chunk_slot(ch))
			VFAIL("chunk %d: on slot %d, expected %d%s", i, ch->slot, pool_chunk_slot(ch),
			      ch->isolated ? " (isolated)" : "");
		if (pool_chunk_in_pool(ch))
			empty_pop += ch->map->nr_empty_pop_pages;
		populated += ch->map->nr_populated;
		nr_alloc += (uint64_t)ch->map->nr_alloc;
		nr_chunks++;
		if (i == 0 && !bitmap_range_set(ch->map->populated, 0,
						 pcpu_pool.first_chunk_populated >> pcpu_pool.page_shift))
			VFAIL("first chunk: a page of its populated part is not populated");
	}
	for (int s = 0; s < pcpu_pool.nr_slots; s++) {
		for (struct pcpu_chunk *ch = pcpu_pool.slots[s].head, *prev = NULL; ch; prev = ch, ch = ch->next) {
			if (ch->slot != s || ch->prev != prev)
				VFAIL("slot list %d: chunk %d has slot %d or a broken link", s, ch->index, ch->slot);
			if (++nr_listed > nr_chunks)
				VFAIL("slot lists hold more chunks than the table");
		}
	}
	if (nr_listed != nr_chunks)
		VFAIL("slot lists hold %d chunks, the table %d", nr_listed, nr_chunks);
	if (empty_pop != pcpu_pool.nr_empty_pop_pages)
		VFAIL("pool of empty populated pages %ld, chunks say %ld", pcpu_pool.nr_empty_pop_pages, empty_pop);
	if (populated != pcpu_pool.nr_populated)
		VFAIL("populated pages %ld, chunks say %ld", pcpu_pool.nr_populated, populated);
	/* Every allocated area is live (its live bit set), a static-variable
	 * block, or held by a client (a cache), and the counters agree. */
	pool_for_each_client(c)
		if (c->verify && c->verify(msg, sizeof(msg)))
			VFAIL("%s", msg);
	pool_census(&cen, true);
	long transit = __atomic_load_n(&pcpu_pool.nr_transit, __ATOMIC_RELAXED);

	if (nr_alloc != nr_live + (uint64_t)pcpu_pool.nr_static_blocks + cen.nr_cached + (uint64_t)transit)
		VFAIL("chunks hold %llu allocations: %llu live, %ld static-variable blocks, %llu cached, "
		      "%ld in transit", (unsigned long long)nr_alloc, (unsigned long long)nr_live,
		      pcpu_pool.nr_static_blocks, (unsigned long long)cen.nr_cached, transit);
	user_alloc = pcpu_pool.stats.nr_alloc + cen.nr_alloc;
	user_dealloc = pcpu_pool.stats.nr_dealloc + cen.nr_dealloc;
	if (user_alloc - user_dealloc != nr_live + (uint64_t)pcpu_pool.nr_static_blocks)
		VFAIL("live allocations %llu (allocations less frees), live map and static blocks say %llu",
		      (unsigned long long)(user_alloc - user_dealloc),
		      (unsigned long long)(nr_live + (uint64_t)pcpu_pool.nr_static_blocks));
	for (int b = 0; b < PCPU_SIZE_HIST_BUCKETS; b++)
		hist_sum += pcpu_pool.stats.size_hist[b] + cen.size_hist[b];
	if (hist_sum != user_alloc)
		VFAIL("size histogram holds %llu allocations, nr_alloc %llu",
		      (unsigned long long)hist_sum, (unsigned long long)user_alloc);
	if ((uint64_t)nr_chunks - 1 != pcpu_pool.stats.nr_chunks)
		VFAIL("nr_chunks %u, table holds %d dynamic chunks", pcpu_pool.stats.nr_chunks, nr_chunks - 1);
out:
	pool_quiesce(false);
	pcpu_unlock(&pcpu_pool.lock);
	pcpu_unlock(&pcpu_pool.pop_mutex);
	return ret;
}

/* PCPU_VERIFY: after an operation; a broken invariant prints the report
 * (the stats client's) and aborts. */
void pool_verify_op_slow(int op, const void *ptr)
{
	static const char *const names[] = { "pcpu_alloc()", "pcpu_free()", "a balance pass" };
	int saved = errno;

	if (pool_verify() == 0) {
		errno = saved;
		return;
	}
	if (ptr)
		fprintf(stderr, "libpercpu: PCPU_VERIFY: invariant broken after %s = %p; report follows\n",
			names[op], ptr);
	else
		fprintf(stderr, "libpercpu: PCPU_VERIFY: invariant broken after %s; report follows\n",
			names[op]);
	pool_for_each_client(c)
		if (c->report)
			c->report(stderr);
	fflush(stderr);
	abort();
}
