#pragma once
// Shared by the test_ctl*.cpp files: a Backend that behaves like libslirp's hostfwd table (a
// duplicate add fails with EADDRINUSE, removing an unknown forward fails), and a NetConfig.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "ctl/api.hpp"

namespace ctl_test {

using slirpnetd::ctl::Hostfwd;

inline bool same_host(const Hostfwd& a, const Hostfwd& b) {
  return a.udp == b.udp && a.host_len == b.host_len && std::memcmp(&a.host, &b.host, a.host_len) == 0;
}

class FakeBackend : public slirpnetd::ctl::Backend {
 public:
  int add_hostfwd(const Hostfwd& fwd) override {
    std::lock_guard lock(mu_);
    added.push_back(fwd);
    if (fail_add != 0) return fail_add;
    for (const auto& f : active)
      if (same_host(f, fwd)) return -EADDRINUSE;
    active.push_back(fwd);
    return 0;
  }
  int remove_hostfwd(const Hostfwd& fwd) override {
    std::lock_guard lock(mu_);
    removed.push_back(fwd);
    if (fail_remove != 0) return fail_remove;
    for (auto it = active.begin(); it != active.end(); ++it)
      if (same_host(*it, fwd)) {
        active.erase(it);
        return 0;
      }
    return -ENOENT;
  }
  std::string stats_json() override { return stats; }

  std::vector<Hostfwd> added, removed, active;
  int fail_add = 0, fail_remove = 0;
  std::string stats = R"({ "rx_frames": 12, "tx_frames": 3 })";

 private:
  std::mutex mu_;
};

inline slirpnetd::config::NetConfig test_net(bool ipv6 = false) {
  slirpnetd::config::NetConfig net;
  inet_pton(AF_INET, "10.0.2.0", &net.network);
  inet_pton(AF_INET, "10.0.2.100", &net.guest);
  net.enable_ipv6 = ipv6;
  return net;
}

}  // namespace ctl_test
