// src/io: frame channels under two threads, the waker's no-lost-wakeup contract, counters.
#include <catch2/catch.hpp>
#include <poll.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "io/frame_channel.hpp"
#include "io/stats.hpp"
#include "io/waker.hpp"

using namespace slirpnetd::io;
using namespace std::chrono_literals;

TEST_CASE("slot sizes cover the MTU plus Ethernet and VLAN headers", "[io]") {
  CHECK(FrameChannel::slot_bytes_for_mtu(1500) >= 1518);
  CHECK(FrameChannel::slot_bytes_for_mtu(1500) % 64 == 0);
  CHECK(FrameChannel::slot_bytes_for_mtu(65521) >= 65521 + 18);
  CHECK(FrameChannel::slots_for(FrameChannel::slot_bytes_for_mtu(65521)) == 64);
  CHECK(FrameChannel::slots_for(FrameChannel::slot_bytes_for_mtu(1500)) == 1024);
}

TEST_CASE("a channel hands out each slot once and back-pressures when all are in flight", "[io]") {
  FrameChannel ch(4, 128);
  std::vector<Frame*> taken;
  for (int i = 0; i < 4; ++i) {
    Frame* f = ch.try_acquire();
    REQUIRE(f != nullptr);
    CHECK(f->capacity == 128);
    for (Frame* t : taken) CHECK(t != f);
    taken.push_back(f);
  }
  CHECK(ch.try_acquire() == nullptr);
  CHECK(ch.acquire_for(1ms) == nullptr);
  for (Frame* f : taken) ch.push(f);
  CHECK(ch.depth() == 4);
  Frame* f = ch.try_pop();
  REQUIRE(f == taken[0]);  // FIFO
  ch.release(f);
  CHECK(ch.try_acquire() == f);
}

TEST_CASE("frames cross two threads intact and in order, with slots recycled", "[io][threads]") {
  constexpr int kFrames = 200000;
  FrameChannel ch(64, 256);
  std::thread producer([&] {
    for (int i = 0; i < kFrames; ++i) {
      Frame* f;
      while (!(f = ch.acquire_for(10ms))) {
      }
      const uint32_t len = 4 + static_cast<uint32_t>(i % 200);
      std::memcpy(f->data, &i, sizeof i);
      std::memset(f->data + 4, i & 0xff, len - 4);
      f->len = len;
      ch.push(f);
    }
  });
  int bad = 0;
  for (int i = 0; i < kFrames; ++i) {
    Frame* f;
    while (!(f = ch.pop_for(10ms))) {
    }
    int seq;
    std::memcpy(&seq, f->data, sizeof seq);
    if (seq != i || f->len != 4 + static_cast<uint32_t>(i % 200)) ++bad;
    for (uint32_t k = 4; k < f->len; ++k)
      if (f->data[k] != (i & 0xff)) {
        ++bad;
        break;
      }
    ch.release(f);
  }
  producer.join();
  CHECK(bad == 0);
  CHECK(ch.depth() == 0);
}

TEST_CASE("the waker never loses a wakeup between consume and sleep", "[io][threads]") {
  // The consumer sleeps in poll() on the waker exactly like the slirp thread; the producer
  // publishes through a counter and notifies. A lost wakeup shows as a poll() timeout.
  Waker w;
  std::atomic<int> published{0};
  constexpr int kItems = 100000;
  std::thread producer([&] {
    for (int i = 0; i < kItems; ++i) {
      published.fetch_add(1, std::memory_order_release);
      w.notify();
      if (i % 64 == 0) std::this_thread::yield();
    }
  });
  int seen = 0, timeouts = 0;
  while (seen < kItems) {
    pollfd p{w.fd(), POLLIN, 0};
    if (published.load(std::memory_order_acquire) == seen) {
      if (::poll(&p, 1, 2000) == 0) {
        ++timeouts;
        break;
      }
    }
    if (p.revents & POLLIN) w.consume();
    seen = published.load(std::memory_order_acquire);
  }
  producer.join();
  CHECK(timeouts == 0);
  CHECK(seen == kItems);
}

TEST_CASE("a stop request wakes the waker's owner, even amid notifications", "[io][threads]") {
  // The owner loops like every poll()-based thread of the daemon: sleep, consume, check for stop.
  for (int round = 0; round < 200; ++round) {
    Waker w;
    std::thread noisy([&w] {
      for (int i = 0; i < 50; ++i) w.notify();
    });
    std::thread stopper([&w] { w.request_stop(); });
    bool stopped = false;
    while (!stopped) {
      pollfd p{w.fd(), POLLIN, 0};
      if (::poll(&p, 1, 2000) != 1) break;  // a lost stop request
      w.consume();
      stopped = w.stop_requested();
    }
    noisy.join();
    stopper.join();
    REQUIRE(stopped);
  }
}

