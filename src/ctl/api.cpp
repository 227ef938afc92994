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

// An address member: missing, non-string or "" gives `fallback` (slirp4netns's rule); otherwise
// an IPv4 literal, or an IPv6 literal when IPv6 is enabled. Sets the family and length; the port
// is set later (slirp4netns validates host_addr before host_port).
bool parse_addr(const Value* v, bool allow6, in_addr fallback, sockaddr_storage& ss, socklen_t& len) {
  ss = {};
  std::string text;
  if (v != nullptr && v->IsString()) text.assign(v->GetString(), v->GetStringLength());
  if (text.find('\0') != std::string::npos) return false;
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  if (text.empty()) {
    sin->sin_family = AF_INET;
    sin->sin_addr = fallback;
    len = sizeof(sockaddr_in);
    return true;
  }
  if (inet_pton(AF_INET, text.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    len = sizeof(sockaddr_in);
    return true;
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (allow6 && inet_pton(AF_INET6, text.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

void set_port(sockaddr_storage& ss, int port) {
  const auto p = htons(static_cast<uint16_t>(port));
  if (ss.ss_family == AF_INET6)
    reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = p;
  else
    reinterpret_cast<sockaddr_in*>(&ss)->sin_port = p;
}

int port_of(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
}

std::string addr_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
  else
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  return buf;
}

void log_failure(std::FILE* log, const char* what, int rc) {
  if (log != nullptr) std::fprintf(log, "api_handler: %s: %s\n", what, std::strerror(-rc));
}

}  // namespace

struct Commands {
  static std::string add_hostfwd(Api& api, const Value* args) {
    Hostfwd fwd;
    const Value* proto = member(args, "proto");
    // slirp4netns crashes (strcmp on NULL) when proto or arguments are missing; we answer.
    if (proto == nullptr || !proto->IsString() ||
        (name_of(*proto) != "tcp" && name_of(*proto) != "udp"))
      return error_reply("add_hostfwd: bad arguments.proto");
    fwd.udp = name_of(*proto) == "udp";

    // slirpnetd extension: "mode" and "proxy_protocol" (see Hostfwd).
    fwd.splice = api.default_splice_;
    if (const Value* mode = member(args, "mode")) {
      if (!mode->IsString() || (name_of(*mode) != "slirp" && name_of(*mode) != "splice"))
        return error_reply("add_hostfwd: bad arguments.mode");
      fwd.splice = name_of(*mode) == "splice";
    }
    if (const Value* pp = member(args, "proxy_protocol")) {
      if (!pp->IsBool() || (pp->GetBool() && (!fwd.splice || fwd.udp)))
        return error_reply("add_hostfwd: bad arguments.proxy_protocol");
      fwd.proxy_protocol = pp->GetBool();
    }
    const bool allow6 = api.enable_ipv6_ || fwd.splice;

    in_addr any{};
    any.s_addr = htonl(INADDR_ANY);
    if (!parse_addr(member(args, "host_addr"), allow6, any, fwd.host, fwd.host_len))
      return error_reply("add_hostfwd: bad arguments.host_addr");
    const auto host_port = integer(member(args, "host_port"), 1, 65535);
    if (!host_port) return error_reply("add_hostfwd: bad arguments.host_port");
    set_port(fwd.host, *host_port);

    // An empty guest_addr means the recommended guest address (net + 100) for an IPv4 host, and
    // "::" for an IPv6 host: libslirp resolves "::" to the guest's SLAAC address when a connection
    // arrives. (Forwarding an IPv6 host socket to the IPv4 guest does not work in libslirp 4.7: a
    // loopback peer is translated to fd00::2, which cannot reach an IPv4 address.)
    if (!parse_addr(member(args, "guest_addr"), allow6, api.default_guest_, fwd.guest,
                    fwd.guest_len))
      return error_reply("add_hostfwd: bad arguments.guest_addr");
    const Value* guest_text = member(args, "guest_addr");
    const bool guest_default = guest_text == nullptr || !guest_text->IsString() || guest_text->GetStringLength() == 0;
    if (guest_default && fwd.host.ss_family == AF_INET6) {
      fwd.guest = {};
      auto* g6 = reinterpret_cast<sockaddr_in6*>(&fwd.guest);
      g6->sin6_family = AF_INET6;
      g6->sin6_addr = in6addr_any;
      fwd.guest_len = sizeof(sockaddr_in6);
    }
    const auto guest_port = integer(member(args, "guest_port"), 1, 65535);
    if (!guest_port) return error_reply("add_hostfwd: bad arguments.guest_port");
    set_port(fwd.guest, *guest_port);

    if (int rc = api.backend_.add_hostfwd(fwd); rc != 0) {
      log_failure(api.log_, "add_hostfwd", rc);
      return error_reply(fwd.splice ? "add_hostfwd: splice forward failed" : "add_hostfwd: slirp_add_hostfwd failed");
    }
    const int id = api.next_id_++;
    api.forwards_.emplace(id, fwd);
    return R"({"return":{"id":)" + std::to_string(id) + "}}";
  }

  // Real slirp4netns 1.2 answers {"entries":[...]}; its man page and test expect
  // {"return":{"entries":[...]}}. We send both: a client reading either shape works.
  // Key order is slirp4netns's: id, proto, host_addr, host_port, guest_addr, guest_port.
  static std::string list_hostfwd(const Api& api) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    const auto entries = [&] {
      w.StartArray();
      for (const auto& [id, fwd] : api.forwards_) {
        w.StartObject();
        w.Key("id");
        w.Int(id);
        w.Key("proto");
        w.String(fwd.udp ? "udp" : "tcp");
        w.Key("host_addr");
        w.String(addr_text(fwd.host).c_str());
        w.Key("host_port");
        w.Int(port_of(fwd.host));
        w.Key("guest_addr");
        w.String(addr_text(fwd.guest).c_str());
        w.Key("guest_port");
        w.Int(port_of(fwd.guest));
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
    const auto id = integer(member(args, "id"), 1, api.next_id_ - 1);
    auto it = id ? api.forwards_.find(*id) : api.forwards_.end();
    if (it == api.forwards_.end()) return error_reply("remove_hostfwd: bad arguments.id");
    if (int rc = api.backend_.remove_hostfwd(it->second); rc != 0) {
      log_failure(api.log_, "remove_hostfwd", rc);
      return error_reply(it->second.splice ? "remove_hostfwd: splice forward removal failed"
                                           : "remove_hostfwd: slirp_remove_hostfwd failed");  // entry kept
    }
    api.forwards_.erase(it);
    return R"({"return":{}})";
  }

  // Our extension: the pipeline's counters, re-serialised so the reply is always compact JSON.
  static std::string get_stats(Api& api) {
    const std::string stats = api.backend_.stats_json();
    rapidjson::Document doc;
    doc.Parse(stats.data(), stats.size());
    if (doc.HasParseError() || !doc.IsObject()) return error_reply("get_stats: no statistics");
    rapidjson::StringBuffer buf;
    Writer w(buf);
    doc.Accept(w);
    return R"({"return":)" + std::string(buf.GetString(), buf.GetSize()) + "}";
  }
};

Api::Api(Backend& backend, const config::NetConfig& net, std::FILE* log)
    : backend_(backend),
      default_guest_(net.guest),
      enable_ipv6_(net.enable_ipv6),
      default_splice_(net.forward_mode == config::ForwardMode::Splice),
      log_(log) {}

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
