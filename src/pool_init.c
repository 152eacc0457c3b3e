/*
 * pool_init.c - bringing the pool up: the configuration (pcpu_config, the
 * environment, defaults, limits), the address-space reservation, the first
 * chunk, the balancer marks and reclaim settings, initialisation on first
 * use, and fork.
 *
 * Initialisation runs once, under init_mutex.  It asks the clients for the
 * program's static area, builds the layout, reserves [guard | region],
 * sets up and populates the first chunk, tells the clients the pool is
 * ready (static variables are placed then) and publishes `ready`; every
 * later reader of the geometry needs no lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bitops.h"
#include "diag.h"
#include "os.h"
#include "memcheck.h"
#include "pool_chunk.h"
#include "pool_init.h"

PCPU_PUBLIC uintptr_t pcpu_cpu_offset[PCPU_MAX_CPUS];

static pthread_mutex_t init_mutex = PTHREAD_MUTEX_INITIALIZER;

#define DEFAULT_RESERVED_SIZE (8u << 10)
#define DEFAULT_DYN_SIZE (20u << 10)
#define DEFAULT_MIN_UNIT_SIZE (256u << 10)   /* a typical x86_64 kernel unit */
#define DEFAULT_ADDR_SPACE (64ull << 30)
#define MAX_REGION_SIZE (1ull << 40)
#define MAX_UNIT_SIZE ((size_t)1 << 30)      /* keeps every bit offset in an int */
#define DEFAULT_DECAY_MS 1000

/* ---- configuration -------------------------------------------------------- */

/* One line naming the field and why, then EINVAL. */
static int bad_config(const char *field, const char *why, unsigned long long value)
{
	pcpu_warn(PCPU_WARN_CONFIG, 0, "pcpu_init: %s = %llu: %s", field, value, why);
	errno = EINVAL;
	return -1;
}

/* Fill defaults, round sizes up to the granule and refuse the impossible. */
static int check_config(struct pcpu_config *cfg, size_t static_size)
{
	size_t granule = PCPU_MIN_ALLOC_BYTES;

	if (!cfg->nr_cpus)
		cfg->nr_cpus = os_possible_cpus();
	/* PCPU_RESERVED_SIZE may be 0: no reserved area, every library's
	 * variables then go to dynamic chunks (static.c). */
	if (!cfg->reserved_size &&
	    !pcpu_env_size("PCPU_RESERVED_SIZE", 0, MAX_UNIT_SIZE, &cfg->reserved_size))
		cfg->reserved_size = DEFAULT_RESERVED_SIZE;
	if (!cfg->dyn_size)
		cfg->dyn_size = DEFAULT_DYN_SIZE;
	if (!cfg->min_unit_size)
		cfg->min_unit_size = DEFAULT_MIN_UNIT_SIZE;
	if (!cfg->addr_space)
		(void)pcpu_env_size("PCPU_ADDR_SPACE", 1, MAX_REGION_SIZE, &cfg->addr_space);

	if (cfg->nr_cpus > PCPU_MAX_CPUS)
		return bad_config("nr_cpus", "above PCPU_MAX_CPUS (4096)", cfg->nr_cpus);
	if (cfg->reserved_size > MAX_UNIT_SIZE)
		return bad_config("reserved_size", "above the largest unit (1 GiB)", cfg->reserved_size);
	if (cfg->dyn_size > MAX_UNIT_SIZE)
		return bad_config("dyn_size", "above the largest unit (1 GiB)", cfg->dyn_size);
	cfg->reserved_size = PCPU_ALIGN_UP(cfg->reserved_size, granule);
	cfg->dyn_size = PCPU_ALIGN_UP(cfg->dyn_size, granule);
	if (static_size + cfg->reserved_size + cfg->dyn_size > MAX_UNIT_SIZE)
		return bad_config("reserved_size + dyn_size",
				  "with the static area, above the largest unit (1 GiB)",
				  cfg->reserved_size + cfg->dyn_size);
	if (cfg->min_unit_size > MAX_UNIT_SIZE)
		return bad_config("min_unit_size", "above the largest unit (1 GiB)", cfg->min_unit_size);
	if (cfg->atom_size && !pcpu_is_pow2(cfg->atom_size))
		return bad_config("atom_size", "not a power of two", cfg->atom_size);
	if (cfg->atom_size > MAX_UNIT_SIZE)
		return bad_config("atom_size", "above 1 GiB", cfg->atom_size);
	if (cfg->addr_space > MAX_REGION_SIZE)
		return bad_config("addr_space", "above 1 TiB", cfg->addr_space);
	if (cfg->decay_ms < PCPU_DECAY_IMMEDIATE)
		return bad_config("decay_ms", "negative but neither PCPU_DECAY_NEVER nor PCPU_DECAY_IMMEDIATE",
				  (unsigned long long)(long long)cfg->decay_ms);
	return 0;
}

