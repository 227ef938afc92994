// Start-up order (each step can fail with slirp4netns's messages and exit status 1):
//   parse -> network config -> TAP via a namespace child (no thread exists yet) -> banner
//   -> sandbox: join userns -> API socket bound -> sandbox: mount ns, pivot_root, caps
//   -> signals blocked and seccomp loaded (every thread inherits both) -> slirp thread (slirp_new)
//   -> TAP writer, TAP reader, control thread -> ready-fd
// then the main thread supervises: exit-fd, SIGTERM/SIGINT/SIGHUP, the target process exiting,
// and the TAP going away all end the daemon with status 0 after an orderly stop.
// Splice forwarding (src/fwd), with --splice: its connector child is forked right after the TAP
// child, while we are still single-threaded, and joins the target's namespaces; the forwarder's
// threads start with the pipeline's.
#include "daemon/daemon.hpp"

// Under seccomp (src/ns/sandbox.cpp), the main thread after the filter: supervision (poll, the
// signalfd, the ready-fd), the pipeline's eventfds.
// #syscalls: poll read write eventfd2

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>

#include "common/unique_fd.hpp"
#include "config/options.hpp"
#include "ctl/api_server.hpp"
#include "daemon/slirp_backend.hpp"
#include "fwd/connector.hpp"
#include "fwd/forwarder.hpp"
#include "io/frame_channel.hpp"
#include "io/stats.hpp"
#include "io/tap_threads.hpp"
#include "io/vnet.hpp"
#include "io/waker.hpp"
#include "ns/join.hpp"
#include "ns/sandbox.hpp"
#include "ns/tap.hpp"
#include "slirp/slirp_thread.hpp"

namespace slirpnetd::daemon {

namespace {

// Our own diagnostics go through spdlog; slirp4netns's messages (banner, errors, exit lines) are
// printed as they are, whatever the level. The level: --log-level, else $SLIRPNETD_LOG_LEVEL, else
// warn, which is as quiet as slirp4netns in normal operation (Podman shows our stderr in its
// errors). An unknown level is refused with a message naming it: returns false.
bool init_logging(const config::Options& opts) {
  std::string name = opts.log_level;
  const char* source = "--log-level";
  if (const char* env = std::getenv("SLIRPNETD_LOG_LEVEL"); name.empty() && env != nullptr) {
    name = env;
    source = "SLIRPNETD_LOG_LEVEL";
  }
  spdlog::level::level_enum level = spdlog::level::warn;
  if (!name.empty()) {
    level = spdlog::level::from_str(name);  // anything it does not know is "off"
    if (level == spdlog::level::off && name != "off") {
      std::fprintf(stderr, "slirpnetd: %s: unknown log level \"%s\" (trace, debug, info, warn, error, critical or off)\n",
                   source, name.c_str());
      return false;
    }
  }
  auto logger = spdlog::stderr_color_mt("slirpnetd");
  logger->set_pattern("slirpnetd: %l: %v");
  logger->set_level(level);
  spdlog::set_default_logger(logger);
  return true;
}

// Offloads pay at small MTUs, where the guest would otherwise send ~45 frames per 64 KiB. At a
// large MTU the guest's frames are already that big and TSO gains nothing; what is left is
// checksum offload. With the distribution's libslirp that only moves the guest's checksum work
// into our TAP reader, which must complete every partial checksum for libslirp to verify it
// (measured at --mtu 65520: lower throughput, more daemon CPU per GB). The bundled libslirp
// takes partial checksums as they are (SlirpThread::kTakesPartialChecksums): then nobody makes a
// pass over the payload to checksum it, and offload pays at every MTU. So --offload=on means
// "where it pays".
constexpr int kOffloadMaxMtu = 32768;
bool offload_pays(const config::Options& opts) {
  return opts.offload && (slirp::SlirpThread::kTakesPartialChecksums || opts.mtu < kOffloadMaxMtu);
}

// slirp4netns's failure trail when libslirp cannot be started after the banner.
int do_slirp_failed() {
  std::fprintf(stderr, "do_slirp is exiting\ndo_slirp failed\nparent failed\n");
  return EXIT_FAILURE;
}

void write_ready(int fd) {
  if (fd < 0) return;
  ssize_t n;
  do n = ::write(fd, "1", 1);
  while (n < 0 && errno == EINTR);
  ::close(fd);
}

// Raised once from any pipeline thread that finds the TAP gone; it rings the main thread's doorbell.
class GoneSignal {
 public:
  explicit GoneSignal(io::Waker& main) : main_(main) {}
  void raise(const std::string& reason) {
    if (raised_.exchange(true)) return;
    std::fprintf(stderr, "%s: exiting\n", reason.c_str());
    main_.request_stop();
  }

