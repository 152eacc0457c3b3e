/*
 * test_static.c - static per-CPU variables (PCPU_DEFINE) in the main
 * program, in a shared library linked at start-up (static_lib_a*.c) and in
 * libraries loaded with dlopen (static_lib_b.c, static_lib_big.c).
 *
 * Linked against the shared libpercpu, as real programs are, so only the
 * public API is used.  Each scenario runs in a forked child (pcpu_init is
 * once per process); the parent checks its stderr (kit_fork).
 *
 *   config    pcpu_init(&cfg) first in main still configures (nr_cpus 3);
 *             initial values on every CPU, alignment, one handle per
 *             variable across translation units, independent updates,
 *             pcpu_is_percpu_addr, dynamic allocations beside them
 *   lazy      the first PCPU_VAR initialises with defaults; pcpu_init EBUSY
 *   dlopen    values, updates, dlclose returns the reserved space (fill
 *             test), reload reuses it, 100 load/unload rounds
 *   early     libraries loaded (and one unloaded) before initialisation
 *   big       a library too large for the reserved area goes to a dynamic
 *             chunk: no stderr line, initial values, no reserved room
 *             taken, dlclose gives it back; with a larger area it goes
 *             to the reserved area
 *   unitbig   a library larger than a unit: one stderr line naming it and
 *             the sizes, its copies fault
 *   starve    the program fills the reserved area with PCPU_RESERVED
 *             allocations; a library loaded then still gets its variables
 *   envres    PCPU_RESERVED_SIZE=0 (no reserved area: the start-up
 *             library's variables go to a dynamic chunk at initialisation)
 *             and PCPU_RESERVED_SIZE=64k
 *   exported  a variable of library A exported with PCPU_DEFINE_EXPORTED,
 *             used through PCPU_EXTERN_VAR by the program (first use
 *             initialises) and by a dlopen'd library linked against A
 *             (static_lib_user.c): one handle, sums exact
 *   free      pcpu_free / pcpu_alloc_size of static handles abort
 *   threads   this_cpu_inc on program and library variables sums exactly
 *   late      a copy whose allocator a preloaded library (static_lib_init.c)
 *             initialises from its constructor before the program registers:
 *             the program's variables go to the reserved area, values hold
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "kit.h"
#include "percpu.h"
#include "static_lib_a.h"

struct mstats {
	long packets;
	int drops;
	short tag;
	char name[6];
};
typedef int __attribute__((aligned(128))) line128_t;

PCPU_DEFINE(long, m_hits) = 41;
PCPU_DEFINE(struct mstats, m_stats) = { 100, 3, -2, "eth0" };
PCPU_DEFINE_STATIC(int[5], m_arr) = { 1, 2, 3, 4, 5 };
PCPU_DEFINE(line128_t, m_line) = 128;
PCPU_DEFINE_STATIC(char, m_zero);

long __percpu *main2_hits_handle(void);          /* static_lib_main.c */
unsigned int __percpu *main2_other_handle(void);

static uint64_t g_seed;

/* ---- helpers ------------------------------------------------------------- */

/* The main program's and library A's initial values on CPU cpu. */
static bool initial_on(unsigned cpu)
{
	const struct mstats *s = per_cpu_ptr(PCPU_VAR(m_stats), cpu);
	const int *arr = *per_cpu_ptr(PCPU_VAR(m_arr), cpu);
	const struct liba_pair *p = per_cpu_ptr(liba_pair_handle(), cpu);

	return *per_cpu_ptr(PCPU_VAR(m_hits), cpu) == 41 && s->packets == 100 && s->drops == 3 &&
	       s->tag == -2 && !strcmp(s->name, "eth0") && arr[0] == 1 && arr[4] == 5 &&
	       *per_cpu_ptr(PCPU_VAR(m_line), cpu) == 128 && *per_cpu_ptr(PCPU_VAR(m_zero), cpu) == 0 &&
	       *per_cpu_ptr(main2_other_handle(), cpu) == 0xfeed &&
	       *per_cpu_ptr(liba_counter_handle(), cpu) == LIBA_COUNTER_INIT &&
	       p->x == LIBA_PAIR_X && p->y == LIBA_PAIR_Y &&
	       *per_cpu_ptr(liba_aligned_handle(), cpu) == LIBA_ALIGNED_INIT;
}

