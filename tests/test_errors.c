/*
 * test_errors.c - the failure table of docs/contract.md (section 3) row by
 * row, plus fault injection.  Each scenario runs in a forked child with its
 * own configuration; the parent checks the exit status or fatal signal, the
 * child's stderr and its report file (kit_fork, kit_report_fd).
 *
 *   EINVAL rows, rate limit; pcpu_free(NULL); invalid pointers (SIGABRT with
 *   "invalid pointer %p", and with a SIGABRT handler that runs pcpu_verify:
 *   nothing changed before the abort); pcpu_init EBUSY / EINVAL / ENOMEM;
 *   ENOMEM from populate faults, address space exhaustion and a random fault
 *   run; PCPU_ATOMIC (no OS call, refilled by balancing); PCPU_RESERVED.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "pool_init.h"
#include "pool_verify.h"
#include "kit.h"
#include "os.h"
#include "os_fault.h"
#include "percpu.h"

static uint64_t g_seed;

/* ---- objects with a per-CPU pattern (kit.h) ---------------------------------- */

static void init4(unsigned flags, size_t addr_space)
{
	struct pcpu_config cfg = { .nr_cpus = 4, .flags = flags, .addr_space = addr_space };

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
}

#define MAXOBJ 4000
static struct kit_obj objs[MAXOBJ];
static int nobj;

static bool all_intact(void) { return kit_all_intact(objs, nobj); }

/* Allocate, check zeroed and aligned in every unit, fill and keep. */
static void *add_obj(size_t size, size_t align, unsigned flags)
{
	static unsigned tag;
	void *h = pcpu_alloc_flags(size, align, flags);

	if (h) {
		REQUIRE(kit_zeroed(h, size, align < 4 ? 4 : align), "new object not zeroed or aligned");
		kit_keep(objs, &nobj, MAXOBJ, h, size, ++tag);
	}
	return h;
}

/* ---- children and captured output ------------------------------------------ */

/* Run fn(arg) in a forked child (a hang of 120 s is a failure); if code >= 0,
 * check that it exited with code. */
static struct kit_child *run(int (*fn)(long), long arg, int code, const char *what)
{
	struct kit_child *c = kit_fork(fn, arg, g_seed + (uint64_t)arg, 120);

	if (code >= 0)
		KIT_EXPECT(c, KIT_EXIT(code), "%s", what);
	return c;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* In a child, fd 2 is a temp file: what was written to it since mark. */
static off_t err_mark(void)
{
	fflush(stderr);
	return lseek(2, 0, SEEK_END);
}

static void err_since(off_t mark, char *buf, size_t len)
{
	ssize_t n = pread(2, buf, len - 1, mark);

	buf[n > 0 ? n : 0] = 0;
}

/* ---- 1. EINVAL rows, rate limit; 2. pcpu_free(NULL) --------------------------- */

static int child_einval(long arg)
{
	(void)arg;
	pcpu_free(NULL);                 /* before initialisation: a no-op, initialises nothing */
	CHECK(!pcpu_pool.ready, "pcpu_free(NULL) initialised the allocator");
	init4(PCPU_CFG_NO_BALANCER, 0);
	REQUIRE(add_obj(32, 8, 0), "alloc");
	struct pcpu_stats s0 = kit_stats();
	const size_t unit = s0.unit_size, page = s0.page_size;
	const struct { size_t size, align; unsigned flags; bool plain; } bad[] = {
		{ 0, 4, 0, false }, { unit + 1, 4, 0, false }, { SIZE_MAX, 4, 0, false },
		{ 16, 12, 0, false }, { 16, 3, 0, false }, { 16, page * 2, 0, false }, { 16, (size_t)1 << 40, 0, false },
		{ 16, 4, 0x100, false }, { 16, 4, 0x8 | PCPU_ATOMIC, false }, { 0, 4, 0, true },
	};
	char buf[1024];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int nowarn = 0; nowarn < 2 - bad[i].plain; nowarn++) {
			unsigned fl = bad[i].flags | (nowarn ? PCPU_NOWARN : 0);
			off_t m = err_mark();

			errno = 0;
			void *p = bad[i].plain ? pcpu_alloc(bad[i].size, bad[i].align) :
						 pcpu_alloc_flags(bad[i].size, bad[i].align, fl);
			int e = errno;
			err_since(m, buf, sizeof(buf));
			CHECK(!p && e == EINVAL, "row %zu (size %zu align %zu flags %#x): %p errno %d", i,
			      bad[i].size, bad[i].align, fl, p, e);
			if (nowarn) {
				CHECK(buf[0] == 0, "row %zu: PCPU_NOWARN but stderr says \"%s\"", i, buf);
			} else if (fl & PCPU_ATOMIC) {
				/* No system call on the atomic path: the warning waits
				 * for the next blocking call (pcpu_balance flushes it). */
				CHECK(buf[0] == 0, "row %zu: atomic, but stderr says \"%s\" at once", i, buf);
				m = err_mark();
				pcpu_balance();
				err_since(m, buf, sizeof(buf));
				CHECK(count_lines(buf) == 1 && strstr(buf, "PCPU_ATOMIC"),
				      "row %zu: want the deferred line after pcpu_balance, got \"%s\"", i, buf);
			} else {
				CHECK(count_lines(buf) == 1 && strstr(buf, "libpercpu"),
				      "row %zu: want one line on stderr, got \"%s\"", i, buf);
			}
		}
	}
	pcpu_free(NULL);

	struct pcpu_stats s1 = kit_stats();
	CHECK(s1.nr_cur_alloc == s0.nr_cur_alloc && s1.nr_alloc == s0.nr_alloc &&
	      s1.nr_dealloc == s0.nr_dealloc && s1.nr_chunks == s0.nr_chunks &&
	      s1.nr_populated_pages == s0.nr_populated_pages,
	      "invalid requests or pcpu_free(NULL) changed the allocator");
	CHECK(pcpu_verify() == 0 && all_intact(), "verify, live object intact");
	return 0;
}

