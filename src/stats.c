/*
 * stats.c - observability and self-checking of the whole allocator:
 * pcpu_stats_get, the kernel-style reports (pcpu_stats_print,
 * pcpu_layout_print) and pcpu_verify, which checks every chunk and every
 * cross-chunk invariant under both locks.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bitops.h"
#include "internal.h"

static void fill_layout(struct pcpu_stats *st)
{
	const struct layout *l = pcpu.layout;

	st->nr_units = (unsigned)l->nr_units;
	st->nr_groups = (unsigned)l->nr_groups;
	st->unit_size = l->unit_size;
	st->static_size = l->static_size;
	st->reserved_size = l->reserved_size;
	st->dyn_size = l->dyn_size;
	st->atom_size = l->atom_size;
	st->alloc_size = l->alloc_size;
	st->page_size = l->page_size;
}

PCPU_API int pcpu_stats_get(struct pcpu_stats *out)
{
	if (!out) {
		errno = EINVAL;
		return -1;
	}
	if (pcpu_ensure_init())
		return -1;
	pthread_mutex_lock(&pcpu.lock);
	*out = pcpu.stats;
	out->nr_empty_pop_pages = (uint64_t)pcpu.nr_empty_pop_pages;
	out->nr_populated_pages = (uint64_t)pcpu.nr_populated;
	pthread_mutex_unlock(&pcpu.lock);
	fill_layout(out);
	return 0;
}

PCPU_API void pcpu_layout_print(FILE *out)
{
	if (pcpu_ensure_init())
		return;
	layout_print(pcpu.layout, out);
}

/* Free-run statistics of one chunk: total free bytes in runs, the largest,
 * and the number of runs (fragments). */
static void chunk_frag(const struct chunk *c, int *nr_runs, int *max_run, long *sum_run)
{
	size_t s, e;

	*nr_runs = 0;
	*max_run = 0;
	*sum_run = 0;
	for (s = (size_t)c->start_bits;
	     bitmap_next_clear_run(c->alloc_map, (size_t)c->end_bits, &s, &e); s = e) {
		int len = (int)(e - s) * PCPU_MIN_ALLOC_BYTES;

		(*nr_runs)++;
		*sum_run += len;
		if (len > *max_run)
			*max_run = len;
	}
}

static void print_chunk(FILE *out, const char *name, const struct pcpu_chunk *ch)
{
	const struct chunk *c = ch->map;
	int nr_runs, max_run;
	long sum_run;
	int first_free_block = c->chunk_md.first_free >> c->block_shift;

	chunk_frag(c, &nr_runs, &max_run, &sum_run);
	fprintf(out, "Chunk: %s\n", name);
	fprintf(out, "  %-20s: %10d\n", "nr_alloc", c->nr_alloc);
	fprintf(out, "  %-20s: %10d\n", "nr_pages", c->nr_pages);
	fprintf(out, "  %-20s: %10d\n", "nr_populated", c->nr_populated);
	fprintf(out, "  %-20s: %10d\n", "empty_pop_pages", c->nr_empty_pop_pages);
	fprintf(out, "  %-20s: %10d\n", "first_free_block", first_free_block);
	fprintf(out, "  %-20s: %10d\n", "free_bytes", c->free_bytes);
	fprintf(out, "  %-20s: %10d\n", "contig_bytes", chunk_contig_bytes(c));
	fprintf(out, "  %-20s: %10d\n", "free_fragments", nr_runs);
	fprintf(out, "  %-20s: %10ld\n", "sum_frag", sum_run - max_run);
	fprintf(out, "  %-20s: %10d\n", "max_frag", max_run);
	fprintf(out, "  %-20s: %10s\n", "state",
		ch->isolated ? "isolated" : ch->slot == pcpu.sidelined_slot ? "sidelined" :
		ch->slot == pcpu.free_slot ? "free" : "in use");
	fputc('\n', out);
}

PCPU_API void pcpu_stats_print(FILE *out)
{
	struct pcpu_stats st;

	if (pcpu_stats_get(&st))
		return;
	fprintf(out, "Percpu Memory Statistics\n");
	fprintf(out, "Allocation Info:\n");
	fprintf(out, "----------------------------------------\n");
	fprintf(out, "  %-20s: %12u\n", "unit_size", (unsigned)st.unit_size);
	fprintf(out, "  %-20s: %12u\n", "static_size", (unsigned)st.static_size);
	fprintf(out, "  %-20s: %12u\n", "reserved_size", (unsigned)st.reserved_size);
	fprintf(out, "  %-20s: %12u\n", "dyn_size", (unsigned)st.dyn_size);
	fprintf(out, "  %-20s: %12u\n", "atom_size", (unsigned)st.atom_size);
	fprintf(out, "  %-20s: %12u\n", "alloc_size", (unsigned)st.alloc_size);
	fprintf(out, "  %-20s: %12u\n", "nr_units", st.nr_units);
	fprintf(out, "  %-20s: %12u\n", "nr_groups", st.nr_groups);
	fputc('\n', out);
	fprintf(out, "Global Stats:\n");
	fprintf(out, "----------------------------------------\n");
#define G(f) fprintf(out, "  %-20s: %12llu\n", #f, (unsigned long long)st.f)
	G(nr_alloc); G(nr_dealloc); G(nr_cur_alloc); G(nr_max_alloc); G(nr_alloc_fail);
	G(nr_atomic_fail); G(nr_chunks); G(nr_max_chunks); G(min_alloc_size); G(max_alloc_size);
	G(nr_empty_pop_pages); G(nr_populated_pages); G(nr_chunks_created); G(nr_chunks_destroyed);
	G(nr_pages_populated); G(nr_pages_depopulated); G(nr_balance_passes);
	G(nr_balance_populated); G(nr_balance_depopulated);
#undef G
	fputc('\n', out);

	pthread_mutex_lock(&pcpu.lock);
	if (pcpu.reserved_chunk)
		print_chunk(out, "reserved", pcpu.reserved_chunk);
	for (int i = 0; i < pcpu.chunk_hiwater; i++) {
		char name[32];

		if (!pcpu.chunk_table[i])
			continue;
		snprintf(name, sizeof(name), i ? "%d" : "first (%d)", i);
		print_chunk(out, name, pcpu.chunk_table[i]);
	}
	pthread_mutex_unlock(&pcpu.lock);
}

