// ctl/api_server.cpp: see api_server.hpp.
#include "ctl/api_server.hpp"

// Under seccomp (src/ns/sandbox.cpp): the control thread (eventfd2: its spare descriptor, see
// accept_clients()); at stop(), removing the socket file (unlinkat) or waiting for the helper that
// does (wait4).
// #syscalls: poll accept4 recvfrom sendto shutdown read write eventfd2 newfstatat unlinkat wait4

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "common/child.hpp"

namespace slirpnetd::ctl {

namespace {

constexpr int kBacklog = 128;
constexpr std::size_t kMaxDrain = 64 * 1024;  // bytes discarded after the reply before giving up
constexpr auto kAcceptPause = std::chrono::milliseconds(100);

std::runtime_error bindlisten_error(const char* what, int err) {
  return std::runtime_error(std::string("api_bindlisten: ") + what + ": " + std::strerror(err));
}

sockaddr_un unix_addr(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());  // caller checked the length
  return addr;
}

// Is a process accepting connections on the socket file at `path`? ECONNREFUSED: no one is
// listening, the file is stale. EAGAIN: listening, backlog full.
bool socket_is_live(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw bindlisten_error("socket", errno);
  const sockaddr_un addr = unix_addr(path);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return true;
  const int err = errno;
  if (err == EAGAIN || err == EINPROGRESS) return true;
  if (err == ECONNREFUSED || err == ENOENT) return false;
  throw std::runtime_error("api_bindlisten: " + path + ": cannot tell whether the socket is in use: " +
                           std::strerror(err));
}

// The removal helper (see move_removal_to_helper()): it has only the directory fd and the
// pipe's read end; it waits for EOF, then removes `name` if it is still (dev, ino).
[[noreturn]] void removal_helper(int dir_fd, int pipe_fd, const std::string& name, dev_t dev, ino_t ino) {
  // Not debuggable by the sandboxed daemon (same uid): ptrace would need CAP_SYS_PTRACE.
  ::prctl(PR_SET_DUMPABLE, 0);
  ::prctl(PR_SET_NAME, "slirpnetd-unlink");
  // A terminal's SIGINT reaches the whole process group: the daemon decides when to stop.
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(sig, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Every other fd goes (the TAP, the ready-fd, stdout/stderr pipes a caller may wait on).
  const int lo = std::min(dir_fd, pipe_fd), hi = std::max(dir_fd, pipe_fd);
  if (lo > 0) ::syscall(SYS_close_range, 0u, static_cast<unsigned>(lo - 1), 0u);
  if (hi > lo + 1) ::syscall(SYS_close_range, static_cast<unsigned>(lo + 1), static_cast<unsigned>(hi - 1), 0u);
  ::syscall(SYS_close_range, static_cast<unsigned>(hi + 1), ~0u, 0u);
  char buf[16];
  for (;;) {
    const ssize_t n = ::read(pipe_fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == dev && st.st_ino == ino)
    ::unlinkat(dir_fd, name.c_str(), 0);
  ::_exit(0);
}

}  // namespace

struct ApiServer::Client {
  enum class State { Reading, Writing, Draining };
  UniqueFd fd;
  State state = State::Reading;
  Clock::time_point deadline;
  std::string in;
  std::string out;
  std::size_t sent = 0;
  std::size_t drained = 0;
  bool done = false;
};

std::unique_ptr<ApiServer> ApiServer::bind(const std::string& path, ApiServerOptions opts) {
  auto server = std::make_unique<ApiServer>(path, opts);
  try {
    server->bind_and_listen();
  } catch (const std::exception& e) {
    if (opts.log != nullptr) std::fprintf(opts.log, "%s\n", e.what());
    return nullptr;
  }
  return server;
}

ApiServer::ApiServer(std::string path, ApiServerOptions opts) : path_(std::move(path)), opts_(opts) {}

ApiServer::~ApiServer() { stop(); }

void ApiServer::bind_and_listen() {
  if (listen_fd_) throw std::logic_error("ApiServer::bind_and_listen() called twice");
  if (path_.size() >= sizeof(sockaddr_un::sun_path))
    throw std::runtime_error("the specified API socket path is too long (>= 108)");

  // The directory, kept open so that stop() can unlink the file from inside the sandbox.
  const auto slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  const std::string name = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  UniqueFd dir_fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  // Report it as bind() would (same path walk): "api_bindlisten: bind: No such file or directory".
  if (!dir_fd) throw bindlisten_error("bind", errno);

  // slirp4netns unlink()s whatever is there. We do too, except a socket someone still serves.
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (S_ISSOCK(st.st_mode) && socket_is_live(path_))
      throw std::runtime_error("api_bindlisten: " + path_ +
                               ": in use by a live process (connect() succeeded), not replacing it");
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) throw bindlisten_error("unlink", errno);
  }

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw bindlisten_error("socket", errno);
  // The file bind() creates gets the socket inode's mode minus the umask (Linux unix_bind()),
  // so it is never wider than 0600 and there is no window in which it is: no process-wide umask.
  if (::fchmod(fd.get(), 0600) != 0) throw bindlisten_error("fchmod", errno);
  const sockaddr_un addr = unix_addr(path_);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    throw bindlisten_error("bind", errno);
  // From here on the file is ours: remove it if we fail.
  const auto fail = [&](const char* what) {
    const int err = errno;
    ::unlinkat(dir_fd.get(), name.c_str(), 0);
    return bindlisten_error(what, err);
  };
  if (::fstatat(dir_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) throw fail("stat");
  if (::listen(fd.get(), kBacklog) != 0) throw fail("listen");
  try {
    stop_.emplace();
  } catch (const std::system_error&) {
    throw fail("eventfd");
  }

  file_dev_ = st.st_dev;
  file_ino_ = st.st_ino;
  name_ = name;
  dir_fd_ = std::move(dir_fd);
  listen_fd_ = std::move(fd);
}

bool ApiServer::move_removal_to_helper() {
  if (!dir_fd_ || helper_pid_ > 0) return true;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) < 0) {
    if (opts_.log != nullptr) std::fprintf(opts_.log, "api: pipe2: %s\n", std::strerror(errno));
    return false;
  }
  UniqueFd r(p[0]), w(p[1]);
  const pid_t pid =
      start_child([&]() -> int { removal_helper(dir_fd_.get(), r.get(), name_, file_dev_, file_ino_); });
  if (pid < 0) {
    if (opts_.log != nullptr) std::fprintf(opts_.log, "api: fork: %s\n", std::strerror(errno));
    return false;
  }
  helper_pid_ = pid;
  helper_pipe_ = std::move(w);
  dir_fd_.reset();
  return true;
}

