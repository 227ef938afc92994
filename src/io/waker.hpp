#pragma once
// Waker: the one doorbell of every thread that sleeps in poll(2) or epoll_wait(2) (the slirp
// thread, the TAP reader, the control thread, the forwarder's workers, the daemon's main thread):
// it wakes the owner from any number of other threads, with no lost wakeup and at most one
// eventfd write per sleep, and it is how such a thread is asked to stop.
//
//   producers: publish work (ring push, queue enqueue), then notify()
//   stoppers:  request_stop(): stop_requested() is true from then on, and the owner is woken
//   the owner: polls fd(); when it is readable, calls consume() BEFORE draining its queues, and
//              ends its loop once stop_requested().
//
// consume() resets the eventfd and then the `pending` flag (an RMW, so it synchronises with the
// producers' RMW): work published after that reset sets the flag again and writes the eventfd, so
// the next poll() returns at once; work published (or a stop requested) before it is seen after it.
#include <atomic>

#include "common/unique_fd.hpp"

namespace slirpnetd::io {

class Waker {
 public:
  Waker();  // throws std::system_error without an eventfd
  int fd() const { return efd_.get(); }
  void notify();
  void consume();
  void request_stop();
  bool stop_requested() const { return stop_.load(std::memory_order_acquire); }

 private:
  UniqueFd efd_;
  std::atomic<bool> pending_{false};
  std::atomic<bool> stop_{false};
};

}  // namespace slirpnetd::io
