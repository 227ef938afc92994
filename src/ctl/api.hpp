#pragma once
// ctl/api.hpp: slirp4netns's JSON API (docs/compatibility.md), as a pure request -> reply function.
//
// The control thread (ctl/api_server.hpp) owns the socket and calls Api::handle_request() once per
// connection. Api owns the hostfwd table (ids from 1, never reused, listed in insertion order) and
// never touches libslirp: every hostfwd change goes through Backend, whose implementation
// (src/daemon) posts a command into the slirp thread's queue and waits for the reply with a timeout.
//
// Thread: one at a time (the control thread in the daemon; the test thread in tests).
#include <sys/socket.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "config/options.hpp"

namespace slirpnetd::ctl {

// One forward, validated by Api. host is AF_INET or AF_INET6 (the latter only with
// --enable-ipv6), guest is AF_INET (default: NetConfig::guest, also for an IPv6 host) or AF_INET6
// (only when the client asks for an IPv6 guest_addr). Ports are set, in network byte order.
// The backend maps this onto slirp_add_hostxfwd(); choosing SLIRP_HOSTFWD_V6ONLY for an IPv6 host
// is its business (recommended: set it, so that [::]:P and 0.0.0.0:P can both be forwarded:
// a dual-stack listener on [::]:P would also hold the IPv4 port, and 0.0.0.0:P would fail to bind).
//
// slirpnetd extension: "mode":"splice" (default: NetConfig::forward_mode) forwards with the splice
// forwarder (src/fwd) instead of libslirp: TCP with splice(2), UDP by relaying datagrams per client
// flow; IPv6 addresses accepted without -6 (no libslirp involved). "proxy_protocol":true (splice
// TCP only) sends a PROXY v2 header to the inner server.
struct Hostfwd {
  bool udp = false;
  bool splice = false;
  bool proxy_protocol = false;
  sockaddr_storage host{};  // AF_INET or AF_INET6 with the port set
  socklen_t host_len = 0;
  sockaddr_storage guest{};
  socklen_t guest_len = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Both return 0 or -errno (-ETIMEDOUT when the slirp thread did not answer in time).
  // remove_hostfwd() receives exactly the Hostfwd that add_hostfwd() accepted.
  virtual int add_hostfwd(const Hostfwd& fwd) = 0;
  virtual int remove_hostfwd(const Hostfwd& fwd) = 0;
  // A JSON object (text) with the pipeline's counters, for get_stats.
  virtual std::string stats_json() = 0;
};

class Api {
 public:
  // slirp4netns reads at most this many bytes; a request that fills them is "too large".
  static constexpr std::size_t kMaxRequest = 4096;
  // The reply and the stderr line for a request of kMaxRequest bytes or more (no newline).
  static constexpr std::string_view kTooLargeReply =
      R"({"error":{"desc":"bad request: too large message"}})";
  static constexpr std::string_view kTooLargeLog = "api_handler: too large message (>= 4096 bytes)";

  // `backend` must outlive the Api. `log` (may be null) receives one line per backend failure.
  Api(Backend& backend, const config::NetConfig& net, std::FILE* log = stderr);

  // One request (the raw bytes read from a connection) -> the reply bytes, with no trailing
  // newline. Never throws on bad input (only std::bad_alloc); every reply is a JSON object.
  std::string handle_request(std::string_view request);

  // True when `bytes` already hold a whole request: a complete JSON value (anything after it is
  // ignored, as by slirp4netns) or a NUL byte (slirp4netns reads up to the first NUL). The server
  // uses it to answer clients that never half-close.
  static bool is_complete_request(std::string_view bytes);

  // The table, by id (= insertion order).
  const std::map<int, Hostfwd>& forwards() const { return forwards_; }

 private:
  friend struct Commands;  // api.cpp: the commands, which see RapidJSON types

  Backend& backend_;
  in_addr default_guest_;
  bool enable_ipv6_;
  bool default_splice_;
  std::FILE* log_;
  std::map<int, Hostfwd> forwards_;
  int next_id_ = 1;  // ids of successful adds only; never reused
};

}  // namespace slirpnetd::ctl
