// Unit tests for src/ns: open_tap (every mode), enter_userns_for_sandbox, create_sandbox and
// enable_seccomp. They need root (CI runs them as root) and never touch the host: every test body
// runs in a forked child that first moves into its own network and mount namespaces (isolate()),
// and every target process is a grandchild with its own netns that dies with that child.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "ns/sandbox.hpp"
#include "ns/tap.hpp"
#include "skip.hpp"

using slirpnetd::UniqueFd;
namespace config = slirpnetd::config;
namespace ns = slirpnetd::ns;

namespace {

constexpr uid_t kNobody = 65534;

// ---- running test bodies in bounded children ----------------------------------------------------

struct ChildOutcome {
  int wstatus = 0;
  std::string failure;  // what the child reported; empty when it exited 0 silently
  bool ok() const { return WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 && failure.empty(); }
  bool killed_by(int sig) const { return WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == sig; }
};

// Runs `body` in a forked child (killed by SIGALRM after `timeout_s`). The body returns "" on
// success or a description of what went wrong; Catch2 assertions can't cross the fork.
ChildOutcome run_in_child(const std::function<std::string()>& body, unsigned timeout_s = 20) {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  UniqueFd rd(p[0]), wr(p[1]);
  std::fflush(nullptr);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    rd.reset();
    rlimit no_core{0, 0};  // the seccomp tests die by SIGSYS on purpose: no core files
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::alarm(timeout_s);
    std::string msg;
    try {
      msg = body();
    } catch (const std::exception& e) {
      msg = std::string("exception: ") + e.what();
    }
    if (!msg.empty()) (void)!::write(wr.get(), msg.data(), msg.size());
    std::fflush(nullptr);
    ::_exit(msg.empty() ? 0 : 1);
  }
  wr.reset();
  ChildOutcome out;
  // The child's alarm bounds it; this bounds us even if the child blocks SIGALRM somehow.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s + 5);
  while (::waitpid(pid, &out.wstatus, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &out.wstatus, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::fcntl(rd.get(), F_SETFL, O_NONBLOCK);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(rd.get(), buf, sizeof(buf))) > 0) out.failure.append(buf, size_t(n));
  return out;
}

#define EXPECT(cond)                                                                           \
  do {                                                                                         \
    if (!(cond))                                                                               \
      return std::string(__FILE__ ":") + std::to_string(__LINE__) + ": " #cond + " (errno: " + \
             std::strerror(errno) + ")";                                                       \
  } while (0)

#define EXPECT_EQ(a, b)                                                                     \
  do {                                                                                      \
    auto va_ = (a);                                                                         \
    auto vb_ = (b);                                                                         \
    if (!(va_ == vb_)) {                                                                    \
      std::ostringstream os_;                                                               \
      os_ << __FILE__ ":" << __LINE__ << ": " #a " == " #b ": " << va_ << " != " << vb_;   \
      return os_.str();                                                                     \
    }                                                                                       \
  } while (0)

void report(const ChildOutcome& out) {
  INFO("child wstatus=" << out.wstatus << " failure: " << out.failure);
  CHECK(out.ok());
}

// Under ThreadSanitizer, fork() starts a runtime thread in the child, and the tests' own helpers
// fork children that must unshare(CLONE_NEWUSER), which refuses a multithreaded caller: the tests
// doing that are tagged SLIRPNETD_NOT_UNDER_TSAN. The rootless paths are covered by the plain and
// ASan runs and by tests/integration/t_rootless.sh.

#define REQUIRE_ROOT()                                                 \
  do {                                                                 \
    if (::geteuid() != 0) SLIRPNETD_SKIP("needs root (CI runs test_ns as root)"); \
  } while (0)

// Private network + mount namespaces, with a private tmpfs on /tmp: nothing done after this can
// reach the host's interfaces, routes or mounts.
std::string isolate() {
  EXPECT(::unshare(CLONE_NEWNET | CLONE_NEWNS) == 0);
  EXPECT(::mount("", "/", "", MS_REC | MS_PRIVATE, nullptr) == 0);
  EXPECT(::mount("tmpfs", "/tmp", "tmpfs", 0, "size=1m") == 0);
  return {};
}