/* ---- verification ---------------------------------------------------------- */

#define VFAIL(...) do { fprintf(stderr, "libpercpu: pcpu_verify: " __VA_ARGS__); \
			fputc('\n', stderr); ret = -1; goto out; } while (0)

PCPU_API int pcpu_verify(void)
{
	char msg[256];
	long empty_pop = 0, populated = 0;
	uint64_t nr_alloc = 0;
	int ret = 0, nr_listed = 0, nr_chunks = 0;

	if (pcpu_ensure_init())
		return -1;
	pthread_mutex_lock(&pcpu.pop_mutex);
	pthread_mutex_lock(&pcpu.lock);

	if (pcpu.reserved_chunk) {
		if (chunk_verify(pcpu.reserved_chunk->map, msg, sizeof(msg)))
			VFAIL("reserved chunk: %s", msg);
		nr_alloc += (uint64_t)pcpu.reserved_chunk->map->nr_alloc;
	}
	if (bitmap_next_set(pcpu.chunk_used, (size_t)pcpu.max_chunks, (size_t)pcpu.chunk_hiwater) <
	    (size_t)pcpu.max_chunks)
		VFAIL("a chunk index at or above the high-water mark %d is in use", pcpu.chunk_hiwater);
	for (int i = 0; i < pcpu.chunk_hiwater; i++) {
		struct pcpu_chunk *ch = pcpu.chunk_table[i];

		if ((ch != NULL) != bit_test(pcpu.chunk_used, (size_t)i))
			VFAIL("chunk table slot %d and its in-use bit disagree", i);
		if (!ch)
			continue;
		if (ch->index != i || ch->base != pcpu.region + ((size_t)i << pcpu.stride_shift))
			VFAIL("chunk %d: index or base address wrong", i);
		if (chunk_verify(ch->map, msg, sizeof(msg)))
			VFAIL("chunk %d: %s", i, msg);
		if (ch->isolated ? ch->slot != pcpu.to_depopulate_slot :
		    ch->slot != pcpu.sidelined_slot && ch->slot != pcpu_chunk_slot(ch))
			VFAIL("chunk %d: on slot %d, expected %d%s", i, ch->slot, pcpu_chunk_slot(ch),
			      ch->isolated ? " (isolated)" : "");
		if (pcpu_chunk_in_pool(ch))
			empty_pop += ch->map->nr_empty_pop_pages;
		populated += ch->map->nr_populated;
		nr_alloc += (uint64_t)ch->map->nr_alloc;
		nr_chunks++;
		if (i == 0 && !bitmap_range_set(ch->map->populated, 0,
						 pcpu.first_chunk_populated >> pcpu.page_shift))
			VFAIL("first chunk: a page of its populated part is not populated");
	}
	for (int s = 0; s < pcpu.nr_slots; s++) {
		for (struct pcpu_chunk *ch = pcpu.slots[s].head, *prev = NULL; ch; prev = ch, ch = ch->next) {
			if (ch->slot != s || ch->prev != prev)
				VFAIL("slot list %d: chunk %d has slot %d or a broken link", s, ch->index, ch->slot);
			if (++nr_listed > nr_chunks)
				VFAIL("slot lists hold more chunks than the table");
		}
	}
	if (nr_listed != nr_chunks)
		VFAIL("slot lists hold %d chunks, the table %d", nr_listed, nr_chunks);
	if (empty_pop != pcpu.nr_empty_pop_pages)
		VFAIL("pool of empty populated pages %ld, chunks say %ld", pcpu.nr_empty_pop_pages, empty_pop);
	if (populated != pcpu.nr_populated)
		VFAIL("populated pages %ld, chunks say %ld", pcpu.nr_populated, populated);
	if (nr_alloc != pcpu.stats.nr_cur_alloc)
		VFAIL("live allocations %llu, chunks say %llu",
		      (unsigned long long)pcpu.stats.nr_cur_alloc, (unsigned long long)nr_alloc);
	if ((uint64_t)nr_chunks - 1 != pcpu.stats.nr_chunks)
		VFAIL("nr_chunks %u, table holds %d dynamic chunks", pcpu.stats.nr_chunks, nr_chunks - 1);
out:
	pthread_mutex_unlock(&pcpu.lock);
	pthread_mutex_unlock(&pcpu.pop_mutex);
	return ret;
}
