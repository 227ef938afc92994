// fuzz_api: bytes -> ctl::Api::handle_request, with the fake backend of the unit tests.
//
// Input: one flags byte, then requests separated by "\n\n" (so one input can add, list and
// remove forwards against the same table):
//   bit 0  --enable-ipv6
//   bit 1  the backend fails every add (-EADDRINUSE)
//   bit 2  the backend fails every remove (-ENOENT)
//   bit 3  the daemon has a splice forwarder (get_stats has a "splice" object)
// Checks: handle_request never crashes (ASan/UBSan) or throws; every reply is one compact JSON
// object with exactly one member, "return" or "error" (list_hostfwd: "entries" and "return"),
// without a trailing newline; is_complete_request agrees with itself on the request prefix.
#include <rapidjson/document.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "test_ctl_fake.hpp"

namespace {

[[noreturn]] void die(const char* what, std::string_view request, const std::string& reply) {
  std::fprintf(stderr, "fuzz_api: %s\nrequest (%zu bytes): %.*s\nreply: %s\n", what, request.size(),
               static_cast<int>(request.size()), request.data(), reply.c_str());
  std::abort();
}

void check_reply(std::string_view request, const std::string& reply) {
  if (reply.empty() || reply.back() == '\n') die("empty reply or trailing newline", request, reply);
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(reply.data(), reply.size());
  if (doc.HasParseError()) die("reply is not valid JSON", request, reply);
  if (!doc.IsObject()) die("reply is not a JSON object", request, reply);
  const bool is_return = doc.HasMember("return");
  const bool is_error = doc.HasMember("error");
  if (is_return == is_error) die("reply has neither or both of return/error", request, reply);
  if (is_error) {
    const auto& e = doc["error"];
    if (doc.MemberCount() != 1 || !e.IsObject() || !e.HasMember("desc") || !e["desc"].IsString())
      die("malformed error reply", request, reply);
  } else if (doc.MemberCount() != 1 && !(doc.MemberCount() == 2 && doc.HasMember("entries"))) {
    die("unexpected members in a return reply", request, reply);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);

  ctl_test::FakeBackend backend;
  if (flags & 2) backend.fail_add = -EADDRINUSE;
  if (flags & 4) backend.fail_remove = -ENOENT;
  if (flags & 8) backend.stats_value.splice = slirpnetd::fwd::ForwarderCounts{};
  const auto net = ctl_test::test_net(flags & 1);
  ctl_test::TestApi api(backend, net, nullptr);

  for (;;) {
    const size_t sep = rest.find("\n\n");
    const std::string_view request = rest.substr(0, sep);
    const std::string reply = api.handle_request(request);
    check_reply(request, reply);
    // The server feeds growing prefixes: it must not crash on any of them either.
    (void)slirpnetd::ctl::Api::is_complete_request(request.substr(0, request.size() / 2));
    if (sep == std::string_view::npos) break;
    rest.remove_prefix(sep + 2);
  }
  // The table stays consistent with the backend: every listed forward is active there.
  if (api.forwards().size() != backend.active.size()) {
    std::fprintf(stderr, "fuzz_api: %zu forwards listed, %zu active in the backend\n", api.forwards().size(),
                 backend.active.size());
    std::abort();
  }
  return 0;
}
