/*
 * percpu_rseq_ops.h - the restartable sequences behind this_cpu_* on
 * x86_64 and aarch64 (see <percpu_this_cpu.h> for the design and the
 * rules).  Included by it when the compiler and the C library allow; do not
 * include it directly.
 *
 * Every sequence has the same shape, labels local to its asm statement:
 *
 *   0: rseq_cs = &descriptor 3                   (arm; the restart point)
 *   1: idx = the index field of the rseq area    (start_ip)
 *      if (idx >= pcpu_this_cpu_.ops_nr) goto bail
 *      addr = handle + pcpu_cpu_offset[idx]
 *      ... loads, then ONE store: the commit
 *   2: rseq_cs = 0                               (post-commit; disarm)
 *   3: { version 0, flags 0, start 1b, post_commit 2b - 1b, abort 4f }
 *      RSEQ_SIG
 *   4: goto 0b                                   (abort handler: restart)
 *
 * On x86_64 the add is one unlocked read-modify-write instruction, whose
 * store is the commit.  The bail path (a cold function per operation and
 * width, outside the critical section) disarms, then in atomic mode does
 * the atomic RMW on the copy pcpu_current_cpu() picks; otherwise it asks
 * the library (pcpu_this_cpu_slow_), which switches to atomic mode or says
 * "run the sequence again" (it bailed before initialisation, say).
 */
#ifndef PERCPU_RSEQ_OPS_H
#define PERCPU_RSEQ_OPS_H

#ifndef PERCPU_THIS_CPU_H
#error "include <percpu.h>, not <percpu_rseq_ops.h>"
#endif

#define PCPU_AI_ __inline__ __attribute__((__always_inline__))
#define PCPU_SLOW_ __attribute__((__noinline__, __cold__, __unused__))

/* The copies as the bail path's atomics see them, whatever their type. */
typedef uint8_t __attribute__((__may_alias__)) pcpu_a8_t;
typedef uint16_t __attribute__((__may_alias__)) pcpu_a16_t;
typedef uint32_t __attribute__((__may_alias__)) pcpu_a32_t;
typedef uint64_t __attribute__((__may_alias__)) pcpu_a64_t;
/* Registers holding a loaded value: 32 bits unless the width is 64. */
typedef uint32_t pcpu_r8_t;
typedef uint32_t pcpu_r16_t;
typedef uint32_t pcpu_r32_t;
typedef uint64_t pcpu_r64_t;

/* After a bail: disarm, then the copy for an atomic RMW, or 0 to run the
 * sequence again. */
static PCPU_AI_ uintptr_t pcpu_bail_copy_(uintptr_t h)
{
	unsigned int i;

#if defined(__x86_64__)
	__asm__ __volatile__("movq $0, %%fs:8(%0)" : : "r"(__rseq_offset) : "memory");
#else
	__atomic_store_n((uint64_t *)((char *)__builtin_thread_pointer() + __rseq_offset + 8), 0,
			 __ATOMIC_RELAXED);
#endif
	if (__builtin_expect(__atomic_load_n(&pcpu_this_cpu_.atomic, __ATOMIC_ACQUIRE) != 0, 1))
		i = pcpu_current_cpu();
	else if ((i = pcpu_this_cpu_slow_(1)) == PCPU_RETRY_RSEQ_)
		return 0;
	return h + pcpu_cpu_offset[i];
}

#define PCPU_CS_TAIL_(disarm, sig, jmp)                                      \
	"2:\n\t"                                                             \
	disarm "\n\t"                                                        \
	".pushsection __pcpu_rseq_cs, \"aw\"\n\t"                           \
	".balign 32\n"                                                       \
	"3:\n\t"                                                             \
	".long 0, 0\n\t"                                                     \
	".quad 1b, 2b - 1b, 4f\n\t"                                         \
	".popsection\n\t"                                                    \
	".pushsection __pcpu_rseq_abort, \"ax\"\n\t"                        \
	sig "\n"                                                             \
	"4:\n\t"                                                             \
	jmp " 0b\n\t"                                                        \
	".popsection\n"

