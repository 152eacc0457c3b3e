/*
 * balance.c - keeping populated memory between the marks.
 *
 * Atomic allocations may only use populated pages, so a pool of empty
 * populated pages is kept between empty_pop_low and empty_pop_high.  One
 * balance pass, in the kernel's order: destroy fully free chunks but one;
 * reclaim (depopulate the empty pages of isolated chunks, last page first);
 * populate up to the high mark, most packed chunks first, creating a chunk
 * when none has unpopulated pages; destroy free chunks left with no
 * populated page.  The pass runs in a background thread woken by the
 * allocation and free paths, or synchronously through pcpu_balance().
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "bitops.h"
#include "internal.h"

static pthread_mutex_t wake_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cond = PTHREAD_COND_INITIALIZER;
static bool thread_running, wake_pending, atomic_failed, stopping;
static pthread_t balancer;

/* Destroy fully free chunks except the first on the free list; with
 * empty_only, only those with no populated page. */
static void balance_free(bool empty_only)
{
	for (;;) {
		struct pcpu_chunk *victim = NULL;

		pthread_mutex_lock(&pcpu.lock);
		struct pcpu_chunk *first = pcpu.slots[pcpu.free_slot].head;

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
			pcpu_chunk_move(victim, -1);
		pthread_mutex_unlock(&pcpu.lock);
		if (!victim)
			return;
		pcpu_destroy_chunk(victim);
	}
}

/* Take ch out of the pool and queue it for reclaim.  `lock` held. */
void pcpu_isolate_chunk(struct pcpu_chunk *ch)
{
	if (ch->isolated || ch->immutable)
		return;
	pcpu.nr_empty_pop_pages -= ch->map->nr_empty_pop_pages;
	ch->isolated = true;
	pcpu_chunk_move(ch, pcpu.to_depopulate_slot);
}

/* Put an isolated chunk back in the pool and on its slot.  `lock` held. */
void pcpu_reintegrate_chunk(struct pcpu_chunk *ch)
{
	ch->isolated = false;
	pcpu.nr_empty_pop_pages += ch->map->nr_empty_pop_pages;
	pcpu_chunk_relocate(ch, -1);
}

/*
 * Depopulate the empty populated pages of isolated chunks, from the last
 * page backwards, one run at a time with `lock` dropped around the system
 * calls.  A chunk goes back to the pool early if the pool falls below the
 * high mark; otherwise it is sidelined (or put on the free list when it
 * became fully free).
 */
