// libslirp_guest.hpp: a fake guest for unit tests of libslirp itself (tests/unit/test_libslirp*.cpp).
//
// One thread, one Slirp, a virtual clock, nothing threaded: runs are reproducible. The pieces, each
// usable on its own:
//
//   Isolation   Including this header moves the test process, before main() and before any socket
//               exists, into new network and mount namespaces (plus a user namespace when not
//               root): its only network is a loopback of its own, and a resolv.conf naming 127.0.0.1
//               is bind-mounted over /etc/resolv.conf, so libslirp's DNS forwarder cannot reach the
//               real resolver. Any failure aborts: these tests never run un-isolated. (A guest SYN
//               or UDP datagram makes libslirp open real host sockets.) Static initializers in test
//               files must not open sockets: their order against this one is unspecified.
//   Frames      ipv4_frame() / tcp_frame() / udp_frame() build Ethernet + IPv4 (+ TCP with any raw
//               option bytes, or UDP) with correct checksums, or deliberately wrong ones;
//               parse_ipv4() / parse_tcp() take apart what libslirp sends (flags, seq/ack, raw
//               window, options, payload, checksum validity).
//   Guest       slirp_new() with src/slirp/slirp_thread.cpp's version-4 config for 10.0.2.0/24
//               (gateway 10.0.2.2, DNS 10.0.2.3, guest 10.0.2.100, host loopback reachable through
//               10.0.2.2), a virtual clock, captured send_packet output, automatic ARP replies, and
//               step(): the clock moves 1 ms (GuestConfig::step_ms), then one slirp_pollfds_fill /
//               poll(2) with timeout 0 / slirp_pollfds_poll round. libslirp runs its TCP timers from
//               that clock (fast timer after 2 ms, slow timer every 500 ms), so tests of retransmits,
//               persist or keepalive just step() through virtual seconds.
//   GuestTcp    a minimal TCP endpoint on the guest side: active or passive open, MSS and window
//               scale options (or raw option bytes, also on non-SYN segments), in-order receive
//               with an exact receive window (a reader that can pause: zero window), window-limited
//               send with go-back-N after a virtual second of no progress, and statistics (largest
//               window and segment seen, bytes in flight each way). Enough for bulk transfers over
//               the lossless virtual link; send_raw() sends any hand-made segment on a connection.
//   Host side   listen_loopback() / connect_loopback() / read_available() / write_some(): plain
//               non-blocking sockets inside the private namespace.
//
// Typical use:
//   libslirp_guest::Guest g;                       // slirp_new, ARP announced
//   auto lst = libslirp_guest::listen_loopback();  // host listener on 127.0.0.1:PORT
//   libslirp_guest::GuestTcp c(g, libslirp_guest::kGateway, lst.port, {/* mss, wscale, ... */});
//   c.connect();
//   g.run_until([&] { return c.established(); });
//
// IPv4 only for now (extend, do not change, the interface: other test files depend on it).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <libslirp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "slirp/poll_events.hpp"  // the slirp thread's SLIRP_POLL_* <-> poll(2) mapping

namespace libslirp_guest {

using Bytes = std::vector<uint8_t>;

// ---- isolation (runs before main) ---------------------------------------------------------------

namespace detail {

[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "libslirp_guest: %s: %s (refusing to run outside a private network namespace)\n", what,
               std::strerror(errno));
  std::abort();
}

inline void write_file(const char* path, const std::string& text) {
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) die(path);
  close(fd);
}

inline bool isolate_once() {
  static bool done = false;
  if (done) return true;
  // Created before unshare: an unmapped uid could not create it afterwards.
  char resolv[] = "/tmp/libslirp_guest_resolv.XXXXXX";
  const int fd = mkstemp(resolv);
  const char kResolv[] = "nameserver 127.0.0.1\n";
  if (fd < 0 || write(fd, kResolv, sizeof kResolv - 1) != sizeof kResolv - 1) die("resolv.conf copy");
  fchmod(fd, 0644);
  close(fd);

  const uid_t uid = geteuid();
  const gid_t gid = getegid();
  int flags = CLONE_NEWNET | CLONE_NEWNS;
  if (uid != 0) flags |= CLONE_NEWUSER;
  if (unshare(flags) != 0) die("unshare");
  if (uid != 0) {
    write_file("/proc/self/setgroups", "deny");
    write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1");
    write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) die("make / private");
  if (mount(resolv, "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0) die("bind-mount resolv.conf");
  unlink(resolv);

  const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0) die("lo flags");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) die("lo up");
  close(s);

  // Belt and braces: the namespace must hold nothing but lo.
  struct if_nameindex* names = if_nameindex();
  if (names == nullptr) die("if_nameindex");
  for (struct if_nameindex* n = names; n->if_index != 0; ++n)
    if (std::strcmp(n->if_name, "lo") != 0) {
      errno = EEXIST;
      die(n->if_name);
    }
  if_freenameindex(names);
  done = true;
  return true;
}

}  // namespace detail

// True once the process is isolated; initialised before main() in every test binary including this.
inline const bool kIsolated = detail::isolate_once();

// ---- addresses ----------------------------------------------------------------------------------

// IPv4 addresses are uint32_t in host byte order throughout.
inline uint32_t ip(const char* dotted) {
  in_addr a{};
  if (inet_pton(AF_INET, dotted, &a) != 1) std::abort();
  return ntohl(a.s_addr);
}
inline in_addr in_addr_of(uint32_t a) {
  in_addr r{};
  r.s_addr = htonl(a);
  return r;
}

