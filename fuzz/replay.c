/*
 * replay.c - a main() for the fuzz targets without libFuzzer.
 *
 * Links with fuzz_alloc.c or fuzz_chunk.c and runs LLVMFuzzerTestOneInput
 * on every file named (directories: every file inside, sorted), then on
 * -random=N inputs of random bytes (up to -max_len=L bytes, default 1024)
 * drawn from -seed=S (default: $PCPU_SEED, else the time; printed).  Any
 * compiler builds it, so CTest replays the seed corpus and a batch of random
 * programs even where clang's libFuzzer is missing; a crash file from a
 * libFuzzer run can be replayed here under gdb.  When a random input
 * fails (abort), it is written to ./crash-replay-SEED-INDEX first.
 *
 *   replay [-random=N] [-seed=S] [-max_len=L] [FILE|DIR]...
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long nr_files;

/* The random input being run, for the abort handler. */
static const uint8_t *cur_buf;
static size_t cur_len;
static char cur_name[96];

static void on_abort(int sig)
{
	int fd = open(cur_name, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd >= 0) {
		ssize_t w = write(fd, cur_buf, cur_len);

		(void)w;
		close(fd);
		(void)!write(2, "input saved as ", 15);
		(void)!write(2, cur_name, strlen(cur_name));
		(void)!write(2, "\n", 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f) {
		perror(path);
		exit(2);
	}
	do {
		if (len == cap) {
			cap = cap ? 2 * cap : 4096;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	nr_files++;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void run_path(const char *path)
{
	struct stat st;
	struct dirent **names;
	int n;

	if (stat(path, &st)) {
		perror(path);
		exit(2);
	}
	if (!S_ISDIR(st.st_mode)) {
		run_file(path);
		return;
	}
	n = scandir(path, &names, NULL, by_name);
	if (n < 0) {
		perror(path);
		exit(2);
	}
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			char *p;

			if (asprintf(&p, "%s/%s", path, names[i]->d_name) < 0)
				abort();
			run_path(p);
			free(p);
		}
		free(names[i]);
	}
	free(names);
}

static uint64_t rng(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

int main(int argc, char **argv)
{
	unsigned long nrandom = 0, max_len = 1024;
	uint64_t seed = 0;
	const char *env = getenv("PCPU_SEED");

	if (env)
		seed = strtoull(env, NULL, 0);
	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "-random=", 8))
			nrandom = strtoul(argv[i] + 8, NULL, 0);
		else if (!strncmp(argv[i], "-seed=", 6))
			seed = strtoull(argv[i] + 6, NULL, 0);
		else if (!strncmp(argv[i], "-max_len=", 9))
			max_len = strtoul(argv[i] + 9, NULL, 0);
	}
	for (int i = 1; i < argc; i++)
		if (argv[i][0] != '-')
			run_path(argv[i]);
	if (nrandom) {
		uint8_t *buf = malloc(max_len + 1);

		if (!seed)
			seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
		if (!seed)
			seed = 1;
		printf("random inputs: %lu, seed %" PRIu64 " (replay: %s -random=%lu -seed=%" PRIu64 ")\n",
		       nrandom, seed, argv[0], nrandom, seed);
		fflush(stdout);
		uint64_t s = seed;
		signal(SIGABRT, on_abort);
		for (unsigned long r = 0; r < nrandom; r++) {
			size_t len = (size_t)(rng(&s) % (max_len + 1));

			for (size_t i = 0; i < len; i++)
				buf[i] = (uint8_t)(rng(&s) >> 56);
			snprintf(cur_name, sizeof(cur_name), "crash-replay-%" PRIu64 "-%lu", seed, r);
			cur_buf = buf;
			cur_len = len;
			LLVMFuzzerTestOneInput(buf, len);
		}
		signal(SIGABRT, SIG_DFL);
		free(buf);
	}
	printf("replayed %lu files and %lu random inputs\n", nr_files, nrandom);
	return 0;
}
