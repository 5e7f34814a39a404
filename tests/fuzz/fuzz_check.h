// Shared by the fuzz targets: a property check that stops the run (libFuzzer
// then saves the input as a crash) with the file, line and condition.
#pragma once

#include <cstdio>
#include <string>

#define FUZZ_CHECK(cond)                                                               \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::fflush(stderr);                                                             \
      __builtin_trap();                                                                \
    }                                                                                  \
  } while (0)

// The same, printing `what` (a std::string, e.g. a Status message) too.
#define FUZZ_CHECK_MSG(cond, what)                                                          \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      const std::string fuzz_what_ = (what);                                                \
      std::fprintf(stderr, "%s:%d: property failed: %s\n  %s\n", __FILE__, __LINE__, #cond, \
                   fuzz_what_.c_str());                                                     \
      std::fflush(stderr);                                                                  \
      __builtin_trap();                                                                     \
    }                                                                                       \
  } while (0)
