/*
 * inchunk.h - the chunk-level evaluation driver.
 *
 * Runs an "in-chunk allocator" (the area map or the bitmap chunk, behind
 * an ops table) under one chunk manager, so timing differences come from
 * the in-chunk allocator alone.  The manager follows the kernel's: chunks
 * sit on slot lists by their largest free area (log2 slots of the contig
 * hint, 1..31 bytes sharing a slot), a fully free chunk sits in the free
 * slot, an allocation walks the slots upward from the one for its size
 * and takes the first chunk that fits, a chunk that fails a small request
 * is sidelined (left out of every walk until a free changes its slot), and
 * a new chunk is created when nothing fits.  Each chunk owns real memory,
 * unit_bytes for each of nr_units units (from a pool of resident regions,
 * see driver_pool_prepare), and every new object is zeroed in every unit.  A handle is chunk_index * unit_bytes + offset, so a free
 * finds its chunk in O(1).
 */
#ifndef PCPU_BENCH_INCHUNK_H
#define PCPU_BENCH_INCHUNK_H

#include <stdbool.h>
#include <stddef.h>

struct inchunk_ops {
	const char *name;
	void *(*create)(int unit_bytes, int page_size);
	void (*destroy)(void *chunk);
	int (*alloc)(void *chunk, size_t size, size_t align);  /* byte offset or -1 */
	int (*free)(void *chunk, int off);                     /* bytes or -1 */
	int (*contig_bytes)(const void *chunk);
	int (*free_bytes)(const void *chunk);
	/* optional: 0, or -1 with a message (used with --check) */
	int (*verify)(const void *chunk, char *msg, size_t len);
};

extern const struct inchunk_ops inchunk_areamap_ops;
extern const struct inchunk_ops inchunk_bitmap_ops;

struct driver_cfg {
	int unit_bytes;         /* power of two, multiple of page_size */
	int page_size;
	int nr_units;           /* units (CPUs) per chunk */
	bool sideline;          /* sideline chunks that fail small requests */
	bool no_zero;           /* diagnosis only (chunk-insns): skip the zeroing */
};

struct driver;
struct drv_chunk;

/*
 * Chunk memory comes from a pool shared by all drivers: prepare puts
 * nr_regions resident regions in it (untimed, so timed phases see no page
 * faults), destroyed drivers give theirs back, release unmaps them all.
 * Without a prepared pool chunks are mmap'd on demand.
 */
int driver_pool_prepare(const struct driver_cfg *cfg, long nr_regions);
void driver_pool_release(void);

struct driver *driver_create(const struct inchunk_ops *ops, const struct driver_cfg *cfg);
void driver_destroy(struct driver *d);   /* frees every chunk and its memory */

/* Allocate and zero in every unit: a handle >= 0, or -1. */
long driver_alloc(struct driver *d, size_t size, size_t align);
/* Free by handle: bytes freed, or -1 when the handle is not live. */
int driver_free(struct driver *d, long handle);
/* Address of the object in one unit. */
void *driver_ptr(const struct driver *d, long handle, int unit);

/* Set-up helpers (pre-filling): a new empty chunk, and an allocation
 * inside that chunk only (relocated and zeroed like any other). */
struct drv_chunk *driver_new_chunk(struct driver *d);
long driver_alloc_in(struct driver *d, struct drv_chunk *c, size_t size, size_t align);

int driver_nr_chunks(const struct driver *d);
int driver_nr_sidelined(const struct driver *d);   /* sideline events so far */
/* Bytes still allocated over all chunks (0 when everything was freed). */
long driver_used_bytes(const struct driver *d);
/* Run ops->verify on every chunk: 0, or -1 with the first failure in msg. */
int driver_verify(const struct driver *d, char *msg, size_t len);

#endif