/*
 * One operation of one width: the inline sequence, and its bail path out of
 * line (so the inline part keeps nothing live across a call).  BODY loads
 * and commits; IN adds input operands; ATOMIC is the same operation on
 * copy `a` as an atomic RMW.  VAL returns the uint<N>_t result in r.
 */
#define PCPU_RSEQ_VOID_(NAME, N, PARAMS, ARGS, BODY, IN, ATOMIC)              \
static PCPU_SLOW_ void pcpu_##NAME##_##N##_slow_ PARAMS;                      \
static PCPU_AI_ void pcpu_##NAME##_##N##_ PARAMS                              \
{                                                                             \
	PCPU_CS_VARS_;                                                        \
	__asm__ __volatile__ goto(PCPU_CS_HEAD_ BODY PCPU_CS_END_             \
				  : PCPU_CS_OUT_ : PCPU_CS_IN_ PCPU_X_ IN             \
				  : "memory", "cc" : pcpu_bail);              \
	return;                                                               \
pcpu_bail:                                                                    \
	pcpu_##NAME##_##N##_slow_ ARGS;                                       \
}                                                                             \
static void pcpu_##NAME##_##N##_slow_ PARAMS                                  \
{                                                                             \
	uintptr_t a = pcpu_bail_copy_(h);                                     \
                                                                              \
	if (!a)                                                               \
		pcpu_##NAME##_##N##_ ARGS;                                    \
	else                                                                  \
		(void)(ATOMIC);                                               \
}
#define PCPU_RSEQ_VAL_(NAME, N, PARAMS, ARGS, BODY, IN, ATOMIC)               \
static PCPU_SLOW_ uint##N##_t pcpu_##NAME##_##N##_slow_ PARAMS;               \
static PCPU_AI_ uint##N##_t pcpu_##NAME##_##N##_ PARAMS                       \
{                                                                             \
	PCPU_CS_VARS_;                                                        \
	pcpu_r##N##_t r;                                                      \
	__asm__ __volatile__ goto(PCPU_CS_HEAD_ BODY PCPU_CS_END_             \
				  : PCPU_CS_OUT_, [r] "=&r"(r) : PCPU_CS_IN_ PCPU_X_ IN \
				  : "memory", "cc" : pcpu_bail);              \
	return (uint##N##_t)r;                                                \
pcpu_bail:                                                                    \
	return pcpu_##NAME##_##N##_slow_ ARGS;                                \
}                                                                             \
static uint##N##_t pcpu_##NAME##_##N##_slow_ PARAMS                           \
{                                                                             \
	uintptr_t a = pcpu_bail_copy_(h);                                     \
                                                                              \
	return a ? (uint##N##_t)(ATOMIC) : pcpu_##NAME##_##N##_ ARGS;         \
}

#define PCPU_A_(N) ((pcpu_a##N##_t *)a)
#define PCPU_X_(...) __VA_ARGS__

#if defined(__x86_64__)
/* ---- x86_64: the rseq area is at %fs:__rseq_offset ---------------------- */

#define PCPU_CS_HEAD_                                                        \
	"0:\n\t"                                                             \
	"leaq 3f(%%rip), %[cs]\n\t"                                          \
	"movq %[cs], %%fs:8(%[rso])\n"                                       \
	"1:\n\t"                                                             \
	"movl %%fs:(%[ixo]), %k[ix]\n\t"                                     \
	"cmpl %[nr], %k[ix]\n\t"                                             \
	"jae %l[pcpu_bail]\n\t"                                              \
	"movq (%[tab],%q[ix],8), %q[ix]\n\t"
/* The signature, encoded as the operand of a ud1 so disassemblers stay in
 * step; the kernel checks only its last 4 bytes. */
#define PCPU_CS_END_                                                         \
	PCPU_CS_TAIL_("movq $0, %%fs:8(%[rso])",                             \
		      ".byte 0x0f, 0xb9, 0x3d\n\t.long 0x53053053", "jmp")
#define PCPU_CS_OUT_ [cs] "=&r"(pcpu_cs_), [ix] "=&r"(pcpu_ix_)
#define PCPU_CS_IN_                                                          \
	[rso] "r"(__rseq_offset), [ixo] "r"(pcpu_this_cpu_.idx_off),        \
	[nr] "m"(pcpu_this_cpu_.ops_nr), [tab] "r"(pcpu_cpu_offset), [h] "r"(h)
#define PCPU_CS_VARS_ uintptr_t pcpu_cs_, pcpu_ix_
#define PCPU_M_ " (%[h],%q[ix])"

/* S: suffix, M: register modifier, L: zero-extending load into the 32- or
 * 64-bit register LM, C: the constraint of an immediate.  On x86_64 the add
 * commits as one unlocked read-modify-write instruction. */
#define PCPU_RSEQ_OPS_(N, T, S, M, L, LM, C)                                  \
PCPU_RSEQ_VOID_(add, N, (uintptr_t h, T v), (h, v),                          \
		"add" S " %" M "[v]," PCPU_M_ "\n",                           \
		(, [v] C(v)), __atomic_fetch_add(PCPU_A_(N), v, __ATOMIC_RELAXED)) \
PCPU_RSEQ_VOID_(write, N, (uintptr_t h, T v), (h, v),                        \
		"mov" S " %" M "[v]," PCPU_M_ "\n",                           \
		(, [v] C(v)), (__atomic_store_n(PCPU_A_(N), v, __ATOMIC_RELAXED), 0)) \
PCPU_RSEQ_VAL_(add_return, N, (uintptr_t h, T v), (h, v),                    \
	       L PCPU_M_ ", %" LM "[r]\n\t"                                   \
	       "add" S " %" M "[v], %" M "[r]\n\t"                            \
	       "mov" S " %" M "[r]," PCPU_M_ "\n",                            \
	       (, [v] C(v)), __atomic_add_fetch(PCPU_A_(N), v, __ATOMIC_RELAXED)) \
PCPU_RSEQ_VAL_(xchg, N, (uintptr_t h, T v), (h, v),                          \
	       L PCPU_M_ ", %" LM "[r]\n\t"                                   \
	       "mov" S " %" M "[v]," PCPU_M_ "\n",                            \
	       (, [v] "r"(v)), __atomic_exchange_n(PCPU_A_(N), v, __ATOMIC_RELAXED)) \
PCPU_RSEQ_VAL_(cmpxchg, N, (uintptr_t h, T o, T v), (h, o, v),               \
	       L PCPU_M_ ", %" LM "[r]\n\t"                                   \
	       "cmp" S " %" M "[o], %" M "[r]\n\t"                            \
	       "jne 2f\n\t"                                                   \
	       "mov" S " %" M "[v]," PCPU_M_ "\n",                            \
	       (, [o] "r"(o), [v] "r"(v)),                                      \
	       (__atomic_compare_exchange_n(PCPU_A_(N), &o, v, 0, __ATOMIC_RELAXED, \
					    __ATOMIC_RELAXED), o))

PCPU_RSEQ_OPS_(8, uint8_t, "b", "b", "movzbl", "k", "ir")
PCPU_RSEQ_OPS_(16, uint16_t, "w", "w", "movzwl", "k", "ir")
PCPU_RSEQ_OPS_(32, uint32_t, "l", "k", "movl", "k", "ir")
PCPU_RSEQ_OPS_(64, uint64_t, "q", "q", "movq", "q", "er")

#else
/* ---- aarch64: the rseq area is at tpidr_el0 + __rseq_offset ------------- */

#define PCPU_CS_HEAD_                                                        \
	"0:\n\t"                                                             \
	"adrp %[cs], 3f\n\t"                                                 \
	"add %[cs], %[cs], :lo12:3f\n\t"                                     \
	"str %[cs], [%[rs], #8]\n"                                           \
	"1:\n\t"                                                             \
	"ldr %w[ix], [%[tp], %[ixo]]\n\t"                                    \
	"ldr %w[cs], [%[nrp]]\n\t"                                           \
	"cmp %w[ix], %w[cs]\n\t"                                             \
	"b.hs %l[pcpu_bail]\n\t"                                             \
	"ldr %[ix], [%[tab], %[ix], lsl #3]\n\t"                             \
	"add %[ix], %[ix], %[h]\n\t"
/* The signature is BRK #0x45e0, little-endian. */
#define PCPU_CS_END_ PCPU_CS_TAIL_("str xzr, [%[rs], #8]", ".inst 0xd428bc00", "b")
#define PCPU_CS_OUT_ [cs] "=&r"(pcpu_cs_), [ix] "=&r"(pcpu_ix_)
#define PCPU_CS_IN_                                                          \
	[rs] "r"(pcpu_tp_ + __rseq_offset), [tp] "r"(pcpu_tp_),              \
	[ixo] "r"(pcpu_this_cpu_.idx_off), [nrp] "r"(&pcpu_this_cpu_.ops_nr), \
	[tab] "r"(pcpu_cpu_offset), [h] "r"(h)
#define PCPU_CS_VARS_                                                        \
	uintptr_t pcpu_cs_, pcpu_ix_;                                        \
	char *pcpu_tp_ = (char *)__builtin_thread_pointer()

/* LD/ST: load and store of the width; R: register modifier (w or x).  The
 * loads zero-extend, so cmpxchg compares with o widened the same way. */
#define PCPU_RSEQ_OPS_(N, T, LD, ST, R)                                       \
PCPU_RSEQ_VOID_(write, N, (uintptr_t h, T v), (h, v),                        \
		ST " %" R "[v], [%[ix]]\n", (, [v] "r"(v)),                     \
		(__atomic_store_n(PCPU_A_(N), v, __ATOMIC_RELAXED), 0))       \
PCPU_RSEQ_VAL_(add_return, N, (uintptr_t h, T v), (h, v),                    \
	       LD " %" R "[r], [%[ix]]\n\t"                                   \
	       "add %" R "[r], %" R "[r], %" R "[v]\n\t"                      \
	       ST " %" R "[r], [%[ix]]\n",                                    \
	       (, [v] "r"(v)), __atomic_add_fetch(PCPU_A_(N), v, __ATOMIC_RELAXED)) \
PCPU_RSEQ_VAL_(xchg, N, (uintptr_t h, T v), (h, v),                          \
	       LD " %" R "[r], [%[ix]]\n\t"                                   \
	       ST " %" R "[v], [%[ix]]\n",                                    \
	       (, [v] "r"(v)), __atomic_exchange_n(PCPU_A_(N), v, __ATOMIC_RELAXED)) \
PCPU_RSEQ_VAL_(cmpxchg, N, (uintptr_t h, T o, T v), (h, o, v),               \
	       LD " %" R "[r], [%[ix]]\n\t"                                   \
	       "cmp %" R "[r], %" R "[o]\n\t"                                 \
	       "b.ne 2f\n\t"                                                  \
	       ST " %" R "[v], [%[ix]]\n",                                    \
	       (, [o] "r"((pcpu_r##N##_t)o), [v] "r"(v)),                       \
	       (__atomic_compare_exchange_n(PCPU_A_(N), &o, v, 0, __ATOMIC_RELAXED, \
					    __ATOMIC_RELAXED), o))           \
static PCPU_AI_ void pcpu_add_##N##_(uintptr_t h, T v)                       \
{                                                                             \
	(void)pcpu_add_return_##N##_(h, v);                                   \
}

PCPU_RSEQ_OPS_(8, uint8_t, "ldrb", "strb", "w")
PCPU_RSEQ_OPS_(16, uint16_t, "ldrh", "strh", "w")
PCPU_RSEQ_OPS_(32, uint32_t, "ldr", "str", "w")
PCPU_RSEQ_OPS_(64, uint64_t, "ldr", "str", "x")
#endif /* aarch64 */

/* ---- dispatch on the copy's size (folded at compile time) ---------------- */

#define PCPU_TC_V_(p, val) ((uint64_t)(uintptr_t)(__typeof__(*(p)))(val))
#define PCPU_TC_R_(p, r) ((__typeof__(*(p)))(uintptr_t)(r))

static PCPU_AI_ void pcpu_add_sz_(uintptr_t h, size_t size, uint64_t v)
{
	if (size == 1)
		pcpu_add_8_(h, (uint8_t)v);
	else if (size == 2)
		pcpu_add_16_(h, (uint16_t)v);
	else if (size == 4)
		pcpu_add_32_(h, (uint32_t)v);
	else
		pcpu_add_64_(h, v);
}

static PCPU_AI_ uint64_t pcpu_add_return_sz_(uintptr_t h, size_t size, uint64_t v)
{
	if (size == 1)
		return pcpu_add_return_8_(h, (uint8_t)v);
	if (size == 2)
		return pcpu_add_return_16_(h, (uint16_t)v);
	if (size == 4)
		return pcpu_add_return_32_(h, (uint32_t)v);
	return pcpu_add_return_64_(h, v);
}

static PCPU_AI_ void pcpu_write_sz_(uintptr_t h, size_t size, uint64_t v)
{
	if (size == 1)
		pcpu_write_8_(h, (uint8_t)v);
	else if (size == 2)
		pcpu_write_16_(h, (uint16_t)v);
	else if (size == 4)
		pcpu_write_32_(h, (uint32_t)v);
	else
		pcpu_write_64_(h, v);
}

static PCPU_AI_ uint64_t pcpu_xchg_sz_(uintptr_t h, size_t size, uint64_t v)
{
	if (size == 1)
		return pcpu_xchg_8_(h, (uint8_t)v);
	if (size == 2)
		return pcpu_xchg_16_(h, (uint16_t)v);
	if (size == 4)
		return pcpu_xchg_32_(h, (uint32_t)v);
	return pcpu_xchg_64_(h, v);
}

static PCPU_AI_ uint64_t pcpu_cmpxchg_sz_(uintptr_t h, size_t size, uint64_t o, uint64_t v)
{
	if (size == 1)
		return pcpu_cmpxchg_8_(h, (uint8_t)o, (uint8_t)v);
	if (size == 2)
		return pcpu_cmpxchg_16_(h, (uint16_t)o, (uint16_t)v);
	if (size == 4)
		return pcpu_cmpxchg_32_(h, (uint32_t)o, (uint32_t)v);
	return pcpu_cmpxchg_64_(h, o, v);
}

#define this_cpu_write(ptr, val)                                                    \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_p_ = (ptr);                                    \
		PCPU_TC_SCALAR_(pcpu_p_);                                           \
		pcpu_write_sz_((uintptr_t)pcpu_p_, sizeof(*pcpu_p_), PCPU_TC_V_(pcpu_p_, val)); \
	})
#define this_cpu_add(ptr, val)                                                      \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_p_ = (ptr);                                    \
		PCPU_TC_INT_(pcpu_p_);                                              \
		pcpu_add_sz_((uintptr_t)pcpu_p_, sizeof(*pcpu_p_), PCPU_TC_V_(pcpu_p_, val)); \
	})
#define this_cpu_sub(ptr, val)                                                      \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_p_ = (ptr);                                    \
		PCPU_TC_INT_(pcpu_p_);                                              \
		pcpu_add_sz_((uintptr_t)pcpu_p_, sizeof(*pcpu_p_),                  \
			     (uint64_t)0 - PCPU_TC_V_(pcpu_p_, val));               \
	})
