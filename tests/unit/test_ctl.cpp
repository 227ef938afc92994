// Api::handle_request: every command and every error of slirp4netns's API, byte for byte.
#include <arpa/inet.h>
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <random>
#include <string>

#include "ctl/api.hpp"
#include "test_ctl_fake.hpp"

using slirpnetd::ctl::Api;
using ctl_test::Hostfwd;
using namespace std::string_literals;
using namespace ctl_test;

namespace {

std::string err(const std::string& desc) { return R"({"error":{"desc":"bad request: )" + desc + R"("}})"; }

std::string add(int host_port, int guest_port, const std::string& extra = "") {
  return R"({"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":)" + std::to_string(host_port) +
         R"(,"guest_port":)" + std::to_string(guest_port) + extra + "}}";
}

std::string remove(int id) { return R"({"execute":"remove_hostfwd","arguments":{"id":)" + std::to_string(id) + "}}"; }

std::string list_reply(const std::string& entries) {
  return R"({"entries":[)" + entries + R"(],"return":{"entries":[)" + entries + "]}}";
}

std::string addr4(const sockaddr_storage& ss) {
  char buf[INET_ADDRSTRLEN] = "";
  REQUIRE(ss.ss_family == AF_INET);
  inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  return buf + (":" + std::to_string(ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port)));
}

std::string addr6(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = "";
  REQUIRE(ss.ss_family == AF_INET6);
  inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port));
}

}  // namespace

TEST_CASE("request errors, in slirp4netns's order", "[ctl][api]") {
  FakeBackend backend;
  TestApi api(backend, test_net(), nullptr);
  const auto cannot_parse = err("cannot parse JSON");
  CHECK(api.handle_request("badjson") == cannot_parse);
  CHECK(api.handle_request("") == cannot_parse);
  CHECK(api.handle_request("   \n") == cannot_parse);
  CHECK(api.handle_request(R"({"execute":"list_hostfwd")") == cannot_parse);
  CHECK(api.handle_request(R"({"execute":"x","execute":"x"})") == cannot_parse);  // parson: duplicate
  CHECK(api.handle_request(R"({"execute":"list_hostfwd","arguments":{"a":1,"b":[{"c":1,"c":2}]}})") ==
        cannot_parse);  // duplicates at any depth
  CHECK(api.handle_request("{\"execute\":\"list_\xff\"}") == cannot_parse);  // invalid UTF-8
  CHECK(api.handle_request("{\"execute\":\"li\0st_hostfwd\"}"s) == cannot_parse);  // read up to NUL
  CHECK(api.handle_request(R"({'execute':'list_hostfwd'})") == cannot_parse);
  CHECK(api.handle_request(R"({"execute":"list_hostfwd",})") == cannot_parse);

  CHECK(api.handle_request("[1,2]") == err("json_object() failed"));
  CHECK(api.handle_request(R"("x")") == err("json_object() failed"));
  CHECK(api.handle_request("42") == err("json_object() failed"));
  CHECK(api.handle_request("null") == err("json_object() failed"));

  CHECK(api.handle_request("{}") == err("no execute found"));
  CHECK(api.handle_request(R"({"unexpectedjson": 42})") == err("no execute found"));
  CHECK(api.handle_request(R"({"execute":42})") == err("no execute found"));
  CHECK(api.handle_request(R"({"execute":null})") == err("no execute found"));
  CHECK(api.handle_request(R"({"Execute":"list_hostfwd"})") == err("no execute found"));

  CHECK(api.handle_request(R"({"execute":"bad"})") == err("unknown execute"));
  CHECK(api.handle_request(R"({"execute":""})") == err("unknown execute"));
  CHECK(api.handle_request(R"({"execute":"LIST_HOSTFWD"})") == err("unknown execute"));
  CHECK(api.handle_request(R"({"execute":"list_hostfwd\u0000"})") == err("unknown execute"));
  CHECK(backend.added.empty());
}

