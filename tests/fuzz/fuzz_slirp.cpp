// fuzz_slirp: Ethernet frames from the guest -> libslirp, the way src/slirp/slirp_thread.cpp
// drives it (same SlirpConfig and callbacks), but on one thread: slirp_new, then for each frame
// slirp_input followed by one slirp_pollfds_fill / poll(2) / slirp_pollfds_poll round, then
// slirp_cleanup. SlirpThread itself is threaded and would make runs irreproducible.
//
// Isolation. A TCP SYN or a UDP datagram makes libslirp open real host sockets and send. So at
// start-up (LLVMFuzzerInitialize), before anything else, the process moves itself into new
// network and mount namespaces (and a user namespace when not root): its only network is a
// loopback of its own, and a resolv.conf naming 127.0.0.1 is bind-mounted over /etc/resolv.conf
// so libslirp's DNS forwarder never reaches the real resolver. If any step fails it aborts
// rather than run un-isolated.
//
// The host side. Inside that namespace the harness also plays the host the guest talks to: TCP
// listeners on 127.0.0.1:80, [::1]:80 and 127.0.0.1:53 (where libslirp connects for a guest's
// 10.0.2.2:80, [fd00::2]:80 and 10.0.2.3:53), and UDP sockets on 127.0.0.1:53 and [::1]:53 that
// echo every datagram back. Without them every TCP input would end in a RST after the SYN, and
// libslirp's established-state code (options after the handshake, urgent data, window updates,
// its reads and writes of the host socket) would be unreachable. After each frame, before the
// poll round, the harness accepts, reads what libslirp wrote and answers as config bits 5-7 say.
// At the end of an input every accepted connection is reset (SO_LINGER 0: nothing lingers in
// TIME_WAIT) before slirp_cleanup and the UDP sockets are drained, so inputs stay independent.
// All of it is non-blocking and on loopback, where the kernel delivers within the sending call, so
// what libslirp sees depends on the input only. (One exception seen: with the slow reader the
// kernel may have handed the host a few bytes fewer by its last read when the machine is loaded;
// libslirp's side of such a run was the same.)
//
// Input: one config byte, then frames, each a big-endian u16 length and that many bytes (fewer
// at the end of the input: truncated frames); the length 0xffff takes the rest of the input, so
// frames can exceed 65535 bytes. Config bits: 0 IPv6, 1 disable_host_loopback, 2-3 the MTU
// (1500, 65520, 576, 9000), 4 disable_dns, 5-6 what the host does with a connection (0 reads and
// discards, 1 echoes what it reads, 2 sends 192 KiB, 3 sends "hello", one urgent byte and a FIN
// at once), 7 a slow host reader (smallest receive buffer, at most 512 bytes read per frame).
// The clock advances 100 ms per frame (TCP's fast and slow timers get to run); an empty frame
// (length 0) switches it to 1 ms per frame for the rest of the input, so that thousands of
// frames fit in one IPv4 reassembly lifetime (30 s).
// With the bundled libslirp, a frame whose Ethernet source address ends in an odd byte is fed with
// SLIRP_INPUT_CSUM_VALID (its TCP/UDP checksum is not verified), as the daemon feeds frames whose
// checksum the container's kernel left partial.
//
// Guidance. The bundled libslirp (the default build) is compiled with coverage instrumentation,
// so libFuzzer sees its edges; the distribution's (-DSLIRPNETD_LIBSLIRP=system) is not, and then
// libFuzzer's own coverage only sees this file. Two extra signals go into libFuzzer's extra
// counters either way: libslirp's own call trace (SLIRP_DEBUG=call,misc: every DEBUG_CALL/DEBUG_MISC
// line, hashed as pairs of consecutive lines), and what comes back to the guest (ethertype, IP
// protocol, ICMP type, TCP flags, length class). The custom mutator keeps the framing intact and
// mostly recomputes IP/TCP/UDP/ICMP checksums after mutating, since libslirp drops frames whose
// checksums are wrong before doing anything interesting.
//
// Checks: ASan/UBSan on everything we see, and every frame libslirp sends is at most MTU + 14 bytes
// (the daemon's TX slots hold exactly that; src/slirp counts anything larger as a drop).
//
// FUZZ_SLIRP_TRACE=1 prints libslirp's debug lines; FUZZ_SLIRP_STATS=1 prints, for each input,
// libslirp's connection table after the last frame and what the host side saw.
#include "slirp/fragment_guard.hpp"
#include "slirp/poll_events.hpp"
#include <arpa/inet.h>
#include <fcntl.h>
#include <glib.h>
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
#include <map>
#include <string>
#include <vector>

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

