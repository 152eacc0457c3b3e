/*
 * fuzz_alloc.c - libFuzzer target for the process-wide allocator.
 *
 * The input is a program of operations on the public API (plus the fault
 * injection hooks of src/os.h): allocate (size, alignment, flags including
 * PCPU_ATOMIC, PCPU_RESERVED, PCPU_NOWARN and unknown bits), free, rewrite
 * and check per-CPU patterns, bursts of small allocations, balance passes,
 * population faults, stats reports.  The oracle, after every operation:
 *
 *   - pcpu_verify() == 0 and nr_cur_alloc equals the objects held here;
 *   - every live object's pattern is intact in every unit (every word of
 *     objects up to 64 bytes; of larger ones the first and last word and
 *     one every 1 KiB, so every page they touch; an object being freed or
 *     rewritten, the "check" operation and the end of each input read
 *     every word);
 *   - an allocation is NULL + EINVAL exactly when the request is invalid
 *     (docs/contract.md, section 3); otherwise it is a zeroed, aligned
 *     area of the rounded size overlapping no live object, or NULL +
 *     ENOMEM.  A plain allocation may fail only when every chunk slot of
 *     the (deliberately small) address space is in use or a fault was
 *     injected during it.
 *
 * The allocator is process-global: LLVMFuzzerInitialize configures it once
 * (2 CPU slots, 64 KiB units, 16 chunks of address space, no balancer
 * thread, so a run is deterministic; see nr_cpus below for other shapes),
 * and every input frees what it allocated and ends with two balance passes,
 * after which at most one dynamic chunk may remain and the pool of empty
 * populated pages is at the high mark.  A failure prints what broke and
 * aborts.
 *
 * Built by fuzz/CMakeLists.txt with clang -fsanitize=fuzzer,address,undefined,
 * or with fuzz/replay.c (any compiler) to replay a corpus and random inputs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "pool_init.h"
#include "pool_verify.h"
#include "os.h"
#include "os_fault.h"
#include "percpu.h"

/* The configuration: 2 CPU slots, 64 KiB units, 16 chunk strides of
 * address space; PCPU_FUZZ_CPUS, PCPU_FUZZ_UNIT_KB and PCPU_FUZZ_CHUNKS
 * change it (for longer runs on other shapes). */
static unsigned nr_cpus = 2;
static size_t unit_kb = 64;
static int nr_chunk_slots = 16;
#define MAX_LIVE 1024
#define SMALL_CHECK 64             /* objects up to this size are checked in full */
#define SAMPLE_STRIDE 1024         /* larger ones: one word every this many bytes */

struct obj {
	unsigned char *h;
	size_t size;                   /* rounded to 4 */
	uint32_t tag;
	uintptr_t lo, hi;              /* unit 0 copy: [lo, hi) */
};

static struct obj live[MAX_LIVE];
static int nlive;
static uint32_t next_tag;
static size_t unit_size, page_size;
static uint64_t base_cur_alloc;    /* live allocations not made by the inputs */
static FILE *devnull;

/* Totals, printed at exit. */
static unsigned long long n_inputs, n_ops, n_allocs, n_alloc_fail, n_einval, n_frees;

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("fuzz_alloc: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pcpu_stats_print(stderr);
	abort();
}

/* ---- patterns ------------------------------------------------------------ */

NO_COVERAGE static uint32_t pat(uint32_t tag, unsigned cpu, size_t word)
{
	uint32_t x = tag * 0x9e3779b1u ^ (cpu + 1) * 0x85ebca77u ^ (uint32_t)word * 0xc2b2ae3du;

	return x ^ x >> 15;
}

NO_COVERAGE static void write_pattern(struct obj *o)
{
	for (unsigned cpu = 0; cpu < nr_cpus; cpu++) {
		uint32_t *w = pcpu_ptr(o->h, cpu);

		for (size_t i = 0; i < o->size / 4; i++)
			w[i] = pat(o->tag, cpu, i);
	}
}

NO_COVERAGE static void check_word(const struct obj *o, unsigned cpu, size_t i)
{
	const uint32_t *w = pcpu_ptr(o->h, cpu);

	if (w[i] != pat(o->tag, cpu, i))
		fail("object %p (%zu B, tag %u): cpu %u word %zu is %#x, want %#x", (void *)o->h,
		     o->size, o->tag, cpu, i, w[i], pat(o->tag, cpu, i));
}

