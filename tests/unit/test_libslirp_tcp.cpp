// Unit tests for our libslirp patches to TCP (third_party/libslirp/patches): the guest's SYN
// options survive the deferred connect (its MSS is honoured), RFC 7323 window scaling in both
// directions and for host forwards, option parsing that never trusts option lengths, and a bounded
// out-of-order reassembly queue. A fake guest (libslirp_guest.hpp) drives libslirp's public API
// on one thread with a virtual clock; the host side is plain loopback sockets. The process isolates
// itself in private network and mount namespaces before main() (see libslirp_guest.hpp).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "libslirp_guest.hpp"

using namespace libslirp_guest;

namespace {

// "" if a == b, else where they first differ (Catch2 would print whole megabyte vectors).
std::string compare_bytes(const Bytes& got, const Bytes& want) {
  if (got == want) return "";
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return "got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
         ", first difference at " + std::to_string(i);
}

// A guest connection to a loopback listener on the host (guest SYN to 10.0.2.2:PORT), accepted.
struct Outbound {
  Guest& g;
  Listener lst = listen_loopback();
  std::unique_ptr<GuestTcp> c;
  int fd = -1;

  Outbound(Guest& guest, GuestTcpOptions o) : g(guest) {
    c = std::make_unique<GuestTcp>(g, kGateway, lst.port, std::move(o));
    c->connect();
    REQUIRE(g.run_until([&] { return c->established() || c->reset(); }, 200));
    REQUIRE(c->established());
    REQUIRE(g.run_until([&] { return (fd = lst.accept()) >= 0; }, 200));
  }
  ~Outbound() {
    if (fd >= 0) close(fd);
  }
};

// n bytes guest -> host, then n bytes host -> guest; each checked byte for byte.
void transfer_both_ways(Guest& g, GuestTcp& c, int fd, size_t n) {
  const Bytes up = pattern(n, 1);
  Bytes got;
  c.send(up);
  REQUIRE(g.run_until([&] { return got.size() >= up.size(); }, 200000, [&] { read_available(fd, got); }));
  CHECK(compare_bytes(got, up) == "");

  const Bytes down = pattern(n, 2);
  const size_t before = c.received.size();
  size_t off = 0;
  REQUIRE(g.run_until([&] { return c.received.size() - before >= down.size(); }, 200000,
                      [&] { write_some(fd, down, &off); }));
  CHECK(compare_bytes(Bytes(c.received.begin() + static_cast<long>(before), c.received.end()), down) == "");
}

GuestTcpOptions with_wscale(std::optional<uint8_t> shift, uint32_t rcv_window) {
  GuestTcpOptions o;
  o.wscale = shift;
  o.rcv_window = rcv_window;
  return o;
}

}  // namespace

TEST_CASE("libslirp honours the MSS of the guest's SYN", "[libslirp][tcp]") {
  const size_t mtu = GENERATE(1500, 65520);
  INFO("MTU " << mtu);
  GuestConfig gc;
  gc.mtu = mtu;
  Guest g(gc);
  GuestTcpOptions o;
  o.mss = 1000;
  Outbound conn(g, o);
  transfer_both_ways(g, *conn.c, conn.fd, 512 * 1024);
  CHECK(conn.c->max_payload == 1000);  // full-size segments were sent, none larger
}

TEST_CASE("guest offering window scale 7: scaled windows, more than 64 KiB in flight each way",
          "[libslirp][tcp][wscale]") {
  const size_t mtu = GENERATE(1500, 65520);
  INFO("MTU " << mtu);
  GuestConfig gc;
  gc.mtu = mtu;
  Guest g(gc);
  Outbound conn(g, with_wscale(7, 4u << 20));
  GuestTcp& c = *conn.c;

  const TcpPacket& synack = *c.peer_syn;
  REQUIRE(synack.has(kSyn | kAck));
  REQUIRE(synack.wscale.has_value());
  CHECK(*synack.wscale >= 1);
  CHECK(*synack.wscale <= 14);
  CHECK(c.snd_scale == *synack.wscale);

  transfer_both_ways(g, c, conn.fd, 4u << 20);
  CHECK(c.max_peer_window > 65535);     // libslirp advertises more than 16 bits can say
  CHECK(c.max_in_flight_out > 65536);   // and we could use it
  CHECK(c.max_in_flight_in > 65536);    // libslirp uses our scaled window too
  CHECK(c.max_in_flight_in <= 4u << 20);
  CHECK(g.guest_errors == 0);
}

