/*
 * debug.c - debugging a program that uses the allocator: environment
 * switches read once at initialisation, and memory-checker annotations.
 *
 *   PCPU_STATS=1        print pcpu_stats_print()'s report to stderr at exit;
 *   PCPU_STATS=path     append it to that file ("%p" in the path becomes the
 *                       process id), also at exit;
 *   PCPU_VERIFY=1       run pcpu_verify() after every allocation, free and
 *                       balance pass; on a broken invariant print the report
 *                       and abort.
 *
 * Memory checkers.  Per-CPU memory comes from mmap, not malloc, so neither
 * AddressSanitizer nor Valgrind knows which parts of a unit are allocated.
 * The allocator tells them: in every CPU's unit, free areas on populated
 * pages are made inaccessible ("poisoned") and an area becomes accessible
 * when it is allocated, so a write through a stale per_cpu_ptr() after
 * pcpu_free() is reported where it happens.
 *   - AddressSanitizer builds (compile time: __SANITIZE_ADDRESS__ or
 *     __has_feature(address_sanitizer)) always do this.  ASan tracks 8-byte
 *     granules, with only a prefix of a granule addressable, so a free 4-byte
 *     area sharing a granule with a live neighbour may stay accessible: the
 *     check never reports a live allocation, and may miss a few bytes.
 *   - Valgrind's memcheck (when <valgrind/memcheck.h> was found at build
 *     time and the program runs under memcheck; other Valgrind tools such
 *     as callgrind are left alone) gets the same byte-exact annotations.  The
 *     allocator's metadata is ordinary malloc'd memory reachable from a
 *     global, so it is never reported as leaked; per-CPU allocations are not
 *     malloc blocks, so live ones are never reported as leaks either.
 *   - The reserved area is left alone: static per-CPU variables of shared
 *     libraries are placed there without going through pcpu_alloc.
 *
 * The allocator's hot paths reach this file only through the inline hooks
 * of internal.h, which test the cached `pcpu_debug` word (one predictable
 * branch) unless the build is an ASan build.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitops.h"
#include "internal.h"
#include "probes.h"

#if PCPU_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if defined(PCPU_HAVE_VALGRIND) && PCPU_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND 1
#else
#define HAVE_VALGRIND 0
#endif

unsigned pcpu_debug;

/* PCPU_STATS: on or off, and the path template (NULL: stderr). */
static char *stats_path;
static bool stats_on;

/* ---- memory checkers --------------------------------------------------- */

/*
 * Make [bit_off, bit_off + bits) of ch usable or not, in every CPU's unit.
 * Making it unusable also takes in a free 4-byte neighbour that shares an
 * 8-byte ASan granule with either end, so a granule is poisoned as soon as
 * all of it is free (ASan cannot poison the first half of a granule whose
 * second half is in use).  `lock` held, or the range otherwise private.
 */
void pcpu_memcheck_range(const struct pcpu_chunk *ch, int bit_off, int bits, bool usable)
{
	const unsigned long *map = ch->map->alloc_map;
	size_t len;

	if (ch == pcpu.reserved_chunk || bits <= 0)
		return;
	if (!usable && (bit_off & 1) && !bit_test(map, (size_t)bit_off - 1)) {
		bit_off--;
		bits++;
	}
	if (!usable && ((bit_off + bits) & 1) && bit_off + bits < ch->map->nr_bits &&
	    !bit_test(map, (size_t)(bit_off + bits)))
		bits++;
	len = (size_t)bits * PCPU_MIN_ALLOC_BYTES;
	for (unsigned cpu = 0; cpu < pcpu.nr_cpus; cpu++) {
		char *p = ch->base + pcpu.layout->unit_off[cpu] + (size_t)bit_off * PCPU_MIN_ALLOC_BYTES;

		(void)p;
#if PCPU_ASAN
		if (usable)
			ASAN_UNPOISON_MEMORY_REGION(p, len);
		else
			ASAN_POISON_MEMORY_REGION(p, len);
#endif
#if HAVE_VALGRIND
		if (pcpu_debug & PCPU_DEBUG_VALGRIND) {
			if (usable)
				VALGRIND_MAKE_MEM_UNDEFINED(p, len);
			else
				VALGRIND_MAKE_MEM_NOACCESS(p, len);
		}
#endif
	}
	(void)len;
	(void)usable;
}

/* Pages [page_start, page_end) of ch were populated: poison their free
 * parts.  `lock` held, so the allocation map is stable. */
void pcpu_memcheck_populated(const struct pcpu_chunk *ch, int page_start, int page_end)
{
	const struct chunk *c = ch->map;
	size_t end = (size_t)page_end << c->block_shift, s, e;

	for (s = (size_t)page_start << c->block_shift;
	     bitmap_next_clear_run(c->alloc_map, end, &s, &e); s = e)
		pcpu_memcheck_range(ch, (int)s, (int)(e - s), false);
}

/* Pages [page_start, page_end) of ch are about to be depopulated: forget
 * their annotations, so populating them again starts clean (the memory
 * faults until then anyway).  Nothing can be allocated on them meanwhile. */
