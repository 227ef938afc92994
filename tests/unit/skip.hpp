// Skipping a unit test. Catch2 v2 has no SKIP, and a test case that returns early counts as a
// pass; these make a skip visible instead.
#pragma once

#include <catch2/catch.hpp>

// SLIRPNETD_SKIP(why): for a test case this environment cannot run (not root, no namespace, ...).
// Call it before the test has checked anything: it prints a marker line (Catch2 prints WARN
// messages even for passing tests) and returns. tests/CMakeLists.txt gives every unit test
// SKIP_REGULAR_EXPRESSION on the marker, so CTest reports the test as skipped, not passed, and
// scripts/test.sh lists it (and fails under CI=true).
#define SLIRPNETD_SKIP_MARKER "SLIRPNETD-TEST-SKIPPED"
#define SLIRPNETD_SKIP(why)                     \
  do {                                          \
    WARN(SLIRPNETD_SKIP_MARKER ": " << why);    \
    return;                                     \
  } while (0)

// SLIRPNETD_UNSANITIZED: a tag for test cases that mean nothing in a sanitizer build (ASan or
// TSan), known when compiling. There it hides the test case ("[.]"), so it is not discovered and
// not registered with CTest at all, like test_libslirp in a system-libslirp build; elsewhere it is
// an ordinary tag.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLIRPNETD_SANITIZED_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLIRPNETD_SANITIZED_BUILD 1
#endif
#endif
#ifdef SLIRPNETD_SANITIZED_BUILD
#define SLIRPNETD_UNSANITIZED "[.unsanitized]"
#else
#define SLIRPNETD_UNSANITIZED "[unsanitized]"
#endif

// SLIRPNETD_NOT_UNDER_TSAN: the same for ThreadSanitizer builds only.
#if defined(__SANITIZE_THREAD__)
#define SLIRPNETD_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLIRPNETD_TSAN_BUILD 1
#endif
#endif
#ifdef SLIRPNETD_TSAN_BUILD
#define SLIRPNETD_NOT_UNDER_TSAN "[.not-under-tsan]"
#else
#define SLIRPNETD_NOT_UNDER_TSAN "[not-under-tsan]"
#endif