// Captures fd 1 or 2 into a memfd, for checking the exact messages.
class Capture {
 public:
  explicit Capture(int target) : target_(target), mem_(::memfd_create("capture", MFD_CLOEXEC)) {
    std::fflush(nullptr);
    ::dup2(mem_.get(), target_);
  }
  std::string text() const {
    std::fflush(nullptr);
    std::string s;
    char buf[4096];
    ssize_t n;
    for (off_t off = 0; (n = ::pread(mem_.get(), buf, sizeof(buf), off)) > 0; off += n)
      s.append(buf, size_t(n));
    return s;
  }

 private:
  int target_;
  UniqueFd mem_;
};

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// ---- target processes ---------------------------------------------------------------------------

// A process in its own netns (and, with `unprivileged`, in its own user namespace created as uid
// 65534 with "0 65534 1" maps, i.e. `unshare --user --map-root-user --net` run by nobody). It dies
// with the process that spawned it (PDEATHSIG) or with this object.
class Target {
 public:
  explicit Target(bool unprivileged) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) return;
    UniqueFd rd(p[0]), wr(p[1]);
    pid_ = ::fork();
    if (pid_ == 0) {
      rd.reset();
      ::_exit(run(wr.get(), unprivileged));
    }
    wr.reset();
    pollfd pfd{rd.get(), POLLIN, 0};
    char c = 0;
    if (pid_ < 0 || ::poll(&pfd, 1, 5000) != 1 || ::read(rd.get(), &c, 1) != 1 || c != 'R') {
      error_ = "target did not start";
    }
  }
  ~Target() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  const std::string& error() const { return error_; }
  std::string ns_path(const char* type) const {
    return "/proc/" + std::to_string(pid_) + "/ns/" + type;
  }

 private:
  static bool write_file(const char* path, const char* text) {
    UniqueFd fd(::open(path, O_WRONLY | O_CLOEXEC));
    return fd && ::write(fd.get(), text, std::strlen(text)) == ssize_t(std::strlen(text));
  }
  static int run(int ready, bool unprivileged) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int flags = CLONE_NEWNET;
    if (unprivileged) {
      if (::setgroups(0, nullptr) < 0 || ::setresgid(kNobody, kNobody, kNobody) < 0 ||
          ::setresuid(kNobody, kNobody, kNobody) < 0)
        return 2;
      // A uid change clears both; dumpable lets nobody open /proc/PID/ns/* and its own uid_map.
      ::prctl(PR_SET_DUMPABLE, 1);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      flags |= CLONE_NEWUSER;
    }
    if (::unshare(flags) < 0) return 3;
    ::prctl(PR_SET_DUMPABLE, 1);
    if (unprivileged && (!write_file("/proc/self/setgroups", "deny") ||
                         !write_file("/proc/self/uid_map", "0 65534 1") ||
                         !write_file("/proc/self/gid_map", "0 65534 1")))
      return 4;
    if (::write(ready, "R", 1) != 1) return 5;
    for (;;) ::pause();
  }

  pid_t pid_ = -1;
  std::string error_;
};

bool join_ns(const std::string& path, int type) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  return fd && ::setns(fd.get(), type) == 0;
}

// Becomes nobody, with a /dev/net/tun that nobody may open (a 0666 copy of the node bind-mounted
// in our private mount namespace; the host's node stays 0600).
std::string become_nobody_with_tun() {
  EXPECT(::mkdir("/tmp/dev", 0755) == 0);
  EXPECT(::mknod("/tmp/dev/tun", S_IFCHR | 0666, makedev(10, 200)) == 0);
  EXPECT(::chmod("/tmp/dev/tun", 0666) == 0);
  EXPECT(::mount("/tmp/dev/tun", "/dev/net/tun", "", MS_BIND, nullptr) == 0);
  EXPECT(::setgroups(0, nullptr) == 0);
  EXPECT(::setresgid(kNobody, kNobody, kNobody) == 0);
  EXPECT(::setresuid(kNobody, kNobody, kNobody) == 0);
  return {};
}

// ---- interface inspection (in the current netns) ------------------------------------------------

struct IfState {
  bool exists = false;
  short flags = 0;
  int mtu = 0;
  int txqlen = 0;
  std::string addr, netmask, mac;  // addr empty: no IPv4 address
};

std::string ntop(const sockaddr& sa) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(sa).sin_addr, buf, sizeof(buf));
  return buf;
}

