// ns/tap.cpp: open_tap(), slirp4netns's child()/parent() fd hand-over (docs/compatibility.md,
// "Start-up and the TAP device").
//
// The child (common/child.hpp) runs to _exit() and never returns into the caller's code, so it reports with perror()/fprintf(stderr) (unbuffered) exactly as
// slirp4netns does, and never touches std::cout or the caller's objects' destructors.
#include "ns/tap.hpp"

#include "common/child.hpp"
#include "common/fd_passing.hpp"
#include "ns/join.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <csignal>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/route.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

namespace slirpnetd::ns {
namespace {

void copy_ifname(char (&dst)[IFNAMSIZ], const std::string& name) {
  std::memset(dst, 0, sizeof(dst));
  // slirp4netns: strncpy(ifr_name, name, IFNAMSIZ-1), so longer names are silently truncated.
  std::strncpy(dst, name.c_str(), sizeof(dst) - 1);
}

sockaddr_in make_sin(in_addr addr) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr = addr;
  return sin;
}

// ---- child side ---------------------------------------------------------------------------------

// vnet_hdr: also IFF_VNET_HDR (slirpnetd --offload=on): the flag can only be set here, when the fd
// is attached; the daemon then negotiates the offloads with TUNSETOFFLOAD.
UniqueFd child_open_tap(const std::string& tapname, bool vnet_hdr) {
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) {
    std::perror("open(\"/dev/net/tun\")");
    return {};
  }
  ifreq ifr{};
  ifr.ifr_flags = static_cast<short>(IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0));
  copy_ifname(ifr.ifr_name, tapname);
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0) {
    std::perror("ioctl(TUNSETIFF)");
    return {};
  }
  return fd;
}

bool set_flags_up(int sock, const char* ifname) {
  ifreq ifr{};
  copy_ifname(ifr.ifr_name, ifname);
  ifr.ifr_flags = IFF_UP | IFF_RUNNING;
  if (::ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) {
    std::perror("cannot set device up");
    return false;
  }
  return true;
}

// Sets IFLA_TXQLEN over rtnetlink; returns 0 or an errno. Not SIOCSIFTXQLEN: that ioctl checks
// CAP_NET_ADMIN in the initial user namespace, so it fails (EPERM) in the rootless case, where
// netlink only needs CAP_NET_ADMIN over the target netns.
int set_txqueuelen(const char* ifname, int qlen) {
  const unsigned index = ::if_nametoindex(ifname);
  if (index == 0) return errno;
  UniqueFd nl(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!nl) return errno;
  struct {
    nlmsghdr nh;
    ifinfomsg ifi;
    alignas(NLMSG_ALIGNTO) char attr[RTA_SPACE(sizeof(uint32_t))];
  } req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg)) + RTA_SPACE(sizeof(uint32_t));
  req.nh.nlmsg_type = RTM_NEWLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = static_cast<int>(index);
  auto* rta = reinterpret_cast<rtattr*>(req.attr);
  rta->rta_type = IFLA_TXQLEN;
  rta->rta_len = RTA_LENGTH(sizeof(uint32_t));
  const uint32_t value = static_cast<uint32_t>(qlen);
  std::memcpy(RTA_DATA(rta), &value, sizeof(value));
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(nl.get(), &req, req.nh.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) < 0)
    return errno;
  alignas(nlmsghdr) char buf[512];
  ssize_t n = ::recv(nl.get(), buf, sizeof(buf), 0);
  if (n < 0) return errno;
  auto* nh = reinterpret_cast<nlmsghdr*>(buf);
  if (!NLMSG_OK(nh, static_cast<unsigned>(n)) || nh->nlmsg_type != NLMSG_ERROR) return EPROTO;
  return -static_cast<nlmsgerr*>(NLMSG_DATA(nh))->error;  // 0: the ACK
}

// slirp4netns's configure_network(), step for step and message for message.
// slirpnetd addition: slirp4netns issue #128 (its man page, BUGS). Kernel 4.20 raised the default
// tcp_rmem[1] from 87380 to 131072, which slows port forwarding through libslirp (no window
// scaling). The man page's workaround, applied in the target netns (the file is per-netns and
// writable by the netns owner's root), only when the value is still the kernel default.
void lower_tcp_rmem() {
  UniqueFd fd(::open("/proc/sys/net/ipv4/tcp_rmem", O_RDWR | O_CLOEXEC));
  if (!fd) return;
  char cur[64] = {};
  if (::read(fd.get(), cur, sizeof cur - 1) <= 0) return;
  unsigned lo = 0, def = 0, hi = 0;
  if (std::sscanf(cur, "%u %u %u", &lo, &def, &hi) != 3 || def != 131072) return;
  static const char kValue[] = "4096 87380 6291456\n";
  if (::pwrite(fd.get(), kValue, sizeof kValue - 1, 0) < 0)
    std::fprintf(stderr, "WARNING: cannot lower tcp_rmem in the namespace: %s\n", std::strerror(errno));
}

