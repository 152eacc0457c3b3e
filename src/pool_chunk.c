/*
 * pool_chunk.c - chunks in address space: creation at a fixed place in the
 * reserved region, destruction, and population and depopulation of page
 * ranges in every unit.
 *
 * Memory system calls go through the OS layer; this file decides which
 * ranges.  A page range is populated or given back in every unit by one
 * vectored OS call.  Outside the "protect" mode a chunk's units are mapped
 * read-write when it is created and back to PROT_NONE when it is
 * destroyed, one call per group each, so population needs no mprotect.
 * Creation, destruction, population and depopulation run with pop_mutex
 * held; the chunk table and counters change only under `lock`.
 * pool_alloc_blocking, the allocation path that may do all of these, is
 * here for both layers that need it (alloc.c, and static.c for libraries'
 * variables beyond the reserved area).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bitops.h"
#include "os.h"
#include "memcheck.h"
#include "pool_chunk.h"
#include "probes.h"

/* Address of page `page` of CPU cpu's unit in chunk ch. */
static inline char *unit_page(const struct pcpu_chunk *ch, unsigned cpu, int page)
{
	return ch->base + pcpu_pool.layout->unit_off[cpu] + ((size_t)page << pcpu_pool.page_shift);
}

/* Bind each group's units of a new chunk to the group's node. */
static void bind_groups(char *base)
{
	if (os_nr_nodes() < 2)
		return;
	for (int g = 0; g < pcpu_pool.layout->nr_groups; g++) {
		const struct layout_group *grp = &pcpu_pool.layout->groups[g];

		/* Binding is best effort: a failure only costs locality. */
		(void)os_bind_node(base + grp->base_offset, (size_t)grp->nr_units * pcpu_pool.unit_size,
				   grp->node);
	}
}

/* Fold the system calls of one operation into the pool's counters. */
static void count_syscalls(const struct os_syscalls *sc)
{
	__atomic_fetch_add(&pcpu_pool.nr_populate_calls, sc->populate, __ATOMIC_RELAXED);
	__atomic_fetch_add(&pcpu_pool.nr_depopulate_calls, sc->depopulate, __ATOMIC_RELAXED);
	__atomic_fetch_add(&pcpu_pool.nr_mprotect_calls, sc->mprotect, __ATOMIC_RELAXED);
}

/*
 * Pages [page_start, page_end) of every CPU's unit as ranges in
 * pcpu_pool.unit_iov, neighbours merged (units of a group lie back to back,
 * so whole units merge into one range); the number of ranges.  pop_mutex
 * held (the scratch array is shared).
 */
static int unit_ranges(const struct pcpu_chunk *ch, int page_start, int page_end)
{
	size_t len = (size_t)(page_end - page_start) << pcpu_pool.page_shift;
	struct iovec *v = pcpu_pool.unit_iov;
	int n = 0;

	pcpu_assert_held(&pcpu_pool.pop_mutex);
	for (unsigned cpu = 0; cpu < pcpu_pool.nr_cpus; cpu++) {
		char *p = unit_page(ch, cpu, page_start);

		if (n && (char *)v[n - 1].iov_base + v[n - 1].iov_len == p) {
			v[n - 1].iov_len += len;
			continue;
		}
		v[n].iov_base = p;
		v[n].iov_len = len;
		n++;
	}
	return n;
}

/* How ch's pages go back: the pool's mode, or with PROT_NONE when the
 * chunk's units are not mapped read-write between populations. */
static enum os_depop_how depop_how(const struct pcpu_chunk *ch)
{
	return ch->mapped_rw ? pcpu_pool.depop_how : OS_DEPOP_PROTECT;
}

unsigned long *pool_live_map_new(size_t idx)
{
	struct os_syscalls sc = { 0 };
	/* Index idx's part starts at bit idx x stride / 4: a whole number of
	 * 64-byte lines, as the stride is at least a page. */
	unsigned long *map = pcpu_pool.live_flat + (idx << pcpu_pool.stride_shift) / PCPU_MIN_ALLOC_BYTES /
						    BITS_PER_LONG;
	size_t bytes = BITS_TO_LONGS(pcpu_pool.unit_size / PCPU_MIN_ALLOC_BYTES) * sizeof(unsigned long);
	int rc = os_meta_commit(map, bytes, &sc);

	count_syscalls(&sc);
	return rc ? NULL : map;
}

/*
 * A chunk's metadata is one mapping of its own (os_meta_alloc): the pool's
 * record with its per-page arrays, then the in-chunk allocator's block.
 * Destroying the chunk unmaps it, so the memory goes back to the OS at
 * once, whatever malloc's trimming does.
 */
static size_t record_bytes(int pages)
{
	size_t arrays = (size_t)pages * (sizeof(int64_t) + sizeof(int));

	return PCPU_ALIGN_UP(sizeof(struct pcpu_chunk) + arrays, (size_t)64);
}