void pcpu_memcheck_depopulated(const struct pcpu_chunk *ch, int page_start, int page_end)
{
	size_t len = (size_t)(page_end - page_start) << pcpu.page_shift;

	if (ch == pcpu.reserved_chunk)
		return;
	for (unsigned cpu = 0; cpu < pcpu.nr_cpus; cpu++) {
		char *p = ch->base + pcpu.layout->unit_off[cpu] + ((size_t)page_start << pcpu.page_shift);

		(void)p;
#if PCPU_ASAN
		ASAN_UNPOISON_MEMORY_REGION(p, len);
#endif
#if HAVE_VALGRIND
		if (pcpu_debug & PCPU_DEBUG_VALGRIND)
			VALGRIND_MAKE_MEM_DEFINED(p, len);
#endif
	}
	(void)len;
}

/* ---- hooks' slow paths ------------------------------------------------- */

static void __attribute__((noreturn)) verify_failed(int op, const void *ptr)
{
	static const char *const names[] = { "pcpu_alloc", "pcpu_free", "a balance pass" };
	char what[64];

	if (ptr)
		snprintf(what, sizeof(what), "%s() = %p", names[op], ptr);
	else
		snprintf(what, sizeof(what), op == PCPU_OP_BALANCE ? "%s" : "%s()", names[op]);
	fprintf(stderr, "libpercpu: PCPU_VERIFY: invariant broken after %s; report follows\n", what);
	pcpu_stats_print(stderr);
	fflush(stderr);
	abort();
}

void pcpu_debug_verify_op(int op, const void *ptr)
{
	int saved = errno;

	if (pcpu_verify())
		verify_failed(op, ptr);
	errno = saved;
}

void pcpu_debug_alloc_slow(const struct pcpu_chunk *ch, int bit_off, size_t size)
{
	if (HAVE_VALGRIND && (pcpu_debug & PCPU_DEBUG_VALGRIND))
		pcpu_memcheck_range(ch, bit_off, (int)(size / PCPU_MIN_ALLOC_BYTES), true);
	if (pcpu_debug & PCPU_DEBUG_VERIFY)
		pcpu_debug_verify_op(PCPU_OP_ALLOC, pcpu_chunk_handle(ch, bit_off * PCPU_MIN_ALLOC_BYTES));
}

int pcpu_fail_reason(unsigned flags, const char *msg)
{
	if (flags & PCPU_RESERVED)
		return PCPU_FAIL_RESERVED;
	if (flags & PCPU_ATOMIC)
		return PCPU_FAIL_ATOMIC;
	return msg && strstr(msg, "populate") ? PCPU_FAIL_POPULATE : PCPU_FAIL_NOSPACE;
}

/* ---- PCPU_STATS at exit ------------------------------------------------ */

/* Expand "%p" to the process id; other characters are copied. */
static void expand_path(const char *tmpl, char *buf, size_t len)
{
	size_t n = 0;

	for (const char *t = tmpl; *t && n + 1 < len; t++) {
		if (t[0] == '%' && t[1] == 'p') {
			int w = snprintf(buf + n, len - n, "%ld", (long)getpid());

			n += w > 0 ? (size_t)w : 0;
			if (n >= len)
				n = len - 1;
			t++;
			continue;
		}
		buf[n++] = *t;
	}
	buf[n] = '\0';
}

static void stats_at_exit(void)
{
	char path[4096];
	FILE *out = stderr;

	if (!stats_on)
		return;
	if (stats_path) {
		expand_path(stats_path, path, sizeof(path));
		out = fopen(path, "a");
		if (!out) {
			fprintf(stderr, "libpercpu: PCPU_STATS: cannot open %s: %s\n", path,
				strerror(errno));
			return;
		}
	}
	fprintf(out, "libpercpu: statistics of process %ld at exit\n", (long)getpid());
	pcpu_stats_print(out);
	if (out != stderr)
		fclose(out);
	else
		fflush(out);
}

/* An environment switch: unset, empty and "0" mean off. */
static const char *env_on(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0 ? v : NULL;
}

/*
 * End of a successful initialisation (init mutex held, allocator not yet
 * published): read the switches, register the exit report, and give the
 * memory checker the first chunk's state.
 */
void pcpu_debug_init(void)
{
	static bool registered;
	const char *v;
	unsigned flags = 0;

	if (env_on("PCPU_VERIFY"))
		flags |= PCPU_DEBUG_VERIFY;
#if HAVE_VALGRIND
	/* Only memcheck answers GET_VBITS (1); under callgrind, helgrind and
	 * the others the annotations would be wasted work. */
	unsigned char probe = 0, vbits;

	if (RUNNING_ON_VALGRIND && VALGRIND_GET_VBITS(&probe, &vbits, 1) == 1)
		flags |= PCPU_DEBUG_VALGRIND;
#endif
	if ((v = env_on("PCPU_STATS"))) {
		free(stats_path);
		stats_path = strcmp(v, "1") == 0 ? NULL : strdup(v);
		stats_on = true;
		if (!registered && atexit(stats_at_exit) == 0)
			registered = true;
	}
	__atomic_store_n(&pcpu_debug, flags, __ATOMIC_RELAXED);

	/* ASan builds poisoned the first chunk as it was populated; Valgrind
	 * learns about it now. */
	if (!PCPU_ASAN && (flags & PCPU_DEBUG_VALGRIND) && pcpu.first_chunk) {
		pthread_mutex_lock(&pcpu.lock);
		pcpu_memcheck_populated(pcpu.first_chunk, 0, pcpu.first_chunk->map->nr_pages);
		pthread_mutex_unlock(&pcpu.lock);
	}
}
