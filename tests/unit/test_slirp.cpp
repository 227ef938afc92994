// src/slirp: the slirp thread with a real libslirp instance. Only frames libslirp answers itself
// (ARP, DHCP) are used, so no host socket is opened and nothing leaves the process.
#include <arpa/inet.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <future>
#include <thread>
#include <vector>

#include "slirp/slirp_thread.hpp"

using namespace slirpnetd;
using namespace std::chrono_literals;

namespace {

config::NetConfig default_net() {
  config::NetConfig n;
  inet_pton(AF_INET, "10.0.2.0", &n.network);
  inet_pton(AF_INET, "255.255.255.0", &n.netmask);
  inet_pton(AF_INET, "10.0.2.2", &n.gateway);
  inet_pton(AF_INET, "10.0.2.3", &n.dns);
  inet_pton(AF_INET, "10.0.2.15", &n.dhcp_start);
  inet_pton(AF_INET, "10.0.2.30", &n.dhcp_end);
  inet_pton(AF_INET, "10.0.2.100", &n.guest);
  inet_pton(AF_INET6, "fd00::", &n.prefix6);
  inet_pton(AF_INET6, "fd00::2", &n.gateway6);
  inet_pton(AF_INET6, "fd00::3", &n.dns6);
  return n;
}

const uint8_t kGuestMac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

std::vector<uint8_t> arp_request(const char* sender_ip, const char* target_ip) {
  std::vector<uint8_t> f(42, 0);
  std::memset(f.data(), 0xff, 6);                 // broadcast
  std::memcpy(f.data() + 6, kGuestMac, 6);
  f[12] = 0x08, f[13] = 0x06;                     // ARP
  f[14] = 0, f[15] = 1, f[16] = 0x08, f[17] = 0;  // Ethernet, IPv4
  f[18] = 6, f[19] = 4, f[20] = 0, f[21] = 1;     // request
  std::memcpy(f.data() + 22, kGuestMac, 6);
  inet_pton(AF_INET, sender_ip, f.data() + 28);
  inet_pton(AF_INET, target_ip, f.data() + 38);
  return f;
}

struct Harness {
  io::FrameChannel rx{64, io::FrameChannel::slot_bytes_for_mtu(1500)};
  io::FrameChannel tx{64, io::FrameChannel::slot_bytes_for_mtu(1500)};
  io::Waker waker;
  io::SlirpStats stats;
  slirp::SlirpThread thread;
  explicit Harness(config::NetConfig net = default_net(), slirp::Tuning tuning = {})
      : thread(net, rx, tx, waker, stats, tuning) {}

  void send(const std::vector<uint8_t>& frame) {  // plays the TAP reader
    io::Frame* f = rx.acquire_for(1s);
    REQUIRE(f);
    std::memcpy(f->data, frame.data(), frame.size());
    f->len = static_cast<uint32_t>(frame.size());
    rx.push(f);
    waker.notify();
  }
  std::vector<uint8_t> receive() {  // plays the TAP writer
    io::Frame* f = tx.pop_for(2s);
    if (!f) return {};
    std::vector<uint8_t> out(f->data, f->data + f->len);
    tx.release(f);
    return out;
  }
};

// Polls pred every millisecond for up to `timeout`.
template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout = 2000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST_CASE("the slirp thread answers ARP for the gateway and the DNS address", "[slirp]") {
  Harness h;
  REQUIRE(h.thread.start());
  for (const char* target : {"10.0.2.2", "10.0.2.3"}) {
    h.send(arp_request("10.0.2.100", target));
    auto reply = h.receive();
    REQUIRE(reply.size() >= 42);
    CHECK(std::memcmp(reply.data(), kGuestMac, 6) == 0);  // to us
    CHECK(reply[20] == 0);
    CHECK(reply[21] == 2);  // ARP reply
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, reply.data() + 28, ip, sizeof ip);
    CHECK(std::string(ip) == target);
    // libslirp's special MAC 52:55 + the IPv4 address
    const uint8_t last = std::string(target) == "10.0.2.2" ? 2 : 3;
    const uint8_t mac[6] = {0x52, 0x55, 10, 0, 2, last};
    CHECK(std::memcmp(reply.data() + 22, mac, 6) == 0);
  }
  h.thread.stop();
  CHECK(h.stats.input_frames.get() == 2);
  CHECK(h.stats.output_frames.get() >= 2);
}

TEST_CASE("a different --cidr moves the gateway", "[slirp]") {
  config::NetConfig n = default_net();
  inet_pton(AF_INET, "10.0.135.128", &n.network);
  inet_pton(AF_INET, "255.255.255.128", &n.netmask);
  inet_pton(AF_INET, "10.0.135.130", &n.gateway);
  inet_pton(AF_INET, "10.0.135.131", &n.dns);
  inet_pton(AF_INET, "10.0.135.143", &n.dhcp_start);
  Harness h(n);
  REQUIRE(h.thread.start());
  h.send(arp_request("10.0.135.228", "10.0.2.2"));
  h.send(arp_request("10.0.135.228", "10.0.135.130"));
  auto reply = h.receive();
  REQUIRE(reply.size() >= 42);
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, reply.data() + 28, ip, sizeof ip);
  CHECK(std::string(ip) == "10.0.135.130");  // the 10.0.2.2 request got no answer
}