/* Every word, or (full == false, large objects) one word every
 * SAMPLE_STRIDE bytes and the last: at least one in every page. */
NO_COVERAGE static void check_obj(const struct obj *o, bool full)
{
	size_t words = o->size / 4;
	size_t step = full || o->size <= SMALL_CHECK ? 1 : SAMPLE_STRIDE / 4;

	for (unsigned cpu = 0; cpu < nr_cpus; cpu++) {
		for (size_t i = 0; i < words; i += step)
			check_word(o, cpu, i);
		check_word(o, cpu, words - 1);
	}
}

/* A new object: aligned and zeroed in every unit, overlapping no live one. */
NO_COVERAGE static void check_new(const struct obj *o, size_t align)
{
	for (unsigned cpu = 0; cpu < nr_cpus; cpu++) {
		const uint32_t *p = pcpu_ptr(o->h, cpu);

		if ((uintptr_t)p % align)
			fail("%p: cpu %u copy %p not aligned to %zu", (void *)o->h, cpu, (void *)p, align);
		for (size_t i = 0; i < o->size / 4; i++)
			if (p[i])
				fail("%p (%zu B): cpu %u word %zu not zero", (void *)o->h, o->size, cpu, i);
	}
	for (int i = 0; i < nlive; i++)
		if (o->lo < live[i].hi && live[i].lo < o->hi)
			fail("%p (%zu B) overlaps live %p (%zu B)", (void *)o->h, o->size,
			     (void *)live[i].h, live[i].size);
}

static uint64_t cur_alloc(void)
{
	struct pcpu_stats st;

	if (pcpu_stats_get(&st))
		fail("pcpu_stats_get failed");
	return st.nr_cur_alloc;
}

/* The invariant checked after every operation. */
static void check_state(const char *after, bool full)
{
	if (pcpu_verify() != 0)
		fail("pcpu_verify failed after %s", after);
	for (int i = 0; i < nlive; i++)
		check_obj(&live[i], full);
	if (cur_alloc() != base_cur_alloc + (uint64_t)nlive)
		fail("after %s: nr_cur_alloc %llu, holding %d", after,
		     (unsigned long long)cur_alloc(), nlive);
}

/* ---- operations ---------------------------------------------------------- */

#define KNOWN_FLAGS (PCPU_ATOMIC | PCPU_RESERVED | PCPU_NOWARN)

static size_t pick_size(unsigned v)
{
	const size_t special[] = { 0, unit_size, unit_size + 1, unit_size - 4, page_size,
				   page_size + 4, 2 * page_size, unit_size / 2, SIZE_MAX, 4 };
	unsigned x = v & 0x3fff;

	switch (v >> 14) {
	case 0: return 1 + (x & 63);
	case 1: return 1 + (x & 1023);
	case 2: return 1 + ((size_t)x * 4) % unit_size;
	default: return special[x % (sizeof(special) / sizeof(special[0]))];
	}
}

static size_t pick_align(unsigned v)
{
	v %= 20;
	if (v <= 12)
		return (size_t)1 << v;        /* 1 .. 4096 */
	switch (v) {
	case 13: return 0;
	case 14: return 12;                  /* not a power of two */
	case 15: return 2 * page_size;       /* above the page size */
	case 16: return (size_t)1 << 40;
	case 17: return 2;
	case 18: return 8;
	default: return 64;
	}
}

static unsigned pick_flags(unsigned v)
{
	unsigned flags = (v & 0xc0) == 0xc0 ? 0 : PCPU_NOWARN;

	if (v & 1)
		flags |= PCPU_ATOMIC;
	if ((v & 6) == 6)
		flags |= PCPU_RESERVED;
	if ((v & 0x38) == 0x38)
		flags |= v & 0x40 ? 0x100 : 0x8;    /* an unknown bit */
	return flags;
}

static bool request_valid(size_t size, size_t align, unsigned flags)
{
	if (align < 4)
		align = 4;
	return size && size <= unit_size && !(align & (align - 1)) && align <= page_size &&
	       !(flags & ~KNOWN_FLAGS);
}