/* 200 invalid calls; the parent counts the lines on stderr. */
static int child_ratelimit(long arg)
{
	(void)arg;
	init4(PCPU_CFG_NO_BALANCER, 0);
	for (int i = 0; i < 200; i++)
		(void)pcpu_alloc_flags(i % 2 ? 0 : 16, i % 3 ? 4 : 12, (unsigned)(i % 4 ? 0 : 0x40));
	if (!pcpu_alloc(16, 4) || pcpu_verify())
		return 2;
	/* The ENOMEM that matters is still reported after the flood of
	 * invalid requests: a whole unit needs a new chunk, which cannot be
	 * populated. */
	os_fault_random(OS_OP_POPULATE, 1.0, 1);
	errno = 0;
	if (pcpu_alloc(kit_stats().unit_size, 4) || errno != ENOMEM)
		return 3;
	os_fault_clear();
	return pcpu_verify() == 0 ? 0 : 4;
}

/* ---- 3. invalid pointers ----------------------------------------------------- */

enum bad_kind {
	BAD_DOUBLE_FREE, BAD_INTERIOR, BAD_MALLOC, BAD_GARBAGE, BAD_STALE, BAD_MISALIGNED,
	BAD_SIZE_FREED, BAD_SIZE_INTERIOR, BAD_RESERVED_DOUBLE, BAD_DESTROYED_CHUNK,
	BAD_HIDDEN_TAIL, BAD_UNIT_GAP, BAD_UNUSED_INDEX, BAD_STATIC, BAD_BEFORE_INIT, NR_BAD
};
static const char *const bad_name[NR_BAD] = {
	"double free", "interior pointer", "malloc pointer", "garbage", "stale handle",
	"misaligned handle", "alloc_size of freed", "alloc_size of interior",
	"reserved double free", "handle in a destroyed chunk", "first chunk hidden tail",
	"gap between units", "handle in an index never used", "static variable",
	"free before initialisation",
};

#ifdef PCPU_DEFINE
PCPU_DEFINE(int, static_var) = 7;       /* a static per-CPU variable: never freeable */
#endif

static struct kit_obj g_live;               /* a separate live allocation */
static void *g_extra;                   /* must still be live with g_extra_size */
static size_t g_extra_size;
static struct pcpu_stats g_saved;

static void abort_handler(int sig)
{
	struct pcpu_stats st;
	int v = pcpu_verify();

	(void)sig;
	pcpu_stats_get(&st);
	bool same = st.nr_cur_alloc == g_saved.nr_cur_alloc && st.nr_alloc == g_saved.nr_alloc &&
		    st.nr_dealloc == g_saved.nr_dealloc && st.nr_chunks == g_saved.nr_chunks;
	bool extra = !g_extra || pcpu_alloc_size(g_extra) == g_extra_size;

	dprintf(kit_report_fd, "HANDLER verify=%d same=%d intact=%d extra=%d\n", v, same,
		kit_intact(&g_live), extra);
	_exit(42);
}

