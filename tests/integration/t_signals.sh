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
pass
