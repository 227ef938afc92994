#pragma once
// The two threads that own the TAP fd's I/O. The fd itself is owned by the daemon and outlives
// both threads; it is non-blocking.
//
//   TapReader: read(tap) -> rx channel (producer) -> Waker::notify() once per batch
//   TapWriter: tx channel (consumer) -> write(tap) -> slot back to the slirp thread
// Both stop through a Waker (io/waker.hpp); the writer's channel is closed behind the last frame.
//
// When the TAP goes away (its namespace was destroyed, the device deleted, or a BESS peer hung
// up) the thread calls on_gone(reason) once and ends; the daemon then shuts down.
#include <atomic>
#include <functional>
#include <memory>
#include <vector>
#include <string>
#include <thread>

#include "common/unique_fd.hpp"
#include "io/frame_channel.hpp"
#include "io/gso.hpp"
#include "io/stats.hpp"
#include "io/waker.hpp"

namespace slirpnetd::io {

using GoneCallback = std::function<void(const std::string& reason)>;

class TapReader {
 public:
  static constexpr int kBatch = 64;  // frames read per wakeup before notifying the consumer
  // vnet_hdr_len: 0, or kVnetHdrLen when the TAP has IFF_VNET_HDR (frames then start with a
  // virtio_net_hdr; partial checksums are completed here, before the frame reaches libslirp).
  TapReader(int tap_fd, size_t vnet_hdr_len, FrameChannel& rx, Waker& consumer, TapReaderStats& stats,
            GoneCallback on_gone);
  ~TapReader() { stop(); }
  TapReader(const TapReader&) = delete;
  TapReader& operator=(const TapReader&) = delete;

  // Partial checksums (VIRTIO_NET_HDR_F_NEEDS_CSUM) are completed here unless the consumer takes
  // them as they are (a libslirp with SLIRP_INPUT_CSUM_VALID): then they are left partial, the
  // flag still set in the frame's virtio-net header. Call before start().
  void leave_partial_checksums(bool leave) { leave_partial_csum_ = leave; }

  void start(int cpu = -1);
  void stop();

 private:
  void run();
  bool acquire(Frame*& f);

  bool finish_frame(Frame& f, size_t n);

  int fd_;
  size_t vnet_hdr_len_;
  bool leave_partial_csum_ = false;
  FrameChannel& rx_;
  Waker& consumer_;
  TapReaderStats& stats_;
  GoneCallback on_gone_;
  Waker stop_;  // owner: the reader thread, which polls it with the TAP; rung by stop()
  std::thread thread_;
};

class TapWriter {
 public:
  static constexpr size_t kMaxMerge = 64;
  // coalesce: merge queued TCP segments of one flow into GSO frames (needs a virtio-net header
  // on the TAP; see io/gso.hpp).
  TapWriter(int tap_fd, bool coalesce, FrameChannel& tx, TapWriterStats& stats, GoneCallback on_gone);
  ~TapWriter() { stop(); }
  TapWriter(const TapWriter&) = delete;
  TapWriter& operator=(const TapWriter&) = delete;

  void start(int cpu = -1);
  // Writes what the tx channel still holds, then ends the thread. Call it once the channel's
  // producer (the slirp thread) has stopped: it closes the channel (FrameChannel::close()).
  void stop();

 private:
  void run();
  // Writes f, or f merged with the frames queued behind it; may leave one popped frame in next_.
  bool write_from(Frame* f);
  bool write_bytes(const uint8_t* data, size_t len);
  void taken(const Frame* f);  // records the hand-off latency
  void done(Frame* f);

  int fd_;
  bool coalesce_;
  FrameChannel& tx_;
  Frame* next_ = nullptr;                  // popped but not yet written
  std::vector<Frame*> held_;               // frames being merged
  std::unique_ptr<uint8_t[]> gso_buffer_;  // the merged frame
  TapWriterStats& stats_;
  GoneCallback on_gone_;
  // The writer sleeps on the tx channel, woken by each frame and by close(); stop_ cuts short a
  // wait for a full BESS socket to drain (write_bytes()).
  Waker stop_;
  std::thread thread_;
};

// Names a thread from its creator (pthread_setname_np on another thread writes /proc/.../comm and
// so needs no prctl: it stays allowed under seccomp) and optionally pins it to one CPU.
void name_and_place(std::thread& t, const char* name, int cpu);

}  // namespace slirpnetd::io
