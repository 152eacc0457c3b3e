/*
 * test_typed_api.c - typed allocation, allocation with a per-CPU
 * initialiser, sums and iteration (<percpu.h>):
 *
 *   alloc     PCPU_ALLOC of scalars, structs, arrays and over-aligned
 *             types: the handle's type, every copy zeroed and aligned;
 *             a type aligned above a page is EINVAL; PCPU_ALLOC_FLAGS
 *   init      pcpu_alloc_init calls init once per CPU, in order, on the
 *             zeroed copy per_cpu_ptr gives, with arg; no call on failure;
 *             init NULL; an init that allocates (pcpu_alloc_init too) and
 *             frees; PCPU_ATOMIC; the documented failure pattern (init
 *             records it, the caller frees): nothing leaks
 *   sum       pcpu_sum's result type for each integer type (long for 32
 *             bits and less, unsigned kept for 64-bit unsigned), no wrap
 *             for char, short, int and unsigned int copies near their
 *             maximum, exact signed sums, const handles, pcpu_sum_field
 *   foreach   pcpu_for_each_ptr visits every CPU once in order with the
 *             typed copy, const stays const, break and continue, nested
 *
 * One process with 5 CPU slots (more copies than this machine may have).
 * Usage: test_typed_api [seed]
 */
#define _GNU_SOURCE
#include <limits.h>

#include "kit.h"

#define NR 5

#define SAME_TYPE(a, T) __builtin_types_compatible_p(__typeof__(a), T)

struct conn {
	unsigned long opened, closed;
	short drops;
	unsigned int bytes;
	char name[5];
};

typedef long __attribute__((aligned(256))) line256_t;
typedef char __attribute__((aligned(8192))) page2_t;

/* ---- PCPU_ALLOC ----------------------------------------------------------- */

static void test_alloc(void)
{
	long __percpu *l = PCPU_ALLOC(long);
	struct conn __percpu *c = PCPU_ALLOC(struct conn);
	int (__percpu *arr)[7] = PCPU_ALLOC(int[7]);
	line256_t __percpu *line = PCPU_ALLOC_FLAGS(line256_t, PCPU_NOWARN);
	uint64_t base = kit_cur_alloc();
	unsigned cpu;

	_Static_assert(SAME_TYPE(PCPU_ALLOC(long), long *), "PCPU_ALLOC(long) is long *");
	_Static_assert(SAME_TYPE(PCPU_ALLOC(int[7]), int (*)[7]), "an array type");
	REQUIRE(l && c && arr && line, "PCPU_ALLOC: %s", strerror(errno));
	CHECK(pcpu_alloc_size(l) == sizeof(long) && pcpu_alloc_size(arr) == 7 * sizeof(int) &&
	      pcpu_alloc_size(c) == (sizeof(struct conn) + 3) / 4 * 4, "sizes");
	CHECK(kit_zeroed(l, sizeof(long), _Alignof(long)) && kit_zeroed(c, sizeof(*c), _Alignof(struct conn)) &&
	      kit_zeroed(arr, sizeof(*arr), 4) && kit_zeroed(line, sizeof(line256_t), 256),
	      "zeroed and aligned in every copy");
	pcpu_for_each_cpu(cpu) {
		(*per_cpu_ptr(arr, cpu))[6] = (int)cpu;
		per_cpu_ptr(c, cpu)->drops = (short)-cpu;
	}
	pcpu_for_each_cpu(cpu)
		CHECK((*per_cpu_ptr(arr, cpu))[6] == (int)cpu && per_cpu_ptr(c, cpu)->drops == -(short)cpu,
		      "typed copies on CPU %u", cpu);
	errno = 0;
	CHECK(PCPU_ALLOC_FLAGS(page2_t, PCPU_NOWARN) == NULL && errno == EINVAL,
	      "a type aligned above the page: EINVAL");
	pcpu_free(l);
	pcpu_free(c);
	pcpu_free(arr);
	pcpu_free(line);
	CHECK(kit_cur_alloc() == base - 4, "freed");
}

/* ---- pcpu_alloc_init -------------------------------------------------------- */

struct init_log {
	unsigned calls, next_cpu;
	int out_of_order, not_zeroed, wrong_ptr;
	void __percpu *expect;          /* not known before the return: checked after */
	void *copies[NR];
	void __percpu *nested[NR];      /* allocated by init */
	void __percpu *victim;          /* freed by init */
	int fail_on_cpu;                /* -1: never */
	int failed;
};

static void init_conn(void *copy, unsigned int cpu, void *arg)
{
	struct init_log *log = arg;
	struct conn *c = copy;
	static const struct conn zero;

	log->calls++;
	log->out_of_order += cpu != log->next_cpu++;
	log->not_zeroed += memcmp(c, &zero, sizeof(zero)) != 0;
	log->copies[cpu % NR] = copy;
	c->opened = 100 + cpu;
	snprintf(c->name, sizeof(c->name), "c%u", cpu);
	if ((int)cpu == log->fail_on_cpu)
		log->failed = 1;
}

