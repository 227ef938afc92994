#include "io/stats.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <time.h>

#include <cstdio>

namespace slirpnetd::io {

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

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

namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void field(JsonWriter& w, const char* name, uint64_t v) {
  w.Key(name);
  w.Uint64(v);
}

void histogram(JsonWriter& w, const char* name, const LatencyHistogram& h) {
  w.Key(name);
  w.StartObject();
  field(w, "count", h.count());
  field(w, "p50_ns_le", h.percentile_upper_ns(50));
  field(w, "p99_ns_le", h.percentile_upper_ns(99));
  w.Key("log2_buckets");
  w.StartArray();
  int last = LatencyHistogram::kBuckets - 1;
  while (last > 0 && h.bucket(last) == 0) --last;
  for (int i = 0; i <= last; ++i) w.Uint64(h.bucket(i));
  w.EndArray();
  w.EndObject();
}

}  // namespace

std::string stats_json(const PipelineStats& s, size_t rx_depth, size_t tx_depth) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("tap_reader");
  w.StartObject();
  field(w, "reads", s.rx.reads.get());
  field(w, "frames", s.rx.frames.get());
  field(w, "bytes", s.rx.bytes.get());
  field(w, "eagain", s.rx.eagain.get());
  field(w, "errors", s.rx.errors.get());
  field(w, "backpressure_waits", s.rx.backpressure_waits.get());
  field(w, "gso_frames", s.rx.gso_frames.get());
  field(w, "csum_completed", s.rx.csum_completed.get());
  field(w, "csum_left_partial", s.rx.csum_left_partial.get());
  w.EndObject();
  w.Key("rx_ring_depth");
  w.Uint64(rx_depth);
  w.Key("slirp");
  w.StartObject();
  field(w, "loops", s.slirp.loops.get());
  field(w, "polls", s.slirp.polls.get());
  field(w, "wakeups", s.slirp.wakeups.get());
  field(w, "input_frames", s.slirp.input_frames.get());
  field(w, "input_bytes", s.slirp.input_bytes.get());
  field(w, "output_frames", s.slirp.output_frames.get());
  field(w, "output_bytes", s.slirp.output_bytes.get());
  field(w, "tx_waits", s.slirp.tx_waits.get());
  field(w, "output_drops", s.slirp.output_drops.get());
  field(w, "commands", s.slirp.commands.get());
  field(w, "spins", s.slirp.spins.get());
  field(w, "spin_hits", s.slirp.spin_hits.get());
  histogram(w, "rx_latency", s.slirp.latency);
  w.EndObject();
  w.Key("tx_ring_depth");
  w.Uint64(tx_depth);
  w.Key("tap_writer");
  w.StartObject();
  field(w, "writes", s.tx.writes.get());
  field(w, "frames", s.tx.frames.get());
  field(w, "bytes", s.tx.bytes.get());
  field(w, "eagain", s.tx.eagain.get());
  field(w, "errors", s.tx.errors.get());
  field(w, "gso_frames", s.tx.gso_frames.get());
  field(w, "merged_segments", s.tx.merged_segments.get());
  histogram(w, "tx_latency", s.tx.latency);
  w.EndObject();
  w.EndObject();
  return buf.GetString();
}

std::string stats_text(const PipelineStats& s) {
  char out[1024];
  std::snprintf(out, sizeof out,
                "slirpnetd pipeline stats\n"
                "  tap reader:  %llu frames, %llu bytes, %llu reads, %llu errors, %llu back-pressure waits\n"
                "  slirp:       %llu frames in, %llu frames out, %llu loops, %llu wakeups, %llu tx waits, %llu drops\n"
                "  tap writer:  %llu frames, %llu bytes, %llu errors\n"
                "  latency:     tap->slirp p50 <= %llu ns, p99 <= %llu ns; slirp->tap p50 <= %llu ns, p99 <= %llu ns\n",
                (unsigned long long)s.rx.frames.get(), (unsigned long long)s.rx.bytes.get(),
                (unsigned long long)s.rx.reads.get(), (unsigned long long)s.rx.errors.get(),
                (unsigned long long)s.rx.backpressure_waits.get(),
                (unsigned long long)s.slirp.input_frames.get(), (unsigned long long)s.slirp.output_frames.get(),
                (unsigned long long)s.slirp.loops.get(), (unsigned long long)s.slirp.wakeups.get(),
                (unsigned long long)s.slirp.tx_waits.get(), (unsigned long long)s.slirp.output_drops.get(),
                (unsigned long long)s.tx.frames.get(), (unsigned long long)s.tx.bytes.get(),
                (unsigned long long)s.tx.errors.get(),
                (unsigned long long)s.slirp.latency.percentile_upper_ns(50),
                (unsigned long long)s.slirp.latency.percentile_upper_ns(99),
                (unsigned long long)s.tx.latency.percentile_upper_ns(50),
                (unsigned long long)s.tx.latency.percentile_upper_ns(99));
  return out;
}

}  // namespace slirpnetd::io
