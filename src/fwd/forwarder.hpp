#pragma once
// fwd/forwarder.hpp: splice(2) port forwarding, the "mode":"splice" alternative to libslirp's
// hostfwd.
//
// How it works. Each forward is an ordinary listening TCP socket in the daemon's (the host's)
// network namespace. For every accepted client the forwarder asks the Connector for a socket
// connected to the guest address *inside the container's netns*, then moves bytes both ways
// kernel-side: socket -> pipe -> socket with splice(2), one pipe per direction, never copying them
// through user space and never through libslirp's TCP stack. Half-closes are propagated
// (EOF on one side -> shutdown(SHUT_WR) on the other); an error on either side closes both.
//
// What the inner server sees as its peer: the connector's socket inside the container, i.e. the
// source address the container's kernel picks for the guest address: 10.0.2.100 when connecting
// to 10.0.2.100, 127.0.0.1 for 127.0.0.1 (with libslirp's forwarding it is 10.0.2.2 for a
// loopback client). With proxy_protocol, a PROXY protocol v2 header carrying the real client
// address and the listener's address is sent first on the inner connection.
//
// UDP ("proto":"udp"): one host socket per forward, and per client address (ip:port) a flow: a UDP
// socket from the Connector, created inside the container and connected to the guest address.
// Datagrams go client -> host socket -> flow socket -> guest and back the same way, relayed with
// recvfrom/send and recv/sendto: splice(2) moves a byte stream through a pipe and cannot keep
// datagram boundaries or a peer address, so it does not apply to UDP. A flow is closed after
// `udp_idle_ms` without a datagram either way; at most `udp_max_flows` exist per forwarder and
// `udp_max_flows_per_source` per client address (IPv6: /64). A new client's flow beyond either
// limit replaces the least recently used flow (of its own source, at the per-source limit), so
// one sender with many source ports cannot lock the others out.
//
// Running out of fds. TCP connections are capped (max_conns) and reset after conn_idle_ms without
// traffic. When accept() (or the connector's reply, or a pipe) fails for lack of fds, or the cap
// is reached, the listener leaves the epoll set for 100 ms instead of waking worker 0 again at
// once (a level-triggered listener with a queued connection would spin it at 100 % CPU). Datagrams are dropped, never queued, when a socket
// buffer is full, as a router would.
//
// Sockets for an IPv6 host address are IPV6_V6ONLY (as the slirp path's are).
//
// Threads: `threads` workers, each an epoll loop owning its connections; worker 0 also owns the
// listeners, accepts, and runs every UDP forward and its flows. add()/remove()/stats() from any
// thread (the control thread).
#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <cstddef>
#include <list>
#include <string>
#include <unordered_map>
#include <cstdint>
#include <memory>
#include <vector>

#include "fwd/connector.hpp"
#include "hostfwd/endpoint.hpp"

