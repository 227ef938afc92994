// ns/sandbox.cpp: --enable-sandbox and --enable-seccomp, as slirp4netns's sandbox.c and
// seccompfilter.c do them, with these deliberate differences:
//   - enter_userns_for_sandbox() honours --userns-path (slirp4netns issue #317);
//   - the seccomp filter is loaded before the daemon starts its first thread (so every thread
//     inherits it), with TSYNC as well, in case a library started one of its own;
//   - the filter is an allow-list (slirp4netns's is a deny-list): see "seccomp" below.
#include "ns/sandbox.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "common/unique_fd.hpp"
#include "syscalls.inc"  // generated: SLIRPNETD_SYSCALLS, SLIRPNETD_SYSCALLS_SANITIZER

namespace slirpnetd::ns {
namespace {

// ---- sandbox ------------------------------------------------------------------------------------

// slirp4netns's add_mount(): a read-only, nosuid/nodev/noexec recursive bind that receives (but
// never sends) mount events from the host.
bool add_mount(const char* from, const char* to) {
  if (::mount("", from, "", MS_SLAVE | MS_REC, nullptr) < 0 && errno != EINVAL) {
    std::fprintf(stderr, "cannot make mount propagation slave %s\n", from);
    return false;
  }
  if (::mount(from, to, "", MS_BIND | MS_REC | MS_SLAVE | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              nullptr) < 0) {
    std::fprintf(stderr, "cannot bind mount %s to %s (errno: %d)\n", from, to, errno);
    return false;
  }
  if (::mount("", to, "", MS_SLAVE | MS_REC, nullptr) < 0) {
    std::fprintf(stderr, "cannot make mount propagation slave %s\n", to);
    return false;
  }
  if (::mount(from, to, "", MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              nullptr) < 0) {
    std::fprintf(stderr, "cannot remount ro %s\n", to);
    return false;
  }
  return true;
}

bool starts_with_dir(const std::string& path, const char* dir) {
  size_t n = std::strlen(dir);
  return path.compare(0, n, dir) == 0 && (path.size() == n || path[n] == '/');
}

// mkdir -p (mode 0755) of every parent directory of `path`.
bool mkdir_parents(const std::string& path) {
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    if (::mkdir(path.substr(0, pos).c_str(), 0755) < 0 && errno != EEXIST) return false;
  }
  return true;
}

// slirp4netns 1.2.1 (issue #315): when /etc/resolv.conf resolves outside /etc and /run (e.g.
// systemd-resolved's stub under /var, or a Nix store path), bind that file too, at the same path
// inside the new root, so libslirp's DNS forwarder can still read it after pivot_root.
bool bind_escaped_resolv_conf(const std::string& root) {
  char real[PATH_MAX];
  if (::realpath("/etc/resolv.conf", real) == nullptr) return true;
  const std::string target = real;
  if (starts_with_dir(target, "/etc") || starts_with_dir(target, "/run")) return true;
  std::fprintf(stderr,
               "sandbox: /etc/resolv.conf (-> %s) seems a symlink to a file outside {/etc, /run}, "
               "attempting to bind it as well.\n",
               real);
  const std::string dest = root + target;
  if (!mkdir_parents(dest)) {
    std::fprintf(stderr, "cannot create resolve dest dir path: %s\n", dest.c_str());
    return false;
  }
  UniqueFd f(::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!f) {
    std::fprintf(stderr, "cannot create empty resolv.conf dest file %s\n", dest.c_str());
    return false;
  }
  if (!add_mount(target.c_str(), dest.c_str())) {
    std::fprintf(stderr, "cannot bind mount resolv.conf\n");
    return false;
  }
  return true;
}

// no_new_privs, then every capability but those in `keep` (a mask of CAP_* bits < 32) dropped:
// ambient, bounding set (needs CAP_SETPCAP: skipped without it), effective, permitted, inheritable.
bool drop_caps(uint32_t keep) {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
    std::fprintf(stderr, "prctl(PR_SET_NO_NEW_PRIVS)\n");
    return false;
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
    std::fprintf(stderr, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)\n");
    return false;
  }
  for (int cap = 0;; ++cap) {
    if (cap < 32 && (keep & (1u << cap))) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      if (errno == EINVAL) break;  // past the last capability this kernel knows
      if (errno == EPERM && keep == 0) break;  // no CAP_SETPCAP: nothing to drop it from either
      std::fprintf(stderr, "prctl(PR_CAPBSET_DROP)\n");
      return false;
    }
  }
  // Raw capset(2): libcap is not one of our dependencies.
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  data[0].effective = data[0].permitted = data[0].inheritable = keep;
  if (::syscall(SYS_capset, &hdr, data) < 0) {
    std::fprintf(stderr, "capset(0)\n");
    return false;
  }
  return true;
}

