/*
 * test_reclaim.c - reclaim by decay and what depends on it: the decay
 * setting (pcpu_config.decay_ms, PCPU_DECAY_MS), passes that give back
 * only what stayed unused for the decay and only beyond the high mark,
 * populating only below the low mark, the thread's timer, frees that no
 * longer start reclaim, every depopulation mode (PCPU_DEPOPULATE), and
 * memory handed out unzeroed only where it is known to read zero: stale
 * bytes are looked for in every unit across depopulation, decay, failed
 * give-backs and re-created chunks.
 *
 * Decay is tested without clocks: a pass run with PCPU_CFG_NO_BALANCER
 * (balance_pass, balance.h) sees pages as old as the test makes them, by
 * moving their "empty since" times back.  Each scenario runs in its own
 * forked child (one configuration per process).
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "balance.h"
#include "bitops.h"
#include "os_fault.h"
#include "pool_init.h"
#include "kit.h"
#include "pool_kit.h"
#include "percpu.h"

#define YEAR_MS (366LL * 24 * 3600 * 1000)

/* The reclaim rules alone: no per-CPU caches holding freed objects back
 * from their chunks (test_cache covers reclaim with them). */
static void init_with(unsigned flags, int decay_ms)
{
	struct pcpu_config cfg = { .nr_cpus = 4, .flags = flags | PCPU_CFG_NO_CACHE,
				   .decay_ms = decay_ms };

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
}

/* Make pages [from, nr_pages) of every dynamic chunk look empty for `ms` longer. */
static void age_pages(int from, int64_t ms)
{
	pcpu_lock(&pcpu_pool.lock);
	for (int i = 1; i < pcpu_pool.chunk_hiwater; i++) {
		struct pcpu_chunk *ch = pcpu_pool.chunk_table[i];

		for (int p = from; ch && p < ch->map->nr_pages; p++)
			ch->empty_since[p] -= ms;
	}
	pcpu_unlock(&pcpu_pool.lock);
}

/* Allocations of `size` bytes until `chunks` dynamic chunks exist; every
 * byte of every unit written 0xff.  Returns how many, handles in h. */
static int fill_chunks(void **h, int max, size_t size, unsigned chunks)
{
	int n = 0;

	while (n < max && kit_stats().nr_chunks < chunks) {
		REQUIRE((h[n] = pcpu_alloc(size, 4)), "alloc %d", n);
		REQUIRE(kit_zeroed(h[n], size, 4), "allocation %d not zeroed", n);
		for (unsigned cpu = 0; cpu < pcpu_nr_cpus(); cpu++)
			memset(per_cpu_ptr(h[n], cpu), 0xff, size);
		n++;
	}
	return n;
}

/* ---- the setting ------------------------------------------------------------ */

/* arg: which way the decay is given; the child reports the decay in force. */
static int child_setting(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 2 };
	struct pcpu_stats st;

	switch (arg) {
	case 0: break;                                                  /* default */
	case 1: setenv("PCPU_DECAY_MS", "0", 1); break;                 /* immediate */
	case 2: setenv("PCPU_DECAY_MS", "-1", 1); break;                /* never */
	case 3: setenv("PCPU_DECAY_MS", "250", 1); break;
	case 4: setenv("PCPU_DECAY_MS", "250", 1); cfg.decay_ms = 70; break;   /* config wins */
	case 5: setenv("PCPU_DECAY_MS", "250", 1); cfg.decay_ms = PCPU_DECAY_IMMEDIATE; break;
	case 6: cfg.decay_ms = PCPU_DECAY_NEVER; break;
	case 7: setenv("PCPU_DECAY_MS", "-7", 1); break;                /* bad: default kept */
	case 8: cfg.decay_ms = -3; break;                               /* bad: EINVAL */
	}
	errno = 0;
	if (pcpu_init(&cfg)) {
		dprintf(kit_report_fd, "init-errno %d\n", errno);
		return 0;
	}
	REQUIRE(pcpu_stats_get(&st) == 0, "stats");
	dprintf(kit_report_fd, "decay %lld\n", (long long)st.decay_ms);
	return 0;
}