/* Balancer marks and reclaim rule: config, else environment, else defaults
 * (the kernel's 2 and 4 pages, scaled up for chunks of many pages). */
static void set_marks(const struct pcpu_config *cfg)
{
	int pages = pcpu_pool.unit_pages;
	long low = cfg->empty_pop_low, high = cfg->empty_pop_high, frac = cfg->reclaim_frac;

	if (!low && !pcpu_env_long("PCPU_EMPTY_POP_LOW", 1, pages, &low))
		low = pages / 64 > 2 ? pages / 64 : 2;
	if (!high && !pcpu_env_long("PCPU_EMPTY_POP_HIGH", 1, pages, &high))
		high = pages / 32 > 4 ? pages / 32 : 4;
	if (!frac && !pcpu_env_long("PCPU_RECLAIM_FRAC", 1, 1024, &frac))
		frac = 4;
	if (high < low)
		high = low;
	pcpu_pool.empty_pop_low = low > pages ? pages : (int)low;
	pcpu_pool.empty_pop_high = high > pages ? pages : (int)high;
	pcpu_pool.reclaim_frac = frac < 1 ? 1 : frac > 1024 ? 1024 : (int)frac;
}

/*
 * Reclaim: the decay (config, else PCPU_DECAY_MS, else the default) and how
 * pages go back (PCPU_DEPOPULATE).  The default decay, 1 s, outlasts the
 * phases of a workload whose live set shrinks and regrows, so pages freed
 * in one phase are reused in the next instead of being given back and
 * faulted in again (see README, "Reclaim").
 */
static void set_reclaim(const struct pcpu_config *cfg)
{
	const char *how = pcpu_getenv("PCPU_DEPOPULATE");
	long decay = cfg->decay_ms;

	if (decay == PCPU_DECAY_IMMEDIATE)
		decay = 0;
	else if (decay == 0 && !pcpu_env_long("PCPU_DECAY_MS", -1, INT_MAX, &decay))
		decay = DEFAULT_DECAY_MS;
	pcpu_pool.decay_ms = decay;
	pcpu_pool.depop_how = OS_DEPOP_DONTNEED;
	if (!how || !*how || strcmp(how, "dontneed") == 0)
		return;
	if (strcmp(how, "free") == 0)
		pcpu_pool.depop_how = OS_DEPOP_FREE;
	else if (strcmp(how, "protect") == 0)
		pcpu_pool.depop_how = OS_DEPOP_PROTECT;
	else
		pcpu_warn(PCPU_WARN_CONFIG, 0, "PCPU_DEPOPULATE=%s: not dontneed, free or protect; "
			  "using dontneed", how);
}

/* ---- address space and the first chunk ------------------------------------- */

/* Reserve [guard | region] and the region's flat live map (1/32 of it),
 * halving the region while the system refuses. */
static int reserve_region(size_t want, size_t stride)
{
	size_t size = want / stride * stride;

	if (size < stride)
		size = stride;
	for (;;) {
		void *m = os_reserve(2 * size, stride);
		size_t live_bytes = size / PCPU_MIN_ALLOC_BYTES / CHAR_BIT;
		void *live = m ? os_meta_reserve(live_bytes) : NULL;

		if (live) {
			pcpu_pool.mapping = m;
			pcpu_pool.mapping_size = 2 * size;
			pcpu_pool.guard_size = size;
			pcpu_pool.region = (char *)m + size;
			pcpu_pool.region_size = size;
			pcpu_pool.live_flat = live;
			pcpu_pool.live_flat_bytes = live_bytes;
			return 0;
		}
		if (m)
			os_unreserve(m, 2 * size);
		if (size == stride)
			return -1;
		size = size / 2 / stride * stride;
		if (size < stride)
			size = stride;
	}
}

static struct pcpu_chunk *first_chunk_part(int pages, size_t head, size_t tail)
{
	struct pcpu_chunk *ch = pool_chunk_new(pages, head, tail);

