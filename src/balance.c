/*
 * balance.c - keeping populated memory between the marks, and giving back
 * what has stayed unused for the decay interval.
 *
 * Atomic allocations may only use populated pages, so a pool of empty
 * populated pages is kept between empty_pop_low and empty_pop_high.
 * Reclaim is driven by time, not by each free: a free only notes when a
 * page became empty (pool.c).  One balance pass:
 *   1. destroy fully free chunks that have been free for the decay, all
 *      but one (the one with the most populated pages stays);
 *   2. depopulate empty populated pages that have been empty for the
 *      decay, emptiest chunks first and last page first, while more than
 *      empty_pop_high empty populated pages remain;
 *   3. populate up to empty_pop_high when the pool fell below
 *      empty_pop_low (or an atomic allocation failed), most packed chunks
 *      first, creating a chunk when none has unpopulated pages.
 * The band between the marks and the decay are the hysteresis: a page is
 * given back only after staying empty for the decay and only above the
 * high mark, and pages are populated ahead only below the low mark.
 * pcpu_balance() runs a pass with no decay (everything reclaimable now).
 * With a decay of 0, a free that leaves enough empty wakes the thread at
 * once (pool_free_wants_reclaim), as reclaim used to work.
 *
 * The thread learns of work from the pool's balance_wanted flags.  Paths
 * that may block wake it (the pool calls balance_kick); the atomic path
 * only sets a flag, so the thread also wakes on a timer: soon after a
 * pass that had work, otherwise when the next page or chunk is due to
 * decay, and at least every min(decay, POLL_IDLE_MS) so that pages emptied
 * meanwhile are seen (every quarter decay while per-CPU caches hold
 * objects); each wake also empties the caches left unused for a quarter
 * decay (cache_idle_ms).  It is started at initialisation, never from an
 * atomic allocation.  If pthread_create fails, later wake-ups retry it
 * after 1, 2, 4 ... 64 seconds, and until it runs each wake-up runs the
 * pass in the caller.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "balance.h"
#include "bitops.h"
#include "diag.h"
#include "memcheck.h"
#include "pool_chunk.h"
#include "pool_init.h"
#include "pool_verify.h"

#define POLL_BUSY_MS 10      /* after a pass that was asked for; the shortest sleep */
#define POLL_IDLE_MS 1000    /* the longest sleep */
#define START_RETRY_MIN_S 1  /* pthread_create failed: back off, doubling */
#define START_RETRY_MAX_S 64

/*
 * AddressSanitizer before LLVM 15 does not hold its thread registry across
 * fork, so a thread created in the child of a multi-threaded process can
 * deadlock inside pthread_create.  In such builds a forked child does not
 * start a balancer thread: its wake-ups run the pass synchronously.
 */
#if PCPU_ASAN
#define CHILD_STARTS_THREAD 0
#else
#define CHILD_STARTS_THREAD 1
#endif

static struct pcpu_lock wake_mutex = PCPU_LOCK_INITIALIZER;
static pthread_cond_t wake_cond = PTHREAD_COND_INITIALIZER;
/* wake_mutex: */
static bool thread_running, wake_pending, stopping, forked_child;
static pthread_t balancer;
static time_t start_retry_at;   /* no pthread_create before this (monotonic s) */
static int start_retry_s;

/*
 * A pass's clock: `now` and the decay it applies (0: everything unused is
 * due; -1: nothing is), and the earliest time something not yet due will
 * be (-1: nothing pending).
 */
struct pass_clock {
	int64_t now;
	long decay;
	int64_t next_due;
};

/* Has something unused since `since` decayed?  If not, note when it will. */
static bool decayed(struct pass_clock *pc, int64_t since)
{
	if (pc->decay < 0)
		return false;
	if (pc->now - since >= pc->decay)
		return true;
	if (pc->next_due < 0 || since + pc->decay < pc->next_due)
		pc->next_due = since + pc->decay;
	return false;
}

/* When a fully free chunk became free: when its last page became empty.
 * `lock` held. */
static int64_t free_since(const struct pcpu_chunk *ch)
{
	int64_t t = ch->empty_since[0];

	for (int p = 1; p < ch->map->nr_pages; p++)
		if (ch->empty_since[p] > t)
			t = ch->empty_since[p];
	return t;
}

/* Destroy decayed fully free chunks but one (the one with the most
 * populated pages, the cheapest to reuse).  pop_mutex held. */
