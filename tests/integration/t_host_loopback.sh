#!/usr/bin/env bash
# Without --disable-host-loopback, 10.0.2.2 is the host's 127.0.0.1: TCP and UDP from the
# container to 10.0.2.2:PORT reach servers listening on the host's loopback.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_echo tcp-echo 127.0.0.1 12121
start_echo udp-echo 127.0.0.1 12122
start_container
start_configured

out=$(nettool "$C" tcp-check 10.0.2.2 12121 --bytes 100000)
assert_eq "OK 100000 bytes" "$out" "TCP echo through 10.0.2.2 to host 127.0.0.1:12121"
out=$(nettool "$C" udp-check 10.0.2.2 12122)
assert_eq "OK udp echo" "$out" "UDP echo through 10.0.2.2 to host 127.0.0.1:12122"
# A port nobody listens on is refused (the host's RST is mapped into the guest connection).
out=$(nettool "$C" tcp-check 10.0.2.2 12123 --timeout 5)
assert_eq "ERROR: Connection refused" "$out" "TCP to a closed host port"
pass