static size_t meta_bytes(int pages, size_t head_bytes, size_t tail_bytes)
{
	size_t map = chunk_meta_bytes(pages, pcpu_pool.page_size, head_bytes, tail_bytes);

	return map ? record_bytes(pages) + map : 0;
}

struct pcpu_chunk *pool_chunk_new(int pages, size_t head_bytes, size_t tail_bytes)
{
	size_t bytes = meta_bytes(pages, head_bytes, tail_bytes);
	struct pcpu_chunk *ch = bytes ? os_meta_alloc(bytes) : NULL;
	int64_t now = pool_now_ms();

	if (!ch)
		return NULL;
	ch->map = chunk_create_in((char *)ch + record_bytes(pages), pages, pcpu_pool.page_size, head_bytes,
				  tail_bytes);
	ch->meta_bytes = bytes;
	ch->slot = -1;
	ch->zero_off = -1;
	ch->empty_since = (int64_t *)(ch + 1);
	ch->zero_from = (int *)(ch->empty_since + pages);
	for (int p = 0; p < pages; p++) {
		/* the hidden head is not known zero (the static area lives there) */
		int head = ch->map->start_bits - (p << ch->map->block_shift);

		ch->empty_since[p] = now;
		ch->zero_from[p] = head < 0 ? 0 : head > ch->map->block_bits ? ch->map->block_bits : head;
	}
	return ch;
}

void pool_chunk_delete(struct pcpu_chunk *ch)
{
	if (!ch)
		return;
	chunk_destroy(ch->map);
	os_meta_free(ch, ch->meta_bytes);
}

/* Map every group's units of a new chunk read-write (one call per group:
 * its units are contiguous); undone on failure. */
static int map_groups(struct pcpu_chunk *ch, struct os_syscalls *sc)
{
	const struct layout *l = pcpu_pool.layout;

	for (int g = 0; g < l->nr_groups; g++) {
		if (os_map_rw(ch->base + l->groups[g].base_offset,
			      (size_t)l->groups[g].nr_units * pcpu_pool.unit_size, sc) == 0)
			continue;
		while (g-- > 0)
			(void)os_unmap_rw(ch->base + l->groups[g].base_offset,
					  (size_t)l->groups[g].nr_units * pcpu_pool.unit_size, sc);
		return -1;
	}
	return 0;
}

/* Give back an index taken for a chunk that was not made; `unclean` as it was. */
static void release_index(int idx, bool unclean)
{
	pcpu_lock(&pcpu_pool.lock);
	bit_clear(pcpu_pool.chunk_used, (size_t)idx);
	if (unclean)
		bit_set(pcpu_pool.chunk_unclean, (size_t)idx);
	pcpu_unlock(&pcpu_pool.lock);
}

struct pcpu_chunk *pool_create_chunk(void)
{
	struct os_syscalls sc = { 0 };
	struct pcpu_chunk *ch;
	bool unclean = false;
	int idx;

	pcpu_assert_held(&pcpu_pool.pop_mutex);
	pcpu_lock(&pcpu_pool.lock);
	idx = (int)bitmap_next_clear(pcpu_pool.chunk_used, (size_t)pcpu_pool.max_chunks, 0);
	if (idx < pcpu_pool.max_chunks) {
		bit_set(pcpu_pool.chunk_used, (size_t)idx);
		unclean = bit_test(pcpu_pool.chunk_unclean, (size_t)idx);
		bit_clear(pcpu_pool.chunk_unclean, (size_t)idx);
	}
	pcpu_unlock(&pcpu_pool.lock);
	if (idx >= pcpu_pool.max_chunks) {
		errno = ENOMEM;         /* address space exhausted */
		return NULL;
	}

	ch = pool_chunk_new(pcpu_pool.unit_pages, 0, 0);
	/* The index's live map: allocated with its first chunk, never freed. */
	if (ch && !pcpu_pool.live_maps[idx])
		__atomic_store_n(&pcpu_pool.live_maps[idx],
				 pool_live_map_new((size_t)idx),
				 __ATOMIC_RELEASE);
	if (!ch || !pcpu_pool.live_maps[idx]) {
		if (ch)
			pool_chunk_delete(ch);
		release_index(idx, unclean);
		errno = ENOMEM;
		return NULL;
	}
	ch->index = idx;
	ch->base = pcpu_pool.region + ((size_t)idx << pcpu_pool.stride_shift);
	if (pcpu_pool.depop_how != OS_DEPOP_PROTECT) {
		int rc = map_groups(ch, &sc);

		count_syscalls(&sc);
		if (rc) {
			pool_chunk_delete(ch);
			release_index(idx, unclean);
			errno = ENOMEM;
			return NULL;
		}
		ch->mapped_rw = true;
	}
	/* A destroyed chunk's memory that could not be given back holds its bytes. */
	for (int p = 0; unclean && p < ch->map->nr_pages; p++)
		ch->zero_from[p] = ch->map->block_bits;
	bind_groups(ch->base);

