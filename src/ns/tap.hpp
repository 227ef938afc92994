#pragma once
// Namespace work: everything here runs on the main thread before any other thread exists
// (setns(CLONE_NEWUSER) refuses multithreaded callers; unshare/pivot_root/capset are per thread).
//
// open_tap() does what slirp4netns's child() does: fork a short-lived child that joins
// the target user and network namespaces, opens /dev/net/tun, attaches or creates TAPNAME
// (IFF_TAP|IFF_NO_PI), optionally configures it (-c) and sends the fd back over a
// socketpair with SCM_RIGHTS. The parent stays in its own namespaces. (docs/compatibility.md,
// "Start-up and the TAP device".)
#include <optional>
#include <string>

#include "common/unique_fd.hpp"
#include "config/options.hpp"

namespace slirpnetd::ns {

// With -c the tap's txqueuelen is raised to this (slirpnetd addition, SIOCSIFTXQLEN). For a tap the
// txqueuelen also sizes the tun driver's ring of frames waiting for read(); when it is full the
// kernel drops the guest's frame (tx_dropped). The kernel default for a tap is 1000 (500 for tun):
// raising it absorbs bursts while our tap-rx thread is busy. Bound: kTapTxQueueLen x MTU bytes.
inline constexpr int kTapTxQueueLen = 2048;

struct TapResult {
  UniqueFd fd;          // valid on success: the TAP (or BESS SEQPACKET) fd, O_NONBLOCK, CLOEXEC
  int exit_status = 0;  // on failure: the status to exit with (messages already on stderr)
};

// Handles every mode: --netns-type=pid|path (child + setns), tapfd (the inherited fd, no child),
// --target-type=bess (child accepts one SEQPACKET connection). Prints slirp4netns's
// "sent tapfd=%d for %s" (child) and "received tapfd=%d" (parent) lines on stderr.
// vnet_hdr: open the TAP with IFF_VNET_HDR (offloads; the caller decides where they pay).
TapResult open_tap(const config::Options& opts, const config::NetConfig& net, bool vnet_hdr);

}  // namespace slirpnetd::ns
