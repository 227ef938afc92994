// ApiServer over real UNIX sockets in a temporary directory (no network namespace needed).
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/sockios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "ctl/api_server.hpp"
#include "test_ctl_fake.hpp"

using slirpnetd::UniqueFd;
using slirpnetd::ctl::Api;
using slirpnetd::ctl::ApiServer;
using slirpnetd::ctl::ApiServerOptions;
using namespace std::chrono_literals;
using namespace ctl_test;
namespace fs = std::filesystem;

namespace {

const std::string kList = R"({"execute":"list_hostfwd"})";
const std::string kEmptyList = R"({"entries":[],"return":{"entries":[]}})";
const std::string kCannotParse = R"({"error":{"desc":"bad request: cannot parse JSON"}})";

struct TempDir {
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "test_ctl.XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  fs::path path;
};

// A log file the server writes to; read after stop() (the control thread has been joined).
struct LogFile {
  LogFile() : f(std::tmpfile()) { REQUIRE(f != nullptr); }
  ~LogFile() { std::fclose(f); }
  std::string text() const {
    std::fflush(f);
    std::string s;
    std::rewind(f);
    for (int c; (c = std::fgetc(f)) != EOF;) s += static_cast<char>(c);
    return s;
  }
  std::FILE* f;
};

struct Fixture {
  explicit Fixture(ApiServerOptions opts = {}, const std::string& name = "api.sock")
      : path(dir / name), server(path, with_log(opts)) {}
  void start() {
    server.bind_and_listen();
    server.start(registry, backend);
  }
  ApiServerOptions with_log(ApiServerOptions o) {
    o.log = log.f;
    return o;
  }
  TempDir dir;
  LogFile log;
  FakeBackend backend;
  slirpnetd::hostfwd::Registry registry{backend, test_net()};
  std::string path;
  ApiServer server;
};

// No Catch2 assertions here: it is also used from client threads, and Catch2 v2 is not
// thread-safe. Returns an invalid fd on failure.
UniqueFd try_connect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return UniqueFd();
  return fd;
}

UniqueFd connect_to(const std::string& path) {
  UniqueFd fd = try_connect(path);
  REQUIRE(fd);
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
}

// Reads until EOF (returns true) or the timeout (returns false). A reset after data counts as EOF:
// the server closed with bytes we sent still unread.
bool read_until_eof(int fd, std::string& out, std::chrono::milliseconds timeout = 3000ms,
                    bool reset_is_eof = true) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) == 0) return false;
    char buf[65536];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    return n == 0 || (reset_is_eof && errno == ECONNRESET);
  }
}

// Waits (up to timeout) until the server has read everything sent on fd: for a Unix stream socket
// SIOCOUTQ counts the sent bytes the peer has not read yet.
bool read_by_server(int fd, std::chrono::milliseconds timeout = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int queued = 1; ::ioctl(fd, SIOCOUTQ, &queued) == 0;) {
    if (queued == 0) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

// Waits (up to timeout) until at least `bytes` of a reply are waiting to be read on fd.
bool reply_waiting(int fd, int bytes = 1, std::chrono::milliseconds timeout = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int ready = 0; ::ioctl(fd, FIONREAD, &ready) == 0;) {
    if (ready >= bytes) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

std::string ask(const std::string& path, const std::string& request, bool half_close = true) {
  UniqueFd fd = connect_to(path);
  send_all(fd.get(), request);
  if (half_close) ::shutdown(fd.get(), SHUT_WR);
  std::string reply;
  CHECK(read_until_eof(fd.get(), reply));
  return reply;
}

mode_t file_mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode;
}

}  // namespace

TEST_CASE("server: a reply arrives with and without a half-close", "[ctl][server]") {
  Fixture f;
  f.start();
  CHECK(ask(f.path, kList, true) == kEmptyList);
  CHECK(ask(f.path, kList, false) == kEmptyList);              // ncat-style clients never half-close
  CHECK(ask(f.path, kList + "\n", true) == kEmptyList);        // Podman, RootlessKit
  CHECK(ask(f.path, "badjson", true) == kCannotParse);
  CHECK(ask(f.path, "", true) == kCannotParse);                // connect, then close
  CHECK(ask(f.path, R"({"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":8080,"guest_port":80}})" "\n") ==
        R"({"return":{"id":1}})");
  f.server.stop();
  const std::string log = f.log.text();
  CHECK(log.find("api_handler: got request: " + kList + "\n") != std::string::npos);
  CHECK(log.find("api_handler: got request: badjson\n") != std::string::npos);
}

