#pragma once
// stats/client.hpp: one get_stats request over the daemon's API socket.
#include <chrono>
#include <optional>
#include <string>

#include "stats/sample.hpp"

namespace slirpnetd::stats {

// Connects to the UNIX socket at `path`, sends {"execute":"get_stats"}, half-closes and reads the
// reply until EOF, all within `timeout`; parses it and stamps it with the clocks read when the
// reply was complete. On failure returns nullopt and sets `error` to the message for the user,
// e.g. "cannot connect to /run/x.sock: No such file or directory". Runs on the caller's thread.
std::optional<Sample> get_stats(const std::string& path, std::chrono::milliseconds timeout, std::string& error);

}  // namespace slirpnetd::stats
