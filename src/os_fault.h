/*
 * os_fault.h - fault injection for the OS layer's memory operations, and
 * their call counters (tests).
 *
 * Each of the four memory operations (reserve, populate, depopulate, bind) can
 * be told to fail with ENOMEM, either programmatically (os_fault_nth,
 * os_fault_random) or through the environment variable PCPU_FAULT, which is
 * read once, the first time any memory operation or fault-injection function
 * is used.  An injected failure happens before any system call, so the range
 * is left exactly as it was.  Format:
 *
 *   PCPU_FAULT = item [ "," item ]...
 *   item       = op ":" spec | "seed=" N
 *   op         = "reserve" | "populate" | "depopulate" | "bind"
 *   spec       = P          each call fails with probability P, 0 <= P <= 1
 *              | "nth=" N   the N-th call (counting from 1) fails, once
 *
 *   e.g.  PCPU_FAULT=populate:0.01,reserve:nth=3,seed=42
 *
 * "seed=" may appear anywhere and seeds every random item in the string
 * (default seed 1).  A malformed PCPU_FAULT is ignored as a whole (nothing can
 * be printed from here); os_fault_env_status() tells a test whether it parsed.
 */
#ifndef PCPU_OS_FAULT_H
#define PCPU_OS_FAULT_H

enum os_op { OS_OP_RESERVE, OS_OP_POPULATE, OS_OP_DEPOPULATE, OS_OP_BIND, OS_NR_OPS };

/* After `skip` more calls of op, the next `count` calls fail with ENOMEM.
 * count 0 turns the nth-call rule for op off. */
void os_fault_nth(enum os_op op, unsigned long skip, unsigned long count);
/* Every call of op fails with this probability, drawn from a deterministic
 * generator seeded with seed (the same seed gives the same failure pattern in
 * a single-threaded program).  0 turns it off, 1 fails every call. */
void os_fault_random(enum os_op op, double probability, unsigned long seed);
/* Turn every injected failure off (counters are not reset). */
void os_fault_clear(void);
/* Replace the fault configuration by one in PCPU_FAULT syntax.  0 on success;
 * -1 + EINVAL on bad syntax, in which case the configuration is unchanged. */
int os_fault_parse(const char *spec);
/* Result of parsing the PCPU_FAULT variable: 0 if unset or valid, -1 if it
 * was malformed (and therefore ignored). */
int os_fault_env_status(void);

unsigned long os_call_count(enum os_op op); /* calls attempted, failed or not */
unsigned long os_fault_count(void);         /* failures injected, all ops */
void os_counters_reset(void);               /* zero both kinds of counter */

/* os_mem.c: count one call of op and decide whether it must fail; 1 (errno
 * ENOMEM) for an injected failure, 0 to go ahead. */
int os_fault_check(enum os_op op);

#endif
