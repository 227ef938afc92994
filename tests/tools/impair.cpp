// tests/tools/impair.cpp: a stand-in for netem (loss, duplication, reordering, delay) built on
// NFQUEUE, for kernels without sch_netem. tests/integration/t_tcp_netem.sh uses it.
//
//   impair --queue N [--loss P] [--duplicate P] [--reorder P] [--delay-ms D] [--reorder-ms R]
//          [--corrupt P] [--seed S] [--mark M] [--stats FILE] [--ready FILE]
//
// It binds NFQUEUE number N in the network namespace it runs in (iptables rules `-j NFQUEUE
// --queue-num N` pick the packets) and gives every queued packet a verdict of its own:
//   - loss:      with probability P, NF_DROP at once;
//   - delay:     otherwise NF_ACCEPT D ms after the packet arrived;
//   - reorder:   with probability P, R ms later still (default 3), so that the packets queued
//                meanwhile overtake it (the kernel reinjects each packet when its verdict is
//                issued, so the verdict order is the order on the wire);
//   - duplicate: with probability P, a copy of the packet is sent through a raw socket right after
//                its verdict, with socket mark M (default 0x494d50): the iptables rules must
//                exclude that mark (`-m mark ! --mark M`) or the copy is queued again. NFQUEUE
//                itself cannot duplicate a packet (one verdict per packet, and NF_REPEAT only
//                re-runs the hook on the same packet); iptables' TEE can, but only towards a
//                gateway, so not into the local stack for packets coming in, and its copies
//                would go out undelayed and uncounted;
//   - corrupt:   with probability P, one byte of an IPv4 TCP segment's payload is flipped and
//                its checksum fixed up, so the receiver accepts the bad byte: only for showing
//                that a test catches corrupted data (default 0).
// One thread: ppoll() on the queue's netlink socket and a signalfd, with a timeout to the next
// verdict due; held packets sit in a min-heap ordered by (due time, arrival). The random draws
// are four per packet whatever the outcome, so with a fixed --seed the fate of the k-th packet
// is fixed.
//
// Lifetime: until SIGTERM or SIGINT, or until its parent dies (PR_SET_PDEATHSIG). On the way out
// it accepts the packets it still holds and writes its counters to --stats, one "name value" a
// line: seen, dropped, delayed (accepted no earlier than D ms after arrival), held (picked for
// reordering), reordered (accepted after a packet that arrived later: an overtake really
// happened), duplicated, corrupted, uncopied (picked for a copy but longer than the 65531 bytes
// NFQUEUE copies: passed on as they are), errors (failed verdicts or copies), delay_us_mean,
// delay_us_max, and the kernel's own drops for this queue (kernel_queue_dropped: queue full;
// kernel_user_dropped: the netlink socket overran). No --queue-bypass: while no impair listens on
// the queue, its packets are dropped, never passed on unimpaired; whoever adds the rules removes
// them before stopping impair.
//
// Needs CAP_NET_ADMIN in the namespace's user namespace (nfnetlink_queue, SO_MARK, raw sockets).
// Links libnetfilter_queue (GPL-2.0-or-later); a test tool, never installed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int queue = -1;
  double loss = 0;
  double duplicate = 0;
  double reorder = 0;
  double corrupt = 0;
  double delay_ms = 0;
  double reorder_ms = 3;
  uint64_t seed = 1;
  uint32_t mark = 0x494d50;  // "IMP"
  std::string stats_path;
  std::string ready_path;
};

struct Counters {
  uint64_t seen = 0;
  uint64_t dropped = 0;
  uint64_t delayed = 0;
  uint64_t held = 0;
  uint64_t reordered = 0;
  uint64_t duplicated = 0;
  uint64_t corrupted = 0;
  uint64_t uncopied = 0;
  uint64_t errors = 0;
  uint64_t accepted = 0;
  uint64_t delay_us_total = 0;
  uint64_t delay_us_max = 0;
};

// A packet waiting for its verdict.
struct Held {
  Clock::time_point due;
  uint64_t seq;  // arrival order
  Clock::time_point arrived;
  uint32_t id;  // the kernel's packet id, for the verdict
  bool duplicate;
  bool corrupted;
  std::vector<uint8_t> data;  // the packet, when it is duplicated or corrupted
};