	if (!ch)
		return NULL;
	ch->base = pcpu_pool.region;
	ch->immutable = true;
	return ch;
}

/*
 * The first chunk, [static | reserved | dynamic | unused tail]: one chunk
 * allocator hiding the static and reserved areas and the tail, and, when
 * there is a reserved area, a second one over [static | reserved] hiding
 * the static area.  Its used part is populated now and never given back.
 */
static int setup_first_chunk(size_t static_size)
{
	const struct layout *l = pcpu_pool.layout;
	size_t size_sum = l->static_size + l->reserved_size + l->dyn_size;
	int pop_pages = (int)((size_sum + pcpu_pool.page_size - 1) >> pcpu_pool.page_shift);
	struct pcpu_chunk *fc, *rc = NULL;

	fc = first_chunk_part(pcpu_pool.unit_pages, static_size + l->reserved_size,
			      pcpu_pool.unit_size - size_sum);
	if (!fc)
		goto fail;
	if (l->reserved_size) {
		size_t end = static_size + l->reserved_size;
		int pages = (int)((end + pcpu_pool.page_size - 1) >> pcpu_pool.page_shift);

		rc = first_chunk_part(pages, static_size, ((size_t)pages << pcpu_pool.page_shift) - end);
		if (!rc)
			goto fail;
		chunk_mark_populated(rc->map, 0, pages);
	}

	for (int g = 0; os_nr_nodes() > 1 && g < l->nr_groups; g++)
		(void)os_bind_node(pcpu_pool.region + l->groups[g].base_offset,
				   (size_t)l->groups[g].nr_units * pcpu_pool.unit_size, l->groups[g].node);
	pcpu_lock(&pcpu_pool.pop_mutex);
	if (pool_populate_pages(fc, 0, pop_pages)) {
		pcpu_unlock(&pcpu_pool.pop_mutex);
		goto fail;
	}
	pcpu_lock(&pcpu_pool.lock);
	pcpu_pool.first_chunk = fc;
	pcpu_pool.reserved_chunk = rc;
	pcpu_pool.reserved_end = rc ? rc->map->end_bits * PCPU_MIN_ALLOC_BYTES : 0;
	pcpu_pool.first_chunk_populated = (size_t)pop_pages << pcpu_pool.page_shift;
	pool_publish_chunk(0, fc);
	bit_set(pcpu_pool.chunk_used, 0);
	pcpu_pool.chunk_hiwater = 1;
	pool_note_populated(fc, 0, pop_pages);
	pcpu_pool.stats.nr_pages_populated = 0;   /* the first chunk is not a population event */
	pool_chunk_relocate(fc, -1);
	pcpu_unlock(&pcpu_pool.lock);
	pcpu_unlock(&pcpu_pool.pop_mutex);
	return 0;
fail:
	pool_chunk_delete(rc);
	pool_chunk_delete(fc);
	errno = ENOMEM;
	return -1;
}

/* Everything of the pool but its locks back to zero (a failed init). */
static void reset_pool(void)
{
	struct pcpu_lock lock = pcpu_pool.lock, pop = pcpu_pool.pop_mutex;

	free(pcpu_pool.chunk_table);
	free(pcpu_pool.bound_maps);
	free(pcpu_pool.chunk_used);
	free(pcpu_pool.live_maps);
	os_meta_free(pcpu_pool.live_flat, pcpu_pool.live_flat_bytes);
	free(pcpu_pool.chunk_unclean);
	free(pcpu_pool.unit_iov);
	free(pcpu_pool.slots);
	if (pcpu_pool.mapping)
		os_unreserve(pcpu_pool.mapping, pcpu_pool.mapping_size);
	layout_free(pcpu_pool.layout);
	memset(&pcpu_pool, 0, sizeof(pcpu_pool));
	pcpu_pool.lock = lock;
	pcpu_pool.pop_mutex = pop;
}

/* Static area bytes asked of the clients (the main program's PCPU_DEFINEs). */
static size_t clients_static_size(void)
{
	size_t size = 0;

	pool_for_each_client(c)
		if (c->static_size)
			size += c->static_size();
	return size;
}