TEST_CASE("the slirp thread busy-polls only while the frames are small", "[slirp][spin]") {
  slirp::Tuning tuning;
  tuning.spin_us = 200;
  tuning.spin_max_avg_bytes = 512;
  Harness h(default_net(), tuning);
  REQUIRE(h.thread.start());
  // Bulk-sized frames (garbage IPv4 that libslirp drops) push the average above the limit.
  std::vector<uint8_t> big(1514, 0);
  big[12] = 0x08, big[13] = 0x00;
  for (int i = 0; i < 30; ++i) h.send(big);
  h.send(arp_request("10.0.2.100", "10.0.2.2"));
  REQUIRE(h.receive().size() >= 42);
  // Every spin decision from here on sees the large average.
  const uint64_t spins_bulk = h.stats.spins.get();
  h.send(arp_request("10.0.2.100", "10.0.2.2"));
  REQUIRE(h.receive().size() >= 42);
  // The thread has gone back to sleep after the reply: a loop that began after it has stayed in its
  // poll() (loops one ahead of polls) for two looks in a row, so its spin decision is made.
  const uint64_t loops_then = h.stats.loops.get();
  uint64_t seen = 0;
  REQUIRE(wait_until([&] {
    const uint64_t loops = h.stats.loops.get(), polls = h.stats.polls.get();
    const bool asleep = loops > loops_then && polls + 1 == loops && loops == seen;
    seen = loops;
    return asleep;
  }));
  CHECK(h.stats.spins.get() == spins_bulk);
  // Small frames (ARP: 42 bytes in, 42 out) bring the moving average (1/8 per frame) down: the thread spins again before sleeping.
  for (int i = 0; i < 40; ++i) {
    h.send(arp_request("10.0.2.100", "10.0.2.2"));
    REQUIRE(h.receive().size() >= 42);
  }
  CHECK(wait_until([&] { return h.stats.spins.get() > spins_bulk; }));
  h.thread.stop();
}

TEST_CASE("commands run on the slirp thread with the live instance", "[slirp]") {
  Harness h;
  REQUIRE(h.thread.start());
  std::promise<std::thread::id> ran;
  auto fut = ran.get_future();
  h.thread.post([&ran](Slirp* s) {
    CHECK(s != nullptr);
    ran.set_value(std::this_thread::get_id());
  });
  REQUIRE(fut.wait_for(2s) == std::future_status::ready);
  CHECK(fut.get() != std::this_thread::get_id());
  h.thread.stop();
  CHECK(h.stats.commands.get() == 1);
}

TEST_CASE("call() returns the command's result, and cancels a command that timed out", "[slirp]") {
  Harness h;
  REQUIRE(h.thread.start());
  CHECK(h.thread.call([](Slirp* s) { return s != nullptr ? -EEXIST : 0; }, 2000ms) == -EEXIST);

  // Stall the slirp thread; a call queued behind the stall times out and must never run.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  h.thread.post([released](Slirp*) { released.wait(); });
  std::atomic<bool> ran{false};
  CHECK(h.thread.call([&ran](Slirp*) {
    ran = true;
    return 0;
  }, 100ms) == -ETIMEDOUT);
  release.set_value();
  CHECK(h.thread.call([](Slirp*) { return 0; }, 2000ms) == 0);  // the queue moved past both
  CHECK_FALSE(ran.load());
  h.thread.stop();
}

TEST_CASE("slirp_new failure is reported by start()", "[slirp]") {
  config::NetConfig n = default_net();
  n.mtu = 40;  // below libslirp's IF_MTU_MIN (68)
  Harness h(n);
  CHECK_FALSE(h.thread.start());
}

TEST_CASE("frames too short or garbage do not upset the thread", "[slirp]") {
  Harness h;
  REQUIRE(h.thread.start());
  h.send(std::vector<uint8_t>(1, 0));
  h.send(std::vector<uint8_t>(13, 0xff));
  std::vector<uint8_t> junk(600);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<uint8_t>(i * 7);
  junk[12] = 0x08, junk[13] = 0x00;  // claims IPv4
  h.send(junk);
  h.send(arp_request("10.0.2.100", "10.0.2.2"));
  auto reply = h.receive();
  REQUIRE(reply.size() >= 42);
  CHECK(reply[21] == 2);
}

#include "slirp/fragment_guard.hpp"