static void *xdlsym(void *h, const char *name)
{
	void *f = dlsym(h, name);

	REQUIRE(f, "dlsym %s: %s", name, dlerror());
	return f;
}

struct libb {
	void *h;
	unsigned long (*size)(void);
	void *(*state)(void);
	int *(*counter)(void);
	int (*check_initial)(unsigned);
};

static struct libb libb_open(void)
{
	struct libb b = { .h = dlopen(LIB_B, RTLD_NOW | RTLD_LOCAL) };

	REQUIRE(b.h, "dlopen %s: %s", LIB_B, dlerror());
	*(void **)&b.size = xdlsym(b.h, "libb_size");
	*(void **)&b.state = xdlsym(b.h, "libb_state_handle");
	*(void **)&b.counter = xdlsym(b.h, "libb_counter_handle");
	*(void **)&b.check_initial = xdlsym(b.h, "libb_check_initial");
	return b;
}

static bool libb_initial(const struct libb *b)
{
	for (unsigned cpu = 0; cpu < pcpu_nr_cpus(); cpu++)
		if (!b->check_initial(cpu))
			return false;
	return true;
}

/* 4-byte PCPU_RESERVED allocations until the area is full; freed again. */
static size_t reserved_room(void)
{
	static void *h[1 << 16];
	size_t n = 0;

	while (n < sizeof(h) / sizeof(h[0]) &&
	       (h[n] = pcpu_alloc_flags(4, 4, PCPU_RESERVED | PCPU_NOWARN)))
		n++;
	for (size_t i = 0; i < n; i++)
		pcpu_free(h[i]);
	return n * 4;
}

/* Run fn(arg) in a forked child (a hang of 120 s is a failure); expect exit
 * 0, or death by signal sig when sig != 0.  Returns the child's stderr. */
static const char *run(const char *name, int (*fn)(long), long arg, int sig)
{
	struct kit_child *c = kit_fork(fn, arg, g_seed, 120);
	bool ok = KIT_EXPECT(c, sig ? KIT_SIGNAL(sig) : KIT_EXIT(0), "%s", name);

	printf("%-8s %s\n", name, ok ? "ok" : "FAILED");
	return c->err;
}