static void test_setting(void)
{
	static const char *const want[] = { "1000", "0", "-1", "250", "70", "0", "-1", "1000" };

	for (long i = 0; i < 9; i++) {
		struct kit_child *c = kit_fork(child_setting, i, 0, 60);
		const char *w;

		KIT_EXPECT(c, KIT_EXIT(0), "decay setting %ld", i);
		if (i < 8) {
			w = kit_report_word(c, "decay");
			CHECK(w && strcmp(w, want[i]) == 0, "decay setting %ld: %s, want %s", i, w ? w : "none",
			      want[i]);
		} else {
			w = kit_report_word(c, "init-errno");
			CHECK(w && atoi(w) == EINVAL && strstr(c->err, "decay_ms"),
			      "decay_ms -3 refused with EINVAL and a line naming it: %s", c->err);
		}
		if (i == 7)
			CHECK(strstr(c->err, "PCPU_DECAY_MS"), "a bad PCPU_DECAY_MS is reported: %s", c->err);
	}
}

/* ---- passes with a decay ----------------------------------------------------- */

/*
 * Nothing is given back before the decay; everything beyond the high mark
 * and all free chunks but one after it; the next due time is reported; no
 * population while the pool stays at or above the low mark.
 */
static int child_decay(long arg)
{
	void **h = malloc(sizeof(void *) * 100000);
	struct pcpu_stats s0, s1;
	long pop0, pop1, empty1;
	int n;

	(void)arg;
	init_with(PCPU_CFG_NO_BALANCER, 60000);
	n = fill_chunks(h, 100000, 256, 4);
	__atomic_store_n(&pcpu_pool.balance_wanted, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < n; i++)
		pcpu_free(h[i]);
	s0 = kit_stats();
	pop0 = kit_dynamic_populated(NULL);
	REQUIRE(pop0 > pcpu_pool.unit_pages && s0.nr_chunks >= 3, "%ld pages populated in %u chunks", pop0,
		s0.nr_chunks);
	CHECK(pcpu_pool.balance_wanted == 0, "frees asked for no pass (%#x)", pcpu_pool.balance_wanted);

	long due = balance_pass(false);
	s1 = kit_stats();
	CHECK(kit_dynamic_populated(NULL) == pop0 && s1.nr_chunks == s0.nr_chunks &&
	      s1.nr_balance_depopulated == s0.nr_balance_depopulated,
	      "before the decay nothing goes back: %ld of %ld pages, %u of %u chunks",
	      kit_dynamic_populated(NULL), pop0, s1.nr_chunks, s0.nr_chunks);
	CHECK(due > 0 && due <= 60000, "the next page is due within the decay: %ld ms", due);
	CHECK(s1.nr_balance_populated == s0.nr_balance_populated, "no population above the low mark");

	age_pages(0, 61000);
	due = balance_pass(false);
	s1 = kit_stats();
	pop1 = kit_dynamic_populated(&empty1);
	printf("decay: %ld dynamic pages populated -> %ld (%ld empty); chunks %u -> %u; %llu empty "
	       "populated pages in the pool, high mark %d\n", pop0, pop1, empty1, s0.nr_chunks, s1.nr_chunks,
	       (unsigned long long)s1.nr_empty_pop_pages, pcpu_pool.empty_pop_high);
	CHECK(kit_free_chunks() == 1 && s1.nr_chunks == 1, "one free chunk kept: %d free, %u chunks",
	      kit_free_chunks(), s1.nr_chunks);
	CHECK(pop1 == 0 || (long)s1.nr_empty_pop_pages == pcpu_pool.empty_pop_high,
	      "empty pages given back down to the high mark: %llu left, %ld dynamic",
	      (unsigned long long)s1.nr_empty_pop_pages, pop1);
	CHECK(due == -1, "nothing pending after everything went back: %ld", due);
	CHECK(s1.nr_populate_calls == s0.nr_populate_calls, "no population while giving back");
	CHECK(pcpu_verify() == 0, "verify");

	/* Hysteresis: at the high mark the timer's passes neither give back
	 * nor populate; below the low mark a pass refills to the high mark. */
	s0 = kit_stats();
	age_pages(0, YEAR_MS);
	(void)balance_pass(false);
	s1 = kit_stats();
	CHECK(s1.nr_pages_populated == s0.nr_pages_populated &&
	      s1.nr_pages_depopulated == s0.nr_pages_depopulated,
	      "at the high mark a pass changes nothing");
	n = 0;
	while ((long)kit_stats().nr_empty_pop_pages >= pcpu_pool.empty_pop_low)
		REQUIRE((h[n++] = pcpu_alloc_flags(pcpu_pool.page_size, pcpu_pool.page_size, PCPU_ATOMIC)),
			"atomic page %d", n);
	(void)balance_pass(false);
	CHECK((long)kit_stats().nr_empty_pop_pages == pcpu_pool.empty_pop_high,
	      "below the low mark a pass refills to the high mark: %llu",
	      (unsigned long long)kit_stats().nr_empty_pop_pages);
	while (n)
		pcpu_free(h[--n]);
	CHECK(pcpu_verify() == 0, "verify");
	free(h);
	return 0;
}

