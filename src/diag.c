/*
 * diag.c - warnings, the invalid-pointer abort and environment variables
 * (see diag.h).
 */
#define _GNU_SOURCE   /* secure_getenv */
#include "diag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lock.h"
#include "percpu.h"

/* Rate limit per kind: RATE_BURST lines, then RATE_PER_SEC a second. */
#define RATE_BURST 10
#define RATE_PER_SEC 2

struct rate {
	unsigned long sec;      /* second of the current window */
	unsigned long used;     /* lines in this window (or of the burst) */
	unsigned long total;    /* lines ever printed */
	unsigned long suppressed;
	unsigned long deferred; /* counted where nothing may be printed */
};

static struct rate rates[PCPU_WARN_NR];
static pthread_mutex_t rate_mutex = PTHREAD_MUTEX_INITIALIZER;
static const char *const kind_names[PCPU_WARN_NR] = {
	"invalid requests", "failed allocations", "failed atomic allocations",
	"configuration warnings", "warnings",
};

static unsigned long now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (unsigned long)ts.tv_sec;
}

/* May one more line of this kind be printed now?  rate_mutex held. */
static bool rate_allow(struct rate *r)
{
	unsigned long sec = now_sec();

	if (r->total >= RATE_BURST && sec != r->sec) {
		r->sec = sec;
		r->used = 0;
	}
	if (r->total < RATE_BURST || r->used < RATE_PER_SEC) {
		r->used++;
		r->total++;
		if (r->total == RATE_BURST)
			r->sec = sec;
		return true;
	}
	r->suppressed++;
	return false;
}

void pcpu_warn(enum pcpu_warn_kind kind, unsigned flags, const char *fmt, ...)
{
	unsigned long suppressed;
	va_list ap;
	bool ok, burst_ends;

	if (flags & PCPU_NOWARN)
		return;
	pcpu_warn_flush();
	pthread_mutex_lock(&rate_mutex);
	ok = rate_allow(&rates[kind]);
	suppressed = ok ? rates[kind].suppressed : 0;
	burst_ends = ok && rates[kind].total == RATE_BURST;
	if (ok)
		rates[kind].suppressed = 0;
	pthread_mutex_unlock(&rate_mutex);
	if (!ok)
		return;
	va_start(ap, fmt);
	fputs("libpercpu: ", stderr);
	vfprintf(stderr, fmt, ap);
	if (suppressed)
		fprintf(stderr, " (%lu more %s not shown)", suppressed, kind_names[kind]);
	else if (burst_ends)
		fprintf(stderr, " (further %s suppressed beyond %d a second)", kind_names[kind],
			RATE_PER_SEC);
	fputc('\n', stderr);
	va_end(ap);
}

void pcpu_warn_defer(enum pcpu_warn_kind kind, unsigned flags)
{
	if (!(flags & PCPU_NOWARN))
		__atomic_fetch_add(&rates[kind].deferred, 1, __ATOMIC_RELAXED);
}

void pcpu_warn_flush(void)
{
	for (int k = 0; k < PCPU_WARN_NR; k++) {
		unsigned long n;

		if (!__atomic_load_n(&rates[k].deferred, __ATOMIC_RELAXED))
			continue;
		n = __atomic_exchange_n(&rates[k].deferred, 0, __ATOMIC_RELAXED);
		if (n)
			pcpu_warn((enum pcpu_warn_kind)k, 0, "%lu %s by PCPU_ATOMIC calls since the last "
				  "report%s", n, kind_names[k], k == PCPU_WARN_ATOMIC ?
				  " (no populated free space; the balancer refills)" : "");
	}
}

void pcpu_invalid_pointer(const char *fn, const void *ptr, const char *why)
{
	fprintf(stderr, "libpercpu: %s(): invalid pointer %p: %s\n", fn, ptr, why);
	abort();
}

void pcpu_lock_violation(const char *fn, const char *lock)
{
	fprintf(stderr, "libpercpu: %s() needs %s held by the calling thread\n", fn, lock);
	abort();
}

/* ---- environment --------------------------------------------------------- */

const char *pcpu_getenv(const char *name)
{
	const char *v = secure_getenv(name);

	return v && *v ? v : NULL;
}

static void bad_env(const char *name, const char *value, const char *why)
{
	pcpu_warn(PCPU_WARN_CONFIG, 0, "%s=%s: %s; using the default", name, value, why);
}

bool pcpu_env_size(const char *name, size_t min, size_t max, size_t *out)
{
	const char *v = pcpu_getenv(name);
	unsigned long long n;
	int shift = 0;
	char *end;

	if (!v)
		return false;
	errno = 0;
	if (*v < '0' || *v > '9' || ((n = strtoull(v, &end, 0)), errno)) {
		bad_env(name, v, "not a size in bytes");
		return false;
	}
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (*end) {
		bad_env(name, v, "not a size in bytes (a number with an optional k, m or g)");
		return false;
	}
	if (n > (~0ULL >> shift) || (n << shift) < min || (n << shift) > max) {
		char why[96];

		snprintf(why, sizeof(why), "outside %zu..%zu bytes", min, max);
		bad_env(name, v, why);
		return false;
	}
	*out = (size_t)(n << shift);
	return true;
}

bool pcpu_env_long(const char *name, long min, long max, long *out)
{
	const char *v = pcpu_getenv(name);
	char *end;
	long n;

	if (!v)
		return false;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end) {
		bad_env(name, v, "not a whole number");
		return false;
	}
	if (n < min || n > max) {
		char why[96];

		snprintf(why, sizeof(why), "outside %ld..%ld", min, max);
		bad_env(name, v, why);
		return false;
	}
	*out = n;
	return true;
}