	pcpu_lock(&pcpu_pool.lock);
	pool_publish_chunk(idx, ch);
	if (idx >= pcpu_pool.chunk_hiwater)
		pcpu_pool.chunk_hiwater = idx + 1;
	pcpu_pool.nr_empty_pop_pages += ch->map->nr_empty_pop_pages;
	pool_chunk_relocate(ch, -1);
	pcpu_pool.stats.nr_chunks++;
	if (pcpu_pool.stats.nr_chunks > pcpu_pool.stats.nr_max_chunks)
		pcpu_pool.stats.nr_max_chunks = pcpu_pool.stats.nr_chunks;
	pcpu_pool.stats.nr_chunks_created++;
	pcpu_unlock(&pcpu_pool.lock);
	PCPU_PROBE(create_chunk, idx, ch->base);
	return ch;
}

/*
 * Unlink ch (it may already be off the slot lists, never in use), then
 * give its memory back: every group's units at once, back to reserved
 * (PROT_NONE).  The index is free again only after that; if the memory
 * could not be given back, the next chunk there knows it is not zero.
 * pop_mutex held.
 */
void pool_destroy_chunk(struct pcpu_chunk *ch)
{
	const struct layout *l = pcpu_pool.layout;
	struct os_syscalls sc = { 0 };
	bool unclean = false;
	int populated;

	pcpu_assert_held(&pcpu_pool.pop_mutex);
	PCPU_PROBE(destroy_chunk, ch->index, ch->base);
	pcpu_lock(&pcpu_pool.lock);
	pool_chunk_move(ch, -1);
	pool_publish_chunk(ch->index, NULL);
	if (pool_chunk_in_pool(ch))
		pcpu_pool.nr_empty_pop_pages -= ch->map->nr_empty_pop_pages;
	populated = ch->map->nr_populated;
	pcpu_pool.nr_populated -= populated;
	pcpu_pool.stats.nr_pages_depopulated += (uint64_t)populated;
	pcpu_pool.stats.nr_chunks--;
	pcpu_pool.stats.nr_chunks_destroyed++;
	pcpu_unlock(&pcpu_pool.lock);

	if (populated)
		PCPU_PROBE(depopulate, ch->index, 0, ch->map->nr_pages);
	memcheck_pages_depopulated(ch, 0, ch->map->nr_pages);
	for (int g = 0; g < l->nr_groups; g++)
		if (os_unmap_rw(ch->base + l->groups[g].base_offset,
				(size_t)l->groups[g].nr_units * pcpu_pool.unit_size, &sc))
			unclean = true;
	count_syscalls(&sc);
	release_index(ch->index, unclean);
	pool_chunk_delete(ch);
}

int pool_populate_pages(struct pcpu_chunk *ch, int page_start, int page_end)
{
	struct os_syscalls sc = { 0 };
	int n = unit_ranges(ch, page_start, page_end);
	int rc = os_populate_v(pcpu_pool.unit_iov, n, !ch->mapped_rw, &sc);

	count_syscalls(&sc);
	if (rc) {
		errno = ENOMEM;
		return -1;
	}
	PCPU_PROBE(populate, ch->index, page_start, page_end);
	return 0;
}

int pool_depopulate_pages(struct pcpu_chunk *ch, int page_start, int page_end)
{
	struct os_syscalls sc = { 0 };
	int n, rc;

	/* A failed depopulation leaves memory resident and readable: wasteful
	 * but safe, since the range is bookkept as unpopulated (and not
	 * zero) and will be populated again before use. */
	PCPU_PROBE(depopulate, ch->index, page_start, page_end);
	memcheck_pages_depopulated(ch, page_start, page_end);
	n = unit_ranges(ch, page_start, page_end);
	rc = os_depopulate_v(pcpu_pool.unit_iov, n, depop_how(ch), &sc);
	count_syscalls(&sc);
	return rc;
}

void pool_note_populated(struct pcpu_chunk *ch, int page_start, int page_end)
{
	int before = ch->map->nr_empty_pop_pages;
	int64_t now = pool_now_ms();

	pcpu_assert_held(&pcpu_pool.lock);
	chunk_mark_populated(ch->map, page_start, page_end);
	memcheck_pages_populated(ch, page_start, page_end);
	for (int p = page_start; p < page_end; p++)
		ch->empty_since[p] = now;       /* an empty page decays from now on */
	if (pool_chunk_in_pool(ch))
		pcpu_pool.nr_empty_pop_pages += ch->map->nr_empty_pop_pages - before;
	pcpu_pool.nr_populated += page_end - page_start;
	pcpu_pool.stats.nr_pages_populated += (uint64_t)(page_end - page_start);
}