TEST_CASE("server: a request split across writes is reassembled", "[ctl][server]") {
  Fixture f;
  f.start();
  UniqueFd fd = connect_to(f.path);
  send_all(fd.get(), R"({"execute":"list_)");
  REQUIRE(read_by_server(fd.get()));  // the first half is read on its own
  send_all(fd.get(), R"(hostfwd"})");
  std::string reply;
  CHECK(read_until_eof(fd.get(), reply));
  CHECK(reply == kEmptyList);
}

TEST_CASE("server: bytes sent after the reply are discarded, not answered with a reset", "[ctl][server]") {
  Fixture f;
  f.start();
  UniqueFd fd = connect_to(f.path);
  send_all(fd.get(), kList);
  REQUIRE(reply_waiting(fd.get(), static_cast<int>(kEmptyList.size())));  // the server has answered
  send_all(fd.get(), "\n");           // e.g. a client that writes the newline separately: no EPIPE
  std::string reply;
  CHECK(read_until_eof(fd.get(), reply, 3000ms, /*reset_is_eof=*/false));  // a clean EOF
  CHECK(reply == kEmptyList);
}

TEST_CASE("server: too large messages", "[ctl][server]") {
  Fixture f;
  f.start();
  const std::string too_large(Api::kTooLargeReply);
  CHECK(ask(f.path, std::string(4096, '\0')) == too_large);
  CHECK(ask(f.path, std::string(5000, ' ')) == too_large);
  CHECK(ask(f.path, std::string(20000, 'x')) == too_large);
  // 4095 bytes are fine (slirp4netns: a read() of < 4096 bytes).
  std::string big = kList;
  big.resize(4095, ' ');
  CHECK(ask(f.path, big) == kEmptyList);
  // A complete request followed by more is answered once the limit is not reached.
  CHECK(ask(f.path, std::string(4000, ' ') + kList) == kEmptyList);
  f.server.stop();
  const std::string log = f.log.text();
  CHECK(log.find("api_handler: too large message (>= 4096 bytes)\n") != std::string::npos);
}

TEST_CASE("server: silent and stuck clients do not block others", "[ctl][server]") {
  ApiServerOptions opts;
  opts.client_timeout = 1500ms;
  Fixture f(opts);
  f.start();
  UniqueFd silent = connect_to(f.path);
  UniqueFd stuck = connect_to(f.path);
  send_all(stuck.get(), R"({"execute":"list_hostfwd")");
  REQUIRE(read_by_server(stuck.get()));  // both accepted, the half request read

  const auto t0 = std::chrono::steady_clock::now();
  CHECK(ask(f.path, kList, false) == kEmptyList);
  CHECK(std::chrono::steady_clock::now() - t0 < 1000ms);  // not after the others' deadline

  // At their deadline they get what slirp4netns would have answered.
  std::string reply;
  CHECK(read_until_eof(silent.get(), reply, 5000ms));
  CHECK(reply == kCannotParse);
  reply.clear();
  CHECK(read_until_eof(stuck.get(), reply, 5000ms));
  CHECK(reply == kCannotParse);
}

TEST_CASE("server: 50 concurrent clients are all answered", "[ctl][server]") {
  Fixture f;
  f.start();
  constexpr int kClients = 50;
  std::vector<std::string> replies(kClients);
  std::vector<std::thread> threads;
  std::atomic<int> connected{0};
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      UniqueFd fd = try_connect(f.path);
      // Everyone connects before anyone sends, so the server holds 50 clients at once.
      ++connected;
      while (connected < kClients) std::this_thread::yield();
      const std::string req = R"({"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":)" +
                              std::to_string(20000 + i) + R"(,"guest_port":80}})";
      if (fd && ::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()))
        read_until_eof(fd.get(), replies[static_cast<std::size_t>(i)]);
    });
  for (auto& t : threads) t.join();
  std::set<std::string> distinct(replies.begin(), replies.end());
  CHECK(distinct.size() == kClients);
  for (int id = 1; id <= kClients; ++id)
    CHECK(distinct.count(R"({"return":{"id":)" + std::to_string(id) + "}}") == 1);
  f.server.stop();
  REQUIRE(f.server.api() != nullptr);
  CHECK(f.registry.list().size() == kClients);
}

