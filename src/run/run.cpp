#include "run/run.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "common/child.hpp"
#include "common/unique_fd.hpp"
#include "ctl/api.hpp"
#include "daemon/daemon.hpp"
#include "run/run_options.hpp"

namespace slirpnetd::run {
namespace {

constexpr int kChildSetupFailed = 125;  // like env/chroot: the command could not be started
constexpr int kExecFailed = 127;

bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

bool write_file(const char* path, const std::string& s) {
  UniqueFd fd(::open(path, O_WRONLY | O_CLOEXEC));
  return fd && write_all(fd.get(), s);
}

// The child, after clone(): never returns. `ready` gets "ok" or an error line; `go` gets one byte
// when the network is up (EOF: give up).
[[noreturn]] void child_main(int ready, int go, uid_t uid, gid_t gid, const std::string& resolv,
                             const std::vector<std::string>& command) {
  auto die = [ready](const std::string& what) {
    write_all(ready, "slirpnetd run: " + what + ": " + std::strerror(errno) + "\n");
    ::_exit(kChildSetupFailed);
  };
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS) < 0) die("unshare(user, net, mount)");
  write_file("/proc/self/setgroups", "deny");  // absent on old kernels: then gid_map decides
  if (!write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1\n")) die("writing uid_map");
  if (!write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1\n")) die("writing gid_map");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) < 0) die("making / a slave mount");
  std::string warning;
  if (::mount(resolv.c_str(), "/etc/resolv.conf", nullptr, MS_BIND, nullptr) < 0)
    warning = std::string("WARNING: cannot bind-mount resolv.conf on /etc/resolv.conf: ") + std::strerror(errno) + "\n";
  if (!write_all(ready, warning + "ok")) ::_exit(kChildSetupFailed);
  ::close(ready);
  char byte;
  ssize_t n;
  do n = ::read(go, &byte, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) ::_exit(kChildSetupFailed);
  ::close(go);
  std::vector<char*> args;
  for (const auto& a : command) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execvp(args[0], args.data());
  std::fprintf(stderr, "slirpnetd run: %s: %s\n", args[0], std::strerror(errno));
  ::_exit(kExecFailed);
}

// A temporary file holding the resolv.conf for the child; removed once the child has mounted it.
std::string make_resolv_conf(const config::NetConfig& net) {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/slirpnetd-resolv.XXXXXX";
  UniqueFd fd(::mkstemp(path.data()));
  if (!fd) {
    std::fprintf(stderr, "slirpnetd run: mkstemp(%s): %s\n", path.c_str(), std::strerror(errno));
    return {};
  }
  char dns[INET_ADDRSTRLEN] = "";
  inet_ntop(AF_INET, &net.dns, dns, sizeof dns);
  std::string text = std::string("nameserver ") + dns + "\n";
  if (net.enable_ipv6) {
    char dns6[INET6_ADDRSTRLEN] = "";
    inet_ntop(AF_INET6, &net.dns6, dns6, sizeof dns6);
    text += std::string("nameserver ") + dns6 + "\n";
  }
  if (::fchmod(fd.get(), 0644) < 0 || !write_all(fd.get(), text)) {
    std::fprintf(stderr, "slirpnetd run: writing %s: %s\n", path.c_str(), std::strerror(errno));
    ::unlink(path.c_str());
    return {};
  }
  return path;
}

bool bind_netns(pid_t pid, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644));  // an existing file is fine
  if (!fd) {
    std::fprintf(stderr, "slirpnetd run: --netns-path %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  const std::string ns = "/proc/" + std::to_string(pid) + "/ns/net";
  if (::mount(ns.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) < 0) {
    std::fprintf(stderr, "slirpnetd run: bind-mounting %s on %s: %s\n", ns.c_str(), path.c_str(), std::strerror(errno));
    return false;
  }
  return true;
}

int status_of(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return EXIT_FAILURE;
}

// Waits for the child; if it is still running after `grace_ms`, SIGTERM, then SIGKILL after 5 s.
int reap(pid_t pid, int grace_ms) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  UniqueFd owner(pidfd);
  auto wait_exit = [pidfd](int ms) {
    if (pidfd < 0) return true;  // no pidfd: block in waitpid
    pollfd p{pidfd, POLLIN, 0};
    int r;
    do r = ::poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r > 0;
  };
  if (!wait_exit(grace_ms)) {
    ::kill(pid, SIGTERM);
    if (!wait_exit(5000)) ::kill(pid, SIGKILL);
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return EXIT_FAILURE;
  }
  return status_of(wstatus);
}

}  // namespace