// ---- isolation ----------------------------------------------------------------------------------

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "fuzz_slirp: %s: %s (refusing to run outside a private network namespace)\n", what,
               std::strerror(errno));
  std::abort();
}

void write_file(const char* path, const std::string& text) {
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) die(path);
  close(fd);
}

void isolate() {
  // Created before unshare: an unmapped uid could not create it afterwards.
  char resolv[] = "/tmp/fuzz_slirp_resolv.XXXXXX";
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
  if (mount(resolv, "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0) {
    // A child libFuzzer runs (-minimize_crash, -fork) starts inside our namespaces, where
    // /etc/resolv.conf is our bind mount of a file since unlinked: mounting over it fails with
    // ENOENT. Take that mount away (in this mount namespace only) and try again.
    if (errno != ENOENT || umount2("/etc/resolv.conf", MNT_DETACH) != 0 ||
        mount(resolv, "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0) {
      const int e = errno;
      unlink(resolv);
      errno = e;
      die("bind-mount resolv.conf");
    }
  }
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
}

// ---- extra coverage signals ---------------------------------------------------------------------

constexpr size_t kCounters = 1 << 15;
__attribute__((section("__libfuzzer_extra_counters"))) uint8_t g_counters[kCounters];

uint32_t g_last_log = 0;
bool g_trace = false;  // FUZZ_SLIRP_TRACE=1: print libslirp's debug lines (to reproduce a crash)
bool g_stats = false;  // FUZZ_SLIRP_STATS=1: print what each input reached (see the top)
size_t g_guest_data_segments = 0;  // TCP segments carrying data sent to the guest, this input

uint32_t mix(uint32_t h, uint32_t v) { return (h ^ v) * 0x01000193u; }

void hit(uint32_t feature) {
  uint8_t& c = g_counters[feature % kCounters];
  if (c != 255) ++c;
}

// libslirp's debug lines ("tcp_input...", " m = 0x...", "  dropping frame"): hash the text up to
// the first variable part, then count the pair (previous line, this line).
void glib_log(const gchar*, GLogLevelFlags level, const gchar* message, gpointer) {
  if (g_trace) std::fprintf(stderr, "slirp: %s\n", message);
  uint32_t h = 0x811c9dc5u;
  for (const char* p = message; *p && p - message < 48; ++p) {
    if ((*p >= '0' && *p <= '9') || *p == '=' || *p == '(') break;
    h = mix(h, static_cast<uint8_t>(*p));
  }
  hit(mix(g_last_log, h));
  g_last_log = h;
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) std::fprintf(stderr, "libslirp: %s\n", message);
}

// ---- the libslirp instance ----------------------------------------------------------------------

struct Harness {
  int64_t now_ns = 1'000'000'000;  // a virtual clock: runs are reproducible
  size_t mtu = 1500;
  std::vector<pollfd> pfds;
  struct Timer {
    SlirpTimerId id;
    void* cb_opaque;
    SlirpTimerCb cb;
    int64_t expire_ms;
  };
  std::vector<Timer*> timers;
  Slirp* slirp = nullptr;
};

void feature_of_output(const uint8_t* p, size_t len, size_t mtu) {
  uint32_t h = mix(0x9e3779b9u, static_cast<uint32_t>(len >= 14 ? (p[12] << 8 | p[13]) : 0));
  if (len >= 34 && p[12] == 0x08 && p[13] == 0x00) {
    const uint8_t proto = p[23];
    const size_t l4 = 14 + (p[14] & 0xf) * 4u;
    h = mix(h, proto);
    if (proto == IPPROTO_ICMP && len > l4 + 1) h = mix(mix(h, p[l4]), p[l4 + 1]);
    if (proto == IPPROTO_TCP && len > l4 + 13) h = mix(h, p[l4 + 13]);
    if (proto == IPPROTO_UDP && len > l4 + 1) h = mix(h, p[l4] << 8 | p[l4 + 1]);  // source port
  } else if (len >= 54 && p[12] == 0x86 && p[13] == 0xdd) {
    const uint8_t nh = p[20];
    h = mix(h, nh);
    if (nh == IPPROTO_ICMPV6) h = mix(h, p[54]);
    if (nh == IPPROTO_TCP && len > 67) h = mix(h, p[67]);
  }
  h = mix(h, len > mtu ? 3 : len > 576 ? 2 : len > 64 ? 1 : 0);
  hit(h);
}

// The TCP payload length of a frame libslirp sends (0 if it is not TCP; no IPv6 extension headers).
size_t tcp_payload(const uint8_t* p, size_t len) {
  size_t l4, l4_len;
  if (len >= 34 && p[12] == 0x08 && p[13] == 0x00 && p[23] == IPPROTO_TCP) {
    l4 = 14 + (p[14] & 0xf) * 4u;
    l4_len = (size_t{p[16]} << 8 | p[17]) - (l4 - 14);
  } else if (len >= 54 && p[12] == 0x86 && p[13] == 0xdd && p[20] == IPPROTO_TCP) {
    l4 = 54;
    l4_len = size_t{p[18]} << 8 | p[19];
  } else {
    return 0;
  }
  if (len < l4 + 20) return 0;
  const size_t off = (p[l4 + 12] >> 4) * 4u;
  return l4_len > off ? l4_len - off : 0;
}

ssize_t cb_send_packet(const void* buf, size_t len, void* opaque) {
  auto* hs = static_cast<Harness*>(opaque);
  if (len > hs->mtu + 14) {
    std::fprintf(stderr, "fuzz_slirp: libslirp sent a %zu-byte frame with MTU %zu\n", len, hs->mtu);
    std::abort();
  }
  // Touch every byte: ASan reports if libslirp handed us a short buffer.
  volatile uint8_t sum = 0;
  for (size_t i = 0; i < len; ++i) sum = static_cast<uint8_t>(sum + static_cast<const uint8_t*>(buf)[i]);
  feature_of_output(static_cast<const uint8_t*>(buf), len, hs->mtu);
  if (g_stats && tcp_payload(static_cast<const uint8_t*>(buf), len) > 0) ++g_guest_data_segments;
  return static_cast<ssize_t>(len);
}

void cb_guest_error(const char* msg, void*) {
  uint32_t h = 0x12345u;
  for (const char* p = msg; *p; ++p) h = mix(h, static_cast<uint8_t>(*p));
  hit(h);
}
int64_t cb_clock_get_ns(void* opaque) { return static_cast<Harness*>(opaque)->now_ns; }
void* cb_timer_new(SlirpTimerCb cb, void* cb_opaque, void* opaque) {
  auto* hs = static_cast<Harness*>(opaque);
  hs->timers.push_back(new Harness::Timer{SLIRP_TIMER_RA, cb_opaque, cb, -1});
  return hs->timers.back();
}
void* cb_timer_new_opaque(SlirpTimerId id, void* cb_opaque, void* opaque) {
  auto* hs = static_cast<Harness*>(opaque);
  hs->timers.push_back(new Harness::Timer{id, cb_opaque, nullptr, -1});
  return hs->timers.back();
}
void cb_timer_free(void* timer, void* opaque) {
  auto& v = static_cast<Harness*>(opaque)->timers;
  for (auto it = v.begin(); it != v.end(); ++it)
    if (*it == timer) {
      delete *it;
      v.erase(it);
      return;
    }
}
void cb_timer_mod(void* timer, int64_t expire_ms, void*) { static_cast<Harness::Timer*>(timer)->expire_ms = expire_ms; }
void cb_register_poll_fd(int, void*) {}
void cb_unregister_poll_fd(int, void*) {}
void cb_notify(void*) {}
void cb_init_completed(Slirp* slirp, void* opaque) { static_cast<Harness*>(opaque)->slirp = slirp; }

int cb_add_poll(int fd, int events, void* opaque) {
  auto* hs = static_cast<Harness*>(opaque);
  hs->pfds.push_back({fd, slirpnetd::slirp::to_poll_events(events), 0});
  return static_cast<int>(hs->pfds.size() - 1);
}

int cb_get_revents(int idx, void* opaque) {
  auto* hs = static_cast<Harness*>(opaque);
  if (idx < 0 || static_cast<size_t>(idx) >= hs->pfds.size()) return 0;
  return slirpnetd::slirp::to_slirp_events(hs->pfds[static_cast<size_t>(idx)].revents);
}

const SlirpCb kCallbacks = {
    cb_send_packet,     cb_guest_error,        cb_clock_get_ns, cb_timer_new,      cb_timer_free,
    cb_timer_mod,       cb_register_poll_fd,   cb_unregister_poll_fd, cb_notify, cb_init_completed,
    cb_timer_new_opaque,
};

in_addr ip4(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a;
}
in6_addr ip6(const char* s) {
  in6_addr a{};
  inet_pton(AF_INET6, s, &a);
  return a;
}

// One poll round, as the slirp thread does it (with a zero timeout: nothing here may block).
void poll_round(Harness& hs) {
  hs.pfds.clear();
  uint32_t timeout = UINT32_MAX;
  slirp_pollfds_fill(hs.slirp, &timeout, cb_add_poll, &hs);
  const int n = poll(hs.pfds.data(), hs.pfds.size(), 0);
  slirp_pollfds_poll(hs.slirp, n < 0, cb_get_revents, &hs);
}

// ---- the host side (see the top) ----------------------------------------------------------------

struct Host {
  enum Reply : uint8_t { kDiscard = 0, kEcho = 1, kBulk = 2, kHelloUrgentFin = 3 };
  static constexpr size_t kBulkBytes = 192 * 1024;
  static constexpr size_t kSlowReadBytes = 512;
  struct Conn {
    int fd;
    size_t bulk_left;
    bool done;  // EOF or error: nothing more to read
  };
  std::vector<int> listeners;
  std::vector<int> udp;
  std::vector<Conn> conns;
  std::vector<pollfd> pfds;  // host_round's, kept to save an allocation per frame
  Reply reply = kDiscard;
  bool slow = false;
  int rcvbuf = -1;  // what SO_RCVBUF the listeners (and so the connections they accept) have now
  // This input's counts, for FUZZ_SLIRP_STATS.
  size_t accepted = 0, bytes_in = 0, bytes_out = 0, datagrams = 0;
};
Host g_host;
uint8_t g_io[65536];
const uint8_t kBulkData[16384] = {'H', 'T', 'T', 'P'};  // what kBulk sends, 16 KiB at a time

[[noreturn]] void host_fail(const char* what) {
  std::fprintf(stderr, "fuzz_slirp: host side: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

// A non-blocking socket bound to addr:port (listening, for TCP). For IPv6, -1 if the kernel has
// no ::1 (the IPv4 sockets still serve); any other failure aborts.
int host_socket(int family, int type, const char* addr, uint16_t port) {
  const int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 && family == AF_INET6 && errno == EAFNOSUPPORT) return -1;
  if (fd < 0) host_fail("socket");
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, addr, &a->sin_addr);
    len = sizeof *a;
  } else {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, addr, &a->sin6_addr);
    len = sizeof *a;
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (family == AF_INET6 && errno == EADDRNOTAVAIL) {
      close(fd);
      return -1;
    }
    host_fail(addr);
  }
  if (type == SOCK_STREAM && listen(fd, 128) != 0) host_fail("listen");
  return fd;
}