bool child_configure(const std::string& tapname, const config::NetConfig& net) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) {
    std::perror("cannot create socket");
    return false;
  }
  if (!set_flags_up(sock.get(), "lo") || !set_flags_up(sock.get(), tapname.c_str())) return false;

  ifreq ifr{};
  copy_ifname(ifr.ifr_name, tapname);
  ifr.ifr_mtu = net.mtu;
  if (::ioctl(sock.get(), SIOCSIFMTU, &ifr) < 0) {
    std::perror("cannot set MTU");
    return false;
  }
  if (net.mac) {
    ifr = {};
    copy_ifname(ifr.ifr_name, tapname);
    ifr.ifr_hwaddr.sa_family = AF_LOCAL;  // == ARPHRD_ETHER (1), as slirp4netns writes it
    std::memcpy(ifr.ifr_hwaddr.sa_data, net.mac->data(), net.mac->size());
    if (::ioctl(sock.get(), SIOCSIFHWADDR, &ifr) < 0) {
      std::perror("cannot set MAC address");
      return false;
    }
  }
  ifr = {};
  copy_ifname(ifr.ifr_name, tapname);
  sockaddr_in sin = make_sin(net.guest);
  std::memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
  if (::ioctl(sock.get(), SIOCSIFADDR, &ifr) < 0) {
    std::perror("cannot set device address");
    return false;
  }
  sin = make_sin(net.netmask);
  std::memcpy(&ifr.ifr_netmask, &sin, sizeof(sin));
  if (::ioctl(sock.get(), SIOCSIFNETMASK, &ifr) < 0) {
    std::perror("cannot set device netmask");
    return false;
  }

  rtentry route{};
  sin = make_sin(net.gateway);
  std::memcpy(&route.rt_gateway, &sin, sizeof(sin));
  sin = make_sin(in_addr{INADDR_ANY});
  std::memcpy(&route.rt_dst, &sin, sizeof(sin));
  std::memcpy(&route.rt_genmask, &sin, sizeof(sin));
  route.rt_flags = RTF_UP | RTF_GATEWAY;
  route.rt_metric = 0;
  char dev[IFNAMSIZ];
  copy_ifname(dev, tapname);
  route.rt_dev = dev;
  if (::ioctl(sock.get(), SIOCADDRT, &route) < 0) {
    std::perror("set route");
    return false;
  }

  // slirpnetd addition (not in slirp4netns): raise the tap's txqueuelen (see kTapTxQueueLen in
  // tap.hpp); it reduces drops when the guest sends faster than our tap-rx thread reads.
  // Best effort: a failure costs throughput, not correctness, so it is only a warning.
  ifr = {};
  copy_ifname(ifr.ifr_name, tapname);
  if (::ioctl(sock.get(), SIOCGIFTXQLEN, &ifr) == 0 && ifr.ifr_qlen < kTapTxQueueLen) {
    if (int err = set_txqueuelen(ifr.ifr_name, kTapTxQueueLen); err != 0) {
      std::fprintf(stderr, "WARNING: cannot set txqueuelen of %s to %d: %s\n", ifr.ifr_name,
                   kTapTxQueueLen, std::strerror(err));
    }
  }
  lower_tcp_rmem();
  return true;
}

bool send_fd(int sock, int fd) {
  const char dummy = '\0';
  if (send_with_fd(sock, &dummy, 1, fd) < 0) {
    std::perror("sendmsg");
    return false;
  }
  return true;
}

int child_netns(int sock, const config::Options& opts, const config::NetConfig& net, bool vnet_hdr) {
  if (!join_namespaces(target_namespaces(opts))) return 1;
  UniqueFd tap = child_open_tap(opts.tapname, vnet_hdr);
  if (!tap) return 1;
  if (opts.configure && !child_configure(opts.tapname, net)) return 1;
  if (!send_fd(sock, tap.get())) return 1;
  char name[IFNAMSIZ];
  copy_ifname(name, opts.tapname);
  std::fprintf(stderr, "sent tapfd=%d for %s\n", tap.get(), name);
  return 0;
}

