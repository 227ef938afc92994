#pragma once
// The slirp thread: the one thread that owns libslirp (libslirp has no locks and process-global
// state). Every libslirp call, slirp_new and slirp_cleanup included,
// happens on it.
//
// Its loop, one round:
//   slirp_pollfds_fill -> poll(waker + libslirp sockets, timeout from libslirp and its timers)
//   -> slirp_pollfds_poll (socket I/O, TCP timers, output via send_packet)
//   -> Waker::consume() -> slirp_input for up to kInputBatch frames of the rx channel
//   -> commands posted by other threads -> expired timers.
//
// Bridges to other threads:
//   rx channel   consumer (producer: TAP reader)     frames from the guest
//   tx channel   producer (consumer: TAP writer)     frames to the guest; send_packet waits for a
//                                                    free slot rather than drop (libslirp 4.7 has
//                                                    no SACK: a drop costs a >= 1 s RTO)
//   commands     consumer (producers: control thread, daemon)  moodycamel::ConcurrentQueue
//   Waker        owner (notified by every producer above; stop() asks it to stop through it)
#include <concurrentqueue/concurrentqueue.h>
#include <libslirp.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "config/options.hpp"
#include "slirp/fragment_guard.hpp"
#include "io/frame_channel.hpp"
#include "io/stats.hpp"
#include "io/waker.hpp"

namespace slirpnetd::slirp {

// Runs on the slirp thread with the live Slirp instance.
using Command = std::function<void(Slirp*)>;

struct Tuning {
  // Busy-poll the input ring and libslirp's sockets this long before sleeping in poll(2), but only
  // while the recent frames average at most spin_max_avg_bytes: request/response traffic, whose
  // latency is two thread wake-ups per exchange, gains; bulk transfers would only burn CPU.
  int spin_us = 0;
  uint32_t spin_max_avg_bytes = 1024;
  int input_batch = 256;   // frames fed to slirp_input per round, so sockets and timers run too
  // The most each TCP socket buffer in libslirp may grow to (bundled libslirp; 0: its default).
  size_t tcp_buffer_max = 0;
};

class SlirpThread {
 public:
  // Does this libslirp take frames with partial checksums (virtio-net's NEEDS_CSUM) as they are?
  // The bundled one does (slirp_input_flags with SLIRP_INPUT_CSUM_VALID): the TAP reader then
  // leaves them partial, and nobody makes a pass over the payload to checksum it. The
  // distribution's needs them completed first.
  static constexpr bool kTakesPartialChecksums = SLIRPNETD_LIBSLIRP_BUNDLED;

  // tx_headroom: bytes left zeroed in front of each frame to the guest (the TAP's virtio-net
  // header, all zero: no offload requested).
  SlirpThread(const config::NetConfig& net, io::FrameChannel& rx, io::FrameChannel& tx, io::Waker& waker,
              io::SlirpStats& stats, Tuning tuning = {}, size_t tx_headroom = 0);
  ~SlirpThread() { stop(); }
  SlirpThread(const SlirpThread&) = delete;
  SlirpThread& operator=(const SlirpThread&) = delete;

  // Starts the thread and waits until it has created the Slirp instance. False if slirp_new failed
  // (libslirp has printed why); the thread has then ended.
  bool start(int cpu = -1);
  // Ends the loop, runs slirp_cleanup on the thread and joins it. Commands still queued are
  // destroyed unrun (their promises break).
  void stop();
  // Any thread.
  void post(Command cmd);
  // Any thread but this one: runs `task` (returning 0 or -errno) on the slirp thread and waits for
  // its result; -ETIMEDOUT if it had not started within `timeout`, and then it never runs;
  // -ECANCELED if the thread stopped first (common/bounded_call.hpp).
  int call(std::function<int(Slirp*)> task, std::chrono::milliseconds timeout);

 private:
  struct Timer {
    SlirpTimerId id;
    void* cb_opaque;
    SlirpTimerCb cb;  // set by the pre-4.7 timer_new callback only
    int64_t expire_ms;
  };

  void run(std::promise<bool>& created);
  void drain_input();
  void run_commands();
  int poll_timeout_ms(uint32_t slirp_timeout) const;
  void fire_timers();

  // libslirp callbacks (opaque = this).
  static ssize_t cb_send_packet(const void* buf, size_t len, void* opaque);
  static void cb_guest_error(const char* msg, void* opaque);
  static int64_t cb_clock_get_ns(void* opaque);
  static void* cb_timer_new(SlirpTimerCb cb, void* cb_opaque, void* opaque);
  static void* cb_timer_new_opaque(SlirpTimerId id, void* cb_opaque, void* opaque);
  static void cb_timer_free(void* timer, void* opaque);
  static void cb_timer_mod(void* timer, int64_t expire_time, void* opaque);
  static void cb_register_poll_fd(int fd, void* opaque);
  static void cb_unregister_poll_fd(int fd, void* opaque);
  static void cb_notify(void* opaque);
  static void cb_init_completed(Slirp* slirp, void* opaque);
  static int cb_add_poll(int fd, int events, void* opaque);
  static int cb_get_revents(int idx, void* opaque);

  const config::NetConfig net_;
  io::FrameChannel& rx_;
  io::FrameChannel& tx_;
  io::Waker& waker_;
  // Moving average of the sizes of frames in and out (slirp thread only): gates the spin.
  void note_frame(size_t len) { avg_frame_bytes_ += (static_cast<int64_t>(len) - avg_frame_bytes_) / 8; }
  bool want_spin() const {
    return tuning_.spin_us > 0 && avg_frame_bytes_ <= int64_t{tuning_.spin_max_avg_bytes};
  }
  int64_t avg_frame_bytes_ = 0;
  io::SlirpStats& stats_;
  const Tuning tuning_;
  const size_t tx_headroom_;
  SlirpCb callbacks_{};
  sockaddr_in outbound4_{};  // libslirp keeps the pointers: they must live as long as Slirp
  sockaddr_in6 outbound6_{};

  // Owned by the slirp thread.
  Slirp* slirp_ = nullptr;
  std::vector<pollfd> pfds_;
  std::vector<std::unique_ptr<Timer>> timers_;
  void input(const io::Frame& f);  // slirp_input of one frame from the TAP reader
  // Only the distribution's libslirp 4.7.0 needs the guard: the bundled one has ip_reass fixed.
  static constexpr bool kGuardFragments = !SLIRPNETD_LIBSLIRP_BUNDLED;
  FragmentGuard fragments_;

  moodycamel::ConcurrentQueue<Command> commands_;
  std::thread thread_;
};

// Routes libslirp's glib messages (domain "Slirp") to spdlog.
void install_glib_log_handler();

}  // namespace slirpnetd::slirp
