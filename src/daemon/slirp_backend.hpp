#pragma once
// The daemon's hostfwd::Engine and ctl::StatsSource: libslirp forwards become commands run on the
// slirp thread (bounded by kTimeout, cancelled when it expires: common/bounded_call.hpp); splice
// forwards go to the fwd::Forwarder, when there is one (else -ENOTSUP). Stats are read from the
// pipeline's counters and the forwarder's, as plain values.
//
// Thread: the callers of hostfwd::Registry (control thread, main thread), one at a time.
#include <chrono>

#include "ctl/api.hpp"
#include "fwd/forwarder.hpp"
#include "hostfwd/registry.hpp"
#include "io/frame_channel.hpp"
#include "io/stats.hpp"
#include "slirp/slirp_thread.hpp"

namespace slirpnetd::daemon {

class SlirpBackend final : public hostfwd::Engine, public ctl::StatsSource {
 public:
  SlirpBackend(slirp::SlirpThread& slirp, const io::PipelineStats& stats, const io::FrameChannel& rx,
               const io::FrameChannel& tx)
      : slirp_(slirp), stats_(stats), rx_(rx), tx_(tx) {}
  // `forwarder` (may be null) must outlive the backend's last call.
  void set_forwarder(fwd::Forwarder* forwarder) { forwarder_ = forwarder; }
  int add(const hostfwd::Forward& fwd) override;
  int remove(const hostfwd::Forward& fwd) override;
  ctl::Stats stats() override;

  static constexpr std::chrono::seconds kTimeout{5};

 private:
  slirp::SlirpThread& slirp_;
  const io::PipelineStats& stats_;
  const io::FrameChannel& rx_;
  const io::FrameChannel& tx_;
  fwd::Forwarder* forwarder_ = nullptr;
};

}  // namespace slirpnetd::daemon