static void do_alloc(size_t size, size_t align, unsigned flags)
{
	bool valid = request_valid(size, align, flags);
	unsigned long faults0 = os_fault_count();
	size_t rsize = (size + 3) & ~(size_t)3, ralign = align < 4 ? 4 : align;
	int e;

	errno = 0;
	unsigned char *h = pcpu_alloc_flags(size, align, flags);

	e = errno;
	if (!valid) {
		if (h || e != EINVAL)
			fail("invalid request (size %zu align %zu flags %#x): %p errno %d", size, align,
			     flags, (void *)h, e);
		n_einval++;
		return;
	}
	if (!h) {
		if (e != ENOMEM)
			fail("alloc(%zu, %zu, %#x) failed with errno %d", size, align, flags, e);
		n_alloc_fail++;
		/* A plain allocation fails only at the address-space limit or
		 * because of an injected fault. */
		if (!(flags & (PCPU_ATOMIC | PCPU_RESERVED)) && os_fault_count() == faults0 &&
		    pcpu_pool.stats.nr_chunks + 1 < (uint32_t)pcpu_pool.max_chunks)
			fail("alloc(%zu, %zu, %#x): ENOMEM with %u of %d chunks and no fault", size, align,
			     flags, pcpu_pool.stats.nr_chunks + 1, pcpu_pool.max_chunks);
		return;
	}
	n_allocs++;
	if (nlive == MAX_LIVE)
		fail("more than %d live objects", MAX_LIVE);

	struct obj *o = &live[nlive];
	int off;

	*o = (struct obj){ h, rsize, ++next_tag, (uintptr_t)pcpu_ptr(h, 0),
			   (uintptr_t)pcpu_ptr(h, 0) + rsize };
	if (pcpu_alloc_size(h) != rsize)
		fail("alloc_size(%p) = %zu, want %zu", (void *)h, pcpu_alloc_size(h), rsize);
	struct pcpu_chunk *ch = pool_handle_chunk(h, &off);
	if (!ch || ((flags & PCPU_RESERVED) != 0) != (ch == pcpu_pool.reserved_chunk))
		fail("%p: chunk %p, reserved flag %#x", (void *)h, (void *)ch, flags & PCPU_RESERVED);
	check_new(o, ralign);
	write_pattern(o);
	nlive++;
}

static void do_free(int k)
{
	check_obj(&live[k], true);
	pcpu_free(live[k].h);
	live[k] = live[--nlive];
	n_frees++;
}

static void do_fault(struct input *in)
{
	unsigned kind = get8(in), a = get8(in), b = get8(in);
	enum os_op op = kind & 1 ? OS_OP_DEPOPULATE : OS_OP_POPULATE;

	if (kind & 0x80)
		os_fault_random(op, (double)(a % 64) / 128.0, b);
	else
		os_fault_nth(op, a % 16, 1 + b % 4);
}

static const char *const op_name[16] = {
	"alloc", "alloc", "alloc", "burst", "free", "free", "free", "free-some", "rewrite",
	"check", "balance", "fault", "fault-clear", "report", "free(NULL)", "whole-unit alloc",
};

static void run_op(struct input *in)
{
	unsigned op = get8(in) % 16, v;

	switch (op) {
	case 0: case 1: case 2: {
		size_t size = pick_size(get16(in)), align = pick_align(get8(in));

		do_alloc(size, align, pick_flags(get8(in)));
		break;
	}
	case 3: {                       /* a burst of equal small allocations */
		int count = 1 + (int)(get8(in) % 32);
		size_t size = 1 + get8(in);
		size_t align = pick_align(get8(in) % 13);
		unsigned flags = pick_flags(get8(in)) & ~0x108u;

		for (int i = 0; i < count && nlive < MAX_LIVE; i++)
			do_alloc(size, align, flags);
		break;
	}
	case 4: case 5: case 6:
		v = get16(in);
		if (nlive)
			do_free((int)(v % (unsigned)nlive));
		break;
	case 7: {                       /* free every stride-th object */
		int stride = 1 + (int)(get8(in) % 4), phase = (int)(get8(in) % (unsigned)stride);

		for (int k = nlive - 1 - phase; k >= 0; k -= stride)
			do_free(k);
		break;
	}
	case 8:                         /* new pattern in every unit */
		v = get16(in);
		if (nlive) {
			struct obj *o = &live[v % (unsigned)nlive];

			check_obj(o, true);
			o->tag = ++next_tag;
			write_pattern(o);
		}
		break;
	case 9:
		for (int k = 0; k < nlive; k++)
			if (pcpu_alloc_size(live[k].h) != live[k].size)
				fail("alloc_size of live %p changed", (void *)live[k].h);
		break;
	case 10:
		if (pcpu_balance() != 0)
			fail("pcpu_balance failed");
		break;
	case 11:
		do_fault(in);
		break;
	case 12:
		os_fault_clear();
		break;
	case 13:
		if (get8(in) & 1)
			pcpu_stats_print(devnull);
		else
			pcpu_layout_print(devnull);
		break;
	case 14:
		pcpu_free(NULL);
		break;
	default:                        /* a whole unit: a chunk of its own */
		do_alloc(unit_size, page_size, PCPU_NOWARN | (get8(in) & 1 ? PCPU_ATOMIC : 0));
		break;
	}
	check_state(op_name[op], op == 9);
	n_ops++;
}