namespace {
std::vector<uint8_t> ipv4_fragment(uint16_t id, uint16_t offset, bool more) {
  std::vector<uint8_t> f(14 + 20 + 8, 0);
  f[12] = 0x08;
  f[14] = 0x45;
  f[18] = static_cast<uint8_t>(id >> 8);
  f[19] = static_cast<uint8_t>(id);
  const uint16_t frag = static_cast<uint16_t>((more ? 0x2000 : 0) | offset / 8);
  f[20] = static_cast<uint8_t>(frag >> 8);
  f[21] = static_cast<uint8_t>(frag);
  f[16] = 0;
  f[17] = 28;  // total length
  f[22] = 64;  // TTL
  f[23] = 17;
  uint32_t sum = 0;
  for (size_t i = 14; i < 34; i += 2) sum += uint32_t{f[i]} << 8 | f[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  f[24] = static_cast<uint8_t>(~sum >> 8);
  f[25] = static_cast<uint8_t>(~sum);
  return f;
}
}  // namespace

TEST_CASE("a last fragment that comes first is held until its datagram has another fragment", "[slirp][frag]") {
  slirp::FragmentGuard g;
  std::vector<std::vector<uint8_t>> fed;
  auto feed = [&fed](const uint8_t* p, size_t n) { fed.emplace_back(p, p + n); };
  auto last = ipv4_fragment(7, 1480, false), first = ipv4_fragment(7, 0, true);
  g.input(last.data(), last.size(), 0, feed);
  CHECK(fed.empty());  // never reaches libslirp on its own
  CHECK(g.held() == 1);
  auto other = ipv4_fragment(8, 0, true);  // another datagram does not release it
  g.input(other.data(), other.size(), 10, feed);
  REQUIRE(fed.size() == 1);
  g.input(first.data(), first.size(), 20, feed);
  REQUIRE(fed.size() == 3);
  CHECK(fed[1] == first);  // the opening fragment first, then the held one
  CHECK(fed[2] == last);
  CHECK(g.held() == 0);
  // That last fragment may have completed the datagram (libslirp then frees its queue), or not (then
  // a later first fragment could complete it): until libslirp surely dropped whatever queue is left
  // (kGoneMs), a repeated last fragment is held, even after another first fragment.
  g.input(last.data(), last.size(), 30, feed);
  CHECK(fed.size() == 3);
  g.input(first.data(), first.size(), 31, feed);
  CHECK(fed.size() == 4);
  CHECK(g.held() == 1);
  // While a queue certainly exists, a last fragment goes straight through, once.
  auto first2 = ipv4_fragment(11, 0, true), last2 = ipv4_fragment(11, 8, false);
  g.input(first2.data(), first2.size(), 40, feed);
  g.input(last2.data(), last2.size(), 41, feed);
  CHECK(fed.size() == 6);
  // ...but not once libslirp may have dropped the queue (kCertainMs after it was created).
  auto first3 = ipv4_fragment(12, 0, true), last3 = ipv4_fragment(12, 8, false);
  g.input(first3.data(), first3.size(), 100, feed);
  g.input(last3.data(), last3.size(), 100 + slirp::FragmentGuard::kCertainMs, feed);
  CHECK(fed.size() == 7);
  // Non-fragments always pass.
  auto plain = ipv4_fragment(9, 0, false);
  g.input(plain.data(), plain.size(), 200, feed);
  CHECK(fed.size() == 8);
}

TEST_CASE("held fragments expire and the hold is bounded", "[slirp][frag]") {
  slirp::FragmentGuard g;
  size_t fed = 0;
  auto feed = [&fed](const uint8_t*, size_t) { ++fed; };
  for (uint16_t id = 0; id < slirp::FragmentGuard::kMaxHeld + 5; ++id) {
    auto f = ipv4_fragment(id, 8, false);
    g.input(f.data(), f.size(), 0, feed);
  }
  CHECK(g.held() == slirp::FragmentGuard::kMaxHeld);
  CHECK(g.dropped() == 5);
  auto late = ipv4_fragment(1000, 0, true);
  g.input(late.data(), late.size(), slirp::FragmentGuard::kHoldMs + 1, feed);
  CHECK(g.held() == 0);
  CHECK(fed == 1);
}

TEST_CASE("the fragments the guard drops are counted for get_stats", "[slirp][frag][stats]") {
  Harness h;
  REQUIRE(h.thread.start());
  // Last fragments that come first, of datagrams that never get another fragment: the guard holds
  // kMaxHeld of them and drops the oldest beyond that. The bundled libslirp needs no guard.
  const uint16_t n = slirp::FragmentGuard::kMaxHeld + 3;
  for (uint16_t id = 0; id < n; ++id) h.send(ipv4_fragment(id, 8, false));
  const uint64_t expected = SLIRPNETD_LIBSLIRP_BUNDLED ? 0 : 3;
  for (int i = 0; i < 200 && (h.stats.input_frames.get() < n || h.stats.fragments_dropped.get() < expected); ++i)
    std::this_thread::sleep_for(10ms);
  h.thread.stop();  // joined: every counter it wrote is visible
  CHECK(h.stats.input_frames.get() == n);
  CHECK(h.stats.fragments_dropped.get() == expected);
}