TEST_CASE("only the first JSON value counts, as in slirp4netns", "[ctl][api]") {
  FakeBackend backend;
  TestApi api(backend, test_net(), nullptr);
  const auto empty = list_reply("");
  CHECK(api.handle_request(R"({"execute":"list_hostfwd"})") == empty);
  CHECK(api.handle_request(R"({"execute":"list_hostfwd"} garbage)") == empty);
  CHECK(api.handle_request("{\"execute\":\"list_hostfwd\"}\n{\"execute\":\"bad\"}") == empty);
  CHECK(api.handle_request("{\"execute\":\"list_hostfwd\"}\0{{{"s) == empty);
  CHECK(api.handle_request(" \t\r\n{ \"execute\" : \"list_hostfwd\" , \"arguments\" : [] }\n") == empty);
}

TEST_CASE("nesting beyond parson's 2048 levels is not JSON to us either", "[ctl][api]") {
  FakeBackend backend;
  TestApi api(backend, test_net(), nullptr);
  // parson counts the root as level 0: the innermost of `depth` nested arrays is at `depth`.
  const auto nested = [](int depth) {
    return R"({"execute":"list_hostfwd","arguments":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
  };
  CHECK(api.handle_request(nested(2048)) == list_reply(""));
  CHECK(api.handle_request(nested(2049)) == err("cannot parse JSON"));
  CHECK(api.handle_request(std::string(100000, '[')) == err("cannot parse JSON"));
}

TEST_CASE("add_hostfwd: success, defaults and what the backend receives", "[ctl][api]") {
  FakeBackend backend;
  TestApi api(backend, test_net(), nullptr);

  // The upstream test's request: no addresses at all.
  CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":8080,"guest_port":80}})") ==
        R"({"return":{"id":1}})");
  REQUIRE(backend.added.size() == 1);
  CHECK_FALSE(backend.added[0].udp);
  CHECK(addr4(backend.added[0].host) == "0.0.0.0:8080");
  CHECK(backend.added[0].host_len == sizeof(sockaddr_in));
  CHECK(addr4(backend.added[0].guest) == "10.0.2.100:80");
  CHECK(backend.added[0].guest_len == sizeof(sockaddr_in));

  // Podman's request: empty guest_addr, explicit host_addr.
  CHECK(api.handle_request(
            R"({"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"127.0.0.1","host_port":5353,"guest_addr":"","guest_port":53}})"
            "\n") == R"({"return":{"id":2}})");
  REQUIRE(backend.added.size() == 2);
  CHECK(backend.added[1].udp);
  CHECK(addr4(backend.added[1].host) == "127.0.0.1:5353");
  CHECK(addr4(backend.added[1].guest) == "10.0.2.100:53");

  // Non-string and "" addresses are defaults; 0.0.0.0 is passed through (libslirp's business).
  CHECK(api.handle_request(add(1, 65535, R"(,"host_addr":"","guest_addr":7)")) == R"({"return":{"id":3}})");
  CHECK(addr4(backend.added[2].host) == "0.0.0.0:1");
  CHECK(addr4(backend.added[2].guest) == "10.0.2.100:65535");
  CHECK(api.handle_request(add(2, 2, R"(,"host_addr":null,"guest_addr":"0.0.0.0")")) == R"({"return":{"id":4}})");
  CHECK(addr4(backend.added[3].guest) == "0.0.0.0:2");
  // A repeated key is a parse error (as in parson), not "first or last one wins".
  CHECK(api.handle_request(add(3, 3, R"(,"host_port":4)")) == err("cannot parse JSON"));
  // Integral doubles are integers.
  CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":3e3,"guest_port":30.0}})") ==
        R"({"return":{"id":5}})");
  CHECK(addr4(backend.added[4].host) == "0.0.0.0:3000");
  CHECK(addr4(backend.added[4].guest) == "10.0.2.100:30");
  // The default guest follows --cidr.
  auto net = test_net();
  inet_pton(AF_INET, "192.168.7.100", &net.guest);
  TestApi api2(backend, net, nullptr);
  CHECK(api2.handle_request(add(4000, 40)) == R"({"return":{"id":1}})");
  CHECK(addr4(backend.added.back().guest) == "192.168.7.100:40");
}

