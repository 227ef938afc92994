#pragma once
// Shared by the test_ctl*.cpp files: an Engine that behaves like libslirp's hostfwd table (a
// duplicate add fails with EADDRINUSE, removing an unknown forward fails) and records what it was
// given, a StatsSource with fixed counters, an Api wired to them as the daemon wires its own, and
// a NetConfig.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ctl/api.hpp"
#include "hostfwd/registry.hpp"

namespace ctl_test {

// What the engine received, flattened for the checks.
struct Hostfwd {
  explicit Hostfwd(const slirpnetd::hostfwd::Forward& f)
      : udp(f.udp), splice(f.splice), proxy_protocol(f.proxy_protocol), host(f.host.storage()), host_len(f.host.len()),
        guest(f.guest.storage()), guest_len(f.guest.len()) {}
  bool udp, splice, proxy_protocol;
  sockaddr_storage host;
  socklen_t host_len;
  sockaddr_storage guest;
  socklen_t guest_len;
};

inline bool same_host(const Hostfwd& a, const Hostfwd& b) {
  return a.udp == b.udp && a.host_len == b.host_len && std::memcmp(&a.host, &b.host, a.host_len) == 0;
}

class FakeBackend : public slirpnetd::hostfwd::Engine, public slirpnetd::ctl::StatsSource {
 public:
  int add(const slirpnetd::hostfwd::Forward& f) override {
    std::lock_guard lock(mu_);
    const Hostfwd fwd(f);
    added.push_back(fwd);
    if (fail_add != 0) return fail_add;
    for (const auto& a : active)
      if (same_host(a, fwd)) return -EADDRINUSE;
    active.push_back(fwd);
    return 0;
  }
  int remove(const slirpnetd::hostfwd::Forward& f) override {
    std::lock_guard lock(mu_);
    const Hostfwd fwd(f);
    removed.push_back(fwd);
    if (fail_remove != 0) return fail_remove;
    for (auto it = active.begin(); it != active.end(); ++it)
      if (same_host(*it, fwd)) {
        active.erase(it);
        return 0;
      }
    return -ENOENT;
  }
  slirpnetd::ctl::Stats stats() override { return stats_value; }

  std::vector<Hostfwd> added, removed, active;
  int fail_add = 0, fail_remove = 0;
  slirpnetd::ctl::Stats stats_value;

 private:
  std::mutex mu_;
};

// A registry and an Api on a FakeBackend, as the daemon wires them.
class TestApi {
 public:
  TestApi(FakeBackend& backend, const slirpnetd::config::NetConfig& net, std::FILE* log)
      : registry(backend, net), api(registry, backend, log) {}
  std::string handle_request(std::string_view request) { return api.handle_request(request); }
  std::vector<std::pair<int, slirpnetd::hostfwd::Forward>> forwards() const { return registry.list(); }

  slirpnetd::hostfwd::Registry registry;
  slirpnetd::ctl::Api api;
};

inline slirpnetd::config::NetConfig test_net(bool ipv6 = false) {
  slirpnetd::config::NetConfig net;
  inet_pton(AF_INET, "10.0.2.0", &net.network);
  inet_pton(AF_INET, "10.0.2.100", &net.guest);
  net.enable_ipv6 = ipv6;
  return net;
}

}  // namespace ctl_test
