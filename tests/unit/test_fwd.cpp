// fwd: the splice forwarder and its connector, on loopback inside a private network namespace
// (created before main, while the process is single-threaded; the tests are skipped without it).
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/bounded_call.hpp"
#include "fwd/connector.hpp"
#include "fwd/forwarder.hpp"
#include "skip.hpp"

using slirpnetd::UniqueFd;
using namespace slirpnetd::fwd;

namespace {

bool write_file(const char* path, const std::string& s) {
  std::ofstream f(path);
  f << s;
  return static_cast<bool>(f.flush());
}

// Polls pred every 20 ms for up to ms milliseconds.
bool wait_until(const std::function<bool()>& pred, int ms) {
  for (int i = 0; i < ms / 20; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// Own network namespace with lo up; as non-root inside a new user namespace first.
bool private_netns() {
  if (::geteuid() != 0) {
    const auto uid = std::to_string(::geteuid()), gid = std::to_string(::getegid());
    if (::unshare(CLONE_NEWUSER) < 0) return false;
    write_file("/proc/self/setgroups", "deny");
    if (!write_file("/proc/self/uid_map", "0 " + uid + " 1") || !write_file("/proc/self/gid_map", "0 " + gid + " 1"))
      return false;
  }
  if (::unshare(CLONE_NEWNET) < 0) return false;
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  ifr.ifr_flags = IFF_UP | IFF_RUNNING;
  return s && ::ioctl(s.get(), SIOCSIFFLAGS, &ifr) == 0;
}
const bool g_netns = private_netns();

#define REQUIRE_NETNS()                                                              \
  do {                                                                               \
    if (!g_netns) SLIRPNETD_SKIP("cannot create a private network namespace here"); \
  } while (0)

sockaddr_storage addr(const char* ip, int port, socklen_t& len) {
  sockaddr_storage ss{};
  if (std::strchr(ip, ':')) {
    auto& s6 = reinterpret_cast<sockaddr_in6&>(ss);
    s6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &s6.sin6_addr);
    s6.sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof s6;
  } else {
    auto& s4 = reinterpret_cast<sockaddr_in&>(ss);
    s4.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &s4.sin_addr);
    s4.sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof s4;
  }
  return ss;
}

slirpnetd::hostfwd::Endpoint ep(const sockaddr_storage& ss, socklen_t len) {
  auto e = slirpnetd::hostfwd::Endpoint::from_sockaddr(ss, len);
  REQUIRE(e);
  return *e;
}

int port_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(ss).sin6_port
                                        : reinterpret_cast<sockaddr_in&>(ss).sin_port);
}

UniqueFd listen_on(const char* ip, int port = 0) {
  socklen_t len = 0;
  auto ss = addr(ip, port, len);
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0);
  REQUIRE(::listen(fd.get(), 16) == 0);
  return fd;
}

int free_port(const char* ip) {
  UniqueFd fd = listen_on(ip);
  return port_of(fd.get());
}

UniqueFd connect_to(const char* ip, int port) {
  socklen_t len = 0;
  auto ss = addr(ip, port, len);
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) < 0) return {};
  return fd;
}

// Echo server: one thread per connection, echoes until EOF then closes. Records peer addresses.
struct EchoServer {
  UniqueFd lfd;
  std::thread thread;
  std::vector<std::string> peers;  // read after stop()
  std::atomic<bool> stop{false};
  bool raw_first = false;          // read the PROXY header (28 bytes, v4) before echoing
  std::vector<uint8_t> first;