// std::push_heap/pop_heap build a max-heap: "later" is "less", so the earliest is on top.
bool later(const Held& a, const Held& b) {
  return a.due != b.due ? a.due > b.due : a.seq > b.seq;
}

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) noexcept : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// True when P holds a whole IPv4 or IPv6 packet (its length field says no more).
bool whole_packet(const std::vector<uint8_t>& p) {
  if (p.size() >= 20 && (p[0] >> 4) == 4) return p.size() >= static_cast<size_t>(p[2] << 8 | p[3]);
  if (p.size() >= 40 && (p[0] >> 4) == 6) return p.size() >= 40 + static_cast<size_t>(p[4] << 8 | p[5]);
  return false;
}

// Flips the first payload byte of an IPv4 TCP segment and updates the TCP checksum to match
// (RFC 1624: HC' = ~(~HC + ~m + m') over the 16-bit word m that holds the byte). False when the
// packet is not a TCP segment with payload.
bool corrupt_tcp_payload(std::vector<uint8_t>& p) {
  if (p.size() < 20 || (p[0] >> 4) != 4 || p[9] != IPPROTO_TCP) return false;
  const size_t ihl = static_cast<size_t>(p[0] & 0x0f) * 4;
  const size_t total = std::min(p.size(), static_cast<size_t>(p[2] << 8 | p[3]));
  const bool fragment = ((p[6] & 0x3f) | p[7]) != 0;  // MF or an offset: not a whole segment
  if (fragment || ihl < 20 || total < ihl + 20) return false;
  uint8_t* tcp = p.data() + ihl;
  const size_t doff = static_cast<size_t>(tcp[12] >> 4) * 4;
  if (doff < 20 || total <= ihl + doff) return false;
  // doff is even, so the first payload byte is the high byte of a 16-bit word of the segment.
  uint8_t* byte = tcp + doff;
  const uint32_t old_word = static_cast<uint32_t>(byte[0] << 8 | (ihl + doff + 1 < total ? byte[1] : 0));
  *byte ^= 0xff;
  const uint32_t new_word = old_word ^ 0xff00;
  uint32_t sum = static_cast<uint16_t>(~(tcp[16] << 8 | tcp[17])) + (~old_word & 0xffff) + new_word;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  const uint16_t check = static_cast<uint16_t>(~sum);
  tcp[16] = static_cast<uint8_t>(check >> 8);
  tcp[17] = static_cast<uint8_t>(check & 0xff);
  return true;
}

class Impairer {
 public:
  explicit Impairer(const Options& opt);
  ~Impairer();
  Impairer(const Impairer&) = delete;
  Impairer& operator=(const Impairer&) = delete;

  // Runs until SIGTERM/SIGINT (or the parent's death), then accepts what it still holds.
  void run(int signal_fd);
  void write_stats(const std::string& path) const;

 private:
  static int on_packet(nfq_q_handle* qh, nfgenmsg* msg, nfq_data* nfa, void* self);
  void handle(nfq_data* nfa);
  void release(Held& h, Clock::time_point now);
  void release_due(Clock::time_point now);
  void verdict(uint32_t id, uint32_t verdict, const std::vector<uint8_t>* data);
  void send_copy(const std::vector<uint8_t>& p);
  bool draw(double p) { return uniform_(rng_) < p; }

  Options opt_;
  nfq_handle* h_ = nullptr;
  nfq_q_handle* qh_ = nullptr;
  UniqueFd raw4_;
  UniqueFd raw6_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  std::vector<Held> heap_;
  uint64_t next_seq_ = 0;
  uint64_t max_released_seq_ = 0;
  bool released_any_ = false;
  Counters c_;
};

