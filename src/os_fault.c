/*
 * os_fault.c - injected failures and call counters for the OS layer's
 * memory operations (see os_fault.h for the PCPU_FAULT syntax).
 *
 * Everything is an atomic, so any thread may configure or count at any
 * time.  os_mem.c asks os_fault_check() before each operation; an injected
 * failure happens before any system call.
 */
#define _GNU_SOURCE
#include "os_fault.h"
#include "os.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#define RAND_ONE (1ull << 53)   /* threshold meaning "always fail" */

struct fault_op {
	/* every field read and written with __atomic builtins only */
	unsigned long calls;            /* attempts, failed or not */
	unsigned long nth_count;        /* 0: nth rule off */
	unsigned long nth_skip;
	unsigned long nth_pos;          /* calls seen since the rule was armed */
	unsigned long long rand_thresh; /* fail if draw < thresh; 0: off */
	unsigned long long rand_state;
};

static struct fault_op g_fault[OS_NR_OPS];
static unsigned long g_injected;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static int g_env_status;

static const char *const op_names[OS_NR_OPS] = {
	[OS_OP_RESERVE] = "reserve",
	[OS_OP_POPULATE] = "populate",
	[OS_OP_DEPOPULATE] = "depopulate",
	[OS_OP_BIND] = "bind",
};

/* splitmix64 finaliser: turns a counter into well-mixed bits. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void set_nth(enum os_op op, unsigned long skip, unsigned long count)
{
	struct fault_op *f = &g_fault[op];

	/* disarm, reconfigure, re-arm: a racing call sees old or new rule */
	__atomic_store_n(&f->nth_count, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&f->nth_skip, skip, __ATOMIC_SEQ_CST);
	__atomic_store_n(&f->nth_pos, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&f->nth_count, count, __ATOMIC_RELEASE);
}

static void set_random(enum os_op op, double p, unsigned long seed)
{
	struct fault_op *f = &g_fault[op];
	unsigned long long thresh;

	if (!(p > 0))           /* also catches NaN */
		thresh = 0;
	else if (p >= 1)
		thresh = RAND_ONE;
	else
		thresh = (unsigned long long)(p * (double)RAND_ONE);
	__atomic_store_n(&f->rand_thresh, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&f->rand_state, mix64((uint64_t)seed ^ (0x9e3779b97f4a7c15ull * (op + 1))),
			 __ATOMIC_SEQ_CST);
	__atomic_store_n(&f->rand_thresh, thresh, __ATOMIC_RELEASE);
}

static void clear_all(void)
{
	for (int op = 0; op < OS_NR_OPS; op++) {
		__atomic_store_n(&g_fault[op].nth_count, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&g_fault[op].rand_thresh, 0, __ATOMIC_SEQ_CST);
	}
}

/* Parse a decimal probability ("1", "0.25", ".5") without strtod's locale. */
static int parse_prob(const char *s, const char *end, double *out)
{
	double v = 0, scale = 1;
	int digits = 0;

	for (; s < end && *s >= '0' && *s <= '9'; s++, digits++)
		v = v * 10 + (*s - '0');
	if (s < end && *s == '.')
		for (s++; s < end && *s >= '0' && *s <= '9'; s++, digits++)
			v += (*s - '0') * (scale /= 10);
	if (s != end || !digits || v > 1)
		return -1;
	*out = v;
	return 0;
}

struct fault_spec {
	int has_nth, has_p;
	unsigned long nth;
	double p;
};

/* Parse one "op:spec" or "seed=N" item occupying [s, end). */
static int parse_item(const char *s, const char *end, struct fault_spec *spec,
		      unsigned long *seed)
{
	const char *colon = memchr(s, ':', (size_t)(end - s));
	unsigned long v;
	const char *p;
	int op;

	if (!colon) {
		if ((size_t)(end - s) < 5 || memcmp(s, "seed=", 5))
			return -1;
		p = os_parse_uint(s + 5, &v, ULONG_MAX);
		if (!p || p != end)
			return -1;
		*seed = v;
		return 0;
	}
	for (op = 0; op < OS_NR_OPS; op++)
		if (strlen(op_names[op]) == (size_t)(colon - s) &&
		    !memcmp(s, op_names[op], (size_t)(colon - s)))
			break;
	if (op == OS_NR_OPS)
		return -1;
	s = colon + 1;
	if ((size_t)(end - s) >= 4 && !memcmp(s, "nth=", 4)) {
		p = os_parse_uint(s + 4, &v, ULONG_MAX);
		if (!p || p != end || v == 0)
			return -1;
		spec[op].has_nth = 1;
		spec[op].nth = v;
		return 0;
	}
	if (parse_prob(s, end, &spec[op].p))
		return -1;
	spec[op].has_p = 1;
	return 0;
}

