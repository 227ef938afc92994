// fwd/forwarder.cpp: listeners, connections and the splice pump.
//
// A connection is two sockets (client: accepted on the host; inner: from the Connector, in the
// container) and two pipes. Both sockets are in their worker's epoll, edge-triggered; on any event
// the worker pumps both directions until neither makes progress:
//   src --splice--> pipe --splice--> dst
// Waiting states are then exactly "src would block" (an EPOLLIN edge comes with new data) or
// "dst would block" (an EPOLLOUT edge comes when it drains): nothing is ever left unread without
// an edge to come.
//
// UDP forwards (worker 0 only, level-triggered) relay datagrams through one user-space buffer;
// see forwarder.hpp for why splice(2) does not apply.
#include "fwd/forwarder.hpp"

#include "common/bounded_call.hpp"
#include "common/clock.hpp"
#include "io/waker.hpp"

// Under seccomp (src/ns/sandbox.cpp): the workers, constructed after the filter is on.
// #syscalls: epoll_create1 epoll_ctl epoll_wait eventfd2 read write prlimit64
// #syscalls: socket setsockopt getsockopt bind listen accept4 getsockname shutdown
// #syscalls: splice pipe2 fcntl sendto recvfrom

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>

namespace slirpnetd::fwd {
namespace {

// Low pointer bits tag epoll events (the structs are at least 8-byte aligned).
enum Tag : uintptr_t { kWake = 0, kListener = 1, kClient = 2, kInner = 3, kUdpHost = 4, kUdpFlow = 5 };
constexpr uintptr_t kTagMask = 7;
constexpr int kUdpBatch = 64;  // datagrams per readiness event, so one busy socket cannot starve the rest
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
constexpr int kFdsPerConn = 6;  // client, inner, two pipes

// The client "source" UDP flows are counted by: an IPv4 address, or an IPv6 /64.
std::string source_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET6)
    return std::string("6") + std::string(reinterpret_cast<const char*>(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr), 8);
  return std::string("4") + std::string(reinterpret_cast<const char*>(&reinterpret_cast<const sockaddr_in&>(a).sin_addr), 4);
}

// Errors that mean "no fd or memory for now": worth a pause, not a retry at once.
bool out_of_fds(int err) { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

uint64_t tagged(const void* p, Tag t) { return reinterpret_cast<uintptr_t>(p) | t; }

// Close with an RST, so the peer sees the failure (ECONNRESET), not an orderly EOF.
void abort_close(UniqueFd& fd) {
  if (!fd) return;
  linger l{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  fd.reset();
}

// A pipe starts at the kernel's default size (64 KiB) and grows to ForwarderOptions::pipe_bytes
// once kBulkBytes went through it: pipe buffers are charged to the user's pipe-user-pages-soft
// (16384 pages by default, shared by all the user's processes), which 1 MiB pipes in both
// directions of every connection would exhaust at about 32 connections.
constexpr size_t kBulkBytes = 4u << 20;

struct Pipe {
  UniqueFd r, w;
  size_t cap = 0;
  size_t bytes = 0;  // in the pipe now
  size_t want = 0;   // the size to grow to
  uint64_t moved = 0;
  bool open(int want_bytes) {
    int p[2];
    if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) return false;
    r.reset(p[0]);
    w.reset(p[1]);
    const int got = ::fcntl(p[1], F_GETPIPE_SZ);
    cap = got > 0 ? static_cast<size_t>(got) : 4096;
    want = want_bytes > 0 ? static_cast<size_t>(want_bytes) : 0;
    return true;
  }
  // After `n` more bytes: a bulk flow gets the bigger pipe (best effort: the quota may say no).
  void note_moved(size_t n) {
    moved += n;
    if (want <= cap || moved < kBulkBytes) return;
    const int got = ::fcntl(w.get(), F_SETPIPE_SZ, static_cast<int>(want));
    if (got > 0) cap = static_cast<size_t>(got);
    want = 0;  // one attempt
  }
};

struct Direction {
  Pipe pipe;
  bool eof = false;   // src said EOF
  bool shut = false;  // and dst got shutdown(SHUT_WR) after the pipe drained
};

// Moves what it can from `src` to `dst` through `d.pipe`. False on a socket error.
bool pump(int src, int dst, Direction& d, std::atomic<uint64_t>& counter) {
  constexpr unsigned kFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
  for (;;) {
    bool progress = false;
    if (!d.eof && d.pipe.bytes < d.pipe.cap) {
      const ssize_t n = ::splice(src, nullptr, d.pipe.w.get(), nullptr, d.pipe.cap - d.pipe.bytes, kFlags);
      if (n > 0) {
        d.pipe.bytes += static_cast<size_t>(n);
        progress = true;
      } else if (n == 0) {
        d.eof = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        return false;
      }
    }
    if (d.pipe.bytes > 0) {
      const ssize_t n = ::splice(d.pipe.r.get(), nullptr, dst, nullptr, d.pipe.bytes, kFlags);
      if (n > 0) {
        d.pipe.bytes -= static_cast<size_t>(n);
        counter.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
        d.pipe.note_moved(static_cast<size_t>(n));
        progress = true;
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return false;
      }
    }
    if (!progress) break;
  }
  if (d.eof && d.pipe.bytes == 0 && !d.shut) {
    ::shutdown(dst, SHUT_WR);
    d.shut = true;
  }
  return true;
}

}  // namespace