// Called once, inside the namespace.
void host_open() {
  const struct {
    int family, type;
    const char* addr;
    uint16_t port;
  } kSockets[] = {
      {AF_INET, SOCK_STREAM, "127.0.0.1", 80}, {AF_INET6, SOCK_STREAM, "::1", 80},
      {AF_INET, SOCK_STREAM, "127.0.0.1", 53}, {AF_INET, SOCK_DGRAM, "127.0.0.1", 53},
      {AF_INET6, SOCK_DGRAM, "::1", 53},
  };
  for (const auto& k : kSockets) {
    const int fd = host_socket(k.family, k.type, k.addr, k.port);
    if (fd >= 0) (k.type == SOCK_STREAM ? g_host.listeners : g_host.udp).push_back(fd);
  }
}

void host_begin(uint8_t conf) {
  g_host.reply = static_cast<Host::Reply>((conf >> 5) & 3);
  g_host.slow = conf & 0x80;
  // Always set (which also turns the kernel's receive-buffer autotuning off): the same input gets
  // the same windows whatever ran before it. The kernel clamps 1 to its minimum (2304 bytes) and
  // 1 MiB to 2 * net.core.rmem_max.
  const int rcvbuf = g_host.slow ? 1 : 1 << 20;
  if (rcvbuf != g_host.rcvbuf) {
    for (const int fd : g_host.listeners) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    g_host.rcvbuf = rcvbuf;
  }
  g_host.accepted = g_host.bytes_in = g_host.bytes_out = g_host.datagrams = 0;
}

