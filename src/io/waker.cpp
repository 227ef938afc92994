#include "io/waker.hpp"

// #syscalls: read write poll eventfd2

#include <sys/eventfd.h>

#include <cstdint>
#include <system_error>

namespace slirpnetd::io {

Waker::Waker() : efd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!efd_) throw std::system_error(errno, std::generic_category(), "eventfd");
}

void Waker::notify() {
  if (pending_.exchange(true, std::memory_order_acq_rel)) return;  // a wakeup is already on its way
  const uint64_t one = 1;
  // EAGAIN only when the counter would overflow: a wakeup is pending anyway.
  [[maybe_unused]] ssize_t n = ::write(efd_.get(), &one, sizeof one);
}

void Waker::request_stop() {
  stop_.store(true, std::memory_order_release);
  notify();  // the flag is published before notify()'s RMW, which the owner's consume() reads
}

void Waker::consume() {
  uint64_t value;
  [[maybe_unused]] ssize_t n = ::read(efd_.get(), &value, sizeof value);
  pending_.exchange(false, std::memory_order_acq_rel);
}

}  // namespace slirpnetd::io
