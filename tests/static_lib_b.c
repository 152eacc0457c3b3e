/*
 * static_lib_b.c - a test library that test_static loads with dlopen: a
 * few hundred bytes of per-CPU variables in the reserved area, given back
 * by dlclose.  Entry points are looked up with dlsym.
 */
#include <percpu.h>

#define LIBB_WORDS 100

struct libb_state {
	unsigned int words[LIBB_WORDS];
	unsigned long serial;
};

PCPU_DEFINE(struct libb_state, libb_state) = { .words = { 11, 22, 33 }, .serial = 0xb0b };
PCPU_DEFINE(int, libb_counter) = 5;

/* Size of the module's variables, for the test's arithmetic. */
unsigned long libb_size(void)
{
	return sizeof(struct libb_state) + sizeof(int);
}

void __percpu *libb_state_handle(void)
{
	return PCPU_VAR(libb_state);
}

int __percpu *libb_counter_handle(void)
{
	return PCPU_VAR(libb_counter);
}

/* The initial values, checked on CPU cpu: 1 if all there. */
int libb_check_initial(unsigned int cpu)
{
	struct libb_state *s = per_cpu_ptr(PCPU_VAR(libb_state), cpu);

	if (s->words[0] != 11 || s->words[1] != 22 || s->words[2] != 33 || s->serial != 0xb0b)
		return 0;
	for (int i = 3; i < LIBB_WORDS; i++)
		if (s->words[i])
			return 0;
	return *per_cpu_ptr(PCPU_VAR(libb_counter), cpu) == 5;
}

void libb_inc(void)
{
	this_cpu_inc(PCPU_VAR(libb_counter));
}