static int count_lines(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* ---- scenarios ----------------------------------------------------------- */

static int child_config(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 3 };
	struct pcpu_stats st;
	long vals[3];
	void *dyn[64];
	unsigned cpu;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init(&cfg) first in main: %s", strerror(errno));
	REQUIRE(pcpu_nr_cpus() == 3, "nr_cpus %u, configured 3", pcpu_nr_cpus());
	REQUIRE(pcpu_stats_get(&st) == 0, "stats");
	CHECK(st.static_size >= sizeof(long) + sizeof(struct mstats) + 5 * sizeof(int) +
				sizeof(line128_t) + 1 + sizeof(unsigned int) &&
	      st.static_size % PCPU_MIN_ALLOC_SIZE == 0 && st.static_size < 4096,
	      "static_size %zu", st.static_size);
	CHECK(st.nr_cur_alloc == 1, "library A's block is the one live allocation: %" PRIu64,
	      st.nr_cur_alloc);

	pcpu_for_each_cpu(cpu) {
		CHECK(initial_on(cpu), "initial values on CPU %u", cpu);
		CHECK((uintptr_t)per_cpu_ptr(PCPU_VAR(m_line), cpu) % 128 == 0, "128-byte alignment");
		CHECK((uintptr_t)per_cpu_ptr(liba_aligned_handle(), cpu) % 64 == 0, "64-byte alignment");
		CHECK(pcpu_is_percpu_addr(per_cpu_ptr(PCPU_VAR(m_hits), cpu)), "main var in a unit");
		CHECK(pcpu_is_percpu_addr(per_cpu_ptr(liba_pair_handle(), cpu)), "library var in a unit");
		CHECK(pcpu_is_percpu_addr(per_cpu_ptr(PCPU_VAR(m_zero), cpu)), "last byte in a unit");
	}
	CHECK(PCPU_VAR(m_hits) == main2_hits_handle(), "one handle across translation units");
	CHECK(liba_counter_handle() == liba_counter_handle2(), "one handle across library units");
	CHECK(!pcpu_is_percpu_addr(PCPU_VAR(m_hits)), "a handle is not a per-CPU address");
	CHECK(!pcpu_is_percpu_addr(&pcpu_tmpl_m_hits), "the template is not a copy");
	CHECK(!pcpu_is_percpu_addr(&cfg) && !pcpu_is_percpu_addr(NULL), "stack, NULL");

	/* Independent updates: each CPU's copy keeps its own value. */
	pcpu_for_each_cpu(cpu) {
		vals[cpu] = (long)rng_below(1000000);
		*per_cpu_ptr(PCPU_VAR(m_hits), cpu) = vals[cpu];
		per_cpu_ptr(PCPU_VAR(m_stats), cpu)->drops = (int)cpu + 10;
		per_cpu_ptr(liba_pair_handle(), cpu)->x = (int)cpu * 3;
		(*per_cpu_ptr(PCPU_VAR(m_arr), cpu))[4] = (int)cpu;
	}
	pcpu_for_each_cpu(cpu) {
		CHECK(*per_cpu_ptr(PCPU_VAR(m_hits), cpu) == vals[cpu], "m_hits on CPU %u", cpu);
		CHECK(per_cpu_ptr(PCPU_VAR(m_stats), cpu)->drops == (int)cpu + 10, "drops");
		CHECK(per_cpu_ptr(PCPU_VAR(m_stats), cpu)->packets == 100, "neighbour field intact");
		CHECK(per_cpu_ptr(liba_pair_handle(), cpu)->x == (int)cpu * 3, "library pair");
		CHECK(per_cpu_ptr(liba_pair_handle(), cpu)->y == LIBA_PAIR_Y, "library pair y");
		CHECK((*per_cpu_ptr(PCPU_VAR(m_arr), cpu))[4] == (int)cpu, "array");
		CHECK(*per_cpu_ptr(liba_counter_handle(), cpu) == LIBA_COUNTER_INIT, "library counter");
	}
	CHECK(pcpu_tmpl_m_hits == 41, "the template is untouched by updates");

	/* Dynamic allocations live beside them without overlap. */
	for (int i = 0; i < 64; i++) {
		dyn[i] = pcpu_alloc(8 + 4 * (size_t)i, 8);
		REQUIRE(dyn[i], "pcpu_alloc");
		pcpu_for_each_cpu(cpu)
			memset(pcpu_ptr(dyn[i], cpu), 0xee, 8 + 4 * (size_t)i);
	}
	pcpu_for_each_cpu(cpu)
		CHECK(*per_cpu_ptr(PCPU_VAR(m_hits), cpu) == vals[cpu] &&
		      per_cpu_ptr(liba_pair_handle(), cpu)->y == LIBA_PAIR_Y &&
		      *per_cpu_ptr(main2_other_handle(), cpu) == 0xfeed, "static vars intact");
	for (int i = 0; i < 64; i++)
		pcpu_free(dyn[i]);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

static int child_lazy(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 3 };
	unsigned cpu;

	(void)arg;
	CHECK(this_cpu_read(PCPU_VAR(m_hits)) == 41, "first use reads the initial value");
	CHECK(pcpu_init(&cfg) == -1 && errno == EBUSY, "pcpu_init after first use: EBUSY");
	pcpu_for_each_cpu(cpu)
		CHECK(initial_on(cpu), "initial values on CPU %u", cpu);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

static int child_dlopen(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 4 };
	struct libb b;
	uint64_t base;
	void *hs;
	int *hc;
	size_t room_loaded, room_free, size;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	base = kit_cur_alloc();
	b = libb_open();
	CHECK(kit_cur_alloc() == base + 1, "the library's block is live");
	CHECK(libb_initial(&b), "library B's initial values on every CPU");
	hs = b.state();
	hc = b.counter();
	for (unsigned cpu = 0; cpu < 4; cpu++) {
		CHECK(pcpu_is_percpu_addr(per_cpu_ptr(hc, cpu)), "library B var in a unit");
		*per_cpu_ptr(hc, cpu) = (int)cpu * 7 + 1;
	}
	for (unsigned cpu = 0; cpu < 4; cpu++) {
		CHECK(*per_cpu_ptr(hc, cpu) == (int)cpu * 7 + 1, "independent copies");
		CHECK(initial_on(cpu), "program and library A untouched");
	}

	room_loaded = reserved_room();
	size = b.size();
	REQUIRE(dlclose(b.h) == 0, "dlclose");
	CHECK(kit_cur_alloc() == base, "dlclose gave the block back");
	room_free = reserved_room();
	CHECK(room_free >= room_loaded + size, "dlclose returned %zu bytes, the library has %zu",
	      room_free - room_loaded, size);

	b = libb_open();
	CHECK(b.state() == hs && b.counter() == hc, "reload reuses the space");
	CHECK(libb_initial(&b), "reload starts from the initial values");
	for (int round = 0; round < 100; round++) {
		REQUIRE(dlclose(b.h) == 0, "dlclose");
		b = libb_open();
		if (b.state() != hs || kit_cur_alloc() != base + 1) {
			CHECK(false, "round %d: handle %p (was %p), %" PRIu64 " live", round, b.state(),
			      hs, kit_cur_alloc());
			break;
		}
	}
	CHECK(libb_initial(&b), "initial values after 100 reloads");
	CHECK(pcpu_verify() == 0, "verify");
	REQUIRE(dlclose(b.h) == 0, "dlclose");
	CHECK(kit_cur_alloc() == base, "nothing left");
	return 0;
}

