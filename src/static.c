/*
 * static.c - static per-CPU variables (PCPU_DEFINE) of the main program and
 * of shared libraries, and pcpu_is_percpu_addr().
 *
 * Every module (the program or a shared library) that defines variables has
 * their initial values, the *templates*, in its own "pcpu_tmpl" section and
 * one alignment word per variable in its "pcpu_align" section.  A load-time
 * constructor hands both ranges and the module's hidden struct pcpu_module
 * to pcpu_module_register(); the module's handles are then
 *     handle = template address + mod->bias.
 *
 * Placement follows the kernel: the main program's section becomes the
 * first chunk's static area (its size is asked for before the layout is
 * built, so it is part of every unit), a library's section is one block
 * of the reserved chunk.  A block the reserved area has no room for goes to
 * a dynamic chunk instead, through the blocking allocation path (a handle
 * is template + bias, and nothing ties it to the first chunk): neither a
 * library larger than the reserved area nor a program that filled it with
 * PCPU_RESERVED allocations leaves a library without its variables.
 * Registration before initialisation only records the module
 * (pcpu_init(&cfg) must still be able to configure); the allocator places
 * everything recorded at the end of initialisation, and later registrations
 * (dlopen) at once.  Only a module that fits no chunk at all (larger than a
 * unit, aligned above a page, or no memory left) gets a bias that makes its
 * handles point into a never-mapped range, and one line on stderr.  dlclose
 * runs the module's destructor, which gives the block back.
 *
 * A library's block starts `align` bytes before its first variable, so no
 * PCPU_VAR handle is the start of a live allocation: pcpu_free and
 * pcpu_alloc_size reject them as interior pointers and abort, like any
 * other pointer that is not a dynamic allocation, with no extra lookup on
 * the free path.  Blocks count as live allocations in the statistics
 * (pcpu_verify checks the chunks' counts against them).
 *
 * Locking: mod_mutex guards the module list and the records' states; it is
 * never held while taking another lock (pool.h gives the order fork takes
 * them in).  A record being placed is marked REC_ATTACHING; anyone else
 * wanting it, and fork, wait on mod_cond for the result, so a child never
 * inherits a record half placed by a thread it does not have.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "memcheck.h"
#include "os.h"
#include "pool_chunk.h"
#include "pool_init.h"

enum rec_state { REC_PENDING, REC_ATTACHING, REC_PLACED, REC_FAILED };
enum { MOD_NEW, MOD_REGISTERED, MOD_GONE };     /* struct pcpu_module.state */

struct module_rec {
	struct pcpu_module *mod;
	char *start;                /* first template byte */
	size_t size;                /* template bytes */
	size_t align;               /* largest alignment of its variables, >= 4 */
	bool is_main;               /* the main program's section */
	enum rec_state state;
	struct pcpu_chunk *chunk;   /* the block's chunk: reserved, or dynamic */
	int bit_off, bits;          /* block in that chunk; bits 0: none */
	void *fault_map;            /* PROT_NONE range a failed module points into */
	size_t fault_size;
	struct module_rec *next;
};

static struct pcpu_lock mod_mutex = PCPU_LOCK_INITIALIZER;
static pthread_cond_t mod_cond = PTHREAD_COND_INITIALIZER;   /* a record left REC_ATTACHING */
/* mod_mutex: */
static struct module_rec *modules, **modules_tail = &modules;
static struct module_rec *static_rec;  /* counted into the static area */
static int nr_attaching;               /* records in REC_ATTACHING */

static void place(struct pcpu_module *mod);
static struct pool_client static_client;

/* ---- registration -------------------------------------------------------- */

PCPU_PUBLIC int pcpu_module_register(struct pcpu_module *mod, char *start, char *stop,
				  const unsigned int *align_start, const unsigned int *align_stop)
{
	struct module_rec *rec;
	bool ready;

	if (!mod || !start || stop <= start) {
		errno = EINVAL;
		return -1;
	}
	if (__atomic_load_n(&mod->state, __ATOMIC_ACQUIRE) != MOD_NEW)
		return 0;
	pool_add_client(&static_client);
	rec = calloc(1, sizeof(*rec));
	if (!rec) {
		errno = ENOMEM;
		return -1;
	}
	rec->mod = mod;
	rec->start = start;
	rec->size = (size_t)(stop - start);
	rec->align = PCPU_MIN_ALLOC_BYTES;
	for (const unsigned int *a = align_start; a && a < align_stop; a++)
		if (*a > rec->align)
			rec->align = *a;
	rec->is_main = os_module_is_main(start);

	pcpu_lock(&mod_mutex);
	if (mod->state != MOD_NEW) {
		pcpu_unlock(&mod_mutex);
		free(rec);
		return 0;
	}
	*modules_tail = rec;
	modules_tail = &rec->next;
	mod->priv = rec;
	__atomic_store_n(&mod->state, MOD_REGISTERED, __ATOMIC_RELEASE);
	pcpu_unlock(&mod_mutex);

	/* Not ready: initialisation places it (or, if initialisation is just
	 * past that point, the module's first PCPU_VAR does). */
	ready = pool_ready();
	if (ready) {
		int saved = errno;

		place(mod);
		errno = saved;
	}
	return 0;
}