  explicit EchoServer(const char* ip, bool proxy = false) : lfd(listen_on(ip)), raw_first(proxy) {
    thread = std::thread([this] {
      std::vector<std::thread> conns;
      while (!stop) {
        pollfd p{lfd.get(), POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        int c = ::accept4(lfd.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
        if (c < 0) continue;
        char buf[INET6_ADDRSTRLEN] = "";
        if (peer.ss_family == AF_INET6)
          inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6&>(peer).sin6_addr, buf, sizeof buf);
        else
          inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in&>(peer).sin_addr, buf, sizeof buf);
        peers.push_back(buf);
        if (raw_first) {
          first.resize(28);
          size_t got = 0;
          while (got < first.size()) {
            ssize_t n = ::recv(c, first.data() + got, first.size() - got, 0);
            if (n <= 0) break;
            got += static_cast<size_t>(n);
          }
        }
        conns.emplace_back([c] {
          std::vector<char> b(65536);
          for (;;) {
            ssize_t n = ::recv(c, b.data(), b.size(), 0);
            if (n <= 0) break;
            for (ssize_t off = 0; off < n;) {
              ssize_t m = ::send(c, b.data() + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
              if (m <= 0) break;
              off += m;
            }
          }
          ::close(c);
        });
      }
      for (auto& t : conns) t.join();
    });
  }
  int port() const { return port_of(lfd.get()); }
  ~EchoServer() {
    stop = true;
    thread.join();
  }
};

// Sends `bytes` random bytes through fd (from a thread), half-closes, reads all back; true if
// the same bytes came back followed by EOF.
bool echo_roundtrip(int fd, size_t bytes) {
  std::vector<char> out(bytes), in;
  std::mt19937 rng(42);
  for (auto& c : out) c = static_cast<char>(rng());
  std::thread sender([&] {
    for (size_t off = 0; off < out.size();) {
      ssize_t n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
  });
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    in.insert(in.end(), buf.begin(), buf.begin() + n);
  }
  sender.join();
  return in == out;
}

void add_fwd(Forwarder& f, const char* host_ip, int host_port, const char* guest_ip, int guest_port,
             bool proxy = false) {
  socklen_t hl = 0, gl = 0;
  auto h = addr(host_ip, host_port, hl);
  auto g = addr(guest_ip, guest_port, gl);
  REQUIRE(f.add(ep(h, hl), ep(g, gl), proxy) == 0);
}

}  // namespace

TEST_CASE("connector opens connections and reports errors", "[fwd][connector]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  EchoServer echo("127.0.0.1");
  socklen_t len = 0;
  UniqueFd s;
  const auto to = addr("127.0.0.1", echo.port(), len);
  REQUIRE(conn->connect(to, len, s) == 0);
  REQUIRE(s);
  CHECK((::fcntl(s.get(), F_GETFL) & O_NONBLOCK) != 0);
  // An unspecified address means loopback.
  UniqueFd s2;
  const auto any = addr("0.0.0.0", echo.port(), len);
  CHECK(conn->connect(any, len, s2) == 0);
  pollfd p{s2.get(), POLLOUT, 0};
  REQUIRE(::poll(&p, 1, 5000) == 1);
  int err = -1;
  socklen_t el = sizeof err;
  ::getsockopt(s2.get(), SOL_SOCKET, SO_ERROR, &err, &el);
  CHECK(err == 0);
  // A bad family is refused by the child, which keeps serving.
  sockaddr_storage bad{};
  bad.ss_family = AF_UNIX;
  UniqueFd s3;
  CHECK(conn->connect(bad, sizeof(sockaddr_in), s3) == -EINVAL);
  UniqueFd s4;
  CHECK(conn->connect(to, sizeof(sockaddr_in), s4) == 0);
}

TEST_CASE("splice forward: 32 MB echo intact, both directions, half-close propagated", "[fwd]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  EchoServer echo("127.0.0.1");
  Forwarder fwd(*conn);
  const int port = free_port("127.0.0.1");
  add_fwd(fwd, "127.0.0.1", port, "127.0.0.1", echo.port());
  UniqueFd c = connect_to("127.0.0.1", port);
  REQUIRE(c);
  CHECK(echo_roundtrip(c.get(), 32u << 20));
  CHECK(fwd.stats().bytes_in.load() == (32u << 20));
  CHECK(fwd.stats().accepted.load() == 1);
  // Several connections at once, spread over the workers.
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&] {
      UniqueFd s = connect_to("127.0.0.1", port);
      if (s && echo_roundtrip(s.get(), 1u << 20)) ++ok;
    });
  for (auto& t : ts) t.join();
  CHECK(ok == 8);
}

