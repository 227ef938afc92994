// slirp::FragmentGuard against a reference model of libslirp 4.7's IPv4 reassembly queues
// (ip_input.c: ip_input() and ip_reass()). The model flags the crash shape: a last fragment (MF
// clear, offset > 0) reaching ip_reass() when no queue exists for its datagram.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

#include "slirp/fragment_guard.hpp"

using slirpnetd::slirp::FragmentGuard;

namespace {

constexpr uint16_t kMF = 0x2000;
constexpr uint16_t kReserved = 0x8000;

// An Ethernet frame carrying an IPv4 packet from 10.0.2.100 to 10.0.2.2 (UDP) with `flags_off`
// (flags and offset in 8-byte units, host order) and `payload` bytes, header checksum valid.
std::vector<uint8_t> frame(uint16_t id, uint16_t flags_off, size_t payload, uint8_t src_low = 100) {
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
// flag bit other than DF. (Timeouts do not matter at these time scales.)
struct ReassemblyModel {
  struct Queue {
    std::map<size_t, size_t> ranges;  // start -> end
    size_t end = 0;                   // 0: last fragment not seen
  };
  std::map<std::tuple<uint32_t, uint32_t, uint16_t, uint8_t>, Queue> queues;
  int crashes = 0;

  void input(const uint8_t* f, size_t len) {
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
      q = queues.emplace(key, Queue{}).first;
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

struct Run {
  FragmentGuard guard;
  ReassemblyModel model;
  int64_t now = 0;
  void in(const std::vector<uint8_t>& f) {
    guard.input(f.data(), f.size(), now, [this](const uint8_t* p, size_t n) { model.input(p, n); });
    now += 1;
  }
};

}  // namespace

TEST_CASE("FragmentGuard: a last fragment first is held until its datagram has a queue", "[slirp][fragments]") {
  Run r;
  r.in(frame(1, 2, 8));        // last fragment at offset 16, first seen: held
  CHECK(r.guard.held() == 1);
  r.in(frame(1, kMF | 0, 8));  // first fragment: a certain queue; the held one follows
  CHECK(r.guard.held() == 0);
  r.in(frame(1, kMF | 1, 8));  // middle: complete
  CHECK(r.model.crashes == 0);
  CHECK(r.model.queues.empty());
}

TEST_CASE("FragmentGuard: a plain datagram with the same id does not make the guard forget the queue",
          "[slirp][fragments]") {
  Run r;
  r.in(frame(7, kMF | 0, 8));  // first fragment: libslirp creates the queue
  r.in(frame(7, 2, 8));        // last fragment at 16: fed, the queue is "uncertain" now
  r.in(frame(7, 0, 8));        // plain datagram, same key: libslirp keeps the queue
  r.in(frame(7, 3, 8));        // a second last fragment, at 24
  r.in(frame(7, kMF | 1, 8));  // middle at 8: completes and frees the old queue
  CHECK(r.model.crashes == 0);
  // With the reserved bit libslirp does free the queue: the guard may start afresh.
  Run s;
  s.in(frame(8, kMF | 0, 8));
  s.in(frame(8, 2, 8));
  s.in(frame(8, kReserved, 8));
  CHECK(s.model.queues.empty());
  s.in(frame(8, 3, 8));        // held: no queue
  s.in(frame(8, kMF | 0, 8));  // a new queue: the held last fragment follows it
  CHECK(s.model.crashes == 0);
  CHECK(s.guard.held() == 0);
}

TEST_CASE("FragmentGuard: a full table does not forget a tracked datagram", "[slirp][fragments]") {
  Run r;
  r.in(frame(7, kMF | 0, 8));
  r.in(frame(7, 2, 8));  // fed: uncertain
  // FragmentGuard::kMaxTracked other datagrams (other ids) open queues.
  for (uint16_t id = 100; id < 100 + FragmentGuard::kMaxTracked; ++id) r.in(frame(id, kMF | 0, 0));
  CHECK(r.guard.tracked() == FragmentGuard::kMaxTracked);
  r.in(frame(7, 3, 8));        // a second last fragment of datagram 7
  r.in(frame(7, kMF | 1, 8));  // middle at 8: completes and frees the old queue
  CHECK(r.model.crashes == 0);
}
