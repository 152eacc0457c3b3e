/*
 * inchunk.c - the chunk-level evaluation driver and its two ops tables
 * (see inchunk.h).  The hot paths, driver_alloc and driver_free, do the
 * same work for both allocators: a slot walk over intrusive lists, one
 * indirect call per chunk tried, a relocation check, and the zeroing.
 */
#include "inchunk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "areamap.h"
#include "chunk.h"

#define SLOT_BASE_SHIFT     5   /* 1..31 bytes share slot 1 */
#define SLOT_FAIL_THRESHOLD 3   /* requests below this slot sideline failing chunks */

struct link {
	struct link *prev, *next;
};

struct drv_chunk {
	struct link link;       /* first: a list node is its chunk */
	void *state;            /* the in-chunk allocator */
	char *mem;              /* nr_units * unit_bytes */
	int slot;               /* slot computed at the last relocation */
	int list;               /* list it is on: slot, or the sidelined list */
	int index;              /* handle = index * unit_bytes + offset */
};

struct driver {
	const struct inchunk_ops *ops;
	int unit_bytes, unit_shift, page_size, nr_units;
	bool sideline, no_zero;
	int top_slot;           /* slot of a unit-sized contig area */
	int free_slot;          /* fully free chunks */
	int sidelined;          /* list never walked */
	struct link *lists;     /* sidelined + 1 heads */
	unsigned long nonempty; /* bit per list that holds a chunk */
	struct drv_chunk **chunks;
	int nr_chunks, cap_chunks;
	int nr_sideline_events;
};

/* ---- the two in-chunk allocators behind one table -------------------- */

static void *am_create(int unit_bytes, int page_size)
{
	(void)page_size;
	return areamap_create(unit_bytes, 0);
}

static void am_destroy(void *c) { areamap_destroy(c); }
static int am_alloc(void *c, size_t size, size_t align) { return areamap_alloc(c, size, align); }
static int am_free(void *c, int off) { return areamap_free(c, off); }
static int am_contig(const void *c) { return areamap_contig_bytes(c); }
static int am_free_bytes(const void *c) { return areamap_free_bytes(c); }
static int am_verify(const void *c, char *msg, size_t len) { return areamap_verify(c, msg, len); }

const struct inchunk_ops inchunk_areamap_ops = {
	.name = "areamap", .create = am_create, .destroy = am_destroy, .alloc = am_alloc,
	.free = am_free, .contig_bytes = am_contig, .free_bytes = am_free_bytes,
	.verify = am_verify,
};

static void *bm_create(int unit_bytes, int page_size)
{
	return chunk_create(unit_bytes / page_size, (size_t)page_size, 0, 0);
}

static void bm_destroy(void *c) { chunk_destroy(c); }
static int bm_alloc(void *c, size_t size, size_t align) { return chunk_alloc(c, size, align, false); }
static int bm_free(void *c, int off) { return chunk_free(c, off); }
static int bm_contig(const void *c) { return chunk_contig_bytes(c); }
static int bm_free_bytes(const void *c) { return ((const struct chunk *)c)->free_bytes; }
/* chunk_verify may bring its summary cache up to date: the chunk itself is not const */
static int bm_verify(const void *c, char *msg, size_t len) { return chunk_verify((struct chunk *)c, msg, len); }

const struct inchunk_ops inchunk_bitmap_ops = {
	.name = "bitmap", .create = bm_create, .destroy = bm_destroy, .alloc = bm_alloc,
	.free = bm_free, .contig_bytes = bm_contig, .free_bytes = bm_free_bytes,
	.verify = bm_verify,
};

/* ---- slots ----------------------------------------------------------- */

/* log2 slot of a byte count: 1..31 -> 1, 32..63 -> 2, 64..127 -> 3 ... */
static inline int bytes_to_slot(int bytes)
{
	int highbit = 32 - __builtin_clz((unsigned)bytes);
	int slot = highbit - SLOT_BASE_SHIFT + 2;

	return slot > 1 ? slot : 1;
}

/* Where a request starts its walk: a whole unit can only come from the free slot. */
static inline int request_slot(const struct driver *d, size_t size)
{
	if (size >= (size_t)d->unit_bytes)
		return d->free_slot;
	return bytes_to_slot((int)size);
}

/* The slot a chunk belongs in, from its free bytes and contig hint. */
static inline int chunk_slot(const struct driver *d, const struct drv_chunk *c)
{
	int fb = d->ops->free_bytes(c->state), contig;

	if (fb == d->unit_bytes)
		return d->free_slot;
	contig = d->ops->contig_bytes(c->state);
	if (fb < 4 || contig < 4)
		return 0;
	return bytes_to_slot(contig);
}

