#include "daemon/slirp_backend.hpp"

#include <netinet/in.h>

#include <cerrno>
#include <functional>
#include <string>

#include "common/bounded_call.hpp"

namespace slirpnetd::daemon {

namespace {

int flags_for(const hostfwd::Forward& fwd) {
  int flags = fwd.udp ? SLIRP_HOSTFWD_UDP : 0;
  // An IPv6 listener on a port that also has an IPv4 forward would fail with EADDRINUSE on a
  // dual-stack bind: IPv6 forwards are IPv6-only, and IPv4 clients use the IPv4 forward.
  if (fwd.host.is_ipv6()) flags |= SLIRP_HOSTFWD_V6ONLY;
  return flags;
}

// libslirp's hostfwd calls return 0 or -1 with errno set.
int result_of(int rc) { return rc == 0 ? 0 : -(errno ? errno : EIO); }

// Runs `op` on the slirp thread and waits for its result (0 or -errno). A command still queued
// when the wait times out is cancelled: it never runs (see common/bounded_call.hpp).
template <typename Op>
int call(slirp::SlirpThread& thread, Op op) {
  return bounded_call<Slirp*>([&thread](std::function<void(Slirp*)> fn) { thread.post(std::move(fn)); }, op,
                              SlirpBackend::kTimeout);
}

}  // namespace

int SlirpBackend::add(const hostfwd::Forward& fwd) {
  if (fwd.splice) {
    if (forwarder_ == nullptr) return -ENOTSUP;
    return forwarder_->add(fwd.host, fwd.guest, fwd.proxy_protocol, fwd.udp);
  }
  return call(slirp_, [fwd](Slirp* s) {
        errno = 0;
        if (!fwd.host.is_ipv6() && !fwd.guest.is_ipv6()) {
          // The IPv4-only entry point, exactly as slirp4netns calls it.
          const sockaddr_in& h = fwd.host.in4();
          const sockaddr_in& g = fwd.guest.in4();
          return result_of(
              slirp_add_hostfwd(s, fwd.udp, h.sin_addr, ntohs(h.sin_port), g.sin_addr, ntohs(g.sin_port)));
        }
        return result_of(slirp_add_hostxfwd(s, fwd.host.sa(), fwd.host.len(), fwd.guest.sa(), fwd.guest.len(),
                                            flags_for(fwd)));
  });
}

int SlirpBackend::remove(const hostfwd::Forward& fwd) {
  if (fwd.splice) return forwarder_ ? forwarder_->remove(fwd.host, fwd.udp) : -ENOTSUP;
  return call(slirp_, [fwd](Slirp* s) {
        errno = 0;
        if (!fwd.host.is_ipv6()) {
          const sockaddr_in& h = fwd.host.in4();
          return result_of(slirp_remove_hostfwd(s, fwd.udp, h.sin_addr, ntohs(h.sin_port)));
        }
        return result_of(slirp_remove_hostxfwd(s, fwd.host.sa(), fwd.host.len(), flags_for(fwd)));
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
