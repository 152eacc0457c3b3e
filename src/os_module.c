/*
 * os_module.c - what the dynamic linker knows about loaded modules (the
 * program and its shared libraries), for static per-CPU variables: which
 * module an address belongs to, and its file name for messages.
 */
#define _GNU_SOURCE   /* dladdr, dl_iterate_phdr */
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>

#include "os.h"

/* dl_iterate_phdr callback: is *data inside the first object (the main
 * program; glibc always reports it first)?  Stores 1 or 0 in *data. */
static int first_object_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	uintptr_t addr = *(uintptr_t *)data;

	(void)size;
	*(uintptr_t *)data = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && addr - (info->dlpi_addr + ph->p_vaddr) < ph->p_memsz) {
			*(uintptr_t *)data = 1;
			break;
		}
	}
	return 1;
}

bool os_module_is_main(const void *addr)
{
	uintptr_t a = (uintptr_t)addr;

	dl_iterate_phdr(first_object_cb, &a);
	return a == 1;
}

const char *os_module_name(const void *addr)
{
	Dl_info info;

	if (dladdr(addr, &info) && info.dli_fname && *info.dli_fname)
		return info.dli_fname;
	return NULL;
}
