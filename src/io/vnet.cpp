#include "io/vnet.hpp"

#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <cstring>

namespace slirpnetd::io {

bool tap_has_vnet_hdr(int tap_fd) {
  ifreq ifr{};
  return ::ioctl(tap_fd, TUNGETIFF, &ifr) == 0 && (ifr.ifr_flags & IFF_VNET_HDR);
}

bool enable_tap_offloads(int tap_fd) {
  int hdr = static_cast<int>(kVnetHdrLen);
  if (::ioctl(tap_fd, TUNSETVNETHDRSZ, &hdr) < 0) return false;
  // No TUN_F_TSO6: libslirp 4.7's ip6_input answers any IPv6 packet larger than if_mtu with
  // ICMPv6 "packet too big" and drops it (IPv4's ip_input has no such check), so IPv6 segments
  // must arrive at MTU size.
  return ::ioctl(tap_fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) == 0;
}

uint32_t csum_add(uint32_t sum, const uint8_t* p, size_t len) {
  // Sum 32-bit big-endian-agnostic words into 64 bits; one's-complement addition commutes with
  // byte order as long as the final fold swaps back (RFC 1071 §2(B)).
  uint64_t acc = sum;
  while (len >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    acc += (w & 0xffffffffu) + (w >> 32);
    p += 8;
    len -= 8;
  }
  while (len >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    acc += w;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint16_t w = 0;
    std::memcpy(&w, p, 1);  // the odd byte is the high-order byte of a big-endian word
    acc += w;
  }
  while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}

uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

bool complete_partial_checksum(uint8_t* frame, size_t len, size_t csum_start, size_t csum_offset) {
  if (csum_start >= len || csum_start + csum_offset + 2 > len) return false;
  uint16_t c = static_cast<uint16_t>(~csum_fold(csum_add(0, frame + csum_start, len - csum_start)));
  if (c == 0 && csum_offset == 6) c = 0xffff;  // UDP: 0 means "no checksum"
  std::memcpy(frame + csum_start + csum_offset, &c, 2);  // already in network byte order
  return true;
}

}  // namespace slirpnetd::io
