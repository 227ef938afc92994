// nettool: small TCP load tools for perf/bench.sh and perf/scale.sh.
//
//   nettool serve ADDR PORT [--max-seconds S]
//       epoll echo server (one thread): echoes every byte back, closes on EOF. Serves the
//       request/response, connect/request/response and hold modes below.
//   nettool rr   ADDR PORT SECONDS [--size N] [--bind SRC]
//       one connection, ping-pong N-byte messages (default 64) for SECONDS.
//   nettool crr  ADDR PORT SECONDS [--bind SRC]
//       repeatedly: connect, send 1 byte, read it back, close.
//   nettool hold ADDR PORT COUNT SECONDS [--bind SRC] [--hold-file PATH]
//       open COUNT concurrent connections (non-blocking), verify each with a 1-byte echo,
//       write the JSON result to stdout, then keep them open for SECONDS (or until
//       PATH is removed), then close all.
//
// Every client mode prints exactly one JSON object on stdout. Times are in microseconds.
// All loops are bounded by their SECONDS argument (plus a 10 s safety margin for I/O).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

class Fd {
public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(Fd&& o) noexcept : fd_(o.release()) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = o.release();
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    int release() {
        int f = fd_;
        fd_ = -1;
        return f;
    }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_;
};

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "nettool: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(2);
}

double elapsed_s(Clock::time_point since) {
    return std::chrono::duration<double>(Clock::now() - since).count();
}

sockaddr_in make_addr(const std::string& addr, int port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) {
        std::fprintf(stderr, "nettool: bad IPv4 address '%s'\n", addr.c_str());
        std::exit(2);
    }
    return sa;
}

void raise_nofile() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Blocking connect with SO_RCVTIMEO/SO_SNDTIMEO so a stalled path cannot hang the tool.
Fd connect_to(const sockaddr_in& dst, const std::string& bind_src, int timeout_ms) {
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return fd;
    if (!bind_src.empty()) {
        sockaddr_in src = make_addr(bind_src, 0);
        if (bind(fd.get(), reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) return Fd();
    }
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&dst), sizeof dst) != 0) return Fd();
    set_nodelay(fd.get());
    return fd;
}

bool write_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

bool read_all(int fd, char* p, size_t n) {
    while (n > 0) {
        ssize_t r = ::read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= static_cast<size_t>(r);
    }
    return true;
}

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) return 0.0;
    size_t k = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return v[k];
}

struct Args {
    std::vector<std::string> pos;
    std::map<std::string, std::string> opt;
};

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 2; i < argc; ++i) {
        std::string s = argv[i];
        if (s.rfind("--", 0) == 0 && i + 1 < argc) {
            a.opt[s] = argv[++i];
        } else {
            a.pos.push_back(s);
        }
    }
    return a;
}

std::string opt(const Args& a, const std::string& k, const std::string& dflt) {
    auto it = a.opt.find(k);
    return it == a.opt.end() ? dflt : it->second;
}

// ---------------------------------------------------------------- serve
int cmd_serve(const Args& a) {
    if (a.pos.size() != 2) return 64;
    raise_nofile();
    sockaddr_in sa = make_addr(a.pos[0], std::atoi(a.pos[1].c_str()));
    double max_s = std::atof(opt(a, "--max-seconds", "86400").c_str());
    Fd lfd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int one = 1;
    setsockopt(lfd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) die("bind " + a.pos[0] + ":" + a.pos[1]);
    if (listen(lfd.get(), 65535) != 0) die("listen");
    Fd ep(epoll_create1(EPOLL_CLOEXEC));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd.get();
    epoll_ctl(ep.get(), EPOLL_CTL_ADD, lfd.get(), &ev);
    std::map<int, Fd> conns;  // owns every accepted socket
    std::vector<epoll_event> evs(1024);
    char buf[65536];
    auto start = Clock::now();
    std::fprintf(stderr, "nettool: serving on %s:%s\n", a.pos[0].c_str(), a.pos[1].c_str());
    while (elapsed_s(start) < max_s) {
        int n = epoll_wait(ep.get(), evs.data(), static_cast<int>(evs.size()), 500);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; ++i) {
            int fd = evs[static_cast<size_t>(i)].data.fd;
            if (fd == lfd.get()) {
                for (;;) {
                    int c = accept4(lfd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;  // EAGAIN, or EMFILE: retried on the next wakeup
                    set_nodelay(c);
                    epoll_event cev{};
                    cev.events = EPOLLIN | EPOLLRDHUP;
                    cev.data.fd = c;
                    epoll_ctl(ep.get(), EPOLL_CTL_ADD, c, &cev);
                    conns[c] = Fd(c);
                }
                continue;
            }
            bool close_it = false;
            for (;;) {
                ssize_t r = ::read(fd, buf, sizeof buf);
                if (r > 0) {
                    // Echo; the peer reads before sending more, so a short write is rare. Block on it.
                    int fl = fcntl(fd, F_GETFL);
                    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
                    if (!write_all(fd, buf, static_cast<size_t>(r))) close_it = true;
                    fcntl(fd, F_SETFL, fl);
                    if (close_it) break;
                    continue;
                }
                if (r == 0 || (errno != EAGAIN && errno != EINTR)) close_it = true;
                break;
            }
            if (close_it) conns.erase(fd);  // closing removes it from the epoll set
        }
    }
    return 0;
}

