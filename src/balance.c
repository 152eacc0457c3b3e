/*
 * balance.c - keeping populated memory between the marks.
 *
 * Atomic allocations may only use populated pages, so a pool of empty
 * populated pages is kept between empty_pop_low and empty_pop_high.  One
 * balance pass, in the kernel's order: destroy fully free chunks but one;
 * reclaim (depopulate the empty pages of isolated chunks, last page first);
 * populate up to the high mark, most packed chunks first, creating a chunk
 * when none has unpopulated pages; destroy free chunks left with no
 * populated page.  The pass runs in a background thread, or synchronously
 * through pcpu_balance().
 *
 * The thread learns of work from the pool's balance_wanted flags.  Paths
 * that may block wake it (the pool calls balance_kick); the atomic path
 * only sets a flag, so the thread also looks at the flags on a timer: a
 * short one while work may be pending, a long one when all is quiet.  It
 * is started at initialisation, never from an atomic allocation.  If
 * pthread_create fails, later wake-ups retry it after 1, 2, 4 ... 64
 * seconds, and until it runs each wake-up runs the pass in the caller.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "bitops.h"
#include "diag.h"
#include "memcheck.h"
#include "pool_chunk.h"
#include "pool_init.h"
#include "pool_verify.h"

#define POLL_BUSY_MS 10      /* flags seen recently, or the pool below its low mark */
#define POLL_IDLE_MS 1000
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

/* Destroy fully free chunks except the first on the free list; with
 * empty_only, only those with no populated page.  pop_mutex held. */
static void balance_free(bool empty_only)
{
	for (;;) {
		struct pcpu_chunk *victim = NULL;

		pcpu_lock(&pcpu_pool.lock);
		struct pcpu_chunk *first = pcpu_pool.slots[pcpu_pool.free_slot].head;

		for (struct pcpu_chunk *ch = first ? first->next : NULL; ch; ch = ch->next) {
			if (!empty_only || ch->map->nr_populated == 0) {
				victim = ch;
				break;
			}
		}
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

/*
 * Depopulate the empty populated pages of isolated chunks, from the last
 * page backwards, one run at a time with `lock` dropped around the system
 * calls.  A chunk goes back to the pool early if the pool falls below the
 * high mark; otherwise it is sidelined (or put on the free list when it
 * became fully free).  pop_mutex held.
 */
static void reclaim_populated(void)
{
	pcpu_lock(&pcpu_pool.lock);
	for (;;) {
		struct pcpu_chunk *ch = pcpu_pool.slots[pcpu_pool.to_depopulate_slot].head;
		bool reintegrate = false;

		if (!ch)
			break;
		for (int i = ch->map->nr_pages - 1, end = -1; i >= -1; i--) {
			bool empty_pop = i >= 0 && ch->map->md[i].contig == ch->map->block_bits &&
					 bit_test(ch->map->populated, (size_t)i);

			if (ch->map->nr_empty_pop_pages == 0)
				break;
			if (pcpu_pool.nr_empty_pop_pages < pcpu_pool.empty_pop_high) {
				reintegrate = true;
				break;
			}
			if (empty_pop) {
				if (end < 0)
					end = i;
				continue;
			}
			if (end < 0)
				continue;
			pcpu_unlock(&pcpu_pool.lock);
			pool_depopulate_pages(ch, i + 1, end + 1);
			pcpu_lock(&pcpu_pool.lock);
			pool_note_depopulated(ch, i + 1, end + 1);
			pcpu_pool.stats.nr_balance_depopulated += (uint64_t)(end - i);
			end = -1;
		}
		if (reintegrate || chunk_is_empty(ch->map)) {
			pool_reintegrate_chunk(ch);
		} else {
			ch->isolated = false;
			pcpu_pool.nr_empty_pop_pages += ch->map->nr_empty_pop_pages;
			pool_chunk_move(ch, pcpu_pool.sidelined_slot);
		}
	}
	pcpu_unlock(&pcpu_pool.lock);
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

/* Populate pages until the pool reaches the high mark (in full after an
 * atomic allocation failed).  pop_mutex held. */
static void balance_populated(bool atomic_failed)
{
	long nr_to_pop;

	pcpu_lock(&pcpu_pool.lock);
	nr_to_pop = atomic_failed ? pcpu_pool.empty_pop_high
				  : pcpu_pool.empty_pop_high - pcpu_pool.nr_empty_pop_pages;
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

/* One pass; the flags it answers are cleared first, so a request made
 * during the pass is seen by the next one.  Clients' caches are emptied
 * first: all of them for pcpu_balance(), the idle ones otherwise. */
static void balance_pass(bool all)
{
	unsigned why = __atomic_exchange_n(&pcpu_pool.balance_wanted, 0, __ATOMIC_RELAXED);

	pool_drain_clients(all);
	pcpu_lock(&pcpu_pool.pop_mutex);
	balance_free(false);
	reclaim_populated();
	/* Reclaim may have put a fully free chunk back beside the one kept. */
	balance_free(false);
	balance_populated(why & POOL_BALANCE_ATOMIC);
	balance_free(true);
	pcpu_lock(&pcpu_pool.lock);
	pcpu_pool.stats.nr_balance_passes++;
	pcpu_unlock(&pcpu_pool.lock);
	pcpu_unlock(&pcpu_pool.pop_mutex);
	pool_after_op(POOL_OP_BALANCE, NULL);
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

static void *balancer_main(void *arg)
{
	long poll_ms = POLL_BUSY_MS;

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

			deadline_in_ms(&ts, poll_ms);
			pcpu_cond_timedwait(&wake_cond, &wake_mutex, &ts);
			if (stopping)
				break;
			if (!__atomic_load_n(&wake_pending, __ATOMIC_RELAXED) && !pool_needs_attention()) {
				/* Quiet: give back what caches idle since the
				 * last look hold (nothing if they were used). */
				poll_ms = POLL_IDLE_MS;
				pcpu_unlock(&wake_mutex);
				pool_drain_clients(false);
				pcpu_lock(&wake_mutex);
				continue;
			}
		}
		__atomic_store_n(&wake_pending, false, __ATOMIC_RELAXED);
		poll_ms = POLL_BUSY_MS;
		pcpu_unlock(&wake_mutex);
		pcpu_warn_flush();
		balance_pass(false);
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