struct Forwarder::Listener {
  Listener(const hostfwd::Endpoint& h, const hostfwd::Endpoint& g, bool pp) : host(h), guest(g), proxy_protocol(pp) {}
  UniqueFd fd;
  bool paused = false;  // out of the epoll set until Worker::resume_at (worker 0)
  hostfwd::Endpoint host;
  hostfwd::Endpoint guest;
  bool proxy_protocol = false;
};

struct Forwarder::Flow {
  UdpForward* fwd = nullptr;
  UniqueFd inner;  // in the container, connected to the guest address
  sockaddr_storage client{};
  socklen_t client_len = 0;
  Clock::time_point last;  // last datagram either way
  std::string key;                             // in fwd->flows
  std::string source;                          // in udp_per_source_
  std::list<Flow*>::iterator lru;              // in udp_lru_
};

struct Forwarder::UdpForward {
  UdpForward(const hostfwd::Endpoint& h, const hostfwd::Endpoint& g) : host(h), guest(g) {}
  UniqueFd fd;  // bound to the host address; closed (reset) on removal
  hostfwd::Endpoint host;
  hostfwd::Endpoint guest;
  std::unordered_map<std::string, std::unique_ptr<Flow>> flows;  // by client sockaddr bytes
};

struct Forwarder::Conn {
  explicit Conn(std::atomic<uint64_t>& open) : open_count(open) { open_count.fetch_add(1, std::memory_order_relaxed); }
  ~Conn() { open_count.fetch_sub(1, std::memory_order_relaxed); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  std::atomic<uint64_t>& open_count;  // Forwarder::open_conns_
  UniqueFd client, inner;
  bool connected = false;
  bool dead = false;
  Clock::time_point last;  // last event on either socket
  std::vector<uint8_t> header;  // PROXY v2, sent once connected
  Direction up;                 // client -> inner
  Direction down;               // inner -> client
};

struct Forwarder::Worker {
  UniqueFd epoll{::epoll_create1(EPOLL_CLOEXEC)};
  io::Waker wake;  // owner: this worker (in its epoll set); rung by post() and stop()
  std::thread thread;
  std::mutex mu;
  std::vector<std::function<void()>> commands;  // guarded by mu

  // owner: this worker's thread
  std::unordered_map<Conn*, std::shared_ptr<Conn>> conns;
  std::vector<std::unique_ptr<Listener>> listeners;  // worker 0 only
  std::vector<std::shared_ptr<Conn>> dead_conns;     // freed after the epoll batch
  std::vector<std::unique_ptr<Listener>> dead_listeners;
  std::vector<std::unique_ptr<UdpForward>> udp;  // worker 0 only
  std::vector<std::unique_ptr<UdpForward>> dead_udp;
  std::vector<std::unique_ptr<Flow>> dead_flows;  // worker 0 only
  Clock::time_point next_expiry{};       // UDP flows (worker 0)
  Clock::time_point next_idle_check{};   // TCP connections
  Clock::time_point resume_at{};         // paused listeners (worker 0)
  bool listeners_paused = false;

