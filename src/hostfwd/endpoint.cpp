#include "hostfwd/endpoint.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace slirpnetd::hostfwd {

std::optional<Endpoint> Endpoint::parse(std::string_view text, int port, bool allow6) {
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  const std::string s(text);
  in_addr a4{};
  in6_addr a6{};
  std::optional<Endpoint> e;
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1)
    e = ipv4(a4);
  else if (allow6 && inet_pton(AF_INET6, s.c_str(), &a6) == 1)
    e = ipv6(a6);
  if (!e || port == 0) return e;
  return e->with_port(port);
}

std::optional<Endpoint> Endpoint::from_sockaddr(const sockaddr_storage& ss, socklen_t len) {
  if (!((ss.ss_family == AF_INET && len == sizeof(sockaddr_in)) ||
        (ss.ss_family == AF_INET6 && len == sizeof(sockaddr_in6))))
    return std::nullopt;
  Endpoint e;
  std::memcpy(&e.ss_, &ss, len);
  e.len_ = len;
  return e;
}

Endpoint Endpoint::ipv4(in_addr addr, uint16_t port) {
  Endpoint e;
  auto& sin = reinterpret_cast<sockaddr_in&>(e.ss_);
  sin.sin_family = AF_INET;
  sin.sin_addr = addr;
  sin.sin_port = htons(port);
  e.len_ = sizeof(sockaddr_in);
  return e;
}

Endpoint Endpoint::ipv6(const in6_addr& addr, uint16_t port) {
  Endpoint e;
  auto& sin6 = reinterpret_cast<sockaddr_in6&>(e.ss_);
  sin6.sin6_family = AF_INET6;
  sin6.sin6_addr = addr;
  sin6.sin6_port = htons(port);
  e.len_ = sizeof(sockaddr_in6);
  return e;
}

std::optional<Endpoint> Endpoint::with_port(int port) const {
  if (port < 1 || port > 65535) return std::nullopt;
  Endpoint e = *this;
  const auto p = htons(static_cast<uint16_t>(port));
  if (is_ipv6())
    reinterpret_cast<sockaddr_in6&>(e.ss_).sin6_port = p;
  else
    reinterpret_cast<sockaddr_in&>(e.ss_).sin_port = p;
  return e;
}

int Endpoint::port() const {
  if (is_ipv6()) return ntohs(reinterpret_cast<const sockaddr_in6&>(ss_).sin6_port);
  return ntohs(in4().sin_port);
}

std::string Endpoint::addr_text() const {
  char buf[INET6_ADDRSTRLEN] = "";
  if (is_ipv6())
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(ss_).sin6_addr, buf, sizeof buf);
  else
    inet_ntop(AF_INET, &in4().sin_addr, buf, sizeof buf);
  return buf;
}

bool Endpoint::operator==(const Endpoint& o) const {
  if (family() != o.family() || port() != o.port()) return false;
  if (is_ipv6())
    return std::memcmp(&reinterpret_cast<const sockaddr_in6&>(ss_).sin6_addr,
                       &reinterpret_cast<const sockaddr_in6&>(o.ss_).sin6_addr, sizeof(in6_addr)) == 0;
  return in4().sin_addr.s_addr == o.in4().sin_addr.s_addr;
}

}  // namespace slirpnetd::hostfwd