TEST_CASE("counters and the latency histogram", "[io]") {
  PipelineStats s;
  s.rx.frames.add();
  s.rx.frames.add(2);
  CHECK(s.rx.frames.get() == 3);
  LatencyHistogram& h = s.slirp.latency;
  for (int i = 0; i < 99; ++i) h.record(1000);  // bucket [512, 1024)
  h.record(1000000);
  CHECK(h.count() == 100);
  CHECK(h.percentile_upper_ns(50) == 1023);
  CHECK(h.percentile_upper_ns(99) == 1023);
  CHECK(h.percentile_upper_ns(100) == (uint64_t{1} << 20) - 1);
  const PipelineCounts c = snapshot(s, 1, 2);
  CHECK(c.tap_reader.frames == 3);
  CHECK(c.rx_ring_depth == 1);
  CHECK(c.tx_ring_depth == 2);
  CHECK(c.slirp.rx_latency.count == 100);
  CHECK(c.slirp.rx_latency.p50_ns_le == 1023);
  CHECK(c.slirp.rx_latency.log2_buckets.size() == 21);  // up to the last non-empty bucket, [2^19, 2^20)
  CHECK(c.slirp.rx_latency.log2_buckets[10] == 99);
  CHECK(c.tap_writer.tx_latency.log2_buckets.size() == 1);
}

#include "io/vnet.hpp"

