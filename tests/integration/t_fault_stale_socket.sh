#!/usr/bin/env bash
# Fault: the daemon is SIGKILLed, so its API socket file stays behind with nobody listening. The
# next daemon started with the same --api-socket must replace the stale file and answer on it.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_container
sock=$TMP/api.sock
start_configured_api "$sock"
assert_eq '{"return":{"id":1}}' \
  "$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":18080,"guest_port":80}}')" \
  "add_hostfwd on the first daemon"

kill_quietly "$DAEMON_PID"
[[ -S $sock ]] || fail "expected the SIGKILLed daemon to leave its socket file behind"
assert_contains "$(api "$sock" '{"execute":"list_hostfwd"}')" "ERROR: Connection refused" "stale socket"
wait_for "! in_ns $C ip link show dev tap0" 5  # the TAP went with the daemon's fd

start_configured -a "$sock"
wait_daemon "[[ -S $sock ]] && api $sock '{\"execute\":\"list_hostfwd\"}' | grep -q entries" 10
reply=$(api "$sock" '{"execute":"list_hostfwd"}')
assert_eq 0 "$(jq '.return.entries | length' <<<"$reply")" "a fresh daemon's forwards ($reply)"
assert_eq '{"return":{"id":1}}' \
  "$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":18080,"guest_port":80}}')" \
  "add_hostfwd on the second daemon (the port the killed daemon had forwarded is free again)"
alive "$DAEMON_PID" || fail "second daemon died"
pass