/* ---- placement ----------------------------------------------------------- */

/* The block for rec: one alignment unit of lead (so no handle is the start
 * of an allocation), then the templates; bytes and bits of it. */
static size_t block_bytes(const struct module_rec *rec, int *bits)
{
	size_t bytes = PCPU_ALIGN_UP(rec->align + rec->size, (size_t)PCPU_MIN_ALLOC_BYTES);

	*bits = (int)(bytes / PCPU_MIN_ALLOC_BYTES);
	return bytes;
}

/* Take a block for rec in the reserved chunk; its first variable's handle in
 * *handle.  false if it does not fit (*free_bytes: the room there was). */
static bool place_reserved(struct module_rec *rec, uintptr_t *handle, int *free_bytes)
{
	struct pcpu_chunk *rc = pcpu_pool.reserved_chunk;
	size_t bytes;
	int bits, off = -1;

	*free_bytes = 0;
	if (!rc || rec->align > pcpu_pool.page_size || rec->size > pcpu_pool.unit_size)
		return false;
	bytes = block_bytes(rec, &bits);

	pcpu_lock(&pcpu_pool.lock);
	if (pool_find_reserved(bits, (int)(rec->align / PCPU_MIN_ALLOC_BYTES), &off)) {
		pool_account_alloc(rc, bytes);
		pcpu_pool.nr_static_blocks++;
	} else {
		off = -1;
	}
	*free_bytes = rc->map->free_bytes;
	pcpu_unlock(&pcpu_pool.lock);
	if (off < 0)
		return false;
	rec->chunk = rc;
	rec->bit_off = off;
	rec->bits = bits;
	*handle = (uintptr_t)pool_chunk_handle(rc, off * PCPU_MIN_ALLOC_BYTES) + rec->align;
	return true;
}

/* The same in a dynamic chunk, created and populated if need be: the
 * fallback when the reserved area is full or too small.  false (with *why)
 * if no chunk can hold it. */
static bool place_dynamic(struct module_rec *rec, uintptr_t *handle, const char **why)
{
	struct pcpu_chunk *ch;
	size_t bytes;
	int bits, off = -1;

	if (rec->align > pcpu_pool.page_size) {
		*why = "aligned above a page";
		return false;
	}
	if (rec->align + rec->size > pcpu_pool.unit_size) {
		*why = "larger than a unit";
		return false;
	}
	bytes = block_bytes(rec, &bits);
	ch = pool_alloc_blocking(bytes, bits, (int)(rec->align / PCPU_MIN_ALLOC_BYTES),
				 (int)(rec->align / PCPU_MIN_ALLOC_BYTES), false, &off, why);
	if (!ch)
		return false;
	rec->chunk = ch;
	rec->bit_off = off;
	rec->bits = bits;
	*handle = (uintptr_t)pool_chunk_handle(ch, off * PCPU_MIN_ALLOC_BYTES) + rec->align;
	return true;
}

/*
 * A handle for a module that could not be placed: every CPU's copy of every
 * variable lands in never-mapped address space, so any use faults.  The
 * guard range serves when it spans a chunk plus the module; otherwise a
 * PROT_NONE range of its own is reserved (released on unregistration).
 */
static uintptr_t fault_handle(size_t size, void **map, size_t *map_size)
{
	size_t need = pcpu_pool.layout->chunk_span + size;
	void *m;

	*map = NULL;
	if (need > pcpu_pool.guard_size && (m = os_reserve(need, pcpu_pool.page_size))) {
		*map = m;
		*map_size = need;
		return (uintptr_t)m - pcpu_pool.guard_size;
	}
	return (uintptr_t)pcpu_pool.mapping - pcpu_pool.guard_size;
}

/* The documented load-time error: one line naming the module, the sizes
 * and why no chunk could take it. */