namespace {
// Reference: RFC 1071 checksum, 16-bit big-endian words, computed the slow way.
uint16_t reference_csum(const std::vector<uint8_t>& b, size_t from) {
  uint32_t sum = 0;
  for (size_t i = from; i < b.size(); i += 2) {
    uint32_t w = static_cast<uint32_t>(b[i]) << 8;
    if (i + 1 < b.size()) w |= b[i + 1];
    sum += w;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}
}  // namespace

TEST_CASE("partial checksums are completed like a NIC would", "[io][vnet]") {
  for (size_t len : {54u, 55u, 99u, 1514u, 1515u, 65534u}) {
    std::vector<uint8_t> f(len);
    for (size_t i = 0; i < len; ++i) f[i] = static_cast<uint8_t>(i * 131 + len);
    const size_t start = 34, offset = 16;  // Ethernet + IPv4, TCP checksum field
    f[start + offset] = 0x12;              // the pseudo-header seed the kernel left there
    f[start + offset + 1] = 0x34;
    REQUIRE(complete_partial_checksum(f.data(), f.size(), start, offset));
    // Verification adds the pseudo-header (here: the seed) back: the range with the final
    // checksum then re-checksums to exactly the seed.
    CHECK(reference_csum(f, start) == 0x1234);
    std::vector<uint8_t> seeded = f;
    seeded[start + offset] = 0x12;
    seeded[start + offset + 1] = 0x34;
    const uint16_t want = reference_csum(seeded, start);
    CHECK(((f[start + offset] << 8) | f[start + offset + 1]) == want);
  }
}

TEST_CASE("partial checksum offsets outside the frame are refused", "[io][vnet]") {
  std::vector<uint8_t> f(60, 0);
  CHECK_FALSE(complete_partial_checksum(f.data(), f.size(), 60, 0));
  CHECK_FALSE(complete_partial_checksum(f.data(), f.size(), 50, 9));
  CHECK(complete_partial_checksum(f.data(), f.size(), 50, 8));
}

TEST_CASE("a UDP checksum that computes to zero is sent as 0xffff", "[io][vnet]") {
  std::vector<uint8_t> f(8, 0);  // all-zero UDP header + seed 0: sum 0 -> ~0 = 0xffff anyway
  f[0] = 0xff;
  f[1] = 0xff;  // sum 0xffff -> complement 0 -> must become 0xffff
  REQUIRE(complete_partial_checksum(f.data(), f.size(), 0, 6));
  CHECK(f[6] == 0xff);
  CHECK(f[7] == 0xff);
}

#include <arpa/inet.h>

#include "io/gso.hpp"

namespace {
// An Ethernet + IPv4 + TCP segment as libslirp sends it, with correct checksums.
std::vector<uint8_t> tcp_frame(uint32_t seq, size_t payload, uint8_t flags = 0x10, uint16_t sport = 5201) {
  std::vector<uint8_t> f(54 + payload, 0);
  const uint8_t dst[6] = {2, 0, 0, 0, 0, 1}, src[6] = {0x52, 0x55, 10, 0, 2, 2};
  std::memcpy(f.data(), dst, 6);
  std::memcpy(f.data() + 6, src, 6);
  f[12] = 0x08;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  const uint16_t tot = htons(static_cast<uint16_t>(40 + payload));
  std::memcpy(ip + 2, &tot, 2);
  ip[8] = 64;
  ip[9] = 6;
  inet_pton(AF_INET, "10.0.2.2", ip + 12);
  inet_pton(AF_INET, "10.0.2.100", ip + 16);
  const uint16_t ipc = static_cast<uint16_t>(~csum_fold(csum_add(0, ip, 20)));
  std::memcpy(ip + 10, &ipc, 2);
  uint8_t* tcp = ip + 20;
  const uint16_t sp = htons(sport), dp = htons(40000);
  std::memcpy(tcp, &sp, 2);
  std::memcpy(tcp + 2, &dp, 2);
  const uint32_t s = htonl(seq), a = htonl(777);
  std::memcpy(tcp + 4, &s, 4);
  std::memcpy(tcp + 8, &a, 4);
  tcp[12] = 0x50;
  tcp[13] = flags;
  tcp[14] = 0xff;
  for (size_t i = 0; i < payload; ++i) tcp[20 + i] = static_cast<uint8_t>(seq + i);
  return f;
}
}  // namespace

TEST_CASE("consecutive TCP segments of one flow merge into one GSO frame", "[io][gso]") {
  auto a = tcp_frame(1000, 1460), b = tcp_frame(2460, 1460), c = tcp_frame(3920, 100, 0x18);
  TcpSegment s[3];
  REQUIRE(parse_tcp_segment(a.data(), a.size(), s[0]));
  REQUIRE(parse_tcp_segment(b.data(), b.size(), s[1]));
  REQUIRE(parse_tcp_segment(c.data(), c.size(), s[2]));
  CHECK(s[0].payload == 1460);
  CHECK(continues(s[0], s[0], s[1]));
  CHECK(continues(s[0], s[1], s[2]));
  std::vector<uint8_t> out(kMaxGsoFrame);
  const size_t n = build_gso_frame(s, 3, out.data(), out.size());
  REQUIRE(n == kVnetHdrLen + 54 + 1460 + 1460 + 100);
  VnetHdr h;
  std::memcpy(&h, out.data(), sizeof h);
  CHECK(h.gso_type == 1);
  CHECK(h.gso_size == 1460);
  CHECK(h.flags == VnetHdr::kNeedsCsum);
  CHECK(h.csum_start == 34);
  CHECK(h.csum_offset == 16);
  const uint8_t* f = out.data() + kVnetHdrLen;
  const uint8_t* ip = f + 14;
  CHECK(((ip[2] << 8) | ip[3]) == 40 + 3020);
  CHECK(csum_fold(csum_add(0, ip, 20)) == 0xffff);  // valid IP header checksum
  CHECK((ip[20 + 13] & 0x08) != 0);                  // PSH from the last segment
  // The payload is the three payloads in order (bytes encode their sequence number).
  bool ordered = true;
  for (size_t i = 0; i < 3020; ++i) ordered &= f[54 + i] == static_cast<uint8_t>(1000 + i);
  CHECK(ordered);
  // Completing the partial checksum gives what a per-byte reference computes over the
  // pseudo-header and the TCP segment.
  std::vector<uint8_t> tcpseg(f + 34, f + 14 + 40 + 3020);
  REQUIRE(complete_partial_checksum(tcpseg.data(), tcpseg.size(), 0, 16));
  uint8_t pseudo[12] = {10, 0, 2, 2, 10, 0, 2, 100, 0, 6, static_cast<uint8_t>((20 + 3020) >> 8),
                        static_cast<uint8_t>((20 + 3020) & 0xff)};
  CHECK(csum_fold(csum_add(csum_add(0, pseudo, 12), tcpseg.data(), tcpseg.size())) == 0xffff);
}

TEST_CASE("segments that do not continue the flow are not merged", "[io][gso]") {
  auto a = tcp_frame(1000, 1460);
  TcpSegment s0, s1;
  REQUIRE(parse_tcp_segment(a.data(), a.size(), s0));
  auto gap = tcp_frame(9999, 1460);
  REQUIRE(parse_tcp_segment(gap.data(), gap.size(), s1));
  CHECK_FALSE(continues(s0, s0, s1));  // sequence gap
  auto other = tcp_frame(2460, 1460, 0x10, 5202);
  REQUIRE(parse_tcp_segment(other.data(), other.size(), s1));
  CHECK_FALSE(continues(s0, s0, s1));  // another flow
  auto bigger = tcp_frame(2460, 1461);
  REQUIRE(parse_tcp_segment(bigger.data(), bigger.size(), s1));
  CHECK_FALSE(continues(s0, s0, s1));  // larger than the first: not the same MSS
  auto small = tcp_frame(1000, 500), after = tcp_frame(1500, 500);
  TcpSegment t0, t1;
  REQUIRE(parse_tcp_segment(small.data(), small.size(), t0));
  REQUIRE(parse_tcp_segment(after.data(), after.size(), t1));
  CHECK(continues(t0, t0, t1));
  auto syn = tcp_frame(1000, 10, 0x12), fin = tcp_frame(1000, 10, 0x11), pure_ack = tcp_frame(1000, 0);
  TcpSegment x;
  CHECK_FALSE(parse_tcp_segment(syn.data(), syn.size(), x));
  CHECK_FALSE(parse_tcp_segment(fin.data(), fin.size(), x));
  CHECK_FALSE(parse_tcp_segment(pure_ack.data(), pure_ack.size(), x));
  CHECK_FALSE(parse_tcp_segment(a.data(), 40, x));  // truncated
}
