#!/usr/bin/env bash
# slirpnetd improvement (slirp4netns 1.2.0 keeps running): when the process whose network namespace
# the daemon serves (pid mode) dies, the daemon exits with status 0 within a few seconds (the README
# says within a second; the bound here leaves room for slow builds) and removes its API socket file.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_container
start_configured -a "$TMP/api.sock"
wait_daemon "[[ -S $TMP/api.sock ]]" 10
kill_quietly "$C"
expect_exit "$DAEMON_PID" 5 "daemon after the target process died"
assert_eq 0 "$EXIT_STATUS" "daemon exit status after the target died"
[[ ! -e $TMP/api.sock ]] || fail "API socket file left behind after the target died"
pass
