// stats: `slirpnetd stats`: parsing get_stats replies, rates and percentiles between samples, the
// two renderings, and the command against a fake daemon on a UNIX socket (a real daemon moving
// iperf3 traffic: t_stats.sh).
#include <poll.h>
#include <rapidjson/document.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "stats/client.hpp"
#include "stats/report.hpp"
#include "stats/sample.hpp"
#include "stats/stats.hpp"

using namespace slirpnetd::stats;
using slirpnetd::UniqueFd;
namespace fs = std::filesystem;

namespace {

// A get_stats reply as the daemon sends it (with --splice), with the counters scaled by `k`.
std::string reply(uint64_t k, const std::string& rx_buckets = "[0,0,0,0]", const std::string& tx_buckets = "[]") {
  auto n = [k](uint64_t v) { return std::to_string(v * k); };
  return R"({"return":{"tap_reader":{"reads":)" + n(11) + R"(,"frames":)" + n(10) + R"(,"bytes":)" + n(15000) +
         R"(,"eagain":)" + n(1) + R"(,"errors":0,"backpressure_waits":)" + n(3) + R"(,"gso_frames":)" + n(2) +
         R"(,"csum_completed":0},"rx_ring_depth":)" + std::to_string(k) + R"(,"slirp":{"loops":)" + n(100) +
         R"(,"polls":)" + n(90) + R"(,"wakeups":)" + n(80) + R"(,"input_frames":)" + n(9) + R"(,"input_bytes":)" +
         n(14000) + R"(,"output_frames":)" + n(20) + R"(,"output_bytes":)" + n(30000) + R"(,"tx_waits":)" + n(4) +
         R"(,"output_drops":)" + n(5) + R"(,"commands":1,"spins":0,"spin_hits":0,"rx_latency":{"count":0,)" +
         R"("p50_ns_le":0,"p99_ns_le":0,"log2_buckets":)" + rx_buckets + R"(}},"tx_ring_depth":7,)" +
         R"("tap_writer":{"writes":)" + n(19) + R"(,"frames":)" + n(19) + R"(,"bytes":)" + n(29000) +
         R"(,"eagain":0,"errors":)" + n(6) + R"(,"gso_frames":0,"merged_segments":0,"tx_latency":{"count":0,)" +
         R"("p50_ns_le":0,"p99_ns_le":0,"log2_buckets":)" + tx_buckets + R"(}},"splice":{"accepted":)" + n(2) +
         R"(,"connect_failed":)" + n(1) + R"(,"active":2,"bytes_in":)" + n(1000) + R"(,"bytes_out":)" + n(500) +
         R"(,"udp_flows":0,"udp_dropped":)" + n(8) + R"(,"udp_evicted":0,"accept_paused":0,"idle_closed":0}}})";
}

Sample sample(const std::string& text, uint64_t mono_ns) {
  std::string why;
  auto s = parse_reply(text, why);
  REQUIRE(s);
  s->mono_ns = mono_ns;
  return *s;
}

const Stage& stage(const Report& r, const std::string& name) {
  for (const Stage& s : r.stages)
    if (s.name == name) return s;
  FAIL("no stage " << name);
  throw;
}

struct TempDir {
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "test_stats.XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  fs::path path;
};

// A fake daemon: answers each connection, after reading the request to EOF, with the next of
// `replies`, then closes; after the last one (or when nobody connects for 5 s) it closes its
// listener too, so later connections are refused. Its thread (the only user of `listener_` and
// `requests_` once started) is joined by requests() or the destructor.
class FakeDaemon {
 public:
  FakeDaemon(const std::string& path, std::vector<std::string> replies) : replies_(std::move(replies)) {
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(listener_);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listener_.get(), 8) == 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeDaemon() {
    if (thread_.joinable()) thread_.join();
  }
  // Waits for the thread to end; the requests it read.
  std::vector<std::string> requests() {
    if (thread_.joinable()) thread_.join();
    return requests_;
  }

