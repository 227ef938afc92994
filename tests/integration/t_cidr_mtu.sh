#!/usr/bin/env bash
# --cidr 10.0.135.128/25 -c gives 10.0.135.228/25 with the gateway at .130; --mtu 4000 sets the
# TAP's MTU, and a large transfer through the gateway arrives intact.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_echo tcp-echo 127.0.0.1 12121
start_container
start_daemon -c --cidr 10.0.135.128/25 --mtu 4000 "$C" tap0
wait_for_addr "$C" tap0 "inet 10.0.135.228/25"

assert_contains "$(in_ns "$C" ip -o link show dev tap0)" " mtu 4000 " "tap0 MTU"
assert_contains "$(in_ns "$C" ip route show)" "default via 10.0.135.130 dev tap0" "default route"
wait_for_ping "$C" 10.0.135.130 10
out=$(in_ns "$C" ping -c 1 -W 2 -M "do" -s 3972 10.0.135.130 2>&1) || fail "4000-byte ping: $out"
assert_contains "$out" "1 received" "full-MTU ping (DF) to the gateway"
out=$(nettool "$C" tcp-check 10.0.135.130 12121 --bytes 16777216 --timeout 30)
assert_eq "OK 16777216 bytes" "$out" "16 MiB TCP echo through 10.0.135.130"
pass
