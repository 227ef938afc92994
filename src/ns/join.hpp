#pragma once
// Entering the target's namespaces, as slirp4netns's nsenter() does. Used by the TAP child
// (ns/tap.cpp) and by the splice connector child (fwd/connector.cpp): both are forked before any
// thread exists, because setns(CLONE_NEWUSER) refuses a multithreaded caller.
#include <string>

#include "config/options.hpp"

namespace slirpnetd::ns {

struct NamespacePaths {
  std::string netns;   // empty: stay in the current network namespace (unit tests)
  std::string userns;  // empty: stay in the current user namespace
};

// pid mode: /proc/PID/ns/net and (unless --userns-path is given) /proc/PID/ns/user;
// path mode: --netns-path and --userns-path.
NamespacePaths target_namespaces(const config::Options& opts);

// Opens both files first, then joins the user namespace (failure ignored, as slirp4netns does: we
// may be in it already, e.g. under Podman) and then the network namespace. The userns join is what
// gives an unprivileged caller CAP_NET_ADMIN over a netns owned by a userns it owns. False, with a
// message on stderr, when a file cannot be opened or the netns cannot be joined.
bool join_namespaces(const NamespacePaths& paths);

}  // namespace slirpnetd::ns
