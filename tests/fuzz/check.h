/*
 * check.h -- the invariant check of the libFuzzer targets.
 *
 * CHECK(x) aborts when x is false, so libFuzzer reports the input that
 * broke the invariant as a crash and keeps it as a reproducer. It is
 * evaluated in every build (it is not assert(): NDEBUG does not remove it).
 */
#ifndef SFU_TESTS_FUZZ_CHECK_H
#define SFU_TESTS_FUZZ_CHECK_H

#include <stdlib.h>

#define CHECK(x) \
  do {           \
    if (!(x))    \
      abort();   \
  } while (0)

#endif