/* Only the pages that stayed empty for the decay go back, and a chunk with
 * a page emptied recently is not destroyed. */
static int child_partial(long arg)
{
	void **h = malloc(sizeof(void *) * 100000);
	int n, half;

	(void)arg;
	init_with(PCPU_CFG_NO_BALANCER, 60000);
	n = fill_chunks(h, 100000, 1024, 3);
	for (int i = 0; i < n; i++)
		pcpu_free(h[i]);
	half = pcpu_pool.unit_pages / 2;

	unsigned long *young = calloc(BITS_TO_LONGS(pcpu_pool.chunk_hiwater * pcpu_pool.unit_pages), sizeof(long));
	pcpu_lock(&pcpu_pool.lock);
	for (int i = 1; i < pcpu_pool.chunk_hiwater; i++)
		for (int p = 0; pcpu_pool.chunk_table[i] && p < half; p++)
			if (bit_test(pcpu_pool.chunk_table[i]->map->populated, (size_t)p))
				bit_set(young, (size_t)(i * pcpu_pool.unit_pages + p));
	pcpu_unlock(&pcpu_pool.lock);
	struct pcpu_stats s0 = kit_stats();
	long empty0;
	long pop0 = kit_dynamic_populated(&empty0);

	age_pages(half, 61000);
	(void)balance_pass(false);
	struct pcpu_stats s1 = kit_stats();
	bool kept = true;
	long empty1;
	long pop1 = kit_dynamic_populated(&empty1);

	pcpu_lock(&pcpu_pool.lock);
	for (int i = 1; i < pcpu_pool.chunk_hiwater; i++)
		for (int p = 0; pcpu_pool.chunk_table[i] && p < half; p++)
			if (bit_test(young, (size_t)(i * pcpu_pool.unit_pages + p)))
				kept &= bit_test(pcpu_pool.chunk_table[i]->map->populated, (size_t)p);
	pcpu_unlock(&pcpu_pool.lock);
	printf("partial decay: %ld -> %ld dynamic pages populated\n", pop0, pop1);
	CHECK(kept, "pages emptied recently stay populated");
	CHECK(pop1 < pop0, "aged pages went back");
	CHECK(s1.nr_chunks == s0.nr_chunks, "no chunk with a recently emptied page destroyed");
	CHECK((long)s1.nr_empty_pop_pages >= pcpu_pool.empty_pop_high, "the pool kept its high mark");
	CHECK(pcpu_verify() == 0, "verify");
	free(young);
	free(h);
	return 0;
}