IfState inspect(const char* name) {
  IfState st;
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) < 0) return st;
  st.exists = true;
  st.flags = ifr.ifr_flags;
  if (::ioctl(s.get(), SIOCGIFMTU, &ifr) == 0) st.mtu = ifr.ifr_mtu;
  if (::ioctl(s.get(), SIOCGIFTXQLEN, &ifr) == 0) st.txqlen = ifr.ifr_qlen;
  if (::ioctl(s.get(), SIOCGIFHWADDR, &ifr) == 0) {
    char buf[18];
    auto* m = reinterpret_cast<const unsigned char*>(ifr.ifr_hwaddr.sa_data);
    std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                  m[5]);
    st.mac = buf;
  }
  if (::ioctl(s.get(), SIOCGIFADDR, &ifr) == 0) st.addr = ntop(ifr.ifr_addr);
  if (::ioctl(s.get(), SIOCGIFNETMASK, &ifr) == 0) st.netmask = ntop(ifr.ifr_netmask);
  return st;
}

// The default route's gateway on `dev`, from /proc/net/route (per netns: it follows the reader).
std::string default_gateway(const std::string& dev) {
  std::ifstream in("/proc/net/route");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string iface, dst, gw;
    ls >> iface >> dst >> gw;
    if (iface == dev && dst == "00000000") {
      in_addr a{static_cast<in_addr_t>(std::stoul(gw, nullptr, 16))};
      return ::inet_ntoa(a);
    }
  }
  return {};
}

config::NetConfig default_net() {
  config::NetConfig net;
  ::inet_pton(AF_INET, "10.0.2.0", &net.network);
  ::inet_pton(AF_INET, "255.255.255.0", &net.netmask);
  ::inet_pton(AF_INET, "10.0.2.2", &net.gateway);
  ::inet_pton(AF_INET, "10.0.2.3", &net.dns);
  ::inet_pton(AF_INET, "10.0.2.100", &net.guest);
  return net;
}

config::Options pid_opts(pid_t pid, bool configure) {
  config::Options o;
  o.netns_type = config::NetnsType::Pid;
  o.target_pid = pid;
  o.tapname = "tap0";
  o.configure = configure;
  return o;
}

// The fd is a TAP attached to tap0, IFF_NO_PI, with a virtio-net header unless --offload=off,
// non-blocking and close-on-exec.
std::string check_tap_fd(int fd, bool vnet_hdr = true) {
  ifreq ifr{};
  EXPECT(::ioctl(fd, TUNGETIFF, &ifr) == 0);
  EXPECT_EQ(std::string(ifr.ifr_name), std::string("tap0"));
  EXPECT((ifr.ifr_flags & IFF_TAP) && (ifr.ifr_flags & IFF_NO_PI));
  EXPECT(bool(ifr.ifr_flags & IFF_VNET_HDR) == vnet_hdr);
  EXPECT(::fcntl(fd, F_GETFL) & O_NONBLOCK);
  EXPECT(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  return {};
}

// Everything -c promises (docs/compatibility.md, "Start-up and the TAP device"), checked from inside the target's netns.
std::string check_configured(const char* mac, int mtu) {
  IfState lo = inspect("lo"), tap = inspect("tap0");
  EXPECT(lo.flags & IFF_UP);
  EXPECT(tap.exists);
  EXPECT(tap.flags & IFF_UP);
  EXPECT_EQ(tap.addr, std::string("10.0.2.100"));
  EXPECT_EQ(tap.netmask, std::string("255.255.255.0"));
  EXPECT_EQ(tap.mtu, mtu);
  EXPECT_EQ(tap.txqlen, ns::kTapTxQueueLen);
  if (mac) EXPECT_EQ(tap.mac, std::string(mac));
  EXPECT_EQ(default_gateway("tap0"), std::string("10.0.2.2"));
  return {};
}

// Writes "who-has 10.0.2.100 tell 10.0.2.2" into the tap and expects the kernel's ARP reply back
// on the same fd: the fd really is the guest's wire.
// With IFF_VNET_HDR (the default, --offload=on) every frame carries a 10-byte virtio-net header.
std::string check_arp_roundtrip(int fd) {
  ifreq ifr{};
  EXPECT(::ioctl(fd, TUNGETIFF, &ifr) == 0);
  const size_t hdr = (ifr.ifr_flags & IFF_VNET_HDR) ? 10 : 0;
  const uint8_t gw_mac[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};
  uint8_t buf[10 + 60] = {};
  uint8_t* f = buf + hdr;
  std::memset(f, 0xff, 6);
  std::memcpy(f + 6, gw_mac, 6);
  f[12] = 0x08, f[13] = 0x06;                          // ARP
  f[14] = 0, f[15] = 1, f[16] = 0x08, f[17] = 0;       // Ethernet / IPv4
  f[18] = 6, f[19] = 4, f[20] = 0, f[21] = 1;          // request
  std::memcpy(f + 22, gw_mac, 6);
  const uint8_t spa[4] = {10, 0, 2, 2}, tpa[4] = {10, 0, 2, 100};
  std::memcpy(f + 28, spa, 4);
  std::memcpy(f + 38, tpa, 4);
  EXPECT(::write(fd, buf, hdr + 60) == ssize_t(hdr + 60));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) != 1) continue;
    uint8_t rbuf[2048];
    ssize_t n = ::read(fd, rbuf, sizeof(rbuf)) - static_cast<ssize_t>(hdr);
    const uint8_t* r = rbuf + hdr;
    if (n >= 42 && r[12] == 0x08 && r[13] == 0x06 && r[21] == 2 && std::memcmp(r, gw_mac, 6) == 0 &&
        std::memcmp(r + 28, tpa, 4) == 0)
      return {};  // other frames (IPv6 router solicitations, MLD) are skipped
  }
  return "no ARP reply for 10.0.2.100 on the tap fd";
}

}  // namespace