void ApiServer::start(hostfwd::Registry& forwards, StatsSource& stats) {
  if (!listen_fd_) throw std::logic_error("ApiServer::start() without a successful bind_and_listen()");
  if (api_) throw std::logic_error("ApiServer::start() called twice");
  api_ = std::make_unique<Api>(forwards, stats, opts_.log);
  // The spare descriptor exists before start() returns: made by the thread instead, it could come
  // too late, once the descriptors are all taken.
  spare_fd_.reset(::eventfd(0, EFD_CLOEXEC));
  thread_ = std::thread([this] {
    try {
      run();
    } catch (const std::exception& e) {
      if (opts_.log != nullptr) std::fprintf(opts_.log, "api: control thread failed: %s\n", e.what());
    }
  });
  // Named from here, not from the thread itself: naming another thread writes /proc/.../comm,
  // while a thread naming itself calls prctl(PR_SET_NAME), which the seccomp filter (inherited by
  // the thread) kills the process for.
  pthread_setname_np(thread_.native_handle(), "slirpnetd-ctl");
}

void ApiServer::stop() {
  if (thread_.joinable()) {
    stop_->request_stop();
    thread_.join();
  }
  clients_.clear();
  listen_fd_.reset();
  remove_socket_file();
}

void ApiServer::remove_socket_file() {
  if (helper_pid_ > 0) {
    helper_pipe_.reset();  // EOF: the helper removes the file and exits
    int status;
    while (::waitpid(helper_pid_, &status, 0) < 0 && errno == EINTR) {
    }
    helper_pid_ = -1;
  }
  if (!dir_fd_) return;
  // Only the file we created: if it was replaced meanwhile, it is someone else's.
  struct stat st {};
  if (::fstatat(dir_fd_.get(), name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      st.st_dev == file_dev_ && st.st_ino == file_ino_)
    ::unlinkat(dir_fd_.get(), name_.c_str(), 0);
  dir_fd_.reset();
}

void ApiServer::run() {
  std::vector<pollfd> pfds;
  for (;;) {
    auto now = Clock::now();
    for (Client& c : clients_)
      if (!c.done && now >= c.deadline) on_deadline(c, now);
    reap();

    const bool accepting = clients_.size() < opts_.max_clients && now >= accept_resume_;
    pfds.clear();
    pfds.push_back({stop_->fd(), POLLIN, 0});
    pfds.push_back({accepting ? listen_fd_.get() : -1, POLLIN, 0});  // poll() skips fd -1
    Clock::time_point wake = Clock::time_point::max();
    if (!accepting && clients_.size() < opts_.max_clients) wake = accept_resume_;
    for (const Client& c : clients_) {
      pfds.push_back({c.fd.get(), static_cast<short>(c.state == Client::State::Writing ? POLLOUT : POLLIN), 0});
      wake = std::min(wake, c.deadline);
    }
    int timeout_ms = -1;
    if (wake != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(wake - now).count();
      timeout_ms = static_cast<int>(std::clamp<decltype(left)>(left, 0, 60'000));
    }

    if (::poll(pfds.data(), pfds.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "poll");
    }
    if (stop_->stop_requested()) return;
    now = Clock::now();
    const std::size_t n = clients_.size();  // accept_clients() appends
    for (std::size_t i = 0; i < n; ++i)
      if (pfds[i + 2].revents != 0) on_event(clients_[i], now);
    // Before accepting: a client that has just read its reply and connected again must not find
    // the descriptor of its previous connection still held (poll() reports the listener before
    // the clients, so the earlier connection's end is seen in the same round).
    reap();
    if (pfds[1].revents != 0) accept_clients(now);
  }
}

void ApiServer::reap() {
  clients_.erase(std::remove_if(clients_.begin(), clients_.end(), [](const Client& c) { return c.done; }),
                 clients_.end());
  // The spare descriptor: (re)made as soon as one is free, e.g. the one a client just released.
  if (!spare_fd_) spare_fd_.reset(::eventfd(0, EFD_CLOEXEC));
}

void ApiServer::accept_clients(Clock::time_point now) {
  bool spare_used = false;
  while (clients_.size() < opts_.max_clients) {
    UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (fd) {
      Client& c = clients_.emplace_back();
      c.fd = std::move(fd);
      c.deadline = now + opts_.client_timeout;
      if (spare_used) return;  // the next accept4() would fail with EMFILE, queued client or not
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if ((errno == EMFILE || errno == ENFILE) && spare_fd_) {
      // Out of descriptors: libslirp's forwards (one per connection) or the forwarder may hold
      // them all. The API must still answer, if only to let its user see and remove forwards:
      // the spare one goes to this client; run() makes a new spare once a descriptor is free.
      spare_fd_.reset();
      spare_used = true;
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      // EMFILE, ENOBUFS...: the connection stays queued; retry later rather than spin on POLLIN.
      if (opts_.log != nullptr) std::fprintf(opts_.log, "api_handler: accept: %s\n", std::strerror(errno));
      accept_resume_ = now + kAcceptPause;
    }
    return;
  }
}

void ApiServer::on_event(Client& c, Clock::time_point now) {
  switch (c.state) {
    case Client::State::Writing:
      flush(c, now);
      return;
    case Client::State::Draining:
      drain(c);
      return;
    case Client::State::Reading:
      break;
  }
  char buf[Api::kMaxRequest];
  for (;;) {
    const ssize_t r = ::recv(c.fd.get(), buf, Api::kMaxRequest - c.in.size(), 0);
    if (r > 0) {
      c.in.append(buf, static_cast<std::size_t>(r));
      if (c.in.size() >= Api::kMaxRequest) {
        if (opts_.log != nullptr) std::fprintf(opts_.log, "%s\n", std::string(Api::kTooLargeLog).c_str());
        reply(c, std::string(Api::kTooLargeReply), now);
        return;
      }
      continue;
    }
    if (r == 0) break;  // EOF: the request is whatever arrived
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!Api::is_complete_request(c.in)) return;  // wait for more, EOF or the deadline
      break;
    }
    c.done = true;  // ECONNRESET and the like: nobody to answer
    return;
  }
  answer(c, now);
}

void ApiServer::on_deadline(Client& c, Clock::time_point now) {
  if (c.state == Client::State::Reading)
    answer(c, now);  // a silent or stuck client gets what slirp4netns would have answered
  else
    c.done = true;
}

void ApiServer::answer(Client& c, Clock::time_point now) {
  if (opts_.log != nullptr) {
    const std::string_view req = std::string_view(c.in).substr(0, c.in.find('\0'));
    std::fprintf(opts_.log, "api_handler: got request: %.*s\n", static_cast<int>(req.size()), req.data());
  }
  reply(c, api_->handle_request(c.in), now);
}

void ApiServer::reply(Client& c, std::string bytes, Clock::time_point now) {
  c.out = std::move(bytes);
  c.in.clear();
  c.state = Client::State::Writing;
  c.deadline = now + opts_.client_timeout;
  flush(c, now);
}

void ApiServer::flush(Client& c, Clock::time_point now) {
  while (c.sent < c.out.size()) {
    // MSG_NOSIGNAL: a client that went away gives EPIPE, not SIGPIPE (the daemon also ignores it).
    const ssize_t r = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (r >= 0) {
      c.sent += static_cast<std::size_t>(r);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) c.done = true;
    return;  // EAGAIN: wait for POLLOUT
  }
  ::shutdown(c.fd.get(), SHUT_WR);  // the client reads EOF after the reply
  c.state = Client::State::Draining;
  c.deadline = now + std::min(opts_.linger, opts_.client_timeout);
  drain(c);
}

void ApiServer::drain(Client& c) {
  char buf[4096];
  for (;;) {
    const ssize_t r = ::recv(c.fd.get(), buf, sizeof buf, 0);
    if (r > 0) {
      c.drained += static_cast<std::size_t>(r);
      if (c.drained > kMaxDrain) break;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    break;  // EOF (the client closed) or an error
  }
  c.done = true;
}

}  // namespace slirpnetd::ctl
