#pragma once
// Waker: wakes a thread that sleeps in poll(2), from any number of other threads, with no lost
// wakeup and at most one eventfd write per sleep.
//
//   producers: publish work (ring push, queue enqueue), then notify()
//   the owner: after poll() reports fd() readable, call consume() BEFORE draining its queues.
//
// consume() resets the eventfd and then the `pending` flag (an RMW, so it synchronises with the
// producers' RMW): work published after that reset sets the flag again and writes the eventfd, so
// the next poll() returns at once; work published before it is seen by the drain that follows.
#include <atomic>

#include "common/unique_fd.hpp"

namespace slirpnetd::io {

class Waker {
 public:
  Waker();
  int fd() const { return efd_.get(); }
  void notify();
  void consume();

 private:
  UniqueFd efd_;
  std::atomic<bool> pending_{false};
};

}  // namespace slirpnetd::io