Impairer::Impairer(const Options& opt)
    : opt_(opt),
      raw4_(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW)),
      raw6_(::socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW)),  // implies IPV6_HDRINCL
      rng_(opt.seed) {
  if (opt_.duplicate > 0) {
    if (raw4_.get() < 0 || raw6_.get() < 0) throw_errno("socket(SOCK_RAW, IPPROTO_RAW)");
    for (int fd : {raw4_.get(), raw6_.get()}) {
      if (::setsockopt(fd, SOL_SOCKET, SO_MARK, &opt_.mark, sizeof opt_.mark) < 0) throw_errno("setsockopt(SO_MARK)");
    }
  }
  h_ = nfq_open();
  if (!h_) throw_errno("nfq_open");
  qh_ = nfq_create_queue(h_, static_cast<uint16_t>(opt_.queue), &Impairer::on_packet, this);
  if (!qh_) throw_errno("nfq_create_queue " + std::to_string(opt_.queue) + " (is another process bound to it?)");
  // Only copies need the packet's bytes; the rest needs its id alone.
  const bool copy = opt_.duplicate > 0 || opt_.corrupt > 0;
  if (nfq_set_mode(qh_, copy ? NFQNL_COPY_PACKET : NFQNL_COPY_META, 0xffff) < 0) throw_errno("nfq_set_mode");
  // Held packets stay in the kernel's queue until their verdict: room for a few MiB in flight
  // per connection at 1500-byte packets (the default, 1024, would drop at high rates).
  if (nfq_set_queue_maxlen(qh_, 65536) < 0) throw_errno("nfq_set_queue_maxlen");
  // A socket buffer the kernel cannot append to drops the packet (kernel_user_dropped).
  const int fd = nfq_fd(h_);
  const int rcvbuf = 32 << 20;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) throw_errno("fcntl(O_NONBLOCK)");
}

Impairer::~Impairer() {
  if (qh_) nfq_destroy_queue(qh_);
  if (h_) nfq_close(h_);
}

int Impairer::on_packet(nfq_q_handle*, nfgenmsg*, nfq_data* nfa, void* self) {
  static_cast<Impairer*>(self)->handle(nfa);
  return 0;
}

void Impairer::handle(nfq_data* nfa) {
  const nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfa);
  if (!ph) return;
  const uint32_t id = ntohl(ph->packet_id);
  const Clock::time_point now = Clock::now();
  ++c_.seen;
  // Always four draws, so that the k-th packet's fate depends on the seed alone.
  const bool lose = draw(opt_.loss);
  const bool dup = draw(opt_.duplicate);
  const bool hold = draw(opt_.reorder);
  const bool bad = draw(opt_.corrupt);
  if (lose) {
    ++c_.dropped;
    verdict(id, NF_DROP, nullptr);
    return;
  }
  Held h{now, next_seq_++, now, id, dup, false, {}};
  const auto ms = [](double v) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(v));
  };
  h.due += ms(opt_.delay_ms);
  if (hold) {
    ++c_.held;
    h.due += ms(opt_.reorder_ms);
  }
  if (dup || bad) {
    unsigned char* payload = nullptr;
    const int len = nfq_get_payload(nfa, &payload);
    if (len > 0) h.data.assign(payload, payload + len);
    if (whole_packet(h.data)) {
      if (bad) h.corrupted = corrupt_tcp_payload(h.data);
    } else {
      // The kernel copies at most 65531 bytes (NFQNL_MAX_COPY_RANGE): a full 64 KiB packet on
      // lo arrives cut short, and a cut copy is no copy. It passes unduplicated, counted.
      ++c_.uncopied;
      h.duplicate = false;
      h.data.clear();
    }
  }
  heap_.push_back(std::move(h));
  std::push_heap(heap_.begin(), heap_.end(), later);
}

void Impairer::verdict(uint32_t id, uint32_t v, const std::vector<uint8_t>* data) {
  const int rc = data ? nfq_set_verdict(qh_, id, v, static_cast<uint32_t>(data->size()), data->data())
                      : nfq_set_verdict(qh_, id, v, 0, nullptr);
  if (rc < 0) ++c_.errors;
}

void Impairer::send_copy(const std::vector<uint8_t>& p) {
  if (p.empty()) {
    ++c_.errors;
    return;
  }
  ssize_t n = -1;
  if ((p[0] >> 4) == 4 && p.size() >= 20) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    std::memcpy(&to.sin_addr, p.data() + 16, 4);
    n = ::sendto(raw4_.get(), p.data(), p.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  } else if ((p[0] >> 4) == 6 && p.size() >= 40) {
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    std::memcpy(&to.sin6_addr, p.data() + 24, 16);
    n = ::sendto(raw6_.get(), p.data(), p.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  }
  if (n == static_cast<ssize_t>(p.size())) {
    ++c_.duplicated;
  } else {
    ++c_.errors;
  }
}

void Impairer::release(Held& h, Clock::time_point now) {
  verdict(h.id, NF_ACCEPT, h.corrupted ? &h.data : nullptr);
  ++c_.accepted;
  if (h.corrupted) ++c_.corrupted;
  const auto us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now - h.arrived).count());
  c_.delay_us_total += us;
  c_.delay_us_max = std::max(c_.delay_us_max, us);
  if (opt_.delay_ms > 0 && static_cast<double>(us) >= opt_.delay_ms * 1000) ++c_.delayed;
  if (released_any_ && h.seq < max_released_seq_) ++c_.reordered;
  max_released_seq_ = released_any_ ? std::max(max_released_seq_, h.seq) : h.seq;
  released_any_ = true;
  if (h.duplicate) send_copy(h.data);
}

