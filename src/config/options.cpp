// config/options.cpp: the slirp4netns 1.3-compatible command line (net_config.cpp derives the
// addresses, text.cpp holds the help, version and banner texts).
//
// How parsing works. CLI11 holds the option table and dispatches every occurrence, in argv order,
// to a callback (trigger_on_parse) that does what slirp4netns's getopt switch does: per-option
// checks, WARNING lines, -h/-v. CLI11 2.1 has no getopt_long conventions of its own (no unique-prefix
// long options, getopt's messages), so scan_getopt() first walks argv like glibc getopt_long with
// permutation, using CLI11's own table for names and arities, and hands CLI11 a canonical argv
// (`--long-name VALUE ... -- POSITIONAL...`) that it cannot misread. An option error stops the scan
// where getopt would stop; what came before it still runs first (`-h --bogus` prints help).
#include "config/options.hpp"

#include <net/if.h>
#include <slirp/libslirp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <vector>

// --outbound-addr needs config version 2, --disable-dns version 3; we print and accept both
// unconditionally, so refuse to build against anything older.
static_assert(SLIRP_CONFIG_VERSION_MAX >= 3, "slirpnetd needs libslirp >= 4.3");

namespace slirpnetd::config {
namespace {

constexpr const char* kDefaultProg = "slirpnetd";
constexpr size_t kMaxTapNameLen = IFNAMSIZ - 1;  // slirp4netns: strncpy(ifr_name, name, IFNAMSIZ - 1)
constexpr int64_t kTcpBufferMin = 64 * 1024;          // --tcp-buffer-max bounds
constexpr int64_t kTcpBufferMax = 256 * 1024 * 1024;

// Thrown by an option callback to end parsing now; whatever had to be printed has been.
class StopParsing final : public std::exception {
 public:
  explicit StopParsing(int status) : status_(status) {}
  int status() const noexcept { return status_; }
  const char* what() const noexcept override { return "stop parsing"; }