#define this_cpu_add_return(ptr, val)                                               \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_p_ = (ptr);                                    \
		PCPU_TC_INT_(pcpu_p_);                                              \
		PCPU_TC_R_(pcpu_p_, pcpu_add_return_sz_((uintptr_t)pcpu_p_, sizeof(*pcpu_p_), \
							PCPU_TC_V_(pcpu_p_, val))); \
	})
#define this_cpu_xchg(ptr, val)                                                     \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_p_ = (ptr);                                    \
		PCPU_TC_SCALAR_(pcpu_p_);                                           \
		PCPU_TC_R_(pcpu_p_, pcpu_xchg_sz_((uintptr_t)pcpu_p_, sizeof(*pcpu_p_), \
						  PCPU_TC_V_(pcpu_p_, val)));       \
	})
#define this_cpu_cmpxchg(ptr, old, new)                                             \
	__extension__({                                                             \
		__typeof__(ptr) pcpu_p_ = (ptr);                                    \
		PCPU_TC_SCALAR_(pcpu_p_);                                           \
		PCPU_TC_R_(pcpu_p_, pcpu_cmpxchg_sz_((uintptr_t)pcpu_p_, sizeof(*pcpu_p_), \
						     PCPU_TC_V_(pcpu_p_, old),     \
						     PCPU_TC_V_(pcpu_p_, new)));   \
	})

#endif /* PERCPU_RSEQ_OPS_H */
