#!/usr/bin/env bash
# -e FD: data on the exit fd does not stop the daemon; the writer closing it (POLLHUP) does, with
# status 0. The API socket file is removed and the (non-persistent) TAP disappears.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_container
mkfifo "$TMP/exit.fifo"
# The writer holds the write end, like conmon does for Podman; it writes a line first.
# shellcheck disable=SC2016  # $1 is expanded by the inner bash
start_bg exit-writer bash -c 'exec >"$1"; echo keep-going; exec sleep 60' _ "$TMP/exit.fifo"
writer=$BG_PID
start_daemon -c -e 5 -a "$TMP/api.sock" "$C" tap0 5<"$TMP/exit.fifo"
wait_for_addr "$C" tap0 "inet 10.0.2.100/24"
wait_daemon "[[ -S $TMP/api.sock ]]" 10

sleep 1
alive "$DAEMON_PID" || fail "daemon exited although the exit fd only had data on it"
kill_quietly "$writer"
expect_exit "$DAEMON_PID" 10 "daemon after its exit fd was hung up"
assert_eq 0 "$EXIT_STATUS" "daemon exit status after exit-fd hang-up"
[[ ! -e $TMP/api.sock ]] || fail "API socket file $TMP/api.sock left behind after exit-fd exit"
wait_for "! in_ns $C ip link show dev tap0" 5
pass