// ---------------------------------------------------------------- rr
int cmd_rr(const Args& a) {
    if (a.pos.size() != 3) return 64;
    sockaddr_in dst = make_addr(a.pos[0], std::atoi(a.pos[1].c_str()));
    double secs = std::atof(a.pos[2].c_str());
    size_t size = static_cast<size_t>(std::atoi(opt(a, "--size", "64").c_str()));
    Fd fd = connect_to(dst, opt(a, "--bind", ""), 5000);
    if (fd.get() < 0) {
        std::printf("{\"error\":\"connect: %s\"}\n", std::strerror(errno));
        return 1;
    }
    std::vector<char> msg(size, 'x'), back(size);
    std::vector<double> lat;
    lat.reserve(1 << 20);
    long errors = 0;
    auto start = Clock::now();
    while (elapsed_s(start) < secs) {
        auto t0 = Clock::now();
        if (!write_all(fd.get(), msg.data(), size) || !read_all(fd.get(), back.data(), size)) {
            ++errors;
            break;
        }
        lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    double el = elapsed_s(start);
    size_t n = lat.size();
    double p50 = percentile(lat, 50), p99 = percentile(lat, 99);
    std::printf("{\"transactions\":%zu,\"seconds\":%.6f,\"tps\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"errors\":%ld}\n",
                n, el, static_cast<double>(n) / el, p50, p99, errors);
    return errors ? 1 : 0;
}

// ---------------------------------------------------------------- crr
int cmd_crr(const Args& a) {
    if (a.pos.size() != 3) return 64;
    sockaddr_in dst = make_addr(a.pos[0], std::atoi(a.pos[1].c_str()));
    double secs = std::atof(a.pos[2].c_str());
    std::string src = opt(a, "--bind", "");
    std::vector<double> lat;
    long errors = 0;
    std::map<std::string, long> why;
    auto start = Clock::now();
    while (elapsed_s(start) < secs) {
        auto t0 = Clock::now();
        Fd fd = connect_to(dst, src, 3000);
        char c = 'x';
        if (fd.get() < 0) {
            ++errors;
            ++why[std::string("connect: ") + std::strerror(errno)];
            if (errors > 1000) break;
            continue;
        }
        if (!write_all(fd.get(), &c, 1) || !read_all(fd.get(), &c, 1)) {
            ++errors;
            ++why[std::string("echo: ") + std::strerror(errno)];
            if (errors > 1000) break;
            continue;
        }
        fd.reset();
        lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    double el = elapsed_s(start);
    size_t n = lat.size();
    double p50 = percentile(lat, 50), p99 = percentile(lat, 99);
    std::printf("{\"connections\":%zu,\"seconds\":%.6f,\"cps\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"errors\":%ld",
                n, el, static_cast<double>(n) / el, p50, p99, errors);
    std::printf(",\"error_kinds\":{");
    bool first = true;
    for (auto& [k, v] : why) {
        std::printf("%s\"%s\":%ld", first ? "" : ",", k.c_str(), v);
        first = false;
    }
    std::printf("}}\n");
    return n == 0 ? 1 : 0;
}

// ---------------------------------------------------------------- hold
int cmd_hold(const Args& a) {
    if (a.pos.size() != 4) return 64;
    raise_nofile();
    sockaddr_in dst = make_addr(a.pos[0], std::atoi(a.pos[1].c_str()));
    size_t count = static_cast<size_t>(std::atol(a.pos[2].c_str()));
    double hold_s = std::atof(a.pos[3].c_str());
    std::string src = opt(a, "--bind", "");
    std::string hold_file = opt(a, "--hold-file", "");
    double budget_s = std::atof(opt(a, "--budget", "120").c_str());

    enum class St { Connecting, Echoing, Ok, Failed };
    struct Conn {
        Fd fd;
        St st = St::Connecting;
    };
    std::vector<Conn> conns(count);
    std::map<std::string, long> why;
    Fd ep(epoll_create1(EPOLL_CLOEXEC));
    auto start = Clock::now();
    size_t pending = 0, opened = 0, ok = 0, failed = 0;
    std::vector<epoll_event> evs(4096);
    auto fail = [&](size_t i, const std::string& kind) {
        ++why[kind];
        conns[i].st = St::Failed;
        conns[i].fd.reset();
        ++failed;
        --pending;
    };
    // Open in waves, so the SYN backlog of the peer is not flooded all at once.
    const size_t wave = 256;
    while ((opened < count || pending > 0) && elapsed_s(start) < budget_s) {
        while (opened < count && pending < wave) {
            size_t i = opened++;
            Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
            if (fd.get() < 0) {
                ++why[std::string("socket: ") + std::strerror(errno)];
                conns[i].st = St::Failed;
                ++failed;
                continue;
            }
            if (!src.empty()) {
                sockaddr_in s = make_addr(src, 0);
                if (bind(fd.get(), reinterpret_cast<sockaddr*>(&s), sizeof s) != 0) {
                    ++why[std::string("bind: ") + std::strerror(errno)];
                    conns[i].st = St::Failed;
                    ++failed;
                    continue;
                }
            }
            int rc = connect(fd.get(), reinterpret_cast<sockaddr*>(&dst), sizeof dst);
            if (rc != 0 && errno != EINPROGRESS) {
                ++why[std::string("connect: ") + std::strerror(errno)];
                conns[i].st = St::Failed;
                ++failed;
                continue;
            }
            epoll_event ev{};
            ev.events = EPOLLOUT | EPOLLIN;
            ev.data.u64 = i;
            epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd.get(), &ev);
            conns[i].fd = std::move(fd);
            ++pending;
        }
        int n = epoll_wait(ep.get(), evs.data(), static_cast<int>(evs.size()), 200);
        for (int k = 0; k < n; ++k) {
            size_t i = evs[static_cast<size_t>(k)].data.u64;
            Conn& c = conns[i];
            if (c.st == St::Connecting) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0) {
                    fail(i, std::string("connect: ") + std::strerror(err));
                    continue;
                }
                if (!(evs[static_cast<size_t>(k)].events & EPOLLOUT)) continue;
                char ch = 'h';
                if (::write(c.fd.get(), &ch, 1) != 1) {
                    fail(i, std::string("write: ") + std::strerror(errno));
                    continue;
                }
                c.st = St::Echoing;
                epoll_event ev{};
                ev.events = EPOLLIN;
                ev.data.u64 = i;
                epoll_ctl(ep.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
            } else if (c.st == St::Echoing) {
                char ch;
                ssize_t r = ::read(c.fd.get(), &ch, 1);
                if (r == 1) {
                    c.st = St::Ok;
                    epoll_ctl(ep.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
                    ++ok;
                    --pending;
                } else if (r == 0 || errno != EAGAIN) {
                    fail(i, r == 0 ? "echo: eof" : std::string("echo: ") + std::strerror(errno));
                }
            }
        }
    }
    double el = elapsed_s(start);
    size_t timed_out = pending;
    if (timed_out) why["timeout"] += static_cast<long>(timed_out);
    std::printf("{\"requested\":%zu,\"established\":%zu,\"failed\":%zu,\"timed_out\":%zu,\"not_attempted\":%zu,"
                "\"seconds\":%.3f,\"error_kinds\":{",
                count, ok, failed, timed_out, count - opened, el);
    bool first = true;
    for (auto& [k, v] : why) {
        std::printf("%s\"%s\":%ld", first ? "" : ",", k.c_str(), v);
        first = false;
    }
    std::printf("}}\n");
    std::fflush(stdout);
    auto hold_start = Clock::now();
    while (elapsed_s(hold_start) < hold_s) {
        if (!hold_file.empty() && access(hold_file.c_str(), F_OK) != 0) break;
        poll(nullptr, 0, 100);
    }
    return ok == count ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::string cmd = argc > 1 ? argv[1] : "";
    Args a = parse(argc, argv);
    int rc = 64;
    if (cmd == "serve") rc = cmd_serve(a);
    else if (cmd == "rr") rc = cmd_rr(a);
    else if (cmd == "crr") rc = cmd_crr(a);
    else if (cmd == "hold") rc = cmd_hold(a);
    if (rc == 64) {
        std::fprintf(stderr,
                     "usage: nettool serve ADDR PORT [--max-seconds S]\n"
                     "       nettool rr ADDR PORT SECONDS [--size N] [--bind SRC]\n"
                     "       nettool crr ADDR PORT SECONDS [--bind SRC]\n"
                     "       nettool hold ADDR PORT COUNT SECONDS [--bind SRC] [--hold-file F] [--budget S]\n");
    }
    return rc;
}
