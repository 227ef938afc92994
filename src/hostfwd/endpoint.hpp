#pragma once
// hostfwd/endpoint.hpp: an IPv4 or IPv6 socket address, validated once.
//
// libslirp aborts on any family but AF_INET/AF_INET6 (g_assert_not_reached), and the splice
// forwarder binds whatever it is given: the only way to get an Endpoint is through parse() or
// from_sockaddr(), which check the family, the length and the text, so code that receives one
// (the slirp thread's commands, fwd::Forwarder) does not check again.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace slirpnetd::hostfwd {

class Endpoint {
 public:
  // An IPv4 literal, or an IPv6 literal when `allow6` (no brackets, no scope), and a port
  // (1..65535; 0 only where a port is not wanted yet, see with_port). Text with a NUL byte, a host
  // name, or a port out of range gives nullopt.
  static std::optional<Endpoint> parse(std::string_view text, int port = 0, bool allow6 = true);
  // A sockaddr_in of sizeof(sockaddr_in) or a sockaddr_in6 of sizeof(sockaddr_in6); else nullopt.
  static std::optional<Endpoint> from_sockaddr(const sockaddr_storage& ss, socklen_t len);
  static Endpoint ipv4(in_addr addr, uint16_t port = 0);
  static Endpoint ipv6(const in6_addr& addr, uint16_t port = 0);

  // The same address with another port (1..65535); nullopt when the port is out of range.
  std::optional<Endpoint> with_port(int port) const;

  int family() const { return ss_.ss_family; }
  bool is_ipv6() const { return ss_.ss_family == AF_INET6; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss_); }
  const sockaddr_storage& storage() const { return ss_; }
  socklen_t len() const { return len_; }
  // Only for an IPv4 endpoint.
  const sockaddr_in& in4() const { return reinterpret_cast<const sockaddr_in&>(ss_); }
  int port() const;
  std::string addr_text() const;  // inet_ntop's form, without the port
  // Same family, address and port.
  bool operator==(const Endpoint& o) const;
  bool operator!=(const Endpoint& o) const { return !(*this == o); }

 private:
  Endpoint() = default;
  sockaddr_storage ss_{};
  socklen_t len_ = 0;
};

}  // namespace slirpnetd::hostfwd