TEST_CASE("splice forward: the inner server sees the connector's address", "[fwd]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  UniqueFd lo2(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  Forwarder fwd(*conn);
  EchoServer echo("0.0.0.0");
  const int port = free_port("127.0.0.1");
  add_fwd(fwd, "127.0.0.1", port, "127.0.0.2", echo.port());
  UniqueFd c = connect_to("127.0.0.1", port);
  REQUIRE(c);
  CHECK(echo_roundtrip(c.get(), 1000));
  c.reset();
  // The connector's source address is the one the kernel picks for 127.0.0.2: 127.0.0.1. The echo
  // server recorded it at accept, before it echoed anything.
  echo.stop = true;
  echo.thread.join();
  echo.thread = std::thread([] {});
  REQUIRE(echo.peers.size() == 1);
  CHECK(echo.peers[0] == "127.0.0.1");
}

TEST_CASE("splice forward: PROXY v2 header carries the client address", "[fwd][proxy]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  EchoServer echo("127.0.0.1", true);
  Forwarder fwd(*conn);
  const int port = free_port("127.0.0.1");
  add_fwd(fwd, "127.0.0.1", port, "127.0.0.1", echo.port(), true);
  UniqueFd c = connect_to("127.0.0.1", port);
  REQUIRE(c);
  const int client_port = port_of(c.get());
  CHECK(echo_roundtrip(c.get(), 5000));  // the header is not echoed: the server consumed it
  echo.stop = true;
  echo.thread.join();
  echo.thread = std::thread([] {});
  const std::vector<uint8_t>& h = echo.first;
  REQUIRE(h.size() == 28);
  const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
  CHECK(std::memcmp(h.data(), sig, 12) == 0);
  CHECK(h[12] == 0x21);
  CHECK(h[13] == 0x11);
  CHECK(((h[14] << 8) | h[15]) == 12);
  CHECK((h[16] == 127 && h[17] == 0 && h[18] == 0 && h[19] == 1));  // source: the client
  CHECK((h[20] == 127 && h[23] == 1));                               // destination: the listener
  CHECK(((h[24] << 8) | h[25]) == client_port);
  CHECK(((h[26] << 8) | h[27]) == port);
}

TEST_CASE("splice forward: refused inner connection resets the client, remove closes the listener", "[fwd]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  Forwarder fwd(*conn);
  const int port = free_port("127.0.0.1");
  const int dead_port = free_port("127.0.0.1");  // nothing listens there
  add_fwd(fwd, "127.0.0.1", port, "127.0.0.1", dead_port);
  UniqueFd c = connect_to("127.0.0.1", port);
  REQUIRE(c);
  char b;
  errno = 0;
  const ssize_t n = ::recv(c.get(), &b, 1, 0);
  CHECK(n <= 0);
  CHECK((n == 0 || errno == ECONNRESET));
  // Duplicate host address: bind fails.
  socklen_t hl = 0, gl = 0;
  auto h = addr("127.0.0.1", port, hl);
  auto g = addr("127.0.0.1", dead_port, gl);
  CHECK(fwd.add(ep(h, hl), ep(g, gl), false) == -EADDRINUSE);
  CHECK(fwd.remove(ep(h, hl)) == 0);
  CHECK(fwd.remove(ep(h, hl)) == -ENOENT);
  CHECK(!connect_to("127.0.0.1", port));
}

TEST_CASE("splice forward: IPv6 listener", "[fwd][ipv6]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  EchoServer echo("::1");
  Forwarder fwd(*conn);
  const int port = free_port("::1");
  add_fwd(fwd, "::1", port, "::", echo.port());  // "::" means the container's loopback
  UniqueFd c = connect_to("::1", port);
  REQUIRE(c);
  CHECK(echo_roundtrip(c.get(), 1u << 20));
  CHECK(!connect_to("127.0.0.1", port));  // V6ONLY
}