  void post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu);
      commands.push_back(std::move(fn));
    }
    wake.notify();
  }

  // Adds fd to this worker's epoll set, level-triggered EPOLLIN; 0 or -errno.
  int watch_in(int fd, uint64_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    return ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
  }

  void run_commands() {
    wake.consume();  // before draining (io/waker.hpp)
    std::vector<std::function<void()>> todo;
    {
      std::lock_guard<std::mutex> lock(mu);
      todo.swap(commands);
    }
    for (auto& fn : todo) fn();
  }

  void adopt(std::shared_ptr<Conn> c, ForwarderStats& stats) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = tagged(c.get(), kClient);
    const bool ok1 = ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, c->client.get(), &ev) == 0;
    ev.data.u64 = tagged(c.get(), kInner);
    const bool ok2 = ok1 && ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, c->inner.get(), &ev) == 0;
    if (!ok2) {
      abort_close(c->client);
      return;
    }
    stats.active.fetch_add(1, std::memory_order_relaxed);
    c->last = Clock::now();
    conns.emplace(c.get(), std::move(c));
  }

  void close_conn(Conn& c, bool abort, ForwarderStats& stats) {
    if (c.dead) return;
    c.dead = true;
    if (abort) {
      abort_close(c.client);
      abort_close(c.inner);
    }
    c.client.reset();  // closing removes them from the epoll set
    c.inner.reset();
    stats.active.fetch_sub(1, std::memory_order_relaxed);
    auto it = conns.find(&c);
    if (it != conns.end()) {
      dead_conns.push_back(std::move(it->second));
      conns.erase(it);
    }
  }

  void on_conn(Conn& c, Tag side, uint32_t events, ForwarderStats& stats) {
    if (c.dead) return;
    c.last = Clock::now();
    if (!c.connected) {
      if (side != kInner) return;  // the client's bytes wait in its socket until then
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(c.inner.get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
      if (err == 0 && !(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      if (err != 0 || (events & EPOLLERR)) {
        stats.connect_failed.fetch_add(1, std::memory_order_relaxed);
        close_conn(c, true, stats);
        return;
      }
      c.connected = true;
      if (!c.header.empty()) {
        const ssize_t n = ::send(c.inner.get(), c.header.data(), c.header.size(), MSG_NOSIGNAL);
        if (n != static_cast<ssize_t>(c.header.size())) {
          close_conn(c, true, stats);
          return;
        }
      }
    }
    if (!pump(c.client.get(), c.inner.get(), c.up, stats.bytes_in) ||
        !pump(c.inner.get(), c.client.get(), c.down, stats.bytes_out)) {
      close_conn(c, true, stats);
      return;
    }
    if (c.up.shut && c.down.shut) close_conn(c, false, stats);
  }
};

Forwarder::Forwarder(Connector& connector, ForwarderOptions opts) : connector_(connector), opts_(opts) {
  udp_source_cap_ = opts_.udp_max_flows_per_source > 0 ? opts_.udp_max_flows_per_source
                                                       : std::max(1, opts_.udp_max_flows / 8);
  max_conns_ = opts_.max_conns;
  if (max_conns_ <= 0) {
    rlimit rl{};
    const rlim_t soft = ::getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    const rlim_t cap = std::min<rlim_t>(soft, 1 << 24) / 2 / kFdsPerConn;
    max_conns_ = static_cast<int>(std::max<rlim_t>(cap, 16));
  }
  const int n = opts_.threads > 0 ? opts_.threads : 1;
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    if (!w->epoll) throw std::system_error(errno, std::generic_category(), "forwarder: epoll");
    w->watch_in(w->wake.fd(), kWake);
    workers_.push_back(std::move(w));
  }
  for (auto& wp : workers_) {
    Worker* w = wp.get();
    w->thread = std::thread([this, w] {
      epoll_event evs[64];
      const bool owner = w == workers_.front().get();
      const int idle_check_ms = std::clamp(opts_.conn_idle_ms / 8, 100, 30'000);
      while (!w->wake.stop_requested()) {
        // With UDP flows open, wake at least once a second to close the idle ones; with TCP
        // connections, every idle_check_ms; with listeners paused, when they resume.
        const bool flows = owner && stats_.udp_flows.load(std::memory_order_relaxed) > 0;
        int timeout = flows ? 1000 : -1;
        const auto wake_in = [&timeout](int ms) { timeout = timeout < 0 ? ms : std::min(timeout, ms); };
        if (!w->conns.empty()) wake_in(idle_check_ms);
        if (w->listeners_paused) wake_in(static_cast<int>(kAcceptPause.count()));
        const int ready = ::epoll_wait(w->epoll.get(), evs, 64, timeout);
        for (int i = 0; i < ready; ++i) {
          const uintptr_t v = evs[i].data.u64;
          const auto tag = static_cast<Tag>(v & kTagMask);
          void* p = reinterpret_cast<void*>(v & ~kTagMask);
          if (tag == kWake)
            w->run_commands();
          else if (tag == kListener)
            accept_all(*static_cast<Listener*>(p));
          else if (tag == kUdpHost)
            udp_from_clients(*static_cast<UdpForward*>(p));
          else if (tag == kUdpFlow)
            udp_from_guest(*static_cast<Flow*>(p));
          else
            w->on_conn(*static_cast<Conn*>(p), tag, evs[i].events, stats_);
        }
        w->dead_conns.clear();
        w->dead_listeners.clear();
        w->dead_udp.clear();
        w->dead_flows.clear();
        if (flows) udp_expire(*w);
        if (!w->conns.empty()) close_idle(*w);
        if (w->listeners_paused) resume_listeners(*w);
      }
    });
  }
}

Forwarder::~Forwarder() { stop(); }

void Forwarder::stop() {
  for (auto& w : workers_) {
    if (!w->thread.joinable()) continue;
    w->wake.request_stop();
    w->thread.join();
  }
}

int Forwarder::add(const hostfwd::Endpoint& host, const hostfwd::Endpoint& guest, bool proxy_protocol, bool udp) {
  if (udp) return proxy_protocol ? -EINVAL : add_udp(host, guest);
  auto l = std::make_unique<Listener>(host, guest, proxy_protocol);
  l->fd.reset(::socket(host.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!l->fd) return -errno;
  const int one = 1;
  ::setsockopt(l->fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (host.is_ipv6()) ::setsockopt(l->fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(l->fd.get(), host.sa(), host.len()) < 0 || ::listen(l->fd.get(), SOMAXCONN) < 0) return -errno;
  auto shared = std::make_shared<std::unique_ptr<Listener>>(std::move(l));  // std::function copies
  return call_on_owner([shared](Worker& w0) {
    Listener* raw = shared->get();
    if (const int err = w0.watch_in(raw->fd.get(), tagged(raw, kListener))) return err;
    w0.listeners.push_back(std::move(*shared));
    return 0;
  });
}

int Forwarder::call_on_owner(std::function<int(Worker&)> task) {
  Worker* w0 = workers_.front().get();
  return bounded_call<>([w0](std::function<void()> fn) { w0->post(std::move(fn)); },
                        [w0, task = std::move(task)] { return task(*w0); },
                        std::chrono::milliseconds(opts_.command_timeout_ms));
}

int Forwarder::remove(const hostfwd::Endpoint& host, bool udp) {
  if (udp) {
    return call_on_owner([this, host](Worker& w0) {
      for (auto it = w0.udp.begin(); it != w0.udp.end(); ++it) {
        if ((*it)->host != host) continue;
        // Closing removes the sockets from the epoll set; the structs live until the batch ends,
        // for events already returned in it (their closed fds make them no-ops).
        (*it)->fd.reset();
        for (auto& [key, flow] : (*it)->flows) {
          flow->inner.reset();
          udp_lru_.erase(flow->lru);
          if (--udp_per_source_[flow->source] == 0) udp_per_source_.erase(flow->source);
        }
        stats_.udp_flows.fetch_sub((*it)->flows.size(), std::memory_order_relaxed);
        w0.dead_udp.push_back(std::move(*it));
        w0.udp.erase(it);
        return 0;
      }
      return -ENOENT;
    });
  }
  return call_on_owner([host](Worker& w0) {
    for (auto it = w0.listeners.begin(); it != w0.listeners.end(); ++it) {
      if ((*it)->host != host) continue;
      (*it)->fd.reset();  // closing removes it from the epoll set; the struct lives until the batch ends
      w0.dead_listeners.push_back(std::move(*it));
      w0.listeners.erase(it);
      return 0;
    }
    return -ENOENT;
  });
}

void Forwarder::accept_all(Listener& l) {
  for (;;) {
    if (open_conns_.load(std::memory_order_relaxed) >= static_cast<uint64_t>(max_conns_)) {
      pause_listener(l);  // new clients wait in the backlog until connections close
      return;
    }
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    UniqueFd client(::accept4(l.fd.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len,
                              SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client) {
      if (out_of_fds(errno)) pause_listener(l);
      return;  // EAGAIN, or an error the next event retries (ECONNABORTED...)
    }
    stats_.accepted.fetch_add(1, std::memory_order_relaxed);
    auto c = std::make_shared<Conn>(open_conns_);
    c->client = std::move(client);
    int err = connector_.connect(l.guest.storage(), l.guest.len(), c->inner);
    // The reply's fd is dropped by the kernel (MSG_CTRUNC) when we have none left: -EPROTO.
    if (err == -EPROTO) err = -EMFILE;
    if (err == 0 && (!c->up.pipe.open(opts_.pipe_bytes) || !c->down.pipe.open(opts_.pipe_bytes))) err = -errno;
    if (err != 0) {
      stats_.connect_failed.fetch_add(1, std::memory_order_relaxed);
      abort_close(c->client);
      if (out_of_fds(-err)) {
        pause_listener(l);
        return;
      }
      continue;
    }
    if (l.proxy_protocol) {
      sockaddr_storage local{};
      socklen_t local_len = sizeof local;
      ::getsockname(c->client.get(), reinterpret_cast<sockaddr*>(&local), &local_len);
      c->header = proxy_v2_header(peer, local);
    }
    Worker* w = workers_[next_worker_.fetch_add(1, std::memory_order_relaxed) % workers_.size()].get();
    w->post([this, w, c] { w->adopt(c, stats_); });
  }
}

void Forwarder::pause_listener(Listener& l) {
  Worker& w0 = *workers_.front();
  if (l.paused || !l.fd) return;
  ::epoll_ctl(w0.epoll.get(), EPOLL_CTL_DEL, l.fd.get(), nullptr);
  l.paused = true;
  w0.listeners_paused = true;
  w0.resume_at = Clock::now() + kAcceptPause;
  stats_.accept_paused.fetch_add(1, std::memory_order_relaxed);
}

void Forwarder::resume_listeners(Worker& w0) {
  const auto now = Clock::now();
  if (now < w0.resume_at) return;
  if (open_conns_.load(std::memory_order_relaxed) >= static_cast<uint64_t>(max_conns_)) {
    w0.resume_at = now + kAcceptPause;  // still at the cap
    return;
  }
  w0.listeners_paused = false;
  for (auto& l : w0.listeners) {
    if (!l->paused) continue;
    l->paused = false;
    // Level-triggered: a queued connection wakes us at once, and accept_all() pauses again if
    // there are still no fds.
    if (w0.watch_in(l->fd.get(), tagged(l.get(), kListener)) != 0) {
      l->paused = true;
      w0.listeners_paused = true;
      w0.resume_at = now + kAcceptPause;
    }
  }
}

void Forwarder::close_idle(Worker& w) {
  const auto now = Clock::now();
  if (now < w.next_idle_check) return;
  w.next_idle_check = now + std::chrono::milliseconds(std::clamp(opts_.conn_idle_ms / 8, 100, 30'000));
  const auto idle = std::chrono::milliseconds(opts_.conn_idle_ms);
  std::vector<Conn*> expired;
  for (auto& [raw, conn] : w.conns)
    if (now - conn->last >= idle) expired.push_back(raw);
  for (Conn* c : expired) {
    stats_.idle_closed.fetch_add(1, std::memory_order_relaxed);
    w.close_conn(*c, true, stats_);
  }
  w.dead_conns.clear();
}

int Forwarder::add_udp(const hostfwd::Endpoint& host, const hostfwd::Endpoint& guest) {
  auto u = std::make_unique<UdpForward>(host, guest);
  u->fd.reset(::socket(host.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!u->fd) return -errno;
  const int one = 1;
  if (host.is_ipv6()) ::setsockopt(u->fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(u->fd.get(), host.sa(), host.len()) < 0) return -errno;
  auto shared = std::make_shared<std::unique_ptr<UdpForward>>(std::move(u));  // std::function copies
  return call_on_owner([shared](Worker& w0) {
    UdpForward* raw = shared->get();
    // Level-triggered: at most kUdpBatch datagrams per event.
    if (const int err = w0.watch_in(raw->fd.get(), tagged(raw, kUdpHost))) return err;
    w0.udp.push_back(std::move(*shared));
    return 0;
  });
}

void Forwarder::udp_from_clients(UdpForward& u) {
  Worker& w0 = *workers_.front();
  for (int i = 0; i < kUdpBatch && u.fd; ++i) {
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    const ssize_t n = ::recvfrom(u.fd.get(), udp_buf_.data(), udp_buf_.size(), 0,
                                 reinterpret_cast<sockaddr*>(&peer), &peer_len);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      continue;  // EINTR, or an error report queued on the socket: the next datagram
    }
    const std::string key(reinterpret_cast<const char*>(&peer), peer_len);
    auto it = u.flows.find(key);
    if (it == u.flows.end()) {
      // Room for a new client: at its source's limit, its own least recently used flow goes;
      // at the global limit, the least recently used of all.
      std::string source = source_of(peer);
      Flow* victim = nullptr;
      const auto per_source = udp_per_source_.find(source);
      if (per_source != udp_per_source_.end() && per_source->second >= udp_source_cap_) {
        for (Flow* f : udp_lru_)
          if (f->source == source) {
            victim = f;
            break;
          }
      } else if (!udp_lru_.empty() &&
                 stats_.udp_flows.load(std::memory_order_relaxed) >= static_cast<uint64_t>(opts_.udp_max_flows)) {
        victim = udp_lru_.front();
      }
      if (victim != nullptr) {  // never this client's (it has no flow on this forward)
        udp_retire(*victim);
        stats_.udp_evicted.fetch_add(1, std::memory_order_relaxed);
      }
      auto f = std::make_unique<Flow>();
      f->fwd = &u;
      f->client = peer;
      f->client_len = peer_len;
      if (connector_.connect(u.guest.storage(), u.guest.len(), f->inner, SOCK_DGRAM) != 0 ||
          w0.watch_in(f->inner.get(), tagged(f.get(), kUdpFlow)) != 0) {
        stats_.connect_failed.fetch_add(1, std::memory_order_relaxed);
        stats_.udp_dropped.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      stats_.accepted.fetch_add(1, std::memory_order_relaxed);
      stats_.udp_flows.fetch_add(1, std::memory_order_relaxed);
      f->key = key;
      f->source = std::move(source);
      ++udp_per_source_[f->source];
      f->lru = udp_lru_.insert(udp_lru_.end(), f.get());
      it = u.flows.emplace(key, std::move(f)).first;
    }
    Flow& f = *it->second;
    udp_touch(f);
    if (::send(f.inner.get(), udp_buf_.data(), static_cast<size_t>(n), MSG_DONTWAIT | MSG_NOSIGNAL) == n)
      stats_.bytes_in.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    else  // a full buffer, or ECONNREFUSED left by an earlier datagram: dropped, as a router would
      stats_.udp_dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

void Forwarder::udp_from_guest(Flow& f) {
  for (int i = 0; i < kUdpBatch && f.inner; ++i) {
    const ssize_t n = ::recv(f.inner.get(), udp_buf_.data(), udp_buf_.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      continue;  // ECONNREFUSED (ICMP port unreachable from the guest) or EINTR
    }
    udp_touch(f);
    if (f.fwd->fd && ::sendto(f.fwd->fd.get(), udp_buf_.data(), static_cast<size_t>(n), MSG_DONTWAIT | MSG_NOSIGNAL,
                              reinterpret_cast<const sockaddr*>(&f.client), f.client_len) == n)
      stats_.bytes_out.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    else
      stats_.udp_dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

void Forwarder::udp_expire(Worker& w) {
  const auto now = Clock::now();
  if (now < w.next_expiry) return;
  w.next_expiry = now + std::chrono::seconds(1);
  const auto idle = std::chrono::milliseconds(opts_.udp_idle_ms);
  while (!udp_lru_.empty() && now - udp_lru_.front()->last >= idle) udp_retire(*udp_lru_.front());
  w.dead_flows.clear();  // outside an epoll batch: no event can refer to them
}

void Forwarder::udp_touch(Flow& f) {
  f.last = Clock::now();
  udp_lru_.splice(udp_lru_.end(), udp_lru_, f.lru);
}

void Forwarder::udp_retire(Flow& f) {
  Worker& w0 = *workers_.front();
  udp_lru_.erase(f.lru);
  if (--udp_per_source_[f.source] == 0) udp_per_source_.erase(f.source);
  stats_.udp_flows.fetch_sub(1, std::memory_order_relaxed);
  f.inner.reset();  // closing removes it from the epoll set; an event already returned is a no-op
  auto it = f.fwd->flows.find(f.key);
  w0.dead_flows.push_back(std::move(it->second));
  f.fwd->flows.erase(it);
}

ForwarderCounts snapshot(const ForwarderStats& s) {
  ForwarderCounts c;
  c.accepted = s.accepted.load(std::memory_order_relaxed);
  c.connect_failed = s.connect_failed.load(std::memory_order_relaxed);
  c.active = s.active.load(std::memory_order_relaxed);
  c.bytes_in = s.bytes_in.load(std::memory_order_relaxed);
  c.bytes_out = s.bytes_out.load(std::memory_order_relaxed);
  c.udp_flows = s.udp_flows.load(std::memory_order_relaxed);
  c.udp_dropped = s.udp_dropped.load(std::memory_order_relaxed);
  c.udp_evicted = s.udp_evicted.load(std::memory_order_relaxed);
  c.accept_paused = s.accept_paused.load(std::memory_order_relaxed);
  c.idle_closed = s.idle_closed.load(std::memory_order_relaxed);
  return c;
}

std::vector<uint8_t> proxy_v2_header(const sockaddr_storage& client, const sockaddr_storage& server) {
  static const uint8_t kSig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
  std::vector<uint8_t> h(kSig, kSig + sizeof kSig);
  h.push_back(0x21);  // version 2, PROXY
  auto put = [&h](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    h.insert(h.end(), b, b + n);
  };
  if (client.ss_family == AF_INET && server.ss_family == AF_INET) {
    const auto& c = reinterpret_cast<const sockaddr_in&>(client);
    const auto& s = reinterpret_cast<const sockaddr_in&>(server);
    h.push_back(0x11);  // TCP over IPv4
    h.push_back(0);
    h.push_back(12);
    put(&c.sin_addr, 4);
    put(&s.sin_addr, 4);
    put(&c.sin_port, 2);
    put(&s.sin_port, 2);
  } else if (client.ss_family == AF_INET6 && server.ss_family == AF_INET6) {
    const auto& c = reinterpret_cast<const sockaddr_in6&>(client);
    const auto& s = reinterpret_cast<const sockaddr_in6&>(server);
    h.push_back(0x21);  // TCP over IPv6
    h.push_back(0);
    h.push_back(36);
    put(&c.sin6_addr, 16);
    put(&s.sin6_addr, 16);
    put(&c.sin6_port, 2);
    put(&s.sin6_port, 2);
  } else {
    h.back() = 0x20;  // version 2, LOCAL: no address
    h.push_back(0x00);
    h.push_back(0);
    h.push_back(0);
  }
  return h;
}

}  // namespace slirpnetd::fwd