/* arg = kind * 2 + with_handler */
static int child_bad(long arg)
{
	int kind = (int)(arg / 2), off;
	unsigned char *a = NULL, *bad = (unsigned char *)0x1234, *c;
	void *x, *y;

	if (kind == BAD_BEFORE_INIT)
		goto call;
	init4(PCPU_CFG_NO_BALANCER, 0);
	g_live = (struct kit_obj){ pcpu_alloc(48, 16), 48, 77 };
	REQUIRE(g_live.h, "alloc");
	kit_fill(&g_live);
	const size_t unit = kit_stats().unit_size;
	if (kind != BAD_MALLOC && kind != BAD_GARBAGE && kind != BAD_STATIC)
		REQUIRE((a = pcpu_alloc_flags(16, 4, kind == BAD_RESERVED_DOUBLE ? PCPU_RESERVED : 0)),
			"alloc");
	switch (kind) {
	case BAD_DOUBLE_FREE: case BAD_SIZE_FREED: case BAD_RESERVED_DOUBLE:
		pcpu_free(a);
		bad = a;
		break;
	case BAD_INTERIOR: case BAD_SIZE_INTERIOR: case BAD_MISALIGNED:
		bad = a + (kind == BAD_INTERIOR ? 4 : kind == BAD_MISALIGNED ? 1 : 8);
		g_extra = a, g_extra_size = 16;
		break;
	case BAD_MALLOC:
		bad = malloc(64);
		break;
	case BAD_STALE:                          /* pin, a, after; free a; c does not fit a's hole */
		x = pcpu_alloc(16, 4);
		pcpu_free(a);
		c = pcpu_alloc(32, 4);
		REQUIRE(x && c && (c + 32 <= a || c >= a + 16), "stale setup");
		g_extra = c, g_extra_size = 32;
		bad = a;
		break;
	case BAD_DESTROYED_CHUNK:
		x = pcpu_alloc(unit, 4), y = pcpu_alloc(unit, 4);
		REQUIRE(x && y && kit_stats().nr_chunks == 2, "two whole-unit chunks");
		pcpu_free(x);
		pcpu_free(y);
		pcpu_balance();
		bad = pool_handle_chunk(x, &off) ? y : x;
		REQUIRE(kit_stats().nr_chunks == 1 && !pool_handle_chunk(bad, &off), "a destroyed chunk");
		break;
	case BAD_STATIC:
#ifdef PCPU_DEFINE
		bad = (unsigned char *)PCPU_VAR(static_var);
		REQUIRE(*per_cpu_ptr(PCPU_VAR(static_var), 3) == 7, "static variable initialised");
#else
		printf("PCPU_DEFINE not available: freeing garbage instead\n");
#endif
		break;
	case BAD_UNUSED_INDEX:                   /* its part of the live map was never mapped */
		bad = (unsigned char *)(pcpu_pool.handle_base +
					((size_t)(pcpu_pool.max_chunks - 1) << pcpu_pool.stride_shift)) + 64;
		REQUIRE(pcpu_pool.max_chunks > 2 && !pool_handle_chunk(bad, &off) &&
			!pool_live_map((size_t)pcpu_pool.max_chunks - 1), "an index that never had a chunk");
		break;
	case BAD_HIDDEN_TAIL: case BAD_UNIT_GAP:
		REQUIRE(pool_handle_chunk(g_live.h, &off) == pcpu_pool.first_chunk, "first chunk");
		bad = (unsigned char *)g_live.h - off + unit + (kind == BAD_HIDDEN_TAIL ? -4 : 64);
		break;
	}
	REQUIRE(kit_intact(&g_live), "live allocation intact before the bad call");
	g_saved = kit_stats();
call:
	dprintf(kit_report_fd, "PTR %p\n", (void *)bad);
	if (arg % 2) {
		struct sigaction sa = { .sa_handler = abort_handler };

		sigemptyset(&sa.sa_mask);
		sigaction(SIGABRT, &sa, NULL);
	}
	if (kind == BAD_SIZE_FREED || kind == BAD_SIZE_INTERIOR)
		(void)pcpu_alloc_size(bad);
	else
		pcpu_free(bad);
	dprintf(kit_report_fd, "RETURNED\n");
	return 3;
}

