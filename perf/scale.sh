#!/usr/bin/env bash
# perf/scale.sh: see perf/README.md. Runs hermetically (private net/mount/PID namespaces).
exec bash "$(dirname "${BASH_SOURCE[0]}")/lib/run.sh" scale "$@"