TEST_CASE("proxy_v2_header for IPv6", "[fwd][proxy]") {
  socklen_t l = 0;
  auto h = proxy_v2_header(addr("2001:db8::1", 1234, l), addr("::1", 80, l));
  REQUIRE(h.size() == 16 + 36);
  CHECK(h[13] == 0x21);
  CHECK(h[15] == 36);
  CHECK(h[16] == 0x20);
  CHECK(h[17] == 0x01);
  CHECK(((h[48] << 8) | h[49]) == 1234);
  CHECK(((h[50] << 8) | h[51]) == 80);
}

namespace {

// UDP echo server: answers each datagram with "<peer ip:port> <payload>", so a test sees which
// socket the forwarder sent it from.
struct UdpEchoServer {
  UniqueFd fd;
  std::thread thread;
  std::atomic<bool> stop{false};

  explicit UdpEchoServer(const char* ip) {
    socklen_t len = 0;
    auto ss = addr(ip, 0, len);
    fd.reset(::socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0);
    thread = std::thread([this] {
      char buf[2048];
      while (!stop) {
        pollfd p{fd.get(), POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        sockaddr_storage peer{};
        socklen_t pl = sizeof peer;
        const ssize_t n = ::recvfrom(fd.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &pl);
        if (n < 0) continue;
        char peer_ip[INET6_ADDRSTRLEN] = "";
        const void* a = peer.ss_family == AF_INET6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6&>(peer).sin6_addr)
                                                   : static_cast<const void*>(&reinterpret_cast<sockaddr_in&>(peer).sin_addr);
        inet_ntop(peer.ss_family, a, peer_ip, sizeof peer_ip);
        const std::string reply = std::string(peer_ip) + ":" + std::to_string(port_of_peer(peer)) + " " +
                                  std::string(buf, static_cast<size_t>(n));
        ::sendto(fd.get(), reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&peer), pl);
      }
    });
  }
  static int port_of_peer(const sockaddr_storage& ss) {
    return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(ss).sin6_port
                                          : reinterpret_cast<const sockaddr_in&>(ss).sin_port);
  }
  int port() const { return port_of(fd.get()); }
  ~UdpEchoServer() {
    stop = true;
    thread.join();
  }
};

int free_udp_port(const char* ip) {
  socklen_t len = 0;
  auto ss = addr(ip, 0, len);
  UniqueFd fd(::socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0);
  return port_of(fd.get());
}

UniqueFd udp_client(const char* ip, int port) {
  socklen_t len = 0;
  auto ss = addr(ip, port, len);
  UniqueFd fd(::socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0);
  return fd;
}

// Sends `msg`, returns the answer ("" after `timeout_ms` without one).
std::string udp_ask(int fd, const std::string& msg, int timeout_ms = 3000) {
  ::send(fd, msg.data(), msg.size(), 0);
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return "";
  char buf[2048];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}


}  // namespace