static void test_invalid_pointers(void)
{
	for (int kind = 0; kind < NR_BAD; kind++) {
		for (int handler = 0; handler < 2 - (kind == BAD_BEFORE_INIT); handler++) {
			struct kit_child *c = run(child_bad, kind * 2 + handler, handler ? 42 : -1,
					      bad_name[kind]);
			const char *ptr = kit_report_word(c, "PTR ");

			if (handler)
				CHECK(strstr(c->out, "HANDLER verify=0 same=1 intact=1 extra=1"),
				      "%s: state changed before the abort: %s", bad_name[kind], c->out);
			else
				CHECK(WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGABRT,
				      "%s: status %#x, want SIGABRT; stderr: %s", bad_name[kind], c->status,
				      c->err);
			CHECK(ptr && strstr(c->err, "invalid pointer") && strstr(c->err, ptr),
			      "%s: stderr lacks \"invalid pointer\" and %s: %s", bad_name[kind],
			      ptr ? ptr : "the pointer", c->err);
		}
	}
}

/* ---- 4. pcpu_init ---------------------------------------------------------- */

static int child_init(long arg)
{
	struct pcpu_config valid = { .nr_cpus = 4, .flags = PCPU_CFG_NO_BALANCER };

	if (arg == 0) {                  /* EBUSY once in use */
		REQUIRE(add_obj(16, 4, 0), "lazy init");
		errno = 0;
		CHECK(pcpu_init(&valid) == -1 && errno == EBUSY, "pcpu_init in use: errno %d", errno);
		errno = 0;
		CHECK(pcpu_init(NULL) == -1 && errno == EBUSY, "pcpu_init(NULL) in use");
		CHECK(pcpu_nr_cpus() == os_possible_cpus(), "configuration unchanged");
		CHECK(all_intact() && pcpu_verify() == 0, "allocator intact");
		return 0;
	}
	if (arg == 1) {                  /* impossible configurations, then a valid one */
		const struct pcpu_config bad[] = {
			{ .nr_cpus = 100000 }, { .nr_cpus = PCPU_MAX_CPUS + 1 }, { .atom_size = 3 * 4096 },
			{ .dyn_size = (size_t)1 << 34 }, { .reserved_size = (size_t)1 << 34 },
			{ .min_unit_size = (size_t)1 << 34 }, { .addr_space = (size_t)1 << 50 },
			{ .nr_cpus = 1, .reserved_size = (size_t)1 << 30, .dyn_size = (size_t)1 << 30 },
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			errno = 0;
			CHECK(pcpu_init(&bad[i]) == -1 && errno == EINVAL, "bad config %zu: errno %d", i,
			      errno);
			CHECK(!pcpu_pool.ready, "bad config %zu marked the allocator ready", i);
		}
	} else {                         /* ENOMEM from reserve, then from populate */
		os_fault_random(OS_OP_RESERVE, 1.0, 1);
		errno = 0;
		CHECK(pcpu_init(&valid) == -1 && errno == ENOMEM, "reserve failure: errno %d", errno);
		os_fault_clear();
		os_fault_nth(OS_OP_POPULATE, 0, 1);
		errno = 0;
		CHECK(pcpu_init(&valid) == -1 && errno == ENOMEM, "populate failure: errno %d", errno);
		os_fault_clear();
		CHECK(!pcpu_pool.ready, "a failed pcpu_init marked the allocator ready");
	}
	/* Sizes that are not a multiple of 4 are rounded up, not refused. */
	valid.reserved_size = 4098;
	valid.dyn_size = 20 * 1024 + 2;
	REQUIRE(pcpu_init(&valid) == 0, "valid pcpu_init after failures: %s", strerror(errno));
	CHECK(kit_stats().reserved_size == 4100, "reserved_size 4098 rounded to %zu",
	      (size_t)kit_stats().reserved_size);
	CHECK(pcpu_nr_cpus() == 4, "nr_cpus %u", pcpu_nr_cpus());
	CHECK(add_obj(100, 4, 0) && add_obj(kit_stats().unit_size, 4, 0), "allocations after failed inits");
	CHECK(all_intact() && pcpu_verify() == 0 && kit_stats().nr_cur_alloc == 2, "usable, counters clean");
	return 0;
}