static void balance_free(struct pass_clock *pc)
{
	for (;;) {
		struct pcpu_chunk *victim = NULL, *keep = NULL, *ch;

		pcpu_lock(&pcpu_pool.lock);
		for (ch = pcpu_pool.slots[pcpu_pool.free_slot].head; ch; ch = ch->next)
			if (!keep || ch->map->nr_populated > keep->map->nr_populated)
				keep = ch;
		for (ch = pcpu_pool.slots[pcpu_pool.free_slot].head; ch && !victim; ch = ch->next)
			if (ch != keep && decayed(pc, free_since(ch)))
				victim = ch;
		/* Off the lists before the lock drops: allocations that do not
		 * take pop_mutex (atomic ones, and every first attempt on
		 * populated pages) must not pick a chunk being destroyed. */
		if (victim)
			pool_chunk_move(victim, -1);
		pcpu_unlock(&pcpu_pool.lock);
		if (!victim)
			return;
		pool_destroy_chunk(victim);
	}
}

struct reclaim_candidate {
	struct pcpu_chunk *ch;
	int free_bytes;
};

static int emptiest_first(const void *a, const void *b)
{
	const struct reclaim_candidate *x = a, *y = b;

	return (x->free_bytes < y->free_bytes) - (x->free_bytes > y->free_bytes);
}

/* Is page p of ch empty, populated and decayed?  `lock` held. */
static bool page_due(struct pass_clock *pc, const struct pcpu_chunk *ch, int p)
{
	const struct chunk *c = ch->map;

	return c->md[p].contig == c->block_bits && bit_test(c->populated, (size_t)p) &&
	       decayed(pc, ch->empty_since[p]);
}

/*
 * Depopulate ch's decayed empty pages, last page first, in runs, while the
 * pool stays above the high mark.  Each run is bookkept unpopulated before
 * `lock` drops for the system calls, so no allocation can land on it (the
 * ones that may populate need pop_mutex, which the caller holds).  `lock`
 * held on entry and return; false when the pool reached the high mark.
 */
static bool reclaim_chunk(struct pass_clock *pc, struct pcpu_chunk *ch)
{
	for (int i = ch->map->nr_pages - 1, end = -1; i >= -1; i--) {
		long budget = pcpu_pool.nr_empty_pop_pages - pcpu_pool.empty_pop_high;

		if (i >= 0 && budget > (end < 0 ? 0 : end - i) && page_due(pc, ch, i)) {
			if (end < 0)
				end = i;
			continue;
		}
		if (end >= 0) {
			pool_note_depopulated(ch, i + 1, end + 1);
			pcpu_pool.stats.nr_balance_depopulated += (uint64_t)(end - i);
			pcpu_unlock(&pcpu_pool.lock);
			int rc = pool_depopulate_pages(ch, i + 1, end + 1);

			pcpu_lock(&pcpu_pool.lock);
			if (rc == 0)
				pool_note_given_back(ch, i + 1, end + 1);
			end = -1;
			if (i >= 0)
				i++;    /* look at page i again, with the new budget */
			continue;
		}
		if (budget <= 0)
			return false;
	}
	return true;
}

/*
 * Give back decayed empty pages beyond the high mark, from the emptiest
 * chunks (allocations prefer fuller ones, so the pages kept are where the
 * next allocations go).  The first chunk's pages are never given back.
 * pop_mutex held: chunks cannot be destroyed meanwhile.
 */
static void reclaim_populated(struct pass_clock *pc)
{
	struct reclaim_candidate *cand;
	int n = 0;

	if (pc->decay < 0)
		return;
	/* (the table's high-water mark moves only under pop_mutex: no system
	 * call under `lock` for this array) */
	cand = malloc((size_t)pcpu_pool.chunk_hiwater * sizeof(*cand));
	if (!cand)
		return;         /* try again next pass */
	pcpu_lock(&pcpu_pool.lock);
	for (int i = 1; pcpu_pool.nr_empty_pop_pages > pcpu_pool.empty_pop_high &&
			i < pcpu_pool.chunk_hiwater; i++) {
		struct pcpu_chunk *ch = pcpu_pool.chunk_table[i];

		if (ch && !ch->immutable && pool_chunk_in_pool(ch) && ch->map->nr_empty_pop_pages)
			cand[n++] = (struct reclaim_candidate){ ch, ch->map->free_bytes };
	}
	qsort(cand, (size_t)n, sizeof(*cand), emptiest_first);
	for (int i = 0; i < n && reclaim_chunk(pc, cand[i].ch); i++)
		;
	pcpu_unlock(&pcpu_pool.lock);
	free(cand);
}