TEST_CASE("UDP forward: one flow per client, echo both ways, idle flows closed, remove stops it", "[fwd][udp]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  UdpEchoServer echo("127.0.0.1");
  ForwarderOptions opts;
  opts.udp_idle_ms = 300;
  Forwarder fwd(*conn, opts);
  const int port = free_udp_port("127.0.0.1");
  socklen_t hl = 0, gl = 0;
  auto h = addr("127.0.0.1", port, hl);
  auto g = addr("0.0.0.0", echo.port(), gl);  // unspecified: the container's loopback
  CHECK(fwd.add(ep(h, hl), ep(g, gl), true, true) == -EINVAL);  // no PROXY header for UDP
  REQUIRE(fwd.add(ep(h, hl), ep(g, gl), false, true) == 0);
  CHECK(fwd.add(ep(h, hl), ep(g, gl), false, true) == -EADDRINUSE);
  // A TCP forward on the same host port is a different forward.
  EchoServer tcp_echo("127.0.0.1");
  socklen_t tl = 0;
  auto tg = addr("127.0.0.1", tcp_echo.port(), tl);
  CHECK(fwd.add(ep(h, hl), ep(tg, tl), false) == 0);

  UniqueFd a = udp_client("127.0.0.1", port), b = udp_client("127.0.0.1", port);
  const std::string a1 = udp_ask(a.get(), "hello"), b1 = udp_ask(b.get(), "world");
  const std::string a2 = udp_ask(a.get(), "again");
  REQUIRE(a1.size() > 6);
  REQUIRE(b1.size() > 6);
  CHECK(a1.substr(a1.find(' ')) == " hello");
  CHECK(b1.substr(b1.find(' ')) == " world");
  // Each client has its own flow (inner socket, hence its own source port); a flow is reused.
  const std::string peer_a = a1.substr(0, a1.find(' ')), peer_b = b1.substr(0, b1.find(' '));
  CHECK(peer_a.rfind("127.0.0.1:", 0) == 0);
  CHECK(peer_a != peer_b);
  CHECK(a2 == peer_a + " again");
  CHECK(fwd.stats().udp_flows.load() == 2);
  CHECK(fwd.stats().bytes_in.load() == 15);
  // Datagram boundaries are kept: a large one arrives whole.
  const std::string big(1400, 'x');
  CHECK(udp_ask(b.get(), big) == peer_b + " " + big);

  // Idle flows are closed (about a second after udp_idle_ms); the next datagram opens a new one.
  CHECK(wait_until([&] { return fwd.stats().udp_flows.load() == 0; }, 4000));
  const std::string a3 = udp_ask(a.get(), "later");
  CHECK(a3.substr(a3.find(' ')) == " later");
  CHECK(a3.substr(0, a3.find(' ')) != peer_a);
  CHECK(fwd.stats().udp_flows.load() == 1);

  // Removal closes the host socket and the flows; the TCP forward on the same port stays.
  CHECK(fwd.remove(ep(h, hl), true) == 0);
  CHECK(fwd.remove(ep(h, hl), true) == -ENOENT);
  CHECK(fwd.stats().udp_flows.load() == 0);
  CHECK(udp_ask(a.get(), "gone", 500) == "");
  UniqueFd t = connect_to("127.0.0.1", port);
  REQUIRE(t);
  CHECK(echo_roundtrip(t.get(), 1000));
}

TEST_CASE("UDP forward: flow cap (the least recently used flow makes room), and IPv6", "[fwd][udp][ipv6]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  UdpEchoServer echo("::1");
  ForwarderOptions opts;
  opts.udp_max_flows = 2;
  opts.udp_max_flows_per_source = 2;  // all clients are ::1
  Forwarder fwd(*conn, opts);
  const int port = free_udp_port("::1");
  socklen_t hl = 0, gl = 0;
  auto h = addr("::1", port, hl);
  auto g = addr("::1", echo.port(), gl);
  REQUIRE(fwd.add(ep(h, hl), ep(g, gl), false, true) == 0);
  UniqueFd a = udp_client("::1", port), b = udp_client("::1", port), c = udp_client("::1", port);
  const std::string ra = udp_ask(a.get(), "a");
  CHECK(ra.rfind("::1:", 0) == 0);
  CHECK(ra.substr(ra.find(' ')) == " a");
  CHECK(udp_ask(b.get(), "b").size() > 2);
  CHECK(udp_ask(a.get(), "a1").substr(ra.find(' ')) == " a1");  // a is used more recently than b
  // A third client: over the cap, b's flow (least recently used) makes room.
  const std::string rc = udp_ask(c.get(), "c");
  CHECK(rc.substr(rc.find(' ')) == " c");
  CHECK(fwd.stats().udp_evicted.load() == 1);
  CHECK(fwd.stats().udp_flows.load() == 2);
  CHECK(udp_ask(a.get(), "a2") == ra.substr(0, ra.find(' ')) + " a2");  // a kept its flow
}

