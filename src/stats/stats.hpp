#pragma once
// stats/stats.hpp: `slirpnetd stats --api-socket PATH [--interval S] [--count N] [--json]`.
//
// Asks a running daemon for its counters (the API's get_stats) every S seconds and prints, for
// each interval, what each stage of the frame pipeline did (see stats/report.hpp): a table (the
// screen is redrawn when stdout is a terminal) or, with --json, one JSON object per line.
// Everything runs on the calling thread. A daemon that cannot be reached or does not answer
// get_stats (at start or later) ends it with a message on stderr and status 1.
#include <ostream>

namespace slirpnetd::stats {

// argv[0] is "stats". Returns the process exit status.
int main(int argc, char* argv[]);
// The same with the streams to write to (tests).
int main(int argc, char* argv[], std::ostream& out, std::ostream& err, bool out_is_terminal);

}  // namespace slirpnetd::stats
