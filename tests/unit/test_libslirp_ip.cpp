// The bundled libslirp's IPv4 input path, driven through its public API by a fake guest
// (libslirp_guest.hpp: private network namespace, virtual clock, one Slirp per test):
//
//   - ip_reass() no longer crashes on a last fragment that opens a reassembly queue (patch "ip: fix
//     the crash on a last fragment that starts a reassembly queue"), and reassembles fragments that
//     arrive in any order; tests/fuzz/regressions/fuzz_slirp/* replay clean without FragmentGuard;
//   - reassembly memory is bounded (patch "ip: bound IPv4 reassembly memory"): at most 1024
//     datagrams and 4 MiB of mbufs, the oldest datagram dropped first, everything given back when
//     queues time out;
//   - CVE-2026-9539: TCP urgent data with an urgent pointer beyond the data sent makes 4.7.0 send
//     bytes it never received (and read past so_rcv's buffer); the host must get exactly the
//     guest's bytes.
//   - Under -fsanitize=undefined with -fno-sanitize-recover (the sanitizer build), 4.7.0 stops at
//     every IPv4 fragment (misaligned struct qlink; patch "ip: pack struct qlink ...") and every
//     ICMP error it sends (a signed shift; patch "icmp: fix a signed shift overflow ..."): every
//     fragment case below, and the port-unreachable one, fail there without those patches.
//
// About the crash: it is undefined behaviour (the reassembly queue head was accessed through a type
// it does not have), so whether an unpatched build crashes depends on how the compiler scheduled
// the code. Debian's libslirp0 4.7.0-1 does crash (SIGBUS); so does a gcc 12 build of 4.7.0 with
// -O2 -fschedule-insns (SIGSEGV). A plain gcc 12 or clang 14 -O2 build of 4.7.0 happens to work,
// and then only the "whatever their order" case and the sanitizer build catch the old code.
#include <catch2/catch.hpp>

#include "libslirp_guest.hpp"

#include <dirent.h>
#include <malloc.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_LIBSLIRP_IP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_LIBSLIRP_IP_ASAN 1
#endif
#endif
#ifdef TEST_LIBSLIRP_IP_ASAN
extern "C" size_t __sanitizer_get_current_allocated_bytes(void);  // sanitizer/allocator_interface.h
#endif

using namespace libslirp_guest;

namespace {

// ---- helpers --------------------------------------------------------------------------------------

// Bytes the process has allocated and not freed (libslirp allocates with g_malloc, i.e. malloc).
size_t heap_in_use() {
#ifdef TEST_LIBSLIRP_IP_ASAN
  return __sanitizer_get_current_allocated_bytes();
#else
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
#endif
}

// Byte-for-byte equality, as a bool: Catch would print both vectors on a mismatch.
bool same(const Bytes& a, const Bytes& b) { return a == b; }

// Growth of heap_in_use() since `before` (0 if it shrank).
size_t growth(size_t before) {
  const size_t now = heap_in_use();
  return now > before ? now - before : 0;
}

constexpr size_t kMaxReassBytes = 4 * 1024 * 1024;  // IPREASS_MAXBYTES in the patched ip.h
constexpr size_t kMaxReassQueues = 1024;            // IPREASS_MAXQUEUES

// A UDP socket on 127.0.0.1:<ephemeral port>: a guest datagram to kGateway:port reaches it.
struct UdpListener {
  int fd = -1;
  uint16_t port = 0;
  UdpListener() {
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr = in_addr_of(kLoopback);
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &al) != 0)
      std::abort();
    port = ntohs(a.sin_port);
  }
  ~UdpListener() { ::close(fd); }
  UdpListener(const UdpListener&) = delete;
  UdpListener& operator=(const UdpListener&) = delete;
  // Every datagram queued now.
  std::vector<Bytes> receive_all() const {
    std::vector<Bytes> r;
    std::vector<uint8_t> buf(70000);
    for (;;) {
      const ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0) return r;
      r.emplace_back(buf.begin(), buf.begin() + n);
    }
  }
};

// A whole UDP datagram (header with checksum + payload) from the guest to kGateway:dport.
Bytes udp_datagram(uint16_t sport, uint16_t dport, const Bytes& payload) {
  Bytes u(8 + payload.size());
  put16(&u[0], sport);
  put16(&u[2], dport);
  put16(&u[4], static_cast<uint16_t>(u.size()));
  std::copy(payload.begin(), payload.end(), u.begin() + 8);
  const uint16_t c = fold(sum16(u.data(), u.size(), pseudo_sum(kGuestIp, kGateway, IPPROTO_UDP, u.size())));
  put16(&u[6], c == 0 ? 0xffff : c);
  return u;
}

