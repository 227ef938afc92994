#include "io/tap_threads.hpp"

// Under seccomp (src/ns/sandbox.cpp): the TAP reader and writer; naming a thread from its creator
// writes /proc/self/task/TID/comm, pinning it is sched_setaffinity.
// #syscalls: read write poll eventfd2 openat sched_setaffinity

#include "io/vnet.hpp"

#include <poll.h>
#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace slirpnetd::io {

namespace {
// The longest the reader waits for a free rx slot before it looks at its stop flag again. The
// slirp thread frees slots within microseconds while it runs, and it outlives the reader (the
// daemon stops the reader first); this bound matters only if it is stuck.
constexpr auto kSlotWait = std::chrono::milliseconds(100);

bool tap_gone_errno(int err) {
  // EBADFD: the tun device was unregistered (netns destroyed, `ip link del`). EIO from read is
  // not used by tun; ECONNRESET/ENOTCONN/EPIPE: a BESS peer went away.
  return err == EBADFD || err == EBADF || err == ECONNRESET || err == ENOTCONN || err == EPIPE ||
         err == ENXIO || err == ENODEV;
}
}  // namespace

void name_and_place(std::thread& t, const char* name, int cpu) {
  pthread_setname_np(t.native_handle(), name);
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(t.native_handle(), sizeof set, &set);
  }
}

// ---------------------------------------------------------------------------------------------

TapReader::TapReader(int tap_fd, size_t vnet_hdr_len, FrameChannel& rx, Waker& consumer, TapReaderStats& stats,
                     GoneCallback on_gone)
    : fd_(tap_fd),
      vnet_hdr_len_(vnet_hdr_len),
      rx_(rx),
      consumer_(consumer),
      stats_(stats),
      on_gone_(std::move(on_gone)) {}

void TapReader::start(int cpu) {
  thread_ = std::thread([this] { run(); });
  name_and_place(thread_, "slirpnetd-rx", cpu);
}

void TapReader::stop() {
  if (!thread_.joinable()) return;
  stop_.request_stop();
  thread_.join();
}

// Takes a free slot; when none is free (the slirp thread is behind) makes sure the consumer is
// awake and waits: the TAP's own queue absorbs the burst meanwhile.
bool TapReader::acquire(Frame*& f) {
  if (f) return true;
  if ((f = rx_.try_acquire())) return true;
  stats_.backpressure_waits.add();
  consumer_.notify();
  while (!(f = rx_.acquire_for(kSlotWait))) {
    if (stop_.stop_requested()) return false;
  }
  return true;
}

void TapReader::run() {
  pollfd pfd[2] = {{fd_, POLLIN, 0}, {stop_.fd(), POLLIN, 0}};
  Frame* spare = nullptr;  // a slot taken from the free ring and not yet filled
  while (!stop_.stop_requested()) {
    if (::poll(pfd, 2, -1) < 0) {
      if (errno == EINTR) continue;
      on_gone_(std::string("poll: ") + std::strerror(errno));
      break;
    }
    if (pfd[1].revents) break;
    int pushed = 0;
    for (; pushed < kBatch; ++pushed) {
      if (!acquire(spare)) break;
      ssize_t n = ::read(fd_, spare->data, spare->capacity);
      stats_.reads.add();
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          stats_.eagain.add();
          break;
        }
        stats_.errors.add();
        if (tap_gone_errno(errno)) {
          if (pushed) consumer_.notify();
          on_gone_(std::string("TAP read: ") + std::strerror(errno));
          return;
        }
        break;
      }
      if (n == 0) {  // only a BESS socket reads 0: the peer hung up
        if (pushed) consumer_.notify();
        on_gone_("TAP read: end of file");
        return;
      }
      if (!finish_frame(*spare, static_cast<size_t>(n))) {
        stats_.errors.add();  // malformed virtio-net header: drop, keep the slot
        continue;
      }
      stats_.frames.add();
      stats_.bytes.add(static_cast<uint64_t>(n));
      if (spare->len - spare->offset > 1514 + 4) stats_.gso_frames.add();
      rx_.push(spare);
      spare = nullptr;
    }
    // One wake-up per batch. (Waking the slirp thread right after each push, before the read
    // that finds the TAP empty, measured worse: 64 B request/response 10.6k -> 9.0k tx/s.)
    if (pushed) consumer_.notify();
    if ((pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) && !(pfd[0].revents & POLLIN)) {
      on_gone_("TAP poll: device gone");
      return;
    }
  }
}

