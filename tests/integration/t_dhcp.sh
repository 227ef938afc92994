#!/usr/bin/env bash
# Without -c the TAP is created DOWN with no address; libslirp's DHCP server then leases the first
# address of the pool, 10.0.2.15, to udhcpc (the upstream test guards against libslirp 4.6.0's
# DHCP regression).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
command -v udhcpc >/dev/null || fail "udhcpc is not installed (run scripts/deps.sh)"

start_container
start_daemon "$C" tap0
wait_for_dev "$C" tap0
link=$(in_ns "$C" ip -o link show dev tap0)
assert_match "$link" "state DOWN" "tap0 state without -c"
assert_not_contains "$(in_ns "$C" ip -o addr show dev tap0)" "inet " "tap0 addresses without -c"

in_ns "$C" ip link set lo up
in_ns "$C" ip link set tap0 up
out=$(in_ns "$C" timeout 15 udhcpc --quit --now --foreground -t 10 -T 1 -i tap0 -s /bin/true 2>&1) ||
  fail "udhcpc failed: $out"
assert_contains "$out" "lease of 10.0.2.15 obtained" "udhcpc output"
pass
