#include "stats/report.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <cstdio>
#include <ctime>

namespace slirpnetd::stats {

uint64_t bucket_upper_ns(size_t i) {
  if (i == 0) return 0;
  if (i >= 64) return UINT64_MAX;
  return (uint64_t{1} << i) - 1;
}

Latency latency_of(const std::vector<uint64_t>& buckets) {
  Latency l;
  for (uint64_t b : buckets) l.count += b;
  if (l.count == 0) return l;
  // The p-th percentile is the smallest value with at least p% of the values at or below it.
  auto percentile = [&](double p) {
    const double want = p / 100.0 * static_cast<double>(l.count);
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets.size(); ++i) {
      seen += buckets[i];
      if (buckets[i] != 0 && static_cast<double>(seen) >= want) return bucket_upper_ns(i);
    }
    return bucket_upper_ns(buckets.size() - 1);
  };
  l.p50_ns_le = percentile(50);
  l.p99_ns_le = percentile(99);
  for (size_t i = buckets.size(); i-- > 0;) {
    if (buckets[i] != 0) {
      l.max_ns_le = bucket_upper_ns(i);
      break;
    }
  }
  return l;
}

uint64_t counter_delta(uint64_t prev, uint64_t cur) { return cur >= prev ? cur - prev : cur; }

std::vector<uint64_t> histogram_delta(const std::vector<uint64_t>& prev, const std::vector<uint64_t>& cur) {
  std::vector<uint64_t> d(cur.size());
  for (size_t i = 0; i < cur.size(); ++i) {
    const uint64_t p = i < prev.size() ? prev[i] : 0;
    if (cur[i] < p) return cur;  // restarted
    d[i] = cur[i] - p;
  }
  for (size_t i = cur.size(); i < prev.size(); ++i)
    if (prev[i] != 0) return cur;  // buckets vanished: restarted
  return d;
}

namespace {

Stage stage(const char* name) {
  Stage s;
  s.name = name;
  return s;
}

}  // namespace

Report make_report(const Sample& prev, const Sample& cur) {
  Report r;
  r.wall_s = cur.wall_s;
  r.interval_s = cur.mono_ns > prev.mono_ns ? static_cast<double>(cur.mono_ns - prev.mono_ns) / 1e9 : 0;
  auto delta = [&](const std::string& path) { return counter_delta(prev.counter(path), cur.counter(path)); };
  auto rate = [&](const std::string& path) {
    return r.interval_s > 0 ? static_cast<double>(delta(path)) / r.interval_s : 0.0;
  };
  auto latency = [&](const std::string& path) {
    return latency_of(histogram_delta(prev.histogram(path), cur.histogram(path)));
  };

  Stage tap_read = stage("tap_read");
  tap_read.frames_per_s = rate("tap_reader.frames");
  tap_read.bytes_per_s = rate("tap_reader.bytes");
  tap_read.errors = delta("tap_reader.errors");
  tap_read.extra = {{"reads_per_s", rate("tap_reader.reads")},
                    {"eagain", static_cast<double>(delta("tap_reader.eagain"))},
                    {"gso_frames_per_s", rate("tap_reader.gso_frames")}};
  r.stages.push_back(tap_read);

  Stage rx_ring = stage("rx_ring");
  rx_ring.depth = cur.counter("rx_ring_depth");
  rx_ring.waits = delta("tap_reader.backpressure_waits");
  rx_ring.latency = latency("slirp.rx_latency");
  r.stages.push_back(rx_ring);

  Stage input = stage("slirp_input");
  input.frames_per_s = rate("slirp.input_frames");
  input.bytes_per_s = rate("slirp.input_bytes");
  input.extra = {{"loops_per_s", rate("slirp.loops")},
                 {"wakeups_per_s", rate("slirp.wakeups")},
                 {"commands", static_cast<double>(delta("slirp.commands"))}};
  r.stages.push_back(input);

  Stage output = stage("send_packet");
  output.frames_per_s = rate("slirp.output_frames");
  output.bytes_per_s = rate("slirp.output_bytes");
  output.drops = delta("slirp.output_drops");
  r.stages.push_back(output);

  Stage tx_ring = stage("tx_ring");
  tx_ring.depth = cur.counter("tx_ring_depth");
  tx_ring.waits = delta("slirp.tx_waits");
  tx_ring.latency = latency("tap_writer.tx_latency");
  r.stages.push_back(tx_ring);

  Stage tap_write = stage("tap_write");
  tap_write.frames_per_s = rate("tap_writer.frames");
  tap_write.bytes_per_s = rate("tap_writer.bytes");
  tap_write.errors = delta("tap_writer.errors");
  tap_write.extra = {{"writes_per_s", rate("tap_writer.writes")},
                     {"eagain", static_cast<double>(delta("tap_writer.eagain"))},
                     {"gso_frames_per_s", rate("tap_writer.gso_frames")},
                     {"merged_segments_per_s", rate("tap_writer.merged_segments")}};
  r.stages.push_back(tap_write);

  if (cur.has("splice.accepted")) {
    Stage splice = stage("splice");
    splice.bytes_per_s = rate("splice.bytes_in") + rate("splice.bytes_out");
    splice.drops = delta("splice.udp_dropped");
    splice.errors = delta("splice.connect_failed");
    splice.extra = {{"bytes_in_per_s", rate("splice.bytes_in")},
                    {"bytes_out_per_s", rate("splice.bytes_out")},
                    {"accepted_per_s", rate("splice.accepted")},
                    {"active", static_cast<double>(cur.counter("splice.active"))},
                    {"udp_flows", static_cast<double>(cur.counter("splice.udp_flows"))},
                    {"udp_evicted", static_cast<double>(delta("splice.udp_evicted"))},
                    {"accept_paused", static_cast<double>(delta("splice.accept_paused"))},
                    {"idle_closed", static_cast<double>(delta("splice.idle_closed"))}};
    r.stages.push_back(splice);
  }
  return r;
}

