#pragma once
// ctl::Backend on top of the slirp thread: each call posts a command into the slirp thread and
// waits (on the control thread) for its reply, bounded by a timeout. Splice forwards ("mode":
// "splice") go to the fwd::Forwarder instead, when there is one (else -ENOTSUP).
#include <chrono>

#include "ctl/api.hpp"
#include "fwd/forwarder.hpp"
#include "io/frame_channel.hpp"
#include "io/stats.hpp"
#include "slirp/slirp_thread.hpp"

namespace slirpnetd::daemon {

class SlirpBackend final : public ctl::Backend {
 public:
  SlirpBackend(slirp::SlirpThread& slirp, const io::PipelineStats& stats, const io::FrameChannel& rx,
               const io::FrameChannel& tx)
      : slirp_(slirp), stats_(stats), rx_(rx), tx_(tx) {}
  // `forwarder` (may be null) must outlive the backend's last call.
  void set_forwarder(fwd::Forwarder* forwarder) { forwarder_ = forwarder; }
  int add_hostfwd(const ctl::Hostfwd& fwd) override;
  int remove_hostfwd(const ctl::Hostfwd& fwd) override;
  std::string stats_json() override;

  static constexpr std::chrono::seconds kTimeout{5};

 private:
  slirp::SlirpThread& slirp_;
  const io::PipelineStats& stats_;
  const io::FrameChannel& rx_;
  const io::FrameChannel& tx_;
  fwd::Forwarder* forwarder_ = nullptr;
};

}  // namespace slirpnetd::daemon
