/*
 * test_limits.c - the allocator at its limits, and misuse test_errors does
 * not cover.  Every scenario runs in a forked child.
 *
 *   addr_space   pcpu_config.addr_space of 1, 2, 3 and 5 chunk strides:
 *                plain allocations fail with ENOMEM exactly when every
 *                chunk slot is in use, freeing lets allocation continue
 *                (also when the free isolates its chunk for reclaim),
 *                freeing everything gives every slot back (twice round)
 *   env          PCPU_ADDR_SPACE with a k suffix (re-executes this program)
 *   rlimit       RLIMIT_AS lowered before initialisation, from no headroom
 *                to 1 GiB: init fails with ENOMEM or shrinks its
 *                reservation and works; allocations fail only with ENOMEM;
 *                a freed object's room is allocated again; never a crash
 *                (skipped under sanitizers, which need the address space)
 *   many CPUs    PCPU_MAX_CPUS units of one page: patterns in every unit
 *   misuse       a CPU's copy passed as a handle to pcpu_free and
 *                pcpu_alloc_size; two threads freeing the same handle at
 *                once; a stale handle into a chunk re-created at the same
 *                place; a parent's post-fork handle freed in the child.
 *                Each aborts with "invalid pointer" and the pointer, and a
 *                SIGABRT handler finds the allocator unchanged (pcpu_verify,
 *                counters, a live object's pattern).
 *
 * Usage: test_limits [seed]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pool_init.h"
#include "pool_verify.h"
#include "kit.h"
#include "percpu.h"

#define UNIT (64u << 10)
#define MAXOBJ 4096

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(memory_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

static uint64_t g_seed;

/* ---- objects (kit.h) ----------------------------------------------------- */

static struct kit_obj objs[MAXOBJ];
static int nobj;

static bool all_intact(void) { return kit_all_intact(objs, nobj); }

/* Allocate and keep; NULL with errno on failure (which must be ENOMEM). */
static struct kit_obj *add(size_t size, size_t align)
{
	static uint32_t tag;
	void *h;

	errno = 0;
	h = pcpu_alloc_flags(size, align, PCPU_NOWARN);
	if (!h) {
		CHECK(errno == ENOMEM, "alloc(%zu, %zu): errno %d", size, align, errno);
		errno = ENOMEM;
		return NULL;
	}
	return kit_keep(objs, &nobj, MAXOBJ, h, (size + 3) & ~(size_t)3, ++tag);
}

static void drop(int k)
{
	void *h = objs[k].h;

	CHECK(kit_drop(objs, &nobj, k), "object %p overwritten", h);
}

static size_t chunk_stride(unsigned nr_cpus)
{
	size_t stride = 4096;

	while (stride < (size_t)nr_cpus * UNIT)
		stride *= 2;
	return stride;
}

/* ---- 1. a small address space ------------------------------------------------ */

/* Fill until a plain allocation fails; it must fail because every chunk
 * slot is taken.  Returns the number of objects allocated. */
static int fill_up(void)
{
	int n = 0;

	for (;;) {
		unsigned r = (unsigned)rng_below(100);
		size_t size = r < 50 ? 4 + rng_below(200) : r < 90 ? 256 + rng_below(4000) :
			      UNIT / 4 + rng_below(UNIT - UNIT / 4);
		size_t align = (size_t)4 << rng_below(r < 90 ? 4 : 11);

		if (!add(size, align))
			break;
		n++;
	}
	CHECK(kit_stats().nr_chunks + 1 == (unsigned)pcpu_pool.max_chunks,
	      "ENOMEM with %u of %d chunk slots in use", kit_stats().nr_chunks + 1, pcpu_pool.max_chunks);
	return n;
}