// ---- open_tap -----------------------------------------------------------------------------------

TEST_CASE("open_tap pid mode with -c configures the tap in the target netns", "[ns][tap]") {
  REQUIRE_ROOT();
  report(run_in_child([] {
    if (auto e = isolate(); !e.empty()) return e;
    Target t(false);
    EXPECT(t.error().empty());
    auto opts = pid_opts(t.pid(), true);
    auto net = default_net();
    net.mtu = 1400;
    net.mac = std::array<uint8_t, 6>{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    Capture err(2);
    ns::TapResult r = ns::open_tap(opts, net, opts.offload);
    std::string log = err.text();
    EXPECT_EQ(r.exit_status, 0);
    EXPECT(r.fd);
    EXPECT(contains(log, "sent tapfd="));
    EXPECT(contains(log, " for tap0\n"));
    EXPECT(contains(log, "received tapfd=" + std::to_string(r.fd.get()) + "\n"));
    if (auto e = check_tap_fd(r.fd.get()); !e.empty()) return e;
    // The caller stays in its own netns: no tap0 here.
    EXPECT(!inspect("tap0").exists);
    EXPECT(join_ns(t.ns_path("net"), CLONE_NEWNET));
    if (auto e = check_configured("02:11:22:33:44:55", 1400); !e.empty()) return e;
    return check_arp_roundtrip(r.fd.get());
  }));
}

TEST_CASE("open_tap path mode, without -c: tap exists, DOWN, no address", "[ns][tap]") {
  REQUIRE_ROOT();
  report(run_in_child([] {
    if (auto e = isolate(); !e.empty()) return e;
    Target t(false);
    EXPECT(t.error().empty());
    config::Options opts;
    opts.netns_type = config::NetnsType::Path;
    opts.netns_path = t.ns_path("net");
    opts.tapname = "tap0";
    opts.offload = false;  // --offload=off: a plain TAP, as slirp4netns opens it
    ns::TapResult r = ns::open_tap(opts, default_net(), opts.offload);
    EXPECT_EQ(r.exit_status, 0);
    if (auto e = check_tap_fd(r.fd.get(), false); !e.empty()) return e;
    EXPECT(join_ns(t.ns_path("net"), CLONE_NEWNET));
    IfState tap = inspect("tap0");
    EXPECT(tap.exists);
    EXPECT(!(tap.flags & IFF_UP));
    EXPECT(tap.addr.empty());
    EXPECT(tap.txqlen < ns::kTapTxQueueLen);  // untouched without -c
    EXPECT(default_gateway("tap0").empty());
    EXPECT(!(inspect("lo").flags & IFF_UP));
    // Not persistent: the device goes away with its fd, as slirp4netns's does.
    r.fd.reset();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (inspect("tap0").exists && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT(!inspect("tap0").exists);
    return std::string();
  }));
}

TEST_CASE("open_tap failures: child's message, child failed(1), status 1", "[ns][tap]") {
  REQUIRE_ROOT();
  SECTION("missing pid") {
    report(run_in_child([] {
      if (auto e = isolate(); !e.empty()) return e;
      Capture err(2);
      ns::TapResult r = ns::open_tap(pid_opts(999999999, true), default_net(), true);
      std::string log = err.text();
      EXPECT_EQ(r.exit_status, 1);
      EXPECT(!r.fd);
      EXPECT_EQ(log, std::string("/proc/999999999/ns/net: No such file or directory\n"
                                 "child failed(1)\n"));
      return std::string();
    }));
  }
  SECTION("multicast MAC is refused by SIOCSIFHWADDR") {
    report(run_in_child([] {
      if (auto e = isolate(); !e.empty()) return e;
      Target t(false);
      EXPECT(t.error().empty());
      auto net = default_net();
      net.mac = std::array<uint8_t, 6>{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
      Capture err(2);
      ns::TapResult r = ns::open_tap(pid_opts(t.pid(), true), net, true);
      EXPECT_EQ(r.exit_status, 1);
      EXPECT_EQ(err.text(), std::string("cannot set MAC address: Cannot assign requested address\n"
                                        "child failed(1)\n"));
      return std::string();
    }));
  }
  SECTION("TUNSETIFF on a non-tap name") {
    report(run_in_child([] {
      if (auto e = isolate(); !e.empty()) return e;
      Target t(false);
      EXPECT(t.error().empty());
      auto opts = pid_opts(t.pid(), false);
      opts.tapname = "lo";
      Capture err(2);
      EXPECT_EQ(ns::open_tap(opts, default_net(), opts.offload).exit_status, 1);
      EXPECT_EQ(err.text(), std::string("ioctl(TUNSETIFF): Invalid argument\nchild failed(1)\n"));
      return std::string();
    }));
  }
}

TEST_CASE("open_tap as uid 65534 into its own unshare -r --net target",
          "[ns][tap][userns]" SLIRPNETD_NOT_UNDER_TSAN) {
  REQUIRE_ROOT();
  SECTION("pid mode joins /proc/PID/ns/user") {
    report(run_in_child([] {
      if (auto e = isolate(); !e.empty()) return e;
      Target t(true);
      EXPECT(t.error().empty());
      if (auto e = become_nobody_with_tun(); !e.empty()) return e;
      ns::TapResult r = ns::open_tap(pid_opts(t.pid(), true), default_net(), true);
      EXPECT_EQ(r.exit_status, 0);
      if (auto e = check_tap_fd(r.fd.get()); !e.empty()) return e;
      EXPECT(join_ns(t.ns_path("user"), CLONE_NEWUSER));
      EXPECT(join_ns(t.ns_path("net"), CLONE_NEWNET));
      if (auto e = check_configured(nullptr, 1500); !e.empty()) return e;
      return check_arp_roundtrip(r.fd.get());
    }));
  }
  SECTION("path mode needs --userns-path") {
    report(run_in_child([] {
      if (auto e = isolate(); !e.empty()) return e;
      Target t(true);
      EXPECT(t.error().empty());
      if (auto e = become_nobody_with_tun(); !e.empty()) return e;
      config::Options opts;
      opts.netns_type = config::NetnsType::Path;
      opts.netns_path = t.ns_path("net");
      opts.tapname = "tap0";
      {
        Capture err(2);
        EXPECT_EQ(ns::open_tap(opts, default_net(), opts.offload).exit_status, 1);
        EXPECT_EQ(err.text(),
                  std::string("setns(CLONE_NEWNET): Operation not permitted\nchild failed(1)\n"));
      }
      opts.userns_path = t.ns_path("user");
      ns::TapResult r = ns::open_tap(opts, default_net(), opts.offload);
      EXPECT_EQ(r.exit_status, 0);
      return check_tap_fd(r.fd.get());
    }));
  }
}

TEST_CASE("open_tap tapfd mode uses the inherited fd", "[ns][tap]") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  UniqueFd keep(sv[1]);
  config::Options opts;
  opts.netns_type = config::NetnsType::TapFd;
  opts.tapfd = sv[0];
  ns::TapResult r = ns::open_tap(opts, default_net(), opts.offload);
  REQUIRE(r.exit_status == 0);
  CHECK(r.fd.get() == sv[0]);
  CHECK((::fcntl(r.fd.get(), F_GETFL) & O_NONBLOCK) != 0);

  opts.tapfd = 1000;  // not open
  ::close(1000);
  ns::TapResult bad = ns::open_tap(opts, default_net(), opts.offload);
  CHECK(bad.exit_status == 1);
  CHECK(!bad.fd);
}

TEST_CASE("open_tap bess mode hands over one accepted SEQPACKET connection", "[ns][bess]") {
  REQUIRE_ROOT();  // only for the private /tmp; nothing here needs privileges otherwise
  report(run_in_child([] {
    if (auto e = isolate(); !e.empty()) return e;
    const std::string path = "/tmp/bess.sock";
    pid_t client = ::fork();
    EXPECT(client >= 0);
    if (client == 0) {  // connects (retrying while the child sets up), sends one frame, waits
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strcpy(addr.sun_path, path.c_str());
      for (int i = 0; i < 500; ++i) {
        UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
          if (::send(s.get(), "frame-1", 7, 0) != 7) ::_exit(2);
          char c;
          (void)!::read(s.get(), &c, 1);
          ::_exit(0);
        }
        ::usleep(10000);
      }
      ::_exit(3);
    }
    config::Options opts;
    opts.target_type = config::TargetType::Bess;
    opts.bess_socket = path;
    Capture err(2);
    ns::TapResult r = ns::open_tap(opts, default_net(), opts.offload);
    std::string log = err.text();
    EXPECT_EQ(r.exit_status, 0);
    EXPECT(contains(log, "Waiting for connection to /tmp/bess.sock\n"));
    EXPECT(contains(log, "(not really TAP) for /tmp/bess.sock\n"));
    int type = 0;
    socklen_t len = sizeof(type);
    EXPECT(::getsockopt(r.fd.get(), SOL_SOCKET, SO_TYPE, &type, &len) == 0);
    EXPECT_EQ(type, int(SOCK_SEQPACKET));
    pollfd pfd{r.fd.get(), POLLIN, 0};
    EXPECT(::poll(&pfd, 1, 3000) == 1);
    char buf[64];
    ssize_t n = ::recv(r.fd.get(), buf, sizeof(buf), 0);
    EXPECT_EQ(std::string(buf, size_t(n > 0 ? n : 0)), std::string("frame-1"));
    r.fd.reset();
    int st = 0;
    ::waitpid(client, &st, 0);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    opts.bess_socket = "/tmp/" + std::string(120, 'x');
    Capture err2(2);
    EXPECT_EQ(ns::open_tap(opts, default_net(), opts.offload).exit_status, 1);
    EXPECT(contains(err2.text(), "the specified BESS socket path is too long (>= 108)\n"));
    return std::string();
  }));
}

// ---- sandbox ------------------------------------------------------------------------------------

namespace {

std::set<std::string> list_dir(const char* path) {
  std::set<std::string> names;
  if (DIR* d = ::opendir(path)) {
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        names.insert(e->d_name);
    ::closedir(d);
  }
  return names;
}

std::string status_field(int status_fd, const std::string& key) {
  char buf[8192];
  ssize_t n = ::pread(status_fd, buf, sizeof(buf) - 1, 0);
  std::istringstream in(std::string(buf, size_t(n > 0 ? n : 0)));
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size() + 1, key + ":") == 0) {
      size_t v = line.find_first_not_of(" \t", key.size() + 1);
      return v == std::string::npos ? "" : line.substr(v);
    }
  return "<missing " + key + ">";
}

