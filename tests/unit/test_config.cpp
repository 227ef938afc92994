// Unit tests for src/config: slirp4netns 1.3 command line, --cidr and friends, usage, version, banner.
// Expected texts are written out from slirp4netns 1.3's behaviour, not copied from our source.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "skip.hpp"

extern "C" const char* slirp_version_string(void);  // libslirp, linked through slirpnetd_config

using namespace slirpnetd::config;

namespace {

struct Run {
  std::optional<int> status;
  Options opts;
  std::string out;
  std::string err;
};

Run parse_with_prog(const char* prog, std::vector<const char*> args) {
  args.insert(args.begin(), prog);
  std::ostringstream out, err;
  ParseResult r = parse_args(static_cast<int>(args.size()), args.data(), out, err);
  return {r.exit_status, r.options, out.str(), err.str()};
}

Run parse(std::vector<const char*> args) { return parse_with_prog("slirpnetd", std::move(args)); }

std::string usage() {
  std::ostringstream s;
  print_usage(s);
  return s.str();
}

// An error: exactly `message` (plus newline) on err, the usage on out (or nothing), status 1.
void require_error(const Run& r, const std::string& message, bool with_usage = true) {
  REQUIRE(r.status == 1);
  CHECK(r.err == (message.empty() ? "" : message + "\n"));
  CHECK(r.out == (with_usage ? usage() : ""));
}

// "PREFIX" followed by a dotted version N.N.N.
bool is_version_line(const std::string& line, const std::string& prefix) {
  if (line.rfind(prefix, 0) != 0) return false;
  int dots = 0;
  bool digit_before = false;
  for (char c : line.substr(prefix.size())) {
    if (c == '.' && digit_before) {
      ++dots;
      digit_before = false;
    } else if (c >= '0' && c <= '9') {
      digit_before = true;
    } else {
      return false;
    }
  }
  return dots == 2 && digit_before;
}

std::string ntop(in_addr a) {
  char buf[INET_ADDRSTRLEN];
  return inet_ntop(AF_INET, &a, buf, sizeof buf);
}

std::string ntop(in6_addr a) {
  char buf[INET6_ADDRSTRLEN];
  return inet_ntop(AF_INET6, &a, buf, sizeof buf);
}

struct NetRun {
  std::optional<NetConfig> net;
  std::string err;
};

NetRun net_of(const Options& o) {
  std::ostringstream err;
  auto net = make_net_config(o, err);
  return {net, err.str()};
}

NetRun net_with_cidr(const char* cidr) {
  Options o;
  o.cidr = cidr;
  return net_of(o);
}

std::string banner(const Options& o) {
  std::ostringstream err;
  auto net = make_net_config(o, err);
  INFO(err.str());
  REQUIRE(net);
  std::ostringstream s;
  print_banner(s, o, *net);
  return s.str();
}

}  // namespace

TEST_CASE("defaults with PID and TAPNAME", "[parse]") {
  auto r = parse({"1234", "tap0"});
  REQUIRE_FALSE(r.status);
  CHECK(r.out.empty());
  CHECK(r.err.empty());
  const Options& o = r.opts;
  CHECK(o.target_pid == 1234);
  CHECK(o.tapname == "tap0");
  CHECK(o.netns_type == NetnsType::Pid);
  CHECK(o.target_type == TargetType::Netns);
  CHECK_FALSE(o.configure);
  CHECK(o.exit_fd == -1);
  CHECK(o.ready_fd == -1);
  CHECK(o.mtu == 1500);
  CHECK(o.cidr == "10.0.2.0/24");
  CHECK(o.api_socket.empty());
  CHECK_FALSE(o.enable_ipv6);
  CHECK_FALSE(o.disable_host_loopback);
  CHECK_FALSE(o.enable_sandbox);
  CHECK_FALSE(o.enable_seccomp);
  CHECK_FALSE(o.disable_dns);
  CHECK_FALSE(o.print_stats);
}

