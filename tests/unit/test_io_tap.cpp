// io: TapReader and TapWriter over a SOCK_SEQPACKET socketpair standing in for the TAP (one
// datagram per frame, as a TAP read/write is; a closed peer is how a BESS socket goes away).
// Nothing leaves the process.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "io/frame_channel.hpp"
#include "io/stats.hpp"
#include "io/tap_threads.hpp"
#include "io/vnet.hpp"
#include "io/waker.hpp"

using namespace slirpnetd;
using namespace slirpnetd::io;
using namespace std::chrono_literals;

namespace {

struct Pair {
  UniqueFd tap, peer;  // tap: the threads' end (non-blocking, as the TAP is); peer: the test's
  Pair() {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    tap.reset(sv[0]);
    peer.reset(sv[1]);
  }
};

std::vector<uint8_t> frame(size_t len, uint8_t seed) {
  std::vector<uint8_t> f(len);
  for (size_t i = 0; i < len; ++i) f[i] = static_cast<uint8_t>(seed + i);
  return f;
}

// What on_gone reported (set from the thread; read after it ended).
struct Gone {
  std::mutex mu;
  std::vector<std::string> reasons;
  GoneCallback callback() {
    return [this](const std::string& r) {
      std::lock_guard<std::mutex> lock(mu);
      reasons.push_back(r);
    };
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return reasons.size();
  }
};

// Plays the slirp thread: sleeps until the waker fires (only then: a frame pushed without a
// wakeup is not taken), then takes what the ring holds.
std::vector<std::vector<uint8_t>> take(FrameChannel& rx, Waker& waker, size_t want, size_t offset = 0) {
  std::vector<std::vector<uint8_t>> got;
  while (got.size() < want) {
    pollfd p{waker.fd(), POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) break;
    waker.consume();  // before draining (io/waker.hpp)
    while (Frame* f = rx.try_pop()) {
      got.emplace_back(f->data + offset, f->data + f->len);
      rx.release(f);
    }
  }
  return got;
}

template <typename Fn>
std::chrono::milliseconds timed(Fn fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
}

}  // namespace

TEST_CASE("TapReader: frames reach the rx ring whole and in order, and wake the consumer", "[io][tap]") {
  Pair p;
  FrameChannel rx(8, FrameChannel::slot_bytes_for_mtu(1500));
  Waker waker;
  TapReaderStats stats;
  Gone gone;
  TapReader reader(p.tap.get(), 0, rx, waker, stats, gone.callback());
  reader.start();
  const std::vector<std::vector<uint8_t>> sent = {frame(60, 1), frame(1514, 2), frame(42, 3)};
  for (const auto& f : sent) REQUIRE(::send(p.peer.get(), f.data(), f.size(), 0) == static_cast<ssize_t>(f.size()));
  CHECK(take(rx, waker, sent.size()) == sent);
  CHECK(timed([&] { reader.stop(); }) < 1000ms);  // idle in poll(): stopped at once
  CHECK(stats.frames.get() == 3);
  CHECK(stats.bytes.get() == 60 + 1514 + 42);
  CHECK(stats.errors.get() == 0);
  CHECK(gone.count() == 0);
}

TEST_CASE("TapReader: waits for free slots instead of dropping when the consumer is behind", "[io][tap]") {
  Pair p;
  FrameChannel rx(2, FrameChannel::slot_bytes_for_mtu(1500));
  Waker waker;
  TapReaderStats stats;
  Gone gone;
  TapReader reader(p.tap.get(), 0, rx, waker, stats, gone.callback());
  reader.start();
  std::vector<std::vector<uint8_t>> sent;
  for (uint8_t i = 0; i < 20; ++i) {
    sent.push_back(frame(100 + i, i));
    REQUIRE(::send(p.peer.get(), sent.back().data(), sent.back().size(), 0) > 0);
  }
  std::this_thread::sleep_for(50ms);  // the reader fills both slots and waits
  CHECK(take(rx, waker, sent.size()) == sent);
  CHECK(stats.backpressure_waits.get() > 0);
  reader.stop();
  CHECK(stats.frames.get() == 20);
}

TEST_CASE("TapReader: a virtio-net header is skipped, a frame shorter than it dropped", "[io][tap]") {
  Pair p;
  FrameChannel rx(8, FrameChannel::slot_bytes_for_mtu(1500) + kVnetHdrLen);
  Waker waker;
  TapReaderStats stats;
  Gone gone;
  TapReader reader(p.tap.get(), kVnetHdrLen, rx, waker, stats, gone.callback());
  reader.start();
  std::vector<uint8_t> short_one(kVnetHdrLen - 1, 0);
  REQUIRE(::send(p.peer.get(), short_one.data(), short_one.size(), 0) > 0);
  std::vector<uint8_t> with_hdr(kVnetHdrLen, 0);  // flags 0: nothing to complete
  const auto eth = frame(60, 9);
  with_hdr.insert(with_hdr.end(), eth.begin(), eth.end());
  REQUIRE(::send(p.peer.get(), with_hdr.data(), with_hdr.size(), 0) > 0);
  const auto got = take(rx, waker, 1, kVnetHdrLen);
  REQUIRE(got.size() == 1);
  CHECK(got[0] == eth);
  reader.stop();
  CHECK(stats.errors.get() == 1);
  CHECK(stats.frames.get() == 1);
}

