// fwd/connector.cpp: the connector child and its request/reply protocol.
//
// Request (one SEQPACKET message): Request{addr, len, type}. Reply: Reply{err}, with the socket attached
// (SCM_RIGHTS) when err == 0.
#include "fwd/connector.hpp"

// Under seccomp (src/ns/sandbox.cpp), the daemon's side: a request out, a socket back; the
// destructor reaps the child.
// #syscalls: sendto recvmsg wait4
// The child's own filter (ns::confine_connector): requests in, sockets created, connected and
// passed back; and the SIGSYS handler's calls.
// #syscalls:connector recvfrom socket connect sendmsg close exit_group exit restart_syscall
// #syscalls:connector write rt_sigaction rt_sigprocmask rt_sigreturn tgkill getpid gettid

#include "common/child.hpp"
#include "common/fd_passing.hpp"
#include "ns/join.hpp"
#include "ns/sandbox.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

namespace slirpnetd::fwd {
namespace {

struct Request {
  uint64_t seq;  // echoed in the reply: a reply that comes after its request timed out is discarded
  sockaddr_storage addr;
  socklen_t len;
  int type;  // SOCK_STREAM or SOCK_DGRAM
};
struct Reply {
  uint64_t seq;
  int err;  // 0 or an errno
};

// Every fd but 0, 1, 2 and `keep`: the child must not hold the TAP, the ready-fd or the API
// socket (a client waiting for EOF on the ready pipe would wait for us).
void close_all_but(int keep) {
  if (keep > 3) ::syscall(SYS_close_range, 3u, static_cast<unsigned>(keep - 1), 0u);
  ::syscall(SYS_close_range, static_cast<unsigned>(keep + 1), UINT_MAX, 0u);
}

void loopback_if_unspecified(sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    auto& a = reinterpret_cast<sockaddr_in&>(ss).sin_addr;
    if (a.s_addr == htonl(INADDR_ANY)) a.s_addr = htonl(INADDR_LOOPBACK);
  } else if (ss.ss_family == AF_INET6) {
    auto& a = reinterpret_cast<sockaddr_in6&>(ss).sin6_addr;
    if (IN6_IS_ADDR_UNSPECIFIED(&a)) a = in6addr_loopback;
  }
}

void send_reply(int sock, uint64_t seq, int err, int fd) {
  const Reply reply{seq, err};
  send_with_fd(sock, &reply, sizeof reply, fd);
}

[[noreturn]] void child_main(int sock, const std::string& netns, const std::string& userns) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  close_all_but(sock);
  ::prctl(PR_SET_NAME, "slirpnetd-conn");
  if (!ns::join_namespaces({netns, userns})) ::_exit(1);
  // It keeps what it needs (the socketpair, the target's network namespace) and gives up the rest:
  // the host's filesystem, capabilities, every system call but a few.
  if (!ns::confine_connector()) ::_exit(1);
  for (;;) {
    Request req{};
    const ssize_t n = ::recv(sock, &req, sizeof req, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ::_exit(0);  // the daemon is gone
    if (n != sizeof req || (req.addr.ss_family != AF_INET && req.addr.ss_family != AF_INET6) ||
        req.len > sizeof req.addr || (req.type != SOCK_STREAM && req.type != SOCK_DGRAM)) {
      send_reply(sock, req.seq, EINVAL, -1);
      continue;
    }
    loopback_if_unspecified(req.addr);
    UniqueFd s(::socket(req.addr.ss_family, req.type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s) {
      send_reply(sock, req.seq, errno, -1);
      continue;
    }
    if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&req.addr), req.len) < 0 && errno != EINPROGRESS) {
      send_reply(sock, req.seq, errno, -1);
      continue;
    }
    send_reply(sock, req.seq, 0, s.get());
  }
}

}  // namespace

std::unique_ptr<Connector> Connector::start(const std::string& netns_path, const std::string& userns_path,
                                            int timeout_ms) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    std::perror("connector: socketpair");
    return nullptr;
  }
  UniqueFd ours(sv[0]), theirs(sv[1]);
  // A stopped or stuck child must not stall the forwarder's worker for ever: connect() gives up.
  const timeval tv{static_cast<time_t>(timeout_ms / 1000), static_cast<suseconds_t>(timeout_ms % 1000 * 1000)};
  if (::setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      ::setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
    std::perror("connector: SO_RCVTIMEO");
    return nullptr;
  }
  const pid_t pid = start_child([&]() -> int { child_main(theirs.get(), netns_path, userns_path); });
  if (pid < 0) {
    std::perror("connector: fork");
    return nullptr;
  }
  return std::unique_ptr<Connector>(new Connector(std::move(ours), pid));
}

Connector::~Connector() {
  sock_.reset();
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

int Connector::connect(const sockaddr_storage& to, socklen_t len, UniqueFd& out, int type) {
  std::lock_guard<std::mutex> lock(mu_);
  const Request req{++seq_, to, len, type};
  ssize_t n;
  do n = ::send(sock_.get(), &req, sizeof req, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != sizeof req) return n < 0 ? (errno == EAGAIN ? -ETIMEDOUT : -errno) : -EIO;

  for (;;) {
    Reply reply{};
    out.reset();
    n = recv_with_fd(sock_.get(), &reply, sizeof reply, out);  // bounded by SO_RCVTIMEO
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
    if (n != sizeof reply) {  // the child died
      out.reset();
      return -EPIPE;
    }
    if (reply.seq != req.seq) continue;  // the late answer to a request that timed out
    if (reply.err != 0) return -reply.err;
    return out ? 0 : -EPROTO;
  }
}

}  // namespace slirpnetd::fwd