 private:
  int status_;
};

// Values slirp4netns keeps as "optarg_*" during the getopt loop and checks after it.
struct ParseState {
  Options opts;
  std::optional<std::string> netns_type;
  std::optional<std::string> userns_path;
  std::optional<std::string> macaddress;
  std::optional<std::string> target_type;
  std::vector<std::string> positionals;
};

// strtol(s, &end, 10) with slirp4netns's acceptance rule: errno == 0 and *end == '\0'. Like strtol,
// this accepts leading blanks and a sign, and "" parses as 0. Values outside int are rejected
// (slirp4netns silently truncates them into an int).
std::optional<int> parse_int(const std::string& s) {
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v < INT_MIN || v > INT_MAX) return std::nullopt;
  return static_cast<int>(v);
}

std::optional<int> parse_non_negative(const std::string& s) {
  auto v = parse_int(s);
  if (v && *v < 0) return std::nullopt;
  return v;
}

// The option table, in slirp4netns's longopts order (getopt lists ambiguous candidates in it).
// Every callback is run by CLI11 once per occurrence, in command-line order.
void build_option_table(CLI::App& app, ParseState& st, std::ostream& out, std::ostream& err) {
  auto fail = [&out, &err](const std::string& message) {
    err << message << '\n';
    print_usage(out);
    throw StopParsing(1);
  };
  auto flag = [&app](const char* names, std::function<void()> fn) {
    app.add_flag_callback(names, std::move(fn))->trigger_on_parse();
  };
  auto value = [&app](const char* names, std::function<void(const std::string&)> fn) {
    app.add_option(names,
                   [fn = std::move(fn)](const CLI::results_t& r) {
                     fn(r.empty() ? std::string() : r.back());
                     return true;
                   })
        ->trigger_on_parse()
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  };
  Options& o = st.opts;

  flag("-c,--configure", [&o] { o.configure = true; });
  value("-e,--exit-fd", [&o, fail](const std::string& v) {
    auto fd = parse_non_negative(v);
    if (!fd) fail("exit-fd must be a non-negative integer");
    o.exit_fd = *fd;
  });
  value("-r,--ready-fd", [&o, fail](const std::string& v) {
    auto fd = parse_non_negative(v);
    if (!fd) fail("ready-fd must be a non-negative integer");
    o.ready_fd = *fd;
  });
  value("-m,--mtu", [&o, fail](const std::string& v) {
    auto mtu = parse_int(v);
    if (!mtu || *mtu <= 0 || *mtu > 65521) fail("MTU must be a positive integer (< 65522)");
    o.mtu = *mtu;
  });
  value("--cidr", [&o](const std::string& v) { o.cidr = v; });
  flag("--disable-host-loopback", [&o] { o.disable_host_loopback = true; });
  flag("--no-host-loopback", [&o, &out] {
    out << "WARNING: --no-host-loopback is deprecated and will be removed in future releases, please "
           "use --disable-host-loopback instead.\n";
    o.disable_host_loopback = true;
  });
  value("--netns-type", [&st](const std::string& v) { st.netns_type = v; });
  value("--userns-path", [&st, fail](const std::string& v) {
    // slirp4netns checks this inside the getopt loop, so it can come before later errors.
    if (access(v.c_str(), F_OK) == -1) fail("userns path doesn't exist: " + v);
    st.userns_path = v;
  });
  value("-a,--api-socket", [&o](const std::string& v) { o.api_socket = v; });
  flag("-6,--enable-ipv6", [&o, &out] {
    o.enable_ipv6 = true;
    out << "WARNING: Support for IPv6 is experimental\n";
  });
  flag("--enable-sandbox", [&o] { o.enable_sandbox = true; });
  flag("--create-sandbox", [&o, &out] {
    out << "WARNING: --create-sandbox is deprecated and will be removed in future releases, please "
           "use --enable-sandbox instead.\n";
    o.enable_sandbox = true;
  });
  flag("--enable-seccomp", [&o, &out] {
    out << "WARNING: Support for seccomp is experimental\n";
    o.enable_seccomp = true;
  });
  value("--outbound-addr", [&o, &out](const std::string& v) {
    out << "WARNING: Support for --outbound-addr is experimental\n";
    o.outbound_addr = v;
  });
  value("--outbound-addr6", [&o, &out](const std::string& v) {
    out << "WARNING: Support for --outbound-addr6 is experimental\n";
    o.outbound_addr6 = v;
  });
  flag("--disable-dns", [&o] { o.disable_dns = true; });
  value("--macaddress", [&st](const std::string& v) { st.macaddress = v; });
  value("--target-type", [&st](const std::string& v) { st.target_type = v; });
  flag("-h,--help", [&out] {
    print_usage(out);
    throw StopParsing(0);
  });
  flag("-v,--version", [&out] {
    print_version(out);
    throw StopParsing(0);
  });
  flag("--stats", [&o] { o.print_stats = true; });
  value("--offload", [&o, fail](const std::string& v) {
    if (v != "on" && v != "off") fail("--offload must be on or off");
    o.offload = v == "on";
  });
  value("--spin-us", [&o, fail](const std::string& v) {
    auto us = parse_int(v);
    if (!us || *us < 0 || *us > 1000) fail("--spin-us must be an integer from 0 to 1000");
    o.spin_us = *us;
  });
  value("--tcp-buffer-max", [&o, fail](const std::string& v) {
    // SIZE in bytes, or with a K or M suffix (KiB, MiB).
    std::string digits = v;
    size_t unit = 1;
    if (!digits.empty() && (digits.back() == 'K' || digits.back() == 'k')) unit = 1024;
    if (!digits.empty() && (digits.back() == 'M' || digits.back() == 'm')) unit = 1024 * 1024;
    if (unit != 1) digits.pop_back();
    auto n = parse_int(digits);
    const int64_t bytes = n ? int64_t{*n} * int64_t(unit) : -1;
    if (bytes < kTcpBufferMin || bytes > kTcpBufferMax)
      fail("--tcp-buffer-max must be a size from 64K to 256M (bytes, or with a K or M suffix)");
    if (!SLIRPNETD_LIBSLIRP_BUNDLED)
      fail("--tcp-buffer-max needs the bundled libslirp (this slirpnetd links the system one)");
    o.tcp_buffer_max = static_cast<size_t>(bytes);
  });
  value("--cpu-affinity", [&o, fail](const std::string& v) {
    int a, b, c;
    char end;
    if (std::sscanf(v.c_str(), "%d,%d,%d%c", &a, &b, &c, &end) != 3 || a < 0 || b < 0 || c < 0)
      fail("--cpu-affinity must be three CPU numbers: READER,WRITER,SLIRP");
    o.cpu_affinity = v;
  });
  value("--forward-mode", [&o, fail](const std::string& v) {
    if (v != "slirp" && v != "splice") fail("--forward-mode must be slirp or splice");
    o.forward_mode = v == "splice" ? ForwardMode::Splice : ForwardMode::Slirp;
    if (o.forward_mode == ForwardMode::Splice) o.enable_splice = true;
  });
  flag("--splice", [&o] { o.enable_splice = true; });

  app.add_option("ARGS", st.positionals);
}

struct OptSpec {
  std::string long_name;
  std::string short_names;
  bool takes_arg;
};

std::vector<OptSpec> spec_of(const CLI::App& app) {
  std::vector<OptSpec> specs;
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_lnames().empty()) continue;  // the positional ARGS
    OptSpec s{opt->get_lnames().front(), {}, opt->get_items_expected_max() > 0};
    for (const auto& sn : opt->get_snames()) s.short_names += sn;
    specs.push_back(std::move(s));
  }
  return specs;
}