bool drop_caps_except_net_bind_service() { return drop_caps(1u << CAP_NET_BIND_SERVICE); }

// A new mount namespace whose root is an empty, read-only tmpfs. Without the privilege for a
// mount namespace (an unprivileged caller in its own user namespace), a new user namespace
// provides it. False (errno set) if that is impossible too.
bool pivot_to_empty_root() {
  if (::unshare(CLONE_NEWNS) < 0 && (errno != EPERM || ::unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)) return false;
  if (::mount("", "/", "", MS_PRIVATE | MS_REC, nullptr) < 0) return false;
  if (::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555") < 0) return false;
  if (::chdir("/tmp") < 0 || ::syscall(SYS_pivot_root, ".", ".") < 0) return false;
  // pivot_root(".", "."): the old root is stacked on the new one; detaching it leaves the tmpfs.
  if (::umount2(".", MNT_DETACH) < 0 || ::chdir("/") < 0) return false;
  ::mount("tmpfs", "/", "tmpfs", MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  return true;
}

// ---- seccomp ------------------------------------------------------------------------------------
//
// An allow-list. Each source file names the system calls it makes once the filter is on, in a
// `#syscalls:` comment next to the code (passt's habit); src/ns/syscalls.cmake collects them into
// syscalls.inc at build time. A call missing from every list traps: sigsys() prints its number
// and name and the process dies by SIGSYS. The integration suite runs with the filter on
// (SLIRPNETD_TEST_SECCOMP=1, as scripts/test.sh does for the plain build), so a syscall added
// without its line fails the tests that reach it.
//
// What the C and C++ runtime, glib and spdlog call on every thread (memory, threads, locks,
// signals, clocks, exit; write for the logs):
// #syscalls: brk mmap munmap mremap mprotect madvise futex set_robust_list rseq rt_sigreturn
// #syscalls: rt_sigaction rt_sigprocmask sigaltstack sched_yield clock_gettime clock_nanosleep
// #syscalls: nanosleep gettid getpid getppid getrandom exit exit_group restart_syscall write close
// The SIGSYS handler's own: tgkill (raise).
// #syscalls: tgkill
// Thread creation: clone with CLONE_THREAD only (a rule below); clone3, whose flags a filter
// cannot see, fails with ENOSYS and glibc falls back to clone.

constexpr const char* kAllowed[] = {SLIRPNETD_SYSCALLS};
constexpr const char* kAllowedSanitizer[] = {SLIRPNETD_SYSCALLS_SANITIZER nullptr};
// The splice connector's own, much shorter list (`#syscalls:connector` in src/fwd/connector.cpp).
constexpr const char* kAllowedConnector[] = {SLIRPNETD_SYSCALLS_CONNECTOR nullptr};

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizer = true;
#elif defined(__has_feature)
constexpr bool kSanitizer = __has_feature(address_sanitizer) || __has_feature(thread_sanitizer);
#else
constexpr bool kSanitizer = false;
#endif

// Names of every syscall number, for the SIGSYS handler (which must not allocate).
constexpr int kMaxSyscall = 1024;
std::string g_syscall_names[kMaxSyscall];

void put(char*& p, const char* s) {
  while (*s) *p++ = *s++;
}

// Async-signal-safe: formats by hand, then dies of the signal it handles.
void sigsys(int, siginfo_t* info, void*) {
  char buf[160];
  char* p = buf;
  put(p, "slirpnetd: seccomp: system call ");
  const int nr = info->si_syscall;
  char digits[12];
  int n = 0;
  for (unsigned v = static_cast<unsigned>(nr); n == 0 || v != 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
  while (n > 0) *p++ = digits[--n];
  if (nr >= 0 && nr < kMaxSyscall && !g_syscall_names[nr].empty()) {
    put(p, " (");
    const std::string& name = g_syscall_names[nr];
    for (size_t i = 0; i < name.size() && p < buf + sizeof buf - 40; ++i) *p++ = name[i];
    put(p, ")");
  }
  put(p, " is not in the allow-list: exiting\n");
  [[maybe_unused]] ssize_t w = ::write(2, buf, static_cast<size_t>(p - buf));
  ::signal(SIGSYS, SIG_DFL);
  ::raise(SIGSYS);  // delivered when the handler returns: the default action ends the process
}

struct SeccompRelease {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};

}  // namespace

bool enter_userns_for_sandbox(const config::Options& opts) {
  if (!opts.enable_sandbox || ::geteuid() == 0) return true;
  std::string userns_path = opts.userns_path;
  if (userns_path.empty() && opts.target_type == config::TargetType::Netns &&
      opts.netns_type == config::NetnsType::Pid && opts.target_pid > 0) {
    userns_path = "/proc/" + std::to_string(opts.target_pid) + "/ns/user";
  }
  if (!userns_path.empty()) {
    UniqueFd fd(::open(userns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
      std::perror(userns_path.c_str());
      return false;
    }
    if (::setns(fd.get(), CLONE_NEWUSER) < 0) {
      std::perror("setns(CLONE_NEWUSER)");
      return false;
    }
  }
  if (::setegid(0) < 0) {
    std::perror("setegid(0)");
    return false;
  }
  if (::seteuid(0) < 0) {
    std::perror("seteuid(0)");
    return false;
  }
  return true;
}

bool create_sandbox() {
  if (::unshare(CLONE_NEWNS) < 0) {
    std::fprintf(stderr, "cannot unshare new mount namespace\n");
    return false;
  }
  if (::mount("", "/", "", MS_PRIVATE, nullptr) < 0) {
    std::fprintf(stderr, "cannot remount / private\n");
    return false;
  }
  if (::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1k") < 0) {
    std::fprintf(stderr, "cannot mount tmpfs on /tmp\n");
    return false;
  }
  for (const char* dir : {"etc", "old", "run"}) {
    if (::mkdir((std::string("/tmp/") + dir).c_str(), 0755) < 0) {
      std::fprintf(stderr, "cannot mkdir /%s\n", dir);
      return false;
    }
  }
  if (!add_mount("/etc", "/tmp/etc")) return false;
  if (!bind_escaped_resolv_conf("/tmp")) return false;
  if (!add_mount("/run", "/tmp/run")) return false;

  if (::chdir("/tmp") < 0) {
    std::fprintf(stderr, "cannot chdir to /tmp\n");
    return false;
  }
  if (::syscall(SYS_pivot_root, ".", "old") < 0) {
    std::fprintf(stderr, "cannot pivot_root to /tmp\n");
    return false;
  }
  if (::chdir("/") < 0) {
    std::fprintf(stderr, "cannot chdir to /\n");
    return false;
  }
  if (::umount2("/old", MNT_DETACH) < 0) {
    std::fprintf(stderr, "cannot umount /old\n");
    return false;
  }
  if (::rmdir("/old") < 0) {
    std::fprintf(stderr, "cannot rmdir /old\n");
    return false;
  }
  // Ignored on failure, as in slirp4netns (#163: some kernels refuse it inside a userns).
  if (::mount("tmpfs", "/", "tmpfs", MS_REMOUNT | MS_RDONLY, "size=0k") < 0)
    std::fprintf(stderr, "cannot remount / as read-only\n");

  return drop_caps_except_net_bind_service();
}

namespace {

enum class Filter { Daemon, Connector };

bool load_filter(Filter which) {
  // Sanitizer runtimes make calls of their own (LSan's exit-time check forks and ptraces):
  // those builds only log what is not listed (SECCOMP_RET_LOG) instead of dying.
  std::unique_ptr<void, SeccompRelease> ctx(seccomp_init(kSanitizer ? SCMP_ACT_LOG : SCMP_ACT_TRAP));
  if (!ctx) {
    std::fprintf(stderr, "seccomp: seccomp_init() failed\n");
    return false;
  }
  // Without the sandbox nothing else sets no_new_privs; libseccomp's default NNP=1 does.
  // TSYNC: any thread that exists already is filtered too, not just this one. Other
  // architectures' system calls (x32, i386 on x86_64) are not allowed at all (the default
  // SCMP_FLTATR_ACT_BADARCH kills).
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc < 0) {
    std::fprintf(stderr, "seccomp: seccomp_attr_set(SCMP_FLTATR_CTL_TSYNC): %s\n",
                 std::strerror(-rc));
    return false;
  }

  std::string allowed, unknown;
  auto allow = [&](const char* name) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) {
      unknown += std::string(" ") + name;
      return true;
    }
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 0); rc < 0) {
      std::fprintf(stderr, "seccomp: cannot allow %s: %s\n", name, std::strerror(-rc));
      return false;
    }
    allowed += std::string(" ") + name;
    return true;
  };
  if (which == Filter::Connector) {
    for (size_t i = 0; kAllowedConnector[i] != nullptr; ++i)
      if (!allow(kAllowedConnector[i])) return false;
  } else {
    for (const char* name : kAllowed)
      if (!allow(name)) return false;
    if (kSanitizer)
      for (size_t i = 0; kAllowedSanitizer[i] != nullptr; ++i)
        if (!allow(kAllowedSanitizer[i])) return false;
    if (seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)) < 0 ||
        seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) < 0) {
      std::fprintf(stderr, "seccomp: cannot add the rules for clone and clone3\n");
      return false;
    }
    allowed += " clone(CLONE_THREAD)";
  }
  if (!unknown.empty())
    std::fprintf(stderr, "seccomp: WARNING: libseccomp does not know these system calls:%s\n", unknown.c_str());

  for (int nr = 0; nr < kMaxSyscall; ++nr) {
    if (char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr)) {
      g_syscall_names[nr] = name;
      std::free(name);
    }
  }
  struct sigaction sa {};
  sa.sa_sigaction = sigsys;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGSYS, &sa, nullptr) < 0) {
    std::fprintf(stderr, "seccomp: sigaction(SIGSYS): %s\n", std::strerror(errno));
    return false;
  }
  if (int rc = seccomp_load(ctx.get()); rc != 0) {
    // With TSYNC a positive rc is the id of a thread that could not be synchronised.
    std::fprintf(stderr, "seccomp: seccomp_load(): %s\n",
                 rc < 0 ? std::strerror(-rc) : ("cannot sync thread " + std::to_string(rc)).c_str());
    return false;
  }
  if (which == Filter::Daemon) {
    std::printf("seccomp: The following syscalls are allowed:%s\n", allowed.c_str());
    std::fflush(stdout);
  }
  return true;
}

}  // namespace

bool enable_seccomp() { return load_filter(Filter::Daemon); }

bool confine_connector() {
  if (!pivot_to_empty_root())
    std::fprintf(stderr, "connector: WARNING: cannot move to an empty root: %s\n", std::strerror(errno));
  if (!drop_caps(0)) return false;
  return load_filter(Filter::Connector);
}

}  // namespace slirpnetd::ns