void Impairer::release_due(Clock::time_point now) {
  while (!heap_.empty() && heap_.front().due <= now) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    Held h = std::move(heap_.back());
    heap_.pop_back();
    release(h, now);
  }
}

void Impairer::run(int signal_fd) {
  const int fd = nfq_fd(h_);
  // One netlink message per packet, up to 64 KiB of packet plus its attributes.
  std::vector<char> buf(0x10000 + 4096);
  for (;;) {
    release_due(Clock::now());
    timespec timeout{};
    timespec* tp = nullptr;
    if (!heap_.empty()) {
      const auto wait = std::max(heap_.front().due - Clock::now(), Clock::duration::zero());
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
      timeout.tv_sec = static_cast<time_t>(ns / 1000000000);
      timeout.tv_nsec = static_cast<long>(ns % 1000000000);
      tp = &timeout;
    }
    pollfd fds[2] = {{fd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    if (::ppoll(fds, 2, tp, nullptr) < 0) {
      if (errno == EINTR) continue;
      throw_errno("ppoll");
    }
    if (fds[1].revents) break;
    if (!fds[0].revents) continue;
    // Drain the socket, issuing the verdicts that fall due meanwhile.
    for (;;) {
      const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        // ENOBUFS: the socket overran; the kernel dropped those packets (kernel_user_dropped).
        if (errno == ENOBUFS) {
          ++c_.errors;
          continue;
        }
        throw_errno("recv(nfqueue)");
      }
      nfq_handle_packet(h_, buf.data(), static_cast<int>(n));
      release_due(Clock::now());
    }
  }
  // Stopping: whoever queued packets here has removed the rules; let the rest through.
  const Clock::time_point now = Clock::now();
  std::sort(heap_.begin(), heap_.end(), [](const Held& a, const Held& b) { return later(b, a); });
  for (Held& h : heap_) release(h, now);
  heap_.clear();
}

// The kernel's counters for our queue, from /proc/net/netfilter/nfnetlink_queue (this netns):
// queue_number peer_portid queue_total copy_mode copy_range queue_dropped user_dropped ...
std::pair<uint64_t, uint64_t> kernel_drops(int queue) {
  std::ifstream in("/proc/net/netfilter/nfnetlink_queue");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    uint64_t num, portid, total, mode, range, queue_dropped, user_dropped;
    if ((f >> num >> portid >> total >> mode >> range >> queue_dropped >> user_dropped) &&
        num == static_cast<uint64_t>(queue)) {
      return {queue_dropped, user_dropped};
    }
  }
  return {0, 0};
}

void Impairer::write_stats(const std::string& path) const {
  const auto [queue_dropped, user_dropped] = kernel_drops(opt_.queue);
  std::ostringstream out;
  out << "seen " << c_.seen << "\ndropped " << c_.dropped << "\ndelayed " << c_.delayed << "\nheld " << c_.held
      << "\nreordered " << c_.reordered << "\nduplicated " << c_.duplicated << "\ncorrupted " << c_.corrupted
      << "\nuncopied " << c_.uncopied << "\nerrors " << c_.errors << "\ndelay_us_mean " << (c_.accepted ? c_.delay_us_total / c_.accepted : 0)
      << "\ndelay_us_max " << c_.delay_us_max << "\nkernel_queue_dropped " << queue_dropped
      << "\nkernel_user_dropped " << user_dropped << "\n";
  if (path.empty()) {
    std::fputs(out.str().c_str(), stdout);
    return;
  }
  // Whole or not at all: written aside, then renamed over FILE.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << out.str();
    if (!f.flush()) throw std::runtime_error("writing " + tmp + " failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) < 0) throw_errno("rename " + tmp);
}

double probability(const char* name, const char* arg) {
  char* end = nullptr;
  const double v = std::strtod(arg, &end);
  if (end == arg || *end != '\0' || !(v >= 0 && v <= 1)) {
    throw std::invalid_argument(std::string("--") + name + " wants a probability in [0, 1], not '" + arg + "'");
  }
  return v;
}

double milliseconds(const char* name, const char* arg) {
  char* end = nullptr;
  const double v = std::strtod(arg, &end);
  if (end == arg || *end != '\0' || !(v >= 0 && v <= 10000)) {
    throw std::invalid_argument(std::string("--") + name + " wants milliseconds in [0, 10000], not '" + arg + "'");
  }
  return v;
}

uint64_t number(const char* name, const char* arg) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(arg, &end, 0);
  if (end == arg || *end != '\0' || errno != 0 || arg[0] == '-') {
    throw std::invalid_argument(std::string("--") + name + " wants a number, not '" + arg + "'");
  }
  return v;
}

