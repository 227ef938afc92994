#!/usr/bin/env bash
# -c: 10.0.2.100/24 on the TAP, default route via 10.0.2.2, lo and the TAP up, MTU 1500; the
# gateway (10.0.2.2) and the DNS address (10.0.2.3) answer ping (libslirp answers both itself).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_container
start_configured

addr=$(in_ns "$C" ip -o -4 addr show dev tap0)
assert_contains "$addr" "inet 10.0.2.100/24 brd 10.0.2.255 scope global tap0" "tap0 IPv4 address"
link=$(in_ns "$C" ip -o link show dev tap0)
assert_match "$link" "<[^>]*UP[^>]*LOWER_UP[^>]*>" "tap0 link state"
assert_contains "$link" " mtu 1500 " "tap0 default MTU"
assert_match "$(in_ns "$C" ip -o link show dev lo)" "<[^>]*UP[^>]*>" "lo is up inside the namespace"
routes=$(in_ns "$C" ip route show)
assert_contains "$routes" "default via 10.0.2.2 dev tap0" "default route"
assert_contains "$routes" "10.0.2.0/24 dev tap0 proto kernel scope link src 10.0.2.100" "connected route"

wait_for_ping "$C" 10.0.2.2 10
out=$(in_ns "$C" ping -c 2 -i 0.2 -W 2 10.0.2.2 2>&1) || fail "ping 10.0.2.2: $out"
assert_contains "$out" "2 received" "ping 10.0.2.2"
out=$(in_ns "$C" ping -c 1 -W 2 10.0.2.3 2>&1) || fail "ping 10.0.2.3: $out"
assert_contains "$out" "1 received" "ping 10.0.2.3"
alive "$DAEMON_PID" || fail "daemon exited early"
pass