inline const uint32_t kNetwork = ip("10.0.2.0");
inline const uint32_t kNetmask = ip("255.255.255.0");
inline const uint32_t kGateway = ip("10.0.2.2");  // libslirp; also the host's 127.0.0.1
inline const uint32_t kDns = ip("10.0.2.3");
inline const uint32_t kGuestIp = ip("10.0.2.100");
inline const uint32_t kLoopback = ip("127.0.0.1");
inline const uint8_t kGuestMac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
inline const uint8_t kSlirpMac[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};

// TCP flags.
enum : uint8_t { kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20 };

// Sequence-space comparisons.
inline bool seq_lt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
inline bool seq_le(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) <= 0; }

// ---- checksums and byte order -------------------------------------------------------------------

inline uint32_t sum16(const uint8_t* p, size_t n, uint32_t s = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) s += uint32_t{p[i]} << 8 | p[i + 1];
  if (n & 1) s += uint32_t{p[n - 1]} << 8;
  return s;
}
inline uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}
inline void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v) {
  put16(p, static_cast<uint16_t>(v >> 16));
  put16(p + 2, static_cast<uint16_t>(v));
}
inline uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t get32(const uint8_t* p) { return uint32_t{get16(p)} << 16 | get16(p + 2); }

// ---- building frames ----------------------------------------------------------------------------

// An IPv4 header. frag is the raw 16-bit flags+offset field (0x2000 = MF, offset in 8-byte units);
// total_len 0 means "20 + payload size"; ip_options (a multiple of 4 bytes) go after the header.
struct Ipv4Header {
  uint32_t src = kGuestIp;
  uint32_t dst = kGateway;
  uint8_t proto = IPPROTO_TCP;
  uint16_t id = 0;
  uint16_t frag = 0x4000;  // DF
  uint8_t ttl = 64;
  uint8_t tos = 0;
  uint16_t total_len = 0;
  Bytes ip_options;
  bool bad_checksum = false;
};

// Ethernet (guest MAC -> libslirp's MAC, type IPv4) + IPv4 header + payload, verbatim: the payload's
// own checksum is the caller's business (tcp_frame/udp_frame fill it in).
inline Bytes ipv4_frame(const Ipv4Header& h, const Bytes& payload) {
  const size_t hl = 20 + h.ip_options.size();
  Bytes f(14 + hl + payload.size());
  std::memcpy(&f[0], kSlirpMac, 6);
  std::memcpy(&f[6], kGuestMac, 6);
  put16(&f[12], 0x0800);
  uint8_t* p = &f[14];
  p[0] = static_cast<uint8_t>(0x40 | (hl / 4));
  p[1] = h.tos;
  put16(p + 2, h.total_len ? h.total_len : static_cast<uint16_t>(hl + payload.size()));
  put16(p + 4, h.id);
  put16(p + 6, h.frag);
  p[8] = h.ttl;
  p[9] = h.proto;
  put32(p + 12, h.src);
  put32(p + 16, h.dst);
  if (!h.ip_options.empty()) std::memcpy(p + 20, h.ip_options.data(), h.ip_options.size());
  put16(p + 10, static_cast<uint16_t>(fold(sum16(p, hl)) ^ (h.bad_checksum ? 0x5555 : 0)));
  if (!payload.empty()) std::memcpy(p + hl, payload.data(), payload.size());
  return f;
}

// Pseudo-header sum for a transport checksum.
inline uint32_t pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, size_t l4len) {
  uint8_t b[8];
  put32(b, src);
  put32(b + 4, dst);
  return sum16(b, 8) + proto + static_cast<uint32_t>(l4len);
}

// A TCP segment. options are raw bytes (padded with zeros, i.e. EOL, to a multiple of 4 unless
// data_offset is given: then the header length field says data_offset*4 whatever the bytes are).
struct TcpSegment {
  uint32_t src = kGuestIp;
  uint32_t dst = kGateway;
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t flags = 0;
  uint16_t win = 65535;  // raw 16-bit field
  uint16_t urp = 0;
  Bytes options;
  Bytes payload;
  std::optional<uint8_t> data_offset;  // override the header length field (in 32-bit words)
  bool bad_checksum = false;
  uint16_t ip_id = 0;
};

// Option builders (raw bytes, concatenate them).
inline Bytes opt_mss(uint16_t mss) { return {2, 4, static_cast<uint8_t>(mss >> 8), static_cast<uint8_t>(mss)}; }
inline Bytes opt_wscale(uint8_t shift) { return {1, 3, 3, shift}; }  // NOP + window scale
inline Bytes opt_sack_permitted() { return {1, 1, 4, 2}; }            // NOP NOP + SACK permitted
inline Bytes opt_timestamps(uint32_t val, uint32_t ecr) {             // NOP NOP + timestamps
  Bytes b = {1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0};
  put32(&b[4], val);
  put32(&b[8], ecr);
  return b;
}
inline Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline Bytes tcp_bytes(const TcpSegment& s) {
  Bytes opts = s.options;
  while (opts.size() % 4) opts.push_back(0);
  const size_t hl = 20 + opts.size();
  Bytes t(hl + s.payload.size());
  put16(&t[0], s.sport);
  put16(&t[2], s.dport);
  put32(&t[4], s.seq);
  put32(&t[8], s.ack);
  t[12] = static_cast<uint8_t>((s.data_offset ? *s.data_offset : hl / 4) << 4);
  t[13] = s.flags;
  put16(&t[14], s.win);
  put16(&t[18], s.urp);
  if (!opts.empty()) std::memcpy(&t[20], opts.data(), opts.size());
  if (!s.payload.empty()) std::memcpy(&t[hl], s.payload.data(), s.payload.size());
  const uint16_t c = fold(sum16(t.data(), t.size(), pseudo_sum(s.src, s.dst, IPPROTO_TCP, t.size())));
  put16(&t[16], static_cast<uint16_t>(c ^ (s.bad_checksum ? 0x5555 : 0)));
  return t;
}

