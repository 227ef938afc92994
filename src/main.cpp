// slirpnetd: user-mode networking for unprivileged network namespaces.
// All the work is in src/daemon (start-up order, supervision) and the modules it wires together.
#include "daemon/daemon.hpp"

int main(int argc, char* argv[]) { return slirpnetd::daemon::run(argc, argv); }
