#include "hostfwd/registry.hpp"

#include <arpa/inet.h>

namespace slirpnetd::hostfwd {

Registry::Registry(Engine& engine, const config::NetConfig& net)
    : engine_(engine),
      default_guest_(net.guest),
      enable_ipv6_(net.enable_ipv6),
      default_splice_(net.forward_mode == config::ForwardMode::Splice) {}

AddResult Registry::add(const Request& req) {
  AddResult r;
  r.splice = req.splice.value_or(default_splice_);
  if (req.proxy_protocol && (!r.splice || req.udp)) {
    r.error = Error::kProxyProtocol;
    return r;
  }
  const bool allow6 = enable_ipv6_ || r.splice;

  in_addr any{};
  any.s_addr = htonl(INADDR_ANY);
  // The address is checked before the port (slirp4netns's order).
  std::optional<Endpoint> host =
      req.host_addr.empty() ? Endpoint::ipv4(any) : Endpoint::parse(req.host_addr, 0, allow6);
  if (!host) {
    r.error = Error::kHostAddr;
    return r;
  }
  host = host->with_port(req.host_port);
  if (!host) {
    r.error = Error::kHostPort;
    return r;
  }
  // An empty guest address means the guest's address: NetConfig::guest for an IPv4 host, "::" for
  // an IPv6 host (libslirp resolves it to the guest's SLAAC address when a connection arrives;
  // forwarding an IPv6 host socket to the IPv4 guest does not work in libslirp 4.7: a loopback
  // peer is translated to fd00::2, which cannot reach an IPv4 address).
  std::optional<Endpoint> guest;
  if (!req.guest_addr.empty())
    guest = Endpoint::parse(req.guest_addr, 0, allow6);
  else if (host->is_ipv6())
    guest = Endpoint::ipv6(in6addr_any);
  else
    guest = Endpoint::ipv4(default_guest_);
  if (!guest) {
    r.error = Error::kGuestAddr;
    return r;
  }
  guest = guest->with_port(req.guest_port);
  if (!guest) {
    r.error = Error::kGuestPort;
    return r;
  }

  Forward fwd{req.udp, r.splice, req.proxy_protocol, *host, *guest};
  std::lock_guard<std::mutex> lock(mu_);
  if (const int rc = engine_.add(fwd); rc != 0) {
    r.error = Error::kEngine;
    r.err = rc;
    return r;
  }
  r.id = next_id_++;
  forwards_.emplace(r.id, fwd);
  return r;
}

RemoveResult Registry::remove(int id) {
  RemoveResult r;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = forwards_.find(id);
  if (it == forwards_.end()) return r;
  r.found = true;
  r.splice = it->second.splice;
  r.err = engine_.remove(it->second);
  if (r.err == 0) forwards_.erase(it);
  return r;
}

std::vector<std::pair<int, Forward>> Registry::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {forwards_.begin(), forwards_.end()};
}

}  // namespace slirpnetd::hostfwd