static int child_early(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 5 };
	void *big;
	struct libb b;

	(void)arg;
	/* Loaded and unloaded before initialisation: only recorded, then
	 * forgotten (no placement, so no "no room" either). */
	big = dlopen(LIB_BIG, RTLD_NOW);
	REQUIRE(big, "dlopen %s: %s", LIB_BIG, dlerror());
	REQUIRE(dlclose(big) == 0, "dlclose");
	b = libb_open();
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init after dlopen: %s", strerror(errno));
	CHECK(pcpu_nr_cpus() == 5, "configured");
	CHECK(kit_cur_alloc() == 2, "libraries A and B placed at initialisation: %" PRIu64, kit_cur_alloc());
	CHECK(libb_initial(&b), "library B's values on 5 CPUs");
	for (unsigned cpu = 0; cpu < 5; cpu++)
		CHECK(initial_on(cpu), "program and library A on CPU %u", cpu);
	REQUIRE(dlclose(b.h) == 0, "dlclose");
	CHECK(kit_cur_alloc() == 1, "library B's block returned");
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

#define SEGV_EXIT 99

static void segv_exit(int sig)
{
	(void)sig;
	_exit(SEGV_EXIT);
}

static char (*g_big)[16384];    /* the big library's variable */

/* In a child: write CPU 1's copy of g_big, which must fault. */
static int touch_big(long arg)
{
	(void)arg;
	/* Our own handler: sanitizers would turn the signal into an exit. */
	signal(SIGSEGV, segv_exit);
	(*per_cpu_ptr(g_big, 1))[100] = 1;
	return 0;
}

/* dlopen the big library: its handle, and the library in *h. */
static char (*big_open(void **h))[16384]
{
	char (*(*handle)(void))[16384];

	*h = dlopen(LIB_BIG, RTLD_NOW);
	REQUIRE(*h, "dlopen %s still succeeds: %s", LIB_BIG, dlerror());
	*(void **)&handle = xdlsym(*h, "big_handle");
	return handle();
}

/* Every copy of the big variable holds its initial value; then each is
 * written, and read back. */
static bool big_intact(char (*bh)[16384], unsigned nr)
{
	for (unsigned cpu = 0; cpu < nr; cpu++) {
		char *p = *per_cpu_ptr(bh, cpu);

		if (strcmp(p, "big") || p[16383] || !pcpu_is_percpu_addr(p) ||
		    !pcpu_is_percpu_addr(p + 16383))
			return false;
		p[16383] = (char)cpu;
	}
	for (unsigned cpu = 0; cpu < nr; cpu++)
		if ((*per_cpu_ptr(bh, cpu))[16383] != (char)cpu)
			return false;
	return true;
}

/* A 16 KiB library with an 8 KiB (reserved == 0: default) or a larger
 * reserved area. */
