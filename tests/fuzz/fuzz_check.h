/* fuzz_check.h: the one assertion the fuzz targets share. A failed check
 * prints where and aborts, which libFuzzer reports as a crash with the input
 * that caused it. Unlike assert() it stays on whatever the build type. */
#pragma once

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                         \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)