TEST_CASE("UDP forward: one source with many ports cannot lock other clients out", "[fwd][udp]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  UdpEchoServer echo("127.0.0.1");
  ForwarderOptions opts;
  opts.udp_max_flows = 8;
  opts.udp_max_flows_per_source = 4;
  Forwarder fwd(*conn, opts);
  const int port = free_udp_port("127.0.0.1");
  socklen_t hl = 0, gl = 0;
  auto h = addr("127.0.0.1", port, hl);
  auto g = addr("127.0.0.1", echo.port(), gl);
  REQUIRE(fwd.add(ep(h, hl), ep(g, gl), false, true) == 0);
  // 20 sockets of one source address (127.0.0.2), each sending and refreshing its flow.
  std::vector<UniqueFd> flood;
  for (int i = 0; i < 20; ++i) {
    socklen_t bl = 0;
    auto b = addr("127.0.0.2", 0, bl);
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&b), bl) == 0);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&h), hl) == 0);
    flood.push_back(std::move(fd));
  }
  for (int round = 0; round < 2; ++round)
    for (auto& fd : flood) udp_ask(fd.get(), "flood", 200);
  CHECK(fwd.stats().udp_flows.load() == 4);  // the source's limit
  // Another client still gets a flow, and an answer.
  UniqueFd a = udp_client("127.0.0.1", port);
  const std::string ra = udp_ask(a.get(), "hello");
  REQUIRE(ra.size() > 6);
  CHECK(ra.substr(ra.find(' ')) == " hello");
  CHECK(fwd.stats().udp_flows.load() == 5);
}

TEST_CASE("forwarder: a command that timed out is cancelled, never run later", "[fwd][timeout]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  EchoServer echo("127.0.0.1");
  ForwarderOptions opts;
  opts.command_timeout_ms = 300;
  Forwarder fwd(*conn, opts);
  const int port = free_port("127.0.0.1");
  add_fwd(fwd, "127.0.0.1", port, "127.0.0.1", echo.port());

  // Worker 0 stalls: it accepts a client and waits for the (stopped) connector's reply.
  REQUIRE(::kill(conn->pid(), SIGSTOP) == 0);
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }
  } resume{conn->pid()};
  UniqueFd c = connect_to("127.0.0.1", port);
  REQUIRE(c);
  REQUIRE(wait_until([&] { return fwd.stats().accepted.load() == 1; }, 2000));  // and now waits
  const int port2 = free_port("127.0.0.1");
  socklen_t hl = 0, gl = 0;
  auto h2 = addr("127.0.0.1", port2, hl);
  auto g = addr("127.0.0.1", echo.port(), gl);
  CHECK(fwd.add(ep(h2, hl), ep(g, gl), false) == -ETIMEDOUT);

  REQUIRE(::kill(conn->pid(), SIGCONT) == 0);
  CHECK(echo_roundtrip(c.get(), 1000));  // the stalled connection goes on
  // The add the caller was told had timed out did not happen later: nothing to remove, the port
  // is free.
  CHECK(fwd.remove(ep(h2, hl)) == -ENOENT);
  CHECK(!connect_to("127.0.0.1", port2));
  UniqueFd again = listen_on("127.0.0.1", port2);
  CHECK(again);
}

TEST_CASE("bounded_call: result, timeout cancels, unrun queue gives -ECANCELED", "[fwd][timeout]") {
  std::vector<std::function<void(int)>> queue;  // the "owning thread" runs it by hand
  auto post = [&queue](std::function<void(int)> fn) { queue.push_back(std::move(fn)); };
  int runs = 0;
  auto task = [&runs](int arg) {
    ++runs;
    return -arg;
  };
  // Not run within the timeout: cancelled; running it later does nothing.
  CHECK(slirpnetd::bounded_call<int>(post, task, std::chrono::milliseconds(50)) == -ETIMEDOUT);
  REQUIRE(queue.size() == 1);
  queue.front()(7);
  CHECK(runs == 0);
  queue.clear();
  // Run in time: its result.
  std::thread runner;
  auto post_async = [&runner](std::function<void(int)> fn) { runner = std::thread([fn] { fn(5); }); };
  CHECK(slirpnetd::bounded_call<int>(post_async, task, std::chrono::milliseconds(5000)) == -5);
  runner.join();
  CHECK(runs == 1);
  // Dropped unrun (the owning thread stopped): -ECANCELED at once.
  auto post_drop = [](std::function<void(int)> fn) { fn = nullptr; };
  CHECK(slirpnetd::bounded_call<int>(post_drop, task, std::chrono::milliseconds(5000)) == -ECANCELED);
  CHECK(runs == 1);
}