inline Bytes tcp_frame(const TcpSegment& s) {
  Ipv4Header h;
  h.src = s.src;
  h.dst = s.dst;
  h.proto = IPPROTO_TCP;
  h.id = s.ip_id;
  return ipv4_frame(h, tcp_bytes(s));
}

inline Bytes udp_frame(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, const Bytes& payload) {
  Bytes u(8 + payload.size());
  put16(&u[0], sport);
  put16(&u[2], dport);
  put16(&u[4], static_cast<uint16_t>(u.size()));
  if (!payload.empty()) std::memcpy(&u[8], payload.data(), payload.size());
  const uint16_t c = fold(sum16(u.data(), u.size(), pseudo_sum(src, dst, IPPROTO_UDP, u.size())));
  put16(&u[6], c == 0 ? 0xffff : c);
  Ipv4Header h;
  h.src = src;
  h.dst = dst;
  h.proto = IPPROTO_UDP;
  return ipv4_frame(h, u);
}

// ---- parsing what libslirp sends ------------------------------------------------------------------

struct Ipv4Packet {
  uint32_t src = 0, dst = 0;
  uint8_t proto = 0;
  uint16_t id = 0, frag = 0, total_len = 0;
  uint8_t ttl = 0;
  bool checksum_ok = false;
  Bytes payload;  // bytes after the IP header, up to total_len
};

inline std::optional<Ipv4Packet> parse_ipv4(const Bytes& f) {
  if (f.size() < 34 || get16(&f[12]) != 0x0800) return std::nullopt;
  const uint8_t* p = &f[14];
  const size_t n = f.size() - 14;
  const size_t hl = (p[0] & 0xf) * 4u;
  if ((p[0] >> 4) != 4 || hl < 20 || hl > n) return std::nullopt;
  Ipv4Packet r;
  r.total_len = get16(p + 2);
  if (r.total_len < hl || r.total_len > n) return std::nullopt;
  r.id = get16(p + 4);
  r.frag = get16(p + 6);
  r.ttl = p[8];
  r.proto = p[9];
  r.src = get32(p + 12);
  r.dst = get32(p + 16);
  r.checksum_ok = fold(sum16(p, hl)) == 0;
  r.payload.assign(p + hl, p + r.total_len);
  return r;
}

struct TcpPacket {
  uint32_t src = 0, dst = 0;
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  uint16_t win = 0;  // raw 16-bit field, unscaled
  uint16_t urp = 0;
  Bytes options;  // raw option bytes
  Bytes payload;
  size_t payload_len = 0;  // kept when payload is dropped (GuestTcp's log)
  bool checksum_ok = false;
  // Parsed options (last occurrence wins; malformed option area -> options_ok false).
  std::optional<uint16_t> mss;
  std::optional<uint8_t> wscale;
  bool sack_permitted = false;
  bool timestamps = false;
  bool options_ok = true;

  bool has(uint8_t f) const { return (flags & f) == f; }
};

inline void parse_tcp_options(TcpPacket& t) {
  const Bytes& o = t.options;
  for (size_t i = 0; i < o.size();) {
    const uint8_t kind = o[i];
    if (kind == 0) break;
    if (kind == 1) {
      ++i;
      continue;
    }
    if (i + 1 >= o.size() || o[i + 1] < 2 || i + o[i + 1] > o.size()) {
      t.options_ok = false;
      break;
    }
    const uint8_t len = o[i + 1];
    if (kind == 2 && len == 4) t.mss = get16(&o[i + 2]);
    if (kind == 3 && len == 3) t.wscale = o[i + 2];
    if (kind == 4 && len == 2) t.sack_permitted = true;
    if (kind == 8 && len == 10) t.timestamps = true;
    i += len;
  }
}

inline std::optional<TcpPacket> parse_tcp(const Bytes& frame) {
  auto ip4 = parse_ipv4(frame);
  if (!ip4 || ip4->proto != IPPROTO_TCP || (ip4->frag & 0x3fff) != 0) return std::nullopt;
  const Bytes& t = ip4->payload;
  if (t.size() < 20) return std::nullopt;
  const size_t hl = (t[12] >> 4) * 4u;
  if (hl < 20 || hl > t.size()) return std::nullopt;
  TcpPacket r;
  r.src = ip4->src;
  r.dst = ip4->dst;
  r.sport = get16(&t[0]);
  r.dport = get16(&t[2]);
  r.seq = get32(&t[4]);
  r.ack = get32(&t[8]);
  r.flags = t[13];
  r.win = get16(&t[14]);
  r.urp = get16(&t[18]);
  r.options.assign(t.begin() + 20, t.begin() + static_cast<long>(hl));
  r.payload.assign(t.begin() + static_cast<long>(hl), t.end());
  r.payload_len = r.payload.size();
  r.checksum_ok = ip4->checksum_ok &&
                  fold(sum16(t.data(), t.size(), pseudo_sum(r.src, r.dst, IPPROTO_TCP, t.size()))) == 0;
  parse_tcp_options(r);
  return r;
}

// ---- the libslirp instance ----------------------------------------------------------------------

class GuestTcp;

struct GuestConfig {
  size_t mtu = 1500;
  bool disable_host_loopback = false;
  bool disable_dns = false;
  int64_t step_ms = 1;  // virtual time added by each step()
};