static int do_init(const struct pcpu_config *user)
{
	struct pcpu_config cfg = user ? *user : (struct pcpu_config){ 0 };
	struct layout_params lp = { 0 };
	size_t static_size = clients_static_size(), stride;

	if (check_config(&cfg, static_size))
		return -1;
	lp.nr_cpus = cfg.nr_cpus;
	lp.static_size = static_size;
	lp.reserved_size = cfg.reserved_size;
	lp.dyn_size = cfg.dyn_size;
	lp.min_unit_size = cfg.min_unit_size;
	lp.atom_size = cfg.atom_size;
	lp.cpu_distance = cfg.cpu_distance;
	pcpu_pool.layout = layout_build(&lp);
	if (!pcpu_pool.layout)
		return -1;

	pcpu_pool.cfg = cfg;
	pcpu_pool.nr_cpus = cfg.nr_cpus;
	pcpu_pool.page_size = pcpu_pool.layout->page_size;
	pcpu_pool.page_shift = __builtin_ctzl(pcpu_pool.page_size);
	pcpu_pool.unit_size = pcpu_pool.layout->unit_size;
	pcpu_pool.unit_pages = (int)(pcpu_pool.unit_size >> pcpu_pool.page_shift);

	for (stride = pcpu_pool.page_size; stride < pcpu_pool.layout->chunk_span; stride *= 2)
		;
	if (stride > MAX_REGION_SIZE) {
		layout_free(pcpu_pool.layout);
		pcpu_pool.layout = NULL;
		return bad_config("nr_cpus", "times the unit size, above the largest region (1 TiB)",
				  cfg.nr_cpus);
	}
	pcpu_pool.stride_shift = __builtin_ctzl(stride);
	if (!cfg.addr_space) {
		cfg.addr_space = DEFAULT_ADDR_SPACE;
		if (cfg.addr_space < 256 * stride)
			cfg.addr_space = 256 * stride;
		if (cfg.addr_space > MAX_REGION_SIZE)
			cfg.addr_space = MAX_REGION_SIZE;
	}
	if (reserve_region(cfg.addr_space, stride))
		goto fail;
	pcpu_pool.handle_base = (uintptr_t)pcpu_pool.region - pcpu_pool.guard_size;
	/* Page aligned: handle_base / 256 is a whole number of live words. */
	pcpu_pool.live_bias = (unsigned long *)((uintptr_t)pcpu_pool.live_flat -
						pcpu_pool.handle_base / PCPU_MIN_ALLOC_BYTES / CHAR_BIT);
	pcpu_pool.stride_mask = stride - 1;
	pcpu_pool.max_chunks = (int)(pcpu_pool.region_size >> pcpu_pool.stride_shift);
	pcpu_pool.chunk_table = calloc((size_t)pcpu_pool.max_chunks, sizeof(*pcpu_pool.chunk_table));
	pcpu_pool.bound_maps = calloc((size_t)pcpu_pool.max_chunks, sizeof(*pcpu_pool.bound_maps));
	pcpu_pool.chunk_used = calloc(BITS_TO_LONGS(pcpu_pool.max_chunks), sizeof(unsigned long));
	pcpu_pool.live_maps = calloc((size_t)pcpu_pool.max_chunks, sizeof(*pcpu_pool.live_maps));
	if (pcpu_pool.live_maps)
		pcpu_pool.live_maps[0] = pool_live_map_new(0);
	pcpu_pool.chunk_unclean = calloc(BITS_TO_LONGS(pcpu_pool.max_chunks), sizeof(unsigned long));
	pcpu_pool.unit_iov = calloc(pcpu_pool.nr_cpus, sizeof(*pcpu_pool.unit_iov));

	pcpu_pool.sidelined_slot = pool_size_to_slot(pcpu_pool.unit_size - 1) + 1;
	pcpu_pool.free_slot = pcpu_pool.sidelined_slot + 1;
	pcpu_pool.to_depopulate_slot = pcpu_pool.free_slot + 1;
	pcpu_pool.nr_slots = pcpu_pool.to_depopulate_slot + 1;
	pcpu_pool.slots = calloc((size_t)pcpu_pool.nr_slots, sizeof(*pcpu_pool.slots));
	if (!pcpu_pool.chunk_table || !pcpu_pool.bound_maps || !pcpu_pool.chunk_used || !pcpu_pool.chunk_unclean ||
	    !pcpu_pool.unit_iov || !pcpu_pool.slots || !pcpu_pool.live_maps || !pcpu_pool.live_maps[0])
		goto fail;

	for (unsigned cpu = 0; cpu < pcpu_pool.nr_cpus; cpu++)
		pcpu_cpu_offset[cpu] = pcpu_pool.guard_size + pcpu_pool.layout->unit_off[cpu];
	if (setup_first_chunk(static_size))
		goto fail;
	set_marks(&cfg);
	set_reclaim(&cfg);
	if (pcpu_getenv("PCPU_VERIFY") && strcmp(pcpu_getenv("PCPU_VERIFY"), "0") != 0)
		pcpu_pool.debug |= POOL_DEBUG_VERIFY;
	return 0;
fail:
	reset_pool();
	errno = ENOMEM;
	return -1;
}

