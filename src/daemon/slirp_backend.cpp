#include "daemon/slirp_backend.hpp"

#include <netinet/in.h>

#include <cerrno>

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

}  // namespace

int SlirpBackend::add(const hostfwd::Forward& fwd) {
  if (fwd.splice) {
    if (forwarder_ == nullptr) return -ENOTSUP;
    return forwarder_->add(fwd.host, fwd.guest, fwd.proxy_protocol, fwd.udp);
  }
  return slirp_.call(
      [fwd](Slirp* s) {
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
      },
      kTimeout);
}

int SlirpBackend::remove(const hostfwd::Forward& fwd) {
  if (fwd.splice) return forwarder_ ? forwarder_->remove(fwd.host, fwd.udp) : -ENOTSUP;
  return slirp_.call(
      [fwd](Slirp* s) {
        errno = 0;
        if (!fwd.host.is_ipv6()) {
          const sockaddr_in& h = fwd.host.in4();
          return result_of(slirp_remove_hostfwd(s, fwd.udp, h.sin_addr, ntohs(h.sin_port)));
        }
        return result_of(slirp_remove_hostxfwd(s, fwd.host.sa(), fwd.host.len(), flags_for(fwd)));
      },
      kTimeout);
}

ctl::Stats SlirpBackend::stats() {
  ctl::Stats st;
  st.pipeline = io::snapshot(stats_, rx_.depth(), tx_.depth());
  if (forwarder_ != nullptr) st.splice = fwd::snapshot(forwarder_->stats());
  return st;
}

}  // namespace slirpnetd::daemon
