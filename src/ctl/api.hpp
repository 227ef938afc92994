#pragma once
// ctl/api.hpp: slirp4netns's JSON API (docs/compatibility.md), as a pure request -> reply function.
//
// The control thread (ctl/api_server.hpp) owns the socket and calls Api::handle_request() once per
// connection. Api only speaks JSON: the forwards belong to hostfwd::Registry (which validates
// them, gives their ids and hands them to libslirp or the splice forwarder), of which the API is
// one client (`slirpnetd run -p` is the other); the counters come typed from a StatsSource and
// are rendered here, the one place get_stats's JSON is made.
//
// Thread: one at a time (the control thread in the daemon; the test thread in tests).
#include <sys/socket.h>

#include <cstdio>
#include <optional>
#include <memory>
#include <string>
#include <string_view>

#include "config/options.hpp"
#include "fwd/forwarder.hpp"
#include "hostfwd/registry.hpp"
#include "io/stats.hpp"

namespace slirpnetd::ctl {

// The counters get_stats reports, read at one moment. `splice` is set when the daemon has a
// splice forwarder.
struct Stats {
  io::PipelineCounts pipeline;
  std::optional<fwd::ForwarderCounts> splice;
};

class StatsSource {
 public:
  virtual ~StatsSource() = default;
  virtual Stats stats() = 0;
};

// get_stats's "return" object: compact JSON, keys in a fixed order.
std::string stats_json(const Stats& stats);

// The error description add_hostfwd answers for a registry error (`splice`: which engine failed).
std::string_view hostfwd_error_desc(hostfwd::Error e, bool splice);

class Api {
 public:
  // slirp4netns reads at most this many bytes; a request that fills them is "too large".
  static constexpr std::size_t kMaxRequest = 4096;
  // The reply and the stderr line for a request of kMaxRequest bytes or more (no newline).
  static constexpr std::string_view kTooLargeReply =
      R"({"error":{"desc":"bad request: too large message"}})";
  static constexpr std::string_view kTooLargeLog = "api_handler: too large message (>= 4096 bytes)";

  // `forwards` and `stats` must outlive the Api. `log` (may be null) receives one line per
  // failure of the forwards' engine.
  Api(hostfwd::Registry& forwards, StatsSource& stats, std::FILE* log = stderr);

  // One request (the raw bytes read from a connection) -> the reply bytes, with no trailing
  // newline. Never throws on bad input (only std::bad_alloc); every reply is a JSON object.
  std::string handle_request(std::string_view request);

  // True when `bytes` already hold a whole request: a complete JSON value (anything after it is
  // ignored, as by slirp4netns) or a NUL byte (slirp4netns reads up to the first NUL). The server
  // uses it to answer clients that never half-close.
  static bool is_complete_request(std::string_view bytes);

 private:
  friend struct Commands;  // api.cpp: the commands, which see RapidJSON types

  hostfwd::Registry& forwards_;
  StatsSource& stats_;
  std::FILE* log_;
};

}  // namespace slirpnetd::ctl
