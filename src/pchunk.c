/*
 * pchunk.c - chunks in address space: creation at a fixed place in the
 * reserved region, population and depopulation of page ranges in every
 * unit, and the O(1) handle -> chunk lookup.
 *
 * Memory system calls go through os.c; this file decides which ranges.
 * Creation, destruction, population and depopulation run with pop_mutex
 * held; the chunk table and counters change only under `lock`.
 */
#include <errno.h>
#include <stdlib.h>

#include "bitops.h"
#include "internal.h"
#include "os.h"
#include "probes.h"

/* Address of page `page` of CPU cpu's unit in chunk ch. */
static inline char *unit_page(const struct pcpu_chunk *ch, unsigned cpu, int page)
{
	return ch->base + pcpu.layout->unit_off[cpu] + ((size_t)page << pcpu.page_shift);
}

struct pcpu_chunk *pcpu_handle_chunk(const void *handle, int *off)
{
	uintptr_t a = (uintptr_t)handle + pcpu.guard_size;
	uintptr_t region = (uintptr_t)pcpu.region;
	struct pcpu_chunk *ch;
	uintptr_t rel;
	size_t idx;

	if (a < region || a - region >= pcpu.region_size)
		return NULL;
	rel = a - region;
	idx = rel >> pcpu.stride_shift;
	rel &= ((uintptr_t)1 << pcpu.stride_shift) - 1;
	if (idx >= (size_t)pcpu.max_chunks || rel >= pcpu.unit_size)
		return NULL;
	ch = pcpu.chunk_table[idx];
	if (!ch)
		return NULL;
	if (ch == pcpu.first_chunk && pcpu.reserved_chunk &&
	    (int)rel < pcpu.reserved_chunk->map->end_bits * PCPU_MIN_ALLOC_BYTES)
		ch = pcpu.reserved_chunk;
	*off = (int)rel;
	return ch;
}

/* Bind each group's units of a new chunk to the group's node. */
static void bind_groups(char *base)
{
	if (os_nr_nodes() < 2)
		return;
	for (int g = 0; g < pcpu.layout->nr_groups; g++) {
		const struct layout_group *grp = &pcpu.layout->groups[g];

		/* Binding is best effort: a failure only costs locality. */
		(void)os_bind_node(base + grp->base_offset, (size_t)grp->nr_units * pcpu.unit_size,
				   grp->node);
	}
}

struct pcpu_chunk *pcpu_create_chunk(void)
{
	struct pcpu_chunk *ch;
	int idx;

	pthread_mutex_lock(&pcpu.lock);
	idx = (int)bitmap_next_clear(pcpu.chunk_used, (size_t)pcpu.max_chunks, 0);
	if (idx < pcpu.max_chunks)
		bit_set(pcpu.chunk_used, (size_t)idx);
	pthread_mutex_unlock(&pcpu.lock);
	if (idx >= pcpu.max_chunks) {
		errno = ENOMEM;         /* address space exhausted */
		return NULL;
	}

	ch = calloc(1, sizeof(*ch));
	if (ch)
		ch->map = chunk_create(pcpu.unit_pages, pcpu.page_size, 0, 0);
	if (!ch || !ch->map) {
		free(ch);
		pthread_mutex_lock(&pcpu.lock);
		bit_clear(pcpu.chunk_used, (size_t)idx);
		pthread_mutex_unlock(&pcpu.lock);
		errno = ENOMEM;
		return NULL;
	}
	ch->index = idx;
	ch->base = pcpu.region + ((size_t)idx << pcpu.stride_shift);
	ch->slot = -1;
	bind_groups(ch->base);

	pthread_mutex_lock(&pcpu.lock);
	pcpu.chunk_table[idx] = ch;
	if (idx >= pcpu.chunk_hiwater)
		pcpu.chunk_hiwater = idx + 1;
	pcpu.nr_empty_pop_pages += ch->map->nr_empty_pop_pages;
	pcpu_chunk_relocate(ch, -1);
	pcpu.stats.nr_chunks++;
	if (pcpu.stats.nr_chunks > pcpu.stats.nr_max_chunks)
		pcpu.stats.nr_max_chunks = pcpu.stats.nr_chunks;
	pcpu.stats.nr_chunks_created++;
	pthread_mutex_unlock(&pcpu.lock);
	PCPU_PROBE(create_chunk, idx, ch->base);
	return ch;
}

