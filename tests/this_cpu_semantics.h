/*
 * this_cpu_semantics.h - the result of every this_cpu operation on every
 * width, signedness and pointers, from one thread; valid C and C++ (the C
 * test and the C++ tests include it).
 *
 * Each check sets every CPU's copy to X, runs one operation and then
 * requires its return value and that exactly one copy changed, to the
 * expected value (none for a failing cmpxchg).  Only this thread writes the
 * copies, so migration cannot disturb the check; with `want_copy` >= 0 the
 * changed copy must also be that one (the fake-rseq runs choose it).
 */
#ifndef PCPU_TEST_THIS_CPU_SEMANTICS_H
#define PCPU_TEST_THIS_CPU_SEMANTICS_H

#include "check.h"
#include "percpu.h"

static int sem_want_copy = -1;

/* How many copies differ from x; *changed gets the last such copy's value. */
#define SEM_DIFF(h, x, changed, where)                                              \
	__extension__({                                                             \
		unsigned n_ = 0;                                                    \
		for (unsigned c_ = 0; c_ < pcpu_nr_cpus(); c_++)                    \
			if (*per_cpu_ptr(h, c_) != (x)) {                           \
				n_++;                                               \
				(changed) = *per_cpu_ptr(h, c_);                    \
				(where) = (int)c_;                                  \
			}                                                           \
		n_;                                                                 \
	})

#define SEM_PREP(h, x)                                                              \
	do {                                                                        \
		for (unsigned c_ = 0; c_ < pcpu_nr_cpus(); c_++)                    \
			*per_cpu_ptr(h, c_) = (x);                                  \
	} while (0)

/* After one operation: one copy now holds want (or none changed). */
#define SEM_ONE(name, T, h, x, want)                                                \
	do {                                                                        \
		T got_ = (x);                                                       \
		int where_ = -1;                                                    \
		unsigned n_ = SEM_DIFF(h, x, got_, where_);                         \
		CHECK(n_ == 1 && got_ == (T)(want) &&                               \
			      (sem_want_copy < 0 || where_ == sem_want_copy),       \
		      "%s %s: %u copies changed (copy %d, want %d)", #T, name, n_,  \
		      where_, sem_want_copy);                                       \
	} while (0)

/*
 * Every operation on type T: X the starting value, D an addend (of another
 * type), Y a new value; X + D and X - D wrap in T.
 */