// The sandbox's promises (docs/compatibility.md, "Sandbox and seccomp"), read through a /proc/self/status fd opened before
// pivot_root (the sandbox has no /proc).
std::string check_sandboxed(int status_fd, std::set<std::string> root_entries) {
  EXPECT(list_dir("/") == root_entries);
  for (const char* key : {"CapInh", "CapPrm", "CapEff", "CapBnd"})
    EXPECT_EQ(key + std::string("=") + status_field(status_fd, key),
              key + std::string("=0000000000000400"));
  EXPECT_EQ(status_field(status_fd, "CapAmb"), std::string("0000000000000000"));
  EXPECT_EQ(status_field(status_fd, "NoNewPrivs"), std::string("1"));
  struct stat st{};
  EXPECT(::stat("/etc", &st) == 0 && S_ISDIR(st.st_mode));
  EXPECT(::stat("/home", &st) < 0);
  EXPECT(::mkdir("/etc/h2-should-fail", 0755) < 0 && errno == EROFS);  // read-only bind
  return {};
}

}  // namespace

TEST_CASE("create_sandbox: only /etc and /run, caps 0x400, no_new_privs", "[ns][sandbox]") {
  REQUIRE_ROOT();
  report(run_in_child([] {
    if (auto e = isolate(); !e.empty()) return e;
    UniqueFd status(::open("/proc/self/status", O_RDONLY | O_CLOEXEC));
    EXPECT(status);
    EXPECT(ns::create_sandbox());
    return check_sandboxed(status.get(), {"etc", "run"});
  }));
}

