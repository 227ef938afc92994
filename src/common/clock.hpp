#pragma once
// common/clock.hpp: the daemon's one clock, for every deadline, idle timer, latency stamp and
// libslirp's clock_get_ns. std::chrono::steady_clock is CLOCK_MONOTONIC with libstdc++ on Linux,
// read through the vDSO (no system call: nothing for the seccomp filter to allow).
#include <chrono>
#include <cstdint>

namespace slirpnetd {

using Clock = std::chrono::steady_clock;

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}
inline int64_t now_ms() { return now_ns() / 1'000'000; }

}  // namespace slirpnetd
