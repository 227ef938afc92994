#pragma once
// fwd/connector.hpp: opens TCP connections inside another network namespace, without the daemon
// ever leaving its own.
//
// Connector::start() forks a small child (raw clone, like ns::open_tap's) that joins the target's
// user namespace (if given; failure ignored, as slirp4netns does) and network namespace, closes
// every inherited fd except its end of a SOCK_SEQPACKET socketpair, and then serves requests
// until the daemon closes that socket: for each "connect to ADDR" it creates a non-blocking TCP
// (or UDP) socket *in the target netns*, starts connect() and passes the socket back with
// SCM_RIGHTS.
// The daemon therefore stays single-netns, and needs no setns() once threads run or seccomp is on.
//
// Threads: start() before any thread exists (setns(CLONE_NEWUSER) refuses multithreaded callers);
// connect() from any thread (serialised).
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/unique_fd.hpp"

namespace slirpnetd::fwd {

class Connector {
 public:
  // Empty paths: stay in that namespace (the tests use this). Returns null after printing the
  // error to stderr. connect() waits at most `timeout_ms` for the child's answer.
  static std::unique_ptr<Connector> start(const std::string& netns_path, const std::string& userns_path,
                                          int timeout_ms = 2000);
  ~Connector();  // closes the socket (the child exits on EOF) and reaps the child
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // A non-blocking, close-on-exec TCP socket created in the target netns, whose connect() to `to`
  // has started (completion: writable, then SO_ERROR). An unspecified address (0.0.0.0, ::) means
  // that family's loopback. Returns 0 or -errno (from socket(), connect(), or the round trip).
  // type SOCK_DGRAM: a UDP socket connected to `to` (connect() completes at once).
  // -ETIMEDOUT if the child did not answer in time (its late answer is discarded later).
  int connect(const sockaddr_storage& to, socklen_t len, UniqueFd& out, int type = SOCK_STREAM);

  pid_t pid() const { return pid_; }

 private:
  Connector(UniqueFd sock, pid_t pid) : sock_(std::move(sock)), pid_(pid) {}
  std::mutex mu_;
  uint64_t seq_ = 0;  // guarded by mu_
  UniqueFd sock_;
  pid_t pid_;
};

}  // namespace slirpnetd::fwd
