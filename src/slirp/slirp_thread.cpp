#include "slirp/slirp_thread.hpp"

// Under seccomp (src/ns/sandbox.cpp): this thread's loop, and what libslirp does for the guest:
// sockets of every kind (TCP, UDP, ICMP datagram sockets), FIONREAD, and reading
// /etc/resolv.conf for the DNS forwarder.
// #syscalls: poll read write eventfd2
// #syscalls: socket bind listen connect accept accept4 getsockname getpeername getsockopt setsockopt
// #syscalls: sendto recvfrom sendmsg recvmsg shutdown ioctl fcntl openat newfstatat fstat lseek

#include "slirp/poll_events.hpp"

#include <glib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/bounded_call.hpp"
#include "common/clock.hpp"
#include "io/tap_threads.hpp"
#include "io/vnet.hpp"

namespace slirpnetd::slirp {

namespace {

void glib_log(const gchar* domain, GLogLevelFlags level, const gchar* message, gpointer) {
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
    spdlog::error("{}: {}", domain ? domain : "glib", message);
  else if (level & G_LOG_LEVEL_WARNING)
    spdlog::warn("{}: {}", domain ? domain : "glib", message);
  else
    spdlog::debug("{}: {}", domain ? domain : "glib", message);
}

}  // namespace

void install_glib_log_handler() {
  g_log_set_handler("Slirp", static_cast<GLogLevelFlags>(G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION),
                    glib_log, nullptr);
}

SlirpThread::SlirpThread(const config::NetConfig& net, io::FrameChannel& rx, io::FrameChannel& tx, io::Waker& waker,
                         io::SlirpStats& stats, Tuning tuning, size_t tx_headroom)
    : net_(net), rx_(rx), tx_(tx), waker_(waker), stats_(stats), tuning_(tuning), tx_headroom_(tx_headroom) {
  callbacks_.send_packet = cb_send_packet;
  callbacks_.guest_error = cb_guest_error;
  callbacks_.clock_get_ns = cb_clock_get_ns;
  callbacks_.timer_new = cb_timer_new;
  callbacks_.timer_free = cb_timer_free;
  callbacks_.timer_mod = cb_timer_mod;
  callbacks_.register_poll_fd = cb_register_poll_fd;
  callbacks_.unregister_poll_fd = cb_unregister_poll_fd;
  callbacks_.notify = cb_notify;
  callbacks_.init_completed = cb_init_completed;
  callbacks_.timer_new_opaque = cb_timer_new_opaque;
  if (net.outbound4) outbound4_ = *net.outbound4;
  if (net.outbound6) outbound6_ = *net.outbound6;
  pfds_.reserve(256);
}

bool SlirpThread::start(int cpu) {
  std::promise<bool> created;
  auto result = created.get_future();
  thread_ = std::thread([this, &created] { run(created); });
  io::name_and_place(thread_, "slirpnetd-slirp", cpu);
  if (result.get()) return true;
  thread_.join();
  return false;
}

void SlirpThread::stop() {
  if (!thread_.joinable()) return;
  waker_.request_stop();
  thread_.join();
}

void SlirpThread::post(Command cmd) {
  commands_.enqueue(std::move(cmd));
  waker_.notify();
}

int SlirpThread::call(std::function<int(Slirp*)> task, std::chrono::milliseconds timeout) {
  return bounded_call<Slirp*>([this](Command fn) { post(std::move(fn)); }, std::move(task), timeout);
}

void SlirpThread::run(std::promise<bool>& created) {
  SlirpConfig cfg{};
  cfg.version = 4;
  cfg.restricted = 0;
  cfg.in_enabled = true;
  cfg.vnetwork = net_.network;
  cfg.vnetmask = net_.netmask;
  cfg.vhost = net_.gateway;
  cfg.vdhcp_start = net_.dhcp_start;
  cfg.vnameserver = net_.dns;
  cfg.in6_enabled = net_.enable_ipv6;
  cfg.vprefix_addr6 = net_.prefix6;
  cfg.vprefix_len = static_cast<uint8_t>(net_.prefix6_len);
  cfg.vhost6 = net_.gateway6;
  cfg.vnameserver6 = net_.dns6;
  cfg.if_mtu = static_cast<size_t>(net_.mtu);
  cfg.if_mru = static_cast<size_t>(net_.mtu);
  cfg.disable_host_loopback = net_.disable_host_loopback;
  cfg.enable_emu = false;
  cfg.outbound_addr = net_.outbound4 ? &outbound4_ : nullptr;
  cfg.outbound_addr6 = net_.outbound6 ? &outbound6_ : nullptr;
  cfg.disable_dns = net_.disable_dns;
  cfg.disable_dhcp = false;

  slirp_ = slirp_new(&cfg, &callbacks_, this);
#if SLIRPNETD_LIBSLIRP_BUNDLED
  if (slirp_ && tuning_.tcp_buffer_max) slirp_set_tcp_buffer_max(slirp_, tuning_.tcp_buffer_max);
#endif
  created.set_value(slirp_ != nullptr);
  if (!slirp_) return;

  while (!waker_.stop_requested()) {
    stats_.loops.add();
    pfds_.clear();
    pfds_.push_back({waker_.fd(), POLLIN, 0});
    uint32_t slirp_timeout = UINT32_MAX;
    slirp_pollfds_fill(slirp_, &slirp_timeout, cb_add_poll, this);
    int timeout = poll_timeout_ms(slirp_timeout);

    int n = 0;
    if (timeout != 0 && want_spin()) {
      // Busy-poll everything this thread waits for (input ring's eventfd and libslirp's sockets)
      // for a while before sleeping: a reply often follows within microseconds, and waking a
      // sleeping thread costs more than that.
      const int64_t until = now_ns() + int64_t{tuning_.spin_us} * 1000;
      stats_.spins.add();
      do {
        n = ::poll(pfds_.data(), pfds_.size(), 0);
        if (n == 0) sched_yield();  // a TAP thread woken on this CPU runs now, not after the spin
      } while (n == 0 && rx_.depth() == 0 && now_ns() < until);
      if (n != 0 || rx_.depth() > 0) stats_.spin_hits.add();
      // Frames seen on the ring are drained below even before their eventfd signal lands.
      if (n == 0 && rx_.depth() == 0) n = ::poll(pfds_.data(), pfds_.size(), timeout);
    } else {
      n = ::poll(pfds_.data(), pfds_.size(), timeout);
    }
    stats_.polls.add();
    if (n < 0 && errno != EINTR) spdlog::warn("slirp thread: poll: {}", std::strerror(errno));
    slirp_pollfds_poll(slirp_, n < 0, cb_get_revents, this);

    if (n > 0 && (pfds_[0].revents & POLLIN)) {
      waker_.consume();  // before draining: see io/waker.hpp
      stats_.wakeups.add();
    }
    drain_input();
    run_commands();
    fire_timers();
  }

  slirp_cleanup(slirp_);
  slirp_ = nullptr;
  timers_.clear();
}

int SlirpThread::poll_timeout_ms(uint32_t slirp_timeout) const {
  int64_t t = slirp_timeout == UINT32_MAX ? -1 : int64_t{slirp_timeout};
  const int64_t now = now_ms();
  for (const auto& timer : timers_) {
    if (timer->expire_ms < 0) continue;
    const int64_t d = std::max<int64_t>(0, timer->expire_ms - now);
    t = t < 0 ? d : std::min(t, d);
  }
  return static_cast<int>(std::min<int64_t>(t, 60000));
}

void SlirpThread::input(const io::Frame& f) {
  const uint32_t len = f.len - f.offset;
#if SLIRPNETD_LIBSLIRP_BUNDLED
  // A frame whose virtio-net header says its checksum is partial (left so by the TAP reader: see
  // kTakesPartialChecksums) or already verified: libslirp need not verify it.
  int flags = 0;
  if (f.offset == io::kVnetHdrLen &&
      (f.data[offsetof(io::VnetHdr, flags)] & (io::VnetHdr::kNeedsCsum | io::VnetHdr::kDataValid)))
    flags = SLIRP_INPUT_CSUM_VALID;
  slirp_input_flags(slirp_, f.data + f.offset, static_cast<int>(len), flags);  // copies into an mbuf
#else
  slirp_input(slirp_, f.data + f.offset, static_cast<int>(len));  // copies into an mbuf
#endif
}

void SlirpThread::drain_input() {
  int n = 0;
  for (; n < tuning_.input_batch; ++n) {
    io::Frame* f = rx_.try_pop();
    if (!f) break;
    const uint32_t len = f->len - f->offset;
    stats_.latency.record(static_cast<uint64_t>(now_ns() - f->stamp_ns));  // the hand-off: ring wait + wake-up
    if (kGuardFragments) {
      fragments_.input(f->data + f->offset, len, now_ms(), [this](const uint8_t* frame, size_t frame_len) {
        slirp_input(slirp_, frame, static_cast<int>(frame_len));  // copies into an mbuf
      });
    } else {
      input(*f);
    }
    stats_.input_frames.add();
    stats_.input_bytes.add(len);
    note_frame(len);
    rx_.release(f);
  }
  // The guard's drops reach get_stats (this thread is the counter's only writer).
  if (kGuardFragments) stats_.fragments_dropped.add(fragments_.dropped() - stats_.fragments_dropped.get());
  // Frames left over get another round after the sockets had theirs: make sure it comes soon.
  if (n == tuning_.input_batch && rx_.depth() > 0) waker_.notify();
}

void SlirpThread::run_commands() {
  Command cmd;
  while (commands_.try_dequeue(cmd)) {
    stats_.commands.add();
    cmd(slirp_);
    cmd = nullptr;
  }
}

void SlirpThread::fire_timers() {
  const int64_t now = now_ms();
  // A handler may re-arm (timer_mod) or free timers: collect first, then fire.
  std::vector<Timer*> due;
  for (const auto& t : timers_)
    if (t->expire_ms >= 0 && t->expire_ms <= now) due.push_back(t.get());
  for (Timer* t : due) {
    t->expire_ms = -1;
    if (t->cb)
      t->cb(t->cb_opaque);
    else
      slirp_handle_timer(slirp_, t->id, t->cb_opaque);
  }
}

// ---- libslirp callbacks, all on the slirp thread ------------------------------------------------

ssize_t SlirpThread::cb_send_packet(const void* buf, size_t len, void* opaque) {
  auto* self = static_cast<SlirpThread*>(opaque);
  auto& st = self->stats_;
  const size_t room = self->tx_headroom_;
  if (len + room > self->tx_.slot_bytes()) {  // cannot happen with if_mtu = the slot's MTU
    st.output_drops.add();
    return static_cast<ssize_t>(len);
  }
  io::Frame* f = self->tx_.try_acquire();
  if (!f) {
    st.tx_waits.add();  // the TAP writer is behind: wait for it rather than drop
    while (!(f = self->tx_.acquire_for(std::chrono::milliseconds(100)))) {
      if (self->waker_.stop_requested()) {
        st.output_drops.add();
        return static_cast<ssize_t>(len);
      }
    }
  }
  std::memset(f->data, 0, room);
  std::memcpy(f->data + room, buf, len);
  f->len = static_cast<uint32_t>(room + len);
  f->offset = static_cast<uint32_t>(room);
  f->stamp_ns = now_ns();
  st.output_frames.add();
  st.output_bytes.add(len);
  self->note_frame(len);
  self->tx_.push(f);
  return static_cast<ssize_t>(len);
}

void SlirpThread::cb_guest_error(const char* msg, void*) { std::fprintf(stderr, "libslirp: %s\n", msg); }

int64_t SlirpThread::cb_clock_get_ns(void*) { return now_ns(); }

void* SlirpThread::cb_timer_new(SlirpTimerCb cb, void* cb_opaque, void* opaque) {
  auto* self = static_cast<SlirpThread*>(opaque);
  self->timers_.push_back(std::make_unique<Timer>(Timer{SLIRP_TIMER_RA, cb_opaque, cb, -1}));
  return self->timers_.back().get();
}

void* SlirpThread::cb_timer_new_opaque(SlirpTimerId id, void* cb_opaque, void* opaque) {
  auto* self = static_cast<SlirpThread*>(opaque);
  self->timers_.push_back(std::make_unique<Timer>(Timer{id, cb_opaque, nullptr, -1}));
  return self->timers_.back().get();
}

void SlirpThread::cb_timer_free(void* timer, void* opaque) {
  auto* self = static_cast<SlirpThread*>(opaque);
  auto& v = self->timers_;
  v.erase(std::remove_if(v.begin(), v.end(), [timer](const auto& t) { return t.get() == timer; }), v.end());
}

void SlirpThread::cb_timer_mod(void* timer, int64_t expire_time, void*) {
  static_cast<Timer*>(timer)->expire_ms = expire_time;
}

void SlirpThread::cb_register_poll_fd(int, void*) {}    // Linux: every fd is in the next fill
void SlirpThread::cb_unregister_poll_fd(int, void*) {}  // nor removed
// libslirp calls notify() from inside slirp_input on this thread; the loop re-runs
// slirp_pollfds_fill right after, which picks up the socket that can now receive.
void SlirpThread::cb_notify(void*) {}
void SlirpThread::cb_init_completed(Slirp* slirp, void* opaque) { static_cast<SlirpThread*>(opaque)->slirp_ = slirp; }

int SlirpThread::cb_add_poll(int fd, int events, void* opaque) {
  auto* self = static_cast<SlirpThread*>(opaque);
  self->pfds_.push_back({fd, to_poll_events(events), 0});
  return static_cast<int>(self->pfds_.size() - 1);
}

int SlirpThread::cb_get_revents(int idx, void* opaque) {
  auto* self = static_cast<SlirpThread*>(opaque);
  if (idx < 0 || static_cast<size_t>(idx) >= self->pfds_.size()) return 0;
  return to_slirp_events(self->pfds_[static_cast<size_t>(idx)].revents);
}

}  // namespace slirpnetd::slirp