TEST_CASE("every option in long form with =", "[parse]") {
  auto r = parse({"--configure", "--exit-fd=4", "--ready-fd=3", "--mtu=65520", "--enable-ipv6",
                  "--api-socket=/tmp/api.sock", "--cidr=10.0.135.128/25", "--disable-host-loopback",
                  "--netns-type=pid", "--userns-path=/proc/self/ns/user", "--enable-sandbox",
                  "--enable-seccomp", "--outbound-addr=127.0.0.1", "--outbound-addr6=::1", "--disable-dns",
                  "--macaddress=0e:d4:18:aa:bb:cc", "--target-type=netns", "--stats", "42", "tap0"});
  REQUIRE_FALSE(r.status);
  CHECK(r.err.empty());
  const Options& o = r.opts;
  CHECK(o.configure);
  CHECK(o.exit_fd == 4);
  CHECK(o.ready_fd == 3);
  CHECK(o.mtu == 65520);
  CHECK(o.enable_ipv6);
  CHECK(o.api_socket == "/tmp/api.sock");
  CHECK(o.cidr == "10.0.135.128/25");
  CHECK(o.disable_host_loopback);
  CHECK(o.userns_path == "/proc/self/ns/user");
  CHECK(o.enable_sandbox);
  CHECK(o.enable_seccomp);
  CHECK(o.outbound_addr == "127.0.0.1");
  CHECK(o.outbound_addr6 == "::1");
  CHECK(o.disable_dns);
  CHECK(o.macaddress == "0e:d4:18:aa:bb:cc");
  CHECK(o.print_stats);
  CHECK(o.target_pid == 42);
  // Parse-time WARNING lines go to stdout, in command-line order.
  CHECK(r.out ==
        "WARNING: Support for IPv6 is experimental\n"
        "WARNING: Support for seccomp is experimental\n"
        "WARNING: Support for --outbound-addr is experimental\n"
        "WARNING: Support for --outbound-addr6 is experimental\n");
}