static void report_failure(const struct module_rec *rec, int free_bytes, const char *why)
{
	const char *name = os_module_name(rec->start);

	if (!name)
		name = rec->is_main ? "the main program" : "a shared library";
	fprintf(stderr,
		"libpercpu: %s: no room for its static per-CPU variables (%zu bytes, aligned to "
		"%zu): reserved area %zu bytes (%d free), unit %zu bytes, dynamic chunk: %s; "
		"using them will fault\n",
		name, rec->size, rec->align, pcpu_pool.layout->reserved_size, free_bytes,
		pcpu_pool.unit_size, why);
}

/*
 * The module's record once no other thread is attaching it (mod_mutex
 * held; it is dropped while waiting), or NULL if it is not registered.
 */
static struct module_rec *wait_not_attaching(struct pcpu_module *mod)
{
	struct module_rec *rec;

	for (;;) {
		rec = mod->state == MOD_REGISTERED ? mod->priv : NULL;
		if (!rec || rec->state != REC_ATTACHING)
			return rec;
		pcpu_cond_wait(&mod_cond, &mod_mutex);
	}
}

/*
 * Place mod's variables if that has not happened: the static area for the
 * main program counted in at initialisation, else a reserved block; copy
 * the templates into every unit; publish the bias.  Waits if another thread
 * is placing the same module.  The allocator is initialised.
 */
static void place(struct pcpu_module *mod)
{
	struct module_rec *rec;
	uintptr_t handle = 0;
	int free_bytes = 0;
	const char *why = "";
	bool in_static, ok;

	pcpu_lock(&mod_mutex);
	rec = wait_not_attaching(mod);
	if (!rec || rec->state != REC_PENDING) {
		pcpu_unlock(&mod_mutex);
		return;
	}
	rec->state = REC_ATTACHING;
	nr_attaching++;
	in_static = rec == static_rec && rec->size <= pcpu_pool.layout->static_size &&
		    rec->align <= pcpu_pool.page_size;
	pcpu_unlock(&mod_mutex);

	if (in_static) {
		handle = (uintptr_t)pool_chunk_handle(pcpu_pool.first_chunk, 0);
		ok = true;
	} else {
		ok = place_reserved(rec, &handle, &free_bytes) || place_dynamic(rec, &handle, &why);
	}
	if (ok) {
		for (unsigned cpu = 0; cpu < pcpu_pool.nr_cpus; cpu++)
			memcpy(pcpu_ptr((void *)handle, cpu), rec->start, rec->size);
	} else {
		report_failure(rec, free_bytes, why);
		handle = fault_handle(rec->size, &rec->fault_map, &rec->fault_size);
	}

	pcpu_lock(&mod_mutex);
	rec->state = ok ? REC_PLACED : REC_FAILED;
	__atomic_store_n(&mod->bias, handle - (uintptr_t)rec->start, __ATOMIC_RELEASE);
	nr_attaching--;
	pthread_cond_broadcast(&mod_cond);
	pcpu_unlock(&mod_mutex);
}

/* Pool client: the main program's static area, asked before the layout
 * is built. */
static size_t static_main_size(void)
{
	size_t size = 0, page = os_page_size();

	pcpu_lock(&mod_mutex);
	static_rec = NULL;
	for (struct module_rec *rec = modules; rec; rec = rec->next) {
		if (rec->is_main && rec->state == REC_PENDING && rec->align <= page) {
			static_rec = rec;
			size = PCPU_ALIGN_UP(rec->size, (size_t)PCPU_MIN_ALLOC_BYTES);
			break;
		}
	}
	pcpu_unlock(&mod_mutex);
	return size;
}

/* Pool client: the pool is ready; place every module recorded so far. */
static void static_attach(void)
{
	for (;;) {
		struct pcpu_module *mod = NULL;

		pcpu_lock(&mod_mutex);
		for (struct module_rec *rec = modules; rec && !mod; rec = rec->next)
			if (rec->state == REC_PENDING)
				mod = rec->mod;
		pcpu_unlock(&mod_mutex);
		if (!mod)
			return;
		place(mod);
	}
}

/* ---- unregistration and lookup ------------------------------------------ */

