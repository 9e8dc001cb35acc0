#pragma once

#include <cstdio>
#include <cstdlib>

// A fuzzer's invariant: when it does not hold, say which and abort, so libFuzzer keeps the input.
#define RR_FUZZ_CHECK(condition)                                                          \
  do {                                                                                    \
    if (!(condition)) {                                                                   \
      std::fprintf(stderr, "%s:%d: does not hold: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (false)