/* A chunk (not the first) with empty pages that are not populated, most
 * packed first.  `lock` held. */
static struct pcpu_chunk *populate_target(void)
{
	for (int slot = pool_size_to_slot(pcpu_pool.page_size); slot <= pcpu_pool.free_slot; slot++)
		for (struct pcpu_chunk *ch = pcpu_pool.slots[slot].head; ch; ch = ch->next)
			if (!ch->immutable && ch->map->nr_empty_pages > ch->map->nr_empty_pop_pages)
				return ch;
	return NULL;
}

/* Populate up to nr_to_pop empty pages of target; how many it did, or -1
 * on a failure.  pop_mutex held. */
static long populate_empty_pages(struct pcpu_chunk *target, long nr_to_pop)
{
	const struct block_md *md = target->map->md;
	int bb = target->map->block_bits;
	size_t s = 0, e;
	long done = 0;

	while (done < nr_to_pop &&
	       bitmap_next_clear_run(target->map->populated, (size_t)target->map->nr_pages, &s, &e)) {
		/* Only empty pages: they are what the pool counts. */
		if (md[s].contig != bb) {
			s++;
			continue;
		}
		size_t run = s + 1;

		while (run < e && md[run].contig == bb)
			run++;
		int n = (int)(run - s) < nr_to_pop - done ? (int)(run - s) : (int)(nr_to_pop - done);

		if (pool_populate_pages(target, (int)s, (int)s + n))
			return -1;
		pcpu_lock(&pcpu_pool.lock);
		pool_note_populated(target, (int)s, (int)s + n);
		pcpu_pool.stats.nr_balance_populated += (uint64_t)n;
		pcpu_unlock(&pcpu_pool.lock);
		done += n;
		s += (size_t)n;
	}
	return done;
}

/* Populate pages up to the high mark when the pool is below the low mark,
 * or asked to (pcpu_balance: below the high mark), or in full after an
 * atomic allocation failed.  pop_mutex held. */