TEST_CASE("create_sandbox binds a resolv.conf that escapes /etc and /run", "[ns][sandbox]") {
  REQUIRE_ROOT();
  report(run_in_child([] {
    if (auto e = isolate(); !e.empty()) return e;
    // In our private mount ns: /srv/h2/resolv.conf, and an /etc whose resolv.conf points there.
    EXPECT(::mount("tmpfs", "/srv", "tmpfs", 0, "size=64k") == 0);
    EXPECT(::mkdir("/srv/h2", 0755) == 0);
    { std::ofstream("/srv/h2/resolv.conf") << "nameserver 127.0.0.1\n"; }
    EXPECT(::mount("tmpfs", "/etc", "tmpfs", 0, "size=64k") == 0);
    EXPECT(::symlink("/srv/h2/resolv.conf", "/etc/resolv.conf") == 0);
    UniqueFd status(::open("/proc/self/status", O_RDONLY | O_CLOEXEC));
    Capture err(2);
    EXPECT(ns::create_sandbox());
    EXPECT(contains(err.text(), "sandbox: /etc/resolv.conf (-> /srv/h2/resolv.conf) seems a "
                                "symlink to a file outside {/etc, /run}, attempting to bind it "
                                "as well.\n"));
    std::string content;
    std::getline(std::ifstream("/etc/resolv.conf"), content);
    EXPECT_EQ(content, std::string("nameserver 127.0.0.1"));
    return check_sandboxed(status.get(), {"etc", "run", "srv"});
  }));
}