/* init_mutex held. */
static int init_locked(const struct pcpu_config *cfg)
{
	if (do_init(cfg))
		return -1;
	pool_for_each_client(c)
		if (c->ready)
			c->ready();
	memcheck_init();
	__atomic_store_n(&pcpu_pool.ready, true, __ATOMIC_RELEASE);
	return 0;
}

int pool_init(const struct pcpu_config *cfg)
{
	int ret;

	pthread_mutex_lock(&init_mutex);
	if (pcpu_pool.ready) {
		errno = EBUSY;
		ret = -1;
	} else {
		ret = init_locked(cfg);
	}
	pthread_mutex_unlock(&init_mutex);
	return ret;
}

int pool_ensure_init_slow(void)
{
	int ret = 0;

	pthread_mutex_lock(&init_mutex);
	if (!pcpu_pool.ready)
		ret = init_locked(NULL);
	pthread_mutex_unlock(&init_mutex);
	return ret;
}

/* The 0.1 layout of struct pcpu_config: every field up to reclaim_frac. */
#define CONFIG_SIZE_0_1 PCPU_ALIGN_UP(offsetof(struct pcpu_config, reclaim_frac) + \
				      sizeof(unsigned int), _Alignof(struct pcpu_config))

PCPU_PUBLIC int pcpu_init_sized(const struct pcpu_config *cfg, size_t cfg_size)
{
	struct pcpu_config c = { 0 };

	if (!cfg)
		return pool_init(NULL);
	if (cfg_size < CONFIG_SIZE_0_1)
		return bad_config("the configuration's size", "smaller than any layout",
				  cfg_size);
	memcpy(&c, cfg, cfg_size < sizeof(c) ? cfg_size : sizeof(c));
	for (size_t i = sizeof(c); i < cfg_size; i++) {
		if (((const unsigned char *)cfg)[i]) {
			pcpu_warn(PCPU_WARN_CONFIG, 0, "pcpu_init: the configuration sets a field at "
				  "byte %zu, which this version of the library does not know", i);
			errno = EINVAL;
			return -1;
		}
	}
	return pool_init(&c);
}

PCPU_PUBLIC int (pcpu_init)(const struct pcpu_config *cfg)
{
	return pcpu_init_sized(cfg, CONFIG_SIZE_0_1);
}

/* ---- fork ------------------------------------------------------------------- */

/*
 * Every lock of the library is held across fork, in the order pool.h
 * gives, so the child's copy of the state is consistent; the forking
 * thread owns them in both processes afterwards and releases them.  The
 * handlers are registered when the library is loaded, so a fork during
 * initialisation is covered too.
 */
static void pool_fork_prepare(void)
{
	pthread_mutex_lock(&init_mutex);
	pool_for_each_client(c)
		if (c->fork_outer)
			c->fork_outer();
	pcpu_lock(&pcpu_pool.pop_mutex);
	pcpu_lock(&pcpu_pool.lock);
	pool_for_each_client(c)
		if (c->fork_inner)
			c->fork_inner();
}

/* After fork, in the parent (child false) or the child: the clients'
 * hooks, then the locks released in the reverse order of taking. */
static void pool_fork_release(bool child)
{
	pool_for_each_client(c) {
		void (*hook)(void) = child ? c->fork_child : c->fork_parent;

		if (hook)
			hook();
	}
	pcpu_unlock(&pcpu_pool.lock);
	pcpu_unlock(&pcpu_pool.pop_mutex);
	pthread_mutex_unlock(&init_mutex);
}

static void pool_fork_parent(void) { pool_fork_release(false); }
static void pool_fork_child(void) { pool_fork_release(true); }

__attribute__((constructor(101))) static void pool_register_fork(void)
{
	pthread_atfork(pool_fork_prepare, pool_fork_parent, pool_fork_child);
}
