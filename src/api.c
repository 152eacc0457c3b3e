/*
 * api.c - allocation with a per-CPU initialiser, pcpu_alloc_init().
 *
 * Built on the public API only (pcpu_alloc_flags, pcpu_ptr, pcpu_nr_cpus):
 * it sits above the layer-7 entry points and touches no allocator state,
 * so no lock is held while the caller's init runs and init may call back
 * into the library.
 */
#include "percpu.h"

PCPU_PUBLIC void __percpu *pcpu_alloc_init(size_t size, size_t align, unsigned int flags,
					   void (*init)(void *copy, unsigned int cpu, void *arg),
					   void *arg)
{
	void __percpu *h = pcpu_alloc_flags(size, align, flags);

	if (h && init) {
		unsigned int nr = pcpu_nr_cpus();

		for (unsigned int cpu = 0; cpu < nr; cpu++)
			init(pcpu_ptr(h, cpu), cpu, arg);
	}
	return h;
}