static int child_big(long reserved)
{
	struct pcpu_config cfg = { .nr_cpus = 2, .reserved_size = (size_t)reserved };
	size_t room_before, room_loaded;
	uint64_t base;
	void *h;
	char (*bh)[16384];

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	base = kit_cur_alloc();
	room_before = reserved_room();
	bh = big_open(&h);
	room_loaded = reserved_room();
	CHECK(kit_cur_alloc() == base + 1, "placed: %" PRIu64 " live, %" PRIu64 " before",
	      kit_cur_alloc(), base);
	CHECK(big_intact(bh, 2), "initial values on every CPU, copies usable");
	if (!reserved)
		CHECK(room_loaded == room_before, "a dynamic chunk: the reserved area untouched (%zu, %zu)",
		      room_loaded, room_before);
	else
		CHECK(room_loaded + 16384 <= room_before, "the reserved area: %zu bytes free, %zu before",
		      room_loaded, room_before);
	CHECK(pcpu_verify() == 0, "verify");
	REQUIRE(dlclose(h) == 0, "dlclose");
	CHECK(kit_cur_alloc() == base, "back to %" PRIu64, base);
	CHECK(reserved_room() == room_before, "reserved room as before");
	/* Loaded again: placed again, values from the template. */
	bh = big_open(&h);
	CHECK(big_intact(bh, 2), "reloaded: initial values");
	REQUIRE(dlclose(h) == 0, "dlclose");
	CHECK(kit_cur_alloc() == base, "back to %" PRIu64, base);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* Units too small for the 16 KiB library: the one failure left. */
static int child_unitbig(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 2, .reserved_size = 4096, .dyn_size = 4096,
				   .min_unit_size = 4096 };
	struct pcpu_stats st;
	uint64_t base;
	void *h;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	st = kit_stats();
	REQUIRE(st.unit_size < 16384 + 64, "unit %zu bytes: too small for the test", st.unit_size);
	base = kit_cur_alloc();
	g_big = big_open(&h);
	CHECK(kit_cur_alloc() == base, "nothing allocated for it");
	for (unsigned cpu = 0; cpu < 2; cpu++)
		CHECK(!pcpu_is_percpu_addr(per_cpu_ptr(g_big, cpu)), "its copies are not in a unit");
	KIT_EXPECT(kit_fork(touch_big, 0, 0, 0), KIT_EXIT(SEGV_EXIT), "use faults");
	REQUIRE(dlclose(h) == 0, "dlclose");
	CHECK(kit_cur_alloc() == base, "back to %" PRIu64, base);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* The program takes the whole reserved area; a library loaded afterwards
 * still gets its variables (a dynamic chunk). */
static int child_starve(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 3 };
	static void *res[1 << 12];
	size_t n = 0;
	struct libb b;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	while (n < sizeof(res) / sizeof(res[0]) &&
	       (res[n] = pcpu_alloc_flags(4, 4, PCPU_RESERVED | PCPU_NOWARN)))
		n++;
	REQUIRE(n > 0 && n < sizeof(res) / sizeof(res[0]), "%zu reserved allocations", n);
	CHECK(errno == ENOMEM, "the reserved area is full: ENOMEM");
	b = libb_open();
	CHECK(libb_initial(&b), "library B's initial values on every CPU");
	for (unsigned cpu = 0; cpu < 3; cpu++) {
		CHECK(pcpu_is_percpu_addr(per_cpu_ptr(b.counter(), cpu)), "library B var in a unit");
		*per_cpu_ptr(b.counter(), cpu) = (int)cpu + 40;
	}
	for (size_t i = 0; i < n; i++)
		CHECK(*per_cpu_ptr((int *)res[i], 2) == 0, "reserved allocation %zu untouched", i);
	for (unsigned cpu = 0; cpu < 3; cpu++)
		CHECK(*per_cpu_ptr(b.counter(), cpu) == (int)cpu + 40, "independent copies");
	CHECK(pcpu_alloc_flags(4, 4, PCPU_RESERVED | PCPU_NOWARN) == NULL, "still full");
	for (size_t i = 0; i < n; i++)
		pcpu_free(res[i]);
	CHECK(pcpu_verify() == 0, "verify");
	REQUIRE(dlclose(b.h) == 0, "dlclose");
	CHECK(kit_cur_alloc() == 1, "only library A's block is left: %" PRIu64, kit_cur_alloc());
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* PCPU_RESERVED_SIZE: arg 0 sets "0", else "64k". */
static int child_envres(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 2 };
	struct pcpu_stats st;
	void *h;
	char (*bh)[16384];

	setenv("PCPU_RESERVED_SIZE", arg ? "64k" : "0", 1);
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	st = kit_stats();
	CHECK(st.reserved_size == (arg ? 65536u : 0u), "reserved_size %zu", st.reserved_size);
	CHECK(st.nr_cur_alloc == 1, "library A placed at initialisation: %" PRIu64, st.nr_cur_alloc);
	for (unsigned cpu = 0; cpu < 2; cpu++)
		CHECK(initial_on(cpu), "program and library A's initial values on CPU %u", cpu);
	errno = 0;
	if (!arg)
		CHECK(!pcpu_alloc_flags(4, 4, PCPU_RESERVED | PCPU_NOWARN) && errno == ENOMEM,
		      "no reserved area: PCPU_RESERVED fails with ENOMEM");
	bh = big_open(&h);
	CHECK(big_intact(bh, 2), "the big library placed");
	CHECK(arg ? reserved_room() + 16384 <= 65536 : reserved_room() == 0, "room left %zu",
	      reserved_room());
	REQUIRE(dlclose(h) == 0, "dlclose");
	CHECK(kit_cur_alloc() == 1, "back to library A's block");
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

#define X_THREADS 4
#define X_INCS 100000

static void (*g_user_inc)(long);

static void *exported_thread(void *arg)
{
	for (int i = 0; i < X_INCS; i++)
		this_cpu_inc(PCPU_EXTERN_VAR(liba_exported));
	if (arg)
		g_user_inc(X_INCS);
	return NULL;
}

static int child_exported(long arg)
{
	long __percpu *(*user_handle)(void);
	long __percpu *h;
	pthread_t t[X_THREADS];
	void *user;
	long n;

	(void)arg;
	/* The first use initialises, through the defining library. */
	CHECK(this_cpu_read(PCPU_EXTERN_VAR(liba_exported)) == LIBA_EXPORTED_INIT, "first use");
	h = PCPU_EXTERN_VAR(liba_exported);
	n = (long)pcpu_nr_cpus();
	CHECK(h == liba_exported_own_handle(), "the accessor gives the library's own handle");
	CHECK(pcpu_sum(h) == LIBA_EXPORTED_INIT * n, "initial value on every CPU: %ld", pcpu_sum(h));
	user = dlopen(LIB_USER, RTLD_NOW);
	REQUIRE(user, "dlopen %s: %s", LIB_USER, dlerror());
	*(void **)&user_handle = xdlsym(user, "user_exported_handle");
	*(void **)&g_user_inc = xdlsym(user, "user_inc");
	CHECK(user_handle() == h, "another library sees the same handle");
	for (int i = 0; i < X_THREADS; i++)      /* the program alone */
		REQUIRE(pthread_create(&t[i], NULL, exported_thread, NULL) == 0, "pthread_create");
	kit_join_threads(t, X_THREADS, NULL);
	CHECK(pcpu_sum(h) == LIBA_EXPORTED_INIT * n + (long)X_THREADS * X_INCS, "sum %ld", pcpu_sum(h));
	/* Program and library incrementing at once (arg 1: both). */
	for (int i = 0; i < X_THREADS; i++)
		REQUIRE(pthread_create(&t[i], NULL, exported_thread, (void *)1) == 0, "pthread_create");
	kit_join_threads(t, X_THREADS, NULL);
	CHECK(pcpu_sum(h) == LIBA_EXPORTED_INIT * n + 3L * X_THREADS * X_INCS, "sum %ld", pcpu_sum(h));
	REQUIRE(dlclose(user) == 0, "dlclose");
	CHECK(PCPU_EXTERN_VAR(liba_exported) == h, "unchanged while library A is loaded");
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

static int child_free_main(long arg)
{
	(void)arg;
	pcpu_free(PCPU_VAR(m_hits));
	return 0;
}

static int child_free_lib(long arg)
{
	(void)arg;
	pcpu_free(liba_counter_handle());
	return 0;
}

static int child_size_dlopen(long arg)
{
	struct libb b = libb_open();

	(void)arg;
	(void)pcpu_alloc_size(b.counter());
	return 0;
}

#define T_THREADS 4
#define T_INCS 200000

static void *inc_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < T_INCS; i++) {
		this_cpu_inc(PCPU_VAR(m_hits));
		liba_inc();
	}
	return NULL;
}