void host_accept() {
  for (const int l : g_host.listeners)
    for (int fd; (fd = accept4(l, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
      ++g_host.accepted;
      const int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof one);  // the guest's urgent byte: with the data
      Host::Conn c{fd, 0, false};
      if (g_host.reply == Host::kBulk) c.bulk_left = Host::kBulkBytes;
      if (g_host.reply == Host::kHelloUrgentFin) {
        if (send(fd, "hello", 5, MSG_NOSIGNAL) == 5) g_host.bytes_out += 5;
        if (send(fd, "!", 1, MSG_OOB | MSG_NOSIGNAL) == 1) g_host.bytes_out += 1;
        shutdown(fd, SHUT_WR);
      }
      g_host.conns.push_back(c);
    }
}

// Reads what libslirp wrote to one connection (echoing it in kEcho) and sends what kBulk has left.
void host_serve(Host::Conn& c) {
  size_t budget = g_host.slow ? Host::kSlowReadBytes : 4 * sizeof g_io;
  while (!c.done && budget > 0) {
    const ssize_t n = recv(c.fd, g_io, std::min(budget, sizeof g_io), 0);
    if (n <= 0) {
      c.done = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
      break;
    }
    budget -= static_cast<size_t>(n);
    g_host.bytes_in += static_cast<size_t>(n);
    if (g_host.reply == Host::kEcho) {
      const ssize_t w = send(c.fd, g_io, static_cast<size_t>(n), MSG_NOSIGNAL);
      if (w > 0) g_host.bytes_out += static_cast<size_t>(w);
    }
  }
  while (c.bulk_left > 0) {
    const ssize_t w = send(c.fd, kBulkData, std::min(c.bulk_left, sizeof kBulkData), MSG_NOSIGNAL);
    if (w <= 0) break;
    c.bulk_left -= static_cast<size_t>(w);
    g_host.bytes_out += static_cast<size_t>(w);
  }
}

// One round of the host: after a frame, before libslirp's poll round. One poll(2) over all its
// sockets first: after most frames there is nothing to do, and this keeps that cheap.
void host_round() {
  std::vector<pollfd>& p = g_host.pfds;
  p.clear();
  for (const int fd : g_host.listeners) p.push_back({fd, POLLIN, 0});
  for (const int fd : g_host.udp) p.push_back({fd, POLLIN, 0});
  for (const Host::Conn& c : g_host.conns)
    p.push_back({c.fd, static_cast<short>((c.done ? 0 : POLLIN) | (c.bulk_left ? POLLOUT : 0)), 0});
  if (poll(p.data(), p.size(), 0) <= 0) return;

  const size_t n_listeners = g_host.listeners.size(), n_udp = g_host.udp.size(), n_old = g_host.conns.size();
  for (size_t i = 0; i < n_old; ++i)
    if (p[n_listeners + n_udp + i].revents) host_serve(g_host.conns[i]);
  if (std::any_of(p.begin(), p.begin() + static_cast<long>(n_listeners), [](const pollfd& q) { return q.revents; })) {
    host_accept();
    for (size_t i = n_old; i < g_host.conns.size(); ++i) host_serve(g_host.conns[i]);
  }
  for (size_t u = 0; u < n_udp; ++u) {
    if (!p[n_listeners + u].revents) continue;
    const int fd = g_host.udp[u];
    for (int i = 0; i < 16; ++i) {
      sockaddr_storage from{};
      socklen_t from_len = sizeof from;
      const ssize_t n = recvfrom(fd, g_io, sizeof g_io, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < 0) break;
      ++g_host.datagrams;
      sendto(fd, g_io, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), from_len);
    }
  }
}