TEST_CASE("add_hostfwd: bad arguments, checked in slirp4netns's order", "[ctl][api]") {
  FakeBackend backend;
  TestApi api(backend, test_net(), nullptr);
  const auto proto = err("add_hostfwd: bad arguments.proto");
  // slirp4netns 1.2 dies of SIGSEGV on the first four.
  CHECK(api.handle_request(R"({"execute":"add_hostfwd"})") == proto);
  CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{}})") == proto);
  CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":6,"host_port":1,"guest_port":1}})") == proto);
  CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":"tcp"})") == proto);
  CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":"sctp","host_port":1,"guest_port":1}})") == proto);
  CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":"TCP","host_port":1,"guest_port":1}})") == proto);
  CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":"bad","host_addr":"x","host_port":0}})") == proto);

  const auto host_addr = err("add_hostfwd: bad arguments.host_addr");
  CHECK(api.handle_request(add(1, 1, R"(,"host_addr":"::1")")) == host_addr);  // no IPv6 without -6
  CHECK(api.handle_request(add(1, 1, R"(,"host_addr":"1.2.3")")) == host_addr);
  CHECK(api.handle_request(add(1, 1, R"(,"host_addr":"1.2.3.4 ")")) == host_addr);
  CHECK(api.handle_request(add(1, 1, R"(,"host_addr":"localhost")")) == host_addr);
  CHECK(api.handle_request(add(1, 1, R"(,"host_addr":"127.0.0.1\u0000x")")) == host_addr);
  CHECK(api.handle_request(add(0, 0, R"(,"host_addr":"x","guest_addr":"y")")) == host_addr);

  const auto host_port = err("add_hostfwd: bad arguments.host_port");
  CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":"tcp","guest_port":80}})") == host_port);
  CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":"8080","guest_port":80}})") ==
        host_port);
  for (const char* bad : {"0", "-1", "65536", "70000", "8083.7", "1e10", "-0.5", "true", "[80]"})
    CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":)" + std::string(bad) +
                             R"(,"guest_port":80}})") == host_port);
  CHECK(api.handle_request(add(0, 0, R"(,"guest_addr":"y")")) == host_port);

  const auto guest_addr = err("add_hostfwd: bad arguments.guest_addr");
  CHECK(api.handle_request(add(8080, 80, R"(,"guest_addr":"10.0.2")")) == guest_addr);
  CHECK(api.handle_request(add(8080, 80, R"(,"guest_addr":"fd00::100")")) == guest_addr);
  CHECK(api.handle_request(add(8080, 0, R"(,"guest_addr":"y")")) == guest_addr);

  const auto guest_port = err("add_hostfwd: bad arguments.guest_port");
  CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":80}})") == guest_port);
  for (const char* bad : {"0", "-1", "65536", "80.5", "\"80\"", "null"})
    CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":80,"guest_port":)" +
                             std::string(bad) + "}}") == guest_port);
  CHECK(backend.added.empty());  // validation happens before the backend is asked
}