// The IPv4 fragment carrying l4[off, off + len) of datagram `id` (off a multiple of 8).
Bytes fragment(const Bytes& l4, uint16_t id, size_t off, size_t len, bool more, uint8_t proto = IPPROTO_UDP) {
  Ipv4Header h;
  h.proto = proto;
  h.id = id;
  h.frag = static_cast<uint16_t>((more ? 0x2000 : 0) | off / 8);
  return ipv4_frame(h, Bytes(l4.begin() + static_cast<long>(off), l4.begin() + static_cast<long>(off + len)));
}

// Splits l4 into fragments of at most `size` bytes (a multiple of 8), in order.
std::vector<Bytes> fragments(const Bytes& l4, uint16_t id, size_t size) {
  std::vector<Bytes> r;
  for (size_t off = 0; off < l4.size(); off += size) {
    const size_t len = std::min(size, l4.size() - off);
    r.push_back(fragment(l4, id, off, len, off + len < l4.size()));
  }
  return r;
}

// Feeds each frame followed by one poll round (a millisecond apart).
void feed(Guest& g, const std::vector<Bytes>& frames) {
  for (const Bytes& f : frames) {
    g.input(f);
    g.advance_ms(1);
    g.poll_once();
  }
}

// Lets virtual time pass, with a poll round every 100 ms (libslirp's slow timer runs every 500 ms
// and frees a reassembly queue 30 s after it was created).
void idle(Guest& g, int64_t ms) {
  for (int64_t t = 0; t < ms; t += 100) {
    g.advance_ms(100);
    g.poll_once();
  }
}

// ---- the crash ------------------------------------------------------------------------------------

TEST_CASE("ip: a last fragment that arrives first is held and its datagram reassembled", "[libslirp][ip]") {
  Guest g;
  UdpListener host;
  const Bytes payload = pattern(4000, 1);
  const Bytes dgram = udp_datagram(40000, host.port, payload);
  const std::vector<Bytes> f = fragments(dgram, 7, 1480);  // 1480, 1480, 1048 bytes
  REQUIRE(f.size() == 3);

  feed(g, {f[2]});  // 4.7.0 from Debian dies here (SIGSEGV/SIGBUS in ip_reass)
  CHECK(host.receive_all().empty());
  feed(g, {f[0], f[1]});
  const auto got = host.receive_all();
  REQUIRE(got.size() == 1);
  CHECK(same(got[0], payload));
}

TEST_CASE("ip: fragments are reassembled whatever their order", "[libslirp][ip]") {
  // 4.7.0 miscompiled: orders starting with the last fragment crash; (middle, last, first) is never
  // delivered (the completeness check missed a fragment inserted at the head of the queue).
  Guest g;
  UdpListener host;
  std::vector<size_t> order = {0, 1, 2};
  uint16_t id = 100;
  do {
    const Bytes payload = pattern(4000, id);
    const std::vector<Bytes> f = fragments(udp_datagram(40000, host.port, payload), id, 1480);
    INFO("order " << order[0] << order[1] << order[2]);
    feed(g, {f[order[0]], f[order[1]], f[order[2]]});
    const auto got = host.receive_all();
    REQUIRE(got.size() == 1);
    CHECK(same(got[0], payload));
    ++id;
  } while (std::next_permutation(order.begin(), order.end()));
}