/* Unlink ch (it may already be off the slot lists, never in use), then
 * give its memory back.  pop_mutex held. */
void pcpu_destroy_chunk(struct pcpu_chunk *ch)
{
	size_t s, e;

	PCPU_PROBE(destroy_chunk, ch->index, ch->base);
	pthread_mutex_lock(&pcpu.lock);
	pcpu_chunk_move(ch, -1);
	pcpu.chunk_table[ch->index] = NULL;
	bit_clear(pcpu.chunk_used, (size_t)ch->index);
	if (pcpu_chunk_in_pool(ch))
		pcpu.nr_empty_pop_pages -= ch->map->nr_empty_pop_pages;
	pcpu.stats.nr_chunks--;
	pcpu.stats.nr_chunks_destroyed++;
	pthread_mutex_unlock(&pcpu.lock);

	for (s = 0; bitmap_next_set_run(ch->map->populated, (size_t)ch->map->nr_pages, &s, &e); s = e) {
		pcpu_depopulate_pages(ch, (int)s, (int)e);
		pthread_mutex_lock(&pcpu.lock);
		pcpu.nr_populated -= (long)(e - s);
		pcpu.stats.nr_pages_depopulated += e - s;
		pthread_mutex_unlock(&pcpu.lock);
	}
	chunk_destroy(ch->map);
	free(ch);
}

int pcpu_populate_pages(struct pcpu_chunk *ch, int page_start, int page_end)
{
	size_t len = (size_t)(page_end - page_start) << pcpu.page_shift;

	for (unsigned cpu = 0; cpu < pcpu.nr_cpus; cpu++) {
		if (os_populate(unit_page(ch, cpu, page_start), len) == 0)
			continue;
		/* All or nothing: undo the units already done. */
		while (cpu-- > 0)
			(void)os_depopulate(unit_page(ch, cpu, page_start), len);
		errno = ENOMEM;
		return -1;
	}
	PCPU_PROBE(populate, ch->index, page_start, page_end);
	return 0;
}

void pcpu_depopulate_pages(struct pcpu_chunk *ch, int page_start, int page_end)
{
	size_t len = (size_t)(page_end - page_start) << pcpu.page_shift;

	/* A failed depopulation leaves memory resident and readable: wasteful
	 * but safe, since the range is bookkept as unpopulated and will be
	 * populated again before use. */
	PCPU_PROBE(depopulate, ch->index, page_start, page_end);
	pcpu_hook_depopulate(ch, page_start, page_end);
	for (unsigned cpu = 0; cpu < pcpu.nr_cpus; cpu++)
		(void)os_depopulate(unit_page(ch, cpu, page_start), len);
}

void pcpu_note_populated(struct pcpu_chunk *ch, int page_start, int page_end)
{
	int before = ch->map->nr_empty_pop_pages;

	chunk_mark_populated(ch->map, page_start, page_end);
	pcpu_hook_populated(ch, page_start, page_end);
	if (pcpu_chunk_in_pool(ch))
		pcpu.nr_empty_pop_pages += ch->map->nr_empty_pop_pages - before;
	pcpu.nr_populated += page_end - page_start;
	pcpu.stats.nr_pages_populated += (uint64_t)(page_end - page_start);
}

void pcpu_note_depopulated(struct pcpu_chunk *ch, int page_start, int page_end)
{
	int before = ch->map->nr_empty_pop_pages;

	chunk_mark_depopulated(ch->map, page_start, page_end);
	if (pcpu_chunk_in_pool(ch))
		pcpu.nr_empty_pop_pages += ch->map->nr_empty_pop_pages - before;
	pcpu.nr_populated -= page_end - page_start;
	pcpu.stats.nr_pages_depopulated += (uint64_t)(page_end - page_start);
}