static int child_threads(long arg)
{
	pthread_t t[T_THREADS];
	long n = (long)pcpu_nr_cpus();

	(void)arg;
	kit_start_threads(t, T_THREADS, inc_thread, NULL, 0);
	kit_join_threads(t, T_THREADS, NULL);
	CHECK(pcpu_sum(PCPU_VAR(m_hits)) == 41 * n + (long)T_THREADS * T_INCS, "program counter sum %ld",
	      pcpu_sum(PCPU_VAR(m_hits)));
	CHECK(pcpu_sum(liba_counter_handle()) == LIBA_COUNTER_INIT * n + (long)T_THREADS * T_INCS,
	      "library counter sum %ld", pcpu_sum(liba_counter_handle()));
	return 0;
}

/* In a copy started with LD_PRELOAD=static_lib_init: initialised before the
 * program registered, so its variables are in the reserved area. */
static int late_main(void)
{
	struct pcpu_config cfg = { .nr_cpus = 3 };
	struct pcpu_stats st;
	unsigned cpu;

	CHECK(pcpu_init(&cfg) == -1 && errno == EBUSY, "initialised by the preloaded library");
	REQUIRE(pcpu_stats_get(&st) == 0, "stats");
	CHECK(st.static_size == 0, "no static area: %zu", st.static_size);
	CHECK(st.nr_cur_alloc == 2, "program and library A blocks: %" PRIu64, st.nr_cur_alloc);
	pcpu_for_each_cpu(cpu) {
		CHECK(initial_on(cpu), "initial values on CPU %u", cpu);
		CHECK((uintptr_t)per_cpu_ptr(PCPU_VAR(m_line), cpu) % 128 == 0, "alignment kept");
	}
	CHECK(PCPU_VAR(m_hits) == main2_hits_handle(), "one handle across translation units");
	child_threads(0);
	CHECK(pcpu_verify() == 0, "verify");
	printf("late registration: program variables in the reserved area\n");
	TEST_DONE();
}