TEST_CASE("ip: a stray last fragment after its datagram completed opens a queue safely", "[libslirp][ip]") {
  // The shape of tests/fuzz/regressions/fuzz_slirp/ip_reass_queue_reopened: the datagram completes
  // (its queue is freed), then a duplicate of its last fragment arrives and opens a new queue.
  Guest g;
  UdpListener host;
  const Bytes payload = pattern(2000, 3);
  const std::vector<Bytes> f = fragments(udp_datagram(40000, host.port, payload), 9, 1480);
  REQUIRE(f.size() == 2);
  feed(g, {f[0], f[1]});
  REQUIRE(host.receive_all().size() == 1);
  feed(g, {f[1], f[1]});  // a last fragment with no queue: the crash shape, twice
  feed(g, {f[0]});        // completes the reopened queue: delivered again, as a duplicate would be
  const auto got = host.receive_all();
  REQUIRE(got.size() == 1);
  CHECK(same(got[0], payload));
  idle(g, 31'000);
}

// The checked-in fuzz regressions, replayed the way tests/fuzz/fuzz_slirp.cpp runs an input with
// FUZZ_SLIRP_UNSAFE_FRAGMENTS=1 (straight into slirp_input, no FragmentGuard): a config byte, then
// frames, each a big-endian u16 length and that many bytes (0xffff or a length past the end: the
// rest of the input); slirp_input then one poll round per frame, 100 ms of virtual time apart; the
// config's disable-host-loopback (1), MTU (2-3) and disable-DNS (4) bits are honoured, the IPv6 bit
// (0) is not (the fake guest is IPv4 only; every regression so far is IPv4 with config 0).
void replay_fuzz_input(const Bytes& data) {
  REQUIRE(!data.empty());
  static constexpr size_t kMtus[] = {1500, 65520, 576, 9000};
  GuestConfig cfg;
  cfg.mtu = kMtus[(data[0] >> 2) & 3];
  cfg.disable_host_loopback = data[0] & 2;
  cfg.disable_dns = data[0] & 16;
  Guest g(cfg);
  size_t i = 1;
  while (i + 2 <= data.size()) {
    size_t len = size_t{data[i]} << 8 | data[i + 1];
    i += 2;
    if (len == 0xffff || len > data.size() - i) len = data.size() - i;
    g.input(Bytes(data.begin() + static_cast<long>(i), data.begin() + static_cast<long>(i + len)));
    i += len;
    g.advance_ms(100);
    g.poll_once();
  }
  g.advance_ms(1000);
  g.poll_once();
}

std::string regressions_dir() {
  if (const char* d = getenv("FUZZ_SLIRP_REGRESSIONS")) return d;
  std::string here = __FILE__;  // <repo>/tests/unit/test_libslirp_ip.cpp
  here.erase(here.find_last_of('/') + 1);
  return here + "../fuzz/regressions/fuzz_slirp";
}

TEST_CASE("ip: the fuzz_slirp regression inputs replay clean without FragmentGuard", "[libslirp][ip]") {
  const std::string dir = regressions_dir();
  DIR* d = opendir(dir.c_str());
  INFO("directory " << dir);
  REQUIRE(d != nullptr);
  std::vector<std::string> names;
  while (const dirent* e = readdir(d))
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());
  REQUIRE(std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.rfind("ip_reass", 0) == 0; }) >= 2);
  for (const std::string& n : names) {
    INFO("regression input " << n);
    std::ifstream in(dir + "/" + n, std::ios::binary);
    const Bytes data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    replay_fuzz_input(data);
  }
}

TEST_CASE("ip: a datagram to a closed host port gets an ICMP port unreachable", "[libslirp][ip]") {
  // The whole datagram is quoted back when it is small; libslirp builds the error in
  // icmp_forward_error(), where 4.7.0 shifts 0xf into an int's sign bit.
  Guest g;
  uint16_t closed_port = 0;
  {
    UdpListener probe;  // a port that was free a moment ago, closed again
    closed_port = probe.port;
  }
  const Bytes payload = pattern(100, 9);
  g.input(udp_frame(kGuestIp, 40000, kGateway, closed_port, payload));
  for (int i = 0; i < 5; ++i) g.step();
  bool unreachable = false;
  for (const Bytes& f : g.inbox) {
    const auto p = parse_ipv4(f);
    if (p && p->proto == IPPROTO_ICMP && p->payload.size() >= 8 && p->payload[0] == 3 && p->payload[1] == 3)
      unreachable = true;
  }
  CHECK(unreachable);
}

// ---- SLIRP_INPUT_CSUM_VALID ----------------------------------------------------------------------
// Patch "slirp: let the caller say a frame's transport checksum need not be verified": a frame
// given with the flag (slirpnetd: a virtio-net frame whose checksum the guest left partial) is
// taken whatever its TCP or UDP checksum field holds; without the flag a wrong checksum is dropped
// as before; fragments are verified after reassembly whatever their flags.

namespace {
// A SYN-ACK from libslirp in the inbox (a guest SYN was taken)?
bool synack_in(const Guest& g) {
  for (const Bytes& f : g.inbox) {
    const auto p = parse_ipv4(f);
    if (p && p->proto == IPPROTO_TCP && p->payload.size() >= 20 && (p->payload[13] & 0x12) == 0x12) return true;
  }
  return false;
}
}  // namespace

TEST_CASE("csum: a wrong UDP checksum is dropped, unless the frame says the checksum is valid", "[libslirp][csum]") {
  Guest g;
  UdpListener host;
  Bytes dgram = udp_datagram(40000, host.port, pattern(1000, 3));
  dgram[6] ^= 0x55;  // a checksum field that is not the sum (as a partial one is not)
  Ipv4Header h;
  h.proto = IPPROTO_UDP;
  h.id = 1;
  const Bytes frame = ipv4_frame(h, dgram);

  g.input(frame);
  g.step();
  CHECK(host.receive_all().empty());

  g.input(frame, SLIRP_INPUT_CSUM_VALID);
  g.step();
  const auto got = host.receive_all();
  REQUIRE(got.size() == 1);
  CHECK(got[0].size() == 1000);
}

