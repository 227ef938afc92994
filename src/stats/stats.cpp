#include "stats/stats.hpp"

#include <getopt.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "stats/client.hpp"
#include "stats/report.hpp"

namespace slirpnetd::stats {

namespace {

// get_stats is answered by the daemon's control thread at once, whatever the traffic.
constexpr std::chrono::milliseconds kReplyTimeout{3000};
constexpr double kMinInterval = 0.01, kMaxInterval = 86400;

void print_usage(std::ostream& out) {
  out << "Usage: slirpnetd stats --api-socket=PATH [--interval=S] [--count=N] [--json]\n"
         "Show a running slirpnetd's frame pipeline, from its API socket (get_stats), every interval:\n"
         "per stage (tap_read, rx_ring, slirp_input, send_packet, tx_ring, tap_write, splice) the\n"
         "frames/s and bytes/s since the last sample, ring depths and waits, drops and errors, and\n"
         "the ring hand-off latencies (p50/p99/max, upper bounds of log2 buckets).\n"
         "\n"
         "-a, --api-socket=PATH    the daemon's API socket (its --api-socket; required)\n"
         "-i, --interval=S         seconds between samples (default=1; fractions allowed, from 0.01)\n"
         "-n, --count=N            stop after N samples (default: until interrupted)\n"
         "--json                   one JSON object per sample and line, for scripts and plotting\n"
         "-h, --help               show this help and exit\n";
}

struct Args {
  std::string socket;
  double interval = 1.0;
  uint64_t count = 0;  // 0: until interrupted
  bool json = false;
};

// The whole string as a number, or nothing.
std::optional<double> number(const char* s) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !std::isfinite(v)) return std::nullopt;
  return v;
}
std::optional<uint64_t> count_of(const char* s) {
  errno = 0;
  char* end = nullptr;
  if (*s < '0' || *s > '9') return std::nullopt;  // strtoull would take "-1" and " 1"
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0') return std::nullopt;
  return v;
}

// Parses the command line with getopt_long (as the daemon's does). Returns the exit status when
// the command must end now (help printed: 0; an error printed on `err`: 1).
std::optional<int> parse(int argc, char* argv[], Args& a, std::ostream& out, std::ostream& err) {
  static const option kLong[] = {{"api-socket", required_argument, nullptr, 'a'},
                                 {"interval", required_argument, nullptr, 'i'},
                                 {"count", required_argument, nullptr, 'n'},
                                 {"json", no_argument, nullptr, 'j'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {nullptr, 0, nullptr, 0}};
  auto fail = [&err](const std::string& message) {
    err << "slirpnetd stats: " << message << "\nTry 'slirpnetd stats --help'.\n";
    return 1;
  };
  // getopt_long permutes its argv: give it copies.
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> cargv;
  for (auto& s : args) cargv.push_back(s.data());
  cargv.push_back(nullptr);
  optind = 0;  // glibc: start a new scan
  opterr = 0;  // our messages, on `err`
  for (int c; (c = getopt_long(argc, cargv.data(), ":a:i:n:h", kLong, nullptr)) != -1;) {
    const std::string arg = cargv[static_cast<size_t>(optind - 1)];
    switch (c) {
      case 'a':
        a.socket = optarg;
        break;
      case 'i': {
        const auto v = number(optarg);
        if (!v || *v < kMinInterval || *v > kMaxInterval)
          return fail("--interval must be a number of seconds from 0.01 to 86400, not '" + std::string(optarg) + "'");
        a.interval = *v;
        break;
      }
      case 'n': {
        const auto v = count_of(optarg);
        if (!v) return fail("--count must be a whole number, not '" + std::string(optarg) + "'");
        a.count = *v;
        break;
      }
      case 'j':
        a.json = true;
        break;
      case 'h':
        print_usage(out);
        return 0;
      case ':':
        return fail("option '" + arg + "' needs a value");
      default:
        return fail("unknown option '" + arg + "'");
    }
  }
  if (optind < argc) return fail("unexpected argument '" + std::string(cargv[static_cast<size_t>(optind)]) + "'");
  if (a.socket.empty()) return fail("--api-socket is required");
  return std::nullopt;
}

void sleep_until(uint64_t mono_ns) {
  timespec ts{static_cast<time_t>(mono_ns / 1000000000u), static_cast<long>(mono_ns % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

}  // namespace

int main(int argc, char* argv[], std::ostream& out, std::ostream& err, bool out_is_terminal) {
  Args a;
  if (auto status = parse(argc, argv, a, out, err)) return *status;

  std::string error;
  auto prev = get_stats(a.socket, kReplyTimeout, error);
  if (!prev) {
    err << "slirpnetd stats: " << error << '\n';
    return 1;
  }
  const uint64_t start = prev->mono_ns;
  const auto step = static_cast<uint64_t>(std::llround(a.interval * 1e9));
  for (uint64_t n = 1; a.count == 0 || n <= a.count; ++n) {
    sleep_until(start + n * step);  // a fixed cadence: the time get_stats takes does not add up
    auto cur = get_stats(a.socket, kReplyTimeout, error);
    if (!cur) {
      err << "slirpnetd stats: " << error << '\n';
      return 1;
    }
    const Report r = make_report(*prev, *cur);
    if (a.json) {
      out << format_json(r);
    } else {
      if (out_is_terminal) out << "\033[H\033[2J";  // redraw in place, like top
      else if (n > 1) out << '\n';
      out << format_table(r);
    }
    out.flush();
    if (!out) return 1;
    prev = std::move(cur);
  }
  return 0;
}

int main(int argc, char* argv[]) { return main(argc, argv, std::cout, std::cerr, ::isatty(1) == 1); }

}  // namespace slirpnetd::stats
