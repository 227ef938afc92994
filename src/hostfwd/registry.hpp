#pragma once
// hostfwd/registry.hpp: the one owner of the daemon's port forwards.
//
// Both ways of asking for a forward go through it: the API socket (ctl::Api, on the control
// thread) and `slirpnetd run -p` (on the main thread, once the network is up), so a forward added
// either way is listed and removable through the API. It validates a Request (addresses, ports,
// the proxy_protocol rule), gives ids (from 1, never reused, listed in insertion order) and hands
// the validated Forward to its Engine, which talks to libslirp (on the slirp thread) or to the
// splice forwarder (src/fwd). A forward the engine refused takes no id.
//
// slirpnetd extension: a splice forward ("mode":"splice", default: NetConfig::forward_mode)
// accepts IPv6 addresses without --enable-ipv6 (no libslirp involved); proxy_protocol is for
// splice TCP forwards only.
//
// Threads: any; calls are serialised by a mutex, held while the engine works (at most its
// timeout), so an add and a remove of one forward can never cross.
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/options.hpp"
#include "hostfwd/endpoint.hpp"

namespace slirpnetd::hostfwd {

// A validated forward: `host` is IPv4, or IPv6 (with --enable-ipv6, or splice); `guest` is the
// default guest address (NetConfig::guest) or what the client named, "::" for an IPv6 host with
// no guest address (libslirp then uses the guest's SLAAC address). Both have their ports.
struct Forward {
  bool udp;
  bool splice;
  bool proxy_protocol;
  Endpoint host;
  Endpoint guest;
};

// What a client asks for, as it said it; the Registry decides whether it is valid.
struct Request {
  bool udp = false;
  std::optional<bool> splice;  // unset: the daemon's default (--forward-mode)
  bool proxy_protocol = false;
  std::string host_addr;  // "": 0.0.0.0
  int host_port = 0;      // 1..65535; anything else (0 for "missing") is invalid
  std::string guest_addr;  // "": the guest's address (IPv6 host: "::")
  int guest_port = 0;
};

// Where forwards are made: implemented by the daemon (daemon/slirp_backend.hpp) and by tests.
class Engine {
 public:
  virtual ~Engine() = default;
  // 0 or -errno (-ETIMEDOUT when the owning thread did not answer in time: the command was
  // cancelled). remove() receives exactly a Forward that add() accepted.
  virtual int add(const Forward& fwd) = 0;
  virtual int remove(const Forward& fwd) = 0;
};

// Which check failed, in the order they are made (slirp4netns's order for its fields).
enum class Error { kNone, kProxyProtocol, kHostAddr, kHostPort, kGuestAddr, kGuestPort, kEngine };

struct AddResult {
  int id = 0;  // > 0 on success
  Error error = Error::kNone;
  int err = 0;          // kEngine: the engine's -errno
  bool splice = false;  // which engine path the request took (for the caller's message)
};

struct RemoveResult {
  bool found = false;   // false: no forward has this id
  int err = 0;          // the engine's -errno (the forward is kept)
  bool splice = false;
};

class Registry {
 public:
  // `engine` must outlive the Registry.
  Registry(Engine& engine, const config::NetConfig& net);

  AddResult add(const Request& req);
  RemoveResult remove(int id);
  // The forwards by id (= insertion order).
  std::vector<std::pair<int, Forward>> list() const;

 private:
  Engine& engine_;
  const in_addr default_guest_;
  const bool enable_ipv6_;
  const bool default_splice_;
  mutable std::mutex mu_;
  std::map<int, Forward> forwards_;  // guarded by mu_
  int next_id_ = 1;                  // guarded by mu_
};

}  // namespace slirpnetd::hostfwd
