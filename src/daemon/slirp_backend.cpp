#include "daemon/slirp_backend.hpp"

#include <netinet/in.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <string>

#include "common/bounded_call.hpp"

namespace slirpnetd::daemon {

namespace {

bool valid_family(const sockaddr_storage& a, socklen_t len) {
  // libslirp aborts (g_assert_not_reached) on any other family: never pass one through.
  return (a.ss_family == AF_INET && len == sizeof(sockaddr_in)) ||
         (a.ss_family == AF_INET6 && len == sizeof(sockaddr_in6));
}

int flags_for(const ctl::Hostfwd& fwd) {
  int flags = fwd.udp ? SLIRP_HOSTFWD_UDP : 0;
  // An IPv6 listener on a port that also has an IPv4 forward would fail with EADDRINUSE on a
  // dual-stack bind: IPv6 forwards are IPv6-only, and IPv4 clients use the IPv4 forward.
  if (fwd.host.ss_family == AF_INET6) flags |= SLIRP_HOSTFWD_V6ONLY;
  return flags;
}

// Runs `op` on the slirp thread and waits for its result (0 or -errno). A command still queued
// when the wait times out is cancelled: it never runs (see common/bounded_call.hpp).
template <typename Op>
int call(slirp::SlirpThread& thread, Op op) {
  return bounded_call<Slirp*>(
      [&thread](std::function<void(Slirp*)> fn) { thread.post(std::move(fn)); },
      [op](Slirp* s) {
        errno = 0;
        const int rc = op(s);
        return rc == 0 ? 0 : -(errno ? errno : EIO);
      },
      SlirpBackend::kTimeout);
}

}  // namespace

int SlirpBackend::add_hostfwd(const ctl::Hostfwd& fwd) {
  if (!valid_family(fwd.host, fwd.host_len) || !valid_family(fwd.guest, fwd.guest_len)) return -EAFNOSUPPORT;
  if (fwd.splice) {
    if (forwarder_ == nullptr) return -ENOTSUP;
    return forwarder_->add(fwd.host, fwd.host_len, fwd.guest, fwd.guest_len, fwd.proxy_protocol, fwd.udp);
  }
  return call(slirp_, [fwd](Slirp* s) {
    if (fwd.host.ss_family == AF_INET && fwd.guest.ss_family == AF_INET) {
      // The IPv4-only entry point, exactly as slirp4netns calls it.
      const auto& h = reinterpret_cast<const sockaddr_in&>(fwd.host);
      const auto& g = reinterpret_cast<const sockaddr_in&>(fwd.guest);
      return slirp_add_hostfwd(s, fwd.udp, h.sin_addr, ntohs(h.sin_port), g.sin_addr, ntohs(g.sin_port));
    }
    return slirp_add_hostxfwd(s, reinterpret_cast<const sockaddr*>(&fwd.host), fwd.host_len,
                              reinterpret_cast<const sockaddr*>(&fwd.guest), fwd.guest_len, flags_for(fwd));
  });
}

int SlirpBackend::remove_hostfwd(const ctl::Hostfwd& fwd) {
  if (!valid_family(fwd.host, fwd.host_len)) return -EAFNOSUPPORT;
  if (fwd.splice) return forwarder_ ? forwarder_->remove(fwd.host, fwd.host_len, fwd.udp) : -ENOTSUP;
  return call(slirp_, [fwd](Slirp* s) {
    if (fwd.host.ss_family == AF_INET) {
      const auto& h = reinterpret_cast<const sockaddr_in&>(fwd.host);
      return slirp_remove_hostfwd(s, fwd.udp, h.sin_addr, ntohs(h.sin_port));
    }
    return slirp_remove_hostxfwd(s, reinterpret_cast<const sockaddr*>(&fwd.host), fwd.host_len, flags_for(fwd));
  });
}

std::string SlirpBackend::stats_json() {
  std::string json = io::stats_json(stats_, rx_.depth(), tx_.depth());
  if (forwarder_ != nullptr && !json.empty() && json.back() == '}') {
    const fwd::ForwarderStats& f = forwarder_->stats();
    json.pop_back();
    json += R"(,"splice":{"accepted":)" + std::to_string(f.accepted.load()) +
            R"(,"connect_failed":)" + std::to_string(f.connect_failed.load()) +
            R"(,"active":)" + std::to_string(f.active.load()) + R"(,"bytes_in":)" +
            std::to_string(f.bytes_in.load()) + R"(,"bytes_out":)" + std::to_string(f.bytes_out.load()) +
            R"(,"udp_flows":)" + std::to_string(f.udp_flows.load()) + R"(,"udp_dropped":)" +
            std::to_string(f.udp_dropped.load()) + R"(,"udp_evicted":)" + std::to_string(f.udp_evicted.load()) + R"(,"accept_paused":)" + std::to_string(f.accept_paused.load()) +
            R"(,"idle_closed":)" + std::to_string(f.idle_closed.load()) + "}}";
  }
  return json;
}

}  // namespace slirpnetd::daemon