int child_bess(int sock, const config::Options& opts) {
  const std::string& path = opts.bess_socket;
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    std::fprintf(stderr, "the specified BESS socket path is too long (>= %zu)\n",
                 sizeof(addr.sun_path));
    return 1;
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd listener(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!listener) {
    std::perror("socket");
    return 1;
  }
  ::unlink(path.c_str());
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    std::perror("bind");
    return 1;
  }
  if (::listen(listener.get(), 0) < 0) {
    std::perror("listen");
    return 1;
  }
  std::fprintf(stderr, "Waiting for connection to %s\n", path.c_str());
  UniqueFd conn;
  do conn.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  while (!conn && errno == EINTR);
  if (!conn) {
    std::perror("accept");
    return 1;
  }
  if (!send_fd(sock, conn.get())) return 1;
  std::fprintf(stderr, "sent \"tapfd\"=%d (not really TAP) for %s\n", conn.get(), path.c_str());
  return 0;
}

// ---- parent side --------------------------------------------------------------------------------

UniqueFd recv_fd(int sock) {
  char dummy = '\0';
  UniqueFd fd;
  const ssize_t n = recv_with_fd(sock, &dummy, 1, fd);
  if (n < 0) {
    std::perror("recvmsg");
    return {};
  }
  if (n == 0) {
    std::fprintf(stderr, "the message is empty\n");
    return {};
  }
  if (!fd) std::fprintf(stderr, "the message does not contain fd\n");
  return fd;
}

// O_NONBLOCK: the TAP threads poll the fd. FD_CLOEXEC: nothing we might exec should keep the
// device alive (a non-persistent tap disappears with its last fd).
bool set_fd_flags(int fd, bool cloexec) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    std::perror("fcntl(O_NONBLOCK)");
    return false;
  }
  if (cloexec) {
    int fdfl = ::fcntl(fd, F_GETFD);
    if (fdfl < 0 || ::fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) {
      std::perror("fcntl(FD_CLOEXEC)");
      return false;
    }
  }
  return true;
}

TapResult use_inherited_fd(int fd) {
  TapResult r;
  if (fd < 0 || ::fcntl(fd, F_GETFD) < 0) {
    std::fprintf(stderr, "tapfd %d is not an open file descriptor: %s\n", fd,
                 std::strerror(fd < 0 ? EBADF : errno));
    r.exit_status = 1;
    return r;
  }
  // The fd is the caller's (inherited); we own it from here on, as slirp4netns does.
  r.fd.reset(fd);
  if (!set_fd_flags(fd, true)) {
    (void)r.fd.release();  // leave the caller's fd open on failure
    r.exit_status = 1;
  }
  return r;
}

}  // namespace

TapResult open_tap(const config::Options& opts, const config::NetConfig& net, bool vnet_hdr) {
  TapResult result;
  result.exit_status = 1;
  if (opts.target_type == config::TargetType::Netns &&
      opts.netns_type == config::NetnsType::TapFd) {
    return use_inherited_fd(opts.tapfd);
  }

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    std::perror("socketpair");
    return result;
  }
  UniqueFd parent_sock(sv[0]), child_sock(sv[1]);

  // Anything still buffered would otherwise be written twice: once by the child, once by us.
  std::cout.flush();
  std::cerr.flush();

  // The child runs only async-signal-safe-ish code (open, ioctl, sendmsg, perror).
  const pid_t pid = start_child([&] {
    parent_sock.reset();
    return opts.target_type == config::TargetType::Bess ? child_bess(child_sock.get(), opts)
                                                        : child_netns(child_sock.get(), opts, net, vnet_hdr);
  });
  if (pid < 0) {
    std::perror("fork");
    return result;
  }
  child_sock.reset();  // so recvmsg() sees EOF if the child exits without sending

  int wstatus = 0;
  pid_t w;
  do w = ::waitpid(pid, &wstatus, 0);
  while (w < 0 && errno == EINTR);
  if (w < 0) {
    std::perror("waitpid");
    return result;
  }
  if (!WIFEXITED(wstatus)) {
    std::fprintf(stderr, "child failed(wstatus=%d, !WIFEXITED)\n", wstatus);
    return result;
  }
  if (int status = WEXITSTATUS(wstatus); status != 0) {
    std::fprintf(stderr, "child failed(%d)\n", status);
    result.exit_status = status;
    return result;
  }

  UniqueFd fd = recv_fd(parent_sock.get());
  if (!fd) {
    std::fprintf(stderr, "failed to receive tapfd from child\n");
    return result;
  }
  std::fprintf(stderr, "received tapfd=%d\n", fd.get());
  if (!set_fd_flags(fd.get(), false)) return result;  // CLOEXEC already set by MSG_CMSG_CLOEXEC
  result.fd = std::move(fd);
  result.exit_status = 0;
  return result;
}

}  // namespace slirpnetd::ns
