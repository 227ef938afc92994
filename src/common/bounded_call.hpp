#pragma once
// common/bounded_call.hpp: run a task on another thread's queue and wait for its result, for a
// bounded time, with cancellation: a task that has not started when the wait times out never
// runs. Without it, a command the API reported as timed out (an add_hostfwd, say) would still run
// later, leaving a forward bound that the API never recorded and cannot remove.
//
// The task and the waiter race for one atomic state: Pending -> Running (the task's thread
// claims it) or Pending -> Cancelled (the waiter gives up). If the task won, the waiter waits for
// it to finish, however long that takes: its effect then happened and its result is the answer.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <functional>
#include <future>
#include <memory>

namespace slirpnetd {

// `post(std::function<void(Args...)>)` queues a closure on the owning thread, which calls it with
// its Args (e.g. the Slirp* it owns). `task(Args...)` returns 0 or -errno. Returns the task's
// result; -ETIMEDOUT if it had not started within `timeout` (it is then cancelled); -ECANCELED if
// the queue was destroyed without running it.
template <typename... Args, typename Post, typename Task>
int bounded_call(Post&& post, Task task, std::chrono::milliseconds timeout) {
  enum : int { kPending, kRunning, kCancelled };
  auto state = std::make_shared<std::atomic<int>>(kPending);
  // Only the closure holds the promise: destroyed unrun, it breaks the promise (-ECANCELED).
  auto done = std::make_shared<std::promise<int>>();
  std::future<int> result = done->get_future();
  auto closure = [state, done = std::move(done), task = std::move(task)](Args... args) mutable {
    int expected = kPending;
    if (!state->compare_exchange_strong(expected, kRunning)) return;  // cancelled: never run
    done->set_value(task(args...));
  };
  post(std::function<void(Args...)>(std::move(closure)));
  if (result.wait_for(timeout) != std::future_status::ready) {
    int expected = kPending;
    if (state->compare_exchange_strong(expected, kCancelled)) return -ETIMEDOUT;
    result.wait();  // running now: its effect is happening, so wait for its answer
  }
  try {
    return result.get();
  } catch (const std::future_error&) {  // the queue was destroyed with the task unrun
    return -ECANCELED;
  }
}

}  // namespace slirpnetd
