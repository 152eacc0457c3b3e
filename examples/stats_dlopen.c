/*
 * stats_dlopen.c - load a library with per-CPU statistics (libstats.so,
 * PCPU_DEFINE inside it) with dlopen, feed it from several threads, print
 * its per-CPU and total figures, then unload and load it again: its
 * per-CPU variables start over from their initial values, in the same
 * reserved-area space.
 *
 *     usage: stats_dlopen [threads] [packets per thread] [path to libstats.so]
 *     e.g.   ./build/examples/stats_dlopen 4 1000000
 *
 * By default libstats.so is looked for next to this program.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <percpu.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libstats.h"

struct lib {
	void *dl;
	stats_record_fn *record;
	stats_totals_fn *totals;
	stats_print_fn *print;
	stats_handle_fn *handle;
};

struct feeder {
	struct lib *lib;
	long packets;
	unsigned seed;
	struct pkt_totals sent;        /* what this thread recorded */
};

static int load(struct lib *l, const char *path)
{
	l->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!l->dl) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return -1;
	}
	*(void **)&l->record = dlsym(l->dl, "stats_record");
	*(void **)&l->totals = dlsym(l->dl, "stats_totals");
	*(void **)&l->print = dlsym(l->dl, "stats_print");
	*(void **)&l->handle = dlsym(l->dl, "stats_handle");
	if (!l->record || !l->totals || !l->print || !l->handle) {
		fprintf(stderr, "dlsym: %s\n", dlerror());
		return -1;
	}
	return 0;
}

static void *feed(void *arg)
{
	struct feeder *f = arg;

	f->sent = (struct pkt_totals){ .min_len = UINT64_MAX };
	for (long i = 0; i < f->packets; i++) {
		uint64_t len = 64 + rand_r(&f->seed) % 1437;    /* 64 .. 1500 bytes */
		int error = rand_r(&f->seed) % 1000 == 0;

		f->lib->record(len, error);
		f->sent.packets++;
		f->sent.bytes += len;
		f->sent.errors += (uint64_t)error;
		f->sent.min_len = len < f->sent.min_len ? len : f->sent.min_len;
		f->sent.max_len = len > f->sent.max_len ? len : f->sent.max_len;
	}
	return NULL;
}

static unsigned long long live_allocations(void)
{
	struct pcpu_stats st;

	return pcpu_stats_get(&st) ? 0 : (unsigned long long)st.nr_cur_alloc;
}

/* Default path: libstats.so in this program's directory. */
static void default_path(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 16);
	char *slash;

	if (n <= 0) {
		snprintf(buf, len, "./libstats.so");
		return;
	}
	buf[n] = 0;
	slash = strrchr(buf, '/');
	strcpy(slash ? slash + 1 : buf, "libstats.so");
}

int main(int argc, char **argv)
{
	long nthreads = argc > 1 ? atol(argv[1]) : 4, packets = argc > 2 ? atol(argv[2]) : 1000000;
	char path[PATH_MAX];
	struct pkt_totals want = { .min_len = UINT64_MAX }, got;
	struct feeder *f;
	pthread_t *t;
	struct lib lib;
	void *first_handle;
	int bad = 0;

	if (nthreads < 1 || nthreads > 1024 || packets < 1) {
		fprintf(stderr, "usage: %s [threads] [packets per thread] [libstats.so]\n", argv[0]);
		return 2;
	}
	if (argc > 3)
		snprintf(path, sizeof(path), "%s", argv[3]);
	else
		default_path(path, sizeof(path));
	f = calloc((size_t)nthreads, sizeof(*f));
	t = calloc((size_t)nthreads, sizeof(*t));
	if (!f || !t || load(&lib, path))
		return 1;

	for (long i = 0; i < nthreads; i++) {
		f[i] = (struct feeder){ .lib = &lib, .packets = packets, .seed = (unsigned)i + 1 };
		if (pthread_create(&t[i], NULL, feed, &f[i])) {
			perror("pthread_create");
			return 1;
		}
	}
	for (long i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		want.packets += f[i].sent.packets;
		want.bytes += f[i].sent.bytes;
		want.errors += f[i].sent.errors;
		want.min_len = f[i].sent.min_len < want.min_len ? f[i].sent.min_len : want.min_len;
		want.max_len = f[i].sent.max_len > want.max_len ? f[i].sent.max_len : want.max_len;
	}

	printf("%s: %ld threads x %ld packets\n\n", path, nthreads, packets);
	lib.print(stdout);
	lib.totals(&got);
	printf("total %12llu %14llu %8llu %8llu %8llu\n", (unsigned long long)got.packets,
	       (unsigned long long)got.bytes, (unsigned long long)got.errors,
	       (unsigned long long)got.min_len, (unsigned long long)got.max_len);
	if (memcmp(&got, &want, sizeof(got))) {
		printf("MISMATCH: the threads recorded %llu packets, %llu bytes\n",
		       (unsigned long long)want.packets, (unsigned long long)want.bytes);
		bad = 1;
	}

	/*
	 * Unload and load again: the block goes back to the reserved area and
	 * the variables start over from their initial values.  (This program
	 * calls libpercpu itself, so the allocator stays loaded meanwhile.)
	 */
	first_handle = lib.handle();
	printf("\nlibpercpu live allocations: %llu (libstats's variables)\n", live_allocations());
	dlclose(lib.dl);
	printf("after dlclose:              %llu\n", live_allocations());
	if (load(&lib, path))
		return 1;
	lib.totals(&got);
	printf("after dlopen again:         %llu, %llu packets (initial values), same space: %s\n",
	       live_allocations(), (unsigned long long)got.packets,
	       lib.handle() == first_handle ? "yes" : "no");
	bad |= got.packets != 0 || got.min_len != UINT64_MAX;
	dlclose(lib.dl);
	free(f);
	free(t);
	return bad;
}
