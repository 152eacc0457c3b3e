/*
 * static_lib_a.h - interface of the start-up test library (static_lib_a.c,
 * static_lib_a2.c) used by test_static.
 */
#ifndef STATIC_LIB_A_H
#define STATIC_LIB_A_H

#include <percpu.h>

#define LIBA_COUNTER_INIT 1000
#define LIBA_PAIR_X 7
#define LIBA_PAIR_Y (-7)
#define LIBA_ALIGNED_INIT 0x5a5a

struct liba_pair {
	int x, y;
};

/* A cache-line aligned type: the library's block must keep the alignment. */
typedef long __attribute__((aligned(64))) liba_line_t;

#define LIBA_EXPORTED_INIT 77

/* Exported to the program and other libraries (static_lib_a2.c). */
PCPU_DECLARE_EXTERN(long, liba_exported);

long __percpu *liba_counter_handle(void);
long __percpu *liba_counter_handle2(void);
struct liba_pair __percpu *liba_pair_handle(void);
liba_line_t __percpu *liba_aligned_handle(void);
long __percpu *liba_exported_own_handle(void);
void liba_inc(void);

#endif