int main(int argc, char* argv[]) {
  std::ios::sync_with_stdio(true);
  auto parsed = parse_run_args(argc, argv, std::cout, std::cerr);
  std::cout.flush();
  if (parsed.exit_status) return *parsed.exit_status;
  RunOptions& ro = parsed.options;
  auto net = config::make_net_config(ro.daemon, std::cerr);
  if (!net) return EXIT_FAILURE;

  const std::string resolv = make_resolv_conf(*net);
  if (resolv.empty()) return EXIT_FAILURE;
  int rp[2], gp[2];
  if (::pipe2(rp, O_CLOEXEC) < 0 || ::pipe2(gp, O_CLOEXEC) < 0) {
    std::perror("slirpnetd run: pipe");
    ::unlink(resolv.c_str());
    return EXIT_FAILURE;
  }
  UniqueFd ready_r(rp[0]), ready_w(rp[1]), go_r(gp[0]), go_w(gp[1]);
  const uid_t uid = ::geteuid();
  const gid_t gid = ::getegid();
  const pid_t pid = start_child([&]() -> int {  // we are single-threaded here
    ready_r.reset();
    go_w.reset();
    child_main(ready_w.get(), go_r.get(), uid, gid, resolv, ro.command);
  });
  if (pid < 0) {
    std::perror("slirpnetd run: fork");
    ::unlink(resolv.c_str());
    return EXIT_FAILURE;
  }
  ready_w.reset();
  go_r.reset();

  std::string report;
  char buf[512];
  ssize_t n;
  while ((n = ::read(ready_r.get(), buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    report.append(buf, static_cast<size_t>(n));
  }
  ::unlink(resolv.c_str());  // mounted (or not) by now
  const bool child_ok = report.size() >= 2 && report.compare(report.size() - 2, 2, "ok") == 0;
  std::fputs(child_ok ? report.substr(0, report.size() - 2).c_str() : report.c_str(), stderr);
  if (!child_ok) {
    reap(pid, 5000);
    return EXIT_FAILURE;
  }
  if (!ro.netns_path.empty() && !bind_netns(pid, ro.netns_path)) {
    go_w.reset();  // the child exits without running CMD
    reap(pid, 5000);
    return EXIT_FAILURE;
  }

  ro.daemon.target_pid = pid;
  bool started = false;
  daemon::Hooks hooks;
  hooks.quiet = true;
  hooks.on_ready = [&](hostfwd::Registry& forwards) {
    // Through the daemon's registry, as an add_hostfwd on the API socket would: listed and
    // removable there.
    for (const PortSpec& p : ro.ports) {
      const hostfwd::AddResult r = forwards.add(hostfwd_request(p));
      if (r.error != hostfwd::Error::kNone) {
        std::string why(ctl::hostfwd_error_desc(r.error, r.splice));
        if (r.error == hostfwd::Error::kEngine) why += std::string(": ") + std::strerror(-r.err);
        std::fprintf(stderr, "slirpnetd run: -p %s%s%d:%d%s: %s\n", p.host_addr.c_str(), p.host_addr.empty() ? "" : ":",
                     p.host_port, p.guest_port, p.udp ? "/udp" : "", why.c_str());
        return false;
      }
    }
    started = write_all(go_w.get(), "g");
    go_w.reset();
    return started;
  };
  const int daemon_status = daemon::serve(ro.daemon, hooks);
  go_w.reset();
  // CMD's exit is what normally stops the daemon; otherwise give it no more time.
  const int cmd_status = reap(pid, 0);
  return started ? cmd_status : (daemon_status != 0 ? daemon_status : EXIT_FAILURE);
}

}  // namespace slirpnetd::run
