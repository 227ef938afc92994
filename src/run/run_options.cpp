#include "run/run_options.hpp"

#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace slirpnetd::run {
namespace {

std::optional<int> port_number(const std::string& s) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  const int v = std::atoi(s.c_str());
  if (v < 1 || v > 65535) return std::nullopt;
  return v;
}

}  // namespace

std::optional<PortSpec> parse_port(const std::string& spec) {
  PortSpec p;
  std::string s = spec;
  if (const size_t slash = s.rfind('/'); slash != std::string::npos) {
    const std::string proto = s.substr(slash + 1);
    if (proto != "tcp" && proto != "udp") return std::nullopt;
    p.udp = proto == "udp";
    s.erase(slash);
  }
  std::string ports = s;
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return std::nullopt;
    p.host_addr = s.substr(1, close - 1);
    if (p.host_addr.empty()) return std::nullopt;
    ports = s.substr(close + 2);
  } else if (std::count(s.begin(), s.end(), ':') == 2) {
    const size_t colon = s.find(':');
    p.host_addr = s.substr(0, colon);
    if (p.host_addr.empty()) return std::nullopt;
    ports = s.substr(colon + 1);
  }
  const size_t colon = ports.find(':');
  if (colon == std::string::npos) return std::nullopt;
  const auto host = port_number(ports.substr(0, colon));
  const auto guest = port_number(ports.substr(colon + 1));
  if (!host || !guest) return std::nullopt;
  p.host_port = *host;
  p.guest_port = *guest;
  return p;
}

hostfwd::Request hostfwd_request(const PortSpec& p) {
  hostfwd::Request r;
  r.udp = p.udp;
  r.host_addr = p.host_addr;
  r.host_port = p.host_port;
  r.guest_port = p.guest_port;
  return r;
}

void print_run_usage(std::ostream& out) {
  out << "Usage: slirpnetd run [OPTION]... [--] CMD [ARG]...\n"
         "Run CMD in new user, network and mount namespaces networked by slirpnetd (10.0.2.100/24,\n"
         "gateway 10.0.2.2 = the host's loopback, DNS 10.0.2.3 in /etc/resolv.conf); exit with CMD's status.\n"
         "\n"
         "-m, --mtu=MTU              MTU (default=1500, max=65521)\n"
         "--cidr=CIDR                network address (default=10.0.2.0/24)\n"
         "--disable-host-loopback    prohibit connecting to 127.0.0.1:* on the host\n"
         "-6, --enable-ipv6          enable IPv6 (experimental)\n"
         "-a, --api-socket=PATH      API socket (it lists the -p forwards too, and can remove them)\n"
         "-p, --publish=[IP:]HOST:GUEST[/tcp|/udp]\n"
         "                           forward host IP:HOST (default IP 0.0.0.0; [v6]:HOST:GUEST) to CMD's GUEST\n"
         "--forward-mode=slirp|splice  how -p and add_hostfwd forward by default (default=slirp)\n"
         "--netns-path=PATH          also bind-mount the network namespace on PATH (created if missing);\n"
         "                           it outlives CMD until `umount PATH` (needs mount rights on PATH)\n"
         "-h, --help                 show this help and exit\n"
         "\n"
         "Run mode is a convenience, not a security boundary: its networking runs without the\n"
         "sandbox and the seccomp filter (use `slirpnetd --enable-sandbox --enable-seccomp ...` for those).\n";
}

RunParse parse_run_args(int argc, const char* const argv[], std::ostream& out, std::ostream& err) {
  RunParse r;
  auto fail = [&r, &err](const std::string& msg) {
    err << "slirpnetd run: " << msg << "\n(see slirpnetd run --help)\n";
    r.exit_status = 1;
    return r;
  };
  std::vector<std::string> daemon_args{"slirpnetd", "--configure"};
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.empty() || a[0] != '-' || a == "-") break;  // CMD
    std::string name = a, value;
    bool has_value = false;
    if (a.rfind("--", 0) == 0) {
      if (const size_t eq = a.find('='); eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        has_value = true;
      }
    } else if (a.size() > 2) {  // -p8080:80, -m1500
      name = a.substr(0, 2);
      value = a.substr(2);
      has_value = true;
    }
    auto take = [&](std::string& v) {
      if (has_value) {
        v = value;
        return true;
      }
      if (i + 1 >= argc) return false;
      v = argv[++i];
      return true;
    };
    std::string v;
    if (name == "-h" || name == "--help") {
      print_run_usage(out);
      r.exit_status = 0;
      return r;
    } else if (name == "-6" || name == "--enable-ipv6") {
      daemon_args.push_back("--enable-ipv6");
    } else if (name == "--disable-host-loopback") {
      daemon_args.push_back(name);
    } else if (name == "-m" || name == "--mtu" || name == "--cidr" || name == "-a" || name == "--api-socket" ||
               name == "--forward-mode") {
      if (!take(v)) return fail("option " + name + " requires an argument");
      const std::string canonical = name == "-m" ? "--mtu" : name == "-a" ? "--api-socket" : name;
      daemon_args.push_back(canonical + "=" + v);
    } else if (name == "-p" || name == "--publish") {
      if (!take(v)) return fail("option " + name + " requires an argument");
      auto p = parse_port(v);
      if (!p) return fail("bad port forward '" + v + "': expected [IP:]HOST:GUEST[/tcp|/udp]");
      r.options.ports.push_back(*p);
    } else if (name == "--netns-path") {
      if (!take(v) || v.empty()) return fail("option --netns-path requires a path");
      r.options.netns_path = v;
    } else {
      return fail("unrecognized option '" + a + "'");
    }
  }
  for (; i < argc; ++i) r.options.command.emplace_back(argv[i]);
  if (r.options.command.empty()) return fail("no command given");

  // The daemon's own checks and messages (the PID is a placeholder until the child exists).
  daemon_args.push_back("1");
  daemon_args.push_back("tap0");
  std::vector<const char*> dargv;
  for (const auto& s : daemon_args) dargv.push_back(s.c_str());
  std::ostringstream dout;
  auto parsed = config::parse_args(static_cast<int>(dargv.size()), dargv.data(), dout, err);
  if (parsed.exit_status) {
    err << "(see slirpnetd run --help)\n";
    r.exit_status = *parsed.exit_status;
    return r;
  }
  r.options.daemon = std::move(parsed.options);
  r.options.daemon.enable_splice = true;  // our own process model: the connector costs nothing here
  return r;
}

}  // namespace slirpnetd::run