static int child_addr_space(long k)
{
	struct pcpu_config cfg = { .nr_cpus = 2, .min_unit_size = UNIT, .flags = PCPU_CFG_NO_BALANCER,
				   .addr_space = (size_t)k * chunk_stride(2) };

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
	REQUIRE(pcpu_pool.max_chunks == k, "addr_space of %ld strides: %d chunk slots", k, pcpu_pool.max_chunks);
	if (k == 2) {
		/* The one dynamic chunk full (24 + 40 KiB); freeing the 40 KiB
		 * leaves 10 of 16 pages empty, which isolates the chunk for
		 * reclaim: its room must still serve the next allocation. */
		REQUIRE(add(24 << 10, 4) && add(40 << 10, 4), "filling the dynamic chunk");
		drop(nobj - 1);
		CHECK(add(40 << 10, 4) != NULL, "re-allocating 40 KiB after a free at the limit");
		while (nobj)
			drop(nobj - 1);
		CHECK(pcpu_balance() == 0 && pcpu_verify() == 0, "balance");
	}
	for (int round = 0; round < 2; round++) {
		int n = fill_up();

		CHECK(pcpu_verify() == 0 && all_intact(), "k=%ld round %d: consistent at the limit", k, round);
		/* Freeing one object lets an allocation of its size succeed. */
		for (int i = 0; i < 20 && nobj; i++) {
			int j = (int)rng_below((uint64_t)nobj);
			size_t size = objs[j].size;

			drop(j);
			CHECK(add(size, 4) != NULL, "k=%ld: re-allocating %zu B after a free", k, size);
		}
		while (nobj)
			drop(nobj - 1);
		CHECK(pcpu_balance() == 0 && pcpu_verify() == 0, "balance");
		/* Every slot is back: k - 1 whole units fit, then ENOMEM. */
		int units = 0;

		while (units < k + 2 && add(UNIT, 4096))
			units++;
		CHECK(units == k - 1 && errno == ENOMEM, "k=%ld: %d whole units after freeing", k, units);
		while (nobj)
			drop(nobj - 1);
		CHECK(pcpu_balance() == 0 && pcpu_verify() == 0 && kit_stats().nr_cur_alloc == 0, "drained");
		printf("addr_space %ld strides, round %d: %d objects at the limit\n", k, round, n);
	}
	return 0;
}

/* PCPU_ADDR_SPACE=<3 strides>k, read by a re-executed copy. */
static int env_child(void)
{
	struct pcpu_config cfg = { .nr_cpus = 2, .min_unit_size = UNIT, .flags = PCPU_CFG_NO_BALANCER };
	int units = 0;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	CHECK(pcpu_pool.max_chunks == 3, "PCPU_ADDR_SPACE=%s: %d chunk slots", getenv("PCPU_ADDR_SPACE"),
	      pcpu_pool.max_chunks);
	while (units < 5 && add(UNIT, 4))
		units++;
	CHECK(units == 2 && errno == ENOMEM, "%d whole units", units);
	CHECK(pcpu_verify() == 0 && all_intact(), "verify");
	return check_failed ? 1 : 0;
}

static int child_env(long arg)
{
	char v[32], seed[32];

	(void)arg;
	snprintf(v, sizeof(v), "%zuk", 3 * chunk_stride(2) >> 10);
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)g_seed);
	setenv("PCPU_ADDR_SPACE", v, 1);
	return kit_exec_self(seed, "--env-child", NULL);
}

/* ---- 2. RLIMIT_AS ---------------------------------------------------------------- */

static size_t vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t kb = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb << 10;
}