/* Parse a whole PCPU_FAULT string and, only if all of it is valid, apply it. */
static int parse_and_apply(const char *str)
{
	struct fault_spec spec[OS_NR_OPS];
	unsigned long seed = 1;
	const char *s = str, *end;

	memset(spec, 0, sizeof(spec));
	if (!str) {
		errno = EINVAL;
		return -1;
	}
	while (os_is_space(*s))
		s++;
	while (*s) {
		const char *e;

		end = strchr(s, ',');
		if (!end)
			end = s + strlen(s);
		for (e = end; e > s && os_is_space(e[-1]); e--)
			;
		if (e == s || parse_item(s, e, spec, &seed)) {
			errno = EINVAL;
			return -1;
		}
		if (!*end)
			break;
		for (s = end + 1; os_is_space(*s); s++)
			;
		if (!*s) {              /* trailing comma */
			errno = EINVAL;
			return -1;
		}
	}
	clear_all();
	for (int op = 0; op < OS_NR_OPS; op++) {
		if (spec[op].has_nth)
			set_nth(op, spec[op].nth - 1, 1);
		if (spec[op].has_p)
			set_random(op, spec[op].p, seed);
	}
	return 0;
}

/* PCPU_FAULT, ignored under secure execution (AT_SECURE: set-user-ID or
 * set-group-ID programs, file capabilities) like every PCPU_* variable
 * (diag.c's pcpu_getenv, a layer above, cannot be used here). */
static void env_init(void)
{
#ifdef __GLIBC__
	const char *s = secure_getenv("PCPU_FAULT");
#else
	const char *s = getauxval(AT_SECURE) ? NULL : getenv("PCPU_FAULT");
#endif
	if (s)
		__atomic_store_n(&g_env_status, parse_and_apply(s), __ATOMIC_SEQ_CST);
}

static void env_ensure(void)
{
	pthread_once(&env_once, env_init);
}

/*
 * Count one call of op and decide whether it must fail.  Returns 1 (with
 * errno = ENOMEM) for an injected failure.
 */
int os_fault_check(enum os_op op)
{
	struct fault_op *f = &g_fault[op];
	unsigned long count;
	unsigned long long thresh;

	env_ensure();
	__atomic_fetch_add(&f->calls, 1, __ATOMIC_RELAXED);
	count = __atomic_load_n(&f->nth_count, __ATOMIC_ACQUIRE);
	if (count) {
		unsigned long pos = __atomic_fetch_add(&f->nth_pos, 1, __ATOMIC_SEQ_CST);
		unsigned long skip = __atomic_load_n(&f->nth_skip, __ATOMIC_SEQ_CST);

		if (pos >= skip && pos - skip < count)
			goto fail;
	}
	thresh = __atomic_load_n(&f->rand_thresh, __ATOMIC_ACQUIRE);
	if (thresh) {
		uint64_t x = __atomic_fetch_add(&f->rand_state, 0x9e3779b97f4a7c15ull, __ATOMIC_SEQ_CST);

		if ((mix64(x) >> 11) < thresh)
			goto fail;
	}
	return 0;
fail:
	__atomic_fetch_add(&g_injected, 1, __ATOMIC_RELAXED);
	errno = ENOMEM;
	return 1;
}

void os_fault_nth(enum os_op op, unsigned long skip, unsigned long count)
{
	env_ensure();
	if ((unsigned)op < OS_NR_OPS)
		set_nth(op, skip, count);
}

void os_fault_random(enum os_op op, double probability, unsigned long seed)
{
	env_ensure();
	if ((unsigned)op < OS_NR_OPS)
		set_random(op, probability, seed);
}

void os_fault_clear(void)
{
	env_ensure();
	clear_all();
}

int os_fault_parse(const char *spec)
{
	env_ensure();
	return parse_and_apply(spec);
}

int os_fault_env_status(void)
{
	env_ensure();
	return __atomic_load_n(&g_env_status, __ATOMIC_SEQ_CST);
}

unsigned long os_call_count(enum os_op op)
{
	if ((unsigned)op >= OS_NR_OPS)
		return 0;
	return __atomic_load_n(&g_fault[op].calls, __ATOMIC_RELAXED);
}

unsigned long os_fault_count(void)
{
	return __atomic_load_n(&g_injected, __ATOMIC_RELAXED);
}

void os_counters_reset(void)
{
	for (int op = 0; op < OS_NR_OPS; op++)
		__atomic_store_n(&g_fault[op].calls, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&g_injected, 0, __ATOMIC_SEQ_CST);
}