static void init_nested(void *copy, unsigned int cpu, void *arg)
{
	struct init_log *log = arg;
	struct init_log inner = { .fail_on_cpu = -1 };

	init_conn(copy, cpu, arg);
	/* Reentrant: allocate (with an init of its own) and free. */
	log->nested[cpu] = pcpu_alloc_init(sizeof(struct conn), 0, 0, init_conn, &inner);
	if (!log->nested[cpu] || inner.calls != NR)
		log->failed = 1;
	if (cpu == 2 && log->victim) {
		pcpu_free(log->victim);
		log->victim = NULL;
	}
}

static void test_init(void)
{
	struct init_log log = { .fail_on_cpu = -1 };
	uint64_t base = kit_cur_alloc();
	struct conn __percpu *c;
	unsigned cpu;

	c = pcpu_alloc_init(sizeof(struct conn), _Alignof(struct conn), 0, init_conn, &log);
	REQUIRE(c, "pcpu_alloc_init: %s", strerror(errno));
	CHECK(log.calls == NR && !log.out_of_order && !log.not_zeroed, "once per CPU, in order, zeroed: "
	      "%u calls, %d out of order, %d not zeroed", log.calls, log.out_of_order, log.not_zeroed);
	pcpu_for_each_cpu(cpu) {
		char want[5];

		snprintf(want, sizeof(want), "c%u", cpu);
		CHECK(log.copies[cpu] == per_cpu_ptr(c, cpu), "init got per_cpu_ptr(h, %u)", cpu);
		CHECK(per_cpu_ptr(c, cpu)->opened == 100 + cpu && !strcmp(per_cpu_ptr(c, cpu)->name, want),
		      "init's values on CPU %u", cpu);
	}
	pcpu_free(c);

	/* No init: pcpu_alloc_flags; a failure calls nothing. */
	c = pcpu_alloc_init(sizeof(struct conn), 0, 0, NULL, NULL);
	CHECK(c && kit_zeroed(c, sizeof(struct conn), 4), "init NULL: zeroed");
	pcpu_free(c);
	log = (struct init_log){ .fail_on_cpu = -1 };
	errno = 0;
	CHECK(!pcpu_alloc_init(0, 0, PCPU_NOWARN, init_conn, &log) && errno == EINVAL && log.calls == 0,
	      "size 0: EINVAL, init not called");
	CHECK(!pcpu_alloc_init(8, 3, PCPU_NOWARN, init_conn, &log) && errno == EINVAL && log.calls == 0,
	      "align 3: EINVAL, init not called");

	/* Reentrant init, and PCPU_ATOMIC. */
	log = (struct init_log){ .fail_on_cpu = -1, .victim = pcpu_alloc(64, 0) };
	c = pcpu_alloc_init(sizeof(struct conn), 0, 0, init_nested, &log);
	CHECK(c && log.calls == NR && !log.failed && !log.victim, "an init that allocates and frees");
	for (int i = 0; i < NR; i++)
		pcpu_free(log.nested[i]);
	pcpu_free(c);
	log = (struct init_log){ .fail_on_cpu = -1 };
	c = pcpu_alloc_init(sizeof(struct conn), 0, PCPU_ATOMIC, init_conn, &log);
	CHECK(c && log.calls == NR && per_cpu_ptr(c, 4)->opened == 104, "PCPU_ATOMIC");
	pcpu_free(c);

	/* The failure pattern: init records it, the caller frees. */
	log = (struct init_log){ .fail_on_cpu = 3 };
	c = pcpu_alloc_init(sizeof(struct conn), 0, 0, init_conn, &log);
	REQUIRE(c, "allocation");
	CHECK(log.failed && log.calls == NR, "the failure is recorded; every copy was still visited");
	pcpu_free(c);
	CHECK(kit_cur_alloc() == base, "nothing leaks: %" PRIu64 " live, %" PRIu64 " before",
	      kit_cur_alloc(), base);
}

/* ---- sums ----------------------------------------------------------------- */