TEST_CASE("guest without window scaling: no option in the SYN-ACK, 16-bit windows", "[libslirp][tcp][wscale]") {
  Guest g;
  Outbound conn(g, with_wscale(std::nullopt, 65535));
  GuestTcp& c = *conn.c;
  CHECK_FALSE(c.peer_syn->wscale.has_value());
  CHECK(c.peer_syn->win <= 65535);
  transfer_both_ways(g, c, conn.fd, 1u << 20);
  CHECK(c.snd_scale == 0);
  CHECK(c.max_peer_window <= 65535);
  CHECK(c.max_in_flight_out <= 65535);
  CHECK(c.max_in_flight_in <= 65535);
  CHECK(c.max_in_flight_in > 32768);  // the window is still used
}

TEST_CASE("guest window shifts 0, 14 and 15 (used as 14)", "[libslirp][tcp][wscale]") {
  const int shift = GENERATE(0, 14, 15);
  INFO("guest shift " << shift);
  Guest g;
  // A window libslirp can only respect if it applies the right shift: with shift 14 and 15 the
  // field says 3, i.e. 3 << 14 bytes; a libslirp shifting by 15 would send twice that.
  const uint32_t window = shift == 0 ? 65535 : 3u << 14;
  Outbound conn(g, with_wscale(static_cast<uint8_t>(shift), window));
  GuestTcp& c = *conn.c;
  REQUIRE(c.peer_syn->wscale.has_value());
  transfer_both_ways(g, c, conn.fd, 1u << 20);
  CHECK(c.max_in_flight_in <= window);
  CHECK(c.max_in_flight_in > window / 2);
  CHECK(c.max_in_flight_out > 65536);  // libslirp's own window is scaled whatever our shift
}

TEST_CASE("malformed SYN options are survived and stop option parsing", "[libslirp][tcp][options]") {
  struct Case {
    const char* name;
    Bytes options;
    bool wscale_expected;  // a well-formed window-scale option comes before the damage
  };
  const Bytes ws7 = opt_wscale(7);
  const std::vector<Case> cases = {
      {"option length 0", Bytes{3, 0, 7, 1}, false},
      {"option length 1", Bytes{30, 1} + ws7, false},
      {"length past the option area", Bytes{1, 1, 3, 3}, false},  // wscale needs 3 bytes, 2 left
      {"length byte missing", Bytes{1, 1, 1, 3}, false},
      {"MSS with length 40", Bytes{2, 40, 0, 100} + ws7, false},
      {"window scale with length 4", Bytes{3, 4, 7, 0}, false},
      {"window scale then garbage", ws7 + Bytes{99, 0}, true},
      {"timestamps and SACK-permitted, then window scale",
       opt_mss(1460) + opt_sack_permitted() + opt_timestamps(1, 0) + ws7, true},
      {"unknown options, then window scale", Bytes{253, 6, 1, 2, 3, 4} + ws7 + Bytes{1, 1, 1, 1}, true},
      {"40 bytes of options ending in EOL", Bytes(36, 1) + Bytes{0, 3, 3, 7}, false},
  };
  for (const Case& k : cases) {
    INFO(k.name);
    Guest g;
    GuestTcpOptions o;
    o.syn_options = k.options;
    o.rcv_window = 65535;
    Outbound conn(g, o);
    GuestTcp& c = *conn.c;
    CHECK(c.peer_syn->wscale.has_value() == k.wscale_expected);
    transfer_both_ways(g, c, conn.fd, 256 * 1024);
    if (!k.wscale_expected) CHECK(c.max_in_flight_out <= 65535);
    if (k.wscale_expected) CHECK(c.max_in_flight_out > 65536);
  }
}