// One Slirp with the daemon's configuration, driven by hand. Frames libslirp sends are captured;
// step() hands TCP ones to the GuestTcp connections they belong to and keeps the rest in inbox.
class Guest {
 public:
  explicit Guest(GuestConfig cfg = {}) : cfg_(cfg) {
    (void)kIsolated;
    SlirpConfig c{};
    c.version = 4;
    c.restricted = 0;
    c.in_enabled = true;
    c.vnetwork = in_addr_of(kNetwork);
    c.vnetmask = in_addr_of(kNetmask);
    c.vhost = in_addr_of(kGateway);
    c.vdhcp_start = in_addr_of(ip("10.0.2.15"));
    c.vnameserver = in_addr_of(kDns);
    c.in6_enabled = false;
    inet_pton(AF_INET6, "fd00::", &c.vprefix_addr6);
    c.vprefix_len = 64;
    inet_pton(AF_INET6, "fd00::2", &c.vhost6);
    inet_pton(AF_INET6, "fd00::3", &c.vnameserver6);
    c.if_mtu = cfg_.mtu;
    c.if_mru = cfg_.mtu;
    c.disable_host_loopback = cfg_.disable_host_loopback;
    c.enable_emu = false;
    c.disable_dns = cfg_.disable_dns;
    c.disable_dhcp = false;
    static const SlirpCb kCallbacks = {
        cb_send_packet, cb_guest_error,       cb_clock_get_ns,       cb_timer_new,
        cb_timer_free,  cb_timer_mod,         cb_register_poll_fd,   cb_unregister_poll_fd,
        cb_notify,      cb_init_completed,    cb_timer_new_opaque,
    };
    slirp_ = slirp_new(&c, &kCallbacks, this);
    if (slirp_ == nullptr) std::abort();
    announce(kGuestIp);
  }
  ~Guest() {
    slirp_cleanup(slirp_);
    for (Timer* t : timers_) delete t;
  }
  Guest(const Guest&) = delete;
  Guest& operator=(const Guest&) = delete;

  Slirp* slirp() const { return slirp_; }
  const GuestConfig& config() const { return cfg_; }

  // The virtual clock (ns). advance() moves it and fires due timers; step() advances by step_ms.
  int64_t now_ns() const { return now_ns_; }
  int64_t now_ms() const { return now_ns_ / 1'000'000; }
  void advance_ms(int64_t ms) {
    now_ns_ += ms * 1'000'000;
    fire_timers();
  }

  // Feeds one Ethernet frame to libslirp (slirp_input). Frames it sends meanwhile are captured.
  void input(const Bytes& frame) { slirp_input(slirp_, frame.data(), static_cast<int>(frame.size())); }
#ifdef SLIRP_INPUT_CSUM_VALID  // the bundled libslirp (our patch); the distribution's has no flags
  // The same with slirp_input_flags() (SLIRP_INPUT_CSUM_VALID...).
  void input(const Bytes& frame, int flags) {
    slirp_input_flags(slirp_, frame.data(), static_cast<int>(frame.size()), flags);
  }
#endif

  // Makes libslirp learn ip -> kGuestMac (an ARP request from ip for the gateway), so that it can
  // send to ip without holding packets for ARP resolution. Done for kGuestIp at construction.
  void announce(uint32_t guest_ip) {
    input(arp_frame(1, kGuestMac, guest_ip, nullptr, kGateway));
    poll_once();
    dispatch();
  }

  // One round: advance the clock by step_ms, slirp_pollfds_fill, poll(2) with timeout_ms (0: never
  // blocks), slirp_pollfds_poll; then dispatch captured frames (ARP requests are answered, TCP goes
  // to its GuestTcp, the rest to inbox) and let every GuestTcp send what it may.
  void step(int timeout_ms = 0);

  // step() until done() is true or max_steps rounds have run; returns done(). each, if given, runs
  // after every round (e.g. to read/write the host side).
  bool run_until(const std::function<bool()>& done, int max_steps = 100000,
                 const std::function<void()>& each = nullptr) {
    for (int i = 0; i < max_steps; ++i) {
      if (done()) return true;
      step();
      if (each) each();
    }
    return done();
  }

  // Frames libslirp sent that no GuestTcp claimed (oldest first). Tests may inspect and clear it.
  std::deque<Bytes> inbox;
  // Every frame libslirp sent, if record_all is true (off by default: bulk transfers are big).
  bool record_all = false;
  std::vector<Bytes> all_sent;
  // Counters.
  size_t frames_sent = 0;     // by libslirp to the guest
  size_t max_frame_len = 0;   // largest frame libslirp sent
  size_t guest_errors = 0;    // guest_error callbacks
  std::string last_guest_error;

  // TCP segments in inbox, parsed (does not consume them).
  std::vector<TcpPacket> inbox_tcp() const {
    std::vector<TcpPacket> r;
    for (const Bytes& f : inbox)
      if (auto t = parse_tcp(f)) r.push_back(std::move(*t));
    return r;
  }

  // slirp_add_hostfwd for TCP on 127.0.0.1:<free port> -> guest_ip:guest_port; returns the host
  // port (0 on failure). Connect to it with connect_loopback(); libslirp then SYNs the guest.
  uint16_t add_hostfwd_tcp(uint16_t guest_port, uint32_t guest_ip = kGuestIp);

  // Used by GuestTcp.
  void attach(GuestTcp* c) { conns_.push_back(c); }
  void detach(GuestTcp* c) { conns_.erase(std::remove(conns_.begin(), conns_.end(), c), conns_.end()); }
  uint16_t next_ip_id() { return ip_id_++; }

  // Runs libslirp's poll round only (no dispatch, no clock change).
  void poll_once(int timeout_ms = 0) {
    pfds_.clear();
    uint32_t timeout = UINT32_MAX;
    slirp_pollfds_fill(slirp_, &timeout, cb_add_poll, this);
    const int n = poll(pfds_.data(), pfds_.size(), timeout_ms);
    slirp_pollfds_poll(slirp_, n < 0, cb_get_revents, this);
  }
  // Hands captured frames out (see step()).
  void dispatch();