 private:
  void serve() {
    for (const std::string& r : replies_) {
      pollfd p{listener_.get(), POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1) break;
      UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) break;
      std::string req;
      char buf[256];
      for (ssize_t n; (n = ::read(c.get(), buf, sizeof buf)) > 0;) req.append(buf, static_cast<size_t>(n));
      requests_.push_back(req);
      [[maybe_unused]] ssize_t w = ::write(c.get(), r.data(), r.size());
    }
    listener_.reset();
  }
  std::vector<std::string> replies_;
  std::vector<std::string> requests_;
  UniqueFd listener_;
  std::thread thread_;
};

int run_stats(std::vector<const char*> args, std::string& out, std::string& err) {
  args.insert(args.begin(), "stats");
  std::ostringstream o, e;
  const int status = slirpnetd::stats::main(static_cast<int>(args.size()), const_cast<char**>(args.data()), o, e, false);
  out = o.str();
  err = e.str();
  return status;
}

}  // namespace

TEST_CASE("percentiles of a log2 histogram are bucket upper bounds", "[stats]") {
  CHECK(bucket_upper_ns(0) == 0);
  CHECK(bucket_upper_ns(1) == 1);
  CHECK(bucket_upper_ns(10) == 1023);

  Latency l = latency_of({});
  CHECK((l.count == 0 && l.p50_ns_le == 0 && l.p99_ns_le == 0 && l.max_ns_le == 0));
  l = latency_of({0, 0, 0, 0});
  CHECK((l.count == 0 && l.max_ns_le == 0));

  // 100 values: 50 in [2,4), 49 in [4,8), 1 in [16,32).
  l = latency_of({0, 0, 50, 49, 0, 1});
  CHECK(l.count == 100);
  CHECK(l.p50_ns_le == 3);   // the 50th value is in bucket 2
  CHECK(l.p99_ns_le == 7);   // the 99th in bucket 3
  CHECK(l.max_ns_le == 31);  // the highest in bucket 5

  // 1000 values: the slowest 1% (10) decide p99 only when more than 1% are slow.
  l = latency_of({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 989, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11});
  CHECK(l.p50_ns_le == 1023);
  CHECK(l.p99_ns_le == (1u << 20) - 1);
  CHECK(l.max_ns_le == (1u << 20) - 1);
  l = latency_of({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 990, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10});
  CHECK(l.p99_ns_le == 1023);
  CHECK(l.max_ns_le == (1u << 20) - 1);

  // One value of 0 ns (bucket 0).
  l = latency_of({1});
  CHECK((l.count == 1 && l.p50_ns_le == 0 && l.max_ns_le == 0));
}

TEST_CASE("differences between samples", "[stats]") {
  CHECK(counter_delta(10, 25) == 15);
  CHECK(counter_delta(10, 10) == 0);
  CHECK(counter_delta(100, 7) == 7);  // the daemon restarted: it counted 7 since
  CHECK(histogram_delta({1, 2, 3}, {1, 5, 3, 4}) == std::vector<uint64_t>{0, 3, 0, 4});
  CHECK(histogram_delta({}, {1, 2}) == std::vector<uint64_t>{1, 2});
  CHECK(histogram_delta({1, 5}, {1, 2}) == std::vector<uint64_t>{1, 2});        // restarted
  CHECK(histogram_delta({1, 0, 3}, {1, 2}) == std::vector<uint64_t>{1, 2});     // restarted
  CHECK(histogram_delta({1, 2, 0}, {1, 3}) == std::vector<uint64_t>{0, 1});     // trailing zeros trimmed
}