TEST_CASE("random SYN option bytes: every connection is still handled", "[libslirp][tcp][options]") {
  Guest g;
  Listener lst = listen_loopback();
  uint32_t x = 12345;  // xorshift: the same bytes every run
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return static_cast<uint8_t>(x);
  };
  for (int n = 0; n < 200; ++n) {
    Bytes options(4u * (1 + next() % 10));  // 4 to 40 bytes
    for (uint8_t& b : options) {
      const uint8_t r = next();
      // Mostly the kinds that matter (NOP, EOL, MSS, window scale) and small lengths.
      b = r < 64 ? static_cast<uint8_t>(r % 5) : r < 160 ? static_cast<uint8_t>(r % 12) : r;
    }
    INFO("options #" << n);
    GuestTcpOptions o;
    o.syn_options = options;
    o.keep_log = false;
    GuestTcp c(g, kGateway, lst.port, o);
    c.connect();
    REQUIRE(g.run_until([&] { return c.established() || c.reset(); }, 200));
    CHECK(c.established());
    const int fd = lst.accept();
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    c.abort();  // libslirp frees the connection (and its megabyte buffers) now
  }
  CHECK(g.guest_errors == 0);
}

TEST_CASE("options on segments other than the SYN are ignored", "[libslirp][tcp][options]") {
  Guest g;
  GuestTcpOptions o = with_wscale(7, 4u << 20);
  // Every ACK and data segment after the SYN claims MSS 100 and window shift 0.
  o.ack_options = opt_mss(100) + opt_wscale(0) + Bytes{8, 10, 0, 0, 0, 1, 0, 0, 0, 0} + Bytes{3, 0};
  Outbound conn(g, o);
  GuestTcp& c = *conn.c;
  REQUIRE(c.peer_syn->wscale.has_value());
  transfer_both_ways(g, c, conn.fd, 2u << 20);
  CHECK(c.max_payload > 100);          // the MSS option was not applied
  CHECK(c.max_in_flight_in > 65536);   // our windows are still shifted by 7
  CHECK(c.max_in_flight_out > 65536);
}

TEST_CASE("host port forward: libslirp's SYN offers window scaling", "[libslirp][tcp][wscale][hostfwd]") {
  const bool guest_scales = GENERATE(true, false);
  INFO("guest answers with window scaling: " << guest_scales);
  Guest g;
  const uint16_t host_port = g.add_hostfwd_tcp(8080);
  REQUIRE(host_port != 0);
  GuestTcpOptions o = with_wscale(guest_scales ? std::optional<uint8_t>(7) : std::nullopt,
                                  guest_scales ? 4u << 20 : 65535);
  o.local_port = 8080;
  GuestTcp c(g, o);
  const int fd = connect_loopback(host_port);
  REQUIRE(fd >= 0);
  REQUIRE(g.run_until([&] { return c.established() || c.reset(); }, 500));
  REQUIRE(c.established());
  REQUIRE(c.peer_syn.has_value());
  CHECK(c.peer_syn->has(kSyn));
  CHECK_FALSE(c.peer_syn->has(kAck));
  REQUIRE(c.peer_syn->wscale.has_value());  // offered in libslirp's SYN whatever the guest does
  CHECK(c.peer_syn->win <= 65535);

  transfer_both_ways(g, c, fd, 2u << 20);
  if (guest_scales) {
    CHECK(c.max_in_flight_out > 65536);
    CHECK(c.max_in_flight_in > 65536);
  } else {
    CHECK(c.snd_scale == 0);
    CHECK(c.max_in_flight_out <= 65535);
    CHECK(c.max_in_flight_in <= 65535);
  }
  close(fd);
}

