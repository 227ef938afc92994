// hostfwd: Endpoint (the one address validation) and Registry (the one owner of forwards). The
// API's use of the registry, message by message, is in test_ctl.cpp.
#include <arpa/inet.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <set>
#include <thread>
#include <vector>

#include "hostfwd/endpoint.hpp"
#include "hostfwd/registry.hpp"

using slirpnetd::hostfwd::AddResult;
using slirpnetd::hostfwd::Endpoint;
using slirpnetd::hostfwd::Engine;
using slirpnetd::hostfwd::Error;
using slirpnetd::hostfwd::Forward;
using slirpnetd::hostfwd::Registry;
using slirpnetd::hostfwd::Request;

namespace {

struct CountingEngine : Engine {
  int add(const Forward& f) override {
    if (f.host.port() == busy_port) return -EADDRINUSE;
    ++adds;
    return 0;
  }
  int remove(const Forward&) override { return remove_result; }
  std::atomic<int> adds{0};
  int busy_port = -1;
  int remove_result = 0;
};

slirpnetd::config::NetConfig net() {
  slirpnetd::config::NetConfig n;
  inet_pton(AF_INET, "10.0.2.100", &n.guest);
  return n;
}

Request tcp(int host_port, int guest_port = 80) {
  Request r;
  r.host_port = host_port;
  r.guest_port = guest_port;
  return r;
}

}  // namespace

TEST_CASE("Endpoint: only IPv4/IPv6 literals and their sockaddrs", "[hostfwd]") {
  auto e = Endpoint::parse("127.0.0.1", 8080);
  REQUIRE(e);
  CHECK(e->family() == AF_INET);
  CHECK(e->len() == sizeof(sockaddr_in));
  CHECK(e->port() == 8080);
  CHECK(e->addr_text() == "127.0.0.1");
  e = Endpoint::parse("::1", 1);
  REQUIRE(e);
  CHECK(e->is_ipv6());
  CHECK(e->len() == sizeof(sockaddr_in6));
  CHECK_FALSE(Endpoint::parse("::1", 1, false));
  for (const char* bad : {"", "localhost", "1.2.3", "1.2.3.4 ", "[::1]", "::1%lo"}) {
    INFO(bad);
    CHECK_FALSE(Endpoint::parse(bad, 1));
  }
  CHECK_FALSE(Endpoint::parse(std::string("127.0.0.1\0x", 11), 1));
  CHECK_FALSE(Endpoint::parse("127.0.0.1", 65536));
  CHECK_FALSE(Endpoint::parse("127.0.0.1", -1));
  CHECK_FALSE(e->with_port(0));

  sockaddr_storage ss = e->storage();
  CHECK(Endpoint::from_sockaddr(ss, sizeof(sockaddr_in6)) == e);
  CHECK_FALSE(Endpoint::from_sockaddr(ss, sizeof(sockaddr_in)));  // length of the other family
  ss.ss_family = AF_UNIX;  // libslirp would abort on it
  CHECK_FALSE(Endpoint::from_sockaddr(ss, sizeof(sockaddr_in6)));
  CHECK(*Endpoint::parse("10.0.0.1", 5) != *Endpoint::parse("10.0.0.1", 6));
}

TEST_CASE("Registry: ids, refusals and removal", "[hostfwd]") {
  CountingEngine engine;
  Registry reg(engine, net());
  CHECK(reg.add(tcp(8080)).id == 1);
  engine.busy_port = 8081;
  const AddResult busy = reg.add(tcp(8081));
  CHECK(busy.error == Error::kEngine);
  CHECK(busy.err == -EADDRINUSE);
  CHECK(reg.add(tcp(0)).error == Error::kHostPort);
  CHECK(reg.add(tcp(8082, 70000)).error == Error::kGuestPort);
  Request pp = tcp(8083);
  pp.proxy_protocol = true;  // slirp mode by default: no PROXY header there
  CHECK(reg.add(pp).error == Error::kProxyProtocol);
  pp.splice = true;
  CHECK(reg.add(pp).id == 2);  // refusals took no id
  auto list = reg.list();
  REQUIRE(list.size() == 2);
  CHECK(list[0].second.guest.addr_text() == "10.0.2.100");
  CHECK(list[1].second.splice);

  engine.remove_result = -ETIMEDOUT;
  auto r = reg.remove(1);
  CHECK(r.found);
  CHECK(r.err == -ETIMEDOUT);
  CHECK(reg.list().size() == 2);  // kept: the engine still has it
  engine.remove_result = 0;
  CHECK(reg.remove(1).err == 0);
  CHECK_FALSE(reg.remove(1).found);
  CHECK_FALSE(reg.remove(0).found);
  CHECK(reg.add(tcp(8080)).id == 3);  // never reused
}

TEST_CASE("Registry: clients on two threads get distinct ids", "[hostfwd]") {
  CountingEngine engine;
  Registry reg(engine, net());
  std::vector<int> a, b;
  std::thread t([&] {
    for (int i = 0; i < 200; ++i) a.push_back(reg.add(tcp(10000 + i)).id);
  });
  for (int i = 0; i < 200; ++i) b.push_back(reg.add(tcp(20000 + i)).id);
  t.join();
  std::set<int> ids(a.begin(), a.end());
  ids.insert(b.begin(), b.end());
  CHECK(ids.size() == 400);
  CHECK(*ids.begin() == 1);
  CHECK(*ids.rbegin() == 400);
  CHECK(reg.list().size() == 400);
}