/* arg: headroom in KiB above the current address space size. */
static int child_rlimit(long headroom_kb)
{
	size_t limit = vm_size() + ((size_t)headroom_kb << 10);
	struct rlimit rl = { limit, limit };
	struct pcpu_config cfg = { .nr_cpus = 2, .min_unit_size = UNIT, .flags = PCPU_CFG_NO_BALANCER };
	int n = 0, fails = 0;

	REQUIRE(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit");
	errno = 0;
	if (pcpu_init(&cfg)) {
		CHECK(errno == ENOMEM && !pcpu_pool.ready, "pcpu_init under RLIMIT_AS: errno %d", errno);
		dprintf(kit_report_fd, "init ENOMEM\n");
		return 0;
	}
	CHECK(pcpu_pool.mapping_size <= limit, "reserved %zu bytes under a %zu-byte limit", pcpu_pool.mapping_size,
	      limit);
	while (n < MAXOBJ - 32) {
		size_t size = rng_below(4) ? 4 + rng_below(2000) : UNIT;

		if (!add(size, 4)) {
			if (++fails > 20)
				break;
			continue;
		}
		n++;
	}
	CHECK(pcpu_verify() == 0 && all_intact(), "consistent under RLIMIT_AS");
	/* Room freed in a chunk is allocated again without new memory. */
	for (int i = 0; i < 20 && nobj; i++) {
		int j = (int)rng_below((uint64_t)nobj);
		size_t size = objs[j].size;

		drop(j);
		CHECK(add(size, 4) != NULL, "re-allocating %zu B after a free under RLIMIT_AS", size);
	}
	CHECK(pcpu_verify() == 0 && all_intact(), "consistent after frees");
	dprintf(kit_report_fd, "init ok: %d chunk slots, %d allocations, %d ENOMEM\n", pcpu_pool.max_chunks, n,
		fails);
	return 0;
}

/* ---- 3. PCPU_MAX_CPUS units --------------------------------------------------------- */

static int child_max_cpus(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = PCPU_MAX_CPUS, .reserved_size = 4, .dyn_size = 4092,
				   .min_unit_size = 4096, .flags = PCPU_CFG_NO_BALANCER };
	unsigned cpu;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init with %d CPU slots: %s", PCPU_MAX_CPUS, strerror(errno));
	CHECK(pcpu_nr_cpus() == PCPU_MAX_CPUS && pcpu_current_cpu() < PCPU_MAX_CPUS, "CPU slots");
	for (int i = 0; i < 12; i++)
		CHECK(add(4 << (i % 6), 4 << (i % 6)) != NULL, "allocation %d", i);
	CHECK(add(kit_stats().unit_size, 4096) != NULL, "a whole unit in a new chunk");
	CHECK(all_intact() && pcpu_verify() == 0, "patterns in every unit");
	long *c = pcpu_alloc(sizeof(long), sizeof(long));
	REQUIRE(c, "counter");
	pcpu_for_each_cpu(cpu)
		*per_cpu_ptr(c, cpu) = cpu;
	CHECK(pcpu_sum(c) == (long)PCPU_MAX_CPUS * (PCPU_MAX_CPUS - 1) / 2, "sum over every unit");
	pcpu_free(c);
	while (nobj)
		drop(nobj - 1);
	CHECK(pcpu_balance() == 0 && pcpu_verify() == 0, "drained");
	return 0;
}

/* ---- 4. misuse ------------------------------------------------------------------------ */

enum misuse { COPY_FREE, COPY_FREE_CPU1, COPY_SIZE, DOUBLE_FREE_RACE, RECREATED_CHUNK,
	      AFTER_FORK, NR_MISUSE };
static const char *const misuse_name[NR_MISUSE] = {
	"free of CPU 0's copy", "free of CPU 1's copy", "alloc_size of a copy",
	"two threads freeing one handle", "stale handle into a re-created chunk",
	"free in a child of a handle the parent allocated after fork",
};

static struct kit_obj *g_live;         /* must survive intact */
static uint64_t g_expect_cur;          /* nr_cur_alloc the handler expects */
static void *g_bad;
static pthread_barrier_t g_barrier;

static void on_abort(int sig)
{
	(void)sig;
	dprintf(kit_report_fd, "HANDLER verify=%d cur=%d intact=%d\n", pcpu_verify(),
		kit_stats().nr_cur_alloc == g_expect_cur, kit_intact(g_live));
	_exit(42);
}

static void *racing_free(void *arg)
{
	pthread_barrier_wait(&g_barrier);
	pcpu_free(arg);
	return NULL;
}

