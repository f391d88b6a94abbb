/*
 * ck_skip.h - for unit suites with cases that need something a machine may
 * lack (network namespaces, IPv6 loopback): such a case notes that it could
 * not run, and the suite then exits 77, which meson reports as SKIP, rather
 * than passing while it asserted nothing.
 *
 * Check runs each case in a child process, so the count lives in a shared
 * anonymous mapping made before the cases run.
 *
 *   ck_skip_init();  srunner_run_all(...);  return ck_skip_exit(failed);
 *   in a case: ck_skip_note("what could not run, and why"); return;
 */
#ifndef CK_SKIP_H
#define CK_SKIP_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

static int *ck_skips;

static void ck_skip_init(void)
{
    void *p = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);

    ck_skips = p == MAP_FAILED ? NULL : p;
    if (ck_skips)
        *ck_skips = 0;
}

static void ck_skip_note(const char *why)
{
    fprintf(stderr, "skipped: %s\n", why);
    if (ck_skips)
        __atomic_add_fetch(ck_skips, 1, __ATOMIC_SEQ_CST);
}

/* The suite's exit status: failures first; then 77 if a case could not run. */
static int ck_skip_exit(int failed)
{
    if (failed)
        return EXIT_FAILURE;
    if (ck_skips && *ck_skips > 0) {
        fprintf(stderr, "%d case(s) could not run on this machine: the suite reports SKIP\n",
                *ck_skips);
        return 77;
    }
    return EXIT_SUCCESS;
}

#endif /* CK_SKIP_H */