/* PCPU_DECAY_NEVER: passes give nothing back however old; pcpu_balance() does. */
static int child_never(long arg)
{
	void **h = malloc(sizeof(void *) * 100000);
	int n;

	(void)arg;
	init_with(PCPU_CFG_NO_BALANCER, PCPU_DECAY_NEVER);
	n = fill_chunks(h, 100000, 64, 3);
	for (int i = 0; i < n; i++)
		pcpu_free(h[i]);
	long pop0 = kit_dynamic_populated(NULL);
	unsigned chunks0 = kit_stats().nr_chunks;

	age_pages(0, YEAR_MS);
	CHECK(balance_pass(false) == -1, "nothing ever due");
	CHECK(kit_dynamic_populated(NULL) == pop0 && kit_stats().nr_chunks == chunks0, "a pass gives nothing back");
	CHECK(pcpu_balance() == 0 && pcpu_verify() == 0, "pcpu_balance");
	CHECK(kit_dynamic_populated(NULL) <= pcpu_pool.unit_pages && kit_free_chunks() <= 1,
	      "pcpu_balance gives back: %ld pages, %d free chunks", kit_dynamic_populated(NULL), kit_free_chunks());
	free(h);
	return 0;
}

/* A free starts reclaim only with an immediate decay (arg 1). */
static int child_free_wakes(long arg)
{
	void **h = malloc(sizeof(void *) * 100000);
	int n;

	init_with(PCPU_CFG_NO_BALANCER, arg ? PCPU_DECAY_IMMEDIATE : 0);
	n = fill_chunks(h, 100000, 512, 3);
	__atomic_store_n(&pcpu_pool.balance_wanted, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < n; i++)
		pcpu_free(h[i]);
	bool asked = __atomic_load_n(&pcpu_pool.balance_wanted, __ATOMIC_RELAXED) & POOL_BALANCE_FREE;

	CHECK(asked == (arg != 0), "decay %s: frees %s for a pass", arg ? "immediate" : "default",
	      asked ? "asked" : "did not ask");
	free(h);
	return 0;
}

/* The thread alone gives memory back once the decay has passed (arg 150
 * ms), and not before it (arg 60 s; the check is only that a long decay
 * is not cut short while the test runs). */
static int child_thread(long decay)
{
	void **h = malloc(sizeof(void *) * 100000);
	int n, tries = 0;

	init_with(0, (int)decay);
	n = fill_chunks(h, 100000, 128, 3);
	long pop0 = kit_dynamic_populated(NULL);
	struct pcpu_stats s0 = kit_stats();

	for (int i = 0; i < n; i++)
		pcpu_free(h[i]);
	if (decay > 10000) {
		usleep(300000);
		struct pcpu_stats s1 = kit_stats();

		CHECK(s1.nr_chunks_destroyed == s0.nr_chunks_destroyed &&
		      s1.nr_pages_depopulated == s0.nr_pages_depopulated,
		      "decay %ld ms: nothing given back 0.3 s after the frees: %llu pages, %llu chunks", decay,
		      (unsigned long long)(s1.nr_pages_depopulated - s0.nr_pages_depopulated),
		      (unsigned long long)(s1.nr_chunks_destroyed - s0.nr_chunks_destroyed));
		return 0;
	}
	/* deadline 30 s, no timing assertion */
	while ((kit_dynamic_populated(NULL) > pcpu_pool.unit_pages || kit_free_chunks() > 1) && tries++ < 3000)
		usleep(10000);
	struct pcpu_stats s1 = kit_stats();

	printf("thread, decay %ld ms: %ld -> %ld dynamic pages, %llu chunks destroyed, %llu passes\n", decay,
	       pop0, kit_dynamic_populated(NULL), (unsigned long long)(s1.nr_chunks_destroyed - s0.nr_chunks_destroyed),
	       (unsigned long long)(s1.nr_balance_passes - s0.nr_balance_passes));
	CHECK(kit_dynamic_populated(NULL) <= pcpu_pool.unit_pages && kit_free_chunks() <= 1,
	      "the balancer thread gave memory back on its own: %ld pages, %d free chunks",
	      kit_dynamic_populated(NULL), kit_free_chunks());
	CHECK(s1.nr_balance_passes > s0.nr_balance_passes && s1.balance_ns > s0.balance_ns,
	      "passes counted and timed");
	CHECK(pcpu_verify() == 0, "verify");
	free(h);
	return 0;
}

