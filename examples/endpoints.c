/*
 * endpoints.c - per-endpoint request statistics for a server whose
 * endpoints come and go by the thousand.
 *
 * Each endpoint (a route, a backend, a tenant) has
 *   - per-CPU statistics, PCPU_ALLOC(struct ep_stats): requests, rejections
 *     and bytes, each added with one this_cpu operation on the copy of the
 *     CPU the worker runs on;
 *   - a request budget, a struct pcpu_counter counting down: the worker
 *     asks pcpu_counter_compare(&budget, 0) before serving, which costs one
 *     load while the budget is far from 0 and sums the copies only near it.
 * One more pcpu_counter counts every request served, for the reporter.
 *
 * Threads:
 *   workers    serve requests on random endpoint slots;
 *   reporter   every 20 ms sums the live endpoints' statistics
 *              (pcpu_sum_field) and reads the total (pcpu_counter_read:
 *              one load, approximate);
 *   manager    keeps replacing endpoints in random slots.  A replaced
 *              endpoint may still be in a worker's or the reporter's hands,
 *              so it is freed only after a grace period: once every reader
 *              has been seen outside its read-side section (an epoch scheme,
 *              below).  Its statistics are final then: the manager adds
 *              them to the retired totals and frees its memory.
 *
 * At the end every endpoint is retired, and the program checks that the
 * statistics add up exactly: the workers' own counts, the retired totals,
 * the total counter, and for each endpoint requests == quota - budget.
 *
 * Grace periods.  A reader announces the global epoch in its own slot
 * before it looks at an endpoint and stores 0 when it is done.  To retire,
 * the manager first unpublishes the endpoints (the slot points to the
 * replacement), advances the epoch, and waits until every reader's slot is
 * 0 (outside) or the new epoch (it started after the unpublishing, so it
 * cannot hold a retired endpoint).  Reader: store epoch, full fence, load
 * pointer; manager: store pointer, full fence, load epochs: one of the two
 * sees the other.  Retired endpoints wait in batches of RETIRE_BATCH, so one
 * grace period frees many.
 *
 *     usage: endpoints [workers] [requests per worker] [slots]
 *     e.g.   ./build/examples/endpoints 4 2000000 1024
 */
#include <percpu.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_READERS 65          /* workers + the reporter */
#define RETIRE_BATCH 128

struct ep_stats {
	unsigned long requests, rejected, bytes;
};

struct endpoint {
	unsigned long id;
	long long quota;
	struct ep_stats __percpu *stats;
	struct pcpu_counter budget;     /* quota - requests served */
	struct endpoint *next;          /* on the retire list */
};

struct reader {
	unsigned long epoch;            /* 0: outside a read-side section */
	char pad[64 - sizeof(unsigned long)];
} __attribute__((aligned(64)));

struct worker {
	pthread_t thr;
	int id;
	unsigned long served, rejected, bytes;
};

static struct endpoint **slots;
static unsigned nr_slots;
static struct reader readers[MAX_READERS];
static int nr_readers;
static unsigned long global_epoch = 1;
static struct pcpu_counter total_served;
static int stop_workers, stop_all;
static long requests_per_worker;

/* Retired and freed: endpoints, grace periods, final statistics. */
static unsigned long created, destroyed, grace_periods, bad_endpoints;
static struct ep_stats retired;

/* ---- grace periods ------------------------------------------------------- */

