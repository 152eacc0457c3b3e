/*
 * consumer.c - a program outside libpercpu, built by consumer_test.sh the
 * way a user's project builds: against an installed copy (find_package), or
 * with libpercpu as a subproject (add_subdirectory, FetchContent).  Uses
 * the API a little, checks that the header's version macros agree with each
 * other and with the loaded library, and prints one line for the script:
 *     version header=MAJOR.MINOR.PATCH number=N loaded=N cmake=X.Y.Z|-
 */
#include <percpu.h>
#include <stdio.h>

#ifndef PCPU_CMAKE_PACKAGE_VERSION
#define PCPU_CMAKE_PACKAGE_VERSION "-"  /* not known as a subproject */
#endif

#define FAIL(...) do { fprintf(stderr, "consumer: " __VA_ARGS__); return 1; } while (0)

int main(void)
{
	long __percpu *hits = pcpu_alloc(sizeof(long), sizeof(long));

	if (!hits)
		FAIL("pcpu_alloc failed\n");
	for (int i = 0; i < 100; i++)
		this_cpu_inc(hits);
	if (pcpu_sum(hits) != 100)
		FAIL("pcpu_sum %ld, not 100\n", pcpu_sum(hits));
	pcpu_free(hits);

	if (PCPU_VERSION != PCPU_VERSION_MAJOR * 10000 + PCPU_VERSION_MINOR * 100 + PCPU_VERSION_PATCH)
		FAIL("PCPU_VERSION %d does not encode %d.%d.%d\n", PCPU_VERSION,
		     PCPU_VERSION_MAJOR, PCPU_VERSION_MINOR, PCPU_VERSION_PATCH);
	if (pcpu_version() != PCPU_VERSION)
		FAIL("pcpu_version() %d, header PCPU_VERSION %d\n", pcpu_version(), PCPU_VERSION);
	printf("version header=%d.%d.%d number=%d loaded=%d cmake=%s\n", PCPU_VERSION_MAJOR,
	       PCPU_VERSION_MINOR, PCPU_VERSION_PATCH, PCPU_VERSION, pcpu_version(),
	       PCPU_CMAKE_PACKAGE_VERSION);
	return 0;
}