/* ---- depopulation modes and zeroing ------------------------------------------- */

static const char *const modes[] = { "dontneed", "free", "protect" };

/*
 * A random program of allocations (4 B to two pages), every byte of every
 * unit written 0xff, frees, passes with and without the decay (pages aged
 * at random), pcpu_balance, and failing give-backs; every allocation must
 * read zero in every unit, and pcpu_verify checks that memory the pool
 * believes zero is.  arg: the mode.
 */
#define PROG_OBJS 3000
static int child_stale(long mode)
{
	static void *h[PROG_OBJS];
	static size_t sz[PROG_OBJS];
	unsigned long not_zero = 0, allocs = 0;
	size_t page;

	setenv("PCPU_DEPOPULATE", modes[mode], 1);
	init_with(PCPU_CFG_NO_BALANCER, 50);
	page = pcpu_pool.page_size;
	for (int step = 0; step < 40000; step++) {
		int k = (int)rng_below(PROG_OBJS);

		if (h[k]) {
			pcpu_free(h[k]);
			h[k] = NULL;
		} else {
			sz[k] = rng_below(8) ? 4 + 4 * rng_below(64) : 4 + 4 * rng_below(page / 2);
			REQUIRE((h[k] = pcpu_alloc(sz[k], 4)), "alloc %zu", sz[k]);
			allocs++;
			not_zero += !kit_zeroed(h[k], sz[k], 4);
			for (unsigned cpu = 0; cpu < pcpu_nr_cpus(); cpu++)
				memset(per_cpu_ptr(h[k], cpu), 0xff, sz[k]);
		}
		if (step % 997 == 0) {
			bool faults = rng_below(3) == 0;

			if (faults)
				os_fault_random(OS_OP_DEPOPULATE, 0.5, rng_next());
			if (rng_below(2)) {
				age_pages((int)rng_below((uint64_t)pcpu_pool.unit_pages), 1000);
				(void)balance_pass(false);
			} else {
				REQUIRE(pcpu_balance() == 0, "balance");
			}
			os_fault_clear();
			REQUIRE(pcpu_verify() == 0, "step %d: verify", step);
		}
		if (step % 10000 == 9999) {     /* everything back, chunks destroyed */
			for (int i = 0; i < PROG_OBJS; i++) {
				pcpu_free(h[i]);
				h[i] = NULL;
			}
			/* Some of these give-backs fail too (the windows above may
			 * find nothing to give back, depending on the seed). */
			os_fault_random(OS_OP_DEPOPULATE, 0.5, rng_next());
			REQUIRE(pcpu_balance() == 0, "balance after free-all");
			os_fault_clear();
			REQUIRE(pcpu_verify() == 0, "verify after free-all");
		}
	}
	struct pcpu_stats st = kit_stats();

	printf("stale bytes, %s: %lu allocations, %llu not cleared (known zero), %llu pages given back, "
	       "%llu chunks destroyed, %lu faults injected\n", modes[mode], allocs,
	       (unsigned long long)st.nr_alloc_prezeroed, (unsigned long long)st.nr_pages_depopulated,
	       (unsigned long long)st.nr_chunks_destroyed, os_fault_count());
	CHECK(not_zero == 0, "%s: %lu of %lu allocations held old bytes", modes[mode], not_zero, allocs);
	CHECK(st.nr_alloc_prezeroed > 0, "%s: some allocations skipped clearing", modes[mode]);
	CHECK(st.nr_pages_depopulated > 0 && st.nr_chunks_destroyed > 0 && os_fault_count() > 0,
	      "%s: pages given back, chunks destroyed, give-backs failed", modes[mode]);
	return 0;
}

