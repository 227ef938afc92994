#pragma once
// Command line and network configuration, compatible with slirp4netns 1.3 (docs/compatibility.md,
// "Command line" and "Network configuration").
//
// parse_args() never exits the process: it returns the status to exit with (help, version, or an
// error it has already printed), so it can be unit tested and fuzzed.
#include <netinet/in.h>
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

namespace slirpnetd::config {

enum class NetnsType { Pid, Path, TapFd };
enum class TargetType { Netns, Bess };
// How add_hostfwd forwards by default: through libslirp, or with the splice forwarder (src/fwd).
enum class ForwardMode { Slirp, Splice };

struct Options {
  bool configure = false;
  int exit_fd = -1;
  int ready_fd = -1;
  int mtu = 1500;
  bool enable_ipv6 = false;
  std::string api_socket;  // empty: no API socket
  std::string cidr = "10.0.2.0/24";
  bool disable_host_loopback = false;
  NetnsType netns_type = NetnsType::Pid;
  std::string userns_path;  // empty: /proc/PID/ns/user in pid mode, none in path mode
  bool enable_sandbox = false;
  bool enable_seccomp = false;
  std::string outbound_addr;
  std::string outbound_addr6;
  bool disable_dns = false;
  std::string macaddress;  // as given; parsed into NetConfig::mac
  TargetType target_type = TargetType::Netns;

  // Positionals, by mode.
  pid_t target_pid = 0;     // NetnsType::Pid
  std::string netns_path;   // NetnsType::Path
  int tapfd = -1;           // NetnsType::TapFd
  std::string tapname;      // Pid and Path (truncated to 15 bytes like slirp4netns)
  std::string bess_socket;  // TargetType::Bess

  // slirpnetd extensions (not in slirp4netns).
  bool print_stats = false;  // --stats: print pipeline counters at exit
  bool offload = true;       // --offload=on|off: IFF_VNET_HDR with checksum/TSO offloads on the TAP
  int spin_us = 80;          // --spin-us=N: the slirp thread busy-polls this long (small-frame traffic only)
  // --cpu-affinity=R,W,S: CPUs for the TAP reader, writer and slirp thread (-1: not pinned).
  std::array<int, 3> cpu_affinity{-1, -1, -1};
  // --tcp-buffer-max=SIZE: the most each libslirp TCP socket buffer may grow to, which bounds the
  // window it advertises (bundled libslirp only; 0 = libslirp's default).
  size_t tcp_buffer_max = 0;
  ForwardMode forward_mode = ForwardMode::Slirp;  // --forward-mode=slirp|splice: add_hostfwd's default
  // --splice (implied by --forward-mode=splice): start the splice forwarder, whose connector
  // is an extra child process in the target netns. Off by default, so the process model Podman and
  // RootlessKit see (one daemon process) is unchanged.
  bool enable_splice = false;
  // --log-level=LEVEL: spdlog's level, checked and applied by the daemon at start (empty: the
  // environment's SLIRPNETD_LOG_LEVEL, else warn).
  std::string log_level;
};

struct ParseResult {
  // Set when the process must exit now with this status (help/version printed, or an error
  // printed to `err` with the usage on `out` as slirp4netns does).
  std::optional<int> exit_status;
  Options options;
};

// Parses like glibc getopt_long("ce:r:m:a:6hv"): permutation, --opt=v and --opt v, unique
// prefixes of long options, bundled short flags, last one wins. Messages use `prog` as the
// program name (slirp4netns prints "slirp4netns: unrecognized option '--bogus'").
ParseResult parse_args(int argc, const char* const argv[], std::ostream& out, std::ostream& err);

// Addresses derived from the options.
struct NetConfig {
  in_addr network{};
  in_addr netmask{};
  int prefix_len = 24;
  in_addr gateway{};     // network + 2, "vhost"
  in_addr dns{};         // network + 3
  in_addr dhcp_start{};  // network + 15
  in_addr dhcp_end{};    // network + 30 (printed only)
  in_addr guest{};       // network + 100, the recommended address and hostfwd default
  int mtu = 1500;
  bool enable_ipv6 = false;
  in6_addr prefix6{};  // fd00::
  int prefix6_len = 64;
  in6_addr gateway6{};  // fd00::2
  in6_addr dns6{};      // fd00::3
  bool disable_host_loopback = false;
  bool disable_dns = false;
  std::optional<sockaddr_in> outbound4;
  std::optional<sockaddr_in6> outbound6;
  std::optional<std::array<uint8_t, 6>> mac;
  ForwardMode forward_mode = ForwardMode::Slirp;  // add_hostfwd's default "mode"
};

// Validates --cidr, --outbound-addr(6) and --macaddress in slirp4netns's order, printing its
// messages to `err`. Returns nullopt on error (exit status 1).
std::optional<NetConfig> make_net_config(const Options& opts, std::ostream& err);

void print_usage(std::ostream& out);
// "bundled (...)" or "system (...)": which libslirp this binary links (--version's last line).
std::string libslirp_build();
void print_version(std::ostream& out);
// The "Starting slirp" banner, byte for byte as slirp4netns prints it.
void print_banner(std::ostream& out, const Options& opts, const NetConfig& net);

}  // namespace slirpnetd::config