void pool_note_depopulated(struct pcpu_chunk *ch, int page_start, int page_end)
{
	int before = ch->map->nr_empty_pop_pages;

	pcpu_assert_held(&pcpu_pool.lock);
	chunk_mark_depopulated(ch->map, page_start, page_end);
	if (pool_chunk_in_pool(ch))
		pcpu_pool.nr_empty_pop_pages += ch->map->nr_empty_pop_pages - before;
	pcpu_pool.nr_populated -= page_end - page_start;
	pcpu_pool.stats.nr_pages_depopulated += (uint64_t)(page_end - page_start);
}

void pool_note_given_back(struct pcpu_chunk *ch, int page_start, int page_end)
{
	pcpu_assert_held(&pcpu_pool.lock);
	if (depop_how(ch) == OS_DEPOP_FREE)
		return;         /* the kernel may or may not have dropped the bytes */
	for (int p = page_start; p < page_end; p++)
		ch->zero_from[p] = 0;
}

/* Pages populated at once on the allocation path: fewer system calls (and
 * TLB flushes) per page, at the cost of up to POP_BATCH - 1 pages early. */
#define POP_BATCH 4

int pool_populate_area(struct pcpu_chunk *ch, int off, int bits)
{
	int ps = off >> ch->map->block_shift;
	int pe = (off + bits + ch->map->block_bits - 1) >> ch->map->block_shift;
	size_t s, e;

	pcpu_assert_held(&pcpu_pool.pop_mutex);
	for (s = (size_t)ps; bitmap_next_clear_run(ch->map->populated, (size_t)pe, &s, &e); s = e) {
		/* Extend the last run ahead into unpopulated pages. */
		if ((int)e == pe && (int)e - (int)s < POP_BATCH) {
			size_t limit = s + POP_BATCH < (size_t)ch->map->nr_pages ? s + POP_BATCH :
										  (size_t)ch->map->nr_pages;

			e = bitmap_next_set(ch->map->populated, limit, e);
		}
		if (pool_populate_pages(ch, (int)s, (int)e))
			return -1;
		pcpu_lock(&pcpu_pool.lock);
		pool_note_populated(ch, (int)s, (int)e);
		pcpu_unlock(&pcpu_pool.lock);
	}
	return 0;
}

/*
 * Allocate `bits` (size bytes) at align_bits where unpopulated pages are
 * allowed: take chunks queued for reclaim back, create a chunk if nothing
 * fits, populate the area's pages.  Returns the chunk (the area accounted
 * and annotated, *off its bit offset) or NULL with *err set; no lock held
 * on entry or return.  A user allocation (user) is live at once (its bit
 * set under the lock that allocated it); otherwise it is a static-variable
 * block.
 */
struct pcpu_chunk *pool_alloc_blocking(size_t size, int bits, int align_bits, int min_align_bits,
				       bool user, int *off, const char **err)
{
	struct pcpu_chunk *ch;
	bool drained = false;

	pcpu_lock(&pcpu_pool.pop_mutex);
	for (;;) {
		pcpu_lock(&pcpu_pool.lock);
		ch = pool_find_area_either(size, bits, align_bits, min_align_bits, false, off);
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
			/* Out of space: objects parked in caches are free space
			 * too.  Give them all back once and look again. */
			if (!drained) {
				drained = true;
				(void)pool_drain_clients(true, 0);
				continue;
			}
			pcpu_unlock(&pcpu_pool.pop_mutex);
			*err = "out of memory or address space";
			return NULL;
		}
	}
	pool_account_alloc(ch, size);
	if (user)
		pool_live_set(ch, *off);
	else
		pcpu_pool.nr_static_blocks++;
	memcheck_alloc(ch, *off, bits);
	if (pcpu_pool.nr_empty_pop_pages < pcpu_pool.empty_pop_low)
		pool_want_balance(POOL_BALANCE_LOW);
	pcpu_unlock(&pcpu_pool.lock);
	if (pool_populate_area(ch, *off, bits)) {
		pcpu_lock(&pcpu_pool.lock);
		if (user)
			bit_test_and_clear_atomic(pcpu_pool.live_maps[ch->index], (size_t)*off);
		else
			pcpu_pool.nr_static_blocks--;
		memcheck_free(ch, *off, bits);
		pool_free_area(ch, *off, bits, POOL_NOW);
		pool_unaccount_alloc(size);
		pcpu_unlock(&pcpu_pool.lock);
		pcpu_unlock(&pcpu_pool.pop_mutex);
		*err = "cannot populate memory";
		return NULL;
	}
	pcpu_unlock(&pcpu_pool.pop_mutex);
	return ch;
}