TEST_CASE("enter_userns_for_sandbox as nobody, then create_sandbox (rootless pid mode)",
          "[ns][sandbox][userns]" SLIRPNETD_NOT_UNDER_TSAN) {
  REQUIRE_ROOT();
  for (bool use_userns_path : {false, true}) {
    DYNAMIC_SECTION("userns_path given: " << use_userns_path) {
      report(run_in_child([use_userns_path] {
        if (auto e = isolate(); !e.empty()) return e;
        Target t(true);
        EXPECT(t.error().empty());
        if (auto e = become_nobody_with_tun(); !e.empty()) return e;
        config::Options opts;
        opts.enable_sandbox = true;
        if (use_userns_path) {  // path mode: only --userns-path can say which userns (#317)
          opts.netns_type = config::NetnsType::Path;
          opts.netns_path = t.ns_path("net");
          opts.userns_path = t.ns_path("user");
        } else {
          opts = pid_opts(t.pid(), false);
          opts.enable_sandbox = true;
        }
        struct stat mine{}, theirs{};
        EXPECT(::stat(t.ns_path("user").c_str(), &theirs) == 0);
        EXPECT(ns::enter_userns_for_sandbox(opts));
        EXPECT(::stat("/proc/self/ns/user", &mine) == 0);
        EXPECT_EQ(mine.st_ino, theirs.st_ino);
        EXPECT_EQ(::geteuid(), uid_t(0));
        EXPECT_EQ(::getegid(), gid_t(0));
        UniqueFd status(::open("/proc/self/status", O_RDONLY | O_CLOEXEC));
        EXPECT(ns::create_sandbox());
        return check_sandboxed(status.get(), {"etc", "run"});
      }));
    }
  }
}

TEST_CASE("enter_userns_for_sandbox is a no-op as root or without --enable-sandbox", "[ns]") {
  config::Options opts = pid_opts(999999999, false);  // would fail if it tried to open it
  CHECK(ns::enter_userns_for_sandbox(opts));
  opts.enable_sandbox = true;
  if (::geteuid() == 0) CHECK(ns::enter_userns_for_sandbox(opts));
}

// ---- seccomp ------------------------------------------------------------------------------------