static inline void list_del(struct link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
}

/* Put c on list `to`, at the front or the back (the kernel's move_front). */
static inline void list_move_to(struct driver *d, struct drv_chunk *c, int to, bool front)
{
	struct link *head = &d->lists[to], *l = &c->link;

	list_del(l);
	if (c->list >= 0 && d->lists[c->list].next == &d->lists[c->list])
		d->nonempty &= ~(1UL << c->list);
	c->list = to;
	d->nonempty |= 1UL << to;
	if (front) {
		l->prev = head;
		l->next = head->next;
	} else {
		l->prev = head->prev;
		l->next = head;
	}
	l->prev->next = l;
	l->next->prev = l;
}

/* After an allocation or free: move c if its slot changed (up: to the front). */
static inline void relocate(struct driver *d, struct drv_chunk *c)
{
	int nslot = chunk_slot(d, c);

	if (nslot != c->slot) {
		list_move_to(d, c, nslot, nslot > c->slot);
		c->slot = nslot;
	}
}

/* ---- the region pool ---------------------------------------------------- */

/*
 * Chunk memory is recycled across drivers so timed phases do not pay page
 * faults that would swamp the allocators' own cost with kernel noise.
 * Every region in the pool is nr_units * unit_bytes bytes and resident.
 */
static struct {
	char **regions;
	long nr, cap;
	size_t bytes;           /* size of each pooled region */
} pool;