TEST_CASE("server: a large reply is written completely", "[ctl][server]") {
  Fixture f;
  f.start();
  FakeBackend backend;
  TestApi expected_api(backend, test_net(), nullptr);  // the same requests, without the socket
  for (int i = 1; i <= 2500; ++i) {
    const std::string add = R"({"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":)" +
                            std::to_string(10000 + i) + R"(,"guest_port":80}})";
    REQUIRE(ask(f.path, add) == expected_api.handle_request(add));
  }
  const std::string expected = expected_api.handle_request(kList);
  // More than the server's socket can hold: a Unix stream socket takes messages while less than its
  // send buffer (212992 bytes by default) is queued, so up to about twice that.
  REQUIRE(expected.size() > 500000);
  UniqueFd fd = connect_to(f.path);
  send_all(fd.get(), kList);
  // The server writes what fits, then waits for POLLOUT: the part waiting here stops growing short
  // of the whole reply.
  int waiting = 0;
  REQUIRE(reply_waiting(fd.get()));
  for (int last = -1; waiting != last;) {
    last = waiting;
    std::this_thread::sleep_for(20ms);
    REQUIRE(::ioctl(fd.get(), FIONREAD, &waiting) == 0);
  }
  CHECK(static_cast<std::size_t>(waiting) < expected.size());
  std::string reply;
  CHECK(read_until_eof(fd.get(), reply));
  CHECK(reply == expected);
}

