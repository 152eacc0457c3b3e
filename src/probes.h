/*
 * probes.h - USDT (user statically defined tracing) probes, provider
 * "percpu", for bpftrace, perf, SystemTap and friends.
 *
 * With <sys/sdt.h> (Debian: systemtap-sdt-dev; CMake sets PCPU_HAVE_SDT) a
 * probe is one `nop` in the code plus an ELF note (.note.stapsdt) naming
 * the provider, the probe and where its arguments live; a tracer attaches
 * by patching the nop.  Without it, a probe compiles to nothing and its
 * arguments are not evaluated.  The arguments of an enabled-or-not probe are
 * computed anyway when sdt.h is present, so keep them to values at hand.
 *
 * The probes, their arguments and where they fire:
 *
 *   alloc(size, align, flags, handle, chunk, offset)
 *       a successful pcpu_alloc*(); size and align rounded as served,
 *       chunk = chunk index (0: the first chunk and its reserved area),
 *       offset = byte offset of the area inside each unit of that chunk.
 *   alloc_fail(size, align, flags, reason, message)
 *       a failed pcpu_alloc*(); reason = PCPU_FAIL_* below, message the
 *       human text (a C string) also used by the warning line.
 *   free(handle, size)
 *       pcpu_free() of a valid handle, before the area is released.
 *   create_chunk(chunk, base)           a dynamic chunk was set up
 *   destroy_chunk(chunk, base)          a chunk is about to be torn down
 *   populate(chunk, page_start, page_end)
 *       pages [page_start, page_end) of every unit were backed by memory
 *   depopulate(chunk, page_start, page_end)
 *       pages [page_start, page_end) of every unit are being returned
 *
 * List them:   readelf -n libpercpu.so | grep -A2 stapsdt
 * Example:     bpftrace -e 'usdt:/usr/local/lib/libpercpu.so:percpu:alloc
 *                           { @bytes = hist(arg0); }'
 */
#ifndef PCPU_PROBES_H
#define PCPU_PROBES_H

/* alloc_fail reasons (argument 3). */
#define PCPU_FAIL_INVALID  1   /* EINVAL: bad size, alignment or flags */
#define PCPU_FAIL_RESERVED 2   /* PCPU_RESERVED: the reserved area is full */
#define PCPU_FAIL_ATOMIC   3   /* PCPU_ATOMIC: no populated free space */
#define PCPU_FAIL_NOSPACE  4   /* no chunk fits and none can be created */
#define PCPU_FAIL_POPULATE 5   /* memory for the new area could not be populated */

#if defined(PCPU_HAVE_SDT) && PCPU_HAVE_SDT
#ifndef SDT_USE_VARIADIC
#define SDT_USE_VARIADIC 1         /* STAP_PROBEV */
#endif
#include <sys/sdt.h>
#define PCPU_PROBE(name, ...) STAP_PROBEV(percpu, name, __VA_ARGS__)
#define PCPU_PROBES_ENABLED 1
#else
#define PCPU_PROBE(name, ...) ((void)0)
#define PCPU_PROBES_ENABLED 0
#endif

#endif /* PCPU_PROBES_H */