std::string format_json(const Report& r) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.SetMaxDecimalPlaces(6);  // interval_s and time to the microsecond; rates are rounded to 0.001
  w.StartObject();
  w.Key("time");
  w.Double(r.wall_s);
  w.Key("interval_s");
  w.Double(r.interval_s);
  auto u64 = [&w](const char* key, const std::optional<uint64_t>& v) {
    if (!v) return;
    w.Key(key);
    w.Uint64(*v);
  };
  auto dbl = [&w](const char* key, const std::optional<double>& v) {
    if (!v) return;
    w.Key(key);
    w.Double(std::round(*v * 1000) / 1000);
  };
  for (const Stage& s : r.stages) {
    w.Key(s.name.c_str());
    w.StartObject();
    dbl("frames_per_s", s.frames_per_s);
    dbl("bytes_per_s", s.bytes_per_s);
    u64("depth", s.depth);
    u64("waits", s.waits);
    u64("drops", s.drops);
    u64("errors", s.errors);
    if (s.latency) {
      w.Key("latency_ns");
      w.StartObject();
      u64("count", s.latency->count);
      u64("p50_le", s.latency->p50_ns_le);
      u64("p99_le", s.latency->p99_ns_le);
      u64("max_le", s.latency->max_ns_le);
      w.EndObject();
    }
    for (const auto& [key, v] : s.extra) {
      if (key.size() > 6 && key.compare(key.size() - 6, 6, "_per_s") == 0) {
        dbl(key.c_str(), v);
      } else {  // a count
        w.Key(key.c_str());
        w.Uint64(static_cast<uint64_t>(std::llround(v)));
      }
    }
    w.EndObject();
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

namespace {

// 0, 812, 8.1k, 12.3M, 1.23G: three significant digits at most.
std::string si(double v) {
  static const char* const kUnits[] = {"", "k", "M", "G", "T"};
  int u = 0;
  while (std::fabs(v) >= 999.5 && u < 4) {
    v /= 1000;
    ++u;
  }
  char out[32];
  if (u == 0 || v >= 99.95)
    std::snprintf(out, sizeof out, "%.0f%s", v, kUnits[u]);
  else if (v >= 9.995)
    std::snprintf(out, sizeof out, "%.1f%s", v, kUnits[u]);
  else
    std::snprintf(out, sizeof out, "%.2f%s", v, kUnits[u]);
  return out;
}

// 0, 511ns, 16.4us, 1.05ms, 2.15s.
std::string duration(uint64_t ns) {
  static const char* const kUnits[] = {"ns", "us", "ms", "s"};
  double v = static_cast<double>(ns);
  int u = 0;
  while (v >= 999.5 && u < 3) {
    v /= 1000;
    ++u;
  }
  char out[32];
  if (ns == 0)
    return "0";
  else if (u == 0 || v >= 99.95)
    std::snprintf(out, sizeof out, "%.0f%s", v, kUnits[u]);
  else if (v >= 9.995)
    std::snprintf(out, sizeof out, "%.1f%s", v, kUnits[u]);
  else
    std::snprintf(out, sizeof out, "%.2f%s", v, kUnits[u]);
  return out;
}

}  // namespace

std::string format_table(const Report& r) {
  std::string out;
  char line[256];
  const std::time_t t = static_cast<std::time_t>(r.wall_s);
  std::tm tm{};
  localtime_r(&t, &tm);
  char when[16];
  std::strftime(when, sizeof when, "%H:%M:%S", &tm);
  std::snprintf(line, sizeof line, "%s  interval %.2f s  (latency: upper bound of its log2 bucket)\n", when,
                r.interval_s);
  out += line;
  std::snprintf(line, sizeof line, "%-12s %9s %9s %6s %7s %7s %8s %8s %8s\n", "STAGE", "FRAMES/S", "BYTES/S",
                "DEPTH", "WAITS", "DROPS", "P50", "P99", "MAX");
  out += line;
  auto opt_si = [](const std::optional<double>& v) { return v ? si(*v) : std::string("-"); };
  auto opt_n = [](const std::optional<uint64_t>& v) { return v ? si(static_cast<double>(*v)) : std::string("-"); };
  for (const Stage& s : r.stages) {
    std::optional<uint64_t> drops;
    if (s.drops || s.errors) drops = s.drops.value_or(0) + s.errors.value_or(0);
    std::string p50 = "-", p99 = "-", max = "-";
    if (s.latency && s.latency->count != 0) {
      p50 = duration(s.latency->p50_ns_le);
      p99 = duration(s.latency->p99_ns_le);
      max = duration(s.latency->max_ns_le);
    }
    std::snprintf(line, sizeof line, "%-12s %9s %9s %6s %7s %7s %8s %8s %8s\n", s.name.c_str(),
                  opt_si(s.frames_per_s).c_str(), opt_si(s.bytes_per_s).c_str(), opt_n(s.depth).c_str(),
                  opt_n(s.waits).c_str(), opt_n(drops).c_str(), p50.c_str(), p99.c_str(), max.c_str());
    out += line;
  }
  return out;
}

}  // namespace slirpnetd::stats