TEST_CASE("server: socket file mode, replacement and refusal", "[ctl][server]") {
  TempDir dir;
  FakeBackend backend;
  slirpnetd::hostfwd::Registry registry(backend, test_net());
  const std::string path = dir / "api.sock";
  ApiServerOptions quiet;
  quiet.log = nullptr;

  SECTION("mode 0600 whatever the umask") {
    const mode_t old = ::umask(0);
    ApiServer server(path, quiet);
    server.bind_and_listen();
    ::umask(old);
    CHECK(S_ISSOCK(file_mode(path)));
    CHECK((file_mode(path) & 07777) == 0600);
  }
  SECTION("a stale socket is replaced") {
    {
      UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM, 0));
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      path.copy(addr.sun_path, sizeof addr.sun_path - 1);
      REQUIRE(::bind(stale.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }  // closed: the file stays, nobody listens
    REQUIRE(S_ISSOCK(file_mode(path)));
    ApiServer server(path, quiet);
    server.bind_and_listen();
    server.start(registry, backend);
    CHECK(ask(path, kList) == kEmptyList);
  }
  SECTION("a regular file is replaced") {
    std::ofstream(path) << "not a socket";
    ApiServer server(path, quiet);
    server.bind_and_listen();
    server.start(registry, backend);
    CHECK(ask(path, kList) == kEmptyList);
  }
  SECTION("a live socket is refused and left alone") {
    ApiServer first(path, quiet);
    first.bind_and_listen();
    first.start(registry, backend);
    {
      ApiServer second(path, quiet);
      try {
        second.bind_and_listen();
        FAIL("bind_and_listen() over a live socket succeeded");
      } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) ==
              "api_bindlisten: " + path + ": in use by a live process (connect() succeeded), not replacing it");
      }
    }  // the failed server's destructor must not remove the first one's file
    CHECK(ask(path, kList) == kEmptyList);
  }
  SECTION("a live socket with nobody accepting yet is still live") {
    UniqueFd live(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    REQUIRE(::bind(live.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(live.get(), 0) == 0);
    ApiServer server(path, quiet);
    CHECK_THROWS_WITH(server.bind_and_listen(), Catch::Contains("in use by a live process"));
    CHECK(S_ISSOCK(file_mode(path)));
  }
  SECTION("path too long and missing directory: slirp4netns's messages") {
    ApiServer too_long(dir / std::string(120, 'a'), quiet);
    CHECK_THROWS_WITH(too_long.bind_and_listen(), "the specified API socket path is too long (>= 108)");
    ApiServer missing(dir / "no/such/dir/api.sock", quiet);
    CHECK_THROWS_WITH(missing.bind_and_listen(), "api_bindlisten: bind: No such file or directory");
    ApiServer not_dir(dir / "api.sock/x", quiet);
    std::ofstream(path) << "x";
    CHECK_THROWS_WITH(not_dir.bind_and_listen(), "api_bindlisten: bind: Not a directory");
  }
  SECTION("start() needs bind_and_listen(), once") {
    ApiServer server(path, quiet);
    CHECK_THROWS_AS(server.start(registry, backend), std::logic_error);
    server.bind_and_listen();
    CHECK_THROWS_AS(server.bind_and_listen(), std::logic_error);
    server.start(registry, backend);
    CHECK_THROWS_AS(server.start(registry, backend), std::logic_error);
  }
  SECTION("the daemon's factory prints the error and returns null") {
    LogFile log;
    ApiServerOptions opts;
    opts.log = log.f;
    CHECK(ApiServer::bind(dir / "missing/api.sock", opts) == nullptr);
    CHECK(log.text() == "api_bindlisten: bind: No such file or directory\n");
    auto server = ApiServer::bind(path, opts);
    REQUIRE(server != nullptr);
    server->start(registry, backend);
    CHECK(ask(path, kList) == kEmptyList);
  }
}

TEST_CASE("server: the socket file is removed by stop() and by the destructor", "[ctl][server]") {
  TempDir dir;
  FakeBackend backend;
  slirpnetd::hostfwd::Registry registry(backend, test_net());
  const std::string path = dir / "api.sock";
  ApiServerOptions quiet;
  quiet.log = nullptr;

  SECTION("stop()") {
    ApiServer server(path, quiet);
    server.bind_and_listen();
    server.start(registry, backend);
    REQUIRE(ask(path, kList) == kEmptyList);
    server.stop();
    CHECK_FALSE(fs::exists(fs::symlink_status(path)));
    server.stop();  // idempotent
  }
  SECTION("destructor, with a client still connected") {
    UniqueFd client;
    {
      ApiServer server(path, quiet);
      server.bind_and_listen();
      server.start(registry, backend);
      client = connect_to(path);
    }
    CHECK_FALSE(fs::exists(fs::symlink_status(path)));
  }
  SECTION("destructor without start()") {
    { ApiServer server(path, quiet); server.bind_and_listen(); }
    CHECK_FALSE(fs::exists(fs::symlink_status(path)));
  }
  SECTION("through the directory fd, after the path stopped resolving (as after pivot_root)") {
    const fs::path moved = dir.path / "moved";
    fs::create_directory(dir.path / "run");
    const std::string inner = dir / "run/api.sock";
    {
      ApiServer server(inner, quiet);
      server.bind_and_listen();
      server.start(registry, backend);
      fs::rename(dir.path / "run", moved);
      REQUIRE(fs::exists(fs::symlink_status(moved / "api.sock")));
    }
    CHECK_FALSE(fs::exists(fs::symlink_status(moved / "api.sock")));
  }
  SECTION("a file that replaced ours is not removed") {
    {
      ApiServer server(path, quiet);
      server.bind_and_listen();
      fs::remove(path);
      std::ofstream(path) << "someone else's";
    }
    CHECK(fs::is_regular_file(path));
  }
}

TEST_CASE("server: answers while the process is out of file descriptors", "[ctl][server][emfile]") {
  Fixture f;
  f.start();
  // The clients' sockets first: once the descriptors are gone, the test cannot make any either.
  constexpr int kClients = 3;
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) clients.emplace_back(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  for (const UniqueFd& c : clients) REQUIRE(c);

  // Then every descriptor this process may still open, under a soft limit lowered for the
  // purpose (restored on every way out), as libslirp's forwards take them in the daemon.
  struct Exhaustion {
    rlimit old{};
    std::vector<int> fds;
    Exhaustion() {
      REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
      rlimit low = old;
      low.rlim_cur = std::min<rlim_t>(old.rlim_cur, 1024);
      REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
      for (int fd; (fd = ::eventfd(0, EFD_CLOEXEC)) >= 0;) fds.push_back(fd);
      emfile = errno == EMFILE;
    }
    bool emfile = false;
    ~Exhaustion() {
      for (int fd : fds) ::close(fd);
      ::setrlimit(RLIMIT_NOFILE, &old);
    }
  };
  // No Catch2 assertion or INFO while the descriptors are taken: the sanitizers' runtimes need a
  // descriptor for some of their checks and would report nonsense there. Record, give the
  // descriptors back, then check.
  bool emfile = false;
  size_t taken = 0;
  std::vector<int> connected;
  std::vector<bool> complete;
  std::vector<std::string> replies;
  {
    Exhaustion ex;
    emfile = ex.emfile;
    taken = ex.fds.size();
    // One after the other: the server serves each with its spare descriptor, made again after.
    for (const UniqueFd& c : clients) {
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      f.path.copy(addr.sun_path, sizeof addr.sun_path - 1);
      connected.push_back(::connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr));
      if (connected.back() != 0) break;
      const std::string req = kList;
      if (::send(c.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) break;
      ::shutdown(c.get(), SHUT_WR);
      std::string reply;
      complete.push_back(read_until_eof(c.get(), reply, 2000ms));
      replies.push_back(reply);
    }
  }
  INFO(taken << " descriptors taken");
  REQUIRE(emfile);
  REQUIRE(connected == std::vector<int>(kClients, 0));
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i);
    CHECK(complete[i]);
    CHECK(replies[i] == kEmptyList);
  }
  CHECK(ask(f.path, kList) == kEmptyList);
  f.server.stop();
  const std::string log = f.log.text();
  INFO(log);
  CHECK(log.find("api_handler: accept") == std::string::npos);  // never refused
}