bool TapReader::finish_frame(Frame& f, size_t n) {
  f.len = static_cast<uint32_t>(n);
  f.offset = static_cast<uint32_t>(vnet_hdr_len_);
  f.stamp_ns = now_ns();
  if (vnet_hdr_len_ == 0) return true;
  if (n < vnet_hdr_len_) return false;
  VnetHdr h;
  std::memcpy(&h, f.data, sizeof h);
  if (h.flags & VnetHdr::kNeedsCsum) {
    const size_t frame_len = n - vnet_hdr_len_;
    if (leave_partial_csum_) {
      stats_.csum_left_partial.add();
      return h.csum_start < frame_len && h.csum_start + h.csum_offset + 2u <= frame_len;
    }
    stats_.csum_completed.add();
    if (!complete_partial_checksum(f.data + vnet_hdr_len_, frame_len, h.csum_start, h.csum_offset)) return false;
    f.data[offsetof(VnetHdr, flags)] = static_cast<uint8_t>(h.flags & ~VnetHdr::kNeedsCsum);  // now final
  }
  return true;
}

// ---------------------------------------------------------------------------------------------

TapWriter::TapWriter(int tap_fd, bool coalesce, FrameChannel& tx, TapWriterStats& stats, GoneCallback on_gone)
    : fd_(tap_fd),
      coalesce_(coalesce),
      tx_(tx),
      gso_buffer_(coalesce ? new uint8_t[kMaxGsoFrame] : nullptr),
      stats_(stats),
      on_gone_(std::move(on_gone)) {
  held_.reserve(kMaxMerge);
}

void TapWriter::start(int cpu) {
  thread_ = std::thread([this] { run(); });
  name_and_place(thread_, "slirpnetd-tx", cpu);
}

void TapWriter::stop() {
  if (!thread_.joinable()) return;
  stop_.request_stop();
  tx_.close();
  thread_.join();
}

void TapWriter::run() {
  for (;;) {
    Frame* f = std::exchange(next_, nullptr);
    if (!f) f = tx_.pop_wait();
    if (tx_.is_closed(f) || !write_from(f)) break;
  }
  if (next_ && !tx_.is_closed(next_)) done(next_);
  next_ = nullptr;
}

void TapWriter::done(Frame* f) { tx_.release(f); }

void TapWriter::taken(const Frame* f) {
  stats_.latency.record(static_cast<uint64_t>(now_ns() - f->stamp_ns));  // the hand-off: ring wait + wake-up
}

bool TapWriter::write_from(Frame* f) {
  taken(f);
  TcpSegment segs[kMaxMerge];
  if (!coalesce_ || !parse_tcp_segment(f->data + f->offset, f->len - f->offset, segs[0])) {
    const bool alive = write_bytes(f->data, f->len);
    done(f);
    return alive;
  }
  held_.assign(1, f);
  size_t ip_bytes = segs[0].len - 14;
  while (held_.size() < kMaxMerge) {
    Frame* g = tx_.try_pop();  // only what is already queued: never wait for more
    if (!g) break;
    if (tx_.is_closed(g)) {  // the end: written after this merge
      next_ = g;
      break;
    }
    TcpSegment& s = segs[held_.size()];
    if (!parse_tcp_segment(g->data + g->offset, g->len - g->offset, s) ||
        !continues(segs[0], segs[held_.size() - 1], s) || ip_bytes + s.payload > 65535) {
      next_ = g;
      break;
    }
    ip_bytes += s.payload;
    taken(g);
    held_.push_back(g);
  }
  bool alive = true;
  const size_t n = held_.size() > 1 ? build_gso_frame(segs, held_.size(), gso_buffer_.get(), kMaxGsoFrame) : 0;
  if (n) {
    alive = write_bytes(gso_buffer_.get(), n);
    stats_.gso_frames.add();
    stats_.merged_segments.add(held_.size());
  } else {
    for (Frame* h : held_)
      if (alive) alive = write_bytes(h->data, h->len);
  }
  for (Frame* h : held_) done(h);
  held_.clear();
  return alive;
}

// Returns false when the TAP is gone. Other errors (EIO while the link is down, EINVAL for a
// malformed frame) drop the frame and are counted.
bool TapWriter::write_bytes(const uint8_t* data, size_t len) {
  for (;;) {
    ssize_t n = ::write(fd_, data, len);
    stats_.writes.add();
    if (n >= 0) {
      stats_.frames.add();
      stats_.bytes.add(len);
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {  // a BESS socket can be full; a TAP write never blocks
      stats_.eagain.add();
      pollfd p[2] = {{fd_, POLLOUT, 0}, {stop_.fd(), POLLIN, 0}};
      ::poll(p, 2, -1);
      if (stop_.stop_requested()) return true;  // the frame is dropped: we are stopping
      continue;
    }
    stats_.errors.add();
    if (tap_gone_errno(errno)) {
      on_gone_(std::string("TAP write: ") + std::strerror(errno));
      return false;
    }
    return true;
  }
}

}  // namespace slirpnetd::io
