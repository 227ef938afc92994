#pragma once
namespace slirpnetd::daemon {
// Parses the command line, sets up namespaces, TAP, sandbox, threads and API, then supervises
// until exit-fd, a signal or a fatal error. Returns the process exit status.
int run(int argc, char* argv[]);
}  // namespace slirpnetd::daemon
