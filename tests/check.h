/*
 * check.h - the tiny assertion kit shared by the tests.
 *
 * CHECK(cond, fmt, ...) records a failure with file:line and continues;
 * REQUIRE aborts the test at once; TCHECK is CHECK for threads.
 * test_seed() picks the random seed (argv[1], else $PCPU_SEED, else time)
 * and prints it so any run can be replayed; TEST_DONE prints the plain
 * "N passed, N failed" line.  The rest of the shared scaffolding (forked
 * children, pattern objects, threads) is in kit.h.
 */
#ifndef PCPU_TEST_CHECK_H
#define PCPU_TEST_CHECK_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static unsigned long check_passed __attribute__((unused)), check_failed __attribute__((unused));
static unsigned long check_thread_failed __attribute__((unused));    /* TCHECK's count, atomic */

#define CHECK(cond, ...)                                                          \
	do {                                                                      \
		if (cond) {                                                       \
			check_passed++;                                           \
		} else {                                                          \
			check_failed++;                                           \
			fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, " " __VA_ARGS__);                          \
			fputc('\n', stderr);                                      \
		}                                                                 \
	} while (0)

#define REQUIRE(cond, ...)                                                        \
	do {                                                                      \
		unsigned long failed_before_ = check_failed;                      \
		CHECK(cond, __VA_ARGS__);                                         \
		if (check_failed != failed_before_) {                             \
			fprintf(stderr, "fatal, stopping this test\n");           \
			exit(1);                                                  \
		}                                                                 \
	} while (0)

/* CHECK for threads, which must not share CHECK's plain counters: failures
 * are counted atomically in check_thread_failed (TEST_DONE and kit_fork's
 * children count them as failures) and the first 20 are printed. */
#define TCHECK(cond, ...)                                                         \
	do {                                                                      \
		if (!(cond) &&                                                    \
		    __atomic_fetch_add(&check_thread_failed, 1, __ATOMIC_RELAXED) < 20) { \
			fprintf(stderr, "%s:%d: TCHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, " " __VA_ARGS__);                          \
			fputc('\n', stderr);                                      \
		}                                                                 \
	} while (0)

#define TEST_DONE()                                                               \
	do {                                                                      \
		unsigned long failed_ = check_failed + check_thread_failed;       \
		printf("%lu passed, %lu failed\n", check_passed, failed_);        \
		return failed_ ? 1 : 0;                                           \
	} while (0)

/* xorshift64*: small, fast, deterministic from the seed.  rng_next_r and
 * rng_below_r run it on a state of the caller's (one per thread). */
static inline uint64_t rng_next_r(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 2685821657736338717ULL;
}
static inline uint64_t rng_below_r(uint64_t *state, uint64_t n)
{
	return n ? rng_next_r(state) % n : 0;
}

static uint64_t rng_state = 88172645463325252ULL;
static inline uint64_t rng_next(void) { return rng_next_r(&rng_state); }
static inline uint64_t rng_below(uint64_t n) { return rng_below_r(&rng_state, n); }

static inline uint64_t test_seed(int argc, char **argv)
{
	uint64_t seed;
	const char *env = getenv("PCPU_SEED");

	if (argc > 1)
		seed = strtoull(argv[1], NULL, 0);
	else if (env)
		seed = strtoull(env, NULL, 0);
	else
		seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
	if (!seed)
		seed = 1;
	rng_state = seed;
	printf("seed %" PRIu64 " (replay: %s %" PRIu64 ")\n", seed, argv[0], seed);
	return seed;
}

#endif
