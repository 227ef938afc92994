// fuzz_options: bytes split on NUL -> argv -> config::parse_args and, when it says run,
// config::make_net_config and print_banner (all into ostringstreams).
//
// Checks: no crash, no exception escapes, exit statuses are slirp4netns's (0 for help/version,
// 1 for errors), an early exit always prints something (usage, message), and a configuration that validates has a sane
// MTU and a network address inside its own netmask.
#include <arpa/inet.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "config/options.hpp"

namespace cfg = slirpnetd::config;

namespace {

[[noreturn]] void die(const char* what, const std::vector<std::string>& args) {
  std::fprintf(stderr, "fuzz_options: %s; argv:", what);
  for (const auto& a : args) std::fprintf(stderr, " '%s'", a.c_str());
  std::fprintf(stderr, "\n");
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // long command lines add nothing but time
  std::vector<std::string> args{"slirp4netns"};
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(data[i]));
    }
  }
  if (!cur.empty()) args.push_back(cur);
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);

  std::ostringstream out, err;
  const cfg::ParseResult r = cfg::parse_args(static_cast<int>(args.size()), argv.data(), out, err);
  if (r.exit_status) {
    if (*r.exit_status != 0 && *r.exit_status != 1) die("exit status is neither 0 nor 1", args);
    if (out.str().empty() && err.str().empty()) die("exit without printing anything", args);
    return 0;
  }
  const cfg::Options& o = r.options;
  if (o.mtu <= 0 || o.mtu > 65521) die("parse_args accepted an out-of-range MTU", args);

  std::ostringstream err2, banner;
  const auto net = cfg::make_net_config(o, err2);
  if (!net) {
    if (err2.str().empty()) die("make_net_config failed without a message", args);
    return 0;
  }
  if (net->prefix_len < 0 || net->prefix_len > 32) die("prefix length out of range", args);
  if ((net->network.s_addr & ~net->netmask.s_addr) != 0) die("network address has host bits", args);
  if ((net->guest.s_addr & net->netmask.s_addr) != net->network.s_addr) die("guest outside the network", args);
  cfg::print_banner(banner, o, *net);
  if (banner.str().empty()) die("empty banner", args);
  return 0;
}