TEST_CASE("add_hostfwd: backend failures, and ids are never reused", "[ctl][api]") {
  FakeBackend backend;
  TestApi api(backend, test_net(), nullptr);
  const auto failed = err("add_hostfwd: slirp_add_hostfwd failed");
  CHECK(api.handle_request(add(8080, 80)) == R"({"return":{"id":1}})");
  CHECK(api.handle_request(add(8080, 81)) == failed);  // duplicate: EADDRINUSE, like libslirp
  backend.fail_add = -ETIMEDOUT;                       // the slirp thread did not answer
  CHECK(api.handle_request(add(8081, 80)) == failed);
  backend.fail_add = 0;
  CHECK(api.handle_request(add(8081, 80)) == R"({"return":{"id":2}})");  // failures use no id
  CHECK(api.handle_request(add(8082, 80)) == R"({"return":{"id":3}})");
  CHECK(api.handle_request(remove(2)) == R"({"return":{}})");
  CHECK(api.handle_request(add(8081, 80)) == R"({"return":{"id":4}})");
  CHECK(api.handle_request(remove(4)) == R"({"return":{}})");
  CHECK(api.handle_request(add(8081, 80)) == R"({"return":{"id":5}})");
  CHECK(api.forwards().size() == 3);
  CHECK(api.forwards().begin()->first == 1);
  CHECK(api.forwards().rbegin()->first == 5);
}

TEST_CASE("add_hostfwd with IPv6 enabled", "[ctl][api]") {
  FakeBackend backend;
  TestApi api(backend, test_net(true), nullptr);
  CHECK(api.handle_request(add(8080, 80, R"(,"host_addr":"::1","guest_addr":"")")) == R"({"return":{"id":1}})");
  REQUIRE(backend.added.size() == 1);
  CHECK(addr6(backend.added[0].host) == "[::1]:8080");
  CHECK(backend.added[0].host_len == sizeof(sockaddr_in6));
  CHECK(addr6(backend.added[0].guest) == "[::]:80");  // an IPv6 host forwards to the guest's IPv6 address
  CHECK(api.handle_request(add(8080, 80, R"(,"host_addr":"::","guest_addr":"fd00::100")")) == R"({"return":{"id":2}})");
  CHECK(addr6(backend.added[1].guest) == "[fd00::100]:80");
  CHECK(backend.added[1].guest_len == sizeof(sockaddr_in6));
  CHECK(api.handle_request(add(8080, 80)) == R"({"return":{"id":3}})");  // 0.0.0.0 next to [::]
  CHECK(api.handle_request(add(8080, 80, R"(,"host_addr":"::1%lo")")) == err("add_hostfwd: bad arguments.host_addr"));
  CHECK(api.handle_request(add(8080, 80, R"(,"host_addr":"[::1]")")) == err("add_hostfwd: bad arguments.host_addr"));
  CHECK(api.handle_request(R"({"execute":"list_hostfwd"})") ==
        list_reply(R"({"id":1,"proto":"tcp","host_addr":"::1","host_port":8080,"guest_addr":"::","guest_port":80},)"
                   R"({"id":2,"proto":"tcp","host_addr":"::","host_port":8080,"guest_addr":"fd00::100","guest_port":80},)"
                   R"({"id":3,"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80})"));
}

TEST_CASE("list_hostfwd: both shapes, slirp4netns's key order, insertion order", "[ctl][api]") {
  FakeBackend backend;
  TestApi api(backend, test_net(), nullptr);
  CHECK(api.handle_request(R"({"execute":"list_hostfwd"})") == R"({"entries":[],"return":{"entries":[]}})");
  REQUIRE(api.handle_request(add(8080, 80)) == R"({"return":{"id":1}})");
  CHECK(api.handle_request(R"({"execute":"list_hostfwd","arguments":{"id":7}})") ==
        R"({"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}],)"
        R"("return":{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}]}})");
  REQUIRE(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"127.0.0.1","host_port":53,"guest_addr":"10.0.2.3","guest_port":5353}})") ==
          R"({"return":{"id":2}})");
  REQUIRE(api.handle_request(add(9000, 90)) == R"({"return":{"id":3}})");
  REQUIRE(api.handle_request(remove(1)) == R"({"return":{}})");
  CHECK(api.handle_request(R"({"execute":"list_hostfwd"})") ==
        list_reply(R"({"id":2,"proto":"udp","host_addr":"127.0.0.1","host_port":53,"guest_addr":"10.0.2.3","guest_port":5353},)"
                   R"({"id":3,"proto":"tcp","host_addr":"0.0.0.0","host_port":9000,"guest_addr":"10.0.2.100","guest_port":90})"));
}

