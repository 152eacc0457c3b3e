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
 * of the reserved chunk.  Registration before initialisation only records
 * the module (pcpu_init(&cfg) must still be able to configure); the
 * allocator places everything recorded at the end of initialisation, and
 * later registrations (dlopen) at once.  A module whose block does not fit
 * gets a bias that makes its handles point into a never-mapped range, and
 * one line on stderr.  dlclose runs the module's destructor, which gives the
 * block back.
 *
 * A library's block starts `align` bytes before its first variable, so no
 * PCPU_VAR handle is the start of a live allocation: pcpu_free and
 * pcpu_alloc_size reject them as interior pointers and abort, like any
 * other pointer that is not a dynamic allocation, with no extra lookup on
 * the free path.  Blocks count as live allocations in the statistics
 * (pcpu_verify checks the chunks' counts against them).
 *
 * Locking: mod_mutex guards the module list and the records' states; it is
 * a leaf (never held while taking another lock), so the fork handler that
 * holds it cannot deadlock against the allocator's.  A record being placed
 * is marked REC_ATTACHING; anyone else wanting it waits for the result.
 */
#define _GNU_SOURCE   /* dladdr, dl_iterate_phdr */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "os.h"
#include "static.h"

enum rec_state { REC_PENDING, REC_ATTACHING, REC_PLACED, REC_FAILED };
enum { MOD_NEW, MOD_REGISTERED, MOD_GONE };     /* struct pcpu_module.state */

struct module_rec {
	struct pcpu_module *mod;
	char *start;                /* first template byte */
	size_t size;                /* template bytes */
	size_t align;               /* largest alignment of its variables, >= 4 */
	bool is_main;               /* the main program's section */
	enum rec_state state;
	int bit_off, bits;          /* block in the reserved chunk; bits 0: none */
	void *fault_map;            /* PROT_NONE range a failed module points into */
	size_t fault_size;
	struct module_rec *next;
};

static pthread_mutex_t mod_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct module_rec *modules, **modules_tail = &modules;
static struct module_rec *static_rec;  /* counted into the static area */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void place(struct pcpu_module *mod);

/* ---- fork ---------------------------------------------------------------- */

static void lock_modules(void)
{
	pthread_mutex_lock(&mod_mutex);
}

static void unlock_modules(void)
{
	pthread_mutex_unlock(&mod_mutex);
}

static void setup_atfork(void)
{
	pthread_atfork(lock_modules, unlock_modules, unlock_modules);
}

/* ---- registration -------------------------------------------------------- */

/* dl_iterate_phdr callback: is *data inside the first object (the main
 * program; glibc always reports it first)?  Stores 1 or 0 in *data. */
static int first_object_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	uintptr_t addr = *(uintptr_t *)data;

	(void)size;
	*(uintptr_t *)data = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && addr - (info->dlpi_addr + ph->p_vaddr) < ph->p_memsz) {
			*(uintptr_t *)data = 1;
			break;
		}
	}
	return 1;
}

PCPU_API int pcpu_module_register(struct pcpu_module *mod, char *start, char *stop,
				  const unsigned int *align_start, const unsigned int *align_stop)
{
	struct module_rec *rec;
	uintptr_t addr;
	bool ready;

	if (!mod || !start || stop <= start) {
		errno = EINVAL;
		return -1;
	}
	if (__atomic_load_n(&mod->state, __ATOMIC_ACQUIRE) != MOD_NEW)
		return 0;
	pthread_once(&atfork_once, setup_atfork);
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
	addr = (uintptr_t)start;
	dl_iterate_phdr(first_object_cb, &addr);
	rec->is_main = addr == 1;

	pthread_mutex_lock(&mod_mutex);
	if (mod->state != MOD_NEW) {
		pthread_mutex_unlock(&mod_mutex);
		free(rec);
		return 0;
	}
	*modules_tail = rec;
	modules_tail = &rec->next;
	mod->priv = rec;
	__atomic_store_n(&mod->state, MOD_REGISTERED, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&mod_mutex);

	/* Not ready: initialisation places it (or, if initialisation is just
	 * past that point, the module's first PCPU_VAR does). */
	ready = __atomic_load_n(&pcpu.ready, __ATOMIC_ACQUIRE);
	if (ready) {
		int saved = errno;

		place(mod);
		errno = saved;
	}
	return 0;
}

/* ---- placement ----------------------------------------------------------- */

/* Take a block for rec in the reserved chunk; its first variable's handle in
 * *handle.  false if it does not fit (*free_bytes: the room there was). */
