/*
 * test_balancer_start.c - the balancer thread when pthread_create fails.
 *
 * The test is linked with -Wl,--wrap=pthread_create, so the library's
 * pthread_create calls come here first: the wrapper records when each was
 * made and fails the first ones with EAGAIN, as a process at its thread
 * limit would, then lets them through.  In a forked child:
 *
 *   - the start at initialisation fails; wake-ups retry it only once the
 *     back-off has passed, 1 s after the first failure, 2 s after the
 *     second (whole seconds of the monotonic clock, as the library counts
 *     them: deterministic, whatever the load);
 *   - meanwhile requests are not lost: an atomic failure followed by a
 *     blocking allocation runs a balance pass in the caller, and the pool
 *     is refilled;
 *   - once a start succeeds, the thread alone hears an atomic failure (no
 *     further call that could run a pass).
 *
 * A hang (a start never retried, a pass never run) ends in the alarm.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kit.h"
#include "percpu.h"

#define MAX_CALLS 16
#define RESERVED_SIZE 8192

int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

static int fail_next;                   /* calls left to fail */
static int ncalls;
static time_t call_sec[MAX_CALLS];      /* CLOCK_MONOTONIC seconds of each call */
static int call_ret[MAX_CALLS];

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	struct timespec now;
	int n = __atomic_fetch_add(&ncalls, 1, __ATOMIC_RELAXED), ret;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (__atomic_load_n(&fail_next, __ATOMIC_RELAXED) > 0) {
		__atomic_fetch_sub(&fail_next, 1, __ATOMIC_RELAXED);
		ret = EAGAIN;
	} else {
		ret = __real_pthread_create(t, attr, fn, arg);
	}
	if (n < MAX_CALLS) {
		call_sec[n] = now.tv_sec;
		call_ret[n] = ret;
	}
	return ret;
}

static int calls(void)
{
	return __atomic_load_n(&ncalls, __ATOMIC_RELAXED);
}

/* An atomic allocation that fails (larger than the reserved area): it
 * raises the balance flags. */
static void atomic_failure(void)
{
	errno = 0;
	CHECK(!pcpu_alloc_flags(RESERVED_SIZE + 4096, 4, PCPU_ATOMIC | PCPU_RESERVED | PCPU_NOWARN) &&
	      errno == ENOMEM, "oversized atomic reserved allocation fails");
}

static int child_start(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 4, .reserved_size = RESERVED_SIZE, .empty_pop_low = 2,
				   .empty_pop_high = 4 };

	(void)arg;
	fail_next = 2;
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
	REQUIRE(calls() == 1 && call_ret[0] == EAGAIN, "initialisation tried to start the thread once");
	struct pcpu_stats st = kit_stats();
	const size_t page = st.page_size;

	/* No thread: a blocking allocation after an atomic failure runs the
	 * pass itself, and the next atomic allocation of a page finds one. */
	atomic_failure();
	void *h = pcpu_alloc(16, 4);
	REQUIRE(h, "pcpu_alloc");
	struct pcpu_stats s1 = kit_stats();
	CHECK(s1.nr_balance_passes > st.nr_balance_passes && s1.nr_chunks >= 1 &&
	      s1.nr_empty_pop_pages >= 4,
	      "the kick ran a pass in the caller: %llu passes, %llu empty populated pages",
	      (unsigned long long)s1.nr_balance_passes, (unsigned long long)s1.nr_empty_pop_pages);
	void *p = pcpu_alloc_flags(page, page, PCPU_ATOMIC);
	CHECK(p && kit_zeroed(p, page, page), "atomic page allocation after the pass");
	pcpu_free(p);

	/* Wake-ups until the second retry has gone through. */
	while (calls() < 3) {
		atomic_failure();
		pcpu_free(pcpu_alloc(16, 4));
		usleep(20000);
	}
	REQUIRE(calls() == 3 && call_ret[1] == EAGAIN && call_ret[2] == 0,
		"two failed starts, then one that worked: %d calls", calls());
	CHECK(call_sec[1] >= call_sec[0] + 1, "first retry %lld s after the failure, want >= 1",
	      (long long)(call_sec[1] - call_sec[0]));
	CHECK(call_sec[2] >= call_sec[1] + 2, "second retry %lld s after the second failure, want >= 2",
	      (long long)(call_sec[2] - call_sec[1]));

	/* The thread runs: an atomic failure alone is heard (the pass comes
	 * from the thread: nothing here calls anything that could run one). */
	struct pcpu_stats s2 = kit_stats();
	atomic_failure();
	while (kit_stats().nr_balance_passes == s2.nr_balance_passes)
		usleep(1000);
	CHECK(calls() == 3, "no start after the thread runs: %d calls", calls());
	pcpu_free(h);
	CHECK(pcpu_verify() == 0, "verify");
	dprintf(kit_report_fd, "starts at +0 (EAGAIN), +%lld s (EAGAIN), +%lld s (started)\n",
	       (long long)(call_sec[1] - call_sec[0]), (long long)(call_sec[2] - call_sec[0]));
	return 0;
}

int main(void)
{
	struct kit_child *c = kit_fork(child_start, 0, 0, 120);

	KIT_EXPECT(c, KIT_EXIT(0), "balancer start with failing pthread_create");
	printf("%s", c->out);
	TEST_DONE();
}