TEST_CASE("list_hostfwd: 1000 forwards", "[ctl][api]") {
  FakeBackend backend;
  TestApi api(backend, test_net(), nullptr);
  for (int i = 1; i <= 1000; ++i) REQUIRE(api.handle_request(add(10000 + i, i)) == R"({"return":{"id":)" + std::to_string(i) + "}}");
  const std::string reply = api.handle_request(R"({"execute":"list_hostfwd"})");
  rapidjson::Document doc;
  doc.Parse(reply.data(), reply.size());
  REQUIRE_FALSE(doc.HasParseError());
  REQUIRE(doc.IsObject());
  const auto& top = doc["entries"];
  const auto& wrapped = doc["return"]["entries"];
  REQUIRE(top.IsArray());
  REQUIRE(top.Size() == 1000);
  REQUIRE(top == wrapped);
  for (rapidjson::SizeType i = 0; i < top.Size(); ++i) {
    const int id = static_cast<int>(i) + 1;
    REQUIRE(top[i]["id"].GetInt() == id);
    REQUIRE(top[i]["host_port"].GetInt() == 10000 + id);
    REQUIRE(top[i]["guest_port"].GetInt() == id);
  }
}

TEST_CASE("remove_hostfwd", "[ctl][api]") {
  FakeBackend backend;
  TestApi api(backend, test_net(), nullptr);
  const auto bad_id = err("remove_hostfwd: bad arguments.id");
  CHECK(api.handle_request(remove(1)) == bad_id);  // empty table
  REQUIRE(api.handle_request(add(8080, 80, R"(,"host_addr":"127.0.0.1")")) == R"({"return":{"id":1}})");
  REQUIRE(api.handle_request(add(8081, 81)) == R"({"return":{"id":2}})");

  CHECK(api.handle_request(R"({"execute":"remove_hostfwd"})") == bad_id);
  CHECK(api.handle_request(R"({"execute":"remove_hostfwd","arguments":{}})") == bad_id);
  CHECK(api.handle_request(R"({"execute":"remove_hostfwd","arguments":{"id":"1"}})") == bad_id);
  CHECK(api.handle_request(R"({"execute":"remove_hostfwd","arguments":{"id":1.5}})") == bad_id);
  CHECK(api.handle_request(R"({"execute":"remove_hostfwd","arguments":{"id":0}})") == bad_id);
  CHECK(api.handle_request(R"({"execute":"remove_hostfwd","arguments":{"id":-1}})") == bad_id);
  CHECK(api.handle_request(remove(3)) == bad_id);
  CHECK(backend.removed.empty());

  // The backend refuses: the entry stays.
  backend.fail_remove = -ETIMEDOUT;
  CHECK(api.handle_request(remove(1)) == err("remove_hostfwd: slirp_remove_hostfwd failed"));
  REQUIRE(api.forwards().size() == 2);
  CHECK(api.forwards().front().first == 1);
  backend.fail_remove = 0;

  CHECK(api.handle_request(R"({"execute":"remove_hostfwd","arguments":{"id":1.0}})") == R"({"return":{}})");
  REQUIRE(backend.removed.size() == 2);
  CHECK_FALSE(backend.removed[1].udp);
  CHECK(addr4(backend.removed[1].host) == "127.0.0.1:8080");  // exactly what was added
  CHECK(addr4(backend.removed[1].guest) == "10.0.2.100:80");
  CHECK(api.handle_request(remove(1)) == bad_id);  // a second removal
  CHECK(api.handle_request(R"({"execute":"list_hostfwd"})") ==
        list_reply(R"({"id":2,"proto":"tcp","host_addr":"0.0.0.0","host_port":8081,"guest_addr":"10.0.2.100","guest_port":81})"));
  // The port is free again in the backend.
  CHECK(api.handle_request(add(8080, 80, R"(,"host_addr":"127.0.0.1")")) == R"({"return":{"id":3}})");
}