TEST_CASE("a flood of tiny out-of-order segments is bounded", "[libslirp][tcp][reass]") {
  const size_t mtu = GENERATE(1500, 65520);
  INFO("MTU " << mtu);
  GuestConfig gc;
  gc.mtu = mtu;
  Guest g(gc);
  Outbound conn(g, with_wscale(7, 4u << 20));
  GuestTcp& c = *conn.c;
  // Far more segments than any sane limit lets through: each holds an mbuf of about the MTU, so a
  // limit of a few MiB means thousands of them at MTU 1500 but a hundred or so at MTU 65520.
  // (Without a limit every one is queued, in time quadratic in their number.)
  const size_t kFlood = mtu == 1500 ? 16000 : 4000;
  REQUIRE(g.run_until([&] { return c.peer_window > kFlood; }, 100));  // the flood fits the window

  // Sends kFlood one-byte segments after a one-byte hole, then the hole; returns how many of them
  // libslirp had kept (what its ACK covers once the hole is filled). Then lets the guest resend
  // everything from the hole, as after any loss, and checks the host got every byte once.
  auto flood = [&](uint32_t seed) {
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(g.run_until([&] { return c.all_acked(); }, 1000));
    const Bytes data = pattern(kFlood + 1, seed);
    const uint32_t base = c.snd_nxt();
    const size_t log_start = c.log.size();
    auto segment = [&](size_t i) {
      TcpSegment s;
      s.seq = base + static_cast<uint32_t>(i);
      s.ack = c.rcv_nxt();
      s.flags = kAck;
      s.win = c.window_field();
      s.payload = {data[i]};
      c.send_raw(s);
    };
    for (size_t i = 1; i <= kFlood; ++i) {  // all out of order: base itself is missing
      segment(i);
      if (i % 256 == 0) g.step();
    }
    g.step();
    segment(0);  // fill the hole: libslirp hands over what it queued and acknowledges it
    g.step();
    uint32_t acked = 0;
    for (size_t k = log_start; k < c.log.size(); ++k)
      if (c.log[k].has(kAck) && seq_lt(base + acked, c.log[k].ack)) acked = c.log[k].ack - base;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO("segments kept out of order: " << acked - 1 << " of " << kFlood << ", " << secs << " s");
    CHECK(acked >= 1);
    CHECK(secs < 5);

    Bytes got;
    c.send(data);
    REQUIRE(g.run_until([&] { return got.size() >= data.size(); }, 200000,
                        [&] { read_available(conn.fd, got); }));
    CHECK(compare_bytes(got, data) == "");
    return acked - 1;
  };

  const uint32_t kept = flood(3);
  INFO("kept " << kept << " of " << kFlood);
  REQUIRE(kept < kFlood / 2);  // most of the flood was refused, not queued
  CHECK(kept > 16);          // but the queue is not uselessly short
  // The queue's accounting went back to zero: a second flood is treated the same.
  CHECK(flood(4) == kept);
  // And the connection still carries a bulk transfer at full window.
  transfer_both_ways(g, c, conn.fd, 1u << 20);
}

TEST_CASE("out-of-order segments from ordinary loss are all kept", "[libslirp][tcp][reass]") {
  const size_t mtu = GENERATE(1500, 65520);
  INFO("MTU " << mtu);
  GuestConfig gc;
  gc.mtu = mtu;
  Guest g(gc);
  Outbound conn(g, with_wscale(7, 4u << 20));
  GuestTcp& c = *conn.c;
  transfer_both_ways(g, c, conn.fd, 1u << 20);  // libslirp's window is open: scaled, and wide
  // A full window of full-size segments with the first one lost: libslirp must queue the rest, so
  // that the single retransmission completes the window.
  const uint32_t mss = static_cast<uint32_t>(std::min<size_t>(mtu - 40, *c.peer_syn->mss));
  const uint32_t window = c.peer_window - c.peer_window % mss;
  REQUIRE(window > 65536);
  const Bytes data = pattern(window, 4);
  const uint32_t base = c.snd_nxt();
  for (uint32_t off = mss; off < window; off += mss) {
    TcpSegment s;
    s.seq = base + off;
    s.ack = c.rcv_nxt();
    s.flags = kAck;
    s.win = c.window_field();
    s.payload.assign(data.begin() + off, data.begin() + std::min(off + mss, window));
    c.send_raw(s);
  }
  g.step();
  TcpSegment first;
  first.seq = base;
  first.ack = c.rcv_nxt();
  first.flags = kAck;
  first.win = c.window_field();
  first.payload.assign(data.begin(), data.begin() + mss);
  c.send_raw(first);
  g.step();
  uint32_t acked = 0;
  for (const TcpPacket& t : c.log)
    if (t.has(kAck) && seq_lt(base + acked, t.ack)) acked = t.ack - base;
  CHECK(acked == window);
  Bytes got;
  REQUIRE(g.run_until([&] { return got.size() >= data.size(); }, 20000, [&] { read_available(conn.fd, got); }));
  CHECK(compare_bytes(got, data) == "");
}

