/*
 * api_header_use.c - the typed API of <percpu.h> from a caller that is C
 * or C++ (tests/api_header.sh compiles it with gcc, g++, clang and clang++,
 * -Wall -Wextra -Werror, and runs it): PCPU_ALLOC without a cast,
 * pcpu_alloc_init, pcpu_sum on const handles and its result types,
 * pcpu_sum_field, pcpu_for_each_ptr, struct pcpu_counter (inline and
 * library calls), and a variable exported with PCPU_DEFINE_EXPORTED used
 * through PCPU_EXTERN_VAR.  Prints "ok" and exits 0 when every check holds.
 *
 * With -DNEGATIVE=n it is one of the programs that must NOT compile:
 *   1  PCPU_VAR of a name only PCPU_DECLARE_EXTERN declared
 *   2  pcpu_sum of a struct handle
 *   3  pcpu_sum of a double handle
 */
#include <percpu.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
template <typename A, typename B> struct same_type { enum { value = 0 }; };
template <typename A> struct same_type<A, A> { enum { value = 1 }; };
#define SAME_TYPE(e, T) (same_type<__typeof__(e), T>::value)
#define STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define SAME_TYPE(e, T) __builtin_types_compatible_p(__typeof__(e), T)
#define STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

static int failed;

#define EXPECT(cond)                                                            \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond); \
			failed++;                                               \
		}                                                               \
	} while (0)

struct stats {
	unsigned long opened;
	short drops;
};

#if NEGATIVE == 1
PCPU_DECLARE_EXTERN(long, elsewhere);
long __percpu *negative(void) { return PCPU_VAR(elsewhere); }
#elif NEGATIVE == 2
long negative(struct stats __percpu *s) { return (long)pcpu_sum(s); }
#elif NEGATIVE == 3
long negative(double __percpu *d) { return (long)pcpu_sum(d); }
#endif

PCPU_DECLARE_EXTERN(long, exported_hits);
PCPU_DEFINE_EXPORTED(long, exported_hits) = 2;

static void init_stats(void *copy, unsigned int cpu, void *arg)
{
	struct stats *s = (struct stats *)copy;

	s->opened = cpu + *(unsigned long *)arg;
}

int main(void)
{
	struct pcpu_config cfg;
	unsigned long add = 10, want_opened = 0;
	unsigned int n;

	memset(&cfg, 0, sizeof(cfg));
	cfg.nr_cpus = 3;
	if (pcpu_init(&cfg))
		return 2;
	n = pcpu_nr_cpus();

	/* Typed allocation: no cast, the handle's type. */
	struct stats __percpu *s = PCPU_ALLOC(struct stats);
	short __percpu *sh = PCPU_ALLOC_FLAGS(short, PCPU_NOWARN);
	const struct stats __percpu *cs = s;
	const short __percpu *csh = sh;

	STATIC_ASSERT(SAME_TYPE(PCPU_ALLOC(struct stats), struct stats *), "typed");
	EXPECT(s && sh);
	for (unsigned int cpu = 0; cpu < n; cpu++)
		*per_cpu_ptr(sh, cpu) = 30000;

	/* Sums: const handles, result types, no short wrap, one field. */
	/* (g++ takes no statement expression in a template argument: the
	 * results go through variables of their type first.) */
	__typeof__(pcpu_sum(csh)) short_sum = pcpu_sum(csh);
	__typeof__(pcpu_sum_field(cs, opened)) opened_sum = 0;

	STATIC_ASSERT(SAME_TYPE(short_sum, long), "short sums as long");
	STATIC_ASSERT(SAME_TYPE(opened_sum, unsigned long), "unsigned long stays");
	EXPECT(short_sum == 30000L * n);
	pcpu_for_each_ptr(cpu, p, s) {
		STATIC_ASSERT(SAME_TYPE(p, struct stats *), "typed copy");
		p->opened = cpu;
		p->drops = -1;
		want_opened += cpu;
	}
	pcpu_for_each_ptr(cpu, p, cs) {
		STATIC_ASSERT(SAME_TYPE(p, const struct stats *), "const copy");
		EXPECT(p->opened == cpu);
	}
	opened_sum = pcpu_sum_field(cs, opened);
	EXPECT(opened_sum == want_opened);
	EXPECT(pcpu_sum_field(s, drops) == -(long)n);
	pcpu_free(s);
	pcpu_free(sh);

	/* An initialiser per CPU. */
	s = (struct stats __percpu *)pcpu_alloc_init(sizeof(struct stats), 8, 0, init_stats, &add);
	EXPECT(s && per_cpu_ptr(s, n - 1)->opened == n - 1 + add && per_cpu_ptr(s, 0)->drops == 0);
	pcpu_free(s);

	/* The batched counter, inline and through the library. */
	struct pcpu_counter c;

	EXPECT(pcpu_counter_init(&c, 5) == 0);
	for (int i = 0; i < 1000; i++)
		pcpu_counter_add(&c, 1);
	(pcpu_counter_add)(&c, -5);
	pcpu_counter_add_batch(&c, 3, 0);
	(pcpu_counter_add_batch)(&c, 2, 1000);
	EXPECT(pcpu_counter_sum(&c) == 1005);
	EXPECT(pcpu_counter_read(&c) <= 1005 && (pcpu_counter_read)(&c) >= 1005 - 64 * (long long)n);
	EXPECT(pcpu_counter_compare(&c, 1005) == 0 && pcpu_counter_compare(&c, 1004) == 1 &&
	       pcpu_counter_compare(&c, 1006) == -1);
	pcpu_counter_destroy(&c);

	/* An exported variable: the accessor gives the module's own handle. */
	EXPECT(PCPU_EXTERN_VAR(exported_hits) == PCPU_VAR(exported_hits));
	this_cpu_inc(PCPU_EXTERN_VAR(exported_hits));
	EXPECT(pcpu_sum(PCPU_EXTERN_VAR(exported_hits)) == 2L * n + 1);

	EXPECT(pcpu_verify() == 0);
	if (failed)
		return 1;
	printf("ok\n");
	return 0;
}
