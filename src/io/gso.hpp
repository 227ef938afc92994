#pragma once
// TCP segment coalescing toward the guest (TAP writer, with a virtio-net header on the TAP).
//
// libslirp emits one Ethernet frame per MSS-sized TCP segment, back to back, when it drains a
// host socket. Written one by one, each costs a TAP write and a trip through the guest's stack.
// The TAP writer instead merges consecutive segments of one flow that are already queued into one
// GSO frame (VIRTIO_NET_HDR_GSO_TCPV4, gso_size = the MSS, checksum left partial): the guest
// kernel receives it like a GRO'd packet, in one write. It never waits for more frames, so it
// adds no latency.
#include <cstddef>
#include <cstdint>

namespace slirpnetd::io {

// Frames that can be merged: IPv4 without options or fragmentation, TCP with a 20-byte header
// (libslirp 4.7 sends no TCP options on data segments), flags ACK and optionally PSH, payload > 0.
struct TcpSegment {
  const uint8_t* frame = nullptr;  // Ethernet frame (after the virtio-net header)
  size_t len = 0;
  size_t payload = 0;
  uint32_t seq = 0;
};
bool parse_tcp_segment(const uint8_t* frame, size_t len, TcpSegment& out);
// `next` continues `first`..`prev` (same flow, contiguous sequence numbers, prev a full MSS).
bool continues(const TcpSegment& first, const TcpSegment& prev, const TcpSegment& next);

// Writes one virtio-net header + merged frame built from segs[0..n) (n >= 2, each continuing the
// previous) into out. Returns the bytes written, or 0 if it would not fit in out_cap or in 64 KiB
// of IP datagram.
size_t build_gso_frame(const TcpSegment* segs, size_t n, uint8_t* out, size_t out_cap);

inline constexpr size_t kMaxGsoFrame = 10 + 14 + 65535;

}  // namespace slirpnetd::io
