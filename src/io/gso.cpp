#include "io/gso.hpp"

#include <arpa/inet.h>

#include <cstring>

#include "io/vnet.hpp"

namespace slirpnetd::io {

namespace {
constexpr size_t kEth = 14, kIp = 20, kTcp = 20, kHeaders = kEth + kIp + kTcp;
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20;
constexpr uint8_t kGsoTcpV4 = 1;  // VIRTIO_NET_HDR_GSO_TCPV4

uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t* p) { return uint32_t{get16(p)} << 16 | get16(p + 2); }
void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
}  // namespace

bool parse_tcp_segment(const uint8_t* f, size_t len, TcpSegment& out) {
  if (len < kHeaders || get16(f + 12) != 0x0800) return false;
  const uint8_t* ip = f + kEth;
  if (ip[0] != 0x45 || ip[9] != 6) return false;  // IPv4, no options, TCP
  if (get16(ip + 6) & 0x3fff) return false;      // MF or a fragment offset
  const size_t tot = get16(ip + 2);
  if (tot < kIp + kTcp || kEth + tot > len) return false;
  const uint8_t* tcp = ip + kIp;
  if ((tcp[12] >> 4) != 5) return false;  // TCP options
  const uint8_t flags = tcp[13];
  if (!(flags & kAck) || (flags & (kFin | kSyn | kRst | kUrg))) return false;
  out.frame = f;
  out.len = kEth + tot;
  out.payload = tot - kIp - kTcp;
  out.seq = get32(tcp + 4);
  return out.payload > 0;
}

bool continues(const TcpSegment& first, const TcpSegment& prev, const TcpSegment& next) {
  if (prev.payload != first.payload) return false;  // only the last segment may be short
  if (next.payload > first.payload) return false;
  if (next.seq != prev.seq + static_cast<uint32_t>(prev.payload)) return false;
  // Same MACs, same IP addresses, same ports.
  return std::memcmp(first.frame, next.frame, 12) == 0 &&
         std::memcmp(first.frame + kEth + 12, next.frame + kEth + 12, 8) == 0 &&
         std::memcmp(first.frame + kEth + kIp, next.frame + kEth + kIp, 4) == 0;
}

size_t build_gso_frame(const TcpSegment* segs, size_t n, uint8_t* out, size_t out_cap) {
  size_t payload = 0;
  for (size_t i = 0; i < n; ++i) payload += segs[i].payload;
  const size_t ip_len = kIp + kTcp + payload;
  if (ip_len > 65535 || kVnetHdrLen + kEth + ip_len > out_cap) return 0;

  VnetHdr h{};
  h.flags = VnetHdr::kNeedsCsum;
  h.gso_type = kGsoTcpV4;
  h.hdr_len = kHeaders;
  h.gso_size = static_cast<uint16_t>(segs[0].payload);
  h.csum_start = kEth + kIp;
  h.csum_offset = 16;
  std::memcpy(out, &h, sizeof h);

  uint8_t* f = out + kVnetHdrLen;
  std::memcpy(f, segs[0].frame, kHeaders);
  uint8_t* ip = f + kEth;
  uint8_t* tcp = ip + kIp;
  const TcpSegment& last = segs[n - 1];
  std::memcpy(tcp + 8, last.frame + kEth + kIp + 8, 4);    // the latest acknowledgment
  std::memcpy(tcp + 14, last.frame + kEth + kIp + 14, 2);  // and window
  uint8_t flags = 0;
  for (size_t i = 0; i < n; ++i) flags |= segs[i].frame[kEth + kIp + 13];
  tcp[13] = static_cast<uint8_t>(kAck | (flags & kPsh));

  put16(ip + 2, static_cast<uint16_t>(ip_len));
  put16(ip + 10, 0);
  const uint16_t ip_csum = static_cast<uint16_t>(~csum_fold(csum_add(0, ip, kIp)));
  std::memcpy(ip + 10, &ip_csum, 2);  // csum_add sums in native order: store as is
  // The TCP checksum stays partial: seed it with the pseudo-header sum (addresses, protocol,
  // TCP length), as the kernel does for CHECKSUM_PARTIAL; each segment's is completed by whoever
  // segments it, and the guest's local delivery trusts a partial checksum.
  uint8_t pseudo[12];
  std::memcpy(pseudo, ip + 12, 8);
  pseudo[8] = 0;
  pseudo[9] = 6;
  put16(pseudo + 10, static_cast<uint16_t>(kTcp + payload));
  const uint16_t seed = csum_fold(csum_add(0, pseudo, sizeof pseudo));
  std::memcpy(tcp + 16, &seed, 2);

  uint8_t* p = f + kHeaders;
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(p, segs[i].frame + kHeaders, segs[i].payload);
    p += segs[i].payload;
  }
  return kVnetHdrLen + kEth + ip_len;
}

}  // namespace slirpnetd::io
