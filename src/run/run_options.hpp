#pragma once
// run/run_options.hpp: the command line of `slirpnetd run` (pure, unit tested).
//
//   slirpnetd run [--mtu=N] [--cidr=CIDR] [--disable-host-loopback] [-6] [--api-socket=PATH]
//                 [--forward-mode=slirp|splice] [-p [IP:]HOST:GUEST[/tcp|/udp]]... [--netns-path=PATH]
//                 [--] CMD [ARG]...
// Options stop at "--" or at the first non-option (CMD). The daemon options are validated by
// config::parse_args(), with its messages.
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "hostfwd/registry.hpp"

namespace slirpnetd::run {

// -p [IP:]HOST:GUEST[/udp]; IP may be an IPv6 literal in brackets: [::1]:8080:80.
struct PortSpec {
  bool udp = false;
  std::string host_addr;  // "" = 0.0.0.0
  int host_port = 0;
  int guest_port = 0;
};
std::optional<PortSpec> parse_port(const std::string& spec);
// The forward it asks for (mode: the daemon's default).
hostfwd::Request hostfwd_request(const PortSpec& p);

struct RunOptions {
  config::Options daemon;  // -c and tap0 set; target_pid filled in by the runner
  std::vector<PortSpec> ports;
  std::string netns_path;
  std::vector<std::string> command;
};

struct RunParse {
  std::optional<int> exit_status;  // set: exit now (help printed, or an error printed to err)
  RunOptions options;
};
// argv[0] is "run".
RunParse parse_run_args(int argc, const char* const argv[], std::ostream& out, std::ostream& err);
void print_run_usage(std::ostream& out);

}  // namespace slirpnetd::run
