// config/net_config.cpp: the addresses derived from the options (--cidr, --outbound-addr[6],
// --macaddress), with slirp4netns's checks and messages (docs/compatibility.md, "Network
// configuration").
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <regex.h>

#include <array>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "config/options.hpp"

namespace slirpnetd::config {
namespace {

// First address of `family` on interface `name`, copied into `sa` (sizeof == len).
bool interface_address(const std::string& name, int family, void* sa, size_t len) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == -1) return false;
  std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> owner(list, &freeifaddrs);
  for (const ifaddrs* ifa = list; ifa; ifa = ifa->ifa_next) {
    if (ifa->ifa_addr && ifa->ifa_addr->sa_family == family && name == ifa->ifa_name) {
      std::memcpy(sa, ifa->ifa_addr, len);
      return true;
    }
  }
  return false;
}

enum class MacError { kNone, kInvalid, kTooLong };

// Exactly six ':'-separated fields of one or two hex digits, each optionally "0x"-prefixed.
// Stricter than slirp4netns's sscanf("%x") loop on purpose: it accepted "0e:d4:18" as a 3-byte MAC
// (padding zeros) and fields like " +1"; we reject both.
MacError parse_mac(const std::string& s, std::array<uint8_t, 6>& mac) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (;;) {
    const size_t colon = s.find(':', start);
    fields.push_back(s.substr(start, colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (fields.size() > mac.size()) return MacError::kTooLong;
  if (fields.size() < mac.size()) return MacError::kInvalid;
  for (size_t i = 0; i < fields.size(); ++i) {
    std::string f = fields[i];
    if (f.size() > 2 && f[0] == '0' && (f[1] == 'x' || f[1] == 'X')) f.erase(0, 2);
    if (f.empty() || f.size() > 2) return MacError::kInvalid;
    for (char c : f) {
      if (!std::isxdigit(static_cast<unsigned char>(c))) return MacError::kInvalid;
    }
    mac[i] = static_cast<uint8_t>(std::strtoul(f.c_str(), nullptr, 16));
  }
  return MacError::kNone;
}

in_addr host_to_in_addr(uint32_t host_order) {
  in_addr a{};
  a.s_addr = htonl(host_order);
  return a;
}

in6_addr fd00(uint8_t last) {
  in6_addr a{};
  a.s6_addr[0] = 0xfd;
  a.s6_addr[15] = last;
  return a;
}

}  // namespace

std::optional<NetConfig> make_net_config(const Options& opts, std::ostream& err) {
  NetConfig net;

  // --cidr: four checks, in this order, each with its own message. POSIX regcomp with
  // slirp4netns's extended regex, so exactly the same strings match.
  static const char kCidrRe[] = "^(([0-9]{1,3}\\.){3}[0-9]{1,3})/([0-9]{1,2})$";
  regex_t re;
  if (regcomp(&re, kCidrRe, REG_EXTENDED) != 0) {
    err << "regcomp failed\n";
    return std::nullopt;
  }
  std::unique_ptr<regex_t, decltype(&regfree)> re_owner(&re, &regfree);
  regmatch_t m[4];
  if (regexec(&re, opts.cidr.c_str(), 4, m, 0) != 0) {
    err << "invalid CIDR: " << opts.cidr << '\n';
    return std::nullopt;
  }
  auto group = [&opts, &m](int i) { return opts.cidr.substr(m[i].rm_so, m[i].rm_eo - m[i].rm_so); };
  const std::string network_str = group(1);
  if (inet_pton(AF_INET, network_str.c_str(), &net.network) != 1) {
    err << "invalid network address: " << network_str << '\n';
    return std::nullopt;
  }
  const int prefix = std::stoi(group(3));
  if (prefix < 1 || prefix > 25) {  // the guest is network + 100
    err << "prefix length needs to be 1-25\n";
    return std::nullopt;
  }
  const uint32_t mask = ~uint32_t{0} << (32 - prefix);
  const uint32_t network = ntohl(net.network.s_addr);
  if ((network & mask) != network) {
    err << "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24\n";
    return std::nullopt;
  }
  net.prefix_len = prefix;
  net.netmask = host_to_in_addr(mask);
  net.gateway = host_to_in_addr(network + 2);
  net.dns = host_to_in_addr(network + 3);
  net.dhcp_start = host_to_in_addr(network + 15);
  net.dhcp_end = host_to_in_addr(network + 30);
  net.guest = host_to_in_addr(network + 100);

  net.mtu = opts.mtu;
  net.enable_ipv6 = opts.enable_ipv6;
  net.prefix6 = fd00(0);
  net.prefix6_len = 64;
  net.gateway6 = fd00(2);
  net.dns6 = fd00(3);
  net.disable_host_loopback = opts.disable_host_loopback;
  net.disable_dns = opts.disable_dns;
  net.forward_mode = opts.forward_mode;

  // The outbound and MAC messages are slirp4netns's texts (the "iterface" typo included); slirp4netns
  // prints them without a trailing newline, we end the line.
  if (!opts.outbound_addr.empty()) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    if (inet_pton(AF_INET, opts.outbound_addr.c_str(), &sa.sin_addr) != 1 &&
        !interface_address(opts.outbound_addr, AF_INET, &sa, sizeof sa)) {
      err << "outbound-addr has to be valid ipv4 address or interface name.\n";
      return std::nullopt;
    }
    sa.sin_port = 0;
    net.outbound4 = sa;
  }
  if (!opts.outbound_addr6.empty()) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    // slirp4netns looks up the --outbound-addr string here (a bug); we use --outbound-addr6's.
    if (inet_pton(AF_INET6, opts.outbound_addr6.c_str(), &sa.sin6_addr) != 1 &&
        !interface_address(opts.outbound_addr6, AF_INET6, &sa, sizeof sa)) {
      err << "outbound-addr has to be valid ipv4 address or iterface name.\n";
      return std::nullopt;
    }
    sa.sin6_port = 0;
    net.outbound6 = sa;
  }

  if (!opts.macaddress.empty()) {
    std::array<uint8_t, 6> mac{};
    const MacError e = parse_mac(opts.macaddress, mac);
    if (e != MacError::kNone) {
      err << '"' << opts.macaddress << "\" is an invalid MAC address."
          << (e == MacError::kTooLong ? "  Is it too long?" : "") << '\n'
          << "macaddress has to be a valid MAC address (hex string, 6 bytes, each byte separated by "
             "a ':').\n";
      return std::nullopt;
    }
    net.mac = mac;
  }
  return net;
}

}  // namespace slirpnetd::config