 private:
  io::Waker& main_;
  std::atomic<bool> raised_{false};
};

// While it lives, stderr (fd 2) goes to a memfd; replay() copies what was written to the real
// stderr. For quiet mode: the TAP child's "sent tapfd" lines are shown only when it failed.
class StderrCapture {
 public:
  explicit StderrCapture(bool on) {
    if (!on) return;
    std::fflush(stderr);
    mem_.reset(::memfd_create("stderr", MFD_CLOEXEC));
    saved_.reset(::fcntl(2, F_DUPFD_CLOEXEC, 3));
    if (!mem_ || !saved_ || ::dup2(mem_.get(), 2) < 0) {
      mem_.reset();
      saved_.reset();
    }
  }
  ~StderrCapture() {
    if (!saved_) return;
    std::fflush(stderr);
    ::dup2(saved_.get(), 2);
  }
  void replay() {
    if (!mem_) return;
    std::fflush(stderr);
    char buf[4096];
    ssize_t n;
    off_t off = 0;
    while ((n = ::pread(mem_.get(), buf, sizeof buf, off)) > 0) {
      [[maybe_unused]] ssize_t w = ::write(saved_.get(), buf, static_cast<size_t>(n));
      off += n;
    }
  }

 private:
  UniqueFd mem_, saved_;
};

// The connector for splice forwards joins the namespaces the TAP child joined.
std::unique_ptr<fwd::Connector> start_connector(const config::Options& opts) {
  if (!opts.enable_splice) return nullptr;
  if (opts.target_type != config::TargetType::Netns || opts.netns_type == config::NetnsType::TapFd) {
    spdlog::warn("--splice needs a network namespace (pid or path mode): splice forwarding unavailable");
    return nullptr;
  }
  const ns::NamespacePaths paths = ns::target_namespaces(opts);
  auto c = fwd::Connector::start(paths.netns, paths.userns);
  if (!c) spdlog::warn("splice forwarding unavailable: the connector did not start");
  return c;
}

// Every fd we may need is available from the start: the soft RLIMIT_NOFILE goes up to the hard
// one (1024 by default otherwise, about 170 splice connections). Nothing here uses select(2).
void raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) spdlog::warn("setrlimit(RLIMIT_NOFILE): {}", std::strerror(errno));
}

}  // namespace

int run(int argc, char* argv[]) {
  std::ios::sync_with_stdio(true);
  auto parsed = config::parse_args(argc, argv, std::cout, std::cerr);
  std::cout.flush();
  if (parsed.exit_status) return *parsed.exit_status;
  return serve(parsed.options);
}