static void reclaim_populated(void)
{
	pthread_mutex_lock(&pcpu.lock);
	for (;;) {
		struct pcpu_chunk *ch = pcpu.slots[pcpu.to_depopulate_slot].head;
		bool reintegrate = false;

		if (!ch)
			break;
		for (int i = ch->map->nr_pages - 1, end = -1; i >= -1; i--) {
			bool empty_pop = i >= 0 && ch->map->md[i].contig == ch->map->block_bits &&
					 bit_test(ch->map->populated, (size_t)i);

			if (ch->map->nr_empty_pop_pages == 0)
				break;
			if (pcpu.nr_empty_pop_pages < pcpu.empty_pop_high) {
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
			pthread_mutex_unlock(&pcpu.lock);
			pcpu_depopulate_pages(ch, i + 1, end + 1);
			pthread_mutex_lock(&pcpu.lock);
			pcpu_note_depopulated(ch, i + 1, end + 1);
			pcpu.stats.nr_balance_depopulated += (uint64_t)(end - i);
			end = -1;
		}
		if (reintegrate || chunk_is_empty(ch->map))
			pcpu_reintegrate_chunk(ch);
		else {
			ch->isolated = false;
			pcpu.nr_empty_pop_pages += ch->map->nr_empty_pop_pages;
			pcpu_chunk_move(ch, pcpu.sidelined_slot);
		}
	}
	pthread_mutex_unlock(&pcpu.lock);
}

/* Populate pages until the pool reaches the high mark (in full after an
 * atomic allocation failed). */
static void balance_populated(void)
{
	long nr_to_pop;
	int page_slot;

	pthread_mutex_lock(&pcpu.lock);
	if (__atomic_exchange_n(&atomic_failed, false, __ATOMIC_RELAXED)) {
		nr_to_pop = pcpu.empty_pop_high;
	} else {
		nr_to_pop = pcpu.empty_pop_high - pcpu.nr_empty_pop_pages;
	}
	pthread_mutex_unlock(&pcpu.lock);
	page_slot = pcpu_size_to_slot(pcpu.page_size);

	while (nr_to_pop > 0) {
		struct pcpu_chunk *target = NULL;

		pthread_mutex_lock(&pcpu.lock);
		for (int slot = page_slot; slot <= pcpu.free_slot && !target; slot++)
			for (struct pcpu_chunk *ch = pcpu.slots[slot].head; ch; ch = ch->next)
				if (!ch->immutable &&
				    ch->map->nr_empty_pages > ch->map->nr_empty_pop_pages) {
					target = ch;
					break;
				}
		pthread_mutex_unlock(&pcpu.lock);
		if (!target) {
			if (!pcpu_create_chunk())
				return;
			continue;
		}
		size_t s = 0, e;
		while (nr_to_pop > 0 &&
		       bitmap_next_clear_run(target->map->populated, (size_t)target->map->nr_pages, &s, &e)) {
			/* Only empty pages: they are what the pool counts. */
			const struct block_md *md = target->map->md;
			int bb = target->map->block_bits;

			if (md[s].contig != bb) {
				s++;
				continue;
			}
			size_t run = s + 1;
			while (run < e && md[run].contig == bb)
				run++;
			int n = (int)(run - s) < nr_to_pop ? (int)(run - s) : (int)nr_to_pop;

			if (pcpu_populate_pages(target, (int)s, (int)s + n))
				return;
			pthread_mutex_lock(&pcpu.lock);
			pcpu_note_populated(target, (int)s, (int)s + n);
			pcpu.stats.nr_balance_populated += (uint64_t)n;
			pthread_mutex_unlock(&pcpu.lock);
			nr_to_pop -= n;
			s += (size_t)n;
		}
	}
}

int pcpu_balance_pass(void)
{
	pthread_mutex_lock(&pcpu.pop_mutex);
	balance_free(false);
	reclaim_populated();
	balance_populated();
	balance_free(true);
	pthread_mutex_lock(&pcpu.lock);
	pcpu.stats.nr_balance_passes++;
	pthread_mutex_unlock(&pcpu.lock);
	pthread_mutex_unlock(&pcpu.pop_mutex);
	pcpu_hook_op(PCPU_OP_BALANCE);
	return 0;
}

PCPU_API int pcpu_balance(void)
{
	if (pcpu_ensure_init())
		return -1;
	return pcpu_balance_pass();
}

/* ---- the background thread ----------------------------------------------- */

static void *balancer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&wake_mutex);
	while (!stopping) {
		while (!wake_pending && !stopping)
			pthread_cond_wait(&wake_cond, &wake_mutex);
		if (stopping)
			break;
		__atomic_store_n(&wake_pending, false, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&wake_mutex);
		pcpu_balance_pass();
		pthread_mutex_lock(&wake_mutex);
	}
	pthread_mutex_unlock(&wake_mutex);
	return NULL;
}

static void stop_balancer(void)
{
	pthread_mutex_lock(&wake_mutex);
	if (!thread_running) {
		pthread_mutex_unlock(&wake_mutex);
		return;
	}
	stopping = true;
	pthread_cond_signal(&wake_cond);
	pthread_mutex_unlock(&wake_mutex);
	pthread_join(balancer, NULL);
	thread_running = false;
}

/*
 * Ask for a balance pass.  Starts the thread on first need (unless
 * PCPU_CFG_NO_BALANCER); without a thread the request waits for the next
 * pcpu_balance().
 */
void pcpu_balance_wake(void)
{
	static bool exit_hook;

	/* A pass is already due: nothing to add (a wake is a hint; a pass
	 * that started just before this point is followed by the next wake). */
	if (__atomic_load_n(&wake_pending, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&wake_mutex);
	__atomic_store_n(&wake_pending, true, __ATOMIC_RELAXED);
	if (!thread_running && !stopping && !(pcpu.cfg.flags & PCPU_CFG_NO_BALANCER)) {
		pthread_attr_t attr;
		sigset_t all, old;

		pthread_attr_init(&attr);
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);   /* no signals for the balancer */
		if (pthread_create(&balancer, &attr, balancer_main, NULL) == 0)
			thread_running = true;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&attr);
		if (thread_running && !exit_hook) {
			atexit(stop_balancer);
			exit_hook = true;
		}
	}
	pthread_cond_signal(&wake_cond);
	pthread_mutex_unlock(&wake_mutex);
}

/* An atomic allocation failed: the next pass populates the high mark in full. */
void pcpu_note_atomic_failure(void)
{
	__atomic_store_n(&atomic_failed, true, __ATOMIC_RELAXED);
}

/* fork: wake_mutex is held across it (after the allocator's locks). */
void pcpu_balance_atfork_prepare(void)
{
	pthread_mutex_lock(&wake_mutex);
}

void pcpu_balance_atfork_parent(void)
{
	pthread_mutex_unlock(&wake_mutex);
}

/* The child of fork has no balancer thread; it starts one when needed. */
void pcpu_balance_atfork_child(void)
{
	pthread_cond_init(&wake_cond, NULL);
	thread_running = false;
	stopping = false;
	wake_pending = false;
	pthread_mutex_unlock(&wake_mutex);
}
