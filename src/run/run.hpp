#pragma once
// run/run.hpp: `slirpnetd run [OPTIONS] -- CMD...` (issue 6), the one-command mode.
//
// 1. A child unshares user, network and mount namespaces (the caller's uid/gid mapped to root,
//    setgroups denied: works unprivileged and as root), makes its mounts slaves, bind-mounts a
//    resolv.conf naming the DNS address (10.0.2.3) over /etc/resolv.conf, reports ready and
//    waits on a pipe.
// 2. With --netns-path, the parent bind-mounts /proc/CHILD/ns/net on PATH in its own mount
//    namespace (the mount outlives CMD until `umount PATH`).
// 3. The parent runs the daemon exactly as `slirpnetd -c CHILD tap0` (daemon::serve(), quiet),
//    adds the -p forwards through a private ctl::Api, then tells the child to exec CMD.
// 4. When CMD exits the daemon stops (pid mode), the TAP goes with it, and we exit with CMD's
//    status (128+N if it was killed by signal N). If the daemon stops first (a signal, the TAP
//    deleted), CMD gets SIGTERM (SIGKILL after 5 s).
namespace slirpnetd::run {

// argv[0] is "run". Returns the process exit status.
int main(int argc, char* argv[]);

}  // namespace slirpnetd::run