static void read_lock(struct reader *r)
{
	__atomic_store_n(&r->epoch, __atomic_load_n(&global_epoch, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void read_unlock(struct reader *r)
{
	__atomic_store_n(&r->epoch, 0, __ATOMIC_RELEASE);
}

/* Return once no reader can still hold what was unpublished before. */
static void synchronize(void)
{
	unsigned long now;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	now = __atomic_add_fetch(&global_epoch, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < nr_readers; i++) {
		unsigned long e;

		while ((e = __atomic_load_n(&readers[i].epoch, __ATOMIC_ACQUIRE)) != 0 && e != now)
			sched_yield();
	}
	grace_periods++;
}

/* ---- endpoints ------------------------------------------------------------ */

static struct endpoint *endpoint_new(unsigned long id, long long quota)
{
	struct endpoint *ep = malloc(sizeof(*ep));

	if (!ep)
		return NULL;
	ep->id = id;
	ep->quota = quota;
	ep->stats = PCPU_ALLOC(struct ep_stats);
	if (!ep->stats || pcpu_counter_init(&ep->budget, quota)) {
		pcpu_free(ep->stats);
		free(ep);
		return NULL;
	}
	created++;
	return ep;
}

/* After a grace period: the statistics are final.  Add them up, free. */
static void endpoint_retire(struct endpoint *ep)
{
	struct ep_stats s = {
		.requests = pcpu_sum_field(ep->stats, requests),
		.rejected = pcpu_sum_field(ep->stats, rejected),
		.bytes = pcpu_sum_field(ep->stats, bytes),
	};

	if ((long long)s.requests != ep->quota - pcpu_counter_sum(&ep->budget))
		bad_endpoints++;
	retired.requests += s.requests;
	retired.rejected += s.rejected;
	retired.bytes += s.bytes;
	pcpu_counter_destroy(&ep->budget);
	pcpu_free(ep->stats);
	free(ep);
	destroyed++;
}

static void retire_all(struct endpoint **list)
{
	synchronize();
	while (*list) {
		struct endpoint *ep = *list;

		*list = ep->next;
		endpoint_retire(ep);
	}
}

/* ---- threads -------------------------------------------------------------- */

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct reader *r = &readers[w->id];
	uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1);

	for (long i = 0; i < requests_per_worker; i++) {
		uint64_t x = next_rand(&rng);
		unsigned long len = 64 + x % 4000;
		struct endpoint *ep;

		read_lock(r);
		ep = __atomic_load_n(&slots[x % nr_slots], __ATOMIC_ACQUIRE);
		if (pcpu_counter_compare(&ep->budget, 0) > 0) {
			pcpu_counter_add(&ep->budget, -1);
			this_cpu_inc(&ep->stats->requests);
			this_cpu_add(&ep->stats->bytes, len);
			pcpu_counter_add(&total_served, 1);
			w->served++;
			w->bytes += len;
		} else {
			this_cpu_inc(&ep->stats->rejected);
			w->rejected++;
		}
		read_unlock(r);
	}
	return NULL;
}

static void *reporter_main(void *arg)
{
	struct reader *r = arg;
	struct timespec tick = { 0, 20 * 1000 * 1000 };
	int lines = 0;

	while (!__atomic_load_n(&stop_all, __ATOMIC_ACQUIRE)) {
		unsigned long live_requests = 0, busiest = 0, busiest_id = 0;
		unsigned live = 0;

		nanosleep(&tick, NULL);
		read_lock(r);
		for (unsigned i = 0; i < nr_slots; i++) {
			struct endpoint *ep = __atomic_load_n(&slots[i], __ATOMIC_ACQUIRE);
			unsigned long n;

			if (!ep)                /* the manager is emptying the table */
				continue;
			n = pcpu_sum_field(ep->stats, requests);
			live++;
			live_requests += n;
			if (n > busiest) {
				busiest = n;
				busiest_id = ep->id;
			}
		}
		read_unlock(r);
		if (live && lines++ < 5)
			printf("  report: %lld served (about), %lu by the %u live endpoints, busiest #%lu: %lu\n",
			       pcpu_counter_read(&total_served), live_requests, live, busiest_id, busiest);
	}
	return NULL;
}

/* The manager: replace endpoints until the workers are done, then all. */
static void manage(uint64_t seed)
{
	struct endpoint *to_retire = NULL;
	unsigned batch = 0;
	uint64_t rng = seed | 1;

	while (!__atomic_load_n(&stop_workers, __ATOMIC_ACQUIRE)) {
		uint64_t x = next_rand(&rng);
		struct endpoint *ep = endpoint_new(created + 1, 50 + (long long)(x >> 20) % 5000);

		if (!ep) {
			fprintf(stderr, "endpoint_new: out of memory\n");
			exit(1);
		}
		ep->next = __atomic_exchange_n(&slots[x % nr_slots], ep, __ATOMIC_ACQ_REL);
		/* The old one stays readable until a grace period has passed. */
		ep = ep->next;
		ep->next = to_retire;
		to_retire = ep;
		if (++batch == RETIRE_BATCH) {
			retire_all(&to_retire);
			batch = 0;
		}
	}
	for (unsigned i = 0; i < nr_slots; i++) {
		struct endpoint *ep = __atomic_exchange_n(&slots[i], NULL, __ATOMIC_ACQ_REL);

		ep->next = to_retire;
		to_retire = ep;
	}
	retire_all(&to_retire);
}

/* Waits for the workers, then tells the manager to stop. */
static void *joiner_main(void *arg)
{
	struct worker *workers = arg;

	for (int i = 0; i < nr_readers - 1; i++)
		pthread_join(workers[i].thr, NULL);
	__atomic_store_n(&stop_workers, 1, __ATOMIC_RELEASE);
	return NULL;
}

int main(int argc, char **argv)
{
	int nworkers = argc > 1 ? atoi(argv[1]) : 4;
	struct worker *workers;
	unsigned long served = 0, rejected = 0, bytes = 0;
	pthread_t reporter, joiner;
	struct timespec t0, t1;
	double secs;
	bool ok;

	requests_per_worker = argc > 2 ? atol(argv[2]) : 1000000;
	nr_slots = argc > 3 ? (unsigned)atoi(argv[3]) : 1024;
	if (nworkers < 1 || nworkers > MAX_READERS - 1 || requests_per_worker < 1 || nr_slots < 1) {
		fprintf(stderr, "usage: endpoints [workers 1-%d] [requests per worker] [slots]\n",
			MAX_READERS - 1);
		return 2;
	}
	nr_readers = nworkers + 1;
	slots = calloc(nr_slots, sizeof(*slots));
	workers = calloc((size_t)nworkers, sizeof(*workers));
	if (!slots || !workers || pcpu_counter_init(&total_served, 0)) {
		perror("setup");
		return 1;
	}
	for (unsigned i = 0; i < nr_slots; i++)
		if (!(slots[i] = endpoint_new(created + 1, 50 + (long long)i * 7 % 5000))) {
			perror("endpoint_new");
			return 1;
		}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (pthread_create(&reporter, NULL, reporter_main, &readers[nworkers])) {
		perror("pthread_create");
		return 1;
	}
	for (int i = 0; i < nworkers; i++) {
		workers[i].id = i;
		if (pthread_create(&workers[i].thr, NULL, worker_main, &workers[i])) {
			perror("pthread_create");
			return 1;
		}
	}
	/* The main thread manages; a helper joins the workers and says stop. */
	if (pthread_create(&joiner, NULL, joiner_main, workers)) {
		perror("pthread_create");
		return 1;
	}
	manage((uint64_t)t0.tv_nsec);
	pthread_join(joiner, NULL);
	__atomic_store_n(&stop_all, 1, __ATOMIC_RELEASE);
	pthread_join(reporter, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	for (int i = 0; i < nworkers; i++) {
		served += workers[i].served;
		rejected += workers[i].rejected;
		bytes += workers[i].bytes;
	}
	printf("%d workers, %ld requests each, %u slots: %.2f s, %.1f M requests/s\n", nworkers,
	       requests_per_worker, nr_slots, secs, (double)nworkers * (double)requests_per_worker / secs / 1e6);
	printf("endpoints: %lu created, %lu destroyed after %lu grace periods\n", created, destroyed,
	       grace_periods);
	printf("served %lu (%lu bytes), rejected over budget %lu; retired totals %lu, %lu, %lu; "
	       "counter %lld\n", served, bytes, rejected, retired.requests, retired.bytes, retired.rejected,
	       pcpu_counter_sum(&total_served));
	ok = created == destroyed && bad_endpoints == 0 && retired.requests == served &&
	     retired.bytes == bytes && retired.rejected == rejected &&
	     pcpu_counter_compare(&total_served, (long long)served) == 0;
	printf("%s\n", ok ? "all statistics add up" :
	       "MISMATCH: the statistics do not add up");
	if (bad_endpoints)
		printf("%lu endpoints with requests != quota - budget\n", bad_endpoints);
	pcpu_counter_destroy(&total_served);
	free(workers);
	free(slots);
	return ok ? 0 : 1;
}