/* Malformed or out-of-range PCPU_* variables: one line each naming the
 * variable and the value, then the default. */
static int child_env(long arg)
{
	(void)arg;
	setenv("PCPU_ADDR_SPACE", "foo", 1);
	setenv("PCPU_EMPTY_POP_LOW", "-3", 1);
	setenv("PCPU_EMPTY_POP_HIGH", "12x", 1);
	setenv("PCPU_RECLAIM_FRAC", "99999", 1);
	REQUIRE(pcpu_init(NULL) == 0, "init with malformed variables");
	CHECK(pcpu_pool.max_chunks >= 256, "default address space kept: %d chunks", pcpu_pool.max_chunks);
	CHECK(pcpu_pool.empty_pop_low >= 2 && pcpu_pool.reclaim_frac == 4, "defaults kept");
	return add_obj(16, 4, 0) && pcpu_verify() == 0 ? 0 : 2;
}

/* ---- 5. ENOMEM ------------------------------------------------------------- */

static int child_populate_fault(long arg)
{
	(void)arg;
	init4(PCPU_CFG_NO_BALANCER, 0);
	while (kit_stats().nr_chunks < 2)
		REQUIRE(add_obj(16 + rng_below(1024), 4, 0), "filling");
	/* One populate operation covers every unit, so the (skip + 1)-th one
	 * fails whole: `skip` populating allocations succeed first, and the
	 * failing one has nothing to undo. */
	for (unsigned long skip = 0; skip < 4; skip += 2) {
		unsigned long pop0 = os_call_count(OS_OP_POPULATE), f0 = os_fault_count();
		bool failed = false;

		os_fault_nth(OS_OP_POPULATE, skip, 1);
		for (int i = 0; i < 100000 && !failed; i++) {
			unsigned long dep = os_call_count(OS_OP_DEPOPULATE);
			struct pcpu_stats s0 = kit_stats();

			errno = 0;
			if (add_obj(256, 4, PCPU_NOWARN)) {
				REQUIRE(os_call_count(OS_OP_POPULATE) - pop0 <= skip,
					"skip %lu: more than %lu populate calls succeeded while armed", skip, skip);
				continue;
			}
			failed = true;
			struct pcpu_stats s1 = kit_stats();
			CHECK(errno == ENOMEM, "skip %lu: errno %d", skip, errno);
			CHECK(os_fault_count() == f0 + 1 && os_call_count(OS_OP_POPULATE) == pop0 + skip + 1,
			      "skip %lu: one injected fault after %lu populate calls", skip, skip);
			CHECK(os_call_count(OS_OP_DEPOPULATE) == dep,
			      "skip %lu: the failed population left nothing to undo", skip);
			CHECK(s1.nr_cur_alloc == s0.nr_cur_alloc && s1.nr_alloc == s0.nr_alloc &&
			      s1.nr_populated_pages == s0.nr_populated_pages &&
			      s1.nr_alloc_fail == s0.nr_alloc_fail + 1, "skip %lu: counters after failure", skip);
		}
		REQUIRE(failed, "skip %lu: no allocation needed population", skip);
		CHECK(pcpu_verify() == 0 && all_intact(), "skip %lu: consistent after ENOMEM", skip);
		os_fault_clear();
		void *h = pcpu_alloc(256, 4);
		CHECK(h && kit_zeroed(h, 256, 4), "skip %lu: allocation succeeds after os_fault_clear", skip);
		CHECK(kit_stats().nr_cur_alloc == (uint64_t)nobj + 1, "live count");
		pcpu_free(h);
	}
	CHECK(pcpu_verify() == 0 && all_intact(), "final");
	return 0;
}

