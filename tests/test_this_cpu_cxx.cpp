/*
 * test_this_cpu_cxx.cpp - the this_cpu operations from C++: <percpu.h>
 * compiles as C++ and every operation, width, signedness, pointers and an
 * enum give the same results as from C (this_cpu_semantics.h), on dynamic
 * handles and a PCPU_DEFINE variable, then the this_cpu_kit stress (shorter)
 * is exact.  Built twice, at -O0 and at -O3 (test_this_cpu_cxx_O0/_O3);
 * this_cpu_matrix.sh also builds it as C with gcc and clang.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "this_cpu_kit.h"
#include "this_cpu_semantics.h"

PCPU_DEFINE(long, cxx_static) = 3;

int main(int argc, char **argv)
{
	struct pcpu_config cfg;
	const char *ops = getenv("PCPU_THIS_CPU_OPS");
	long before;

	kit_seed = test_seed(argc, argv);
	kit_init_cpus();
	memset(&cfg, 0, sizeof(cfg));
	cfg.flags = PCPU_CFG_NO_BALANCER;
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	printf("C++, mode %#x\n", pcpu_this_cpu_mode());
	CHECK(this_cpu_semantics() == 0, "semantics");
	before = pcpu_sum(PCPU_VAR(cxx_static));
	this_cpu_add(PCPU_VAR(cxx_static), 4);
	this_cpu_sub(PCPU_VAR(cxx_static), 1);
	CHECK(this_cpu_xchg(PCPU_VAR(cxx_static), 100L) >= 3, "static xchg");
	CHECK(pcpu_sum(PCPU_VAR(cxx_static)) >= before + 3 + 100 - 3 - 3, "static sum");
	REQUIRE(kit_alloc_handles(true, NULL) == 0, "pcpu_alloc");
	kit_stress(2 * kit_nr_allowed, ops ? atol(ops) / 4 : 50000);
	TEST_DONE();
}
