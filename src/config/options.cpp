// config/options.cpp: the slirp4netns 1.3-compatible command line (net_config.cpp derives the
// addresses, text.cpp holds the help, version and banner texts).
//
// How parsing works: as slirp4netns does it, with glibc's getopt_long() (permutation, unique
// prefixes of long options, its own error messages). The option table holds, per option, what
// slirp4netns's getopt switch does for it (per-option checks, WARNING lines, -h/-v); each
// occurrence runs in command-line order, so an error stops parsing where getopt stops and what
// came before it has already run (`-h --bogus` prints the help). CLI11 is not used here: it has
// none of getopt_long's conventions, and slirp4netns's behaviour is getopt_long's.
#include "config/options.hpp"

#include <net/if.h>
#include <slirp/libslirp.h>
#include <unistd.h>

#include <getopt.h>

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

// One option: its short name (0 if none), long name, whether it takes a value, and what
// slirp4netns's getopt switch does when it is met.
struct OptionDef {
  char short_name;
  std::string long_name;
  bool takes_arg;
  std::function<void(const std::string&)> on_parse;
};

// The option table, in slirp4netns's longopts order (getopt lists ambiguous candidates in it, and
// the short options string follows it: "ce:r:m:a:6hv").
std::vector<OptionDef> build_option_table(ParseState& st, std::ostream& out, std::ostream& err) {
  std::vector<OptionDef> table;
  auto fail = [&out, &err](const std::string& message) {
    err << message << '\n';
    print_usage(out);
    throw StopParsing(1);
  };
  // names: "-c,--configure" or "--cidr".
  auto add = [&table](const std::string& names, bool takes_arg, std::function<void(const std::string&)> fn) {
    const size_t comma = names.find(',');
    const char short_name = comma == std::string::npos ? 0 : names[1];
    table.push_back({short_name, names.substr(comma == std::string::npos ? 2 : comma + 3), takes_arg, std::move(fn)});
  };
  auto flag = [&add](const char* names, std::function<void()> fn) {
    add(names, false, [fn = std::move(fn)](const std::string&) { fn(); });
  };
  auto value = [&add](const char* names, std::function<void(const std::string&)> fn) {
    add(names, true, std::move(fn));
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
    o.cpu_affinity = {a, b, c};
  });
  value("--forward-mode", [&o, fail](const std::string& v) {
    if (v != "slirp" && v != "splice") fail("--forward-mode must be slirp or splice");
    o.forward_mode = v == "splice" ? ForwardMode::Splice : ForwardMode::Slirp;
    if (o.forward_mode == ForwardMode::Splice) o.enable_splice = true;
  });
  flag("--splice", [&o] { o.enable_splice = true; });
  value("--log-level", [&o](const std::string& v) { o.log_level = v; });
  return table;
}

// getopt_long() prints its messages (e.g. "PROG: unrecognized option '--x'") on stdio's stderr.
// While it runs, stderr is a memory stream, so the message can go to `err` like every other one.
// parse_args() runs before the daemon starts any thread, so nothing else writes to stderr then.
class GetoptMessages {
 public:
  GetoptMessages() : saved_(stderr), mem_(::open_memstream(&buf_, &len_)) {
    if (mem_) stderr = mem_;
  }
  ~GetoptMessages() {
    restore();
    std::free(buf_);
  }
  GetoptMessages(const GetoptMessages&) = delete;
  GetoptMessages& operator=(const GetoptMessages&) = delete;

  std::string take() {
    restore();
    return buf_ ? std::string(buf_, len_) : std::string();
  }

 private:
  void restore() {
    if (!mem_) return;
    stderr = saved_;
    std::fclose(mem_);  // sets buf_ and len_
    mem_ = nullptr;
  }
  FILE* saved_;
  char* buf_ = nullptr;
  size_t len_ = 0;
  FILE* mem_;
};

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
  ParseResult result;
  ParseState st;
  const std::vector<OptionDef> table = build_option_table(st, out, err);

  std::string shortopts;
  std::vector<option> longopts;
  for (size_t i = 0; i < table.size(); ++i) {
    const OptionDef& d = table[i];
    const int val = d.short_name ? d.short_name : 256 + static_cast<int>(i);
    if (d.short_name) shortopts += std::string(1, d.short_name) + (d.takes_arg ? ":" : "");
    longopts.push_back({d.long_name.c_str(), d.takes_arg ? required_argument : no_argument, nullptr, val});
  }
  longopts.push_back({nullptr, 0, nullptr, 0});

  // getopt_long permutes its argv: give it copies. argv[0] names the program in its messages.
  std::vector<std::string> args(argv, argv + argc);
  if (args.empty()) args.emplace_back(kDefaultProg);
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const int cargc = static_cast<int>(args.size());

  optind = 0;  // glibc: start a new scan, forgetting any earlier one's state
  opterr = 1;
  try {
    for (;;) {
      int index = -1;
      std::string message;
      int c;
      {
        GetoptMessages messages;
        c = getopt_long(cargc, cargv.data(), shortopts.c_str(), longopts.data(), &index);
        message = messages.take();
      }
      if (c == -1) break;
      if (c == '?' || c == ':') {
        err << message;
        print_usage(out);
        result.exit_status = 1;
        return result;
      }
      const OptionDef* d = nullptr;
      if (c >= 256) d = &table[static_cast<size_t>(c - 256)];
      for (size_t i = 0; !d && i < table.size(); ++i)
        if (table[i].short_name == c) d = &table[i];
      if (d) d->on_parse(d->takes_arg && optarg ? optarg : "");
    }
  } catch (const StopParsing& stop) {
    result.exit_status = stop.status();
    return result;
  }
  for (int i = optind; i < cargc; ++i) st.positionals.emplace_back(cargv[static_cast<size_t>(i)]);
  result.exit_status = check_positionals(st, out, err);
  result.options = std::move(st.opts);
  return result;
}

}  // namespace slirpnetd::config
