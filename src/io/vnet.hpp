#pragma once
// virtio-net headers on the TAP (IFF_VNET_HDR): with them the guest kernel may hand us frames with
// a partial checksum (TUN_F_CSUM) and IPv4 TCP segments of up to 64 KiB (TUN_F_TSO4, "GSO"), which
// libslirp accepts as one segment: one slirp_input, one send(2) to the host socket and one ACK
// instead of ~45 of each at MTU 1500. libslirp verifies every checksum, so the TAP reader completes
// partial ones first (on its own thread, off the slirp thread).
#include <cstddef>
#include <cstdint>

namespace slirpnetd::io {

// struct virtio_net_hdr from <linux/virtio_net.h>, which C++ cannot include (a member is named
// `class`). Native byte order: the TAP's default on little-endian hosts.
struct VnetHdr {
  static constexpr uint8_t kNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum is a partial sum
  static constexpr uint8_t kDataValid = 2;  // VIRTIO_NET_HDR_F_DATA_VALID: the checksum was verified
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
static_assert(sizeof(VnetHdr) == 10);
inline constexpr size_t kVnetHdrLen = sizeof(VnetHdr);  // the kernel's default TUNSETVNETHDRSZ

// Offloads we ask the kernel for when the TAP has IFF_VNET_HDR. Returns false (errno set) if the
// TAP refuses them; the header must then still be handled, just never carries offloads.
bool enable_tap_offloads(int tap_fd);
// True if the TAP fd was opened with IFF_VNET_HDR (TUNGETIFF).
bool tap_has_vnet_hdr(int tap_fd);

// Completes a CHECKSUM_PARTIAL frame in place: the 16-bit one's-complement sum of
// frame[csum_start, len) (the checksum field holds the pseudo-header seed) is stored at
// csum_start + csum_offset. Returns false if the offsets do not fit the frame.
bool complete_partial_checksum(uint8_t* frame, size_t len, size_t csum_start, size_t csum_offset);

// Internet checksum helpers (exposed for tests).
uint32_t csum_add(uint32_t sum, const uint8_t* p, size_t len);
uint16_t csum_fold(uint32_t sum);

}  // namespace slirpnetd::io
