#!/usr/bin/env bash
# Fault: the TAP device is deleted from inside the namespace (`ip link del tap0`) while traffic
# flows. The daemon must notice and exit by itself within a few seconds (not hang, not crash),
# removing its API socket file.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_echo udp-echo 127.0.0.1 7777
start_container
sock=$TMP/api.sock
start_configured_api "$sock"
assert_eq "OK udp echo" "$(nettool "$C" udp-check 10.0.2.2 7777)" "UDP echo before the deletion"

# Keep frames flowing (a ping every 10 ms) while the device goes away.
start_bg pinger in_ns "$C" timeout 30 ping -i 0.01 -q 10.0.2.2
sleep 0.5
in_ns "$C" ip link del tap0
expect_exit "$DAEMON_PID" 5 "daemon after tap0 was deleted"
log "daemon exit status after the TAP was deleted: $EXIT_STATUS"
((EXIT_STATUS < 128)) || fail "daemon was killed by signal $((EXIT_STATUS - 128)) after tap0 was deleted"
assert_contains "$(cat "$DAEMON_ERR")" "TAP" "daemon's reason for exiting"
[[ ! -e $sock ]] || fail "API socket file left behind"
pass
