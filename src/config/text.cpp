// config/text.cpp: the texts slirp4netns prints and clients parse: --help, --version and the
// "Starting slirp" banner.
#include <arpa/inet.h>
#include <seccomp.h>
#include <slirp/libslirp.h>

#include <cstdio>
#include <string>

#include "config/options.hpp"

#ifndef SLIRPNETD_VERSION
#error "SLIRPNETD_VERSION must be defined by src/config/CMakeLists.txt"
#endif

namespace slirpnetd::config {
namespace {

std::string ntop(const in_addr& a) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string ntop(const in6_addr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, &a, buf, sizeof buf);
  return buf;
}

}  // namespace

void print_usage(std::ostream& out) {
  // slirp4netns HEAD's usage(), TABs included, with our name and our extension at the end.
  out << "Usage: slirpnetd [OPTION]... PID|PATH|FD [TAPNAME]\n"
         "User-mode networking for unprivileged network namespaces.\n"
         "\n"
         "-c, --configure          bring up the interface\n"
         "-e, --exit-fd=FD         specify the FD for terminating slirpnetd\n"
         "-r, --ready-fd=FD        specify the FD to write to when the network is configured\n"
         "-m, --mtu=MTU            specify MTU (default=1500, max=65521)\n"
         "-6, --enable-ipv6        enable IPv6 (experimental)\n"
         "-a, --api-socket=PATH    specify API socket path\n"
         "--cidr=CIDR              specify network address CIDR (default=10.0.2.0/24)\n"
         "--disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace\n"
         "--netns-type=TYPE \t specify network namespace type ([path|pid|tapfd], default=pid)\n"
         "--userns-path=PATH\t specify user namespace path\n"
         "--enable-sandbox         create a new mount namespace (and drop all caps except "
         "CAP_NET_BIND_SERVICE if running as the root)\n"
         "--enable-seccomp         enable seccomp to limit syscalls (experimental)\n"
         "--outbound-addr=IPv4     sets outbound ipv4 address to bound to (experimental)\n"
         "--outbound-addr6=IPv6    sets outbound ipv6 address to bound to (experimental)\n"
         "--disable-dns            disables 10.0.2.3 (or configured internal ip) to host dns redirect "
         "(experimental)\n"
         "--macaddress=MAC         specify the MAC address of the TAP (only valid with -c)\n"
         "--target-type=TYPE       specify the target type ([netns|bess], default=netns)\n"
         "-h, --help               show this help and exit\n"
         "-v, --version            show version and exit\n"
         "--stats                  print frame pipeline counters at exit (slirpnetd extension)\n"
         "--offload=on|off         checksum/TSO offloads on the TAP (default=on; slirpnetd extension)\n"
         "--spin-us=N              busy-poll N us before sleeping, small frames only (default=80; slirpnetd extension)\n"
         "--cpu-affinity=R,W,S     pin TAP reader, TAP writer, slirp threads to CPUs (slirpnetd extension)\n"
         "--tcp-buffer-max=SIZE    largest TCP buffer per connection and direction, which bounds the\n"
         "                         TCP window (bytes, or K/M; default=4M; bundled libslirp only;\n"
         "                         slirpnetd extension)\n"
         "--splice                 allow add_hostfwd \"mode\":\"splice\" (splice(2) forwarder; slirpnetd extension)\n"
         "--forward-mode=MODE      add_hostfwd's default: slirp or splice (default=slirp; splice implies\n"
         "                         --splice; slirpnetd extension)\n"
         "--log-level=LEVEL        diagnostics to show: trace, debug, info, warn, error, critical or off\n"
         "                         (default=warn, or $SLIRPNETD_LOG_LEVEL; slirpnetd extension)\n"
         "\n"
         "One-command mode: slirpnetd run [OPTION]... -- CMD [ARG]...  (see slirpnetd run --help)\n"
         "Pipeline statistics: slirpnetd stats --api-socket PATH [--json]  (see slirpnetd stats --help)\n";
}

std::string libslirp_build() {
#if SLIRPNETD_LIBSLIRP_BUNDLED
  // Debian's libslirp 4.7.0-1 source package and third_party/libslirp/patches/series, linked in.
  return "bundled (Debian's libslirp 4.7.0-1 source package + " + std::to_string(SLIRPNETD_LIBSLIRP_PATCHES) +
         " patches, linked statically)";
#else
  return "system (the distribution's shared library)";
#endif
}

void print_version(std::ostream& out) {
  const scmp_version* sv = seccomp_version();
  out << "slirpnetd version " SLIRPNETD_VERSION "\n"
      << "libslirp: " << slirp_version_string() << '\n'
      << "SLIRP_CONFIG_VERSION_MAX: " << SLIRP_CONFIG_VERSION_MAX << '\n'
      << "libseccomp: " << sv->major << '.' << sv->minor << '.' << sv->micro << '\n'
      << "libslirp build: " << libslirp_build() << '\n';
}

void print_banner(std::ostream& out, const Options& opts, const NetConfig& net) {
  out << "Starting slirp\n"
      << "* MTU:             " << net.mtu << '\n'
      << "* Network:         " << ntop(net.network) << '\n'
      << "* Netmask:         " << ntop(net.netmask) << '\n'
      << "* Gateway:         " << ntop(net.gateway) << '\n'
      << "* DNS:             " << ntop(net.dns) << '\n'
      << "* DHCP begin:      " << ntop(net.dhcp_start) << '\n'
      << "* DHCP end:        " << ntop(net.dhcp_end) << '\n'
      << "* Recommended IP:  " << ntop(net.guest) << '\n';
  if (!opts.api_socket.empty()) out << "* API Socket:      " << opts.api_socket << '\n';
  if (net.outbound4) out << "* Outbound IPv4:    " << ntop(net.outbound4->sin_addr) << '\n';
  if (net.outbound6) out << "* Outbound IPv6:    " << ntop(net.outbound6->sin6_addr) << '\n';
  if (net.mac) {
    char buf[18];
    const auto& m = *net.mac;
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    out << "* MAC address:     " << buf << '\n';
  }
  if (!net.disable_host_loopback) {
    out << "WARNING: 127.0.0.1:* on the host is accessible as " << ntop(net.gateway)
        << " (set --disable-host-loopback to prohibit connecting to 127.0.0.1:*)\n";
  }
}

}  // namespace slirpnetd::config
