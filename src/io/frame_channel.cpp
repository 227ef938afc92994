#include "io/frame_channel.hpp"

#include <algorithm>
#include <cstdlib>

namespace slirpnetd::io {

FrameChannel::FrameChannel(size_t slots, size_t slot_bytes)
    : slot_bytes_(slot_bytes),
      storage_(new uint8_t[slots * slot_bytes]),  // default-initialised: pages stay untouched
      frames_(slots),
      free_(slots),
      full_(slots + 1) {
  for (size_t i = 0; i < slots; ++i) {
    frames_[i].data = storage_.get() + i * slot_bytes;
    frames_[i].capacity = static_cast<uint32_t>(slot_bytes);
    free_.try_enqueue(&frames_[i]);
  }
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
