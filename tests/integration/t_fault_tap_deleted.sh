#!/usr/bin/env bash
# Fault: the TAP device is deleted from inside the namespace (`ip link del tap0`) while traffic
# flows. The daemon must notice and exit by itself within a few seconds (not hang, not crash), with
# status 0 as the README says, removing its API socket file. (slirp4netns 1.2.0 fails this test: it
# keeps running, logging "do_slirp: read: File descriptor in bad state" in a loop.)
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_echo udp-echo 127.0.0.1 7777
start_container
sock=$TMP/api.sock
start_configured_api "$sock"
assert_eq "OK udp echo" "$(nettool "$C" udp-check 10.0.2.2 7777)" "UDP echo before the deletion"

# Keep frames flowing (a ping every 10 ms) while the device goes away.
# Deleted once the daemon has answered 20 of them: packets the TAP received, counted by the kernel.
tap_rx() { in_ns "$C" ip -j -s link show dev tap0 | jq '.[0].stats64.rx.packets'; }
# shellcheck disable=SC2034 # read by the condition below, which wait_daemon evaluates
rx0=$(tap_rx)
start_bg pinger in_ns "$C" timeout 30 ping -i 0.01 -q 10.0.2.2
wait_daemon "(( \$(tap_rx) >= rx0 + 20 ))" 10
in_ns "$C" ip link del tap0
expect_exit "$DAEMON_PID" 5 "daemon after tap0 was deleted"
assert_eq 0 "$EXIT_STATUS" "daemon exit status after tap0 was deleted"
assert_contains "$(cat "$DAEMON_ERR")" "TAP" "daemon's reason for exiting"
[[ ! -e $sock ]] || fail "API socket file left behind"
pass
