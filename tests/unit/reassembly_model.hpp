#pragma once
// A reference model of libslirp 4.7's IPv4 reassembly queues (ip_input.c: ip_input(), ip_reass()
// and the slow timer's ip_freef()), and a builder of the fragments it is fed. The model flags the
// crash shape of libslirp 4.7.0: a last fragment (MF clear, offset > 0) reaching ip_reass() when no
// queue exists for its datagram. Used by tests/unit/test_slirp_fragment_guard.cpp and
// tests/fuzz/fuzz_guard.cpp to check slirp::FragmentGuard.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

namespace slirpnetd::testing {


constexpr uint16_t kMF = 0x2000;
constexpr uint16_t kReserved = 0x8000;

// An Ethernet frame carrying an IPv4 packet from 10.0.2.100 to 10.0.2.2 (UDP) with `flags_off`
// (flags and offset in 8-byte units, host order) and `payload` bytes, header checksum valid.
inline std::vector<uint8_t> frame(uint16_t id, uint16_t flags_off, size_t payload, uint8_t src_low = 100) {
  std::vector<uint8_t> f(14 + 20 + payload, 0x62);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = f.data() + 14;
  const uint16_t total = static_cast<uint16_t>(20 + payload);
  const uint8_t hdr[20] = {0x45, 0, static_cast<uint8_t>(total >> 8), static_cast<uint8_t>(total),
                           static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id),
                           static_cast<uint8_t>(flags_off >> 8), static_cast<uint8_t>(flags_off), 64, 17, 0, 0,
                           10, 0, 2, src_low, 10, 0, 2, 2};
  std::memcpy(ip, hdr, 20);
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += uint32_t{ip[i]} << 8 | ip[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = static_cast<uint8_t>(~sum >> 8);
  ip[11] = static_cast<uint8_t>(~sum);
  return f;
}

// libslirp's queues: per (src, dst, id, proto) the byte ranges received and, once the last
// fragment came, the datagram's end. A queue is freed when complete, or at a non-fragment with a
// flag bit other than DF, or kQueueLifetimeMs after it was created.
struct ReassemblyModel {
  // libslirp gives a queue 30 s (IPFRAGTTL 60 ticks of its 500 ms slow timer) from its creation.
  static constexpr int64_t kQueueLifetimeMs = 30000;

  struct Queue {
    std::map<size_t, size_t> ranges;  // start -> end
    size_t end = 0;                   // 0: last fragment not seen
    int64_t created_ms = 0;
  };
  std::map<std::tuple<uint32_t, uint32_t, uint16_t, uint8_t>, Queue> queues;
  int crashes = 0;

  void input(const uint8_t* f, size_t len, int64_t now_ms = 0) {
    for (auto it = queues.begin(); it != queues.end();)
      it = now_ms - it->second.created_ms >= kQueueLifetimeMs ? queues.erase(it) : std::next(it);
    const uint8_t* ip = f + 14;
    uint32_t src, dst;
    std::memcpy(&src, ip + 12, 4);
    std::memcpy(&dst, ip + 16, 4);
    const auto key = std::make_tuple(src, dst, static_cast<uint16_t>(ip[4] << 8 | ip[5]), ip[9]);
    const uint16_t fo = static_cast<uint16_t>(ip[6] << 8 | ip[7]);
    if ((fo & ~0x4000) == 0) return;  // ip_off & ~IP_DF: no reassembly code at all
    auto q = queues.find(key);
    const bool more = fo & kMF;
    const size_t off = size_t{fo & 0x1fffu} * 8;
    if (!more && off == 0) {  // the reserved bit alone: ip_freef()
      if (q != queues.end()) queues.erase(q);
      return;
    }
    if (q == queues.end()) {
      if (!more) ++crashes;  // ip_reass() on a new queue with a last fragment: the crash shape
      q = queues.emplace(key, Queue{{}, 0, now_ms}).first;
    }
    const size_t n = len - 14 - 20;
    q->second.ranges[off] = std::max(q->second.ranges[off], off + n);
    if (!more) q->second.end = off + n;
    if (q->second.end == 0) return;
    size_t covered = 0;
    for (const auto& [start, stop] : q->second.ranges) {
      if (start > covered) return;
      covered = std::max(covered, stop);
    }
    if (covered >= q->second.end) queues.erase(q);  // reassembled
  }
};

}  // namespace slirpnetd::testing