struct Scan {
  std::vector<std::string> canonical;  // "--name" [VALUE] per option occurrence, in order
  std::vector<std::string> positionals;
  std::optional<std::string> error;  // getopt's message; `canonical` ends where getopt stopped
};

// glibc getopt_long(argc, argv, "ce:r:m:a:6hv", longopts) with GNU permutation (POSIXLY_CORRECT is
// not honoured), including its error messages, which name the program as argv[0].
Scan scan_getopt(const std::vector<OptSpec>& specs, const std::string& prog, int argc,
                 const char* const argv[]) {
  Scan scan;
  auto emit = [&scan](const OptSpec& s, const char* arg) {
    scan.canonical.push_back("--" + s.long_name);
    if (s.takes_arg) scan.canonical.emplace_back(arg);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      for (++i; i < argc; ++i) scan.positionals.emplace_back(argv[i]);
      break;
    }
    if (a.size() < 2 || a[0] != '-') {
      scan.positionals.push_back(a);
      continue;
    }
    if (a[1] == '-') {
      const size_t eq = a.find('=');
      const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      const OptSpec* found = nullptr;
      std::vector<const OptSpec*> candidates;
      for (const auto& s : specs) {
        if (s.long_name == name) {
          found = &s;
          break;
        }
        if (s.long_name.compare(0, name.size(), name) == 0) candidates.push_back(&s);
      }
      if (!found && candidates.size() == 1) found = candidates.front();
      if (!found) {
        if (candidates.empty()) {
          scan.error = prog + ": unrecognized option '" + a + "'";
        } else {
          std::string msg = prog + ": option '" + a + "' is ambiguous; possibilities:";
          for (const OptSpec* c : candidates) msg += " '--" + c->long_name + "'";
          scan.error = msg;
        }
        return scan;
      }
      if (eq != std::string::npos) {
        if (!found->takes_arg) {
          scan.error = prog + ": option '--" + found->long_name + "' doesn't allow an argument";
          return scan;
        }
        emit(*found, argv[i] + eq + 1);
      } else if (!found->takes_arg) {
        emit(*found, nullptr);
      } else if (i + 1 < argc) {
        emit(*found, argv[++i]);
      } else {
        scan.error = prog + ": option '--" + found->long_name + "' requires an argument";
        return scan;
      }
      continue;
    }
    // A cluster of short options: -c6, -m1500, -cm 1500.
    for (size_t j = 1; j < a.size(); ++j) {
      const char c = a[j];
      const OptSpec* found = nullptr;
      for (const auto& s : specs) {
        if (s.short_names.find(c) != std::string::npos) found = &s;
      }
      if (!found) {
        scan.error = prog + ": invalid option -- '" + std::string(1, c) + "'";
        return scan;
      }
      if (!found->takes_arg) {
        emit(*found, nullptr);
        continue;
      }
      if (j + 1 < a.size()) {
        emit(*found, argv[i] + j + 1);
      } else if (i + 1 < argc) {
        emit(*found, argv[++i]);
      } else {
        scan.error = prog + ": option requires an argument -- '" + std::string(1, c) + "'";
        return scan;
      }
      break;
    }
  }
  return scan;
}