/* arg 0: report the chunk stride; else run with addr_space = 4 * arg. */
static int child_addr_space(long arg)
{
	init4(PCPU_CFG_NO_BALANCER, (size_t)arg * 4);
	if (!arg) {
		dprintf(kit_report_fd, "STRIDE %zu\n", (size_t)1 << pcpu_pool.stride_shift);
		return 0;
	}
	const size_t unit = kit_stats().unit_size;
	int nbig = 0, nsmall = 0;

	REQUIRE(pcpu_pool.max_chunks == 4, "max_chunks %d", pcpu_pool.max_chunks);
	while (nbig < 8 && (errno = 0, add_obj(unit, 4, 0)))
		nbig++;
	CHECK(nbig == 3 && errno == ENOMEM, "whole-unit allocations: %d, errno %d", nbig, errno);
	CHECK(kit_stats().nr_chunks == 3, "three dynamic chunks at the limit");
	while (nsmall < 100000 && (errno = 0, add_obj(64, 4, PCPU_NOWARN)))
		nsmall++;
	CHECK(nsmall < 100000 && errno == ENOMEM, "small allocations stop with ENOMEM (%d)", nsmall);
	CHECK(pcpu_verify() == 0 && all_intact(), "consistent at the limit");
	uint64_t created = kit_stats().nr_chunks_created;
	REQUIRE(nbig >= 1, "need a whole-unit object");
	CHECK(kit_drop(objs, &nobj, 0), "the first whole-unit object intact");
	void *a = add_obj(64, 4, 0), *b = add_obj(unit / 2, 4, 0);
	CHECK(a && b, "freeing a chunk's object lets allocation continue");
	CHECK(kit_stats().nr_chunks_created == created, "no chunk created beyond the limit");
	CHECK(pcpu_verify() == 0 && all_intact(), "consistent after freeing");
	return 0;
}

static int child_random_faults(long arg)
{
	unsigned long fails = 0, allocs = 0;

	init4(PCPU_CFG_NO_BALANCER, 0);
	const size_t unit = kit_stats().unit_size;

	os_fault_random(OS_OP_POPULATE, 0.2, (unsigned long)arg);
	os_fault_random(OS_OP_DEPOPULATE, 0.1, (unsigned long)arg + 1);
	for (int step = 0; step < 6000; step++) {
		if (nobj < MAXOBJ && (nobj == 0 || rng_below(100) < 55)) {
			unsigned r = (unsigned)rng_below(100);
			size_t size = r < 70 ? 1 + rng_below(64) : r < 97 ? 1 + rng_below(4096) :
				      1 + rng_below(unit / 2);
			size_t align = (size_t)4 << rng_below(6);
			unsigned flags = PCPU_NOWARN | (rng_below(8) == 0 ? PCPU_ATOMIC : 0);

			errno = 0;
			if (add_obj(size, align, flags))
				allocs++;
			else if (++fails, errno != ENOMEM)
				REQUIRE(0, "step %d: failure with errno %d", step, errno);
		} else {
			int k = (int)rng_below((uint64_t)nobj);

			REQUIRE(kit_drop(objs, &nobj, k), "step %d: object %d overwritten", step, k);
		}
		if (step % 500 == 499)
			pcpu_balance();
		if (step % 50 == 0)
			REQUIRE(pcpu_verify() == 0, "step %d: verify", step);
	}
	CHECK(all_intact() && pcpu_verify() == 0, "final state");
	CHECK(kit_stats().nr_cur_alloc == (uint64_t)nobj, "live count");
	CHECK(fails > 0 && os_fault_count() > 0, "faults had an effect");
	printf("random faults (seed %ld): %lu injected, %lu allocations failed, %lu succeeded\n", arg,
	       os_fault_count(), fails, allocs);
	os_fault_clear();
	while (nobj)
		pcpu_free(objs[--nobj].h);
	CHECK(pcpu_balance() == 0 && pcpu_verify() == 0 && kit_stats().nr_cur_alloc == 0, "drained");
	return 0;
}

/* ---- 6. PCPU_ATOMIC and PCPU_RESERVED ----------------------------------------- */

static void os_counts(unsigned long c[OS_NR_OPS])
{
	for (int op = 0; op < OS_NR_OPS; op++)
		c[op] = os_call_count((enum os_op)op);
}