TEST_CASE("long options with a separate value and short options", "[parse]") {
  auto r = parse({"--exit-fd", "4", "--mtu", "9000", "--api-socket", "/a", "--cidr", "10.1.0.0/16",
                  "--netns-type", "pid", "--target-type", "netns", "1", "t"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.exit_fd == 4);
  CHECK(r.opts.mtu == 9000);
  CHECK(r.opts.api_socket == "/a");
  CHECK(r.opts.cidr == "10.1.0.0/16");

  r = parse({"-c", "-e", "5", "-r6", "-m", "2000", "-6", "-a", "/b", "1", "t"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.configure);
  CHECK(r.opts.exit_fd == 5);
  CHECK(r.opts.ready_fd == 6);  // -r6 is -r with value 6, not -r and -6
  CHECK(r.opts.mtu == 2000);
  CHECK(r.opts.enable_ipv6);
  CHECK(r.opts.api_socket == "/b");
}

TEST_CASE("bundled short flags", "[parse]") {
  auto r = parse({"-c6", "1", "t"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.configure);
  CHECK(r.opts.enable_ipv6);

  r = parse({"-6cm1400", "1", "t"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.configure);
  CHECK(r.opts.mtu == 1400);

  r = parse({"-cm", "1300", "1", "t"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.mtu == 1300);
}

TEST_CASE("unique prefixes of long options", "[parse]") {
  auto r = parse({"--conf", "--api=/x", "--mac", "02:00:00:00:00:01", "--disable-h", "--disable-d",
                  "--enable-i", "--sta", "--outbound-addr=127.0.0.1", "1", "t"});
  INFO(r.err);
  REQUIRE_FALSE(r.status);
  CHECK(r.err.empty());
  CHECK(r.opts.configure);
  CHECK(r.opts.api_socket == "/x");
  CHECK(r.opts.macaddress == "02:00:00:00:00:01");
  CHECK(r.opts.disable_host_loopback);
  CHECK(r.opts.disable_dns);
  CHECK(r.opts.enable_ipv6);
  CHECK(r.opts.print_stats);
  CHECK(r.opts.outbound_addr == "127.0.0.1");  // exact name wins over --outbound-addr6
  // --outbound-addr6 exactly is not a prefix problem either.
  r = parse({"--outbound-addr6=::1", "1", "t"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.outbound_addr6 == "::1");
  CHECK(r.opts.outbound_addr.empty());
}

TEST_CASE("permutation: options after positionals", "[parse]") {
  auto r = parse({"123", "tap0", "--api-socket", "x", "-c", "--mtu=4000"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.target_pid == 123);
  CHECK(r.opts.tapname == "tap0");
  CHECK(r.opts.api_socket == "x");
  CHECK(r.opts.configure);
  CHECK(r.opts.mtu == 4000);

  r = parse({"123", "-c", "tap0"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.tapname == "tap0");
  CHECK(r.opts.configure);
}

TEST_CASE("double dash ends options and option values may look like options", "[parse]") {
  auto r = parse({"-c", "--", "1", "-tap"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.configure);
  CHECK(r.opts.tapname == "-tap");

  r = parse({"--api-socket", "--cidr", "1", "t"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.api_socket == "--cidr");
  CHECK(r.opts.cidr == "10.0.2.0/24");

  r = parse({"-a", "-c", "1", "t"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.api_socket == "-c");
  CHECK_FALSE(r.opts.configure);

  r = parse({"--api-socket", "--", "1", "t"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.api_socket == "--");

  // "-" alone is a positional.
  r = parse({"--netns-type=path", "-", "t"});
  require_error(r, std::string("existing path expected when --netns-type=path: No such file or directory"));
}

TEST_CASE("repeated options: the last one wins", "[parse]") {
  auto r = parse({"--mtu=2000", "-m", "3000", "--api-socket=a", "-a", "b", "--cidr=10.1.0.0/16",
                  "--cidr=10.2.0.0/16", "1", "t"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.mtu == 3000);
  CHECK(r.opts.api_socket == "b");
  CHECK(r.opts.cidr == "10.2.0.0/16");

  r = parse({"--mtu=abc", "--mtu=1500", "1", "t"});  // checked per occurrence, like getopt's loop
  require_error(r, "MTU must be a positive integer (< 65522)");
}

TEST_CASE("deprecated aliases print their WARNING and act like the new flag", "[parse]") {
  auto r = parse({"--no-host-loopback", "--create-sandbox", "1", "t"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.disable_host_loopback);
  CHECK(r.opts.enable_sandbox);
  CHECK(r.out ==
        "WARNING: --no-host-loopback is deprecated and will be removed in future releases, please use "
        "--disable-host-loopback instead.\n"
        "WARNING: --create-sandbox is deprecated and will be removed in future releases, please use "
        "--enable-sandbox instead.\n");
}

TEST_CASE("getopt error messages name argv0", "[parse][errors]") {
  SECTION("unrecognized long option") {
    require_error(parse({"--bogus", "1", "t"}), "slirpnetd: unrecognized option '--bogus'");
    require_error(parse_with_prog("./bin/x", {"1", "t", "--bogus=1"}), "./bin/x: unrecognized option '--bogus=1'");
  }
  SECTION("invalid short option") {
    require_error(parse({"-x", "1", "t"}), "slirpnetd: invalid option -- 'x'");
    auto r = parse({"-c6x"});
    REQUIRE(r.status == 1);
    CHECK(r.err == "slirpnetd: invalid option -- 'x'\n");
  }
  SECTION("missing argument") {
    require_error(parse({"1", "t", "--mtu"}), "slirpnetd: option '--mtu' requires an argument");
    require_error(parse({"1", "t", "--mt"}), "slirpnetd: option '--mtu' requires an argument");
    require_error(parse({"1", "t", "-m"}), "slirpnetd: option requires an argument -- 'm'");
    require_error(parse({"1", "t", "-cm"}), "slirpnetd: option requires an argument -- 'm'");
  }
  SECTION("argument to a flag") {
    require_error(parse({"--configure=yes", "1", "t"}), "slirpnetd: option '--configure' doesn't allow an argument");
    require_error(parse({"--conf=yes", "1", "t"}), "slirpnetd: option '--configure' doesn't allow an argument");
  }
  SECTION("ambiguous abbreviation") {
    require_error(parse({"--disable", "1", "t"}),
                  "slirpnetd: option '--disable' is ambiguous; possibilities: '--disable-host-loopback' "
                  "'--disable-dns'");
    require_error(parse({"--enable-s", "1", "t"}),
                  "slirpnetd: option '--enable-s' is ambiguous; possibilities: '--enable-sandbox' "
                  "'--enable-seccomp'");
    require_error(parse({"--outbound=x", "1", "t"}),
                  "slirpnetd: option '--outbound=x' is ambiguous; possibilities: '--outbound-addr' "
                  "'--outbound-addr6'");
  }
  SECTION("options before the error are still processed first, in order") {
    auto r = parse({"-6", "--bogus"});
    REQUIRE(r.status == 1);
    CHECK(r.out == "WARNING: Support for IPv6 is experimental\n" + usage());
    CHECK(r.err == "slirpnetd: unrecognized option '--bogus'\n");

    require_error(parse({"--mtu=0", "--bogus"}), "MTU must be a positive integer (< 65522)");
  }
}

TEST_CASE("help prints usage on out with status 0 in getopt order", "[parse][help]") {
  for (const char* h : {"-h", "--help", "--he"}) {
    auto r = parse({h});
    REQUIRE(r.status == 0);
    CHECK(r.out == usage());
    CHECK(r.err.empty());
  }
  auto r = parse({"-h", "--bogus"});  // help comes first
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  require_error(parse({"--bogus", "-h"}), "slirpnetd: unrecognized option '--bogus'");
  require_error(parse({"-m", "x", "-h"}), "MTU must be a positive integer (< 65522)");
  r = parse({"1", "t", "-ch"});  // after valid options and positionals
  CHECK(r.status == 0);
}

TEST_CASE("usage text", "[help]") {
  const std::string u = usage();
  // The flags Podman and RootlessKit grep --help for, and every other one.
  for (const char* flag :
       {"--disable-host-loopback", "--mtu", "--enable-sandbox", "--enable-seccomp", "--cidr", "--outbound-addr",
        "--enable-ipv6", "--netns-type", "--api-socket", "--configure", "--exit-fd", "--ready-fd",
        "--userns-path", "--outbound-addr6", "--disable-dns", "--macaddress", "--target-type", "--help",
        "--version", "--stats", "-c,", "-e,", "-r,", "-m,", "-6,", "-a,", "-h,", "-v,"}) {
    INFO(flag);
    CHECK(u.find(flag) != std::string::npos);
  }
  CHECK(u.rfind("Usage: slirpnetd [OPTION]... PID|PATH|FD [TAPNAME]\n", 0) == 0);
  CHECK(u.find("--netns-type=TYPE \t specify network namespace type ([path|pid|tapfd], default=pid)\n") !=
        std::string::npos);
  CHECK(u.find("--userns-path=PATH\t specify user namespace path\n") != std::string::npos);
  CHECK(u.find("-v, --version            show version and exit\n--stats ") != std::string::npos);
}

TEST_CASE("version lines", "[version]") {
  for (const char* v : {"-v", "--version", "--vers"}) {
    auto r = parse({v, "--bogus"});
    INFO(v << " out=" << r.out << " err=" << r.err);
    REQUIRE(r.status == 0);
    CHECK(r.err.empty());
    std::istringstream lines(r.out);
    std::string l1, l2, l3, l4, l5, extra;
    std::getline(lines, l1);
    std::getline(lines, l2);
    std::getline(lines, l3);
    std::getline(lines, l4);
    std::getline(lines, l5);
    CHECK(is_version_line(l1, "slirpnetd version "));
    CHECK(l2 == std::string("libslirp: ") + slirp_version_string());
    CHECK(l3 == "SLIRP_CONFIG_VERSION_MAX: 4");  // 4.7.0's; our patches add no SlirpConfig field
    CHECK(is_version_line(l4, "libseccomp: "));
#if SLIRPNETD_LIBSLIRP_BUNDLED
    // The version string carries the patch level: Debian's revision + the number of patches.
    CHECK(l2 == "libslirp: 4.7.0-1+slirpnetd." + std::to_string(SLIRPNETD_LIBSLIRP_PATCHES));
    CHECK(l5.rfind("libslirp build: bundled (", 0) == 0);
#else
    CHECK(l5.rfind("libslirp build: system (", 0) == 0);
#endif
    CHECK_FALSE(std::getline(lines, extra));
    CHECK(r.out.back() == '\n');
  }
}

TEST_CASE("tcp-buffer-max option", "[parse][extensions]") {
#if SLIRPNETD_LIBSLIRP_BUNDLED
  CHECK(parse({"1", "tap0"}).opts.tcp_buffer_max == 0);  // libslirp's default
  CHECK(parse({"--tcp-buffer-max=65536", "1", "tap0"}).opts.tcp_buffer_max == 65536);
  CHECK(parse({"--tcp-buffer-max=512K", "1", "tap0"}).opts.tcp_buffer_max == 512 * 1024);
  CHECK(parse({"--tcp-buffer-max", "16M", "1", "tap0"}).opts.tcp_buffer_max == 16 * 1024 * 1024);
  for (const char* bad : {"--tcp-buffer-max=1000", "--tcp-buffer-max=300M", "--tcp-buffer-max=4G",
                          "--tcp-buffer-max=M", "--tcp-buffer-max=-1M", "--tcp-buffer-max=1.5M"}) {
    INFO(bad);
    require_error(parse({bad, "1", "tap0"}),
                  "--tcp-buffer-max must be a size from 64K to 256M (bytes, or with a K or M suffix)");
  }
#else
  require_error(parse({"--tcp-buffer-max=4M", "1", "tap0"}),
                "--tcp-buffer-max needs the bundled libslirp (this slirpnetd links the system one)");
#endif
}

TEST_CASE("per-option value errors", "[parse][errors]") {
  for (const char* bad : {"-1", "abc", "3x", "99999999999"}) {
    INFO(bad);
    require_error(parse({"-e", bad, "1", "t"}), "exit-fd must be a non-negative integer");
    require_error(parse({"--ready-fd", bad, "1", "t"}), "ready-fd must be a non-negative integer");
  }
  for (const char* bad : {"0", "-1", "65522", "1500x", "", "abc"}) {
    INFO(bad);
    require_error(parse({"1", "t", "--mtu", bad}), "MTU must be a positive integer (< 65522)");
  }
  auto r = parse({"-m", "1", "-e", "0", "-r", "0", "1", "t"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.mtu == 1);
  CHECK(r.opts.exit_fd == 0);
  CHECK(parse({"-m", "65521", "1", "t"}).opts.mtu == 65521);

  require_error(parse({"--userns-path=/nonexistent/userns", "1", "t"}),
                "userns path doesn't exist: /nonexistent/userns");
  // Checked inside the loop: it wins over a later bad option.
  require_error(parse({"--userns-path=/nonexistent/userns", "--bogus"}),
                "userns path doesn't exist: /nonexistent/userns");
}

TEST_CASE("positionals in pid mode", "[parse][errors]") {
  require_error(parse({}), "");
  require_error(parse({"-c"}), "");
  require_error(parse({"1"}), "");
  require_error(parse({"abc"}), "PID must be a positive integer");  // PID parsed before the count check
  require_error(parse({"0", "t"}), "PID must be a positive integer");
  require_error(parse({"-5", "t"}), "slirpnetd: invalid option -- '5'");
  require_error(parse({"--", "-5", "t"}), "PID must be a positive integer");
  require_error(parse({"--netns-type=pid", "12a", "t"}), "PID must be a positive integer");

  auto r = parse({"1", "t", "extra"});
  REQUIRE_FALSE(r.status);
  CHECK(r.out == "WARNING: too many arguments\n");
  CHECK(r.err.empty());
  CHECK(r.opts.tapname == "t");

  r = parse({"1", "abcdefghijklmnopqrstuvwxyz"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.tapname == "abcdefghijklmno");  // truncated to IFNAMSIZ - 1, no error
  CHECK(r.err.empty());
}

TEST_CASE("positionals in path and tapfd modes", "[parse][errors]") {
  auto r = parse({"--netns-type=path", "/proc/self/ns/net", "tap0"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.netns_type == NetnsType::Path);
  CHECK(r.opts.netns_path == "/proc/self/ns/net");
  CHECK(r.opts.tapname == "tap0");

  r = parse({"--netns-type=foo", "/proc/self/ns/net", "tap0"});  // anything else is path
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.netns_type == NetnsType::Path);

  require_error(parse({"--netns-type=path", "/nonexistent/netns", "tap0"}),
                "existing path expected when --netns-type=path: No such file or directory");
  require_error(parse({"--netns-type=path", "/proc/self/ns/net"}), "");

  r = parse({"--netns-type=tapfd", "7"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.netns_type == NetnsType::TapFd);
  CHECK(r.opts.tapfd == 7);
  CHECK(r.out.empty());

  r = parse({"--netns-type", "tapfd", "0", "tap0"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.tapfd == 0);
  CHECK(r.out == "WARNING: too many arguments\n");

  require_error(parse({"--netns-type=tapfd", "x"}), "TAPFD must a file descriptor");
  require_error(parse({"--netns-type=tapfd", "--", "-1"}), "TAPFD must a file descriptor");
  require_error(parse({"--netns-type=tapfd"}), "");
}

TEST_CASE("macaddress requires configure in any order", "[parse][errors]") {
  require_error(parse({"--macaddress=02:00:00:00:00:01", "1", "t"}),
                "--macaddr cannot be specified when --configure or -c is not specified");
  auto r = parse({"1", "t", "--macaddress=02:00:00:00:00:01", "-c"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.macaddress == "02:00:00:00:00:01");
}

TEST_CASE("target-type netns or bess", "[parse][errors]") {
  auto r = parse({"--target-type=bess", "/tmp/bess.sock"});
  REQUIRE_FALSE(r.status);
  CHECK(r.opts.target_type == TargetType::Bess);
  CHECK(r.opts.bess_socket == "/tmp/bess.sock");
  CHECK(r.out == "WARNING: BESS mode is experimental\n");

  require_error(parse({"--target-type=bess"}), "");
  require_error(parse({"--target-type=bess", "a", "b"}), "too many arguments");
  require_error(parse({"--target-type=bess", "-c", "a"}), "--configure conflicts with --target-type=bess");
  require_error(parse({"--target-type=bess", "--netns-type=pid", "a"}),
                "--netns-type conflicts with --target-type=bess");
  require_error(parse({"--target-type=bess", "--userns-path=/proc/self/ns/user", "a"}),
                "--userns-path conflicts with --target-type=bess");
  require_error(parse({"--target-type=foo", "1", "t"}), "--target-type must be either \"netns\" or \"bess\"");
  // The MAC check comes before the bess branch.
  require_error(parse({"--target-type=bess", "--macaddress=x", "a"}),
                "--macaddr cannot be specified when --configure or -c is not specified");
}

TEST_CASE("cidr validation in slirp4netns order", "[net]") {
  struct Case {
    const char* cidr;
    const char* message;
  };
  for (const Case& c : {Case{"24", "invalid CIDR: 24"}, Case{"foo", "invalid CIDR: foo"},
                        Case{"10.0.2.0", "invalid CIDR: 10.0.2.0"}, Case{"10.0.2.0/024", "invalid CIDR: 10.0.2.0/024"},
                        Case{"10.0.2.0/100", "invalid CIDR: 10.0.2.0/100"}, Case{"", "invalid CIDR: "},
                        Case{"300.0.2.0/24", "invalid network address: 300.0.2.0"},
                        Case{"010.0.2.0/24", "invalid network address: 010.0.2.0"},
                        Case{"10.0.2.0/0", "prefix length needs to be 1-25"},
                        Case{"10.0.2.0/26", "prefix length needs to be 1-25"},
                        Case{"10.0.2.100/24",
                             "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24"}}) {
    INFO(c.cidr);
    auto r = net_with_cidr(c.cidr);
    CHECK_FALSE(r.net);
    CHECK(r.err == std::string(c.message) + "\n");
  }
}

TEST_CASE("derived addresses", "[net]") {
  auto r = net_with_cidr("10.0.2.0/24");
  REQUIRE(r.net);
  CHECK(r.err.empty());
  const NetConfig& n = *r.net;
  CHECK(ntop(n.network) == "10.0.2.0");
  CHECK(ntop(n.netmask) == "255.255.255.0");
  CHECK(n.prefix_len == 24);
  CHECK(ntop(n.gateway) == "10.0.2.2");
  CHECK(ntop(n.dns) == "10.0.2.3");
  CHECK(ntop(n.dhcp_start) == "10.0.2.15");
  CHECK(ntop(n.dhcp_end) == "10.0.2.30");
  CHECK(ntop(n.guest) == "10.0.2.100");
  CHECK(ntop(n.prefix6) == "fd00::");
  CHECK(n.prefix6_len == 64);
  CHECK(ntop(n.gateway6) == "fd00::2");
  CHECK(ntop(n.dns6) == "fd00::3");
  CHECK_FALSE(n.outbound4);
  CHECK_FALSE(n.outbound6);
  CHECK_FALSE(n.mac);

  r = net_with_cidr("10.0.135.128/25");
  REQUIRE(r.net);
  CHECK(ntop(r.net->netmask) == "255.255.255.128");
  CHECK(ntop(r.net->gateway) == "10.0.135.130");
  CHECK(ntop(r.net->guest) == "10.0.135.228");

  r = net_with_cidr("192.168.0.0/1");  // prefix 1 passes (the host bits are checked: 192 & 128 != 192)
  CHECK_FALSE(r.net);
  CHECK(net_with_cidr("0.0.0.0/1").net);

  Options o;
  o.mtu = 65520;
  o.enable_ipv6 = o.disable_host_loopback = o.disable_dns = true;
  auto n2 = net_of(o).net;
  REQUIRE(n2);
  CHECK(n2->mtu == 65520);
  CHECK(n2->enable_ipv6);
  CHECK(n2->disable_host_loopback);
  CHECK(n2->disable_dns);
}

TEST_CASE("cpu-affinity is parsed into three CPU numbers", "[parse]") {
  auto r = parse({"1", "t"});
  REQUIRE(!r.status);
  CHECK(r.opts.cpu_affinity == std::array<int, 3>{-1, -1, -1});
  r = parse({"--cpu-affinity=1,0,3", "1", "t"});
  REQUIRE(!r.status);
  CHECK(r.opts.cpu_affinity == std::array<int, 3>{1, 0, 3});
  for (const char* bad : {"--cpu-affinity=1,2", "--cpu-affinity=1,2,3,4", "--cpu-affinity=1,-2,3", "--cpu-affinity=a,b,c"})
    require_error(parse({bad, "1", "t"}), "--cpu-affinity must be three CPU numbers: READER,WRITER,SLIRP");
}

TEST_CASE("outbound-addr and outbound-addr6", "[net]") {
  Options o;
  o.outbound_addr = "192.0.2.7";
  o.outbound_addr6 = "2001:db8::7";
  auto r = net_of(o);
  REQUIRE(r.net);
  REQUIRE(r.net->outbound4);
  CHECK(r.net->outbound4->sin_family == AF_INET);
  CHECK(ntop(r.net->outbound4->sin_addr) == "192.0.2.7");
  CHECK(r.net->outbound4->sin_port == 0);
  REQUIRE(r.net->outbound6);
  CHECK(r.net->outbound6->sin6_family == AF_INET6);
  CHECK(ntop(r.net->outbound6->sin6_addr) == "2001:db8::7");

  Options bad;
  bad.outbound_addr = "no-such-if0";
  r = net_of(bad);
  CHECK_FALSE(r.net);
  CHECK(r.err == "outbound-addr has to be valid ipv4 address or interface name.\n");
  bad.outbound_addr = "::1";  // an IPv6 literal is not an IPv4 address
  CHECK(net_of(bad).err == "outbound-addr has to be valid ipv4 address or interface name.\n");

  bad = Options{};
  bad.outbound_addr6 = "no-such-if0";
  r = net_of(bad);
  CHECK_FALSE(r.net);
  CHECK(r.err == "outbound-addr has to be valid ipv4 address or iterface name.\n");  // sic

  // Order: CIDR is checked before outbound addresses.
  bad.cidr = "foo";
  CHECK(net_of(bad).err == "invalid CIDR: foo\n");
}

// Interface names: the address of "lo" here (this test runs in the host's network namespace,
// where lo normally has 127.0.0.1 and ::1). The IPv6 lookup uses the --outbound-addr6 string on its
// own (slirp4netns used the IPv4 one).
bool lo_has(int family) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return false;
  bool found = false;
  for (ifaddrs* i = list; i; i = i->ifa_next)
    found |= i->ifa_addr && i->ifa_addr->sa_family == family && std::string(i->ifa_name) == "lo";
  ::freeifaddrs(list);
  return found;
}

TEST_CASE("outbound-addr by interface name (IPv4)", "[net]") {
  if (!lo_has(AF_INET)) SLIRPNETD_SKIP("lo has no IPv4 address here");
  Options by_name;
  by_name.outbound_addr = "lo";
  auto r = net_of(by_name);
  INFO(r.err);
  REQUIRE(r.net);
  REQUIRE(r.net->outbound4);
  CHECK(ntop(r.net->outbound4->sin_addr) == "127.0.0.1");
}

TEST_CASE("outbound-addr6 by interface name (IPv6)", "[net]") {
  if (!lo_has(AF_INET6)) SLIRPNETD_SKIP("lo has no IPv6 address here");
  Options by_name;
  by_name.outbound_addr6 = "lo";
  auto r = net_of(by_name);
  INFO(r.err);
  REQUIRE(r.net);
  REQUIRE(r.net->outbound6);
  CHECK(ntop(r.net->outbound6->sin6_addr) == "::1");
}

TEST_CASE("macaddress parsing", "[net]") {
  Options o;
  o.configure = true;
  o.macaddress = "0e:D4:18:aa:0x1:2";
  auto r = net_of(o);
  REQUIRE(r.net);
  REQUIRE(r.net->mac);
  CHECK(*r.net->mac == std::array<uint8_t, 6>{0x0e, 0xd4, 0x18, 0xaa, 0x01, 0x02});

  const std::string second =
      "macaddress has to be a valid MAC address (hex string, 6 bytes, each byte separated by a ':').\n";
  for (const char* bad : {"0e:d4:18", "zz:00:00:00:00:00", "100:00:00:00:00:00", "0e:d4:18:aa:bb:", "0e-d4-18-aa-bb-cc",
                          ":::::"}) {
    INFO(bad);
    o.macaddress = bad;
    r = net_of(o);
    CHECK_FALSE(r.net);
    CHECK(r.err == "\"" + std::string(bad) + "\" is an invalid MAC address.\n" + second);
  }
  o.macaddress = "0e:d4:18:aa:bb:cc:dd";
  r = net_of(o);
  CHECK_FALSE(r.net);
  CHECK(r.err == "\"0e:d4:18:aa:bb:cc:dd\" is an invalid MAC address.  Is it too long?\n" + second);

  // An empty value is refused at parse time (Options uses "" for "not given").
  auto p = parse({"-c", "--macaddress=", "1", "t"});
  CHECK(p.status == 1);
  CHECK(p.err == "\"\" is an invalid MAC address.\n" + second);
}

TEST_CASE("banner byte for byte", "[banner]") {
  const std::string head =
      "Starting slirp\n"
      "* MTU:             1500\n"
      "* Network:         10.0.2.0\n"
      "* Netmask:         255.255.255.0\n"
      "* Gateway:         10.0.2.2\n"
      "* DNS:             10.0.2.3\n"
      "* DHCP begin:      10.0.2.15\n"
      "* DHCP end:        10.0.2.30\n"
      "* Recommended IP:  10.0.2.100\n";
  const std::string warning =
      "WARNING: 127.0.0.1:* on the host is accessible as 10.0.2.2 (set --disable-host-loopback to prohibit "
      "connecting to 127.0.0.1:*)\n";

  SECTION("defaults") { CHECK(banner(parse({"1", "t"}).opts) == head + warning); }
  SECTION("with -a") {
    CHECK(banner(parse({"-a", "/run/user/1000/api.sock", "1", "t"}).opts) ==
          head + "* API Socket:      /run/user/1000/api.sock\n" + warning);
  }
  SECTION("--disable-host-loopback drops the warning") {
    CHECK(banner(parse({"--disable-host-loopback", "1", "t"}).opts) == head);
  }
  SECTION("--macaddress, -a and outbound, in source order") {
    auto r = parse({"-c", "-a", "/s", "--macaddress=0E:D4:18:aa:bb:0c", "--outbound-addr=192.0.2.1",
                    "--outbound-addr6=2001:db8::1", "1", "t"});
    REQUIRE_FALSE(r.status);
    CHECK(banner(r.opts) == head +
                                "* API Socket:      /s\n"
                                "* Outbound IPv4:    192.0.2.1\n"
                                "* Outbound IPv6:    2001:db8::1\n"
                                "* MAC address:     0e:d4:18:aa:bb:0c\n" +
                                warning);
  }
  SECTION("other CIDR and MTU; the warning names the gateway") {
    auto r = parse({"--cidr=10.0.135.128/25", "--mtu=65520", "1", "t"});
    REQUIRE_FALSE(r.status);
    CHECK(banner(r.opts) ==
          "Starting slirp\n"
          "* MTU:             65520\n"
          "* Network:         10.0.135.128\n"
          "* Netmask:         255.255.255.128\n"
          "* Gateway:         10.0.135.130\n"
          "* DNS:             10.0.135.131\n"
          "* DHCP begin:      10.0.135.143\n"
          "* DHCP end:        10.0.135.158\n"
          "* Recommended IP:  10.0.135.228\n"
          "WARNING: 127.0.0.1:* on the host is accessible as 10.0.135.130 (set --disable-host-loopback to "
          "prohibit connecting to 127.0.0.1:*)\n");
  }
}

TEST_CASE("forward-mode option (slirpnetd extension)", "[parse][splice]") {
  auto r = parse({"1", "tap0"});
  CHECK(r.status == std::nullopt);
  CHECK(r.opts.forward_mode == ForwardMode::Slirp);
  CHECK(!r.opts.enable_splice);
  r = parse({"--splice", "1", "tap0"});
  CHECK(r.opts.enable_splice);
  CHECK(r.opts.forward_mode == ForwardMode::Slirp);
  r = parse({"--forward-mode=splice", "1", "tap0"});
  REQUIRE(r.status == std::nullopt);
  CHECK(r.opts.forward_mode == ForwardMode::Splice);
  CHECK(r.opts.enable_splice);
  std::ostringstream err;
  auto net = make_net_config(r.opts, err);
  REQUIRE(net);
  CHECK(net->forward_mode == ForwardMode::Splice);
  r = parse({"--forward-mode", "slirp", "1", "tap0"});
  CHECK(r.opts.forward_mode == ForwardMode::Slirp);
  require_error(parse({"--forward-mode=fast", "1", "tap0"}), "--forward-mode must be slirp or splice");
  CHECK(usage().find("--forward-mode=MODE") != std::string::npos);
}

TEST_CASE("log level: --log-level is kept for the daemon, which checks and applies it", "[parse][log]") {
  auto r = parse({"1", "tap0"});
  CHECK(r.opts.log_level.empty());  // the daemon then reads $SLIRPNETD_LOG_LEVEL, else warn
  r = parse({"--log-level=debug", "1", "tap0"});
  REQUIRE(r.status == std::nullopt);
  CHECK(r.opts.log_level == "debug");
  r = parse({"--log", "error", "1", "tap0", "--log-level", "off"});  // a unique prefix; the last one wins
  REQUIRE(r.status == std::nullopt);
  CHECK(r.opts.log_level == "off");
  require_error(parse({"1", "tap0", "--log-level"}), "slirpnetd: option '--log-level' requires an argument");
  CHECK(usage().find("\n--log-level=LEVEL ") != std::string::npos);
}
