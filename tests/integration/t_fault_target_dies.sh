#!/usr/bin/env bash
# Fault: the namespace's last processes (the container's init and a process in the middle of a bulk
# upload through the daemon) are SIGKILLed together. The daemon must notice, exit with status 0
# within a few seconds, and remove its API socket file.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
command -v iperf3 >/dev/null || skip "iperf3 not installed"

start_bg iperf3-server iperf3 -s -B 127.0.0.1 -p 5201 -1
start_container
sock=$TMP/api.sock
start_configured_api "$sock"

start_bg iperf3-client in_ns "$C" timeout 60 iperf3 -c 10.0.2.2 -p 5201 -t 30 -i 1 --forceflush
client=$BG_PID
# Mid-transfer: wait until iperf3 reports its first interval.
wait_daemon "grep -q 'bits/sec' $TMP/iperf3-client.log" 10
frames() { api "$sock" '{"execute":"get_stats"}' | jq '.return.tap_reader.frames'; }
f1=$(frames)
sleep 0.5
f2=$(frames)
((f2 > f1)) || fail "no frames flowing before the kill ($f1 -> $f2)"

{ kill -KILL "$C" "$client" && wait "$C" "$client"; } 2>/dev/null || true
expect_exit "$DAEMON_PID" 5 "daemon after the namespace's last processes died mid-transfer"
assert_eq 0 "$EXIT_STATUS" "daemon exit status"
[[ ! -e $sock ]] || fail "API socket file left behind"
pass
