#!/usr/bin/env bash
# -6 -c: the kernel autoconfigures an fd00::/64 address from libslirp's router advertisement
# (default route via fe80::2); fd00::2 answers ping, and TCP to fd00::2 reaches the host's ::1.
# DAD is turned off in the namespace first, as Podman does, so the address is usable at once.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_echo tcp-echo ::1 12121
start_container
in_ns "$C" sysctl -q -w net.ipv6.conf.default.accept_dad=0
start_configured -6
wait_for_addr "$C" tap0 "inet6 fd00::" 20

addr=$(in_ns "$C" ip -o -6 addr show dev tap0 scope global)
assert_match "$addr" "inet6 fd00::[0-9a-f:]+/64 scope global" "tap0 IPv6 address"
assert_not_contains "$addr" "tentative" "tap0 IPv6 address state"
wait_for "in_ns $C ip -6 route show default | grep -q 'via fe80::2 dev tap0'" 10
wait_for_ping "$C" fd00::2 10
out=$(in_ns "$C" ping -c 1 -W 2 fd00::3 2>&1) || fail "ping fd00::3: $out"
assert_contains "$out" "1 received" "ping fd00::3"
out=$(nettool "$C" tcp-check fd00::2 12121 --bytes 100000)
assert_eq "OK 100000 bytes" "$out" "TCP echo through fd00::2 to host [::1]:12121"
pass