PCPU_PUBLIC void pcpu_module_unregister(struct pcpu_module *mod)
{
	struct module_rec *rec, **pp;

	if (!mod)
		return;
	pcpu_lock(&mod_mutex);
	rec = wait_not_attaching(mod);
	if (!rec) {
		pcpu_unlock(&mod_mutex);
		return;
	}
	/* The bias stays: at process exit other threads may still use the
	 * variables, and after dlclose nothing of the module is left. */
	__atomic_store_n(&mod->state, MOD_GONE, __ATOMIC_RELEASE);
	mod->priv = NULL;
	for (pp = &modules; *pp != rec; pp = &(*pp)->next)
		;
	*pp = rec->next;
	if (modules_tail == &rec->next)
		modules_tail = pp;
	if (static_rec == rec)
		static_rec = NULL;
	pcpu_unlock(&mod_mutex);

	if (rec->bits) {
		struct pcpu_list *free_list = &pcpu_pool.slots[pcpu_pool.free_slot];
		bool wake;

		pcpu_lock(&pcpu_pool.lock);
		memcheck_free(rec->chunk, rec->bit_off, rec->bits);
		pool_free_area(rec->chunk, rec->bit_off, rec->bits, POOL_NOW);
		pool_account_free();
		pcpu_pool.nr_static_blocks--;
		/* A dynamic chunk left fully free beside another: the balancer
		 * may destroy one, as after pcpu_free. */
		wake = rec->chunk->slot == pcpu_pool.free_slot && free_list->head->next;
		pcpu_unlock(&pcpu_pool.lock);
		if (wake)
			pool_kick_balance(POOL_BALANCE_FREE);
	}
	if (rec->fault_map)
		(void)os_unreserve(rec->fault_map, rec->fault_size);
	free(rec);
}

/*
 * The slow path of PCPU_VAR: register the module if its constructor has not
 * run yet, initialise the allocator with defaults if nothing has, place the
 * module.  Returns the bias; if the allocator cannot be initialised, one
 * that makes handles point just above address 0 (every use faults), not
 * stored, so a later call tries again.
 */
PCPU_PUBLIC uintptr_t pcpu_module_resolve(struct pcpu_module *mod, char *start, char *stop,
				       const unsigned int *align_start,
				       const unsigned int *align_stop)
{
	uintptr_t bias;

	if (__atomic_load_n(&mod->state, __ATOMIC_ACQUIRE) == MOD_NEW)
		(void)pcpu_module_register(mod, start, stop, align_start, align_stop);
	if (pool_ensure_init())
		return (uintptr_t)0 - (uintptr_t)start;
	place(mod);
	bias = __atomic_load_n(&mod->bias, __ATOMIC_ACQUIRE);
	if (!bias) {
		/* Registration failed (no memory for the record): fault on use,
		 * through a range as large as the module needs.  The range is
		 * not stored, so it outlives the module; it holds no memory. */
		void *map;
		size_t map_size;

		bias = fault_handle((size_t)(stop - start), &map, &map_size) - (uintptr_t)start;
	}
	return bias;
}

/* Is byte offset off (from a chunk's base) inside the unit of some CPU? */
static bool in_cpu_unit(size_t off)
{
	const struct layout *l = pcpu_pool.layout;

	for (int g = 0; g < l->nr_groups; g++) {
		const struct layout_group *grp = &l->groups[g];

		if (off >= grp->base_offset &&
		    off - grp->base_offset < (size_t)grp->nr_units * l->unit_size)
			return grp->cpu_map[(off - grp->base_offset) / l->unit_size] != LAYOUT_NO_CPU;
	}
	return false;
}

PCPU_PUBLIC int pcpu_is_percpu_addr(const void *addr)
{
	uintptr_t a = (uintptr_t)addr, rel;
	int ret = 0;

	if (!__atomic_load_n(&pcpu_pool.ready, __ATOMIC_ACQUIRE))
		return 0;
	if (a < (uintptr_t)pcpu_pool.region || a - (uintptr_t)pcpu_pool.region >= pcpu_pool.region_size)
		return 0;
	rel = a - (uintptr_t)pcpu_pool.region;
	pcpu_lock(&pcpu_pool.lock);
	if (pcpu_pool.chunk_table[rel >> pcpu_pool.stride_shift])
		ret = in_cpu_unit(rel & (((uintptr_t)1 << pcpu_pool.stride_shift) - 1));
	pcpu_unlock(&pcpu_pool.lock);
	return ret;
}

/* ---- fork ---------------------------------------------------------------- */

/* Before the pool's locks: hold mod_mutex once no record is being placed
 * (a placing thread may still need the pool's lock to finish). */
static void static_fork_outer(void)
{
	pcpu_lock(&mod_mutex);
	while (nr_attaching)
		pcpu_cond_wait(&mod_cond, &mod_mutex);
}

static void static_fork_parent(void)
{
	pcpu_unlock(&mod_mutex);
}

static void static_fork_child(void)
{
	pthread_cond_init(&mod_cond, NULL);
	pcpu_unlock(&mod_mutex);
}

static struct pool_client static_client = {
	.static_size = static_main_size,
	.ready = static_attach,
	.fork_outer = static_fork_outer,
	.fork_parent = static_fork_parent,
	.fork_child = static_fork_child,
};

__attribute__((constructor(101))) static void static_register(void)
{
	pool_add_client(&static_client);
}
