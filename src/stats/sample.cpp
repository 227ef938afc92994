#include "stats/sample.hpp"

#include <rapidjson/document.h>

namespace slirpnetd::stats {

namespace {

using rapidjson::Value;

void flatten(const Value& v, const std::string& path, Sample& s) {
  if (v.IsObject()) {
    auto buckets = v.FindMember("log2_buckets");
    if (buckets != v.MemberEnd() && buckets->value.IsArray()) {
      std::vector<uint64_t>& h = s.histograms[path];
      for (const Value& b : buckets->value.GetArray()) h.push_back(b.IsUint64() ? b.GetUint64() : 0);
    }
    for (const auto& m : v.GetObject()) {
      const std::string name(m.name.GetString(), m.name.GetStringLength());
      if (name == "log2_buckets") continue;
      flatten(m.value, path.empty() ? name : path + "." + name, s);
    }
  } else if (v.IsUint64()) {
    s.counters[path] = v.GetUint64();
  }
}

}  // namespace

uint64_t Sample::counter(const std::string& path) const {
  auto it = counters.find(path);
  return it == counters.end() ? 0 : it->second;
}

const std::vector<uint64_t>& Sample::histogram(const std::string& path) const {
  static const std::vector<uint64_t> kEmpty;
  auto it = histograms.find(path);
  return it == histograms.end() ? kEmpty : it->second;
}

std::optional<Sample> parse_reply(std::string_view reply, std::string& daemon_error) {
  rapidjson::Document doc;
  doc.Parse(reply.data(), reply.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return std::nullopt;
  }
  auto ret = doc.FindMember("return");
  if (ret == doc.MemberEnd() || !ret->value.IsObject()) {
    auto err = doc.FindMember("error");
    if (err != doc.MemberEnd() && err->value.IsObject()) {
      auto desc = err->value.FindMember("desc");
      if (desc != err->value.MemberEnd() && desc->value.IsString()) {
        daemon_error.assign(desc->value.GetString(), desc->value.GetStringLength());
      }
    }
    return std::nullopt;
  }
  Sample s;
  flatten(ret->value, "", s);
  return s;
}

}  // namespace slirpnetd::stats
