/*
 * abi_old_layout.c - a program built against the 0.1 layouts of struct
 * pcpu_config and struct pcpu_stats, running against today's library.
 *
 * It does not include <percpu.h>: it carries copies of the structs and the
 * prototypes as version 0.1 declared them, as an old binary does, and links
 * the shared library.  The library must read only the old config (the
 * settings take effect) and write only the old stats (canaries after the
 * struct stay intact).  Then, through today's header's sized entry points,
 * a struct larger than the library knows: unknown zero bytes are accepted,
 * unknown non-zero bytes refused, unknown stats fields come back zero.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct pcpu_config_0_1 {
	unsigned int nr_cpus;
	size_t reserved_size;
	size_t dyn_size;
	size_t min_unit_size;
	size_t atom_size;
	int (*cpu_distance)(unsigned int from, unsigned int to);
	unsigned int flags;
	size_t addr_space;
	unsigned int empty_pop_low;
	unsigned int empty_pop_high;
	unsigned int reclaim_frac;
};

struct pcpu_stats_0_1 {
	uint64_t nr_alloc, nr_dealloc, nr_cur_alloc, nr_max_alloc, nr_alloc_fail, nr_atomic_fail;
	uint32_t nr_chunks, nr_max_chunks;
	size_t min_alloc_size, max_alloc_size;
	uint64_t nr_empty_pop_pages, nr_populated_pages, nr_chunks_created, nr_chunks_destroyed;
	uint64_t nr_pages_populated, nr_pages_depopulated, nr_balance_passes;
	uint64_t nr_balance_populated, nr_balance_depopulated;
	unsigned int nr_units, nr_groups;
	size_t unit_size, static_size, reserved_size, dyn_size, atom_size, alloc_size, page_size;
	uint64_t size_hist[32];
};

int pcpu_init(const struct pcpu_config_0_1 *cfg);
int pcpu_stats_get(struct pcpu_stats_0_1 *out);
int pcpu_init_sized(const void *cfg, size_t size);
int pcpu_stats_get_sized(void *out, size_t size);
void *pcpu_alloc(size_t size, size_t align);
void pcpu_free(void *ptr);
unsigned int pcpu_nr_cpus(void);
int pcpu_verify(void);

static int failed;
#define EXPECT(c, ...) do { if (!(c)) { failed = 1; printf("FAIL: " __VA_ARGS__); putchar('\n'); } \
			   else printf("ok: " __VA_ARGS__), putchar('\n'); } while (0)

int main(void)
{
	struct pcpu_config_0_1 cfg = { .nr_cpus = 3, .reserved_size = 12 << 10, .flags = 1 };
	struct {
		struct pcpu_stats_0_1 st;
		unsigned char canary[64];
	} out;
	struct {
		struct pcpu_config_0_1 cfg;
		unsigned char future[256];   /* fields of a later version */
	} big = { .cfg = cfg };
	unsigned char stats_big[4096];

	/* A config with a non-zero field this library does not know: refused. */
	big.future[200] = 1;
	errno = 0;
	EXPECT(pcpu_init_sized(&big, sizeof(big)) == -1 && errno == EINVAL,
	       "a larger config with an unknown non-zero field is refused");
	EXPECT(pcpu_init(&cfg) == 0, "pcpu_init with the 0.1 layout");
	EXPECT(pcpu_nr_cpus() == 3, "its nr_cpus took effect (%u)", pcpu_nr_cpus());

	void *h = pcpu_alloc(16, 8);
	EXPECT(h != NULL, "an allocation");
	memset(&out, 0x5a, sizeof(out));
	EXPECT(pcpu_stats_get(&out.st) == 0, "pcpu_stats_get with the 0.1 layout");
	int intact = 1;
	for (size_t i = 0; i < sizeof(out.canary); i++)
		intact &= out.canary[i] == 0x5a;
	EXPECT(intact, "nothing written past the 0.1 struct");
	EXPECT(out.st.nr_units >= 3 && out.st.nr_cur_alloc >= 1 && out.st.reserved_size == 12 << 10 &&
	       out.st.size_hist[4] >= 1, "its fields read right (units %u, live %llu, reserved %zu)",
	       out.st.nr_units, (unsigned long long)out.st.nr_cur_alloc, out.st.reserved_size);

	memset(stats_big, 0x5a, sizeof(stats_big));
	EXPECT(pcpu_stats_get_sized(stats_big, sizeof(stats_big)) == 0, "a larger stats struct");
	intact = 1;
	for (size_t i = sizeof(stats_big) - 256; i < sizeof(stats_big); i++)
		intact &= stats_big[i] == 0;
	EXPECT(intact, "fields unknown to the library come back zero");
	EXPECT(pcpu_stats_get_sized(stats_big, 16) == -1 && errno == EINVAL,
	       "a size below the 0.1 layout is refused");
	pcpu_free(h);
	EXPECT(pcpu_verify() == 0, "verify");
	return failed;
}