static bool place_reserved(struct module_rec *rec, uintptr_t *handle, int *free_bytes)
{
	struct pcpu_chunk *rc = pcpu.reserved_chunk;
	struct pcpu_stats *st = &pcpu.stats;
	size_t lead = rec->align, bytes;
	int bits, start, off = -1;

	*free_bytes = 0;
	if (!rc || rec->align > pcpu.page_size || rec->size > pcpu.unit_size)
		return false;
	bytes = (lead + rec->size + PCPU_MIN_ALLOC_BYTES - 1) & ~(size_t)(PCPU_MIN_ALLOC_BYTES - 1);
	bits = (int)(bytes / PCPU_MIN_ALLOC_BYTES);

	pthread_mutex_lock(&pcpu.lock);
	start = chunk_find_fit(rc->map, bits, (int)(rec->align / PCPU_MIN_ALLOC_BYTES), false);
	if (start >= 0)
		off = chunk_alloc_area(rc->map, bits, (int)(rec->align / PCPU_MIN_ALLOC_BYTES), start);
	if (off >= 0) {
		st->nr_alloc++;
		if (++st->nr_cur_alloc > st->nr_max_alloc)
			st->nr_max_alloc = st->nr_cur_alloc;
		if (!st->min_alloc_size || bytes < st->min_alloc_size)
			st->min_alloc_size = bytes;
		if (bytes > st->max_alloc_size)
			st->max_alloc_size = bytes;
		pcpu_hook_alloc_locked(rc, off, bytes);
	}
	*free_bytes = rc->map->free_bytes;
	pthread_mutex_unlock(&pcpu.lock);
	if (off < 0)
		return false;
	rec->bit_off = off;
	rec->bits = bits;
	*handle = (uintptr_t)pcpu_chunk_handle(rc, off * PCPU_MIN_ALLOC_BYTES) + lead;
	return true;
}

/*
 * A handle for a module that could not be placed: every CPU's copy of every
 * variable lands in never-mapped address space, so any use faults.  The
 * guard range serves when it spans a chunk plus the module; otherwise a
 * PROT_NONE range of its own is reserved (released on unregistration).
 */
static uintptr_t fault_handle(struct module_rec *rec)
{
	size_t need = pcpu.layout->chunk_span + rec->size;
	void *m;

	if (need > pcpu.guard_size && (m = os_reserve(need, pcpu.page_size))) {
		rec->fault_map = m;
		rec->fault_size = need;
		return (uintptr_t)m - pcpu.guard_size;
	}
	return (uintptr_t)pcpu.mapping - pcpu.guard_size;
}

/* The documented load-time error: one line naming the module and sizes. */
static void report_failure(const struct module_rec *rec, int free_bytes)
{
	Dl_info info;
	const char *name = NULL;

	if (dladdr(rec->start, &info) && info.dli_fname && *info.dli_fname)
		name = info.dli_fname;
	if (!name)
		name = rec->is_main ? "the main program" : "a shared library";
	fprintf(stderr,
		"libpercpu: %s: no room for its static per-CPU variables (%zu bytes, aligned to "
		"%zu) in the reserved area (%zu bytes, %d free); raise pcpu_config.reserved_size; "
		"using them will fault\n",
		name, rec->size, rec->align, pcpu.layout->reserved_size, free_bytes);
}

/*
 * Place mod's variables if that has not happened: the static area for the
 * main program counted in at initialisation, else a reserved block; copy
 * the templates into every unit; publish the bias.  Waits if another thread
 * is placing the same module.  The allocator is initialised.
 */
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
		pthread_mutex_unlock(&mod_mutex);
		sched_yield();
		pthread_mutex_lock(&mod_mutex);
	}
}

static void place(struct pcpu_module *mod)
{
	struct module_rec *rec;
	uintptr_t handle = 0;
	int free_bytes = 0;
	bool in_static, ok;

	pthread_mutex_lock(&mod_mutex);
	rec = wait_not_attaching(mod);
	if (!rec || rec->state != REC_PENDING) {
		pthread_mutex_unlock(&mod_mutex);
		return;
	}
	rec->state = REC_ATTACHING;
	in_static = rec == static_rec && rec->size <= pcpu.layout->static_size &&
		    rec->align <= pcpu.page_size;
	pthread_mutex_unlock(&mod_mutex);

	if (in_static) {
		handle = (uintptr_t)pcpu_chunk_handle(pcpu.first_chunk, 0);
		ok = true;
	} else {
		ok = place_reserved(rec, &handle, &free_bytes);
	}
	if (ok) {
		for (unsigned cpu = 0; cpu < pcpu.nr_cpus; cpu++)
			memcpy(pcpu_ptr((void *)handle, cpu), rec->start, rec->size);
	} else {
		report_failure(rec, free_bytes);
		handle = fault_handle(rec);
	}

	pthread_mutex_lock(&mod_mutex);
	rec->state = ok ? REC_PLACED : REC_FAILED;
	__atomic_store_n(&mod->bias, handle - (uintptr_t)rec->start, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&mod_mutex);
}

