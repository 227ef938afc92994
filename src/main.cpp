// slirpnetd: user-mode networking for unprivileged network namespaces.
// All the work is in src/daemon (start-up order, supervision) and the modules it wires together;
// `slirpnetd run ...` is the one-command mode (src/run), `slirpnetd stats ...` a client of a
// running daemon's get_stats (src/stats).
#include <cstring>

#include "daemon/daemon.hpp"
#include "run/run.hpp"
#include "stats/stats.hpp"

int main(int argc, char* argv[]) {
  if (argc > 1 && std::strcmp(argv[1], "run") == 0) return slirpnetd::run::main(argc - 1, argv + 1);
  if (argc > 1 && std::strcmp(argv[1], "stats") == 0) return slirpnetd::stats::main(argc - 1, argv + 1);
  return slirpnetd::daemon::run(argc, argv);
}
