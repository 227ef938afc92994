// daemon: SlirpBackend, the forwards engine and stats source of the daemon, on a live slirp thread
// with the real libslirp. libslirp's forwards are host sockets: libslirp_guest.hpp moves this
// process into private network and mount namespaces (only lo, resolv.conf naming 127.0.0.1)
// before main(), and aborts rather than run outside them.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <cerrno>

#include "daemon/slirp_backend.hpp"
#include "hostfwd/registry.hpp"
#include "libslirp_guest.hpp"

using namespace slirpnetd;

namespace {

config::NetConfig test_net(bool ipv6) {
  config::NetConfig n;
  inet_pton(AF_INET, "10.0.2.0", &n.network);
  inet_pton(AF_INET, "255.255.255.0", &n.netmask);
  inet_pton(AF_INET, "10.0.2.2", &n.gateway);
  inet_pton(AF_INET, "10.0.2.3", &n.dns);
  inet_pton(AF_INET, "10.0.2.15", &n.dhcp_start);
  inet_pton(AF_INET, "10.0.2.100", &n.guest);
  inet_pton(AF_INET6, "fd00::", &n.prefix6);
  inet_pton(AF_INET6, "fd00::2", &n.gateway6);
  inet_pton(AF_INET6, "fd00::3", &n.dns6);
  n.enable_ipv6 = ipv6;
  return n;
}

// The daemon's wiring, minus the TAP threads: rings, the slirp thread, the backend, the registry.
struct Daemon {
  explicit Daemon(bool ipv6 = false)
      : net(test_net(ipv6)),
        slirp(net, rx, tx, waker, stats.slirp),
        backend(slirp, stats, rx, tx),
        forwards(backend, net) {
    REQUIRE(slirp.start());
  }
  ~Daemon() { slirp.stop(); }
  config::NetConfig net;
  io::FrameChannel rx{16, io::FrameChannel::slot_bytes_for_mtu(1500)};
  io::FrameChannel tx{16, io::FrameChannel::slot_bytes_for_mtu(1500)};
  io::Waker waker;
  io::PipelineStats stats;
  slirp::SlirpThread slirp;
  daemon::SlirpBackend backend;
  hostfwd::Registry forwards;
};

// A port nobody listens on now (inside our namespace).
int free_port(int family, int type) {
  UniqueFd s(::socket(family, type | SOCK_CLOEXEC, 0));
  sockaddr_storage ss{};
  socklen_t len = family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  ss.ss_family = static_cast<sa_family_t>(family);
  REQUIRE(::bind(s.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0);
  REQUIRE(::getsockname(s.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  return ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(ss).sin6_port
                                  : reinterpret_cast<sockaddr_in&>(ss).sin_port);
}

// 0, or the errno of a TCP connect to ADDR:PORT.
int connect_error(const char* addr, int port) {
  auto to = hostfwd::Endpoint::parse(addr, port);
  REQUIRE(to);
  UniqueFd s(::socket(to->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  return ::connect(s.get(), to->sa(), to->len()) == 0 ? 0 : errno;
}

// 0, or the errno of binding a UDP socket on ADDR:PORT.
int udp_bind_error(const char* addr, int port) {
  auto at = hostfwd::Endpoint::parse(addr, port);
  REQUIRE(at);
  UniqueFd s(::socket(at->family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  return ::bind(s.get(), at->sa(), at->len()) == 0 ? 0 : errno;
}

hostfwd::Request request(const char* host_addr, int host_port, bool udp = false) {
  hostfwd::Request r;
  r.udp = udp;
  r.host_addr = host_addr;
  r.host_port = host_port;
  r.guest_port = 80;
  return r;
}

}  // namespace

TEST_CASE("SlirpBackend: a libslirp TCP forward listens on the host until it is removed", "[daemon]") {
  REQUIRE(libslirp_guest::kIsolated);
  Daemon d;
  const int port = free_port(AF_INET, SOCK_STREAM);
  CHECK(connect_error("127.0.0.1", port) == ECONNREFUSED);
  const auto added = d.forwards.add(request("127.0.0.1", port));
  REQUIRE(added.error == hostfwd::Error::kNone);
  CHECK(connect_error("127.0.0.1", port) == 0);  // libslirp's listener accepts
  const auto again = d.forwards.add(request("127.0.0.1", port));
  CHECK(again.error == hostfwd::Error::kEngine);
  CHECK(again.err == -EADDRINUSE);  // libslirp's errno, through the slirp thread
  CHECK(d.forwards.remove(added.id).err == 0);
  CHECK(connect_error("127.0.0.1", port) == ECONNREFUSED);
  CHECK(d.backend.stats().pipeline.slirp.commands == 3);  // each ran on the slirp thread
}

TEST_CASE("SlirpBackend: UDP and IPv6 forwards", "[daemon]") {
  REQUIRE(libslirp_guest::kIsolated);
  Daemon d(true);
  const int uport = free_port(AF_INET, SOCK_DGRAM);
  const auto udp = d.forwards.add(request("127.0.0.1", uport, true));
  REQUIRE(udp.error == hostfwd::Error::kNone);
  CHECK(udp_bind_error("127.0.0.1", uport) == EADDRINUSE);
  CHECK(d.forwards.remove(udp.id).err == 0);
  CHECK(udp_bind_error("127.0.0.1", uport) == 0);

  const int port6 = free_port(AF_INET6, SOCK_STREAM);
  const auto v6 = d.forwards.add(request("::1", port6));
  REQUIRE(v6.error == hostfwd::Error::kNone);
  CHECK(connect_error("::1", port6) == 0);
  // IPv6-only: the same port stays free for an IPv4 forward.
  CHECK(d.forwards.add(request("127.0.0.1", port6)).error == hostfwd::Error::kNone);
  CHECK(d.forwards.remove(v6.id).err == 0);
  CHECK(connect_error("::1", port6) == ECONNREFUSED);
}

TEST_CASE("SlirpBackend: splice forwards need a forwarder, and stats without one have no splice part", "[daemon]") {
  REQUIRE(libslirp_guest::kIsolated);
  Daemon d;
  auto req = request("127.0.0.1", free_port(AF_INET, SOCK_STREAM));
  req.splice = true;
  const auto r = d.forwards.add(req);
  CHECK(r.error == hostfwd::Error::kEngine);
  CHECK(r.err == -ENOTSUP);
  REQUIRE(d.slirp.call([](Slirp*) { return 0; }, std::chrono::seconds(2)) == 0);  // one round, at least
  const ctl::Stats st = d.backend.stats();
  CHECK_FALSE(st.splice);
  CHECK(st.pipeline.slirp.loops > 0);  // the live thread's counters
  CHECK(st.pipeline.slirp.commands == 1);
}
