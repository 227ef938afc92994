// ctl/api.cpp: the JSON API commands (docs/compatibility.md, "The API socket"), byte-compatible with slirp4netns 1.2/1.3.
//
// slirp4netns parses with parson 1.5.2; we parse with RapidJSON 1.1 and make it agree on what
// "cannot parse JSON" means:
//  - only the first JSON value counts: bytes after it are ignored (kParseStopWhenDoneFlag), and so
//    is everything after the first NUL byte (slirp4netns NUL-terminates its read buffer);
//  - duplicate object keys, at any depth, are rejected as parson does (RapidJSON accepts them, and
//    FindMember would then silently pick the first one);
//  - invalid UTF-8 is rejected (parson checks it; RapidJSON only with kParseValidateEncodingFlag);
//  - nesting deeper than parson's limit of 2048 is rejected (and the iterative parser keeps deep
//    input off the C++ stack).
// Field lookups never touch unchecked values: RapidJSON's accessors assert on type misuse.
#include "ctl/api.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

namespace slirpnetd::ctl {

namespace {

using rapidjson::Value;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr unsigned kParseFlags = rapidjson::kParseStopWhenDoneFlag |
                                 rapidjson::kParseValidateEncodingFlag |
                                 rapidjson::kParseIterativeFlag;
constexpr int kMaxNesting = 2048;  // parson's PARSON_MAX_NESTING

std::string error_reply(std::string_view desc) {
  std::string r = R"({"error":{"desc":"bad request: )";
  r += desc;
  r += R"("}})";
  return r;
}

std::string_view until_nul(std::string_view s) { return s.substr(0, s.find('\0')); }

bool parse(std::string_view bytes, rapidjson::Document& doc) {
  doc.Parse<kParseFlags>(bytes.data(), bytes.size());
  return !doc.HasParseError();
}

std::string_view name_of(const Value& v) { return {v.GetString(), v.GetStringLength()}; }

// What parson would reject after RapidJSON accepted: duplicate keys, excessive nesting.
bool parson_acceptable(const Value& v, int depth) {
  if (depth > kMaxNesting) return false;
  if (v.IsArray()) {
    for (const Value& e : v.GetArray())
      if (!parson_acceptable(e, depth + 1)) return false;
  } else if (v.IsObject()) {
    std::vector<std::string_view> names;
    names.reserve(v.MemberCount());
    for (const auto& m : v.GetObject()) {
      names.push_back(name_of(m.name));
      if (!parson_acceptable(m.value, depth + 1)) return false;
    }
    std::sort(names.begin(), names.end());
    if (std::adjacent_find(names.begin(), names.end()) != names.end()) return false;
  }
  return true;
}

// arguments.<name>, or null when `args` is not an object or has no such member.
const Value* member(const Value* args, const char* name) {
  if (args == nullptr || !args->IsObject()) return nullptr;
  auto it = args->FindMember(name);
  return it == args->MemberEnd() ? nullptr : &it->value;
}

// A JSON number with an integral value in [lo, hi]. slirp4netns casts any double to int without
// checking (70000 binds port 4464); we reject instead.
std::optional<int> integer(const Value* v, int lo, int hi) {
  if (v == nullptr || !v->IsNumber()) return std::nullopt;
  const double d = v->GetDouble();
  if (!(d >= lo && d <= hi) || d != std::floor(d)) return std::nullopt;
  return static_cast<int>(d);
}

// An address member as text: missing or non-string is "" (slirp4netns's rule: the default).
std::string addr_member(const Value* v) {
  if (v == nullptr || !v->IsString()) return {};
  return {v->GetString(), v->GetStringLength()};
}

void log_failure(std::FILE* log, const char* what, int rc) {
  if (log != nullptr) std::fprintf(log, "api_handler: %s: %s\n", what, std::strerror(-rc));
}

// Histogram counters as get_stats has always shown them.
void histogram(Writer& w, const char* name, const io::HistogramCounts& h) {
  w.Key(name);
  w.StartObject();
  w.Key("count");
  w.Uint64(h.count);
  w.Key("p50_ns_le");
  w.Uint64(h.p50_ns_le);
  w.Key("p99_ns_le");
  w.Uint64(h.p99_ns_le);
  w.Key("log2_buckets");
  w.StartArray();
  for (uint64_t b : h.log2_buckets) w.Uint64(b);
  w.EndArray();
  w.EndObject();
}

void field(Writer& w, const char* name, uint64_t v) {
  w.Key(name);
  w.Uint64(v);
}

}  // namespace

