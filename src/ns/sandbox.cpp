// ns/sandbox.cpp: --enable-sandbox and --enable-seccomp, as slirp4netns's sandbox.c and
// seccompfilter.c do them (spec §4 step 2, §5.1, §5.2), with two deliberate differences:
//   - enter_userns_for_sandbox() honours --userns-path (slirp4netns issue #317);
//   - the seccomp filter is loaded before the daemon starts its first thread (so every thread
//     inherits it), with TSYNC as well, in case a library started one of its own.
#include "ns/sandbox.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
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

bool drop_caps_except_net_bind_service() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
    std::fprintf(stderr, "prctl(PR_SET_NO_NEW_PRIVS)\n");
    return false;
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
    std::fprintf(stderr, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)\n");
    return false;
  }
  for (int cap = 0;; ++cap) {
    if (cap == CAP_NET_BIND_SERVICE) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      if (errno == EINVAL) break;  // past the last capability this kernel knows
      std::fprintf(stderr, "prctl(PR_CAPBSET_DROP)\n");
      return false;
    }
  }
  // Raw capset(2): libcap is not one of our dependencies.
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  data[0].effective = data[0].permitted = data[0].inheritable = 1u << CAP_NET_BIND_SERVICE;
  if (::syscall(SYS_capset, &hdr, data) < 0) {
    std::fprintf(stderr, "capset(0)\n");
    return false;
  }
  return true;
}

// ---- seccomp ------------------------------------------------------------------------------------

// The deny-list, in slirp4netns's order (seccompfilter_rules.h, grouped like systemd's syscall
// groups). This is the one place to change if the filter becomes an allow-list.
constexpr const char* kBlockedSyscalls[] = {
    "execve", "lookup_dcookie", "pidfd_getfd", "ptrace", "process_vm_readv", "process_vm_writev",
    "delete_module", "finit_module", "init_module", "chroot", "fsconfig", "fsmount", "fsopen",
    "fspick", "mount", "move_mount", "open_tree", "pivot_root", "umount", "umount2",
    "open_by_handle_at", "execveat", "pidfd_open", "pidfd_send_signal", "prctl", "setns",
    "unshare", "kexec_file_load", "kexec_load", "reboot", "name_to_handle_at",
};

// Secondary architectures a process on this arch can still make syscalls through (seccomparch.h).
constexpr uint32_t kExtraArches[] = {
#if defined(__x86_64__)
    SCMP_ARCH_X86, SCMP_ARCH_X32,
#elif defined(__aarch64__)
    SCMP_ARCH_ARM,
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    SCMP_ARCH_PPC, SCMP_ARCH_PPC64,
#elif defined(__s390x__)
    SCMP_ARCH_S390,
#endif
    0,  // sentinel, so the array is never empty
};

uint32_t block_action() {
  // SECCOMP_RET_KILL_PROCESS (Linux 4.14) kills every thread; plain KILL only the caller, which
  // would leave the rest of the daemon running half-dead.
  uint32_t action = SECCOMP_RET_KILL_PROCESS;
  if (::syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0)
    return SCMP_ACT_KILL_PROCESS;
  return SCMP_ACT_KILL;
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

bool enable_seccomp() {
  std::unique_ptr<void, SeccompRelease> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) {
    std::fprintf(stderr, "seccomp: seccomp_init() failed\n");
    return false;
  }
  for (size_t i = 0; kExtraArches[i] != 0; ++i) {
    int rc = seccomp_arch_add(ctx.get(), kExtraArches[i]);
    if (rc < 0 && rc != -EEXIST && rc != -EDOM) {
      std::fprintf(stderr, "seccomp: WARNING: can't add extra arch (i=%zu): %s\n", i,
                   std::strerror(-rc));
    }
  }
  // Without the sandbox nothing else sets no_new_privs; libseccomp's default NNP=1 does.
  // TSYNC: any thread that exists already is filtered too, not just this one.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc < 0) {
    std::fprintf(stderr, "seccomp: seccomp_attr_set(SCMP_FLTATR_CTL_TSYNC): %s\n",
                 std::strerror(-rc));
    return false;
  }

  const uint32_t action = block_action();
  std::string blocked, undefined, failed;
  for (const char* name : kBlockedSyscalls) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) {
      undefined += std::string(" ") + name;
    } else if (seccomp_rule_add(ctx.get(), action, nr, 0) < 0) {
      failed += std::string(" ") + name;
    } else {
      blocked += std::string(" ") + name;
    }
  }
  if (!undefined.empty()) {
    std::fprintf(stderr,
                 "seccomp: WARNING: the following syscalls are not defined in libseccomp and "
                 "cannot be blocked:%s\n",
                 undefined.c_str());
  }
  if (!failed.empty()) {
    std::fprintf(stderr,
                 "seccomp: WARNING: the following syscalls cannot be blocked due to unexpected "
                 "errors:%s\n",
                 failed.c_str());
  }
  if (int rc = seccomp_load(ctx.get()); rc != 0) {
    // With TSYNC a positive rc is the id of a thread that could not be synchronised.
    std::fprintf(stderr, "seccomp: seccomp_load(): %s\n",
                 rc < 0 ? std::strerror(-rc) : ("cannot sync thread " + std::to_string(rc)).c_str());
    return false;
  }
  std::printf("seccomp: The following syscalls are blocked:%s\n", blocked.c_str());
  std::fflush(stdout);
  return true;
}

}  // namespace slirpnetd::ns
