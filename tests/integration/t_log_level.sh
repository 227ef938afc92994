#!/usr/bin/env bash
# Log level (issue 14): slirpnetd's own diagnostics (spdlog) show from --log-level, else
# $SLIRPNETD_LOG_LEVEL, else warn: by default a daemon that starts and stops normally prints only
# slirp4netns's lines (Podman shows the daemon's stderr in its errors). At info it says how the
# pipeline was set up. An unknown level, from either, is refused with a message naming it and
# status 1, before anything is set up.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

# run_level [ENV=VALUE...] -- DAEMON-ARGS...: a daemon on a fresh container, stopped by SIGTERM
# once its network is up; sets ERR (its stderr) and OUT (stdout).
run_level() {
  local env=()
  while [[ $1 != -- ]]; do env+=("$1"); shift; done
  shift
  start_container
  DAEMON_PREFIX=(env "${env[@]}")
  start_configured "$@"
  DAEMON_PREFIX=()
  kill -TERM "$DAEMON_PID"
  expect_exit "$DAEMON_PID" 10 "daemon after SIGTERM"
  assert_eq 0 "$EXIT_STATUS" "exit status after SIGTERM ($*)"
  ERR=$(cat "$DAEMON_ERR")
  OUT=$(cat "$DAEMON_OUT")
  assert_contains "$OUT" "Starting slirp" "banner on stdout ($*)"
}

# Default: only slirp4netns's lines (no "slirpnetd: <level>:" line at all).
run_level --
assert_not_contains "$ERR" "slirpnetd: " "stderr by default"
assert_contains "$ERR" "received signal Terminated: exiting" "stderr by default"

run_level SLIRPNETD_LOG_LEVEL=info --
assert_match "$ERR" "slirpnetd: info: pipeline: TAP offloads (on|off), rx ring [0-9]+ slots" "stderr with SLIRPNETD_LOG_LEVEL=info"

run_level -- --log-level=info
assert_contains "$ERR" "slirpnetd: info: pipeline:" "stderr with --log-level=info"

# The option wins over the environment.
run_level SLIRPNETD_LOG_LEVEL=info -- --log-level error
assert_not_contains "$ERR" "slirpnetd: info:" "stderr with --log-level error and SLIRPNETD_LOG_LEVEL=info"
run_level SLIRPNETD_LOG_LEVEL= --
assert_not_contains "$ERR" "slirpnetd: " "stderr with SLIRPNETD_LOG_LEVEL empty"

# Unknown levels.
start_container
run_daemon --log-level=loud -c "$C" tap0
assert_eq 1 "$RUN_STATUS" "exit status with --log-level=loud"
assert_eq 'slirpnetd: --log-level: unknown log level "loud" (trace, debug, info, warn, error, critical or off)' \
  "$RUN_ERR" "stderr with --log-level=loud"
assert_eq "" "$RUN_OUT" "stdout with --log-level=loud (nothing was set up: no banner)"
SLIRPNETD_LOG_LEVEL=Verbose run_daemon -c "$C" tap0
assert_eq 1 "$RUN_STATUS" "exit status with SLIRPNETD_LOG_LEVEL=Verbose"
assert_eq 'slirpnetd: SLIRPNETD_LOG_LEVEL: unknown log level "Verbose" (trace, debug, info, warn, error, critical or off)' \
  "$RUN_ERR" "stderr with SLIRPNETD_LOG_LEVEL=Verbose"
run_daemon -c "$C" tap0 --log-level
assert_eq 1 "$RUN_STATUS" "exit status with --log-level and no level"
assert_contains "$RUN_ERR" "option '--log-level' requires an argument" "stderr with --log-level and no level"
pass
