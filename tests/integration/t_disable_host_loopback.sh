#!/usr/bin/env bash
# --disable-host-loopback: connecting to 10.0.2.2 (the host's loopback) is refused with "Network
# is unreachable", while ping to 10.0.2.2 (answered by libslirp itself) still works.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_echo tcp-echo 127.0.0.1 12121
start_container
start_configured --disable-host-loopback

wait_for_ping "$C" 10.0.2.2 10
out=$(nettool "$C" tcp-check 10.0.2.2 12121 --timeout 5)
assert_eq "ERROR: Network is unreachable" "$out" "TCP to 10.0.2.2 with --disable-host-loopback"
alive "$DAEMON_PID" || fail "daemon exited"
pass
