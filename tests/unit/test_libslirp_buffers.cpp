// Unit tests for our libslirp patches to TCP socket buffers and segment sizes
// (third_party/libslirp/patches): a connection's buffers start empty and grow on demand up to a
// maximum (slirp_set_tcp_buffer_max(), 4 MiB by default) from which the window is computed; idle
// connections hold no buffer memory; segments carry MTU - 40 bytes (IPv4) or MTU - 60 (IPv6),
// never more than the guest's MSS. A fake guest (libslirp_guest.hpp) drives libslirp's public API on one thread with a virtual
// clock; the host side is plain loopback sockets. The process isolates itself in private network
// and mount namespaces before main() (see libslirp_guest.hpp).
//
// Memory is measured with mallinfo2(): bytes of heap in use, whatever the pages' residency.
#include <malloc.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "libslirp_guest.hpp"

using namespace libslirp_guest;

namespace {

constexpr uint32_t kMiB = 1024 * 1024;
constexpr uint32_t kDefaultMax = 4 * kMiB;  // libslirp's default slirp_set_tcp_buffer_max()

// "" if a == b, else where they first differ (Catch2 would print whole megabyte vectors).
std::string compare_bytes(const Bytes& got, const Bytes& want) {
  if (got == want) return "";
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return "got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
         ", first difference at " + std::to_string(i);
}

size_t heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// Hundreds of connections: two descriptors each.
void raise_fd_limit() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

GuestTcpOptions opts(uint16_t mss, std::optional<uint8_t> wscale, uint32_t rcv_window) {
  GuestTcpOptions o;
  o.mss = mss;
  o.wscale = wscale;
  o.rcv_window = rcv_window;
  o.keep_log = false;  // the log is the test's memory, not libslirp's
  return o;
}

// A guest connection to a loopback listener on the host (guest SYN to 10.0.2.2:PORT), accepted.
struct Outbound {
  std::unique_ptr<GuestTcp> c;
  int fd = -1;
  Outbound(Guest& g, const Listener& lst, GuestTcpOptions o) {
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

// data host -> guest: the host writes as fast as its socket takes it.
void host_to_guest(Guest& g, GuestTcp& c, int fd, const Bytes& data) {
  const size_t before = c.received.size();
  size_t off = 0;
  REQUIRE(g.run_until([&] { return c.received.size() - before >= data.size(); }, 200000,
                      [&] { write_some(fd, data, &off); }));
  CHECK(compare_bytes(Bytes(c.received.begin() + static_cast<long>(before), c.received.end()), data) == "");
}

// data guest -> host. The host application reads nothing until libslirp has acknowledged
// read_after bytes or closed its window: meanwhile libslirp's so_rcv holds what the host socket
// does not take. Returns how much libslirp had acknowledged when the host started reading.
size_t guest_to_host(Guest& g, GuestTcp& c, int fd, const Bytes& data, size_t read_after) {
  Bytes got;
  bool reading = false;
  size_t acked_unread = 0;
  const uint32_t start = c.snd_una();
  c.send(data);
  REQUIRE(g.run_until([&] { return got.size() >= data.size(); }, 200000, [&] {
    const size_t acked = c.snd_una() - start;
    if (!reading && (acked >= read_after || (acked > 0 && c.peer_window == 0) || acked == data.size())) {
      reading = true;
      acked_unread = acked;
    }
    if (reading) read_available(fd, got);
  }));
  CHECK(compare_bytes(got, data) == "");
  return acked_unread;
}

// ---- IPv6 (libslirp_guest.hpp's Guest is IPv4 only) ----------------------------------------------

// One Slirp with IPv6 on (fd00::/64, gateway fd00::2 = the host's ::1) and a bare TCP client in the
// guest at fd00::100: enough to receive a bulk transfer and see the segment sizes.
struct Guest6 {
  Slirp* slirp = nullptr;
  int64_t now_ns = 1'000'000'000;
  std::vector<Bytes> frames;
  std::vector<pollfd> pfds;
  size_t max_frame_len = 0;
  in6_addr me{}, gw{};
  uint16_t sport = 45000, dport = 0;
  uint32_t snd_nxt = 5000, rcv_nxt = 0;
  uint8_t peer_shift = 0;
  uint16_t peer_mss = 0;
  bool established = false;
  Bytes received;
  size_t max_payload = 0;

  explicit Guest6(size_t mtu) {
    (void)kIsolated;
    static const SlirpCb cb = [] {
      SlirpCb c{};
      c.send_packet = [](const void* buf, size_t len, void* o) {
        auto* g = static_cast<Guest6*>(o);
        const auto* b = static_cast<const uint8_t*>(buf);
        g->frames.emplace_back(b, b + len);
        g->max_frame_len = std::max(g->max_frame_len, len);
        return static_cast<ssize_t>(len);
      };
      c.guest_error = [](const char*, void*) {};
      c.clock_get_ns = [](void* o) { return static_cast<Guest6*>(o)->now_ns; };
      c.timer_new = [](SlirpTimerCb, void*, void*) -> void* { return new int; };
      c.timer_free = [](void* t, void*) { delete static_cast<int*>(t); };
      c.timer_mod = [](void*, int64_t, void*) {};
      c.register_poll_fd = [](int, void*) {};
      c.unregister_poll_fd = [](int, void*) {};
      c.notify = [](void*) {};
      return c;
    }();
    SlirpConfig c{};
    c.version = 1;
    c.in_enabled = true;
    c.vnetwork = in_addr_of(kNetwork);
    c.vnetmask = in_addr_of(kNetmask);
    c.vhost = in_addr_of(kGateway);
    c.vdhcp_start = in_addr_of(ip("10.0.2.15"));
    c.vnameserver = in_addr_of(kDns);
    c.in6_enabled = true;
    inet_pton(AF_INET6, "fd00::", &c.vprefix_addr6);
    c.vprefix_len = 64;
    inet_pton(AF_INET6, "fd00::2", &c.vhost6);
    inet_pton(AF_INET6, "fd00::3", &c.vnameserver6);
    c.if_mtu = mtu;
    c.if_mru = mtu;
    slirp = slirp_new(&c, &cb, this);
    REQUIRE(slirp);
    inet_pton(AF_INET6, "fd00::100", &me);
    gw = c.vhost6;
    // Neighbor solicitation for the gateway: libslirp learns our MAC from it.
    Bytes ns(24 + 8);
    ns[0] = 135;
    std::memcpy(&ns[8], &gw, 16);
    ns[24] = 1, ns[25] = 1;
    std::memcpy(&ns[26], kGuestMac, 6);
    in6_addr snm{};
    inet_pton(AF_INET6, "ff02::1:ff00:2", &snm);
    input(frame(me, snm, IPPROTO_ICMPV6, ns, 255, 2));
  }
  ~Guest6() { slirp_cleanup(slirp); }

  void input(const Bytes& f) { slirp_input(slirp, f.data(), static_cast<int>(f.size())); }

  // Ethernet + IPv6 + payload; the transport checksum (at csum_at in payload) is filled in.
  static Bytes frame(const in6_addr& src, const in6_addr& dst, uint8_t nh, Bytes payload, uint8_t hlim,
                     size_t csum_at) {
    uint8_t pseudo[40] = {};
    std::memcpy(pseudo, &src, 16);
    std::memcpy(pseudo + 16, &dst, 16);
    put32(pseudo + 32, static_cast<uint32_t>(payload.size()));
    pseudo[39] = nh;
    put16(&payload[csum_at], 0);
    put16(&payload[csum_at], fold(sum16(payload.data(), payload.size(), sum16(pseudo, 40))));
    Bytes f(14 + 40 + payload.size());
    std::memcpy(&f[0], kSlirpMac, 6);
    std::memcpy(&f[6], kGuestMac, 6);
    put16(&f[12], 0x86dd);
    f[14] = 0x60;
    put16(&f[18], static_cast<uint16_t>(payload.size()));
    f[20] = nh;
    f[21] = hlim;
    std::memcpy(&f[22], &src, 16);
    std::memcpy(&f[38], &dst, 16);
    if (!payload.empty()) std::memcpy(&f[54], payload.data(), payload.size());
    return f;
  }

  void send_tcp(uint8_t flags, const Bytes& options = {}) {
    Bytes t(20 + options.size());
    put16(&t[0], sport);
    put16(&t[2], dport);
    put32(&t[4], snd_nxt);
    put32(&t[8], rcv_nxt);
    t[12] = static_cast<uint8_t>(((20 + options.size()) / 4) << 4);
    t[13] = flags;
    put16(&t[14], 65535);  // ~8 MiB at shift 7
    if (!options.empty()) std::memcpy(&t[20], options.data(), options.size());
    input(frame(me, gw, IPPROTO_TCP, t, 64, 16));
    if (flags & kSyn) ++snd_nxt;
  }

  void connect(uint16_t port, uint16_t mss) {
    dport = port;
    send_tcp(kSyn, opt_mss(mss) + opt_wscale(7));
  }

  // One poll round; then takes in what libslirp sent, acknowledging it.
  void step() {
    now_ns += 1'000'000;
    pfds.clear();
    uint32_t timeout = UINT32_MAX;
    slirp_pollfds_fill(
        slirp, &timeout,
        [](int fd, int ev, void* o) {
          auto* g = static_cast<Guest6*>(o);
          short e = 0;
          if (ev & SLIRP_POLL_IN) e |= POLLIN;
          if (ev & SLIRP_POLL_OUT) e |= POLLOUT;
          if (ev & SLIRP_POLL_PRI) e |= POLLPRI;
          g->pfds.push_back({fd, e, 0});
          return static_cast<int>(g->pfds.size() - 1);
        },
        this);
    const int n = poll(pfds.data(), pfds.size(), 0);
    slirp_pollfds_poll(
        slirp, n < 0,
        [](int idx, void* o) {
          const short r = static_cast<Guest6*>(o)->pfds[static_cast<size_t>(idx)].revents;
          int e = 0;
          if (r & POLLIN) e |= SLIRP_POLL_IN;
          if (r & POLLOUT) e |= SLIRP_POLL_OUT;
          if (r & POLLPRI) e |= SLIRP_POLL_PRI;
          if (r & (POLLERR | POLLNVAL)) e |= SLIRP_POLL_ERR;
          if (r & POLLHUP) e |= SLIRP_POLL_HUP;
          return e;
        },
        this);
    bool ack = false;
    std::vector<Bytes> in;
    in.swap(frames);
    for (const Bytes& f : in) {
      if (f.size() < 74 || get16(&f[12]) != 0x86dd || f[20] != IPPROTO_TCP) continue;
      const uint8_t* t = &f[54];
      const size_t tlen = get16(&f[18]);
      const size_t hl = (t[12] >> 4) * 4u;
      if (get16(&t[2]) != sport || tlen < hl || 54 + tlen > f.size()) continue;
      if ((t[13] & (kSyn | kAck)) == (kSyn | kAck) && !established) {
        TcpPacket opt;
        opt.options.assign(t + 20, t + hl);
        parse_tcp_options(opt);
        peer_mss = opt.mss.value_or(0);
        peer_shift = opt.wscale.value_or(0);
        rcv_nxt = get32(&t[4]) + 1;
        established = true;
        ack = true;
        continue;
      }
      const size_t len = tlen - hl;
      max_payload = std::max(max_payload, len);
      if (len > 0 && get32(&t[4]) == rcv_nxt) {
        received.insert(received.end(), t + hl, t + tlen);
        rcv_nxt += static_cast<uint32_t>(len);
      }
      if (len > 0) ack = true;
    }
    if (ack) send_tcp(kAck);
  }
};

}  // namespace

TEST_CASE("libslirp buffers: an idle connection holds no socket buffer memory", "[libslirp][buffers]") {
  raise_fd_limit();
  Guest g;
  const Listener lst = listen_loopback();
  constexpr int kConns = 200;
  std::vector<std::unique_ptr<Outbound>> conns;
  conns.reserve(kConns + 1);
  conns.push_back(std::make_unique<Outbound>(g, lst, opts(1460, 7, 1 * kMiB)));  // warm-up
  const size_t before = heap_in_use();
  for (int i = 0; i < kConns; ++i) conns.push_back(std::make_unique<Outbound>(g, lst, opts(1460, 7, 1 * kMiB)));
  for (int i = 0; i < 10; ++i) g.step();
  const double per_conn = double(heap_in_use() - before) / kConns;
  // Everything: libslirp's socket and tcpcb, and this test's own GuestTcp and bookkeeping.
  std::printf("idle connection: %.0f bytes of heap each (%d connections)\n", per_conn, kConns);
  CHECK(per_conn < 16 * 1024);
}

TEST_CASE("libslirp buffers: a connection that goes idle gives its buffers back", "[libslirp][buffers]") {
  Guest g;
  const Listener lst = listen_loopback();
  constexpr int kConns = 20;
  const Bytes down = pattern(512 * 1024, 1), up = pattern(256 * 1024, 2);
  std::vector<std::unique_ptr<Outbound>> conns;
  conns.reserve(kConns + 1);
  conns.push_back(std::make_unique<Outbound>(g, lst, opts(1460, 7, 1 * kMiB)));  // warm-up
  const size_t before = heap_in_use();
  for (int i = 0; i < kConns; ++i) {
    conns.push_back(std::make_unique<Outbound>(g, lst, opts(1460, 7, 1 * kMiB)));
    Outbound& o = *conns.back();
    // Both buffers get used: so_snd holds what the guest has not acknowledged yet, so_rcv what
    // the host application has not read yet.
    host_to_guest(g, *o.c, o.fd, down);
    guest_to_host(g, *o.c, o.fd, up, up.size());
    // The guest side is done with it: this test's GuestTcp (which keeps every byte it sent and
    // received) goes away, libslirp's connection stays open, idle.
    o.c.reset();
  }
  const size_t busy = heap_in_use();
  for (int i = 0; i < 40; ++i) {  // 4 s without traffic
    g.advance_ms(100);
    g.step();
  }
  const size_t idle = heap_in_use();
  std::printf("after transfers: %.0f bytes of heap per connection; after 4 s idle: %.0f\n",
              double(busy - before) / kConns, double(idle - before) / kConns);
  CHECK(double(idle - before) / kConns < 16 * 1024);
}

TEST_CASE("libslirp buffers: guest -> host, the window reaches the maximum and so_rcv holds it",
          "[libslirp][buffers]") {
  const size_t mtu = GENERATE(1500, 65520);
  INFO("MTU " << mtu);
  GuestConfig gc;
  gc.mtu = mtu;
  Guest g(gc);
  const Listener lst = listen_loopback(4096);  // the host socket backs up early
  Outbound o(g, lst, opts(uint16_t(mtu - 40), 7, 8 * kMiB));
  const Bytes data = pattern(12 * kMiB, 3);
  const size_t held = guest_to_host(g, *o.c, o.fd, data, 10 * kMiB);
  std::printf("MTU %zu, guest -> host: window up to %u, %u in flight, %zu acknowledged before the host read\n",
              mtu, o.c->max_peer_window, o.c->max_in_flight_out, held);
  CHECK(o.c->max_peer_window >= kDefaultMax * 7 / 8);  // the window is computed from the maximum
  CHECK(o.c->max_peer_window <= kDefaultMax);           // and never offers more than so_rcv can hold
  CHECK(o.c->max_in_flight_out > 1 * kMiB);
  CHECK(held >= kDefaultMax);  // so_rcv grew to hold a full window: none of it was dropped
  CHECK(g.guest_errors == 0);
}

TEST_CASE("libslirp buffers: host -> guest, so_snd grows to keep megabytes in flight", "[libslirp][buffers]") {
  GuestConfig gc;
  gc.mtu = 65520;
  Guest g(gc);
  const Listener lst = listen_loopback();
  Outbound o(g, lst, opts(65480, 7, 8 * kMiB));
  const int sndbuf = 8 * kMiB;
  setsockopt(o.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  // libslirp's slow start opens its congestion window by one segment per ACK, and this guest
  // acknowledges once per step: it takes ~100 MiB for the window to pass 2 MiB. The data is a
  // repeated block, checked as it arrives.
  const Bytes block = pattern(8 * kMiB, 4);
  constexpr size_t kTotal = 128 * size_t{kMiB};
  size_t written = 0, checked = 0;
  std::string bad;
  REQUIRE(g.run_until([&] { return checked >= kTotal || !bad.empty(); }, 200000, [&] {
    while (written < kTotal) {
      const size_t at = written % block.size();
      const ssize_t n = write(o.fd, block.data() + at, std::min(block.size() - at, kTotal - written));
      if (n <= 0) break;
      written += size_t(n);
    }
    for (size_t i = 0; i < o.c->received.size() && bad.empty(); ++i)
      if (o.c->received[i] != block[(checked + i) % block.size()]) bad = "difference at " + std::to_string(checked + i);
    checked += o.c->received.size();
    o.c->received.clear();
  }));
  CHECK(bad == "");
  std::printf("MTU 65520, host -> guest: up to %u bytes in flight\n", o.c->max_in_flight_in);
  CHECK(o.c->max_in_flight_in > 2 * kMiB);  // more than fixed 1 MiB buffers could hold
  CHECK(o.c->max_in_flight_in <= kDefaultMax);
}

TEST_CASE("libslirp buffers: slirp_set_tcp_buffer_max bounds the window and the buffers", "[libslirp][buffers]") {
  GuestConfig gc;
  gc.mtu = 65520;
  Guest g(gc);
  constexpr uint32_t kMax = 256 * 1024;
  slirp_set_tcp_buffer_max(g.slirp(), kMax);
  const Listener lst = listen_loopback(4096);
  Outbound o(g, lst, opts(65480, 7, 8 * kMiB));
  REQUIRE(o.c->peer_syn->wscale.has_value());
  CHECK(*o.c->peer_syn->wscale == 3);  // the smallest shift that covers 256 KiB
  const size_t held = guest_to_host(g, *o.c, o.fd, pattern(4 * kMiB, 5), 3 * kMiB);
  host_to_guest(g, *o.c, o.fd, pattern(4 * kMiB, 6));
  std::printf("buffer max 256 KiB: window up to %u, %zu held unread, up to %u in flight to the guest\n",
              o.c->max_peer_window, held, o.c->max_in_flight_in);
  CHECK(o.c->max_peer_window <= kMax);
  CHECK(o.c->max_peer_window >= kMax * 3 / 4);
  CHECK(o.c->max_in_flight_in <= kMax);
  CHECK(o.c->max_in_flight_in > 64 * 1024);
}

TEST_CASE("libslirp buffers: slirp_set_tcp_buffer_max clamps what it is given", "[libslirp][buffers]") {
  struct Case {
    size_t bytes;
    uint8_t shift;
    uint32_t max_window;
  };
  const Case k = GENERATE(Case{1, 0, 8192}, Case{SIZE_MAX, 14, 65535u << 14});
  INFO("slirp_set_tcp_buffer_max(" << k.bytes << ")");
  Guest g;
  slirp_set_tcp_buffer_max(g.slirp(), k.bytes);
  const Listener lst = listen_loopback();
  Outbound o(g, lst, opts(1460, 7, 1 * kMiB));
  REQUIRE(o.c->peer_syn->wscale.has_value());
  CHECK(*o.c->peer_syn->wscale == k.shift);
  guest_to_host(g, *o.c, o.fd, pattern(256 * 1024, 7), 0);
  host_to_guest(g, *o.c, o.fd, pattern(256 * 1024, 8));
  CHECK(o.c->max_peer_window <= k.max_window);
}

TEST_CASE("libslirp buffers: full-size segments at MTU 65520, never above the guest's MSS", "[libslirp][segments]") {
  const uint16_t mss = GENERATE(uint16_t{65480}, uint16_t{1460});
  const bool forward = GENERATE(false, true);
  INFO("guest MSS " << mss << (forward ? ", host port forward" : ", guest connects"));
  GuestConfig gc;
  gc.mtu = 65520;
  Guest g(gc);
  const Bytes data = pattern(4 * kMiB, 9);
  const Listener lst = listen_loopback();
  std::unique_ptr<Outbound> out;
  std::unique_ptr<GuestTcp> in;
  int fd = -1;
  GuestTcp* c = nullptr;
  if (forward) {
    GuestTcpOptions o = opts(mss, 7, 8 * kMiB);
    o.local_port = 8080;
    in = std::make_unique<GuestTcp>(g, o);
    const uint16_t hport = g.add_hostfwd_tcp(8080);
    REQUIRE(hport != 0);
    fd = connect_loopback(hport);
    REQUIRE(g.run_until([&] { return in->established(); }, 500));
    c = in.get();
  } else {
    out = std::make_unique<Outbound>(g, lst, opts(mss, 7, 8 * kMiB));
    fd = out->fd;
    c = out->c.get();
  }
  REQUIRE(c->peer_syn->mss.has_value());
  CHECK(*c->peer_syn->mss == 65480);  // what libslirp announces at MTU 65520
  host_to_guest(g, *c, fd, data);
  std::printf("MTU 65520, guest MSS %u%s: largest segment %zu\n", mss, forward ? " (port forward)" : "",
              c->max_payload);
  CHECK(c->max_payload == mss);
  CHECK(g.max_frame_len <= 65520 + 14);
  if (forward) close(fd);
}

TEST_CASE("libslirp buffers: full-size IPv6 segments at MTU 65520, never above the guest's MSS",
          "[libslirp][segments][ipv6]") {
  const uint16_t mss = GENERATE(uint16_t{65460}, uint16_t{1440});
  INFO("guest MSS " << mss);
  Guest6 g(65520);
  // A listener on the host's ::1 (what fd00::2 reaches).
  const int lfd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  REQUIRE(lfd >= 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  REQUIRE(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(lfd, 4) == 0);
  socklen_t al = sizeof a;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &al);
  g.connect(ntohs(a.sin6_port), mss);
  int fd = -1;
  for (int i = 0; i < 200 && (fd < 0 || !g.established); ++i) {
    g.step();
    if (fd < 0) fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  }
  REQUIRE(g.established);
  REQUIRE(fd >= 0);
  CHECK(g.peer_mss == 65460);  // what libslirp announces over IPv6 at MTU 65520
  CHECK(g.peer_shift == 7);
  const Bytes data = pattern(4 * kMiB, 13);
  size_t off = 0;
  for (int i = 0; i < 100000 && g.received.size() < data.size(); ++i) {
    write_some(fd, data, &off);
    g.step();
  }
  CHECK(compare_bytes(g.received, data) == "");
  std::printf("IPv6, MTU 65520, guest MSS %u: largest segment %zu\n", mss, g.max_payload);
  CHECK(g.max_payload == mss);
  CHECK(g.max_frame_len <= 65520 + 14);
  close(fd);
  close(lfd);
}

// Not run by default (tag [.]): CPU and memory per short connection, for the record.
TEST_CASE("libslirp buffers: cost of short connections", "[.][libslirp][buffers][bench]") {
  raise_fd_limit();
  const size_t mtu = GENERATE(1500, 65520);
  GuestConfig gc;
  gc.mtu = mtu;
  Guest g(gc);
  const Listener lst = listen_loopback();
  const Bytes reply = pattern(16 * 1024, 10);
  constexpr int kCycles = 1000;
  rusage r0{}, r1{};
  getrusage(RUSAGE_SELF, &r0);
  for (int i = 0; i < kCycles; ++i) {
    Outbound o(g, lst, opts(uint16_t(mtu - 40), 7, 4 * kMiB));
    size_t off = 0;
    write_some(o.fd, reply, &off);
    REQUIRE(off == reply.size());
    close(o.fd);
    o.fd = -1;
    REQUIRE(g.run_until([&] { return o.c->fin_received(); }, 1000));
    o.c->close();
    REQUIRE(g.run_until([&] { return o.c->all_acked(); }, 1000));
  }
  getrusage(RUSAGE_SELF, &r1);
  const auto us = [](const rusage& r) {
    return double(r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 + double(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
  };
  std::printf("MTU %zu: %d connect / 16 KiB reply / close cycles: %.1f us of CPU, %.1f page faults each (harness included)\n",
              mtu, kCycles, (us(r1) - us(r0)) / kCycles, double(r1.ru_minflt - r0.ru_minflt) / kCycles);
}

TEST_CASE("libslirp buffers: memory of idle connections", "[.][libslirp][buffers][bench]") {
  raise_fd_limit();
  Guest g;
  const Listener lst = listen_loopback();
  constexpr int kConns = 1000;
  const auto rss = [] {
    long pages = 0, resident = 0;
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (f) {
      if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
      std::fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
  };
  std::vector<std::unique_ptr<Outbound>> conns;
  conns.reserve(kConns);
  const long rss0 = rss();
  const size_t heap0 = heap_in_use();
  for (int i = 0; i < kConns; ++i) {
    conns.push_back(std::make_unique<Outbound>(g, lst, opts(1460, 7, 1 * kMiB)));
    // A little traffic each way, as a keep-alive connection would have had.
    Outbound& o = *conns.back();
    host_to_guest(g, *o.c, o.fd, pattern(2000, 11));
    guest_to_host(g, *o.c, o.fd, pattern(500, 12), 0);
    Bytes().swap(o.c->received);
  }
  const long rss1 = rss();
  const size_t heap1 = heap_in_use();
  for (int i = 0; i < 20; ++i) {
    g.advance_ms(100);
    g.step();
  }
  std::printf("%d connections: RSS +%.0f bytes each, heap +%.0f bytes each; after 2 s idle: RSS +%.0f, heap +%.0f\n",
              kConns, double(rss1 - rss0) / kConns, double(heap1 - heap0) / kConns, double(rss() - rss0) / kConns,
              double(heap_in_use() - heap0) / kConns);
}