static int child_misuse(long kind)
{
	struct pcpu_config cfg = { .nr_cpus = 2, .min_unit_size = UNIT, .flags = PCPU_CFG_NO_BALANCER };
	struct sigaction sa = { .sa_handler = on_abort };
	pthread_t t;
	int off, status;
	bool killed = false;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	g_live = add(48, 16);
	struct kit_obj *a = add(64, 8);
	REQUIRE(g_live && a, "allocations");
	g_expect_cur = kit_stats().nr_cur_alloc;
	switch (kind) {
	case COPY_FREE: case COPY_FREE_CPU1: case COPY_SIZE:
		g_bad = pcpu_ptr(a->h, kind == COPY_FREE_CPU1);
		break;
	case DOUBLE_FREE_RACE:
		g_bad = a->h;
		g_expect_cur--;                  /* one of the two frees succeeds */
		break;
	case RECREATED_CHUNK: {
		void *x = pcpu_alloc(UNIT, 4), *y = pcpu_alloc(UNIT, 4);

		REQUIRE(x && y, "two whole-unit allocations");
		struct pcpu_chunk *cx = pool_handle_chunk(x, &off), *cy = pool_handle_chunk(y, &off);

		REQUIRE(cx && cy && cx != cy, "two chunks");
		int ix = cx->index, iy = cy->index;

		pcpu_free(x);
		pcpu_free(y);
		REQUIRE(pcpu_balance() == 0 && kit_stats().nr_chunks == 1, "one chunk destroyed");
		int idx = pcpu_pool.chunk_table[ix] ? iy : ix;

		g_bad = (char *)(idx == ix ? x : y) + 1024;
		/* Allocate until the destroyed chunk's place is used again. */
		for (int i = 0; i < 8 && !pcpu_pool.chunk_table[idx]; i++)
			REQUIRE(add(UNIT / 2, 4), "re-creating chunks");
		REQUIRE(pool_handle_chunk(g_bad, &off), "the stale handle's chunk exists again");
		g_expect_cur = kit_stats().nr_cur_alloc;
		break;
	}
	case AFTER_FORK: {                       /* the parent allocates after fork... */
		int fds[2];

		REQUIRE(pipe(fds) == 0, "pipe");
		pid_t pid = fork();

		REQUIRE(pid >= 0, "fork");
		if (pid) {
			void *h = pcpu_alloc(32, 4);

			REQUIRE(h && write(fds[1], &h, sizeof(h)) == sizeof(h), "alloc, send");
			REQUIRE(child_wait(pid, &status, CHILD_WAIT_STEP, &killed) == pid, "waitpid");
			REQUIRE(!killed, "the child that frees the handle hung: killed");
			_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		}
		/* ...and the child, where that handle was never allocated, frees it. */
		REQUIRE(read(fds[0], &g_bad, sizeof(g_bad)) == sizeof(g_bad), "receive");
		break;
	}
	}
	REQUIRE(kit_intact(g_live), "live object before the bad call");
	dprintf(kit_report_fd, "PTR %p\n", g_bad);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGABRT, &sa, NULL);
	if (kind == COPY_SIZE) {
		(void)pcpu_alloc_size(g_bad);
	} else if (kind == DOUBLE_FREE_RACE) {
		pthread_barrier_init(&g_barrier, NULL, 2);
		REQUIRE(pthread_create(&t, NULL, racing_free, g_bad) == 0, "thread");
		pthread_barrier_wait(&g_barrier);
		pcpu_free(g_bad);
		pthread_join(t, NULL);
	} else {
		pcpu_free(g_bad);
	}
	dprintf(kit_report_fd, "RETURNED\n");
	return 3;
}

/* ---- main ------------------------------------------------------------------------------- */

/* Run fn(arg) in a forked child (a hang of 300 s is a failure) that must exit with code. */
static struct kit_child *run(int (*fn)(long), long arg, int code, const char *what)
{
	struct kit_child *c = kit_fork(fn, arg, g_seed + (uint64_t)arg, 300);

	KIT_EXPECT(c, KIT_EXIT(code), "%s", what);
	return c;
}

int main(int argc, char **argv)
{
	static const long headroom_kb[] = { 0, 256, 1024, 4096, 16384, 65536, 1 << 20 };

	g_seed = test_seed(argc, argv);
	if (argc > 2 && !strcmp(argv[2], "--env-child"))
		return env_child();

	for (long k = 1; k <= 5; k += k < 3 ? 1 : 2)
		run(child_addr_space, k, 0, "small addr_space");
	run(child_env, 0, 0, "PCPU_ADDR_SPACE");
	for (size_t i = 0; i < sizeof(headroom_kb) / sizeof(headroom_kb[0]) && !UNDER_SANITIZER; i++) {
		struct kit_child *r = run(child_rlimit, headroom_kb[i], 0, "RLIMIT_AS");

		printf("RLIMIT_AS with %ld KiB of headroom: %s", headroom_kb[i], r->out);
	}
	if (UNDER_SANITIZER)
		printf("RLIMIT_AS: skipped under a sanitizer (it needs the address space)\n");
	run(child_max_cpus, 0, 0, "PCPU_MAX_CPUS units");
	for (int kind = 0; kind < NR_MISUSE; kind++) {
		struct kit_child *r = run(child_misuse, kind, 42, misuse_name[kind]);
		const char *ptr = kit_report_word(r, "PTR ");

		CHECK(strstr(r->out, "HANDLER verify=0 cur=1 intact=1"),
		      "%s: allocator changed before the abort: %s", misuse_name[kind], r->out);
		CHECK(ptr && strstr(r->err, "invalid pointer") && strstr(r->err, ptr),
		      "%s: stderr lacks \"invalid pointer\" and %s: %s", misuse_name[kind],
		      ptr ? ptr : "the pointer", r->err);
		printf("misuse, %s: %s", misuse_name[kind], r->err);
	}
	TEST_DONE();
}