static int child_atomic(long arg)
{
	unsigned long c0[OS_NR_OPS], c1[OS_NR_OPS];
	bool failed = false;

	(void)arg;
	init4(PCPU_CFG_NO_BALANCER, 0);
	void *h = add_obj(64, 4, PCPU_ATOMIC);
	CHECK(h != NULL, "atomic allocation from the first chunk");
	for (int i = 0; i < 100000 && !failed; i++) {
		os_counts(c0);
		errno = 0;
		h = add_obj(256, 4, PCPU_ATOMIC | PCPU_NOWARN);
		os_counts(c1);
		REQUIRE(!memcmp(c0, c1, sizeof(c0)), "atomic allocation %d made an OS call", i);
		if (!h) {
			failed = true;
			CHECK(errno == ENOMEM, "atomic failure errno %d", errno);
		}
	}
	REQUIRE(failed, "atomic allocations never ran out");
	struct pcpu_stats st = kit_stats();
	CHECK(st.nr_atomic_fail == 1 && st.nr_chunks == 0, "one atomic failure, no chunk created");
	os_counts(c0);
	errno = 0;
	CHECK(!pcpu_alloc_flags(st.unit_size, 4, PCPU_ATOMIC | PCPU_NOWARN) && errno == ENOMEM,
	      "whole-unit atomic allocation fails");
	os_counts(c1);
	CHECK(!memcmp(c0, c1, sizeof(c0)) && kit_stats().nr_chunks == 0, "...without an OS call or a chunk");
	CHECK(pcpu_verify() == 0 && all_intact(), "consistent after atomic failures");

	CHECK(pcpu_balance() == 0, "balance");
	CHECK(add_obj(256, 4, PCPU_ATOMIC) != NULL, "atomic allocation after pcpu_balance");
	CHECK(add_obj(4096, 4, 0) != NULL, "normal allocation");
	CHECK(pcpu_verify() == 0 && all_intact(), "consistent");
	return 0;
}

/*
 * The pool for atomic allocations: after pcpu_balance() there are at least
 * empty_pop_high empty populated pages, so that many page-sized atomic
 * allocations succeed.  The first chunk keeps room here (two empty pages,
 * contig hint >= a page), so the balancer must not pick it to populate.
 */
static int child_atomic_pool(long arg)
{
	(void)arg;
	init4(PCPU_CFG_NO_BALANCER, 0);
	const size_t page = kit_stats().page_size;

	while ((long)kit_stats().nr_empty_pop_pages > pcpu_pool.empty_pop_low)
		REQUIRE(add_obj(page, page, 0), "page allocation");
	REQUIRE(pcpu_balance() == 0, "balance");
	struct pcpu_stats st = kit_stats();
	CHECK((long)st.nr_empty_pop_pages >= pcpu_pool.empty_pop_high,
	      "after pcpu_balance: %llu empty populated pages, high mark %d (populated pages %llu)",
	      (unsigned long long)st.nr_empty_pop_pages, pcpu_pool.empty_pop_high,
	      (unsigned long long)st.nr_populated_pages);
	int n = 0;
	while (n < pcpu_pool.empty_pop_high && add_obj(page, page, PCPU_ATOMIC | PCPU_NOWARN))
		n++;
	CHECK(n == pcpu_pool.empty_pop_high, "%d page-sized atomic allocations after balance, want %d", n,
	      pcpu_pool.empty_pop_high);
	CHECK(pcpu_verify() == 0 && all_intact(), "consistent");
	return 0;
}