/* In a child: this program again, with LD_PRELOAD=static_lib_init. */
static int exec_late(long arg)
{
	char seed[32];

	(void)arg;
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)g_seed);
	setenv("LD_PRELOAD", LIB_INIT, 1);
	setenv("ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=0", 1);
	return kit_exec_self(seed, "--late", NULL);
}

int main(int argc, char **argv)
{
	g_seed = test_seed(argc, argv);
	if (argc > 2 && !strcmp(argv[2], "--late"))
		return late_main();

	const char *err;

	run("config", child_config, 0, 0);
	run("lazy", child_lazy, 0, 0);
	run("dlopen", child_dlopen, 0, 0);
	err = run("early", child_early, 0, 0);
	CHECK(!strstr(err, "no room"), "a library unloaded before initialisation is not placed");

	err = run("big", child_big, 0, 0);
	CHECK(!strstr(err, "libpercpu:"), "no error when a dynamic chunk takes it:\n%s", err);
	err = run("bigfits", child_big, 64 << 10, 0);
	CHECK(!strstr(err, "libpercpu:"), "no error when the reserved area takes it:\n%s", err);
	err = run("unitbig", child_unitbig, 0, 0);
	CHECK(count_lines(err, "libpercpu:") == 1 && strstr(err, "static_lib_big") &&
	      strstr(err, "16384 bytes") && strstr(err, "reserved area 4096 bytes") &&
	      strstr(err, "larger than a unit"),
	      "one line naming the library, the sizes and the reason:\n%s", err);
	err = run("starve", child_starve, 0, 0);
	CHECK(!strstr(err, "no room"), "no error when the program filled the reserved area:\n%s", err);
	run("envres0", child_envres, 0, 0);
	run("envres64", child_envres, 1, 0);
	run("exported", child_exported, 0, 0);

	err = run("freemain", child_free_main, 0, SIGABRT);
	CHECK(strstr(err, "invalid pointer") && strstr(err, "static per-CPU variable"),
	      "pcpu_free of a program variable: %s", err);
	err = run("freelib", child_free_lib, 0, SIGABRT);
	CHECK(strstr(err, "invalid pointer") != NULL, "pcpu_free of a library variable: %s", err);
	err = run("sizelib", child_size_dlopen, 0, SIGABRT);
	CHECK(strstr(err, "invalid pointer") != NULL, "pcpu_alloc_size of a dlopen'd variable: %s",
	      err);
	run("threads", child_threads, 0, 0);
	KIT_EXPECT(kit_fork(exec_late, 0, 0, 0), KIT_EXIT(0), "late copy");
	TEST_DONE();
}
