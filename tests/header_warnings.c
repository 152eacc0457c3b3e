/*
 * header_warnings.c - small uses of <percpu.h> that must compile without a
 * warning at -Wall -Wextra -Werror, as C and as C++, and behave:
 * pcpu_for_each_cpu with a signed, an unsigned, a long and a size_t
 * counter; pcpu_sum over it; pcpu_alloc_size(NULL), which is 0 and does
 * not initialise the allocator.  Built and run by test_header_warnings.sh
 * with every compiler at hand.
 */
#include <percpu.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define EXPECT(cond)                                                       \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond); \
			failures++;                                        \
		}                                                          \
	} while (0)

int main(void)
{
	struct pcpu_config cfg;
	int icpu, n = 0;
	unsigned int ucpu;
	long lcpu;
	size_t zcpu;
	int __percpu *h;

	EXPECT(pcpu_alloc_size(NULL) == 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.nr_cpus = 3;
	cfg.flags = PCPU_CFG_NO_BALANCER;
	EXPECT(pcpu_init(&cfg) == 0);           /* pcpu_alloc_size(NULL) did not initialise */
	EXPECT(pcpu_alloc_size(NULL) == 0);

	h = (int __percpu *)pcpu_alloc(sizeof(int), sizeof(int));
	EXPECT(h != NULL);
	if (!h)
		return 1;
	pcpu_for_each_cpu(icpu) {
		*per_cpu_ptr(h, icpu) = icpu + 1;
		n++;
	}
	EXPECT(n == 3);
	pcpu_for_each_cpu(ucpu)
		n += *per_cpu_ptr(h, ucpu);
	pcpu_for_each_cpu(lcpu)
		n += *per_cpu_ptr(h, lcpu);
	pcpu_for_each_cpu(zcpu)
		n += *per_cpu_ptr(h, zcpu);
	EXPECT(n == 3 + 3 * 6);
	EXPECT(pcpu_sum(h) == 6);
	EXPECT(pcpu_alloc_size(h) == sizeof(int));
	pcpu_free(h);
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