TEST_CASE("get_stats: typed counters rendered with every key of the reply's format", "[ctl][api]") {
  FakeBackend backend;
  TestApi api(backend, test_net(), nullptr);
  auto& p = backend.stats_value.pipeline;
  p.tap_reader.frames = 12;
  p.tap_reader.csum_completed = 2;
  p.rx_ring_depth = 1;
  p.slirp.input_frames = 12;
  p.slirp.fragments_dropped = 5;
  p.slirp.rx_latency = {3, 1023, 2047, {0, 0, 1, 2}};
  p.tx_ring_depth = 4;
  p.tap_writer.merged_segments = 7;
  p.tap_writer.tx_latency = {0, 0, 0, {0}};
  const std::string pipeline =
      R"({"tap_reader":{"reads":0,"frames":12,"bytes":0,"eagain":0,"errors":0,"backpressure_waits":0,"gso_frames":0,"csum_completed":2,"csum_left_partial":0},)"
      R"("rx_ring_depth":1,)"
      R"("slirp":{"loops":0,"polls":0,"wakeups":0,"input_frames":12,"input_bytes":0,"output_frames":0,"output_bytes":0,)"
      R"("tx_waits":0,"output_drops":0,"commands":0,"spins":0,"spin_hits":0,)"
      R"("rx_latency":{"count":3,"p50_ns_le":1023,"p99_ns_le":2047,"log2_buckets":[0,0,1,2]},"fragments_dropped":5},)"
      R"("tx_ring_depth":4,)"
      R"("tap_writer":{"writes":0,"frames":0,"bytes":0,"eagain":0,"errors":0,"gso_frames":0,"merged_segments":7,)"
      R"("tx_latency":{"count":0,"p50_ns_le":0,"p99_ns_le":0,"log2_buckets":[0]}})";
  CHECK(api.handle_request(R"({"execute":"get_stats"})") == R"({"return":)" + pipeline + "}}");

  // With a splice forwarder: its object comes last.
  slirpnetd::fwd::ForwarderCounts f;
  f.accepted = 3;
  f.bytes_out = 9;
  f.idle_closed = 1;
  backend.stats_value.splice = f;
  CHECK(api.handle_request(R"({"execute":"get_stats"})") ==
        R"({"return":)" + pipeline +
            R"(,"splice":{"accepted":3,"connect_failed":0,"active":0,"bytes_in":0,"bytes_out":9,"udp_flows":0,)"
            R"("udp_dropped":0,"udp_evicted":0,"accept_paused":0,"idle_closed":1}}})");
}

TEST_CASE("get_stats: a counter of the pipeline reaches the reply", "[ctl][api]") {
  // The typed path end to end: io counters -> snapshot -> the JSON the API sends.
  slirpnetd::io::PipelineStats live;
  live.slirp.fragments_dropped.add(4);
  live.rx.backpressure_waits.add(2);
  live.tx.latency.record(1500);
  slirpnetd::ctl::Stats st;
  st.pipeline = slirpnetd::io::snapshot(live, 3, 0);
  rapidjson::Document doc;
  const std::string json = slirpnetd::ctl::stats_json(st);
  doc.Parse(json.c_str());
  REQUIRE(doc.IsObject());
  CHECK(doc["slirp"]["fragments_dropped"].GetUint64() == 4);
  CHECK(doc["tap_reader"]["backpressure_waits"].GetUint64() == 2);
  CHECK(doc["rx_ring_depth"].GetUint64() == 3);
  CHECK(doc["tap_writer"]["tx_latency"]["count"].GetUint64() == 1);
  CHECK(doc["tap_writer"]["tx_latency"]["log2_buckets"].Size() == 12);  // 1500 ns: bucket 11
  CHECK_FALSE(doc.HasMember("splice"));
}