/* Default configuration: an atomic failure wakes the balancer thread. */
static int child_atomic_wake(long arg)
{
	(void)arg;
	init4(0, 0);
	struct pcpu_stats st = kit_stats();

	REQUIRE(st.nr_balance_passes == 0, "no pass before any request");
	errno = 0;
	CHECK(!pcpu_alloc_flags(st.unit_size, 4, PCPU_ATOMIC | PCPU_NOWARN) && errno == ENOMEM,
	      "whole-unit atomic allocation with nothing populated");
	for (int i = 0; i < 10000 && kit_stats().nr_balance_passes == 0; i++)
		usleep(1000);
	st = kit_stats();
	CHECK(st.nr_balance_passes >= 1 && st.nr_balance_populated >= 1,
	      "balancer woken by the atomic failure: %llu passes, %llu pages",
	      (unsigned long long)st.nr_balance_passes, (unsigned long long)st.nr_balance_populated);
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

static int child_reserved(long arg)
{
	(void)arg;
	init4(PCPU_CFG_NO_BALANCER, 0);
	struct pcpu_stats s0 = kit_stats();
	size_t total = 0;
	int off;

	REQUIRE(pcpu_pool.reserved_chunk && s0.reserved_size > 0, "a reserved area");
	for (;;) {
		errno = 0;
		void *h = add_obj(16, 4, PCPU_RESERVED | PCPU_NOWARN);
		if (!h) {
			CHECK(errno == ENOMEM, "reserved exhaustion errno %d", errno);
			break;
		}
		REQUIRE(pool_handle_chunk(h, &off) == pcpu_pool.reserved_chunk && pcpu_alloc_size(h) == 16,
			"not a 16 B object in the reserved area");
		total += 16;
		REQUIRE(total <= s0.reserved_size, "more than reserved_size served");
	}
	CHECK(total + 16 > s0.reserved_size, "served %zu of %zu reserved bytes", total, s0.reserved_size);
	CHECK(kit_stats().nr_chunks == s0.nr_chunks, "reserved allocations made chunks");
	int nres = nobj;
	void *n = add_obj(64, 64, 0);
	CHECK(n && pool_handle_chunk(n, &off) != pcpu_pool.reserved_chunk, "normal allocation still works");
	for (int i = 0; i < nres; i += 2)
		pcpu_free(objs[i].h), objs[i].size = 0;
	CHECK(pcpu_verify() == 0 && all_intact(), "after freeing half the reserved objects");
	void *r = pcpu_alloc_flags(16, 4, PCPU_RESERVED | PCPU_ATOMIC);  /* fits a 16 B hole */
	CHECK(r && kit_zeroed(r, 16, 4) && pool_handle_chunk(r, &off) == pcpu_pool.reserved_chunk,
	      "reserved + atomic after frees");
	pcpu_free(r);
	for (int i = 1; i < nres; i += 2)
		pcpu_free(objs[i].h), objs[i].size = 0;
	CHECK(pcpu_verify() == 0 && all_intact(), "after freeing all reserved objects");
	CHECK(kit_stats().nr_cur_alloc == 1, "one live object left");
	return 0;
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	size_t stride = 0;

	g_seed = test_seed(argc, argv);
	run(child_einval, 0, 0, "EINVAL rows");
	const char *err = run(child_ratelimit, 0, 0, "rate limit")->err;
	CHECK(count_lines(err) >= 2 && count_lines(err) <= 16 && strstr(err, "suppress"),
	      "200 invalid calls: want a burst of lines, a suppression notice and the ENOMEM line, "
	      "got %d: %s", count_lines(err), err);
	/* a new chunk's units are mapped read-write when it is created: with
	 * every populate operation failing, that is where it fails */
	CHECK(strstr(err, "invalid request") && (strstr(err, "failed: cannot populate memory") ||
						 strstr(err, "failed: out of memory")),
	      "the ENOMEM after 200 invalid requests is reported: %s", err);
	CHECK(strstr(err, "align 12"), "messages show the requested alignment: %s", err);
	test_invalid_pointers();
	run(child_init, 0, 0, "pcpu_init EBUSY");
	err = run(child_init, 1, 0, "pcpu_init EINVAL")->err;
	CHECK(strstr(err, "pcpu_init: nr_cpus = 100000: above") &&
	      strstr(err, "pcpu_init: atom_size = 12288: not a power of two") &&
	      strstr(err, "pcpu_init: reserved_size + dyn_size = 2147483648:"),
	      "an impossible configuration names the field and why: %s", err);
	run(child_init, 2, 0, "pcpu_init ENOMEM");
	err = run(child_env, 0, 0, "malformed environment")->err;
	CHECK(strstr(err, "PCPU_ADDR_SPACE=foo: not a size") && strstr(err, "PCPU_EMPTY_POP_LOW=-3:") &&
	      strstr(err, "PCPU_EMPTY_POP_HIGH=12x:") && strstr(err, "PCPU_RECLAIM_FRAC=99999: outside") &&
	      count_lines(err) == 4, "one line per malformed variable: %s", err);
	run(child_populate_fault, 0, 0, "populate faults");
	REQUIRE(sscanf(run(child_addr_space, 0, 0, "stride")->out, "STRIDE %zu", &stride) == 1, "stride");
	run(child_addr_space, (long)stride, 0, "address space exhaustion");
	run(child_random_faults, (long)(g_seed % 1000003), 0, "random faults");
	run(child_atomic, 0, 0, "PCPU_ATOMIC");
	run(child_atomic_pool, 0, 0, "PCPU_ATOMIC pool after pcpu_balance");
	run(child_atomic_wake, 0, 0, "PCPU_ATOMIC wakes the balancer");
	run(child_reserved, 0, 0, "PCPU_RESERVED");
	TEST_DONE();
}