  static Bytes arp_frame(uint16_t op, const uint8_t* sha, uint32_t sip, const uint8_t* tha, uint32_t tip) {
    Bytes f(42);
    const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t zero[6] = {};
    std::memcpy(&f[0], op == 1 ? bcast : (tha ? tha : zero), 6);
    std::memcpy(&f[6], sha, 6);
    put16(&f[12], 0x0806);
    put16(&f[14], 1);
    put16(&f[16], 0x0800);
    f[18] = 6;
    f[19] = 4;
    put16(&f[20], op);
    std::memcpy(&f[22], sha, 6);
    put32(&f[28], sip);
    std::memcpy(&f[32], tha ? tha : zero, 6);
    put32(&f[38], tip);
    return f;
  }

 private:
  struct Timer {
    SlirpTimerId id;
    void* cb_opaque;
    SlirpTimerCb cb;
    int64_t expire_ms;
  };

  void fire_timers() {
    for (Timer* t : std::vector<Timer*>(timers_))
      if (t->expire_ms >= 0 && t->expire_ms <= now_ms()) {
        t->expire_ms = -1;
        if (t->cb) t->cb(t->cb_opaque);
        else slirp_handle_timer(slirp_, t->id, t->cb_opaque);
      }
  }


  static ssize_t cb_send_packet(const void* buf, size_t len, void* opaque) {
    auto* g = static_cast<Guest*>(opaque);
    const auto* p = static_cast<const uint8_t*>(buf);
    g->captured_.emplace_back(p, p + len);
    if (g->record_all) g->all_sent.emplace_back(p, p + len);
    ++g->frames_sent;
    g->max_frame_len = std::max(g->max_frame_len, len);
    return static_cast<ssize_t>(len);
  }
  static void cb_guest_error(const char* msg, void* opaque) {
    auto* g = static_cast<Guest*>(opaque);
    ++g->guest_errors;
    g->last_guest_error = msg;
  }
  static int64_t cb_clock_get_ns(void* opaque) { return static_cast<Guest*>(opaque)->now_ns_; }
  static void* cb_timer_new(SlirpTimerCb cb, void* cb_opaque, void* opaque) {
    auto* g = static_cast<Guest*>(opaque);
    g->timers_.push_back(new Timer{SLIRP_TIMER_RA, cb_opaque, cb, -1});
    return g->timers_.back();
  }
  static void* cb_timer_new_opaque(SlirpTimerId id, void* cb_opaque, void* opaque) {
    auto* g = static_cast<Guest*>(opaque);
    g->timers_.push_back(new Timer{id, cb_opaque, nullptr, -1});
    return g->timers_.back();
  }
  static void cb_timer_free(void* timer, void* opaque) {
    auto& v = static_cast<Guest*>(opaque)->timers_;
    auto it = std::find(v.begin(), v.end(), static_cast<Timer*>(timer));
    if (it != v.end()) {
      delete *it;
      v.erase(it);
    }
  }
  static void cb_timer_mod(void* timer, int64_t expire_ms, void*) { static_cast<Timer*>(timer)->expire_ms = expire_ms; }
  static void cb_register_poll_fd(int, void*) {}
  static void cb_unregister_poll_fd(int, void*) {}
  static void cb_notify(void*) {}
  static void cb_init_completed(Slirp* s, void* opaque) { static_cast<Guest*>(opaque)->slirp_ = s; }
  static int cb_add_poll(int fd, int events, void* opaque) {
    auto* g = static_cast<Guest*>(opaque);
    g->pfds_.push_back({fd, slirpnetd::slirp::to_poll_events(events), 0});
    return static_cast<int>(g->pfds_.size() - 1);
  }
  static int cb_get_revents(int idx, void* opaque) {
    auto* g = static_cast<Guest*>(opaque);
    if (idx < 0 || static_cast<size_t>(idx) >= g->pfds_.size()) return 0;
    return slirpnetd::slirp::to_slirp_events(g->pfds_[static_cast<size_t>(idx)].revents);
  }

  GuestConfig cfg_;
  Slirp* slirp_ = nullptr;
  int64_t now_ns_ = 1'000'000'000;
  std::vector<pollfd> pfds_;
  std::vector<Timer*> timers_;
  std::vector<Bytes> captured_;
  std::vector<GuestTcp*> conns_;
  uint16_t ip_id_ = 1;
};

// ---- a guest-side TCP endpoint ------------------------------------------------------------------

struct GuestTcpOptions {
  uint16_t local_port = 0;            // 0: picked from a counter (active open)
  uint32_t local_ip = kGuestIp;
  std::optional<uint16_t> mss = 1460;  // MSS option in our SYN / SYN-ACK; also caps what we send
  std::optional<uint8_t> wscale;       // window-scale option offered (shift), none if empty
  uint32_t rcv_window = 65535;         // bytes we are willing to have in flight towards us
  std::optional<Bytes> syn_options;    // raw options for our SYN/SYN-ACK, replacing mss/wscale ones
  Bytes ack_options;                   // raw options added to every non-SYN segment we send
  uint32_t iss = 1'000'000;
  bool keep_log = true;                // keep every received segment (payload dropped) in log
  int64_t rto_ms = 1000;               // go back to snd_una after this long without progress
};

// A minimal TCP endpoint living in the guest. Attached to a Guest, which hands it every segment for
// its (local port, remote ip, remote port). Data received in order is appended to received (and
// acknowledged once per step); data queued with send() goes out as the peer's window allows.
class GuestTcp {
 public:
  // Active open to remote_ip:remote_port (call connect()).
  GuestTcp(Guest& g, uint32_t remote_ip, uint16_t remote_port, GuestTcpOptions o = {})
      : g_(g), o_(std::move(o)), remote_ip_(remote_ip), remote_port_(remote_port) {
    static uint16_t next_port = 40000;
    if (o_.local_port == 0) o_.local_port = next_port++;
    g_.attach(this);
  }
  // Passive open: waits for a SYN to local_port (from libslirp, e.g. a host forward).
  GuestTcp(Guest& g, GuestTcpOptions o) : g_(g), o_(std::move(o)), listening_(true) { g_.attach(this); }
  ~GuestTcp() { g_.detach(this); }
  GuestTcp(const GuestTcp&) = delete;
  GuestTcp& operator=(const GuestTcp&) = delete;