/* Free everything, two balance passes, back to (nearly) the initial state. */
static void teardown(void)
{
	struct pcpu_stats st;

	os_fault_clear();
	check_state("the last operation (full check)", true);
	while (nlive)
		do_free(nlive - 1);
	if (pcpu_balance() || pcpu_balance() || pcpu_stats_get(&st))
		fail("balance or stats failed");
	check_state("teardown", true);
	long dyn_pop = (long)st.nr_populated_pages - (long)(pcpu_pool.first_chunk_populated / page_size);

	if (st.nr_chunks > 1 || dyn_pop > (long)(unit_size / page_size))
		fail("after freeing everything and two balance passes: %u dynamic chunks, %ld pages "
		     "populated outside the first chunk", st.nr_chunks, dyn_pop);
	if ((long)st.nr_empty_pop_pages < pcpu_pool.empty_pop_high)
		fail("after balance: %llu empty populated pages, high mark %d",
		     (unsigned long long)st.nr_empty_pop_pages, pcpu_pool.empty_pop_high);
}

static void report(void)
{
	fprintf(stderr,
		"fuzz_alloc: %llu inputs, %llu operations, %llu allocations (%llu ENOMEM, %llu EINVAL), "
		"%llu frees, %lu faults injected\n",
		n_inputs, n_ops, n_allocs, n_alloc_fail, n_einval, n_frees, os_fault_count());
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct pcpu_config cfg = { .flags = PCPU_CFG_NO_BALANCER };
	struct pcpu_stats st;
	size_t stride = 4096;
	const char *v;

	(void)argc;
	(void)argv;
	if ((v = getenv("PCPU_FUZZ_CPUS")))
		nr_cpus = (unsigned)strtoul(v, NULL, 0);
	if ((v = getenv("PCPU_FUZZ_UNIT_KB")))
		unit_kb = strtoul(v, NULL, 0);
	if ((v = getenv("PCPU_FUZZ_CHUNKS")))
		nr_chunk_slots = atoi(v);
	cfg.nr_cpus = nr_cpus;
	cfg.min_unit_size = unit_kb << 10;
	/* The chunk stride: the smallest power of two >= the chunk's span
	 * (when the first chunk needs more than min_unit_size, fewer chunks). */
	while (stride < (size_t)nr_cpus * cfg.min_unit_size)
		stride *= 2;
	cfg.addr_space = (size_t)nr_chunk_slots * stride;
	if (pcpu_init(&cfg) || pcpu_stats_get(&st))
		fail("pcpu_init: %s", strerror(errno));
	unit_size = st.unit_size;
	page_size = st.page_size;
	base_cur_alloc = st.nr_cur_alloc;
	devnull = fopen("/dev/null", "w");
	if (!devnull || pcpu_nr_cpus() != nr_cpus || pcpu_pool.max_chunks < 2 ||
	    pcpu_pool.max_chunks > nr_chunk_slots)
		fail("setup: %u CPUs, %d chunk slots", pcpu_nr_cpus(), pcpu_pool.max_chunks);
	atexit(report);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };

	n_inputs++;
	while (in.n)
		run_op(&in);
	teardown();
	return 0;
}