static void balance_populated(bool atomic_failed, bool forced)
{
	long nr_to_pop, have;

	pcpu_lock(&pcpu_pool.lock);
	have = pcpu_pool.nr_empty_pop_pages;
	if (atomic_failed)
		nr_to_pop = pcpu_pool.empty_pop_high;
	else if (forced || have < pcpu_pool.empty_pop_low)
		nr_to_pop = pcpu_pool.empty_pop_high - have;
	else
		nr_to_pop = 0;
	pcpu_unlock(&pcpu_pool.lock);

	while (nr_to_pop > 0) {
		struct pcpu_chunk *target;
		long n;

		pcpu_lock(&pcpu_pool.lock);
		target = populate_target();
		pcpu_unlock(&pcpu_pool.lock);
		if (!target) {
			if (!pool_create_chunk())
				return;
			continue;
		}
		n = populate_empty_pages(target, nr_to_pop);
		if (n <= 0)
			return;
		nr_to_pop -= n;
	}
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * One pass (balance.h); the flags it answers are cleared first, so a
 * request made during the pass is seen by the next one.  `forced`
 * (pcpu_balance) applies no decay and first empties every per-CPU cache
 * (idle caches are the thread's sweep, balancer_main).
 */
long balance_pass(bool forced)
{
	unsigned why = __atomic_exchange_n(&pcpu_pool.balance_wanted, 0, __ATOMIC_RELAXED);
	int64_t t0 = now_ns();
	struct pass_clock pc = { .next_due = -1, .decay = forced ? 0 : pcpu_pool.decay_ms };

	/* First the caches, then the clock: what they give back counts as
	 * emptied no later than now. */
	if (forced)
		pool_drain_clients(true, 0);
	pc.now = pool_now_ms();
	pcpu_lock(&pcpu_pool.pop_mutex);
	balance_free(&pc);
	reclaim_populated(&pc);
	balance_populated(why & POOL_BALANCE_ATOMIC, forced);
	/* Atomic failures counted while the pass waited for the population
	 * mutex are reported by the pass itself, not the next one. */
	pcpu_warn_flush();
	pcpu_lock(&pcpu_pool.lock);
	pcpu_pool.stats.nr_balance_passes++;
	pcpu_pool.stats.balance_ns += (uint64_t)(now_ns() - t0);
	pcpu_unlock(&pcpu_pool.lock);
	pcpu_unlock(&pcpu_pool.pop_mutex);
	pool_after_op(POOL_OP_BALANCE, NULL);
	return pc.next_due < 0 ? -1 : (long)(pc.next_due - pc.now);
}

PCPU_PUBLIC int pcpu_balance(void)
{
	if (pool_ensure_init())
		return -1;
	pcpu_warn_flush();
	balance_pass(true);
	return 0;
}

/* ---- the background thread ------------------------------------------------ */

static bool pool_needs_attention(void)
{
	return __atomic_load_n(&pcpu_pool.balance_wanted, __ATOMIC_RELAXED) != 0;
}

static void deadline_in_ms(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Could a pass give anything back: empty pages of dynamic chunks while the
 * pool is beyond the high mark, or a second fully free chunk?  A quick
 * look under `lock` alone. */
static bool reclaim_possible(void)
{
	const struct pcpu_chunk *f;
	long dynamic;
	bool yes;

	if (pcpu_pool.decay_ms < 0)
		return false;
	pcpu_lock(&pcpu_pool.lock);
	f = pcpu_pool.slots[pcpu_pool.free_slot].head;
	dynamic = pcpu_pool.nr_empty_pop_pages - pcpu_pool.first_chunk->map->nr_empty_pop_pages;
	yes = (dynamic > 0 && pcpu_pool.nr_empty_pop_pages > pcpu_pool.empty_pop_high) || (f && f->next);
	pcpu_unlock(&pcpu_pool.lock);
	return yes;
}

/* ms clamped to the thread's shortest and longest sleeps. */
static long poll_clamp(long ms)
{
	return ms < POLL_BUSY_MS ? POLL_BUSY_MS : ms > POLL_IDLE_MS ? POLL_IDLE_MS : ms;
}

/*
 * How long a per-CPU cache stays unused before the thread empties it, and
 * how often the thread looks while caches hold objects: a quarter of the
 * decay (10 ms to 1 s), so that cached memory is given back about 1.25
 * decays after its last use (the pages decay from the cache's last use,
 * cache_drain).  With immediate reclaim or none, 1 s.
 */
static long cache_idle_ms(void)
{
	return pcpu_pool.decay_ms <= 0 ? POLL_IDLE_MS : poll_clamp(pcpu_pool.decay_ms / 4);
}

/* How long the thread sleeps when nothing asked for it: long enough to
 * cost nothing, short enough that a page emptied meanwhile is seen about
 * when it decays. */
static long idle_sleep_ms(bool caches_hold)
{
	if (caches_hold)
		return cache_idle_ms();
	if (pcpu_pool.decay_ms <= 0)
		return POLL_IDLE_MS;    /* immediate (frees wake it) or never */
	return poll_clamp(pcpu_pool.decay_ms);
}

/* How late a decayed page may go back: an eighth of the decay, 10 ms to 1 s. */
static long decay_slack_ms(void)
{
	return poll_clamp(pcpu_pool.decay_ms / 8);
}

static void *balancer_main(void *arg)
{
	long sleep_ms = POLL_BUSY_MS;

	(void)arg;
	/* Started while the pool is being initialised: nothing to do before
	 * it is published. */
	while (!pool_ready() && !__atomic_load_n(&stopping, __ATOMIC_RELAXED)) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
	}
	pcpu_lock(&wake_mutex);
	while (!stopping) {
		if (!__atomic_load_n(&wake_pending, __ATOMIC_RELAXED) && !pool_needs_attention()) {
			struct timespec ts;

			deadline_in_ms(&ts, sleep_ms);
			pcpu_cond_timedwait(&wake_cond, &wake_mutex, &ts);
			if (stopping)
				break;
		}
		bool asked = __atomic_load_n(&wake_pending, __ATOMIC_RELAXED) || pool_needs_attention();

		__atomic_store_n(&wake_pending, false, __ATOMIC_RELAXED);
		pcpu_unlock(&wake_mutex);
		pcpu_warn_flush();
		long due_ms = -1;
		/* caches unused for cache_idle_ms give back */
		bool caches_hold = pool_drain_clients(false, cache_idle_ms());

		if (asked || reclaim_possible())
			due_ms = balance_pass(false);
		/* Wake a little after the next page is due, so the pages due
		 * close behind it go back in the same runs (never early). */
		sleep_ms = asked ? POLL_BUSY_MS : idle_sleep_ms(caches_hold);
		if (due_ms >= 0 && due_ms + decay_slack_ms() < sleep_ms)
			sleep_ms = due_ms + decay_slack_ms();
		pcpu_lock(&wake_mutex);
	}
	pcpu_unlock(&wake_mutex);
	return NULL;
}

static void stop_balancer(void)
{
	pcpu_lock(&wake_mutex);
	if (!thread_running) {
		pcpu_unlock(&wake_mutex);
		return;
	}
	stopping = true;
	pthread_cond_signal(&wake_cond);
	pcpu_unlock(&wake_mutex);
	pthread_join(balancer, NULL);
	thread_running = false;
}

/* Timed waits on CLOCK_MONOTONIC: immune to clock changes.  No waiter. */
static void init_wake_cond(void)
{
	pthread_condattr_t cattr;

	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&wake_cond, &cattr);
	pthread_condattr_destroy(&cattr);
}

/* Start the thread; wake_mutex held.  A failure is retried later, backing off. */
static void start_balancer(void)
{
	static bool exit_hook;
	struct timespec now;
	pthread_attr_t attr;
	sigset_t all, old;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec < start_retry_at)
		return;
	if (!exit_hook)
		init_wake_cond();
	pthread_attr_init(&attr);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);   /* no signals for the balancer */
	if (pthread_create(&balancer, &attr, balancer_main, NULL) == 0) {
		thread_running = true;
		start_retry_s = 0;
	} else {
		start_retry_s = start_retry_s ? 2 * start_retry_s : START_RETRY_MIN_S;
		if (start_retry_s > START_RETRY_MAX_S)
			start_retry_s = START_RETRY_MAX_S;
		start_retry_at = now.tv_sec + start_retry_s;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (thread_running && !exit_hook) {
		atexit(stop_balancer);
		exit_hook = true;
	}
}

