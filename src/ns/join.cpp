#include "ns/join.hpp"

#include <fcntl.h>
#include <sched.h>

#include <cstdio>

#include "common/unique_fd.hpp"

namespace slirpnetd::ns {

NamespacePaths target_namespaces(const config::Options& opts) {
  NamespacePaths p{opts.netns_path, opts.userns_path};
  if (opts.netns_type == config::NetnsType::Pid) {
    const std::string proc = "/proc/" + std::to_string(opts.target_pid) + "/ns/";
    p.netns = proc + "net";
    if (p.userns.empty()) p.userns = proc + "user";
  }
  return p;
}

bool join_namespaces(const NamespacePaths& paths) {
  UniqueFd netns;
  if (!paths.netns.empty()) netns.reset(::open(paths.netns.c_str(), O_RDONLY | O_CLOEXEC));
  if (!paths.netns.empty() && !netns) {
    std::perror(paths.netns.c_str());
    return false;
  }
  if (!paths.userns.empty()) {
    UniqueFd userns(::open(paths.userns.c_str(), O_RDONLY | O_CLOEXEC));
    if (!userns) {
      std::perror(paths.userns.c_str());
      return false;
    }
    (void)::setns(userns.get(), CLONE_NEWUSER);  // failure ignored, as slirp4netns does
  }
  if (netns && ::setns(netns.get(), CLONE_NEWNET) < 0) {
    std::perror("setns(CLONE_NEWNET)");
    return false;
  }
  return true;
}

}  // namespace slirpnetd::ns
