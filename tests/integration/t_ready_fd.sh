#!/usr/bin/env bash
# -r FD: once the network is configured and the API socket listens, the daemon writes exactly the
# byte "1" (no newline) to FD and closes it.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_container
mkfifo "$TMP/ready.fifo"
# The reader holds the read end open: it sees EOF only when the daemon closes its copy.
start_bg ready-reader timeout 20 cat "$TMP/ready.fifo"
reader=$BG_PID
exec 5>"$TMP/ready.fifo"
start_daemon -c -r 5 -a "$TMP/api.sock" "$C" tap0
exec 5>&-

expect_exit "$reader" 15 "the ready fd was never closed (reader of the ready pipe)"
assert_eq 0 "$EXIT_STATUS" "reader of the ready pipe"
assert_eq "31" "$(od -An -tx1 "$TMP/ready-reader.log" | tr -d ' \n')" "bytes written to the ready fd (hex)"
# Everything promised by readiness is already true at this point.
[[ -S $TMP/api.sock ]] || fail "API socket $TMP/api.sock does not exist when ready"
addr=$(in_ns "$C" ip -o -4 addr show dev tap0)
assert_contains "$addr" "inet 10.0.2.100/24" "tap0 address when ready"
alive "$DAEMON_PID" || fail "daemon exited after signalling readiness"
pass