/* Fill every copy of h with v and check the sum is NR * v in the sum's type. */
#define FILL_SUM(T, v, want_type)                                                   \
	do {                                                                        \
		T __percpu *h_ = PCPU_ALLOC(T);                                     \
		const T __percpu *ch_ = h_;                                         \
		unsigned cpu_;                                                      \
		REQUIRE(h_, "PCPU_ALLOC(" #T ")");                                  \
		_Static_assert(SAME_TYPE(pcpu_sum(h_), want_type), "pcpu_sum(" #T ") is " #want_type); \
		_Static_assert(SAME_TYPE(pcpu_sum(ch_), want_type), "const " #T);   \
		pcpu_for_each_cpu(cpu_) *per_cpu_ptr(h_, cpu_) = (v);               \
		CHECK(pcpu_sum(ch_) == (want_type)NR * (want_type)(T)(v),           \
		      #T ": sum of %d copies of " #v, NR);                          \
		pcpu_free(h_);                                                      \
	} while (0)

static void test_sum(void)
{
	struct conn __percpu *c = PCPU_ALLOC(struct conn);
	const struct conn __percpu *cc = c;
	enum color { RED, GREEN = 7 } __percpu *e = PCPU_ALLOC(enum color);
	unsigned cpu;
	long total;

	FILL_SUM(signed char, SCHAR_MAX, long);
	FILL_SUM(unsigned char, UCHAR_MAX, long);
	FILL_SUM(short, SHRT_MAX, long);
	FILL_SUM(short, SHRT_MIN, long);
	FILL_SUM(unsigned short, USHRT_MAX, long);
	FILL_SUM(int, INT_MAX, long);
	FILL_SUM(int, INT_MIN, long);
	FILL_SUM(unsigned int, UINT_MAX, long);
	FILL_SUM(long, -123456789012L, long);
	FILL_SUM(long long, LLONG_MAX / 8, long long);
	FILL_SUM(unsigned long, 1UL << 60, unsigned long);
	FILL_SUM(unsigned long long, ULLONG_MAX, unsigned long long);  /* wraps like the copies */
	FILL_SUM(uint8_t, 200, long);
	FILL_SUM(int64_t, -5, long);

	REQUIRE(c && e, "alloc");
	pcpu_for_each_cpu(cpu) {
		per_cpu_ptr(c, cpu)->opened = 10 * cpu;
		per_cpu_ptr(c, cpu)->drops = SHRT_MAX;
		per_cpu_ptr(c, cpu)->bytes = UINT_MAX - cpu;
		*per_cpu_ptr(e, cpu) = GREEN;
	}
	total = 0;
	pcpu_for_each_cpu(cpu)
		total += 10 * (long)cpu;
	CHECK(pcpu_sum_field(cc, opened) == (unsigned long)total, "field opened");
	CHECK(pcpu_sum_field(c, drops) == (long)NR * SHRT_MAX, "field drops: no short wrap");
	CHECK(pcpu_sum_field(cc, bytes) == (long)NR * UINT_MAX - total / 10, "field bytes: no wrap");
	CHECK(pcpu_sum(e) == NR * GREEN, "an enum");
	_Static_assert(SAME_TYPE(pcpu_sum_field(cc, drops), long), "a short field sums as long");
	pcpu_free(c);
	pcpu_free(e);
}

/* ---- pcpu_for_each_ptr ---------------------------------------------------- */

static void test_foreach(void)
{
	struct conn __percpu *c = PCPU_ALLOC(struct conn);
	const struct conn __percpu *cc = c;
	unsigned visits = 0, expect = 0, after_break = 0, pairs = 0;

	REQUIRE(c, "alloc");
	pcpu_for_each_ptr(cpu, p, c) {
		_Static_assert(SAME_TYPE(p, struct conn *), "typed copy");
		CHECK(p == per_cpu_ptr(c, cpu) && cpu == expect++, "CPU %u in order", cpu);
		p->opened = cpu + 1;
		visits++;
	}
	CHECK(visits == NR, "%u visits", visits);
	pcpu_for_each_ptr(cpu, p, cc) {
		_Static_assert(SAME_TYPE(p, const struct conn *), "const stays const");
		CHECK(p->opened == cpu + 1, "value on CPU %u", cpu);
	}
	visits = 0;
	pcpu_for_each_ptr(cpu, p, c) {
		if (cpu == 1)
			continue;
		visits++;
		if (cpu == 3)
			break;
		(void)p;
	}
	CHECK(visits == 3, "continue and break: %u visits (0, 2, 3)", visits);
	pcpu_for_each_ptr(cpu, p, c) {
		pcpu_for_each_ptr(cpu2, q, cc) {
			if (cpu2 == 2)
				break;
			pairs += q->opened == cpu2 + 1 && p->opened == cpu + 1;
		}
		after_break++;
	}
	CHECK(pairs == 2 * NR && after_break == NR, "nested with an inner break: %u pairs, %u outer",
	      pairs, after_break);
	pcpu_free(c);
}

int main(int argc, char **argv)
{
	struct pcpu_config cfg = { .nr_cpus = NR };

	test_seed(argc, argv);
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	test_alloc();
	test_init();
	test_sum();
	test_foreach();
	CHECK(pcpu_verify() == 0, "verify");
	TEST_DONE();
}