TEST_CASE("is_complete_request", "[ctl][api]") {
  CHECK_FALSE(Api::is_complete_request(""));
  CHECK_FALSE(Api::is_complete_request("  "));
  CHECK_FALSE(Api::is_complete_request(R"({"execute":)"));
  CHECK_FALSE(Api::is_complete_request(R"({"execute":"add_hostfwd","arguments":{"proto":"tcp"})"));
  CHECK_FALSE(Api::is_complete_request("{\"execute\":\"\\u12"));
  CHECK_FALSE(Api::is_complete_request("{\"execute\":\"\xc3"));  // half a UTF-8 sequence
  CHECK(Api::is_complete_request(R"({"execute":"list_hostfwd"})"));
  CHECK(Api::is_complete_request("{\"execute\":\"list_hostfwd\"}\n"));
  CHECK(Api::is_complete_request(R"({"execute":"list_hostfwd"} {"ex)"));
  CHECK(Api::is_complete_request("{\"exec\0"s));
}

TEST_CASE("every reply is a JSON object, whatever the input", "[ctl][api][fuzz]") {
  FakeBackend backend;
  TestApi api(backend, test_net(true), nullptr);
  const std::vector<std::string> seeds = {
      add(8080, 80, R"(,"host_addr":"127.0.0.1","guest_addr":"10.0.2.100")"),
      R"({"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"::1","host_port":53,"guest_port":53}})",
      R"({"execute":"list_hostfwd"})",
      remove(1),
      R"({"execute":"get_stats","arguments":{}})",
      R"({"a":[1,2.5e3,-0,true,false,null,"\u00e9\n"],"b":{"c":{}}})",
  };
  const std::string alphabet = "{}[]\":,.-+0123456789eE \\u\ttruefalsnl";
  std::mt19937 rng(12345);
  const auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  int ok = 0, errors = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string in;
    switch (i % 4) {
      case 0: {  // random bytes
        in.resize(pick(64));
        for (char& c : in) c = static_cast<char>(pick(256));
        break;
      }
      case 1:  // truncated valid requests
        in = seeds[pick(seeds.size())];
        in.resize(pick(in.size() + 1));
        break;
      case 2: {  // mutated valid requests
        in = seeds[pick(seeds.size())];
        for (std::size_t k = 0, n = 1 + pick(4); k < n; ++k) {
          const std::size_t at = pick(in.size());
          switch (pick(3)) {
            case 0: in[at] = alphabet[pick(alphabet.size())]; break;
            case 1: in.erase(at, 1); break;
            default: in.insert(at, 1, alphabet[pick(alphabet.size())]); break;
          }
        }
        break;
      }
      default:  // JSON-ish token soup
        for (std::size_t k = 0, n = pick(40); k < n; ++k) in += alphabet[pick(alphabet.size())];
    }
    const std::string reply = api.handle_request(in);
    rapidjson::Document doc;
    doc.Parse(reply.data(), reply.size());  // strict: no trailing bytes allowed
    INFO("input: " << in);
    REQUIRE_FALSE(doc.HasParseError());
    REQUIRE(doc.IsObject());
    if (doc.HasMember("error")) {
      REQUIRE(doc["error"]["desc"].IsString());
      ++errors;
    } else {
      REQUIRE((doc.HasMember("return") || doc.HasMember("entries")));
      ++ok;
    }
    Api::is_complete_request(in);
  }
  CHECK(ok > 0);  // the mutations did reach the commands
  CHECK(errors > ok);
}