namespace {

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int highest_fd() {
  int hi = 0;
  for (int fd = 0; fd < 65536; ++fd)
    if (::fcntl(fd, F_GETFD) >= 0) hi = fd;
  return hi;
}

}  // namespace

TEST_CASE("splice forward: out of fds, the listener pauses instead of spinning, then recovers", "[fwd][fds]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  EchoServer echo("127.0.0.1");
  ForwarderOptions opts;
  opts.max_conns = 1000;  // not the limit here: the fds are
  Forwarder fwd(*conn, opts);
  const int port = free_port("127.0.0.1");
  add_fwd(fwd, "127.0.0.1", port, "127.0.0.1", echo.port());
  socklen_t len = 0;
  const sockaddr_storage to = addr("127.0.0.1", port, len);
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(client);

  // No fd left for anyone in this process: accept4() in worker 0 fails with EMFILE.
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(highest_fd() + 1);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  struct Restore {
    rlimit rl;
    std::vector<UniqueFd> fillers;  // the free slots below the limit
    ~Restore() { ::setrlimit(RLIMIT_NOFILE, &rl); }
  } restore{saved, {}};
  for (int fd; (fd = ::fcntl(0, F_DUPFD_CLOEXEC, 0)) >= 0;) restore.fillers.emplace_back(fd);
  const int filled_errno = errno;
  // No Catch2 assertion until fds are back: UBSan's vptr check (in the sanitizer build) needs a
  // pipe, and reports a bogus error without one.
  const int connected = ::connect(client.get(), reinterpret_cast<const sockaddr*>(&to), len);  // to the backlog
  // Worker 0 has met EMFILE and paused the listener (a bounded wait, without Catch2: see above).
  const bool paused_in_time = wait_until([&] { return fwd.stats().accept_paused.load() >= 1; }, 2000);
  const double cpu0 = cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const double busy = cpu_seconds() - cpu0;
  const uint64_t paused = fwd.stats().accept_paused.load();
  const uint64_t active = fwd.stats().active.load();

  // fds again: the queued client is served.
  ::setrlimit(RLIMIT_NOFILE, &saved);
  restore.fillers.clear();
  REQUIRE(filled_errno == EMFILE);
  REQUIRE(connected == 0);
  CHECK(paused_in_time);
  CHECK(busy < 0.2);  // a spinning worker 0 burns the whole second
  CHECK(paused >= 1);
  CHECK(active == 0);
  timeval tv{10, 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  CHECK(echo_roundtrip(client.get(), 1000));
}

TEST_CASE("splice forward: connection cap and idle timeout", "[fwd][fds]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  EchoServer echo("127.0.0.1");
  ForwarderOptions opts;
  opts.max_conns = 2;
  opts.conn_idle_ms = 800;
  Forwarder fwd(*conn, opts);
  const int port = free_port("127.0.0.1");
  add_fwd(fwd, "127.0.0.1", port, "127.0.0.1", echo.port());
  UniqueFd a = connect_to("127.0.0.1", port), b = connect_to("127.0.0.1", port);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(wait_until([&] { return fwd.stats().active.load() == 2; }, 2000));
  UniqueFd c = connect_to("127.0.0.1", port);  // completes in the kernel, waits in the backlog
  REQUIRE(c);
  CHECK(wait_until([&] { return fwd.stats().accept_paused.load() >= 1; }, 2000));
  CHECK(fwd.stats().active.load() == 2);
  // a keeps talking; b stays idle and is reset after conn_idle_ms, which lets c in.
  for (int i = 0; i < 20 && fwd.stats().idle_closed.load() == 0; ++i) {
    CHECK(fwd.stats().active.load() <= 2);  // c still waits
    char x = 'x', y = 0;
    REQUIRE(::send(a.get(), &x, 1, MSG_NOSIGNAL) == 1);
    REQUIRE(::recv(a.get(), &y, 1, 0) == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(fwd.stats().idle_closed.load() == 1);
  char y;
  errno = 0;
  CHECK(::recv(b.get(), &y, 1, 0) <= 0);  // reset
  CHECK(echo_roundtrip(c.get(), 1000));
  CHECK(echo_roundtrip(a.get(), 1000));
}

namespace {

// The sizes of every pipe this process has open (the forwarder's, here).
std::vector<int> pipe_sizes() {
  std::vector<int> sizes;
  for (int fd = 0; fd < 4096; ++fd) {
    const int n = ::fcntl(fd, F_GETPIPE_SZ);
    if (n > 0) sizes.push_back(n);
  }
  return sizes;
}

}  // namespace

TEST_CASE("splice forward: pipes start at the default size and grow only for bulk transfers", "[fwd][pipes]") {
  REQUIRE_NETNS();
  const std::vector<int> before = pipe_sizes();
  auto conn = Connector::start("", "");
  REQUIRE(conn);
  EchoServer echo("127.0.0.1");
  Forwarder fwd(*conn);
  const int port = free_port("127.0.0.1");
  add_fwd(fwd, "127.0.0.1", port, "127.0.0.1", echo.port());
  UniqueFd small = connect_to("127.0.0.1", port);
  REQUIRE(small);
  char x = 'x', y = 0;
  REQUIRE(::send(small.get(), &x, 1, MSG_NOSIGNAL) == 1);
  REQUIRE(::recv(small.get(), &y, 1, 0) == 1);
  std::vector<int> sizes = pipe_sizes();
  REQUIRE(sizes.size() == before.size() + 4);  // one pipe per direction, two fds each
  for (int n : sizes) CHECK(n <= 65536);
  CHECK(fwd.stats().active.load() == 1);
  UniqueFd bulk = connect_to("127.0.0.1", port);
  REQUIRE(bulk);
  // 16 MiB each way, the connection kept open.
  const size_t total = 16u << 20;
  std::thread sender([&] {
    std::vector<char> out(1 << 16, 'b');
    for (size_t off = 0; off < total;) {
      const ssize_t n = ::send(bulk.get(), out.data(), std::min(out.size(), total - off), MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  });
  std::vector<char> in(1 << 16);
  size_t got = 0;
  while (got < total) {
    const ssize_t n = ::recv(bulk.get(), in.data(), in.size(), 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  sender.join();
  REQUIRE(got == total);
  sizes = pipe_sizes();
  CHECK(std::count(sizes.begin(), sizes.end(), 1 << 20) == 4);  // the bulk connection's, both ways
  CHECK(std::count(sizes.begin(), sizes.end(), 65536) >= 4);    // the small one's
}

TEST_CASE("connector: a stuck child makes connect() time out, its late answer is discarded", "[fwd][connector]") {
  REQUIRE_NETNS();
  auto conn = Connector::start("", "", 300);
  REQUIRE(conn);
  EchoServer echo("127.0.0.1");
  socklen_t len = 0;
  const sockaddr_storage to = addr("127.0.0.1", echo.port(), len);
  REQUIRE(::kill(conn->pid(), SIGSTOP) == 0);
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }
  } resume{conn->pid()};
  UniqueFd out;
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(conn->connect(to, len, out) == -ETIMEDOUT);
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= std::chrono::milliseconds(250));
  CHECK(waited < std::chrono::milliseconds(2000));
  CHECK(!out);
  REQUIRE(::kill(conn->pid(), SIGCONT) == 0);
  // The next request gets its own answer (the stale one, for the first request, is skipped).
  UniqueFd fd;
  REQUIRE(conn->connect(to, len, fd) == 0);
  pollfd p{fd.get(), POLLOUT, 0};
  REQUIRE(::poll(&p, 1, 5000) == 1);
  timeval tv{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const int flags = ::fcntl(fd.get(), F_GETFL);
  ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  CHECK(echo_roundtrip(fd.get(), 1000));
}
