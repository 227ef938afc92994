#pragma once
// stats/sample.hpp: one get_stats reply, flattened, with the time it arrived.
//
// The reply's numbers are kept by their dotted path ("tap_reader.frames", "slirp.tx_waits",
// "rx_ring_depth", "splice.bytes_in"); the log2 latency histograms ("slirp.rx_latency" and
// "tap_writer.tx_latency": "log2_buckets", bucket i counting values in [2^(i-1), 2^i) ns) are
// kept as bucket arrays by the path of the object that holds them. Nothing here depends on the
// daemon's internals: only on the get_stats reply format.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace slirpnetd::stats {

struct Sample {
  uint64_t mono_ns = 0;  // CLOCK_MONOTONIC when the reply arrived: rates divide by differences of it
  double wall_s = 0;     // the same moment as Unix time (for the JSON lines)
  std::map<std::string, uint64_t> counters;
  std::map<std::string, std::vector<uint64_t>> histograms;

  // The counter at `path`, 0 when the reply had none (e.g. "splice.*" without --splice).
  uint64_t counter(const std::string& path) const;
  bool has(const std::string& path) const { return counters.count(path) != 0; }
  const std::vector<uint64_t>& histogram(const std::string& path) const;
};

// Parses a whole API reply: {"return":{...the stats...}}. On failure returns nullopt; for an error
// reply, {"error":{"desc":...}} (slirp4netns answers get_stats with "bad request: unknown
// execute"), it also sets `daemon_error` to the daemon's description; otherwise the reply was not
// one at all and `daemon_error` is left empty.
std::optional<Sample> parse_reply(std::string_view reply, std::string& daemon_error);

}  // namespace slirpnetd::stats