TEST_CASE("csum: a TCP SYN with a wrong checksum is answered only when the frame says it is valid",
          "[libslirp][csum]") {
  Guest g;
  Listener lst = listen_loopback();
  TcpSegment syn;
  syn.sport = 40001;
  syn.dport = lst.port;
  syn.seq = 1000;
  syn.flags = kSyn;
  syn.options = opt_mss(1460);
  syn.bad_checksum = true;

  g.input(tcp_frame(syn));
  for (int i = 0; i < 5; ++i) g.step();
  CHECK_FALSE(synack_in(g));

  g.input(tcp_frame(syn), SLIRP_INPUT_CSUM_VALID);
  REQUIRE(g.run_until([&] { return synack_in(g); }, 200));
}

TEST_CASE("csum: fragments are verified after reassembly, whatever the frames say", "[libslirp][csum]") {
  Guest g;
  UdpListener host;
  Bytes dgram = udp_datagram(40000, host.port, pattern(4000, 4));
  dgram[6] ^= 0x55;
  for (const Bytes& f : fragments(dgram, 11, 1480)) {
    g.input(f, SLIRP_INPUT_CSUM_VALID);
    g.step();
  }
  CHECK(host.receive_all().empty());
  dgram[6] ^= 0x55;  // the same datagram, right this time: taken (the test can tell)
  for (const Bytes& f : fragments(dgram, 12, 1480)) {
    g.input(f, SLIRP_INPUT_CSUM_VALID);
    g.step();
  }
  CHECK(host.receive_all().size() == 1);
}

// ---- bounded reassembly ---------------------------------------------------------------------------

TEST_CASE("ip: a flood of unfinished datagrams holds bounded memory and drops the oldest first", "[libslirp][ip]") {
  Guest g;
  UdpListener host;
  // 4000 datagrams of 24 bytes (UDP header + 16), each missing its last 8 bytes.
  constexpr uint16_t kDatagrams = 4000;
  auto dgram = [&](uint16_t id) { return udp_datagram(40000, host.port, pattern(16, id)); };
  const size_t before = heap_in_use();
  size_t peak = 0;
  for (uint16_t id = 0; id < kDatagrams; ++id) {
    g.input(fragment(dgram(id), id, 0, 16, true));
    if (id % 64 == 0) {
      g.poll_once();
      peak = std::max(peak, growth(before));
    }
  }
  peak = std::max(peak, growth(before));
  INFO("heap growth " << peak << " bytes for " << kDatagrams << " unfinished datagrams");
  // 4.7.0: two MTU-sized mbufs per datagram kept for 30 s (~14 MB here).
  CHECK(peak <= kMaxReassBytes + 512 * 1024);

  // The newest datagram is still there and completes; the oldest was dropped to make room.
  g.input(fragment(dgram(kDatagrams - 1), kDatagrams - 1, 16, 8, false));
  g.input(fragment(dgram(0), 0, 16, 8, false));
  g.poll_once();
  const auto got = host.receive_all();
  REQUIRE(got.size() == 1);
  CHECK(same(got[0], pattern(16, kDatagrams - 1)));
  static_assert(kDatagrams > kMaxReassQueues, "the flood must exceed the queue limit");
}

TEST_CASE("ip: one datagram's tiny fragments hold bounded memory", "[libslirp][ip]") {
  // 8-byte fragments 16 bytes apart (never complete), each pinning a whole 9000-byte-MTU mbuf.
  GuestConfig cfg;
  cfg.mtu = 9000;
  Guest g(cfg);
  const Bytes l4 = pattern(65536, 5);
  const size_t before = heap_in_use();
  size_t peak = 0;
  for (size_t off = 0; off + 8 <= 65528; off += 16) {
    g.input(fragment(l4, 42, off, 8, true));
    if (off % 1024 == 0) peak = std::max(peak, growth(before));
  }
  peak = std::max(peak, growth(before));
  INFO("heap growth " << peak << " bytes for 4095 fragments of one datagram");
  CHECK(peak <= kMaxReassBytes + 512 * 1024);  // 4.7.0: ~37 MB
}

