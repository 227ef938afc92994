#pragma once
// stats/report.hpp: what happened between two get_stats samples, per pipeline stage, and its two
// renderings (a table for terminals, one JSON object per line for scripts).
//
// Stages, in the order a frame meets them: tap_read (TAP reader), rx_ring (TAP reader -> slirp
// thread), slirp_input, send_packet (libslirp's output), tx_ring (slirp thread -> TAP writer),
// tap_write (TAP writer), and splice (the splice forwarder, when the daemon runs one). Rates are
// per second of the time between the two replies; waits, drops and errors are counts over it;
// ring depths are the latest sample's. Latencies are the ring hand-offs (TAP read -> slirp_input,
// send_packet -> taken by the TAP writer) of the frames of this interval only (the difference of
// the two cumulative histograms), as the upper bound of the log2 bucket holding the percentile.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stats/sample.hpp"

namespace slirpnetd::stats {

// The upper bound (ns) of log2 bucket i: 0 for bucket 0, else 2^i - 1.
uint64_t bucket_upper_ns(size_t i);

struct Latency {
  uint64_t count = 0;      // values in the histogram
  uint64_t p50_ns_le = 0;  // upper bounds of the buckets holding the 50th and 99th percentiles
  uint64_t p99_ns_le = 0;
  uint64_t max_ns_le = 0;  // ... and of the highest non-empty bucket
};
// All zero for an empty histogram.
Latency latency_of(const std::vector<uint64_t>& buckets);

// cur - prev. A counter that went down means the daemon restarted: then it counted from 0 to cur.
uint64_t counter_delta(uint64_t prev, uint64_t cur);
// Bucket by bucket, with counter_delta's rule for the whole histogram (any bucket went down:
// `cur` as it is).
std::vector<uint64_t> histogram_delta(const std::vector<uint64_t>& prev, const std::vector<uint64_t>& cur);

struct Stage {
  std::string name;
  std::optional<double> frames_per_s, bytes_per_s;
  std::optional<uint64_t> depth;   // frames in the ring at the latest sample
  std::optional<uint64_t> waits;   // a thread waited for ring space (back-pressure), this interval
  std::optional<uint64_t> drops;   // frames or datagrams dropped, this interval
  std::optional<uint64_t> errors;  // failed reads/writes/connects, this interval
  std::optional<Latency> latency;
  // More, in the JSON only: rates (names ending in _per_s) and counts (written as integers).
  std::vector<std::pair<std::string, double>> extra;
};

struct Report {
  double wall_s = 0;      // Unix time of the latest sample
  double interval_s = 0;  // time between the two samples
  std::vector<Stage> stages;
};

// `prev` must be older than `cur` (mono_ns); an interval of 0 gives rates of 0.
Report make_report(const Sample& prev, const Sample& cur);

// One line: {"time":...,"interval_s":...,"tap_read":{"frames_per_s":...,...},...}
std::string format_json(const Report& r);
// A header line and one row per stage, for a terminal.
std::string format_table(const Report& r);

}  // namespace slirpnetd::stats