#define SEM_INT(T, h, X, D, Y)                                                      \
	do {                                                                        \
		T r_;                                                               \
		SEM_PREP(h, (T)(X));                                                \
		CHECK(this_cpu_read(h) == (T)(X), #T " read");                      \
		this_cpu_write(h, (Y));                                             \
		SEM_ONE("write", T, h, (T)(X), (T)(Y));                             \
		SEM_PREP(h, (T)(X));                                                \
		this_cpu_add(h, (D));                                               \
		SEM_ONE("add", T, h, (T)(X), (T)((T)(X) + (D)));                    \
		SEM_PREP(h, (T)(X));                                                \
		this_cpu_sub(h, (D));                                               \
		SEM_ONE("sub", T, h, (T)(X), (T)((T)(X) - (D)));                    \
		SEM_PREP(h, (T)(X));                                                \
		this_cpu_inc(h);                                                    \
		SEM_ONE("inc", T, h, (T)(X), (T)((T)(X) + 1u));                      \
		SEM_PREP(h, (T)(X));                                                \
		this_cpu_dec(h);                                                    \
		SEM_ONE("dec", T, h, (T)(X), (T)((T)(X) - 1u));                      \
		SEM_PREP(h, (T)(X));                                                \
		r_ = this_cpu_add_return(h, (D));                                   \
		CHECK(r_ == (T)((T)(X) + (D)), #T " add_return value");             \
		SEM_ONE("add_return", T, h, (T)(X), (T)((T)(X) + (D)));            \
		SEM_PREP(h, (T)(X));                                                \
		r_ = this_cpu_xchg(h, (Y));                                         \
		CHECK(r_ == (T)(X), #T " xchg value");                              \
		SEM_ONE("xchg", T, h, (T)(X), (T)(Y));                              \
		SEM_PREP(h, (T)(X));                                                \
		r_ = this_cpu_cmpxchg(h, (X), (Y));                                 \
		CHECK(r_ == (T)(X), #T " cmpxchg value");                           \
		SEM_ONE("cmpxchg", T, h, (T)(X), (T)(Y));                           \
		SEM_PREP(h, (T)(X));                                                \
		r_ = this_cpu_cmpxchg(h, (T)((T)(X) + 1u), (Y));                     \
		{                                                                   \
			T got_ = (T)(X);                                            \
			int where_ = -1;                                            \
			CHECK(r_ == (T)(X) && SEM_DIFF(h, (T)(X), got_, where_) == 0, \
			      #T " failing cmpxchg");                               \
			(void)got_, (void)where_;                                   \
		}                                                                   \
	} while (0)

/* read, write, xchg and cmpxchg on a pointer copy. */
#define SEM_PTR(T, h, X, Y)                                                         \
	do {                                                                        \
		T r_;                                                               \
		SEM_PREP(h, (X));                                                   \
		CHECK(this_cpu_read(h) == (X), "pointer read");                     \
		this_cpu_write(h, (Y));                                             \
		SEM_ONE("write", T, h, (X), (Y));                                   \
		SEM_PREP(h, (X));                                                   \
		r_ = this_cpu_xchg(h, (Y));                                         \
		CHECK(r_ == (X), "pointer xchg value");                             \
		SEM_ONE("xchg", T, h, (X), (Y));                                    \
		SEM_PREP(h, (X));                                                   \
		r_ = this_cpu_cmpxchg(h, (X), (Y));                                 \
		CHECK(r_ == (X), "pointer cmpxchg value");                          \
		SEM_ONE("cmpxchg", T, h, (X), (Y));                                 \
		SEM_PREP(h, (X));                                                   \
		r_ = this_cpu_cmpxchg(h, (Y), (Y));                                 \
		{                                                                   \
			T got_ = (X);                                               \
			int where_ = -1;                                            \
			CHECK(r_ == (X) && SEM_DIFF(h, (X), got_, where_) == 0,     \
			      "pointer failing cmpxchg");                           \
			(void)got_, (void)where_;                                   \
		}                                                                   \
	} while (0)

enum sem_colour { SEM_RED = 1, SEM_GREEN = 7, SEM_BLUE = 1000000 };

/* Every operation, width and signedness once; 0 if nothing failed. */
static int this_cpu_semantics(void)
{
	static char objs[4];
	unsigned long failed_before = check_failed;
	uint8_t __percpu *u8 = (uint8_t __percpu *)pcpu_alloc(1, 1);
	int8_t __percpu *s8 = (int8_t __percpu *)pcpu_alloc(1, 1);
	uint16_t __percpu *u16 = (uint16_t __percpu *)pcpu_alloc(2, 2);
	int16_t __percpu *s16 = (int16_t __percpu *)pcpu_alloc(2, 2);
	uint32_t __percpu *u32 = (uint32_t __percpu *)pcpu_alloc(4, 4);
	int32_t __percpu *s32 = (int32_t __percpu *)pcpu_alloc(4, 4);
	uint64_t __percpu *u64 = (uint64_t __percpu *)pcpu_alloc(8, 8);
	long long __percpu *s64 = (long long __percpu *)pcpu_alloc(8, 8);
	char *__percpu *ptr = (char *__percpu *)pcpu_alloc(sizeof(char *), sizeof(char *));
	enum sem_colour __percpu *col =
		(enum sem_colour __percpu *)pcpu_alloc(sizeof(enum sem_colour), sizeof(enum sem_colour));

	REQUIRE(u8 && s8 && u16 && s16 && u32 && s32 && u64 && s64 && ptr && col, "pcpu_alloc");
	SEM_INT(uint8_t, u8, 0xff, 1, 0x5a);              /* wraps to 0 */
	SEM_INT(uint8_t, u8, 3, 300, 0);                  /* 300 is 44 in 8 bits */
	SEM_INT(int8_t, s8, -128, -1, 127);               /* -128 - 1 wraps to 127 */
	SEM_INT(int8_t, s8, 100, 100, -1);                /* negative results sign-extend */
	SEM_INT(uint16_t, u16, 0xffff, 2, 0x8001);
	SEM_INT(int16_t, s16, -32768, 32767, -2);
	SEM_INT(uint32_t, u32, 0xffffffffu, 5, 0x80000000u);
	SEM_INT(uint32_t, u32, 7, -8, 1);                 /* negative addend on unsigned */
	SEM_INT(int32_t, s32, 2147483647, 1u, -2147483647 - 1);   /* 1u: no signed overflow here */
	SEM_INT(uint64_t, u64, 0xffffffffull, 1, 0xfedcba9876543210ull);   /* carry past 32 bits */
	SEM_INT(uint64_t, u64, 5, -6, ~0ull);
	SEM_INT(long long, s64, -1ll, 0x100000000ll, (-0x7fffffffffffffffll - 1));
	SEM_INT(long long, s64, 0x7ffffffffffffff0ll, 15u, 0);
	SEM_PTR(char *, ptr, &objs[1], &objs[2]);
	SEM_PTR(char *, ptr, &objs[3], (char *)0);
	SEM_INT(enum sem_colour, col, SEM_GREEN, 2, SEM_BLUE);
	pcpu_free(u8);
	pcpu_free(s8);
	pcpu_free(u16);
	pcpu_free(s16);
	pcpu_free(u32);
	pcpu_free(s32);
	pcpu_free(u64);
	pcpu_free(s64);
	pcpu_free(ptr);
	pcpu_free(col);
	return check_failed != failed_before;
}

#endif
