/*
 * pool_chunk.h - chunks in address space (pool_chunk.c): creation at a
 * fixed place in the region, destruction, and population of page ranges
 * in every unit.
 */
#ifndef PCPU_POOL_CHUNK_H
#define PCPU_POOL_CHUNK_H

#include "pool.h"

/* A chunk record, its per-page arrays and its in-chunk allocator of `pages`
 * pages hiding head / tail bytes, not yet in the region; NULL on ENOMEM. */
struct pcpu_chunk *pool_chunk_new(int pages, size_t head_bytes, size_t tail_bytes);
void pool_chunk_delete(struct pcpu_chunk *ch);

/* Creation, destruction, population: pop_mutex held. */
struct pcpu_chunk *pool_create_chunk(void);
void pool_destroy_chunk(struct pcpu_chunk *ch);
int pool_populate_pages(struct pcpu_chunk *ch, int page_start, int page_end);
/* Give pages back in every unit: 0 if the memory went back (it then reads
 * zero unless the mode is MADV_FREE), -1 if it may still hold its bytes.
 * The pages must already be bookkept unpopulated (pool_note_depopulated). */
int pool_depopulate_pages(struct pcpu_chunk *ch, int page_start, int page_end);
/* Record population changes in chunk and pool counters.  `lock` held. */
void pool_note_populated(struct pcpu_chunk *ch, int page_start, int page_end);
void pool_note_depopulated(struct pcpu_chunk *ch, int page_start, int page_end);
/* After pool_depopulate_pages succeeded: what the pages now hold.  `lock` held. */
void pool_note_given_back(struct pcpu_chunk *ch, int page_start, int page_end);
/* Populate every unpopulated page under an area.  pop_mutex held, not `lock`. */
int pool_populate_area(struct pcpu_chunk *ch, int off, int bits);
/* The blocking allocation path (pool_chunk.c): no lock held.  align_bits
 * is preferred, min_align_bits (<= align_bits) accepted where only it fits. */
struct pcpu_chunk *pool_alloc_blocking(size_t size, int bits, int align_bits, int min_align_bits,
				       bool user, int *off, const char **err);

#endif
