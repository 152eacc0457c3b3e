/*
 * check.h - the tiny assertion kit shared by the tests.
 *
 * CHECK(cond, fmt, ...) records a failure with file:line and continues;
 * REQUIRE aborts the test at once.  test_seed() picks the random seed
 * (argv[1], else $PCPU_SEED, else time) and prints it so any run can be
 * replayed; TEST_DONE prints the plain "N passed, N failed" line.
 */
#ifndef PCPU_TEST_CHECK_H
#define PCPU_TEST_CHECK_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static unsigned long check_passed, check_failed;

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

#define TEST_DONE()                                                               \
	do {                                                                      \
		printf("%lu passed, %lu failed\n", check_passed, check_failed);   \
		return check_failed ? 1 : 0;                                      \
	} while (0)

/* xorshift64*: small, fast, deterministic from the seed. */
static uint64_t rng_state = 88172645463325252ULL;
static inline uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}
static inline uint64_t rng_below(uint64_t n) { return n ? rng_next() % n : 0; }

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
