#pragma once
#include <functional>

#include "config/options.hpp"
#include "hostfwd/registry.hpp"

namespace slirpnetd::daemon {

// Parses the command line, sets up namespaces, TAP, sandbox, threads and API, then supervises
// until exit-fd, a signal or a fatal error. Returns the process exit status.
int run(int argc, char* argv[]);

// What `slirpnetd run` (src/run) adds to the daemon's life cycle.
struct Hooks {
  // No banner, no "sent/received tapfd" lines (unless opening the TAP fails), no exit messages.
  bool quiet = false;
  // Called once the network is up (TAP configured, threads and API running), before ready-fd.
  // `forwards` is the daemon's one forwards registry, the one the API socket serves too.
  // Returning false stops the daemon, which then returns 1.
  std::function<bool(hostfwd::Registry& forwards)> on_ready;
};

// The daemon for already parsed options: everything run() does after parsing.
int serve(const config::Options& opts, const Hooks& hooks = {});

}  // namespace slirpnetd::daemon
