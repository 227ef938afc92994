#pragma once
// Pipeline counters, cheap enough to stay on. Every counter has exactly one writing thread (named
// in the struct that holds it), which updates it with a relaxed load+store (no locked RMW on the hot
// path); any thread may read it (relaxed), e.g. the control thread serving get_stats.
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.hpp"

namespace slirpnetd::io {

class Counter {
 public:
  void add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Log2 histogram of nanoseconds: bucket i counts values in [2^(i-1), 2^i).
class LatencyHistogram {
 public:
  static constexpr int kBuckets = 40;
  void record(uint64_t ns);
  uint64_t count() const;
  // Upper bound (ns) of the bucket holding the p-th percentile (0 < p <= 100); 0 if empty.
  uint64_t percentile_upper_ns(double p) const;
  uint64_t bucket(int i) const { return b_[static_cast<size_t>(i)].get(); }

 private:
  std::array<Counter, kBuckets> b_{};
};

struct TapReaderStats {  // writer: TAP reader thread
  Counter reads, frames, bytes, errors, eagain, backpressure_waits, gso_frames, csum_completed,
      csum_left_partial;
};

struct TapWriterStats {  // writer: TAP writer thread
  Counter writes, frames, bytes, errors, eagain, gso_frames, merged_segments;
  LatencyHistogram latency;  // send_packet -> taken off the ring by the TAP writer
};

struct SlirpStats {  // writer: slirp thread
  Counter loops, polls, wakeups, input_frames, input_bytes, output_frames, output_bytes, tx_waits,
      output_drops, commands,
      spins,      // busy-poll phases before sleeping (only while the traffic is small frames)
      spin_hits,  // ... that found work before the budget ran out
      fragments_dropped;  // IPv4 fragments FragmentGuard dropped (system libslirp builds only)
  LatencyHistogram latency;  // TAP read -> handed to slirp_input
};

struct PipelineStats {
  TapReaderStats rx;
  SlirpStats slirp;
  TapWriterStats tx;
};

// ---- Snapshots: plain values, read at one moment, for whoever renders them (the API's get_stats,
// --stats at exit). Field names are the keys of get_stats.

struct HistogramCounts {
  uint64_t count = 0, p50_ns_le = 0, p99_ns_le = 0;
  std::vector<uint64_t> log2_buckets;  // up to the last non-empty bucket (at least one)
};

struct TapReaderCounts {
  uint64_t reads = 0, frames = 0, bytes = 0, eagain = 0, errors = 0, backpressure_waits = 0, gso_frames = 0,
           csum_completed = 0, csum_left_partial = 0;
};

struct SlirpCounts {
  uint64_t loops = 0, polls = 0, wakeups = 0, input_frames = 0, input_bytes = 0, output_frames = 0,
           output_bytes = 0, tx_waits = 0, output_drops = 0, commands = 0, spins = 0, spin_hits = 0,
           fragments_dropped = 0;
  HistogramCounts rx_latency;
};

struct TapWriterCounts {
  uint64_t writes = 0, frames = 0, bytes = 0, eagain = 0, errors = 0, gso_frames = 0, merged_segments = 0;
  HistogramCounts tx_latency;
};

struct PipelineCounts {
  TapReaderCounts tap_reader;
  uint64_t rx_ring_depth = 0;
  SlirpCounts slirp;
  uint64_t tx_ring_depth = 0;
  TapWriterCounts tap_writer;
};

HistogramCounts snapshot(const LatencyHistogram& h);
PipelineCounts snapshot(const PipelineStats& s, size_t rx_depth, size_t tx_depth);

// A human-readable table, printed at exit with --stats.
std::string stats_text(const PipelineCounts& s);

}  // namespace slirpnetd::io