/*
 * The pool wants a pass (pool_kick_balance, blocking contexts only).
 * Starts the thread if it is not running (unless PCPU_CFG_NO_BALANCER, when
 * the request waits for the next pcpu_balance()).  While the thread cannot
 * be started (pthread_create failed and the back-off has not expired), the
 * pass runs here, in the caller.
 */
static void balance_kick(void)
{
	bool run_here;

	if (pcpu_pool.cfg.flags & PCPU_CFG_NO_BALANCER)
		return;
	if (!CHILD_STARTS_THREAD && forked_child) {
		balance_pass(false);
		return;
	}
	/* A pass is already due: nothing to add (a wake is a hint; a pass
	 * that started just before this point is followed by the next wake).
	 * Only a running thread clears the flag, so it is set only then. */
	if (__atomic_load_n(&wake_pending, __ATOMIC_RELAXED))
		return;
	pcpu_lock(&wake_mutex);
	if (!thread_running && !stopping)
		start_balancer();
	run_here = !thread_running && !stopping;
	if (thread_running) {
		__atomic_store_n(&wake_pending, true, __ATOMIC_RELAXED);
		pthread_cond_signal(&wake_cond);
	}
	pcpu_unlock(&wake_mutex);
	if (run_here) {
		pcpu_warn_flush();
		balance_pass(false);
	}
}

/* fork: wake_mutex is held across it (after the pool's locks). */
static void balance_fork_inner(void)
{
	pcpu_lock(&wake_mutex);
}

static void balance_fork_parent(void)
{
	pcpu_unlock(&wake_mutex);
}

/* The child of fork has no balancer thread; it starts one when needed. */
static void balance_fork_child(void)
{
	init_wake_cond();
	thread_running = false;
	stopping = false;
	__atomic_store_n(&wake_pending, false, __ATOMIC_RELAXED);
	/* Nobody woke this process's balancer: the next call that may block
	 * starts it for what the parent wanted. */
	__atomic_fetch_and(&pcpu_pool.balance_wanted, ~POOL_BALANCE_KICKED, __ATOMIC_RELAXED);
	start_retry_at = 0;
	start_retry_s = 0;
	forked_child = true;
	pcpu_unlock(&wake_mutex);
}

/* The pool is ready: the thread exists from now on (unless
 * PCPU_CFG_NO_BALANCER), so atomic allocations, which only raise flags, are
 * heard even when no call that may block follows. */
static void balance_ready(void)
{
	if (pcpu_pool.cfg.flags & PCPU_CFG_NO_BALANCER)
		return;
	pcpu_lock(&wake_mutex);
	if (!thread_running && !stopping)
		start_balancer();
	pcpu_unlock(&wake_mutex);
}

static struct pool_client balance_client = {
	.ready = balance_ready,
	.kick = balance_kick,
	.fork_inner = balance_fork_inner,
	.fork_parent = balance_fork_parent,
	.fork_child = balance_fork_child,
};

__attribute__((constructor(101))) static void balance_register(void)
{
	pool_add_client(&balance_client);
}
