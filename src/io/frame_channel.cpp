#include "io/frame_channel.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace slirpnetd::io {

FrameChannel::FrameChannel(size_t slots, size_t slot_bytes, size_t headroom)
    : slot_bytes_(slot_bytes), headroom_(headroom), frames_(slots), free_(slots), full_(slots + 1) {
  for (Frame& f : frames_) {
    // malloc, not new: a taken buffer is free()d by whoever it went to. Not touched here.
    auto* buf = static_cast<uint8_t*>(std::malloc(buffer_bytes()));
    if (!buf) {
      for (Frame& g : frames_) std::free(g.data ? g.data - headroom_ : nullptr);
      throw std::bad_alloc();
    }
    f.data = buf + headroom_;
    f.capacity = static_cast<uint32_t>(slot_bytes);
    free_.try_enqueue(&f);
  }
}

FrameChannel::~FrameChannel() {
  for (Frame& f : frames_) std::free(f.data - headroom_);
}

uint8_t* FrameChannel::take_buffer(Frame* f) {
  auto* fresh = static_cast<uint8_t*>(std::malloc(buffer_bytes()));
  if (!fresh) return nullptr;
  uint8_t* taken = f->data - headroom_;
  f->data = fresh + headroom_;
  return taken;
}

void FrameChannel::push_to(Ring& r, Frame* f) {
  // Each slot is in exactly one place, and the full ring has room for every slot and the closed
  // marker, so this cannot fail.
  if (!r.try_enqueue(f)) std::abort();
}

size_t FrameChannel::slots_for(size_t slot_bytes, size_t budget_bytes) {
  return std::clamp<size_t>(budget_bytes / slot_bytes, 64, 1024);
}

size_t FrameChannel::slot_bytes_for_mtu(size_t mtu) {
  const size_t raw = mtu + 14 + 4;
  return (raw + 63) / 64 * 64;
}

}  // namespace slirpnetd::io
