/*
 * ext.c - a program written only against the public contract
 * (docs/contract.md, include/percpu.h.in), built outside the project from
 * an installed libpercpu with `pkg-config --cflags --libs percpu` (see
 * install_test.sh).
 */
#include <percpu.h>
#include <stdio.h>
#include <stdlib.h>

#define FAIL(msg) do { fprintf(stderr, "ext: %s\n", msg); return 1; } while (0)

int main(void)
{
	long __percpu *counter = pcpu_alloc(sizeof(long), sizeof(long));
	unsigned int cpu;
	long total = 0;
	struct pcpu_stats st;

	if (!counter)
		FAIL("pcpu_alloc");
	for (int i = 0; i < 1000; i++)
		this_cpu_inc(counter);
	pcpu_for_each_cpu(cpu)
		total += *per_cpu_ptr(counter, cpu);
	if (total != 1000)
		FAIL("counter sum");
	if (pcpu_alloc_size(counter) != sizeof(long))
		FAIL("pcpu_alloc_size");
	if (pcpu_current_cpu() >= pcpu_nr_cpus())
		FAIL("pcpu_current_cpu");
	if (pcpu_stats_get(&st) || st.nr_cur_alloc != 1)
		FAIL("pcpu_stats_get");
	pcpu_free(counter);
	if (pcpu_verify() || pcpu_balance())
		FAIL("verify/balance");
	pcpu_layout_print(stdout);
	puts("ext: 1 passed, 0 failed");
	return 0;
}