namespace slirpnetd::fwd {

struct ForwarderOptions {
  int threads = 2;
  // F_SETPIPE_SZ per direction once 4 MiB went through it (best effort); pipes start at the
  // default size (64 KiB), as pipe buffers count against the user's pipe-user-pages-soft.
  int pipe_bytes = 1 << 20;
  int udp_idle_ms = 60000;   // a UDP flow idle this long is closed (checked about once a second)
  int udp_max_flows = 1024;  // UDP flows, over all UDP forwards
  // UDP flows per client source (an IPv4 address, an IPv6 /64); 0: udp_max_flows / 8. At either
  // limit a new client's flow replaces the least recently used one (of that source at its limit).
  int udp_max_flows_per_source = 0;
  int command_timeout_ms = 5000;  // add()/remove() give up (-ETIMEDOUT, the command cancelled) after it
  // TCP connections open at once (each costs 6 fds: client, inner, two pipes). Beyond it the
  // listeners pause: new clients wait in the backlog. 0: a sixth of half the RLIMIT_NOFILE soft
  // limit (at construction), so the forwarder alone never exhausts the daemon's fds.
  int max_conns = 0;
  // A TCP connection with no event either way for this long is reset. The default is RFC 5382's
  // minimum for a NAT's established-connection timeout (2 h 4 min).
  int conn_idle_ms = 7'440'000;
};

struct ForwarderStats {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> connect_failed{0};
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> bytes_in{0};   // client -> container
  std::atomic<uint64_t> bytes_out{0};  // container -> client
  std::atomic<uint64_t> udp_flows{0};  // UDP flows open now
  std::atomic<uint64_t> udp_dropped{0};  // UDP datagrams dropped (full buffers, errors)
  std::atomic<uint64_t> udp_evicted{0};  // UDP flows closed to make room for a new client's
  std::atomic<uint64_t> accept_paused{0};  // listeners paused: out of fds (EMFILE...) or at max_conns
  std::atomic<uint64_t> idle_closed{0};    // TCP connections reset after conn_idle_ms
};

// ForwarderStats read at one moment (the "splice" object of get_stats; the names are its keys).
struct ForwarderCounts {
  uint64_t accepted = 0, connect_failed = 0, active = 0, bytes_in = 0, bytes_out = 0, udp_flows = 0,
           udp_dropped = 0, udp_evicted = 0, accept_paused = 0, idle_closed = 0;
};
ForwarderCounts snapshot(const ForwarderStats& s);

class Forwarder {
 public:
  // `connector` must outlive the Forwarder. Starts the worker threads; throws std::system_error.
  explicit Forwarder(Connector& connector, ForwarderOptions opts = {});
  ~Forwarder();  // stop()
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // Listens on `host` (port set) and forwards each connection to `guest` (port set) in the
  // container. 0 or -errno (bind's EADDRINUSE, EINVAL for proxy_protocol with udp). `udp`: a UDP
  // forward (see above).
  int add(const hostfwd::Endpoint& host, const hostfwd::Endpoint& guest, bool proxy_protocol, bool udp = false);
  // TCP: closes the listener for `host` (established connections are kept, as libslirp does).
  // UDP: closes the host socket and every flow of that forward. 0 or -ENOENT.
  int remove(const hostfwd::Endpoint& host, bool udp = false);
  // Joins the workers and closes every socket. Idempotent.
  void stop();

  const ForwarderStats& stats() const { return stats_; }

 private:
  struct Worker;
  struct Listener;
  struct Conn;
  struct UdpForward;
  struct Flow;
  // Runs `task` on worker 0, the owner of the listeners and UDP forwards, and returns its result;
  // -ETIMEDOUT if it has not started within command_timeout_ms, and then it never runs.
  int call_on_owner(std::function<int(Worker&)> task);
  void accept_all(Listener& l);
  void pause_listener(Listener& l);      // out of epoll for kAcceptPause (worker 0)
  void resume_listeners(Worker& w0);
  void close_idle(Worker& w);
  int add_udp(const hostfwd::Endpoint& host, const hostfwd::Endpoint& guest);
  void udp_from_clients(UdpForward& u);  // host socket readable
  void udp_from_guest(Flow& f);          // flow socket readable
  void udp_expire(Worker& w);            // closes idle flows
  void udp_retire(Flow& f);              // closes a flow; its struct lives until the batch ends
  void udp_touch(Flow& f);               // most recently used

  Connector& connector_;
  const ForwarderOptions opts_;
  ForwarderStats stats_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<unsigned> next_worker_{0};
  int max_conns_ = 0;                       // opts_.max_conns, resolved
  std::atomic<uint64_t> open_conns_{0};     // accepted and not yet freed (counts those in transit)
  std::vector<char> udp_buf_ = std::vector<char>(65536);  // worker 0's relay buffer
  // owner: worker 0. Every UDP flow, least recently used first, and the flows per source.
  std::list<Flow*> udp_lru_;
  std::unordered_map<std::string, int> udp_per_source_;
  int udp_source_cap_ = 0;  // udp_max_flows_per_source, resolved
};

// The PROXY protocol v2 header for a TCP connection from `client` to `server` (same family).
std::vector<uint8_t> proxy_v2_header(const sockaddr_storage& client, const sockaddr_storage& server);

}  // namespace slirpnetd::fwd
