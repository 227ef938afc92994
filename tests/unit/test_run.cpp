// run: `slirpnetd run` command line and -p specs (the namespaces themselves: t_run.sh).
#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "run/run_options.hpp"

using namespace slirpnetd::run;

namespace {

struct Parsed {
  RunParse r;
  std::string out, err;
};

Parsed parse(std::vector<const char*> args) {
  args.insert(args.begin(), "run");
  std::ostringstream out, err;
  Parsed p{parse_run_args(static_cast<int>(args.size()), args.data(), out, err), {}, {}};
  p.out = out.str();
  p.err = err.str();
  return p;
}

}  // namespace

TEST_CASE("port specs of -p", "[run]") {
  auto p = parse_port("8080:80");
  REQUIRE(p);
  CHECK(p->host_addr.empty());
  CHECK(p->host_port == 8080);
  CHECK(p->guest_port == 80);
  CHECK(!p->udp);
  p = parse_port("127.0.0.1:18080:80/udp");
  REQUIRE(p);
  CHECK(p->host_addr == "127.0.0.1");
  CHECK(p->udp);
  p = parse_port("[::1]:8080:80/tcp");
  REQUIRE(p);
  CHECK(p->host_addr == "::1");
  CHECK(p->host_port == 8080);
  const auto req = hostfwd_request(*p);
  CHECK(!req.udp);
  CHECK(!req.splice);  // the daemon's default mode
  CHECK(req.host_addr == "::1");
  CHECK(req.host_port == 8080);
  CHECK(req.guest_addr.empty());
  CHECK(req.guest_port == 80);
  for (const char* bad : {"", "80", "8080:", ":80", "0:80", "8080:65536", "8080:80/sctp", "a:b", "1:2:3:4",
                          "[::1]8080:80", "[]:1:2", ":1:2", "8080:80x", "99999999:1"}) {
    INFO(bad);
    CHECK(!parse_port(bad));
  }
}

TEST_CASE("run options map onto the daemon's", "[run]") {
  auto p = parse({"--mtu=65520", "--cidr", "10.1.0.0/24", "--disable-host-loopback", "-6", "-a", "/tmp/x.sock", "-p",
                  "8080:80", "-p9090:90/udp", "--netns-path=/run/netns/x", "--forward-mode=splice", "--", "sh", "-c",
                  "exit 3"});
  REQUIRE(!p.r.exit_status);
  const RunOptions& o = p.r.options;
  CHECK(o.daemon.configure);
  CHECK(o.daemon.mtu == 65520);
  CHECK(o.daemon.cidr == "10.1.0.0/24");
  CHECK(o.daemon.disable_host_loopback);
  CHECK(o.daemon.enable_ipv6);
  CHECK(o.daemon.api_socket == "/tmp/x.sock");
  CHECK(o.daemon.tapname == "tap0");
  CHECK(o.daemon.forward_mode == slirpnetd::config::ForwardMode::Splice);
  REQUIRE(o.ports.size() == 2);
  CHECK(o.ports[1].udp);
  CHECK(o.netns_path == "/run/netns/x");
  CHECK(o.command == std::vector<std::string>{"sh", "-c", "exit 3"});
  // The command starts at the first non-option, and its own options are its own.
  p = parse({"-m", "1400", "ls", "-l", "--mtu=1"});
  REQUIRE(!p.r.exit_status);
  CHECK(p.r.options.daemon.mtu == 1400);
  CHECK(p.r.options.command == std::vector<std::string>{"ls", "-l", "--mtu=1"});
}

TEST_CASE("run option errors", "[run]") {
  auto p = parse({"--bogus", "--", "true"});
  CHECK(p.r.exit_status == 1);
  CHECK(p.err.find("unrecognized option '--bogus'") != std::string::npos);
  p = parse({"--"});
  CHECK(p.r.exit_status == 1);
  CHECK(p.err.find("no command given") != std::string::npos);
  p = parse({"-p", "80", "true"});
  CHECK(p.r.exit_status == 1);
  CHECK(p.err.find("bad port forward '80'") != std::string::npos);
  p = parse({"--mtu=0", "true"});  // the daemon's own check and message
  CHECK(p.r.exit_status == 1);
  CHECK(p.err.find("MTU must be a positive integer (< 65522)") != std::string::npos);
  p = parse({"--cidr=10.0.2.100/24", "true"});
  REQUIRE(!p.r.exit_status);  // make_net_config checks it later, as for the daemon
  p = parse({"-p"});
  CHECK(p.r.exit_status == 1);
  p = parse({"--help"});
  CHECK(p.r.exit_status == 0);
  CHECK(p.out.find("Usage: slirpnetd run") != std::string::npos);
  // It says plainly that it is not confined.
  CHECK(p.out.find("Run mode is a convenience, not a security boundary: its networking runs without the\n"
                   "sandbox and the seccomp filter") != std::string::npos);
}