// End of an input, before slirp_cleanup: reset every connection, drop what the UDP sockets hold.
void host_end() {
  host_accept();
  const linger reset{1, 0};
  for (const Host::Conn& c : g_host.conns) {
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(c.fd);
  }
  g_host.conns.clear();
  for (const int fd : g_host.udp)
    while (recv(fd, g_io, sizeof g_io, 0) >= 0) {
    }
}

// ---- input format ---------------------------------------------------------------------------------

struct Frame {
  size_t off, len;
};

std::vector<Frame> split_frames(const uint8_t* data, size_t size) {
  std::vector<Frame> frames;
  size_t i = 1;
  while (i + 2 <= size) {
    size_t len = size_t{data[i]} << 8 | data[i + 1];
    i += 2;
    if (len == 0xffff || len > size - i) len = size - i;
    frames.push_back({i, len});
    i += len;
  }
  return frames;
}

uint32_t sum16(const uint8_t* p, size_t n, uint32_t s = 0);
uint16_t fold(uint32_t s);

// ---- a known libslirp 4.7.0 crash ----------------------------------------------------------------
//
// Debian's libslirp 4.7.0 dies (SIGSEGV/SIGBUS) on an IPv4 fragment that has MF clear and a non-zero
// offset and arrives when no reassembly queue exists for its (id, src, dst, proto): ip_reass() casts
// the new queue head (struct ipq) to struct ipasfrag, and GCC, assuming the two types do not alias,
// reads fp->frag_link.next before ip_enq()'s store through the other type. Found by this target; the
// daemon now feeds libslirp through slirp::FragmentGuard (src/slirp/fragment_guard.hpp), and so does
// this harness when built against it: a crash here means the guard lets the shape through.
// FUZZ_SLIRP_UNSAFE_FRAGMENTS=1 bypasses it (reproduces the libslirp crash with
// regressions/fuzz_slirp/*). The bundled libslirp has ip_reass fixed at its cause, and the harness
// then feeds every frame to it directly, as the daemon does, so that the fix is what gets fuzzed.
bool g_guard_fragments = !SLIRPNETD_LIBSLIRP_BUNDLED;

