#pragma once
// --enable-sandbox and --enable-seccomp (docs/compatibility.md, "Sandbox and seccomp"). Call order in the daemon:
//   enter_userns_for_sandbox()  before any thread (setns(CLONE_NEWUSER) needs a single thread)
//   create_sandbox()            before any thread, so every thread inherits mount ns + caps
//   enable_seccomp()            before any thread, so that no frame or request is ever handled
//                               unfiltered (threads inherit the filter; TSYNC covers any other)
#include "config/options.hpp"

namespace slirpnetd::ns {

// With --enable-sandbox and not euid 0: join the target's user namespace (--userns-path if given,
// which fixes slirp4netns issue #317; else /proc/PID/ns/user in pid mode) and setegid(0)/seteuid(0)
// there. A no-op without --enable-sandbox or as root. Returns false after printing the error.
bool enter_userns_for_sandbox(const config::Options& opts);
// New mount namespace with only /etc and /run from the host, pivot_root, caps dropped except
// CAP_NET_BIND_SERVICE, no_new_privs. Returns false after printing the error.
bool create_sandbox();
// Loads the seccomp filter on every thread of the process (SCMP_FLTATR_CTL_TSYNC): an allow-list
// built from the sources' `#syscalls:` lines (see sandbox.cpp); any other system call prints a
// line naming it on stderr and kills the process with SIGSYS. Prints the list on stdout, as
// slirp4netns prints its deny-list. Returns false after printing the error.
bool enable_seccomp();
// For the splice connector child, after it joined the target's namespaces: an empty read-only
// root (a new mount namespace; best effort: a warning if impossible), every capability dropped,
// no_new_privs, and a seccomp allow-list of the few calls it makes (`#syscalls:connector`).
// Returns false after printing the error.
bool confine_connector();

}  // namespace slirpnetd::ns