/*
 * A chunk whose give-back fails keeps its bytes, and so does its index in
 * the region after it is destroyed: the next chunk there must clear what
 * it hands out.  The old bytes are looked at first, so the test would see
 * them if they were handed out.  arg: the mode.
 */
__attribute__((no_sanitize_address))     /* it reads freed memory on purpose */
static int child_unclean(long mode)
{
	void **h = malloc(sizeof(void *) * 100000);
	const size_t size = 1024;
	int n, idx = -1;
	bool old_bytes = false;

	setenv("PCPU_DEPOPULATE", modes[mode], 1);
	init_with(PCPU_CFG_NO_BALANCER, PCPU_DECAY_IMMEDIATE);
	n = fill_chunks(h, 100000, size, 3);
	char *probe = per_cpu_ptr(h[n - 1], 1);  /* in the last chunk made */

	for (int i = 0; i < n; i++)
		pcpu_free(h[i]);
	os_fault_nth(OS_OP_DEPOPULATE, 0, 1000000);     /* every give-back fails */
	REQUIRE(pcpu_balance() == 0, "balance");
	os_fault_clear();
	pcpu_lock(&pcpu_pool.lock);
	for (int i = 1; i < pcpu_pool.chunk_hiwater; i++)
		if (bit_test(pcpu_pool.chunk_unclean, (size_t)i))
			idx = i;
	pcpu_unlock(&pcpu_pool.lock);
	CHECK(idx > 0, "a destroyed chunk's index is marked unclean");
	/* (readable: a failed give-back changed nothing, in any mode) */
	old_bytes = *(volatile unsigned char *)probe == 0xff;
	CHECK(old_bytes, "%s: the old bytes are still there to be found", modes[mode]);

	unsigned long not_zero = 0;
	int m = 0;
	while (m < 100000 && !bit_test(pcpu_pool.chunk_used, (size_t)idx)) {
		REQUIRE((h[m] = pcpu_alloc(size, 4)), "alloc");
		not_zero += !kit_zeroed(h[m], size, 4);
		m++;
	}
	while (m < 100000 && kit_stats().nr_chunks < 4) {      /* fill the re-created chunks */
		REQUIRE((h[m] = pcpu_alloc(size, 4)), "alloc");
		not_zero += !kit_zeroed(h[m], size, 4);
		m++;
	}
	CHECK(bit_test(pcpu_pool.chunk_used, (size_t)idx), "the unclean index was used again");
	CHECK(not_zero == 0, "%s: %lu of %d allocations on unclean memory held old bytes", modes[mode],
	      not_zero, m);
	CHECK(pcpu_verify() == 0, "verify");
	free(h);
	return 0;
}

/*
 * An area that starts above its first page's zero mark but runs into the
 * next page, whose start was handed out before: it must be cleared.  Built
 * in a fresh chunk, first fit: a = [0, page/2); b = [page, page + 64)
 * (page aligned), written and freed; c = [page/2, page + 64).
 */