// ---- checksums, for the mutator -----------------------------------------------------------------

uint32_t sum16(const uint8_t* p, size_t n, uint32_t s) {
  for (size_t i = 0; i + 1 < n; i += 2) s += uint32_t{p[i]} << 8 | p[i + 1];
  if (n & 1) s += uint32_t{p[n - 1]} << 8;
  return s;
}
uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}
void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// Fills in the L4 checksum of `l4` (n bytes, protocol `proto`) given the pseudo-header sum.
void fix_l4(uint8_t proto, uint8_t* l4, size_t n, uint32_t pseudo) {
  size_t at;
  if (proto == IPPROTO_TCP) at = 16;
  else if (proto == IPPROTO_UDP) at = 6;
  else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) at = 2;
  else return;
  if (n < at + 2) return;
  if (proto == IPPROTO_UDP && n >= 8) put16(l4 + 4, static_cast<uint16_t>(n));  // UDP length
  put16(l4 + at, 0);
  const uint16_t c = fold(sum16(l4, n, proto == IPPROTO_ICMP ? 0 : pseudo));
  put16(l4 + at, proto == IPPROTO_UDP && c == 0 ? 0xffff : c);
}

// Makes lengths and checksums of one Ethernet frame consistent (as far as it has them).
void fix_frame(uint8_t* f, size_t len, bool fix_lengths) {
  if (len < 14) return;
  const uint16_t type = static_cast<uint16_t>(f[12] << 8 | f[13]);
  uint8_t* ip = f + 14;
  const size_t n = len - 14;
  if (type == 0x0800 && n >= 20) {
    size_t hl = (ip[0] & 0xf) * 4u;
    if (fix_lengths) {
      ip[0] = 0x45;
      hl = 20;
      put16(ip + 2, static_cast<uint16_t>(n > 0xffff ? 0xffff : n));
    }
    if (hl < 20 || hl > n) return;
    put16(ip + 10, 0);
    put16(ip + 10, fold(sum16(ip, hl)));
    const size_t total = std::min<size_t>(n, size_t{ip[2]} << 8 | ip[3]);
    const bool fragment = (ip[6] & 0x3f) != 0 || ip[7] != 0;
    if (total <= hl || fragment) return;
    const size_t l4n = total - hl;
    const uint32_t pseudo = sum16(ip + 12, 8) + ip[9] + static_cast<uint32_t>(l4n);
    fix_l4(ip[9], ip + hl, l4n, pseudo);
  } else if (type == 0x86dd && n >= 40) {
    if (fix_lengths) {
      ip[0] = static_cast<uint8_t>(0x60 | (ip[0] & 0x0f));
      put16(ip + 4, static_cast<uint16_t>(n - 40 > 0xffff ? 0xffff : n - 40));
    }
    const size_t l4n = std::min<size_t>(n - 40, size_t{ip[4]} << 8 | ip[5]);
    const uint32_t pseudo = sum16(ip + 8, 32) + ip[6] + static_cast<uint32_t>(l4n);
    fix_l4(ip[6], ip + 40, l4n, pseudo);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  isolate();
  host_open();
  g_trace = getenv("FUZZ_SLIRP_TRACE") != nullptr;
  g_stats = getenv("FUZZ_SLIRP_STATS") != nullptr;
  if (getenv("FUZZ_SLIRP_UNSAFE_FRAGMENTS") != nullptr) g_guard_fragments = false;
  setenv("SLIRP_DEBUG", "call,misc", 1);  // read by libslirp's first slirp_new
  g_log_set_handler("Slirp", static_cast<GLogLevelFlags>(G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION),
                    glib_log, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t conf = data[0];
  static constexpr size_t kMtus[] = {1500, 65520, 576, 9000};

  Harness hs;
  hs.mtu = kMtus[(conf >> 2) & 3];
  // src/slirp/slirp_thread.cpp's config, for the default --cidr 10.0.2.0/24.
  SlirpConfig cfg{};
  cfg.version = 4;
  cfg.restricted = 0;
  cfg.in_enabled = true;
  cfg.vnetwork = ip4("10.0.2.0");
  cfg.vnetmask = ip4("255.255.255.0");
  cfg.vhost = ip4("10.0.2.2");
  cfg.vdhcp_start = ip4("10.0.2.15");
  cfg.vnameserver = ip4("10.0.2.3");
  cfg.in6_enabled = conf & 1;
  cfg.vprefix_addr6 = ip6("fd00::");
  cfg.vprefix_len = 64;
  cfg.vhost6 = ip6("fd00::2");
  cfg.vnameserver6 = ip6("fd00::3");
  cfg.if_mtu = hs.mtu;
  cfg.if_mru = hs.mtu;
  cfg.disable_host_loopback = conf & 2;
  cfg.enable_emu = false;
  cfg.disable_dns = conf & 16;
  cfg.disable_dhcp = false;

  g_last_log = 0;
  g_guest_data_segments = 0;
  host_begin(conf);
  if (slirp_new(&cfg, &kCallbacks, &hs) == nullptr) std::abort();

  slirpnetd::slirp::FragmentGuard guard;
  auto input = [&hs](const uint8_t* p, size_t n) {
#if SLIRPNETD_LIBSLIRP_BUNDLED
    // The daemon gives libslirp the frames whose checksums the container's kernel left partial
    // with SLIRP_INPUT_CSUM_VALID; here the frames whose source MAC ends in an odd byte.
    const int flags = n >= 12 && (p[11] & 1) ? SLIRP_INPUT_CSUM_VALID : 0;
    slirp_input_flags(hs.slirp, p, static_cast<int>(n), flags);
#else
    slirp_input(hs.slirp, p, static_cast<int>(n));
#endif
  };
  bool fast_clock = false;
  for (const Frame& f : split_frames(data, size)) {
    if (f.len == 0) {
      fast_clock = true;  // see the input format at the top
      continue;
    }
    // A private copy of exactly len bytes: ASan catches any read past the frame.
    std::vector<uint8_t> frame(data + f.off, data + f.off + f.len);
    if (!g_guard_fragments)
      input(frame.data(), frame.size());
    else
      guard.input(frame.data(), frame.size(), static_cast<int64_t>(hs.now_ns / 1'000'000), input);
    hs.now_ns += fast_clock ? 1'000'000 : 100'000'000;
    host_round();
    poll_round(hs);
  }
  if (g_stats) {
    char* info = slirp_connection_info(hs.slirp);
    std::fprintf(stderr, "fuzz_slirp: after the last frame:\n%s", info);
    g_free(info);
  }
  // Let timers (IPv6 router advertisements) fire once, then a last round.
  for (Harness::Timer* t : std::vector<Harness::Timer*>(hs.timers))
    if (t->expire_ms >= 0) {
      t->expire_ms = -1;
      if (t->cb) t->cb(t->cb_opaque);
      else slirp_handle_timer(hs.slirp, t->id, t->cb_opaque);
    }
  hs.now_ns += 1'000'000'000;
  host_round();
  poll_round(hs);
  host_end();
  if (g_stats)
    std::fprintf(stderr,
                 "fuzz_slirp: host: %zu connection(s) accepted, %zu byte(s) read, %zu written, %zu datagram(s)"
                 " echoed; guest: %zu TCP segment(s) with data\n",
                 g_host.accepted, g_host.bytes_in, g_host.bytes_out, g_host.datagrams, g_guest_data_segments);
  slirp_cleanup(hs.slirp);
  for (Harness::Timer* t : hs.timers) delete t;
  return 0;
}

// Mutates one frame (or the config byte, or the list of frames) and keeps the framing valid.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned seed) {
  std::srand(seed);
  if (size < 1 || max_size < 3) return LLVMFuzzerMutate(data, size, max_size);
  std::vector<Frame> frames = split_frames(data, size);
  std::vector<std::vector<uint8_t>> fs;
  for (const Frame& f : frames) fs.emplace_back(data + f.off, data + f.off + f.len);
  uint8_t conf = data[0];

  const int op = std::rand() % 16;
  if (op == 0 || fs.empty()) {
    conf = static_cast<uint8_t>(conf ^ (1u << (std::rand() % 8)));
  } else if (op == 1 && fs.size() < 32) {
    const size_t i = static_cast<size_t>(std::rand()) % fs.size();
    fs.insert(fs.begin() + static_cast<long>(i), fs[i]);  // duplicate (retransmission, SYN flood)
  } else if (op == 2 && fs.size() > 1) {
    fs.erase(fs.begin() + std::rand() % static_cast<long>(fs.size()));
  } else if (op == 3 && fs.size() > 1) {
    std::swap(fs[static_cast<size_t>(std::rand()) % fs.size()], fs[static_cast<size_t>(std::rand()) % fs.size()]);
  } else {
    auto& f = fs[static_cast<size_t>(std::rand()) % fs.size()];
    const size_t old = f.size();
    const size_t cap = std::max<size_t>(old + 64, std::min<size_t>(max_size, 70000));
    f.resize(cap);
    f.resize(LLVMFuzzerMutate(f.data(), old, cap));
    const int fix = std::rand() % 8;  // mostly valid checksums, sometimes exact lengths too
    if (fix < 7) fix_frame(f.data(), f.size(), fix < 3);
  }

  // Re-serialise; a frame of 0xffff bytes or more must be last (its length means "the rest").
  std::vector<uint8_t> out{conf};
  for (size_t i = 0; i < fs.size(); ++i) {
    const auto& f = fs[i];
    const bool rest = f.size() >= 0xffff;
    if (rest && i + 1 != fs.size()) continue;
    const size_t len = rest ? 0xffff : f.size();
    out.push_back(static_cast<uint8_t>(len >> 8));
    out.push_back(static_cast<uint8_t>(len));
    out.insert(out.end(), f.begin(), f.end());
  }
  if (out.size() > max_size) out.resize(max_size);  // the last frame comes out truncated
  std::memcpy(data, out.data(), out.size());
  return out.size();
}