std::string stats_json(const Stats& st) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  const io::PipelineCounts& p = st.pipeline;
  w.StartObject();
  w.Key("tap_reader");
  w.StartObject();
  field(w, "reads", p.tap_reader.reads);
  field(w, "frames", p.tap_reader.frames);
  field(w, "bytes", p.tap_reader.bytes);
  field(w, "eagain", p.tap_reader.eagain);
  field(w, "errors", p.tap_reader.errors);
  field(w, "backpressure_waits", p.tap_reader.backpressure_waits);
  field(w, "gso_frames", p.tap_reader.gso_frames);
  field(w, "csum_completed", p.tap_reader.csum_completed);
  field(w, "csum_left_partial", p.tap_reader.csum_left_partial);
  w.EndObject();
  field(w, "rx_ring_depth", p.rx_ring_depth);
  w.Key("slirp");
  w.StartObject();
  field(w, "loops", p.slirp.loops);
  field(w, "polls", p.slirp.polls);
  field(w, "wakeups", p.slirp.wakeups);
  field(w, "input_frames", p.slirp.input_frames);
  field(w, "input_bytes", p.slirp.input_bytes);
  field(w, "output_frames", p.slirp.output_frames);
  field(w, "output_bytes", p.slirp.output_bytes);
  field(w, "tx_waits", p.slirp.tx_waits);
  field(w, "output_drops", p.slirp.output_drops);
  field(w, "commands", p.slirp.commands);
  field(w, "spins", p.slirp.spins);
  field(w, "spin_hits", p.slirp.spin_hits);
  histogram(w, "rx_latency", p.slirp.rx_latency);
  field(w, "fragments_dropped", p.slirp.fragments_dropped);
  w.EndObject();
  field(w, "tx_ring_depth", p.tx_ring_depth);
  w.Key("tap_writer");
  w.StartObject();
  field(w, "writes", p.tap_writer.writes);
  field(w, "frames", p.tap_writer.frames);
  field(w, "bytes", p.tap_writer.bytes);
  field(w, "eagain", p.tap_writer.eagain);
  field(w, "errors", p.tap_writer.errors);
  field(w, "gso_frames", p.tap_writer.gso_frames);
  field(w, "merged_segments", p.tap_writer.merged_segments);
  histogram(w, "tx_latency", p.tap_writer.tx_latency);
  w.EndObject();
  if (st.splice) {
    const fwd::ForwarderCounts& f = *st.splice;
    w.Key("splice");
    w.StartObject();
    field(w, "accepted", f.accepted);
    field(w, "connect_failed", f.connect_failed);
    field(w, "active", f.active);
    field(w, "bytes_in", f.bytes_in);
    field(w, "bytes_out", f.bytes_out);
    field(w, "udp_flows", f.udp_flows);
    field(w, "udp_dropped", f.udp_dropped);
    field(w, "udp_evicted", f.udp_evicted);
    field(w, "accept_paused", f.accept_paused);
    field(w, "idle_closed", f.idle_closed);
    w.EndObject();
  }
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

std::string_view hostfwd_error_desc(hostfwd::Error e, bool splice) {
  switch (e) {
    case hostfwd::Error::kNone: return "";
    case hostfwd::Error::kProxyProtocol: return "add_hostfwd: bad arguments.proxy_protocol";
    case hostfwd::Error::kHostAddr: return "add_hostfwd: bad arguments.host_addr";
    case hostfwd::Error::kHostPort: return "add_hostfwd: bad arguments.host_port";
    case hostfwd::Error::kGuestAddr: return "add_hostfwd: bad arguments.guest_addr";
    case hostfwd::Error::kGuestPort: return "add_hostfwd: bad arguments.guest_port";
    case hostfwd::Error::kEngine: break;
  }
  return splice ? "add_hostfwd: splice forward failed" : "add_hostfwd: slirp_add_hostfwd failed";
}

struct Commands {
  static std::string add_hostfwd(Api& api, const Value* args) {
    hostfwd::Request req;
    const Value* proto = member(args, "proto");
    // slirp4netns crashes (strcmp on NULL) when proto or arguments are missing; we answer.
    if (proto == nullptr || !proto->IsString() ||
        (name_of(*proto) != "tcp" && name_of(*proto) != "udp"))
      return error_reply("add_hostfwd: bad arguments.proto");
    req.udp = name_of(*proto) == "udp";

    // slirpnetd extension: "mode" and "proxy_protocol" (see hostfwd/registry.hpp).
    if (const Value* mode = member(args, "mode")) {
      if (!mode->IsString() || (name_of(*mode) != "slirp" && name_of(*mode) != "splice"))
        return error_reply("add_hostfwd: bad arguments.mode");
      req.splice = name_of(*mode) == "splice";
    }
    if (const Value* pp = member(args, "proxy_protocol")) {
      if (!pp->IsBool()) return error_reply("add_hostfwd: bad arguments.proxy_protocol");
      req.proxy_protocol = pp->GetBool();
    }
    // What is not a port number (missing, not integral, out of range) becomes 0, which the
    // registry refuses after the address before it, as slirp4netns orders its checks.
    req.host_addr = addr_member(member(args, "host_addr"));
    req.host_port = integer(member(args, "host_port"), 1, 65535).value_or(0);
    req.guest_addr = addr_member(member(args, "guest_addr"));
    req.guest_port = integer(member(args, "guest_port"), 1, 65535).value_or(0);

    const hostfwd::AddResult r = api.forwards_.add(req);
    if (r.error == hostfwd::Error::kEngine) log_failure(api.log_, "add_hostfwd", r.err);
    if (r.error != hostfwd::Error::kNone) return error_reply(hostfwd_error_desc(r.error, r.splice));
    return R"({"return":{"id":)" + std::to_string(r.id) + "}}";
  }