TEST_CASE("host stops reading: libslirp's window closes, then reopens, nothing lost",
          "[libslirp][tcp][wscale][persist]") {
  Guest g;
  GuestTcpOptions o = with_wscale(7, 4u << 20);
  // A small host receive buffer, so that libslirp's own buffer fills quickly.
  Listener lst = listen_loopback(64 * 1024);
  GuestTcp c(g, kGateway, lst.port, o);
  c.connect();
  REQUIRE(g.run_until([&] { return c.established(); }, 200));
  int fd = -1;
  REQUIRE(g.run_until([&] { return (fd = lst.accept()) >= 0; }, 200));

  // More than the kernel can buffer between libslirp's socket and ours.
  const Bytes data = pattern(16u << 20, 5);
  c.send(data);
  // The host does not read for 5 virtual seconds.
  REQUIRE(g.run_until([&] { return c.saw_zero_window; }, 2000));
  const size_t before = c.segments_in;
  for (int i = 0; i < 5000; ++i) g.step();
  CHECK(c.segments_in - before < 50);  // no busy loop of window updates or ACKs
  CHECK(c.peer_window == 0);
  CHECK(c.max_peer_window > 65535);  // scaled until it closed

  Bytes got;
  REQUIRE(g.run_until([&] { return got.size() >= data.size(); }, 200000, [&] { read_available(fd, got); }));
  CHECK(compare_bytes(got, data) == "");
  close(fd);
}

TEST_CASE("guest stops reading: libslirp respects the zero window, probes, resumes, nothing lost",
          "[libslirp][tcp][wscale][persist]") {
  Guest g;
  const uint32_t window = 256 * 1024;
  Outbound conn(g, with_wscale(7, window));
  GuestTcp& c = *conn.c;
  REQUIRE(c.rcv_scale == 7);  // our window is scaled: 256 KiB, then closing
  c.reading = false;
  const Bytes data = pattern(4u << 20, 6);
  size_t off = 0;
  // libslirp fills the window until less than a segment is left (sender silly-window avoidance).
  REQUIRE(g.run_until([&] { return c.received.size() + 1460 > window; }, 5000,
                      [&] { write_some(conn.fd, data, &off); }));
  // 10 virtual seconds with a (nearly) closed window: libslirp sends the rest when its persist
  // timer fires, then may only probe.
  const size_t before = c.segments_in;
  for (int i = 0; i < 10000; ++i) {
    g.step();
    write_some(conn.fd, data, &off);
  }
  CHECK(c.received.size() <= window);
  CHECK(c.window_field() == 0);  // what is left is less than 1 << rcv_scale
  CHECK(c.segments_in - before >= 1);  // the rest of the window (persist timer), then probes
  CHECK(c.segments_in - before < 50);
  CHECK(c.beyond_window_in == 0);

  c.resume();
  REQUIRE(g.run_until([&] { return c.received.size() >= data.size(); }, 200000,
                      [&] { write_some(conn.fd, data, &off); }));
  CHECK(compare_bytes(c.received, data) == "");
  CHECK(c.beyond_window_in == 0);
}