const char kUsage[] =
    "usage: impair --queue N [--loss P] [--duplicate P] [--reorder P] [--delay-ms D]\n"
    "              [--reorder-ms R] [--corrupt P] [--seed S] [--mark M] [--stats FILE] [--ready FILE]\n";

Options parse(int argc, char** argv) {
  static const option kLong[] = {
      {"queue", required_argument, nullptr, 'q'},     {"loss", required_argument, nullptr, 'l'},
      {"duplicate", required_argument, nullptr, 'd'}, {"reorder", required_argument, nullptr, 'r'},
      {"delay-ms", required_argument, nullptr, 'D'},  {"reorder-ms", required_argument, nullptr, 'R'},
      {"corrupt", required_argument, nullptr, 'c'},   {"seed", required_argument, nullptr, 's'},
      {"mark", required_argument, nullptr, 'm'},      {"stats", required_argument, nullptr, 'S'},
      {"ready", required_argument, nullptr, 'y'},     {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0}};
  Options o;
  int c;
  while ((c = getopt_long(argc, argv, "", kLong, nullptr)) != -1) {
    switch (c) {
      case 'q': {
        const uint64_t q = number("queue", optarg);
        if (q > 65535) throw std::invalid_argument("--queue wants 0..65535");
        o.queue = static_cast<int>(q);
        break;
      }
      case 'l': o.loss = probability("loss", optarg); break;
      case 'd': o.duplicate = probability("duplicate", optarg); break;
      case 'r': o.reorder = probability("reorder", optarg); break;
      case 'c': o.corrupt = probability("corrupt", optarg); break;
      case 'D': o.delay_ms = milliseconds("delay-ms", optarg); break;
      case 'R': o.reorder_ms = milliseconds("reorder-ms", optarg); break;
      case 's': o.seed = number("seed", optarg); break;
      case 'm': {
        const uint64_t m = number("mark", optarg);
        if (m == 0 || m > 0xffffffff) throw std::invalid_argument("--mark wants a non-zero 32-bit value");
        o.mark = static_cast<uint32_t>(m);
        break;
      }
      case 'S': o.stats_path = optarg; break;
      case 'y': o.ready_path = optarg; break;
      case 'h': std::fputs(kUsage, stdout); std::exit(0);
      default: throw std::invalid_argument("bad command line");
    }
  }
  if (optind != argc) throw std::invalid_argument(std::string("unexpected argument '") + argv[optind] + "'");
  if (o.queue < 0) throw std::invalid_argument("--queue is required");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  try {
    opt = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "impair: %s\n%s", e.what(), kUsage);
    return 2;
  }
  try {
    // SIGTERM, SIGINT and the parent's death (delivered as SIGTERM) all arrive on the signalfd.
    const pid_t parent = ::getppid();
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    if (::sigprocmask(SIG_BLOCK, &stop, nullptr) < 0) throw_errno("sigprocmask");
    if (::prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) throw_errno("prctl(PR_SET_PDEATHSIG)");
    if (::getppid() != parent) return 0;  // the parent died before the prctl
    const UniqueFd signal_fd(::signalfd(-1, &stop, SFD_CLOEXEC));
    if (signal_fd.get() < 0) throw_errno("signalfd");

    Impairer impairer(opt);
    if (!opt.ready_path.empty()) {
      std::ofstream(opt.ready_path) << "ready\n";
    }
    impairer.run(signal_fd.get());
    impairer.write_stats(opt.stats_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "impair: %s\n", e.what());
    return 1;
  }
  return 0;
}