static int child_straddle(long arg)
{
	size_t page;

	(void)arg;
	init_with(PCPU_CFG_NO_BALANCER, PCPU_DECAY_NEVER);
	page = pcpu_pool.page_size;
	while (pcpu_alloc_flags(4, 4, PCPU_ATOMIC | PCPU_NOWARN))      /* no populated room left */
		;
	void *a = pcpu_alloc(page / 2, 4), *b = pcpu_alloc(64, page);
	int off_a = -1, off_b = -1, off_c = -1;
	struct pcpu_chunk *ch = pool_handle_chunk(a, &off_a);

	REQUIRE(a && b && kit_stats().nr_chunks == 1 && off_a == 0, "a at the start of a new chunk");
	REQUIRE(pool_handle_chunk(b, &off_b) == ch && (size_t)off_b == page, "b at the second page: %d", off_b);
	for (unsigned cpu = 0; cpu < pcpu_nr_cpus(); cpu++)
		memset(per_cpu_ptr(b, cpu), 0xff, 64);
	pcpu_free(b);
	void *c = pcpu_alloc(page / 2 + 64, 4);

	REQUIRE(c && pool_handle_chunk(c, &off_c) == ch && (size_t)off_c == page / 2, "c after a: %d", off_c);
	CHECK(kit_zeroed(c, page / 2 + 64, 4), "the part of c on the second page was cleared");
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* Where depopulated pages fault: PROT_NONE in "protect" (arg 2); read as
 * zero with MADV_DONTNEED, as zero or the old bytes with MADV_FREE.
 * Handles fault in every mode (test_errors). */
static const char *volatile touch_at;
/* (the read is deliberate: ASan would report the poisoned page first) */
__attribute__((no_sanitize_address))
static int grandchild_touch(long arg)
{
	(void)arg;
	signal(SIGSEGV, SIG_DFL);       /* not a sanitizer's handler: die of it */
	return *touch_at == 0 ? 3 : 4;
}

static int child_touch(long mode)
{
	void **h = malloc(sizeof(void *) * 100000);
	struct pcpu_chunk *ch = NULL;
	void *keep = NULL;
	int n, off, page = -1;

	setenv("PCPU_DEPOPULATE", modes[mode], 1);
	init_with(PCPU_CFG_NO_BALANCER, PCPU_DECAY_IMMEDIATE);
	n = fill_chunks(h, 100000, 256, 3);
	/* In the middle chunk: keep one object on page 0 (the chunk stays),
	 * remember one on page 2 or later, free everything else. */
	ch = pool_handle_chunk(h[n / 2], &off);
	for (int i = 0; i < n; i++) {
		if (pool_handle_chunk(h[i], &off) == ch && off >> pcpu_pool.page_shift == 0 && !keep) {
			keep = h[i];
			continue;
		}
		if (pool_handle_chunk(h[i], &off) == ch && off >> pcpu_pool.page_shift >= 2 && page < 0) {
			page = off >> pcpu_pool.page_shift;
			touch_at = per_cpu_ptr(h[i], 1);
		}
		pcpu_free(h[i]);
	}
	REQUIRE(keep && page >= 2, "objects on page 0 and a later page of one chunk");
	REQUIRE(pcpu_balance() == 0, "balance");
	pcpu_lock(&pcpu_pool.lock);
	bool depopulated = pcpu_pool.chunk_table[ch->index] == ch && !bit_test(ch->map->populated, (size_t)page);
	pcpu_unlock(&pcpu_pool.lock);
	REQUIRE(depopulated, "the page was given back");
	struct kit_child *c = kit_fork(grandchild_touch, 0, 0, 60);

	if (mode == 2)
		KIT_EXPECT(c, KIT_SIGNAL(SIGSEGV), "protect: touching a depopulated page faults");
	else if (mode == 1)     /* MADV_FREE: the old bytes until the kernel takes the page */
		CHECK(kit_exited(c, 3) || kit_exited(c, 4), "free: a depopulated page reads: %s",
		      kit_status(c));
	else
		KIT_EXPECT(c, KIT_EXIT(3), "%s: a depopulated page reads zero", modes[mode]);
	pcpu_free(keep);
	CHECK(pcpu_verify() == 0, "verify");
	free(h);
	return 0;
}

/* System calls per population: one vectored call for all units, mprotect
 * only when chunks are made or destroyed (or per range in "protect"). */
static int child_syscalls(long mode)
{
	setenv("PCPU_DEPOPULATE", modes[mode], 1);
	init_with(PCPU_CFG_NO_BALANCER, PCPU_DECAY_IMMEDIATE);
	void *first[64], *h[8];
	int nf = 0, n = 0;

	while (nf < 64 && kit_stats().nr_chunks == 0)      /* until a chunk is made */
		REQUIRE((first[nf++] = pcpu_alloc(pcpu_pool.page_size, 4)), "alloc");
	struct pcpu_stats s0 = kit_stats();

	REQUIRE(s0.nr_chunks == 1, "a dynamic chunk");
	while (n < 8 && kit_stats().nr_pages_populated == s0.nr_pages_populated)
		REQUIRE((h[n++] = pcpu_alloc(pcpu_pool.page_size, 4)), "alloc");
	struct pcpu_stats s1 = kit_stats();
	unsigned long pop = s1.nr_populate_calls - s0.nr_populate_calls;
	unsigned long prot = s1.nr_mprotect_calls - s0.nr_mprotect_calls;

	printf("%s: one population: %lu populate calls, %lu mprotect calls, %u units\n", modes[mode], pop,
	       prot, pcpu_nr_cpus());
	CHECK(pop >= 1 && pop <= pcpu_nr_cpus(), "%s: %lu populate calls for %u units", modes[mode], pop,
	      pcpu_nr_cpus());
	CHECK(mode == 2 ? prot == pcpu_nr_cpus() : prot == 0, "%s: %lu mprotect calls", modes[mode], prot);
	CHECK(s1.nr_chunks_created == s0.nr_chunks_created, "no chunk made meanwhile");
	while (n)
		pcpu_free(h[--n]);
	s0 = kit_stats();
	REQUIRE(pcpu_balance() == 0, "balance");
	s1 = kit_stats();
	CHECK(s1.nr_depopulate_calls > s0.nr_depopulate_calls &&
	      (mode == 2 || s1.nr_mprotect_calls == s0.nr_mprotect_calls),
	      "%s: giving pages back: %llu depopulate, %llu mprotect calls", modes[mode],
	      (unsigned long long)(s1.nr_depopulate_calls - s0.nr_depopulate_calls),
	      (unsigned long long)(s1.nr_mprotect_calls - s0.nr_mprotect_calls));
	while (nf)
		pcpu_free(first[--nf]);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t seed = test_seed(argc, argv);

	test_setting();
	KIT_EXPECT(kit_fork(child_decay, 0, seed, 300), KIT_EXIT(0), "decay");
	KIT_EXPECT(kit_fork(child_partial, 0, seed, 300), KIT_EXIT(0), "partial decay");
	KIT_EXPECT(kit_fork(child_never, 0, seed, 300), KIT_EXIT(0), "never");
	KIT_EXPECT(kit_fork(child_free_wakes, 0, seed, 300), KIT_EXIT(0), "frees with a decay");
	KIT_EXPECT(kit_fork(child_free_wakes, 1, seed, 300), KIT_EXIT(0), "frees with decay 0");
	KIT_EXPECT(kit_fork(child_thread, 150, seed, 300), KIT_EXIT(0), "thread, short decay");
	KIT_EXPECT(kit_fork(child_thread, 60000, seed, 300), KIT_EXIT(0), "thread, long decay");
	KIT_EXPECT(kit_fork(child_straddle, 0, seed, 300), KIT_EXIT(0), "an area across a zero mark");
	for (long mode = 0; mode < 3; mode++) {
		KIT_EXPECT(kit_fork(child_stale, mode, seed, 600), KIT_EXIT(0), "stale bytes, %s", modes[mode]);
		KIT_EXPECT(kit_fork(child_unclean, mode, seed, 300), KIT_EXIT(0), "unclean, %s", modes[mode]);
		KIT_EXPECT(kit_fork(child_touch, mode, seed, 300), KIT_EXIT(0), "touch, %s", modes[mode]);
		KIT_EXPECT(kit_fork(child_syscalls, mode, seed, 300), KIT_EXIT(0), "system calls, %s",
			   modes[mode]);
	}
	TEST_DONE();
}
