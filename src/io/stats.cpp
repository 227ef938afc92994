#include "io/stats.hpp"


#include <cstdio>

namespace slirpnetd::io {

void LatencyHistogram::record(uint64_t ns) {
  int i = ns == 0 ? 0 : 64 - __builtin_clzll(ns);
  if (i >= kBuckets) i = kBuckets - 1;
  b_[static_cast<size_t>(i)].add();
}

uint64_t LatencyHistogram::count() const {
  uint64_t n = 0;
  for (const auto& c : b_) n += c.get();
  return n;
}

uint64_t LatencyHistogram::percentile_upper_ns(double p) const {
  const uint64_t total = count();
  if (total == 0) return 0;
  const double want = p / 100.0 * static_cast<double>(total);
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += bucket(i);
    if (static_cast<double>(seen) >= want) return i == 0 ? 0 : (uint64_t{1} << i) - 1;
  }
  return (uint64_t{1} << (kBuckets - 1)) - 1;
}

HistogramCounts snapshot(const LatencyHistogram& h) {
  HistogramCounts c;
  c.count = h.count();
  c.p50_ns_le = h.percentile_upper_ns(50);
  c.p99_ns_le = h.percentile_upper_ns(99);
  int last = LatencyHistogram::kBuckets - 1;
  while (last > 0 && h.bucket(last) == 0) --last;
  for (int i = 0; i <= last; ++i) c.log2_buckets.push_back(h.bucket(i));
  return c;
}

PipelineCounts snapshot(const PipelineStats& s, size_t rx_depth, size_t tx_depth) {
  PipelineCounts c;
  auto& r = c.tap_reader;
  r.reads = s.rx.reads.get();
  r.frames = s.rx.frames.get();
  r.bytes = s.rx.bytes.get();
  r.eagain = s.rx.eagain.get();
  r.errors = s.rx.errors.get();
  r.backpressure_waits = s.rx.backpressure_waits.get();
  r.gso_frames = s.rx.gso_frames.get();
  r.csum_completed = s.rx.csum_completed.get();
  r.csum_left_partial = s.rx.csum_left_partial.get();
  c.rx_ring_depth = rx_depth;
  auto& l = c.slirp;
  l.loops = s.slirp.loops.get();
  l.polls = s.slirp.polls.get();
  l.wakeups = s.slirp.wakeups.get();
  l.input_frames = s.slirp.input_frames.get();
  l.input_bytes = s.slirp.input_bytes.get();
  l.output_frames = s.slirp.output_frames.get();
  l.output_bytes = s.slirp.output_bytes.get();
  l.tx_waits = s.slirp.tx_waits.get();
  l.output_drops = s.slirp.output_drops.get();
  l.commands = s.slirp.commands.get();
  l.spins = s.slirp.spins.get();
  l.spin_hits = s.slirp.spin_hits.get();
  l.fragments_dropped = s.slirp.fragments_dropped.get();
  l.rx_latency = snapshot(s.slirp.latency);
  c.tx_ring_depth = tx_depth;
  auto& w = c.tap_writer;
  w.writes = s.tx.writes.get();
  w.frames = s.tx.frames.get();
  w.bytes = s.tx.bytes.get();
  w.eagain = s.tx.eagain.get();
  w.errors = s.tx.errors.get();
  w.gso_frames = s.tx.gso_frames.get();
  w.merged_segments = s.tx.merged_segments.get();
  w.tx_latency = snapshot(s.tx.latency);
  return c;
}

std::string stats_text(const PipelineCounts& s) {
  char out[1024];
  std::snprintf(out, sizeof out,
                "slirpnetd pipeline stats\n"
                "  tap reader:  %llu frames, %llu bytes, %llu reads, %llu errors, %llu back-pressure waits\n"
                "  slirp:       %llu frames in, %llu frames out, %llu loops, %llu wakeups, %llu tx waits, %llu drops\n"
                "  tap writer:  %llu frames, %llu bytes, %llu errors\n"
                "  latency:     tap->slirp p50 <= %llu ns, p99 <= %llu ns; slirp->tap p50 <= %llu ns, p99 <= %llu ns\n",
                (unsigned long long)s.tap_reader.frames, (unsigned long long)s.tap_reader.bytes,
                (unsigned long long)s.tap_reader.reads, (unsigned long long)s.tap_reader.errors,
                (unsigned long long)s.tap_reader.backpressure_waits,
                (unsigned long long)s.slirp.input_frames, (unsigned long long)s.slirp.output_frames,
                (unsigned long long)s.slirp.loops, (unsigned long long)s.slirp.wakeups,
                (unsigned long long)s.slirp.tx_waits, (unsigned long long)s.slirp.output_drops,
                (unsigned long long)s.tap_writer.frames, (unsigned long long)s.tap_writer.bytes,
                (unsigned long long)s.tap_writer.errors,
                (unsigned long long)s.slirp.rx_latency.p50_ns_le,
                (unsigned long long)s.slirp.rx_latency.p99_ns_le,
                (unsigned long long)s.tap_writer.tx_latency.p50_ns_le,
                (unsigned long long)s.tap_writer.tx_latency.p99_ns_le);
  return out;
}

}  // namespace slirpnetd::io