TEST_CASE("add_hostfwd mode splice and proxy_protocol (slirpnetd extension)", "[ctl][api][splice]") {
  FakeBackend backend;
  TestApi api(backend, test_net(), nullptr);
  REQUIRE(api.handle_request(add(8080, 80, R"(,"mode":"splice")")) == R"({"return":{"id":1}})");
  REQUIRE(backend.added.size() == 1);
  CHECK(backend.added[0].splice);
  CHECK(!backend.added[0].proxy_protocol);
  CHECK(addr4(backend.added[0].guest) == "10.0.2.100:80");
  REQUIRE(api.handle_request(add(8081, 80, R"(,"mode":"slirp")")) == R"({"return":{"id":2}})");
  CHECK(!backend.added[1].splice);
  REQUIRE(api.handle_request(add(8082, 80, R"(,"mode":"splice","proxy_protocol":true)")) == R"({"return":{"id":3}})");
  CHECK(backend.added[2].proxy_protocol);
  // IPv6 host addresses are accepted for splice without --enable-ipv6; "" guest means "::".
  REQUIRE(api.handle_request(add(8083, 80, R"(,"mode":"splice","host_addr":"::1")")) == R"({"return":{"id":4}})");
  CHECK(addr6(backend.added[3].host) == "[::1]:8083");
  CHECK(addr6(backend.added[3].guest) == "[::]:80");
  CHECK(api.handle_request(add(8084, 80, R"(,"host_addr":"::1")")) == err("add_hostfwd: bad arguments.host_addr"));

  CHECK(api.handle_request(add(8085, 80, R"(,"mode":"fast")")) == err("add_hostfwd: bad arguments.mode"));
  CHECK(api.handle_request(add(8085, 80, R"(,"mode":1)")) == err("add_hostfwd: bad arguments.mode"));
  CHECK(api.handle_request(add(8085, 80, R"(,"proxy_protocol":true)")) == err("add_hostfwd: bad arguments.proxy_protocol"));
  CHECK(api.handle_request(add(8085, 80, R"(,"mode":"splice","proxy_protocol":"yes")")) ==
        err("add_hostfwd: bad arguments.proxy_protocol"));
  CHECK(api.handle_request(R"({"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":53,"guest_port":53,"mode":"splice","proxy_protocol":true}})") ==
        err("add_hostfwd: bad arguments.proxy_protocol"));
  CHECK(api.handle_request(add(8080, 80, R"(,"mode":"splice")")) == err("add_hostfwd: splice forward failed"));

  // Listed with "mode" (and "proxy_protocol" when set); slirp entries unchanged.
  CHECK(api.handle_request(R"({"execute":"list_hostfwd"})") ==
        list_reply(R"({"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80,"mode":"splice"},)"
                   R"({"id":2,"proto":"tcp","host_addr":"0.0.0.0","host_port":8081,"guest_addr":"10.0.2.100","guest_port":80},)"
                   R"({"id":3,"proto":"tcp","host_addr":"0.0.0.0","host_port":8082,"guest_addr":"10.0.2.100","guest_port":80,"mode":"splice","proxy_protocol":true},)"
                   R"({"id":4,"proto":"tcp","host_addr":"::1","host_port":8083,"guest_addr":"::","guest_port":80,"mode":"splice"})"));
  REQUIRE(api.handle_request(remove(1)) == R"({"return":{}})");
  CHECK(backend.removed.back().splice);
}

TEST_CASE("forward-mode splice makes splice the default", "[ctl][api][splice]") {
  FakeBackend backend;
  auto net = test_net();
  net.forward_mode = slirpnetd::config::ForwardMode::Splice;
  TestApi api(backend, net, nullptr);
  REQUIRE(api.handle_request(add(8080, 80)) == R"({"return":{"id":1}})");
  CHECK(backend.added.back().splice);
  REQUIRE(api.handle_request(add(8081, 80, R"(,"mode":"slirp")")) == R"({"return":{"id":2}})");
  CHECK(!backend.added.back().splice);
}
