#include "stats/client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/unique_fd.hpp"

namespace slirpnetd::stats {

namespace {

constexpr char kRequest[] = R"({"execute":"get_stats"})";
constexpr size_t kMaxReply = 1 << 20;

uint64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Waits for `events` on fd until `deadline` (CLOCK_MONOTONIC ns). False on timeout.
bool wait_for(int fd, short events, uint64_t deadline) {
  for (;;) {
    const uint64_t now = clock_ns(CLOCK_MONOTONIC);
    if (now >= deadline) return false;
    pollfd p{fd, events, 0};
    const int ms = static_cast<int>((deadline - now + 999999) / 1000000);
    const int n = ::poll(&p, 1, ms);
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let the read/write report it
  }
}

}  // namespace

std::optional<Sample> get_stats(const std::string& path, std::chrono::milliseconds timeout, std::string& error) {
  const uint64_t deadline =
      clock_ns(CLOCK_MONOTONIC) + static_cast<uint64_t>(std::chrono::nanoseconds(timeout).count());
  const std::string timeout_text = std::to_string(timeout.count()) + " ms";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    error = "the API socket path is too long (>= " + std::to_string(sizeof addr.sun_path) + " bytes): " + path;
    return std::nullopt;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    error = std::string("socket: ") + std::strerror(errno);
    return std::nullopt;
  }
  // A UNIX stream connect completes at once or fails (EAGAIN: the listen backlog is full).
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    error = "cannot connect to " + path + ": " + std::strerror(e);
    if (e == ENOENT || e == ECONNREFUSED) error += " (is slirpnetd running with --api-socket " + path + "?)";
    return std::nullopt;
  }
  size_t sent = 0;
  while (sent < sizeof kRequest - 1) {
    if (!wait_for(fd.get(), POLLOUT, deadline)) {
      error = "no reply from " + path + " within " + timeout_text;
      return std::nullopt;
    }
    const ssize_t n = ::send(fd.get(), kRequest + sent, sizeof kRequest - 1 - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) {
      error = "cannot send the request to " + path + ": " + std::strerror(errno);
      return std::nullopt;
    }
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd.get(), SHUT_WR);  // the request is complete: the daemon answers at once

  std::string reply;
  char buf[16384];
  for (;;) {
    if (!wait_for(fd.get(), POLLIN, deadline)) {
      error = "no reply from " + path + " within " + timeout_text;
      return std::nullopt;
    }
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) {
      error = "cannot read the reply from " + path + ": " + std::strerror(errno);
      return std::nullopt;
    }
    if (n == 0) break;
    reply.append(buf, static_cast<size_t>(n));
    if (reply.size() > kMaxReply) {
      error = "the reply from " + path + " is larger than 1 MiB";
      return std::nullopt;
    }
  }
  const uint64_t mono = clock_ns(CLOCK_MONOTONIC);
  const uint64_t wall = clock_ns(CLOCK_REALTIME);
  if (reply.empty()) {
    error = path + " closed the connection without a reply";
    return std::nullopt;
  }
  std::string why;
  auto sample = parse_reply(reply, why);
  if (!sample) {
    if (why.empty())
      error = "unexpected reply from " + path + ": " + reply.substr(0, 200);
    else
      error = path + " answered get_stats with an error: " + why +
              " (only slirpnetd has get_stats: is this slirp4netns's socket?)";
    return std::nullopt;
  }
  sample->mono_ns = mono;
  sample->wall_s = static_cast<double>(wall) / 1e9;
  return sample;
}

}  // namespace slirpnetd::stats