TEST_CASE("ip: at MTU 65520 a few hundred datagrams are bounded by bytes rather than count", "[libslirp][ip]") {
  GuestConfig cfg;
  cfg.mtu = 65520;
  Guest g(cfg);
  const size_t before = heap_in_use();
  size_t peak = 0;
  for (uint16_t id = 0; id < 300; ++id) {  // < kMaxReassQueues: only the byte limit applies
    g.input(fragment(pattern(64, id), id, 0, 8, true));
    peak = std::max(peak, growth(before));
  }
  INFO("heap growth " << peak << " bytes for 300 unfinished datagrams");
  CHECK(peak <= kMaxReassBytes + 512 * 1024);  // 4.7.0: ~40 MB (two 65 KiB mbufs each)
}

TEST_CASE("ip: timed-out queues give their memory and their share of the limit back", "[libslirp][ip]") {
  Guest g;
  UdpListener host;
  const size_t before = heap_in_use();
  // Three rounds of a flood past both limits, each left to time out: if the accounting leaked, the
  // limits would soon refuse every new datagram.
  for (int round = 0; round < 3; ++round) {
    for (uint16_t id = 0; id < 3000; ++id)
      g.input(fragment(udp_datagram(40000, host.port, pattern(16, id)), static_cast<uint16_t>(id + 3000 * round), 0, 16, true));
    idle(g, 31'000);
    INFO("round " << round << ": heap growth after the timeout " << growth(before));
    CHECK(growth(before) <= 256 * 1024);
  }
  const Bytes payload = pattern(4000, 77);
  feed(g, fragments(udp_datagram(40000, host.port, payload), 60000, 1480));
  const auto got = host.receive_all();
  REQUIRE(got.size() == 1);
  CHECK(same(got[0], payload));
}

// ---- CVE-2026-9539: urgent data beyond the data sent -------------------------------------------------

TEST_CASE("tcp: an urgent pointer beyond the data sent forwards exactly the guest's bytes", "[libslirp][tcp][cve]") {
  // 4.7.0 counts the urgent pointer's whole extent (up to so_rcv's size) as urgent bytes to send and
  // sends that many (at most 2048) from so_rcv, whatever it holds: stale bytes go to the host, sb_cc
  // underflows and later writes send the rest of the buffer. The data is first walked to ~1000 bytes
  // before the end of so_rcv's ring (131400 bytes at MSS 1460 in 4.7.0), so that the urgent send also
  // reads past the buffer's end (ASan: heap-buffer-overflow in send).
  Guest g;
  Listener lst = listen_loopback();
  const int one = 1;
  setsockopt(lst.fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof one);
  GuestTcp c(g, kGateway, lst.port);
  c.connect();
  REQUIRE(g.run_until([&] { return c.established(); }, 2000));
  int host = -1;
  REQUIRE(g.run_until([&] { return (host = host >= 0 ? host : lst.accept()) >= 0; }, 2000));
  setsockopt(host, SOL_SOCKET, SO_OOBINLINE, &one, sizeof one);

  Bytes sent, received;
  uint32_t seq = c.snd_nxt();
  auto send = [&](const Bytes& data, uint8_t flags, uint16_t urp) {
    TcpSegment s;
    s.seq = seq;
    s.ack = c.rcv_nxt();
    s.flags = static_cast<uint8_t>(kAck | flags);
    s.urp = urp;
    s.payload = data;
    c.send_raw(s);
    seq += static_cast<uint32_t>(data.size());
    sent.insert(sent.end(), data.begin(), data.end());
    for (int i = 0; i < 3; ++i) {
      g.step();
      read_available(host, received);
    }
  };
  // Walk so_rcv's pointers with well-formed urgent segments (each one's data all urgent).
  constexpr size_t kWalk = 131400 - 1000;
  while (sent.size() < kWalk) {
    const size_t n = std::min<size_t>(1460, kWalk - sent.size());
    send(pattern(n, static_cast<uint32_t>(sent.size())), kUrg | kPsh, static_cast<uint16_t>(n));
  }
  // 10 bytes, urgent pointer 2048 bytes ahead.
  send(pattern(10, 0xc0ffee), kUrg | kPsh, 2048);
  // More data after it, not urgent itself.
  send(pattern(100, 0xbeef), kPsh, 0);
  g.run_until([&] { return received.size() >= sent.size(); }, 500, [&] { read_available(host, received); });
  for (int i = 0; i < 20; ++i) {  // anything extra would show up now
    g.step();
    read_available(host, received);
  }
  INFO("guest sent " << sent.size() << " bytes, host received " << received.size());
  CHECK(received.size() == sent.size());
  CHECK(same(received, sent));
  CHECK_FALSE(c.reset());
  ::close(host);
}

}  // namespace
