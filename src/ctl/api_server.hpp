#pragma once
// ctl/api_server.hpp: the control thread, which owns the --api-socket UNIX socket
// (docs/compatibility.md, "The API socket").
//
// One JSON request per connection; the reply is written with no trailing newline, then the
// connection is closed. Unlike slirp4netns (one blocking read() inside the packet loop), the
// control thread polls the listen socket, a stop eventfd and every client (non-blocking), so a
// slow or silent client never stalls another one, and never stalls forwarding.
//
// Per connection, a request is complete at the first of:
//  - EOF (the client half-closed: Podman and RootlessKit do);
//  - a complete JSON value in what has arrived so far (clients that never half-close);
//  - Api::kMaxRequest bytes: answered "too large message", as slirp4netns does;
//  - the deadline (ApiServerOptions::client_timeout after accept): answered with whatever arrived,
//    which for a silent client is `cannot parse JSON`.
// After the reply the server shuts down its write side (the client reads EOF), discards whatever
// the client still sends for a short linger and closes: closing with unread bytes would make the
// client's read fail with ECONNRESET instead of EOF.
//
// Threads: construct, bind_and_listen() and start() on the main thread; the control thread runs
// Api::handle_request(); stop() and the destructor on the thread that called start().
//
// Daemon usage:
//   auto api = ctl::ApiServer::bind(opts.api_socket);  // before the sandbox; null: failed
//   ... sandbox, slirp thread, forwards registry ...
//   api->start(registry, stats);
//   ... until exit ...
//   api->stop();   // or just destroy it: both remove the socket file
#include <sys/types.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "common/unique_fd.hpp"
#include "ctl/api.hpp"
#include "io/waker.hpp"

namespace slirpnetd::ctl {

struct ApiServerOptions {
  // A client that has not sent a complete request by then is answered with what it sent.
  std::chrono::milliseconds client_timeout{5000};
  // After the reply: how long to discard a client's further bytes before closing.
  std::chrono::milliseconds linger{500};
  // Clients served at once; further connections wait in the listen backlog.
  std::size_t max_clients = 64;
  // slirp4netns's stderr lines (`api_handler: got request: ...`); null: silent.
  std::FILE* log = stderr;
};

class ApiServer {
 public:
  // The daemon's entry point: constructs and bind_and_listen()s. On failure prints the error line
  // to opts.log (stderr by default) and returns null; the caller then prints slirp4netns's
  // "do_slirp is exiting" lines and exits 1.
  static std::unique_ptr<ApiServer> bind(const std::string& path, ApiServerOptions opts = {});

  explicit ApiServer(std::string path, ApiServerOptions opts = {});
  ~ApiServer();  // stop(), then remove the socket file if bind_and_listen() created it
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Creates the socket file (mode 0600 & ~umask) and listens. An existing file at the path is
  // replaced if it is not a socket or is a stale socket (connect() is refused); a live socket
  // (connect() succeeds) is left alone and is an error. Throws std::runtime_error whose what() is
  // the line to print, slirp4netns's where it has one:
  //   "the specified API socket path is too long (>= 108)"
  //   "api_bindlisten: bind: No such file or directory"
  //   "api_bindlisten: PATH: in use by a live process (connect() succeeded), not replacing it"
  // Call it on the main thread before the sandbox (it needs the socket's directory).
  void bind_and_listen();

  // For --enable-sandbox, before the sandbox is created (and while the process has one thread):
  // hands the removal of the socket file to a small helper process and closes our directory fd,
  // which would otherwise survive pivot_root and let `openat(dir_fd, "..")` reach the host's
  // filesystem. The helper keeps the directory fd, waits for this process to close a pipe (stop(),
  // or its death) and then removes the file if it is still the one we created. Returns false after
  // printing why (to opts.log); the daemon then cannot start.
  bool move_removal_to_helper();

  // Creates the Api on `forwards` and `stats` and starts the control thread, which serves
  // requests from then on (connections made earlier wait in the backlog). Both must outlive stop(). Throws std::logic_error without a successful bind_and_listen() or when called
  // twice, std::system_error if the thread cannot be created.
  void start(hostfwd::Registry& forwards, StatsSource& stats);

  // Stops and joins the control thread (clients in progress are dropped), closes the listen
  // socket and removes the socket file: through a directory fd opened by bind_and_listen(), or,
  // after move_removal_to_helper(), by the helper, which it waits for. The file is removed only
  // if it is still the one we created. Idempotent; the server cannot be restarted.
  void stop();

  // The request handler, after start(); read it only from the control thread or after stop().
  const Api* api() const { return api_.get(); }

 private:
  struct Client;

  void run();
  void reap();  // closes the finished clients' sockets, then remakes the spare descriptor
  void accept_clients(Clock::time_point now);
  void on_event(Client& c, Clock::time_point now);
  void on_deadline(Client& c, Clock::time_point now);
  void answer(Client& c, Clock::time_point now);  // handles c.in, then reply()
  void reply(Client& c, std::string bytes, Clock::time_point now);
  void flush(Client& c, Clock::time_point now);
  void drain(Client& c);
  void remove_socket_file();

  const std::string path_;
  const ApiServerOptions opts_;
  std::unique_ptr<Api> api_;  // created by start(); used by the control thread only

  UniqueFd listen_fd_;
  std::optional<io::Waker> stop_;  // made by bind_and_listen(); rung by stop(), polled by the control thread
  UniqueFd dir_fd_;     // O_PATH fd of the socket's directory, for unlinkat() (until handed over)
  UniqueFd helper_pipe_;  // write end: closing it tells the helper to remove the file
  pid_t helper_pid_ = -1;
  std::string name_;    // the socket's name in that directory
  dev_t file_dev_ = 0;  // identity of the file bind_and_listen() created
  ino_t file_ino_ = 0;
  std::thread thread_;

  // owner: control thread
  std::vector<Client> clients_;
  Clock::time_point accept_resume_{};  // accept() paused until then after EMFILE and the like
  // A descriptor held in reserve (an eventfd): when the process is out of descriptors (libslirp's
  // forwards hold them all), it is closed to accept one API client, and recreated afterwards.
  // The first one is made by start(), before the thread.
  UniqueFd spare_fd_;
};

}  // namespace slirpnetd::ctl