int serve(const config::Options& opts, const Hooks& hooks) {
  if (!init_logging(opts)) return EXIT_FAILURE;
  auto net = config::make_net_config(opts, std::cerr);
  if (!net) return EXIT_FAILURE;

  ::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  // A stop signal is held from here on and read from a signalfd once the pipeline runs, so one
  // that comes early (the TAP may be configured, and the caller may think us up, before we have
  // its fd) still ends in an orderly exit with status 0 instead of the default action's death.
  // The children started below inherit the mask; none of them is stopped by a signal.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // Watch the target process in pid mode: when it exits, the container is gone.
  UniqueFd target_pidfd;
  if (opts.target_type == config::TargetType::Netns && opts.netns_type == config::NetnsType::Pid)
    target_pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, opts.target_pid, 0)));

  ns::TapResult tap;
  {
    StderrCapture capture(hooks.quiet);
    tap = ns::open_tap(opts, *net, offload_pays(opts));
    if (!tap.fd) capture.replay();
  }
  if (!tap.fd) return tap.exit_status;
  std::unique_ptr<fwd::Connector> connector = start_connector(opts);
  if (!hooks.quiet) {
    config::print_banner(std::cout, opts, *net);
    std::cout.flush();
  }

  if (opts.enable_sandbox && !ns::enter_userns_for_sandbox(opts)) {
    std::fprintf(stderr, "parent failed\n");
    return EXIT_FAILURE;
  }
  std::unique_ptr<ctl::ApiServer> api;
  if (!opts.api_socket.empty()) {
    api = ctl::ApiServer::bind(opts.api_socket);
    if (!api) return do_slirp_failed();
  }
  // No fd of a directory outside the sandbox may survive pivot_root: the socket file's removal
  // goes to a helper that stays outside.
  if (api && opts.enable_sandbox && !api->move_removal_to_helper()) return do_slirp_failed();
  if (opts.enable_sandbox && !ns::create_sandbox()) {
    std::fprintf(stderr, "create_sandbox failed\n");
    return do_slirp_failed();
  }

  UniqueFd sigfd(::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!sigfd) {
    std::perror("signalfd");
    return do_slirp_failed();
  }

  // The filter goes on now, while this is the only thread: every thread started below inherits
  // it, so no frame and no API request is ever handled unfiltered.
  if (opts.enable_seccomp && !ns::enable_seccomp()) {
    std::fprintf(stderr, "enable_seccomp failed\n");
    return do_slirp_failed();
  }

  // Offloads: with a virtio-net header the guest may send 64 KiB TCP segments (TSO) and partial
  // checksums; a TAP without IFF_VNET_HDR (--offload=off, an inherited tapfd, BESS) gets none.
  const size_t vnet_hdr = io::tap_has_vnet_hdr(tap.fd.get()) ? io::kVnetHdrLen : 0;
  if (vnet_hdr && !io::enable_tap_offloads(tap.fd.get()))
    spdlog::warn("TAP offloads unavailable: {}", std::strerror(errno));

  // The pipeline. rx: TAP reader -> slirp thread; tx: slirp thread -> TAP writer.
  const size_t mtu = static_cast<size_t>(net->mtu);
  const size_t rx_slot = io::FrameChannel::slot_bytes_for_mtu(vnet_hdr ? 65535 : mtu) + vnet_hdr;
  const size_t tx_slot = io::FrameChannel::slot_bytes_for_mtu(mtu) + vnet_hdr;
  io::FrameChannel rx(io::FrameChannel::slots_for(rx_slot), rx_slot);
  io::FrameChannel tx(io::FrameChannel::slots_for(tx_slot), tx_slot);
  io::Waker slirp_waker;
  io::PipelineStats stats;
  io::Waker main_waker;  // owner: the main thread (supervision); rung when the TAP is gone
  GoneSignal gone(main_waker);
  auto on_gone = [&gone](const std::string& reason) { gone.raise(reason); };

  slirp::install_glib_log_handler();
  const auto& cpu = opts.cpu_affinity;  // reader, writer, slirp
  slirp::Tuning tuning;
  tuning.spin_us = opts.spin_us;
  tuning.tcp_buffer_max = opts.tcp_buffer_max;
  slirp::SlirpThread slirp(*net, rx, tx, slirp_waker, stats.slirp, tuning, vnet_hdr);
  if (!slirp.start(cpu[2])) {
    std::fprintf(stderr, "slirp_new failed\ncreate_slirp failed\n");
    return do_slirp_failed();
  }
  io::TapWriter writer(tap.fd.get(), vnet_hdr != 0, tx, stats.tx, on_gone);
  writer.start(cpu[1]);
  io::TapReader reader(tap.fd.get(), vnet_hdr, rx, slirp_waker, stats.rx, on_gone);
  reader.leave_partial_checksums(slirp::SlirpThread::kTakesPartialChecksums);
  reader.start(cpu[0]);
  std::unique_ptr<fwd::Forwarder> forwarder;
  if (connector) {
    try {
      forwarder = std::make_unique<fwd::Forwarder>(*connector);
    } catch (const std::exception& e) {
      spdlog::warn("splice forwarding unavailable: {}", e.what());
    }
  }
  SlirpBackend backend(slirp, stats, rx, tx);
  backend.set_forwarder(forwarder.get());
  hostfwd::Registry forwards(backend, *net);
  if (api) api->start(forwards, backend);

  spdlog::info("pipeline: TAP offloads {}, rx ring {} slots of {} bytes, tx ring {} slots of {} bytes, splice {}",
               vnet_hdr ? "on" : "off", io::FrameChannel::slots_for(rx_slot), rx_slot,
               io::FrameChannel::slots_for(tx_slot), tx_slot, forwarder ? "on" : "off");
  bool ready = true;
  if (hooks.on_ready) ready = hooks.on_ready(forwards);
  if (ready) write_ready(opts.ready_fd);

  enum { kSignal, kGone, kTarget, kExitFd };
  pollfd pfd[4] = {{sigfd.get(), POLLIN, 0}, {main_waker.fd(), POLLIN, 0}, {target_pidfd.get(), POLLIN, 0},
                   {opts.exit_fd, POLLHUP, 0}};
  for (bool done = !ready; !done;) {
    if (::poll(pfd, 4, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("poll: {}", std::strerror(errno));
      break;
    }
    if (pfd[kExitFd].revents) {
      if (!hooks.quiet) std::fprintf(stderr, "exitfd event\n");
      done = true;
    }
    if (pfd[kSignal].revents) {
      signalfd_siginfo si{};
      if (::read(sigfd.get(), &si, sizeof si) == sizeof si)
        if (!hooks.quiet)
          std::fprintf(stderr, "received signal %s: exiting\n", strsignal(static_cast<int>(si.ssi_signo)));
      done = true;
    }
    if (pfd[kTarget].revents) {
      if (!hooks.quiet) std::fprintf(stderr, "target process %d exited: exiting\n", static_cast<int>(opts.target_pid));
      done = true;
    }
    if (main_waker.stop_requested()) done = true;
  }

  // Orderly stop: no more commands, no more input, then libslirp, then the last frames out.
  if (api) api->stop();
  if (forwarder) forwarder->stop();
  reader.stop();
  slirp.stop();
  writer.stop();
  if (!hooks.quiet) std::fprintf(stderr, "do_slirp is exiting\n");
  if (opts.print_stats) std::fputs(io::stats_text(io::snapshot(stats, rx.depth(), tx.depth())).c_str(), stderr);
  api.reset();  // removes the socket file
  return ready ? EXIT_SUCCESS : EXIT_FAILURE;
}

}  // namespace slirpnetd::daemon