TEST_CASE("TapReader: the peer going away is reported once and ends the thread", "[io][tap]") {
  Pair p;
  FrameChannel rx(8, FrameChannel::slot_bytes_for_mtu(1500));
  Waker waker;
  TapReaderStats stats;
  Gone gone;
  TapReader reader(p.tap.get(), 0, rx, waker, stats, gone.callback());
  reader.start();
  p.peer.reset();
  for (int i = 0; i < 500 && gone.count() == 0; ++i) std::this_thread::sleep_for(10ms);
  reader.stop();
  REQUIRE(gone.count() == 1);
  CHECK(gone.reasons[0] == "TAP read: end of file");
}

TEST_CASE("TapWriter: frames from the tx ring reach the TAP in order, and slots come back", "[io][tap]") {
  Pair p;
  FrameChannel tx(4, FrameChannel::slot_bytes_for_mtu(1500));
  TapWriterStats stats;
  Gone gone;
  TapWriter writer(p.tap.get(), false, tx, stats, gone.callback());
  writer.start();
  std::vector<std::vector<uint8_t>> sent, got;
  for (uint8_t i = 0; i < 12; ++i) {  // three times the slots: each must be recycled
    sent.push_back(frame(60 + 10 * i, i));
    Frame* f = tx.acquire_for(2s);
    REQUIRE(f);
    std::memcpy(f->data, sent.back().data(), sent.back().size());
    f->len = static_cast<uint32_t>(sent.back().size());
    f->offset = 0;
    f->stamp_ns = now_ns();
    tx.push(f);
    pollfd pf{p.peer.get(), POLLIN, 0};
    REQUIRE(::poll(&pf, 1, 2000) == 1);
    uint8_t buf[2048];
    const ssize_t n = ::recv(p.peer.get(), buf, sizeof buf, 0);
    REQUIRE(n > 0);
    got.emplace_back(buf, buf + n);
  }
  CHECK(got == sent);
  CHECK(timed([&] { writer.stop(); }) < 1000ms);  // idle, waiting on the ring: stopped soon
  CHECK(stats.frames.get() == 12);
  CHECK(stats.latency.count() == 12);
  for (int i = 0; i < 4; ++i) CHECK(tx.try_acquire() != nullptr);  // every slot is free again
  CHECK(gone.count() == 0);
}

TEST_CASE("TAP threads stop at once: their doorbell, not a polled flag", "[io][tap]") {
  Pair p;
  FrameChannel rx(4, FrameChannel::slot_bytes_for_mtu(1500)), tx(4, FrameChannel::slot_bytes_for_mtu(1500));
  Waker waker;
  TapReaderStats rstats;
  TapWriterStats wstats;
  Gone gone;
  // Started and stopped 5 times each; a 100 ms stop check would cost about a second.
  const auto took = timed([&] {
    for (int i = 0; i < 5; ++i) {
      TapReader reader(p.tap.get(), 0, rx, waker, rstats, gone.callback());
      reader.start();
      TapWriter writer(p.tap.get(), false, tx, wstats, gone.callback());
      writer.start();
      std::this_thread::sleep_for(2ms);  // both asleep
      reader.stop();
      writer.stop();
      Frame* marker = tx.try_pop();  // a writer stopped before it ran leaves the closed marker
      if (marker != nullptr) REQUIRE(tx.is_closed(marker));
    }
  });
  CHECK(took < 300ms);
  CHECK(gone.count() == 0);
}

TEST_CASE("TapWriter: the peer going away is reported once and ends the thread", "[io][tap]") {
  ::signal(SIGPIPE, SIG_IGN);  // as the daemon does
  Pair p;
  FrameChannel tx(4, FrameChannel::slot_bytes_for_mtu(1500));
  TapWriterStats stats;
  Gone gone;
  TapWriter writer(p.tap.get(), false, tx, stats, gone.callback());
  writer.start();
  p.peer.reset();
  Frame* f = tx.acquire_for(1s);
  REQUIRE(f);
  f->len = 60;
  f->offset = 0;
  tx.push(f);
  for (int i = 0; i < 500 && gone.count() == 0; ++i) std::this_thread::sleep_for(10ms);
  writer.stop();
  REQUIRE(gone.count() == 1);
  CHECK(gone.reasons[0] == std::string("TAP write: ") + std::strerror(EPIPE));
  CHECK(stats.errors.get() == 1);
}