static char *region_get(size_t bytes)
{
	char *m;

	if (pool.nr && pool.bytes == bytes)
		return pool.regions[--pool.nr];
	m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

static void region_put(char *m, size_t bytes)
{
	if (pool.bytes == bytes && pool.nr < pool.cap)
		pool.regions[pool.nr++] = m;
	else
		munmap(m, bytes);
}

int driver_pool_prepare(const struct driver_cfg *cfg, long nr_regions)
{
	size_t bytes = (size_t)cfg->unit_bytes * (size_t)cfg->nr_units;

	if (pool.bytes != bytes)
		driver_pool_release();
	pool.bytes = bytes;
	if (nr_regions > pool.cap) {
		char **n = realloc(pool.regions, sizeof(*n) * (size_t)nr_regions);

		if (!n)
			return -1;
		pool.regions = n;
		pool.cap = nr_regions;
	}
	while (pool.nr < nr_regions) {
		char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

		if (m == MAP_FAILED)
			return -1;
		pool.regions[pool.nr++] = m;
	}
	return 0;
}

void driver_pool_release(void)
{
	for (long i = 0; i < pool.nr; i++)
		munmap(pool.regions[i], pool.bytes);
	free(pool.regions);
	pool.regions = NULL;
	pool.nr = pool.cap = 0;
}

/* ---- chunks ------------------------------------------------------------ */

struct driver *driver_create(const struct inchunk_ops *ops, const struct driver_cfg *cfg)
{
	struct driver *d;
	int ub = cfg->unit_bytes;

	if (ub < cfg->page_size || ub % cfg->page_size || (ub & (ub - 1)) || cfg->nr_units < 1)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->ops = ops;
	d->unit_bytes = ub;
	d->unit_shift = __builtin_ctz((unsigned)ub);
	d->page_size = cfg->page_size;
	d->nr_units = cfg->nr_units;
	d->sideline = cfg->sideline;
	d->no_zero = cfg->no_zero;
	d->top_slot = bytes_to_slot(ub);
	d->free_slot = d->top_slot + 1;
	d->sidelined = d->free_slot + 1;     /* < BITS_PER_LONG: ub <= 2^31 */
	d->lists = calloc((size_t)d->sidelined + 1, sizeof(d->lists[0]));
	if (!d->lists) {
		free(d);
		return NULL;
	}
	for (int i = 0; i <= d->sidelined; i++)
		d->lists[i].prev = d->lists[i].next = &d->lists[i];
	return d;
}

void driver_destroy(struct driver *d)
{
	if (!d)
		return;
	for (int i = 0; i < d->nr_chunks; i++) {
		struct drv_chunk *c = d->chunks[i];

		d->ops->destroy(c->state);
		region_put(c->mem, (size_t)d->unit_bytes * (size_t)d->nr_units);
		free(c);
	}
	free(d->chunks);
	free(d->lists);
	free(d);
}

struct drv_chunk *driver_new_chunk(struct driver *d)
{
	size_t bytes = (size_t)d->unit_bytes * (size_t)d->nr_units;
	struct drv_chunk *c;

	if (d->nr_chunks == d->cap_chunks) {
		int ncap = d->cap_chunks ? 2 * d->cap_chunks : 64;
		struct drv_chunk **n = realloc(d->chunks, sizeof(*n) * (size_t)ncap);

		if (!n)
			return NULL;
		d->chunks = n;
		d->cap_chunks = ncap;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->mem = region_get(bytes);
	if (!c->mem) {
		free(c);
		return NULL;
	}
	c->state = d->ops->create(d->unit_bytes, d->page_size);
	if (!c->state) {
		region_put(c->mem, bytes);
		free(c);
		return NULL;
	}
	c->index = d->nr_chunks;
	d->chunks[d->nr_chunks++] = c;
	/* a new chunk enters the free slot at the front */
	c->link.prev = c->link.next = &c->link;
	c->list = -1;
	c->slot = d->free_slot;
	list_move_to(d, c, d->free_slot, true);
	return c;
}

/* Zero the new object in every unit and make its handle. */
static inline long finish_alloc(struct driver *d, struct drv_chunk *c, int off, size_t size)
{
	size_t bytes = (size + 3) & ~(size_t)3;
	char *p = c->mem + off;

	for (int u = 0; u < d->nr_units && !d->no_zero; u++, p += d->unit_bytes)
		memset(p, 0, bytes);
	return ((long)c->index << d->unit_shift) | off;
}

/* A chunk could not serve a request from slot rslot. */
static inline void note_failure(struct driver *d, struct drv_chunk *c, int rslot)
{
	if (d->sideline && rslot < SLOT_FAIL_THRESHOLD) {
		/* out of every walk until a free changes its slot */
		c->slot = chunk_slot(d, c);
		list_move_to(d, c, d->sidelined, true);
		d->nr_sideline_events++;
	} else {
		relocate(d, c);
	}
}

long driver_alloc(struct driver *d, size_t size, size_t align)
{
	int rslot = request_slot(d, size), off;
	struct drv_chunk *c;

	/* walk the non-empty slots from rslot up to the free slot */
	unsigned long todo = d->nonempty & ~((1UL << rslot) - 1) & ((2UL << d->free_slot) - 1);

	for (; todo; todo &= todo - 1) {
		struct link *head = &d->lists[__builtin_ctzl(todo)], *l, *next;

		for (l = head->next; l != head; l = next) {
			next = l->next;
			c = (struct drv_chunk *)l;
			off = d->ops->alloc(c->state, size, align);
			if (off >= 0) {
				relocate(d, c);
				return finish_alloc(d, c, off, size);
			}
			note_failure(d, c, rslot);
		}
	}

	/* nothing fits: a new chunk */
	c = driver_new_chunk(d);
	if (!c)
		return -1;
	off = d->ops->alloc(c->state, size, align);
	if (off < 0)
		return -1;
	relocate(d, c);
	return finish_alloc(d, c, off, size);
}

long driver_alloc_in(struct driver *d, struct drv_chunk *c, size_t size, size_t align)
{
	int off = d->ops->alloc(c->state, size, align);

	relocate(d, c);
	return off < 0 ? -1 : finish_alloc(d, c, off, size);
}

int driver_free(struct driver *d, long handle)
{
	long idx = handle >> d->unit_shift;
	struct drv_chunk *c;
	int freed;

	if (handle < 0 || idx >= d->nr_chunks)
		return -1;
	c = d->chunks[idx];
	freed = d->ops->free(c->state, (int)(handle & (d->unit_bytes - 1)));
	if (freed >= 0)
		relocate(d, c);
	return freed;
}

void *driver_ptr(const struct driver *d, long handle, int unit)
{
	const struct drv_chunk *c = d->chunks[handle >> d->unit_shift];

	return c->mem + (size_t)unit * (size_t)d->unit_bytes + (handle & (d->unit_bytes - 1));
}

int driver_nr_chunks(const struct driver *d)
{
	return d->nr_chunks;
}

int driver_nr_sidelined(const struct driver *d)
{
	return d->nr_sideline_events;
}

long driver_used_bytes(const struct driver *d)
{
	long used = 0;

	for (int i = 0; i < d->nr_chunks; i++)
		used += d->unit_bytes - d->ops->free_bytes(d->chunks[i]->state);
	return used;
}

int driver_verify(const struct driver *d, char *msg, size_t len)
{
	char sub[200];

	if (!d->ops->verify)
		return 0;
	for (int i = 0; i < d->nr_chunks; i++) {
		if (d->ops->verify(d->chunks[i]->state, sub, sizeof(sub))) {
			snprintf(msg, len, "%s chunk %d: %s", d->ops->name, i, sub);
			return -1;
		}
	}
	return 0;
}