// Not in sanitizer builds: their filter logs unlisted system calls instead of trapping.
TEST_CASE("enable_seccomp: an allow-list, any other system call kills the process with a log line",
          "[ns][seccomp]" SLIRPNETD_UNSANITIZED) {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  UniqueFd err_rd(p[0]), err_wr(p[1]);
  auto out = run_in_child([fd = err_wr.get()] {
    std::fflush(nullptr);
    ::dup2(fd, 1);  // the list and the SIGSYS line both go to the parent, read after we die
    ::dup2(fd, 2);
    if (!ns::enable_seccomp()) return std::string("enable_seccomp failed");
    std::thread t([] {});  // threads can be created (clone with CLONE_THREAD)
    t.join();
    ::syscall(SYS_unshare, 0);  // a no-op unshare: harmless, unless seccomp kills us first
    return std::string("survived unshare(0)");
  });
  err_wr.reset();
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = ::read(err_rd.get(), buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
  INFO("wstatus=" << out.wstatus << " failure: " << out.failure << " output: " << err);
  CHECK(out.killed_by(SIGSYS));
  CHECK(err.rfind("seccomp: The following syscalls are allowed: ", 0) == 0);
  CHECK((contains(err, " read ") && contains(err, " splice ") && contains(err, " clone(CLONE_THREAD)\n")));
  CHECK((!contains(err, " unshare ") && !contains(err, " execve ") && !contains(err, " ptrace ")));
  CHECK(contains(err, "slirpnetd: seccomp: system call " + std::to_string(SYS_unshare) +
                          " (unshare) is not in the allow-list: exiting\n"));
  CHECK(!contains(err, "WARNING"));  // libseccomp knows every listed name
}

TEST_CASE("enable_seccomp filters threads that already exist (TSYNC)",
          "[ns][seccomp]" SLIRPNETD_UNSANITIZED) {
  auto out = run_in_child([] {
    int p[2];
    EXPECT(::pipe(p) == 0);
    UniqueFd rd(p[0]), wr(p[1]);
    std::thread early([fd = rd.get()] {
      char c;
      if (::read(fd, &c, 1) == 1) ::syscall(SYS_setns, -1, 0);  // EBADF if not filtered
    });
    Capture cout_(1);  // keep the list off the test's stdout
    bool ok = ns::enable_seccomp();
    (void)!::write(wr.get(), "x", 1);
    early.join();
    EXPECT(ok);
    return std::string("the pre-existing thread's setns() was not filtered");
  });
  INFO("wstatus=" << out.wstatus << " failure: " << out.failure);
  CHECK(out.killed_by(SIGSYS));
}

// ---- ns/join ------------------------------------------------------------------------------------

#include "ns/join.hpp"

TEST_CASE("target_namespaces: /proc/PID files in pid mode, the given paths in path mode", "[ns][join]") {
  config::Options o;
  o.netns_type = config::NetnsType::Pid;
  o.target_pid = 4242;
  ns::NamespacePaths p = ns::target_namespaces(o);
  CHECK(p.netns == "/proc/4242/ns/net");
  CHECK(p.userns == "/proc/4242/ns/user");
  o.userns_path = "/run/user/1000/userns";  // --userns-path wins over the pid's
  CHECK(ns::target_namespaces(o).userns == "/run/user/1000/userns");
  o.netns_type = config::NetnsType::Path;
  o.netns_path = "/run/netns/c1";
  o.userns_path.clear();
  p = ns::target_namespaces(o);
  CHECK(p.netns == "/run/netns/c1");
  CHECK(p.userns.empty());
}

TEST_CASE("join_namespaces enters the target's netns, a missing file fails before any join",
          "[ns][join]") {
  REQUIRE_ROOT();
  Target target(false);
  REQUIRE(target.error().empty());
  report(run_in_child([&] {
    auto netns_of = [](const std::string& path) {
      char buf[64] = {};
      return ::readlink(path.c_str(), buf, sizeof buf - 1) > 0 ? std::string(buf) : std::string();
    };
    const std::string mine = netns_of("/proc/self/ns/net");
    EXPECT(!ns::join_namespaces({"/nonexistent/net", ""}));
    EXPECT(!ns::join_namespaces({target.ns_path("net"), "/nonexistent/user"}));
    EXPECT_EQ(netns_of("/proc/self/ns/net"), mine);  // the failures joined nothing
    EXPECT(ns::join_namespaces({target.ns_path("net"), ""}));
    EXPECT_EQ(netns_of("/proc/self/ns/net"), netns_of(target.ns_path("net")));
    EXPECT(netns_of("/proc/self/ns/net") != mine);
    return std::string();
  }));
}