  // Sends our SYN.
  void connect() {
    syn_sent_ = true;
    snd_una_ = o_.iss;
    snd_nxt_ = o_.iss + 1;
    send_segment(o_.iss, kSyn, syn_options(true), {});
  }

  // Queues bytes to send; close() queues a FIN after them.
  void send(const Bytes& data) { out_.insert(out_.end(), data.begin(), data.end()); }
  void close() { fin_wanted_ = true; }
  // Sends a RST now (libslirp drops the connection and frees its buffers); nothing is sent after.
  void abort() {
    TcpSegment s;
    s.seq = snd_nxt_;
    s.flags = kRst;
    s.win = 0;
    send_raw(s);
    reset_ = true;
  }
  // Sends a raw segment on this connection with the right addresses and ports (seq/ack/flags are
  // the caller's). Useful for malformed or out-of-order segments.
  void send_raw(TcpSegment s) {
    s.src = o_.local_ip;
    s.dst = remote_ip_;
    s.sport = o_.local_port;
    s.dport = remote_port_;
    s.ip_id = g_.next_ip_id();
    g_.input(tcp_frame(s));
  }

  bool established() const { return established_; }
  bool reset() const { return reset_; }
  bool fin_received() const { return fin_received_; }
  bool all_acked() const { return snd_una_ == snd_nxt_ && out_acked() == out_.size(); }
  uint16_t local_port() const { return o_.local_port; }
  uint32_t remote_ip() const { return remote_ip_; }
  uint16_t remote_port() const { return remote_port_; }

  // Next sequence numbers, for send_raw().
  uint32_t snd_nxt() const { return snd_nxt_; }
  uint32_t rcv_nxt() const { return rcv_nxt_; }
  uint32_t snd_una() const { return snd_una_; }

  // What the handshake negotiated: the peer's SYN (or SYN-ACK) as received.
  std::optional<TcpPacket> peer_syn;
  uint8_t snd_scale = 0;  // shift applied to the peer's window fields
  uint8_t rcv_scale = 0;  // shift applied to our window fields

  // The application reading our receive buffer. While reading is false, data received is held:
  // the window we advertise shrinks by it, down to zero, and data beyond the window is dropped
  // (counted in beyond_window_in). resume() reads it all and sends a window update.
  bool reading = true;
  void resume() {
    reading = true;
    held_ = 0;
    ack_due_ = true;
  }

  Bytes received;                  // in-order data from the peer
  std::vector<TcpPacket> log;      // every segment received (payload dropped), if keep_log
  uint32_t peer_window = 0;        // latest, scaled
  uint32_t max_peer_window = 0;    // largest seen, scaled
  uint32_t max_raw_window = 0;     // largest raw 16-bit window field seen (non-SYN)
  size_t max_payload = 0;          // largest segment payload received
  uint32_t max_in_flight_out = 0;  // most bytes we had sent and not yet had acknowledged
  uint32_t max_in_flight_in = 0;   // most bytes the peer had sent beyond our last ACK
  size_t segments_in = 0, segments_out = 0, out_of_order_in = 0;
  size_t beyond_window_in = 0;     // data segments reaching past the window we advertised
  bool saw_zero_window = false;    // the peer advertised a zero window (after the handshake)

  // Called by Guest::dispatch for each segment of this connection.
  bool matches(const TcpPacket& t) const {
    if (t.dst != o_.local_ip || t.dport != o_.local_port) return false;
    if (listening_ && !bound_) return t.has(kSyn) && !t.has(kAck);
    return t.src == remote_ip_ && t.sport == remote_port_;
  }
  void on_segment(TcpPacket t) {
    ++segments_in;
    if (t.has(kRst)) {
      reset_ = true;
      record(t);
      return;
    }
    if (listening_ && !bound_) {  // a SYN from libslirp
      bound_ = true;
      remote_ip_ = t.src;
      remote_port_ = t.sport;
      take_syn(t);
      snd_una_ = o_.iss;
      snd_nxt_ = o_.iss + 1;
      send_segment(o_.iss, kSyn | kAck, syn_options(t.wscale.has_value()), {});
      record(t);
      return;
    }
    if (syn_sent_ && !established_ && t.has(kSyn | kAck)) {
      take_syn(t);
      if (t.ack == o_.iss + 1) snd_una_ = t.ack;
      established_ = true;
      ack_due_ = true;
      record(t);
      return;
    }
    if (t.has(kSyn)) {  // a retransmitted SYN(-ACK): acknowledge again
      ack_due_ = true;
      record(t);
      return;
    }
    if (listening_ && !established_ && t.has(kAck) && t.ack == o_.iss + 1) established_ = true;
    if (t.has(kAck)) {
      if (seq_lt(snd_una_, t.ack) && seq_le(t.ack, snd_nxt_)) {
        snd_una_ = t.ack;
        last_progress_ms_ = g_.now_ms();
      }
      peer_window = uint32_t{t.win} << snd_scale;
      if (peer_window == 0) saw_zero_window = true;
      max_peer_window = std::max(max_peer_window, peer_window);
      max_raw_window = std::max<uint32_t>(max_raw_window, t.win);
    }
    const size_t len = t.payload.size();
    max_payload = std::max(max_payload, len);
    if (len > 0 || t.has(kFin)) {
      const uint32_t end = t.seq + static_cast<uint32_t>(len);
      max_in_flight_in = std::max(max_in_flight_in, end - last_ack_sent_);
      // (A 1-byte segment at the right edge is a zero-window probe: allowed.)
      if (len > 0 && seq_lt(right_edge_, end) && !(len == 1 && t.seq == right_edge_)) ++beyond_window_in;
      if (seq_le(t.seq, rcv_nxt_) && seq_lt(rcv_nxt_, end)) {
        const size_t skip = rcv_nxt_ - t.seq;
        // Take what fits in the window we advertised; a real receiver drops the rest.
        const uint32_t room = seq_lt(rcv_nxt_, right_edge_) ? right_edge_ - rcv_nxt_ : 0;
        const size_t take = std::min<size_t>(len - skip, room);
        received.insert(received.end(), t.payload.begin() + static_cast<long>(skip),
                        t.payload.begin() + static_cast<long>(skip + take));
        rcv_nxt_ += static_cast<uint32_t>(take);
        if (!reading) held_ += static_cast<uint32_t>(take);
      } else if (len > 0 && seq_lt(rcv_nxt_, t.seq)) {
        ++out_of_order_in;
      }
      if (t.has(kFin) && rcv_nxt_ == end && !fin_received_) {  // (FIN beyond the window: dropped)
        fin_received_ = true;
        rcv_nxt_ = end + 1;
      }
      ack_due_ = true;
    }
    record(t);
  }

