#pragma once
// common/child.hpp: start a child process that runs one function and exits: the TAP child and the
// splice connector (they join the target's namespaces), `slirpnetd run`'s command (it unshares
// new ones), and the API socket's removal helper.
//
// A raw clone(SIGCHLD), with fork's semantics, rather than fork(): under ThreadSanitizer fork()
// starts a runtime thread in the child, and setns()/unshare() of a user namespace refuse a
// multithreaded caller. Every caller is single-threaded when it starts its child.
//
// stdio's buffers are flushed first, or the child would write what they hold a second time. The
// child never returns into the caller's code, whose objects belong to the parent: `body()` returns
// the exit status (or does not return), an exception escaping it is printed to stderr, and the
// child _exit()s with no destructor run.
#include <sched.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <exception>

namespace slirpnetd {

// The child's pid, or -1 with errno set (no child).
template <typename Body>
pid_t start_child(Body&& body) {
  std::fflush(nullptr);
  const auto pid = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (pid != 0) return pid;
  int status = 1;
  try {
    status = body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "child: unknown exception\n");
  }
  ::_exit(status);
}

}  // namespace slirpnetd