  // Real slirp4netns 1.2 answers {"entries":[...]}; its man page and test expect
  // {"return":{"entries":[...]}}. We send both: a client reading either shape works.
  // Key order is slirp4netns's: id, proto, host_addr, host_port, guest_addr, guest_port.
  static std::string list_hostfwd(const Api& api) {
    const auto forwards = api.forwards_.list();
    rapidjson::StringBuffer buf;
    Writer w(buf);
    const auto entries = [&] {
      w.StartArray();
      for (const auto& [id, fwd] : forwards) {
        w.StartObject();
        w.Key("id");
        w.Int(id);
        w.Key("proto");
        w.String(fwd.udp ? "udp" : "tcp");
        w.Key("host_addr");
        w.String(fwd.host.addr_text().c_str());
        w.Key("host_port");
        w.Int(fwd.host.port());
        w.Key("guest_addr");
        w.String(fwd.guest.addr_text().c_str());
        w.Key("guest_port");
        w.Int(fwd.guest.port());
        if (fwd.splice) {  // slirp entries stay byte-identical to slirp4netns's
          w.Key("mode");
          w.String("splice");
          if (fwd.proxy_protocol) {
            w.Key("proxy_protocol");
            w.Bool(true);
          }
        }
        w.EndObject();
      }
      w.EndArray();
    };
    w.StartObject();
    w.Key("entries");
    entries();
    w.Key("return");
    w.StartObject();
    w.Key("entries");
    entries();
    w.EndObject();
    w.EndObject();
    return {buf.GetString(), buf.GetSize()};
  }

  static std::string remove_hostfwd(Api& api, const Value* args) {
    // slirp4netns: a missing or non-number id becomes 0, which is never found.
    const int id = integer(member(args, "id"), 1, std::numeric_limits<int>::max()).value_or(0);
    const hostfwd::RemoveResult r = api.forwards_.remove(id);
    if (!r.found) return error_reply("remove_hostfwd: bad arguments.id");
    if (r.err != 0) {
      log_failure(api.log_, "remove_hostfwd", r.err);
      return error_reply(r.splice ? "remove_hostfwd: splice forward removal failed"
                                  : "remove_hostfwd: slirp_remove_hostfwd failed");  // entry kept
    }
    return R"({"return":{}})";
  }

  // Our extension: the pipeline's counters (and the splice forwarder's), rendered here.
  static std::string get_stats(Api& api) { return R"({"return":)" + stats_json(api.stats_.stats()) + "}"; }
};

Api::Api(hostfwd::Registry& forwards, StatsSource& stats, std::FILE* log)
    : forwards_(forwards), stats_(stats), log_(log) {}

std::string Api::handle_request(std::string_view request) {
  rapidjson::Document doc;
  if (!parse(until_nul(request), doc) || !parson_acceptable(doc, 0))
    return error_reply("cannot parse JSON");
  if (!doc.IsObject()) return error_reply("json_object() failed");
  const Value* execute = member(&doc, "execute");
  if (execute == nullptr || !execute->IsString()) return error_reply("no execute found");
  const Value* args = member(&doc, "arguments");
  const std::string_view cmd = name_of(*execute);
  if (cmd == "add_hostfwd") return Commands::add_hostfwd(*this, args);
  if (cmd == "list_hostfwd") return Commands::list_hostfwd(*this);
  if (cmd == "remove_hostfwd") return Commands::remove_hostfwd(*this, args);
  if (cmd == "get_stats") return Commands::get_stats(*this);
  return error_reply("unknown execute");
}

bool Api::is_complete_request(std::string_view bytes) {
  if (bytes.find('\0') != std::string_view::npos) return true;
  rapidjson::Document doc;
  return parse(bytes, doc);
}

}  // namespace slirpnetd::ctl
