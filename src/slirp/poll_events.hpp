#pragma once
// libslirp's SLIRP_POLL_* flags <-> poll(2) events, for the slirp thread's poll loop (and the
// fuzzing harness that drives libslirp the same way).
#include <libslirp.h>
#include <poll.h>

namespace slirpnetd::slirp {

inline short to_poll_events(int slirp_events) {
  short e = 0;
  if (slirp_events & SLIRP_POLL_IN) e |= POLLIN;
  if (slirp_events & SLIRP_POLL_OUT) e |= POLLOUT;
  if (slirp_events & SLIRP_POLL_PRI) e |= POLLPRI;
  if (slirp_events & SLIRP_POLL_ERR) e |= POLLERR;
  if (slirp_events & SLIRP_POLL_HUP) e |= POLLHUP;
  return e;
}

inline int to_slirp_events(short revents) {
  int e = 0;
  if (revents & POLLIN) e |= SLIRP_POLL_IN;
  if (revents & POLLOUT) e |= SLIRP_POLL_OUT;
  if (revents & POLLPRI) e |= SLIRP_POLL_PRI;
  if (revents & (POLLERR | POLLNVAL)) e |= SLIRP_POLL_ERR;
  if (revents & POLLHUP) e |= SLIRP_POLL_HUP;
  return e;
}

}  // namespace slirpnetd::slirp