TEST_CASE("get_stats replies", "[stats]") {
  std::string why;
  auto s = parse_reply(reply(1), why);
  REQUIRE(s);
  CHECK(s->counter("tap_reader.frames") == 10);
  CHECK(s->counter("slirp.output_drops") == 5);
  CHECK(s->counter("rx_ring_depth") == 1);
  CHECK(s->counter("splice.bytes_in") == 1000);
  CHECK(s->counter("no.such") == 0);
  CHECK(s->histogram("slirp.rx_latency") == std::vector<uint64_t>{0, 0, 0, 0});
  CHECK(s->histogram("tap_writer.tx_latency").empty());
  CHECK(!s->has("slirp.rx_latency.log2_buckets"));

  // slirp4netns does not know get_stats: its error is passed on.
  CHECK(!parse_reply(R"({"error":{"desc":"bad request: unknown execute"}})", why));
  CHECK(why == "bad request: unknown execute");
  for (const char* bad : {"", "not json", "[]", R"({"return":1})", R"({"error":{}})"}) {
    INFO(bad);
    why.clear();
    CHECK(!parse_reply(bad, why));
    CHECK(why.empty());
  }
}

TEST_CASE("rates per stage between two samples", "[stats]") {
  // Half a second apart; the second has three times the counters: rates are 2 x 2 x (the first's).
  const Sample a = sample(reply(1, "[0,0,5,1]", "[]"), 1'000'000'000);
  Sample b = sample(reply(3, "[0,0,5,1,2,0,0,1]", "[1]"), 1'500'000'000);
  b.wall_s = 1700000000.25;
  const Report r = make_report(a, b);
  CHECK(r.interval_s == Approx(0.5));
  CHECK(r.wall_s == 1700000000.25);
  REQUIRE(r.stages.size() == 7);
  const char* order[] = {"tap_read", "rx_ring", "slirp_input", "send_packet", "tx_ring", "tap_write", "splice"};
  for (size_t i = 0; i < 7; ++i) CHECK(r.stages[i].name == order[i]);

  const Stage& tap_read = stage(r, "tap_read");
  CHECK(*tap_read.frames_per_s == Approx(40));     // (30 - 10) / 0.5
  CHECK(*tap_read.bytes_per_s == Approx(60000));   // (45000 - 15000) / 0.5
  CHECK(*tap_read.errors == 0);
  const Stage& rx_ring = stage(r, "rx_ring");
  CHECK(*rx_ring.depth == 3);                      // the latest sample's
  CHECK(*rx_ring.waits == 6);                      // 9 - 3
  CHECK(rx_ring.latency->count == 3);              // this interval's: [0,0,0,0,2,0,0,1]
  CHECK(rx_ring.latency->p50_ns_le == 15);
  CHECK(rx_ring.latency->p99_ns_le == 127);
  CHECK(rx_ring.latency->max_ns_le == 127);
  CHECK(*stage(r, "slirp_input").frames_per_s == Approx(36));
  CHECK(*stage(r, "slirp_input").bytes_per_s == Approx(56000));
  CHECK(*stage(r, "send_packet").frames_per_s == Approx(80));
  CHECK(*stage(r, "send_packet").bytes_per_s == Approx(120000));
  CHECK(*stage(r, "send_packet").drops == 10);
  const Stage& tx_ring = stage(r, "tx_ring");
  CHECK(*tx_ring.depth == 7);
  CHECK(*tx_ring.waits == 8);
  CHECK(tx_ring.latency->count == 1);
  CHECK(tx_ring.latency->max_ns_le == 0);
  CHECK(*stage(r, "tap_write").frames_per_s == Approx(76));
  CHECK(*stage(r, "tap_write").bytes_per_s == Approx(116000));
  CHECK(*stage(r, "tap_write").errors == 12);
  const Stage& splice = stage(r, "splice");
  CHECK(!splice.frames_per_s);
  CHECK(*splice.bytes_per_s == Approx(6000));  // in 4000/s + out 2000/s
  CHECK(*splice.drops == 16);
  CHECK(*splice.errors == 2);

  // The same sample twice: no time passed, no rates.
  const Report none = make_report(b, b);
  CHECK(none.interval_s == 0);
  CHECK(*stage(none, "tap_read").bytes_per_s == 0);
  CHECK(stage(none, "rx_ring").latency->count == 0);

  // Without the splice forwarder, no splice stage.
  std::string no_splice = reply(1);
  no_splice = no_splice.substr(0, no_splice.find(R"(,"splice")")) + "}}";
  CHECK(make_report(sample(no_splice, 0), sample(no_splice, 1000)).stages.size() == 6);
}

TEST_CASE("JSON lines and the table", "[stats]") {
  const Report r = make_report(sample(reply(1, "[0,0,5,1]"), 0), sample(reply(3, "[0,0,5,1,2,0,0,1]"), 500'000'000));
  const std::string line = format_json(r);
  REQUIRE(!line.empty());
  CHECK(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  rapidjson::Document d;
  d.Parse(line.c_str());
  REQUIRE(!d.HasParseError());
  CHECK(d["interval_s"].GetDouble() == Approx(0.5));
  CHECK(d["tap_read"]["bytes_per_s"].GetDouble() == Approx(60000));
  CHECK(d["tap_read"]["eagain"].IsUint64());  // counts are integers
  CHECK(d["tap_read"]["eagain"].GetUint64() == 2);
  CHECK(d["splice"]["active"].GetUint64() == 2);
  CHECK(d["tap_read"]["reads_per_s"].GetDouble() == Approx(44));
  CHECK(d["rx_ring"]["depth"].GetUint64() == 3);
  CHECK(d["rx_ring"]["latency_ns"]["p99_le"].GetUint64() == 127);
  CHECK(d["send_packet"]["drops"].GetUint64() == 10);
  CHECK(d["splice"]["bytes_in_per_s"].GetDouble() == Approx(4000));
  CHECK(d["splice"]["bytes_out_per_s"].GetDouble() == Approx(2000));
  CHECK(!d["tap_read"].HasMember("latency_ns"));

  const std::string table = format_table(r);
  INFO(table);
  CHECK(table.find("interval 0.50 s") != std::string::npos);
  CHECK(table.find("STAGE         FRAMES/S   BYTES/S  DEPTH   WAITS   DROPS      P50      P99      MAX\n") !=
        std::string::npos);
  CHECK(table.find("\ntap_read            40     60.0k      -       -       0        -        -        -\n") !=
        std::string::npos);
  CHECK(table.find("\nrx_ring              -         -      3       6       -     15ns    127ns    127ns\n") !=
        std::string::npos);
  CHECK(table.find("\nsend_packet         80      120k      -       -      10        -        -        -\n") !=
        std::string::npos);
}

TEST_CASE("the command against a fake daemon", "[stats][client]") {
  TempDir dir;
  const std::string path = dir / "api.sock";
  std::string out, err;

  SECTION("no daemon: a message naming the socket, status 1") {
    CHECK(run_stats({"--api-socket", path.c_str()}, out, err) == 1);
    CHECK(err == "slirpnetd stats: cannot connect to " + path + ": No such file or directory (is slirpnetd running with --api-socket " + path + "?)\n");
    CHECK(out.empty());
  }
  SECTION("slirp4netns: its error, status 1") {
    FakeDaemon d(path, {R"({"error":{"desc":"bad request: unknown execute"}})"});
    CHECK(run_stats({"-a", path.c_str()}, out, err) == 1);
    CHECK(err == "slirpnetd stats: " + path + " answered get_stats with an error: bad request: unknown execute (only slirpnetd has get_stats: is this slirp4netns's socket?)\n");
  }
  SECTION("not a reply") {
    FakeDaemon d(path, {"hello"});
    CHECK(run_stats({"-a", path.c_str()}, out, err) == 1);
    CHECK(err == "slirpnetd stats: unexpected reply from " + path + ": hello\n");
  }
  SECTION("a path too long for a UNIX socket") {
    const std::string long_path = "/tmp/" + std::string(110, 'x');
    CHECK(run_stats({"-a", long_path.c_str()}, out, err) == 1);
    CHECK(err.find("the API socket path is too long (>= 108 bytes)") != std::string::npos);
  }
  SECTION("two samples: one JSON line; the daemon gone at the next: status 1") {
    {
      FakeDaemon d(path, {reply(1), reply(3)});
      CHECK(run_stats({"-a", path.c_str(), "--json", "--interval", "0.05", "--count", "1"}, out, err) == 0);
      CHECK(d.requests() == std::vector<std::string>(2, R"({"execute":"get_stats"})"));
      CHECK(err.empty());
      CHECK(std::count(out.begin(), out.end(), '\n') == 1);
      rapidjson::Document doc;
      doc.Parse(out.c_str());
      REQUIRE(!doc.HasParseError());
      // 30000 bytes more in about 0.05 s (sleeps may run late, never early).
      const double rate = doc["tap_read"]["bytes_per_s"].GetDouble();
      CHECK(rate > 30000 / 0.5);
      CHECK(rate <= 30000 / 0.05 * 1.001);
      CHECK(doc["tap_read"]["bytes_per_s"].GetDouble() * doc["interval_s"].GetDouble() == Approx(30000).epsilon(0.001));
    }
    ::unlink(path.c_str());
    {
      FakeDaemon d(path, {reply(1), reply(2)});  // then it stops listening
      CHECK(run_stats({"-a", path.c_str(), "--interval", "0.2"}, out, err) == 1);
      CHECK(out.find("\ntap_read ") != std::string::npos);  // the first table
      CHECK(err == "slirpnetd stats: cannot connect to " + path + ": Connection refused (is slirpnetd running with --api-socket " + path + "?)\n");
    }
  }
  SECTION("options") {
    const std::string try_help = "\nTry 'slirpnetd stats --help'.\n";
    CHECK(run_stats({}, out, err) == 1);
    CHECK(err == "slirpnetd stats: --api-socket is required" + try_help);
    CHECK(run_stats({"-a", path.c_str(), "--interval", "0"}, out, err) == 1);
    CHECK(err == "slirpnetd stats: --interval must be a number of seconds from 0.01 to 86400, not '0'" + try_help);
    for (const char* bad : {"x", "1s", "", "nan", "inf", "1e9"}) {
      INFO(bad);
      CHECK(run_stats({"-a", path.c_str(), "-i", bad}, out, err) == 1);
    }
    CHECK(run_stats({"-a", path.c_str(), "--count=x"}, out, err) == 1);
    CHECK(err == "slirpnetd stats: --count must be a whole number, not 'x'" + try_help);
    CHECK(run_stats({"-a", path.c_str(), "-n", "-1"}, out, err) == 1);
    CHECK(run_stats({"-a", path.c_str(), "--bogus"}, out, err) == 1);
    CHECK(err == "slirpnetd stats: unknown option '--bogus'" + try_help);
    CHECK(run_stats({"-a"}, out, err) == 1);
    CHECK(err == "slirpnetd stats: option '-a' needs a value" + try_help);
    CHECK(run_stats({"-a", path.c_str(), "extra"}, out, err) == 1);
    CHECK(err == "slirpnetd stats: unexpected argument 'extra'" + try_help);
    CHECK(run_stats({"--help"}, out, err) == 0);
    CHECK(out.rfind("Usage: slirpnetd stats --api-socket=PATH", 0) == 0);
    CHECK(err.empty());
    // getopt_long's conventions: --name=value, unique prefixes, options after arguments.
    FakeDaemon d(path, {reply(1), reply(2)});
    const std::string api_arg = "--api=" + path;
    CHECK(run_stats({"--json", api_arg.c_str(), "--int", "0.05", "--cou=1"}, out, err) == 0);
    CHECK(std::count(out.begin(), out.end(), '\n') == 1);
  }
}
