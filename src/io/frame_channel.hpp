#pragma once
// A FrameChannel carries Ethernet frames in one direction between exactly two threads, through
// fixed, recycled buffers: no malloc per frame.
//
//            free ring (consumer -> producer)
//      +-------------------------------------------+
//      v                                           |
//   producer --- acquire slot, fill, push ---> full ring ---> consumer: use, release slot
//
// Both rings are moodycamel::BlockingReaderWriterCircularBuffer<Frame*>: single producer, single
// consumer, fixed capacity (= the number of slots, so a push never fails) and semaphores on both
// ends, which give blocking with a built-in spin phase and real happens-before edges (clean under
// ThreadSanitizer with gcc and clang; the plain ReaderWriterQueue is not: it orders its indices
// with fences, which TSan does not model, and Debian's copy annotates them for TSan only under
// clang).
// Back-pressure: when all slots are in flight the producer waits for a free one; nothing is dropped.
// close() ends the channel: the consumer pops every frame queued before it, then the closed
// marker (is_closed()), which wakes a consumer sleeping in pop_for() at once.
//
// Who uses which end is fixed per channel and documented where the channel is created:
//   rx: producer = TAP reader thread,  consumer = slirp thread
//   tx: producer = slirp thread,       consumer = TAP writer thread
#include <readerwriterqueue/readerwritercircularbuffer.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace slirpnetd::io {

struct Frame {
  uint8_t* data = nullptr;  // points into the channel's storage; capacity bytes
  uint32_t capacity = 0;
  uint32_t len = 0;     // bytes used from data[0], including a virtio-net header if any
  uint32_t offset = 0;  // where the Ethernet frame starts (after the virtio-net header)
  int64_t stamp_ns = 0;  // now_ns() (common/clock.hpp) when the producer filled it (latency histogram)
};

class FrameChannel {
 public:
  // `slots` buffers of `slot_bytes` each. The storage is allocated but not touched, so idle slots
  // cost address space, not resident memory.
  FrameChannel(size_t slots, size_t slot_bytes);
  FrameChannel(const FrameChannel&) = delete;
  FrameChannel& operator=(const FrameChannel&) = delete;

  // Producer side.
  Frame* try_acquire() { return pop(free_); }
  Frame* acquire_for(std::chrono::microseconds timeout) { return pop_for(free_, timeout); }
  void push(Frame* f) { push_to(full_, f); }
  // Once, from the producer's thread or after it ended (the ring has one producer at a time).
  void close() { push_to(full_, &closed_); }

  // Consumer side.
  Frame* try_pop() { return pop(full_); }
  Frame* pop_for(std::chrono::microseconds timeout) { return pop_for(full_, timeout); }
  Frame* pop_wait() {  // until a frame or the closed marker comes
    Frame* f = nullptr;
    full_.wait_dequeue(f);
    return f;
  }
  void release(Frame* f) { push_to(free_, f); }
  // True for the marker close() queued: no data, never released.
  bool is_closed(const Frame* f) const { return f == &closed_; }

  // Any thread (approximate; the closed marker counts).
  size_t depth() const { return full_.size_approx(); }
  size_t slot_bytes() const { return slot_bytes_; }

  // Slot count for a per-direction memory budget: enough frames to cover libslirp's 64 KiB windows
  // many times over, bounded so that a 64 KiB MTU does not cost hundreds of MiB.
  static size_t slots_for(size_t slot_bytes, size_t budget_bytes = 4u << 20);
  // Buffer size for a link MTU: Ethernet header + VLAN tag + MTU, rounded up to a cache line.
  static size_t slot_bytes_for_mtu(size_t mtu);

 private:
  using Ring = moodycamel::BlockingReaderWriterCircularBuffer<Frame*>;
  static Frame* pop(Ring& r) {
    Frame* f = nullptr;
    return r.try_dequeue(f) ? f : nullptr;
  }
  static Frame* pop_for(Ring& r, std::chrono::microseconds timeout) {
    Frame* f = nullptr;
    return r.wait_dequeue_timed(f, timeout) ? f : nullptr;
  }
  static void push_to(Ring& r, Frame* f);

  size_t slot_bytes_;
  std::unique_ptr<uint8_t[]> storage_;
  std::vector<Frame> frames_;
  Frame closed_;  // close()'s marker
  Ring free_;
  Ring full_;  // one more place than slots: the marker always fits
};

}  // namespace slirpnetd::io