  // Called by Guest::step after dispatch: sends data the window allows, a FIN, and a pending ACK.
  void pump() {
    if (!established_ || reset_) return;
    if (snd_una_ != snd_nxt_ && g_.now_ms() - last_progress_ms_ >= o_.rto_ms) {
      snd_nxt_ = snd_una_;  // go back N (our FIN is resent too)
      fin_sent_ = false;
      last_progress_ms_ = g_.now_ms();
    }
    const uint32_t max_seg = std::min<uint32_t>(o_.mss.value_or(536), peer_mss_);
    for (;;) {
      const size_t off = static_cast<size_t>(snd_nxt_ - data_seq0());
      if (off >= out_.size()) break;
      const uint32_t in_flight = snd_nxt_ - snd_una_;
      if (in_flight >= peer_window) break;
      const uint32_t n = std::min<uint32_t>({max_seg, peer_window - in_flight, static_cast<uint32_t>(out_.size() - off)});
      Bytes chunk(out_.begin() + static_cast<long>(off), out_.begin() + static_cast<long>(off + n));
      if (snd_una_ == snd_nxt_) last_progress_ms_ = g_.now_ms();
      send_segment(snd_nxt_, kAck | kPsh, {}, chunk);
      snd_nxt_ += n;
      max_in_flight_out = std::max(max_in_flight_out, snd_nxt_ - snd_una_);
    }
    if (fin_wanted_ && !fin_sent_ && snd_nxt_ - data_seq0() == out_.size()) {
      if (snd_una_ == snd_nxt_) last_progress_ms_ = g_.now_ms();
      send_segment(snd_nxt_, kAck | kFin, {}, {});
      ++snd_nxt_;
      fin_sent_ = true;
    }
    if (ack_due_) send_segment(snd_nxt_, kAck, {}, {});
  }

  // The window field we advertise now (already shifted).
  uint16_t window_field() const {
    const uint32_t avail = o_.rcv_window > held_ ? o_.rcv_window - held_ : 0;
    const uint32_t w = std::min<uint32_t>(avail, 65535u << rcv_scale);
    return static_cast<uint16_t>(w >> rcv_scale);
  }

 private:
  uint32_t data_seq0() const { return o_.iss + 1; }
  size_t out_acked() const {
    const uint32_t a = snd_una_ - data_seq0();
    return std::min<size_t>(a, out_.size());
  }
  Bytes syn_options(bool peer_offered_wscale) const {
    if (o_.syn_options) return *o_.syn_options;
    Bytes b;
    if (o_.mss) b = b + opt_mss(*o_.mss);
    if (o_.wscale && (!listening_ || peer_offered_wscale)) b = b + opt_wscale(*o_.wscale);
    return b;
  }
  void take_syn(const TcpPacket& t) {
    peer_syn = t;
    rcv_nxt_ = t.seq + 1;
    right_edge_ = rcv_nxt_;
    peer_mss_ = t.mss.value_or(536);
    const bool we_offer = o_.syn_options ? false : o_.wscale.has_value();
    if (o_.syn_options) {  // raw options: decide from what we actually sent
      TcpPacket mine;
      mine.options = *o_.syn_options;
      parse_tcp_options(mine);
      if (mine.wscale && t.wscale) {
        snd_scale = std::min<uint8_t>(*t.wscale, 14);
        rcv_scale = std::min<uint8_t>(*mine.wscale, 14);
      }
    } else if (we_offer && t.wscale) {
      snd_scale = std::min<uint8_t>(*t.wscale, 14);
      rcv_scale = std::min<uint8_t>(*o_.wscale, 14);
    }
    peer_window = t.win;  // windows in SYN segments are never scaled
    max_peer_window = std::max(max_peer_window, peer_window);
    last_progress_ms_ = g_.now_ms();
  }
  void record(TcpPacket& t) {
    if (!o_.keep_log) return;
    t.payload.clear();
    t.payload.shrink_to_fit();
    log.push_back(std::move(t));
  }
  void send_segment(uint32_t seq, uint8_t flags, const Bytes& options, const Bytes& payload) {
    TcpSegment s;
    s.seq = seq;
    s.flags = flags;
    s.ack = (flags & kAck) ? rcv_nxt_ : 0;
    s.win = (flags & kSyn) ? static_cast<uint16_t>(std::min<uint32_t>(o_.rcv_window, 65535)) : window_field();
    s.options = (flags & kSyn) ? options : options + o_.ack_options;
    s.payload = payload;
    if (flags & kAck) {
      last_ack_sent_ = rcv_nxt_;
      ack_due_ = false;
      const uint32_t edge = rcv_nxt_ + (uint32_t{s.win} << ((flags & kSyn) ? 0 : rcv_scale));
      if (seq_lt(right_edge_, edge)) right_edge_ = edge;  // a window never shrinks
    }
    ++segments_out;
    send_raw(s);
  }