namespace {

// Sends a segment of n fresh bytes at *seq (advanced), outside GuestTcp's own stream; returns n.
uint32_t send_segment(GuestTcp& c, uint32_t* seq, uint32_t n, uint8_t tag) {
  TcpSegment s;
  s.seq = *seq;
  *seq += n;
  s.ack = c.rcv_nxt();
  s.flags = kAck;
  s.win = c.window_field();
  s.payload = pattern(n, tag);
  c.send_raw(s);
  return n;
}

// The highest acknowledgement number libslirp has sent, relative to base.
uint32_t acked_since(const GuestTcp& c, uint32_t base) {
  uint32_t acked = 0;
  for (const TcpPacket& t : c.log)
    if (t.has(kAck) && seq_lt(base + acked, t.ack)) acked = t.ack - base;
  return acked;
}

}  // namespace

TEST_CASE("libslirp ACKs every second full-sized segment, and the first after the fast timer",
          "[libslirp][tcp][delack]") {
  const size_t mtu = GENERATE(1500, 65520);
  INFO("MTU " << mtu);
  GuestConfig gc;
  gc.mtu = mtu;
  Guest g(gc);
  GuestTcpOptions o = with_wscale(7, 4u << 20);
  o.mss = static_cast<uint16_t>(mtu - 40);
  Outbound conn(g, o);
  GuestTcp& c = *conn.c;
  transfer_both_ways(g, c, conn.fd, 4u << 20);  // libslirp's buffers have grown: its window is wide
  const uint32_t mss = static_cast<uint32_t>(std::min<size_t>(mtu - 40, *c.peer_syn->mss));
  REQUIRE(c.peer_window >= 4 * mss);
  for (int i = 0; i < 3; ++i) g.step();  // an ACK still delayed from the transfer goes out
  Bytes sink;
  const uint32_t base = c.snd_nxt();

  uint32_t seq = base;
  uint32_t sent = send_segment(c, &seq, mss, 5);
  g.step();  // 1 ms: not yet the fast timer's 2
  CHECK(acked_since(c, base) == 0);
  sent += send_segment(c, &seq, mss, 6);
  g.step();
  CHECK(acked_since(c, base) == sent);  // the second one ACKs both

  sent += send_segment(c, &seq, mss, 7);
  g.step();
  CHECK(acked_since(c, base) == sent - mss);
  for (int i = 0; i < 3; ++i) g.step();  // the fast timer sends the delayed ACK
  CHECK(acked_since(c, base) == sent);

  // A short segment is ACKed at once (the sender's Nagle algorithm waits for it).
  sent += send_segment(c, &seq, 100, 8);
  g.step();
  CHECK(acked_since(c, base) == sent);
  REQUIRE(g.run_until([&] { return sink.size() >= sent; }, 2000, [&] { read_available(conn.fd, sink); }));
  CHECK(sink.size() == sent);
}

TEST_CASE("libslirp ACKs at once when the sender's window cannot take two more segments",
          "[libslirp][tcp][delack]") {
  // MTU 65520 without window scaling: a 64 KiB window holds one full-size segment, so a delayed ACK
  // would stall the sender for the fast timer on every segment.
  GuestConfig gc;
  gc.mtu = 65520;
  Guest g(gc);
  GuestTcpOptions o = with_wscale(std::nullopt, 65535);
  o.mss = static_cast<uint16_t>(gc.mtu - 40);
  Outbound conn(g, o);
  GuestTcp& c = *conn.c;
  transfer_both_ways(g, c, conn.fd, 1u << 20);
  const uint32_t mss = static_cast<uint32_t>(std::min<size_t>(gc.mtu - 40, *c.peer_syn->mss));
  REQUIRE(c.peer_window < 2 * mss);
  for (int i = 0; i < 3; ++i) g.step();  // the guest's last ACK and any delayed one are out
  const uint32_t base = c.snd_nxt();
  uint32_t seq = base;
  const uint32_t sent = send_segment(c, &seq, std::min(mss, c.peer_window), 9);
  g.step();
  CHECK(acked_since(c, base) == sent);
}