// slirp4netns's checks after the getopt loop, in its order (docs/compatibility.md, "Command line"). Returns the exit status
// if parsing must stop.
std::optional<int> check_positionals(ParseState& st, std::ostream& out, std::ostream& err) {
  auto fail = [&out, &err](const std::string& message) {
    if (!message.empty()) err << message << '\n';
    print_usage(out);
    return 1;
  };
  Options& o = st.opts;
  const auto& pos = st.positionals;

  if (st.macaddress) {
    if (!o.configure) return fail("--macaddr cannot be specified when --configure or -c is not specified");
    if (st.macaddress->empty()) {
      // Options::macaddress uses "" for "not given", so refuse an empty value here, with the
      // message make_net_config would give.
      err << "\"\" is an invalid MAC address.\n"
             "macaddress has to be a valid MAC address (hex string, 6 bytes, each byte separated by a "
             "':').\n";
      return 1;
    }
    o.macaddress = *st.macaddress;
  }

  if (st.target_type == "bess") {
    o.target_type = TargetType::Bess;
    if (pos.empty()) return fail("");
    if (pos.size() > 1) return fail("too many arguments");
    if (o.configure) return fail("--configure conflicts with --target-type=bess");
    if (st.netns_type) return fail("--netns-type conflicts with --target-type=bess");
    if (st.userns_path) return fail("--userns-path conflicts with --target-type=bess");
    out << "WARNING: BESS mode is experimental\n";
    o.bess_socket = pos[0];
    return std::nullopt;
  }
  if (st.target_type && *st.target_type != "netns") {
    return fail("--target-type must be either \"netns\" or \"bess\"");
  }

  if (!st.netns_type || *st.netns_type == "pid") {
    o.netns_type = NetnsType::Pid;
  } else if (*st.netns_type == "tapfd") {
    o.netns_type = NetnsType::TapFd;
  } else {
    o.netns_type = NetnsType::Path;  // anything else means path, as in slirp4netns
  }
  if (st.userns_path) o.userns_path = *st.userns_path;

  if (pos.empty()) return fail("");
  switch (o.netns_type) {
    case NetnsType::Pid: {
      auto pid = parse_int(pos[0]);
      if (!pid || *pid <= 0) return fail("PID must be a positive integer");
      o.target_pid = *pid;
      break;
    }
    case NetnsType::TapFd: {
      auto fd = parse_non_negative(pos[0]);
      if (!fd) return fail("TAPFD must a file descriptor");  // sic, slirp4netns's text
      o.tapfd = *fd;
      if (pos.size() > 1) out << "WARNING: too many arguments\n";
      return std::nullopt;
    }
    case NetnsType::Path:
      if (access(pos[0].c_str(), F_OK) == -1) {
        return fail(std::string("existing path expected when --netns-type=path: ") + std::strerror(errno));
      }
      o.netns_path = pos[0];
      break;
  }
  if (pos.size() < 2) return fail("");
  o.tapname = pos[1].substr(0, kMaxTapNameLen);  // silently truncated, like slirp4netns
  if (pos.size() > 2) out << "WARNING: too many arguments\n";
  return std::nullopt;
}

}  // namespace

ParseResult parse_args(int argc, const char* const argv[], std::ostream& out, std::ostream& err) {
  const std::string prog = argc > 0 && argv[0] ? argv[0] : kDefaultProg;
  ParseResult result;
  ParseState st;

  CLI::App app{"User-mode networking for unprivileged network namespaces.", kDefaultProg};
  app.set_help_flag();  // -h/--help is ours: slirp4netns's text, in getopt order
  build_option_table(app, st, out, err);

  const Scan scan = scan_getopt(spec_of(app), prog, argc, argv);
  std::vector<const char*> cli_argv{kDefaultProg};
  for (const auto& s : scan.canonical) cli_argv.push_back(s.c_str());
  cli_argv.push_back("--");
  for (const auto& s : scan.positionals) cli_argv.push_back(s.c_str());

  try {
    app.parse(static_cast<int>(cli_argv.size()), cli_argv.data());
  } catch (const StopParsing& stop) {
    result.exit_status = stop.status();
    return result;
  } catch (const CLI::Error& e) {
    // Unreachable by construction (the scan hands CLI11 only canonical input); never let CLI11's
    // 1xx exit codes out.
    err << prog << ": " << e.what() << '\n';
    print_usage(out);
    result.exit_status = 1;
    return result;
  }
  if (scan.error) {
    err << *scan.error << '\n';
    print_usage(out);
    result.exit_status = 1;
    return result;
  }
  result.exit_status = check_positionals(st, out, err);
  result.options = std::move(st.opts);
  return result;
}

}  // namespace slirpnetd::config