  Guest& g_;
  GuestTcpOptions o_;
  uint32_t remote_ip_ = 0;
  uint16_t remote_port_ = 0;
  bool listening_ = false, bound_ = false, syn_sent_ = false, established_ = false;
  bool reset_ = false, fin_received_ = false, fin_wanted_ = false, fin_sent_ = false, ack_due_ = false;
  uint32_t snd_una_ = 0, snd_nxt_ = 0, rcv_nxt_ = 0, last_ack_sent_ = 0;
  uint32_t right_edge_ = 0;  // rcv_nxt + window, as last advertised
  uint32_t held_ = 0;        // bytes received while !reading
  uint32_t peer_mss_ = 536;
  int64_t last_progress_ms_ = 0;
  Bytes out_;
};

inline void Guest::dispatch() {
  std::vector<Bytes> frames;
  frames.swap(captured_);
  for (Bytes& f : frames) {
    // ARP request from libslirp: answer for any address in the guest network.
    if (f.size() >= 42 && get16(&f[12]) == 0x0806 && get16(&f[20]) == 1) {
      const uint32_t sip = get32(&f[28]);
      const uint32_t tip = get32(&f[38]);
      input(arp_frame(2, kGuestMac, tip, &f[22], sip));
      continue;
    }
    if (auto t = parse_tcp(f)) {
      GuestTcp* owner = nullptr;
      for (GuestTcp* c : conns_)
        if (c->matches(*t)) {
          owner = c;
          break;
        }
      if (owner) {
        owner->on_segment(std::move(*t));
        continue;
      }
    }
    inbox.push_back(std::move(f));
  }
}

inline void Guest::step(int timeout_ms) {
  advance_ms(cfg_.step_ms);
  poll_once(timeout_ms);
  // Dispatch until quiet: answering ARP or ACKing makes libslirp send more.
  for (int i = 0; i < 4 && !captured_.empty(); ++i) dispatch();
  for (GuestTcp* c : std::vector<GuestTcp*>(conns_)) c->pump();
  dispatch();
}

// ---- host side ----------------------------------------------------------------------------------

inline void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// A TCP listener on 127.0.0.1:<ephemeral port>. A guest SYN to kGateway:port reaches it.
struct Listener {
  int fd = -1;
  uint16_t port = 0;
  Listener() = default;
  Listener(Listener&& o) noexcept : fd(o.fd), port(o.port) { o.fd = -1; }
  Listener& operator=(Listener&& o) noexcept {
    std::swap(fd, o.fd);
    std::swap(port, o.port);
    return *this;
  }
  ~Listener() {
    if (fd >= 0) ::close(fd);
  }
  // Non-blocking accept: a connected fd (non-blocking), or -1 if none yet.
  int accept() const {
    const int c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return c;
  }
};

inline Listener listen_loopback(int rcvbuf = 0) {
  (void)kIsolated;
  Listener l;
  l.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (rcvbuf > 0) setsockopt(l.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr = in_addr_of(kLoopback);
  if (bind(l.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l.fd, 64) != 0) std::abort();
  socklen_t al = sizeof a;
  getsockname(l.fd, reinterpret_cast<sockaddr*>(&a), &al);
  l.port = ntohs(a.sin_port);
  return l;
}

// Non-blocking connect to 127.0.0.1:port; returns the fd (connection may still be in progress).
inline int connect_loopback(uint16_t port) {
  (void)kIsolated;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr = in_addr_of(kLoopback);
  a.sin_port = htons(port);
  ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  return fd;
}

// Appends whatever fd has to out; returns bytes read, 0 at EOF, -1 if nothing now (EAGAIN) or error.
inline ssize_t read_available(int fd, Bytes& out, size_t max = SIZE_MAX) {
  uint8_t buf[65536];
  ssize_t total = 0;
  for (;;) {
    if (static_cast<size_t>(total) >= max) return total;
    const ssize_t n = ::read(fd, buf, std::min(sizeof buf, max - static_cast<size_t>(total)));
    if (n > 0) {
      out.insert(out.end(), buf, buf + n);
      total += n;
      continue;
    }
    if (n == 0) return total;
    return total > 0 ? total : -1;
  }
}

// Writes as much of data[*off..] as fd takes now; advances *off.
inline void write_some(int fd, const Bytes& data, size_t* off) {
  while (*off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + *off, data.size() - *off);
    if (n <= 0) return;
    *off += static_cast<size_t>(n);
  }
}

// A deterministic pattern (xorshift), for byte-for-byte checks.
inline Bytes pattern(size_t n, uint32_t seed = 0x9e3779b9u) {
  Bytes b(n);
  uint32_t x = seed | 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b[i] = static_cast<uint8_t>(x);
  }
  return b;
}

inline uint16_t Guest::add_hostfwd_tcp(uint16_t guest_port, uint32_t guest_ip) {
  // Find a free port (the namespace is ours: nobody races for it).
  const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr = in_addr_of(kLoopback);
  socklen_t al = sizeof a;
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || getsockname(s, reinterpret_cast<sockaddr*>(&a), &al) != 0)
    std::abort();
  ::close(s);
  const uint16_t port = ntohs(a.sin_port);
  if (slirp_add_hostfwd(slirp_, 0, in_addr_of(kLoopback), port, in_addr_of(guest_ip), guest_port) != 0) return 0;
  return port;
}

}  // namespace libslirp_guest
