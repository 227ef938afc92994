#!/usr/bin/env bash
# slirpnetd improvement (slirp4netns 1.2.0 is killed by the default action, status 143/130/129, and
# leaves the socket behind): SIGTERM, SIGINT and SIGHUP end the daemon with status 0 and remove the
# API socket file, and the TAP disappears.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

for sig in TERM INT HUP; do
  start_container
  sock=$TMP/api-$sig.sock
  start_configured_api "$sock"
  kill -s "$sig" "$DAEMON_PID"
  expect_exit "$DAEMON_PID" 10 "daemon after SIG$sig"
  assert_eq 0 "$EXIT_STATUS" "daemon exit status after SIG$sig"
  [[ ! -e $sock ]] || fail "API socket file $sock left behind after SIG$sig"
  wait_for "! in_ns $C ip link show dev tap0" 5
  kill_quietly "$C"
done

# A stop signal that comes while the TAP is still being set up is held, not fatal: the daemon
# finishes starting and then exits in order. The TAP child is kept waiting at a known point: its
# --userns-path is a FIFO, whose open() blocks until the test opens the other end (joining the
# user namespace then fails, which slirp4netns, and we, ignore; as root we join the netns anyway).
start_container
fifo=$TMP/userns.fifo
mkfifo "$fifo"
start_daemon -c --netns-type=path --userns-path="$fifo" "/proc/$C/ns/net" tap0
wait_daemon "pgrep -P $DAEMON_PID >/dev/null" 10  # the TAP child, blocked in open()
kill -TERM "$DAEMON_PID"
: >"$fifo"
expect_exit "$DAEMON_PID" 10 "daemon after SIGTERM during set-up"
assert_eq 0 "$EXIT_STATUS" "daemon exit status after SIGTERM during set-up"
assert_contains "$(cat "$DAEMON_ERR")" "received signal Terminated: exiting" "stderr after SIGTERM during set-up"
kill_quietly "$C"
pass
