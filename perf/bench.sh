#!/usr/bin/env bash
# perf/bench.sh: see perf/README.md. Runs hermetically (private net/mount/PID namespaces).
exec bash "$(dirname "${BASH_SOURCE[0]}")/lib/run.sh" bench "$@"