size_t pcpu_static_main_size(void)
{
	size_t size = 0, page = os_page_size();

	pthread_mutex_lock(&mod_mutex);
	static_rec = NULL;
	for (struct module_rec *rec = modules; rec; rec = rec->next) {
		if (rec->is_main && rec->state == REC_PENDING && rec->align <= page) {
			static_rec = rec;
			size = (rec->size + PCPU_MIN_ALLOC_BYTES - 1) &
			       ~(size_t)(PCPU_MIN_ALLOC_BYTES - 1);
			break;
		}
	}
	pthread_mutex_unlock(&mod_mutex);
	return size;
}

void pcpu_static_attach(void)
{
	for (;;) {
		struct pcpu_module *mod = NULL;

		pthread_mutex_lock(&mod_mutex);
		for (struct module_rec *rec = modules; rec && !mod; rec = rec->next)
			if (rec->state == REC_PENDING)
				mod = rec->mod;
		pthread_mutex_unlock(&mod_mutex);
		if (!mod)
			return;
		place(mod);
	}
}

/* ---- unregistration and lookup ------------------------------------------ */

PCPU_API void pcpu_module_unregister(struct pcpu_module *mod)
{
	struct module_rec *rec, **pp;

	if (!mod)
		return;
	pthread_mutex_lock(&mod_mutex);
	rec = wait_not_attaching(mod);
	if (!rec) {
		pthread_mutex_unlock(&mod_mutex);
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
	pthread_mutex_unlock(&mod_mutex);

	if (rec->bits) {
		pthread_mutex_lock(&pcpu.lock);
		pcpu_hook_free_locked(pcpu.reserved_chunk, rec->bit_off, rec->bits);
		chunk_free_area(pcpu.reserved_chunk->map, rec->bit_off, rec->bits);
		pcpu.stats.nr_dealloc++;
		pcpu.stats.nr_cur_alloc--;
		pthread_mutex_unlock(&pcpu.lock);
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
PCPU_API uintptr_t pcpu_module_resolve(struct pcpu_module *mod, char *start, char *stop,
				       const unsigned int *align_start,
				       const unsigned int *align_stop)
{
	uintptr_t bias;

	if (__atomic_load_n(&mod->state, __ATOMIC_ACQUIRE) == MOD_NEW)
		(void)pcpu_module_register(mod, start, stop, align_start, align_stop);
	if (pcpu_ensure_init())
		return (uintptr_t)0 - (uintptr_t)start;
	place(mod);
	bias = __atomic_load_n(&mod->bias, __ATOMIC_ACQUIRE);
	if (!bias)   /* registration failed (no memory) */
		bias = (uintptr_t)pcpu.mapping - pcpu.guard_size - (uintptr_t)start;
	return bias;
}

/* Is byte offset off (from a chunk's base) inside the unit of some CPU? */
static bool in_cpu_unit(size_t off)
{
	const struct layout *l = pcpu.layout;

	for (int g = 0; g < l->nr_groups; g++) {
		const struct layout_group *grp = &l->groups[g];

		if (off >= grp->base_offset &&
		    off - grp->base_offset < (size_t)grp->nr_units * l->unit_size)
			return grp->cpu_map[(off - grp->base_offset) / l->unit_size] != LAYOUT_NO_CPU;
	}
	return false;
}

PCPU_API int pcpu_is_percpu_addr(const void *addr)
{
	uintptr_t a = (uintptr_t)addr, rel;
	int ret = 0;

	if (!__atomic_load_n(&pcpu.ready, __ATOMIC_ACQUIRE))
		return 0;
	if (a < (uintptr_t)pcpu.region || a - (uintptr_t)pcpu.region >= pcpu.region_size)
		return 0;
	rel = a - (uintptr_t)pcpu.region;
	pthread_mutex_lock(&pcpu.lock);
	if (pcpu.chunk_table[rel >> pcpu.stride_shift])
		ret = in_cpu_unit(rel & (((uintptr_t)1 << pcpu.stride_shift) - 1));
	pthread_mutex_unlock(&pcpu.lock);
	return ret;
}
