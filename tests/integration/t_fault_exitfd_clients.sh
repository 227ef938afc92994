#!/usr/bin/env bash
# Fault: the exit fd is hung up while API clients are connected: two that never send anything and
# one that sent half a request. The daemon must not wait for them: status 0 within a few seconds,
# API socket file removed.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_container
mkfifo "$TMP/exit.fifo"
# shellcheck disable=SC2016  # $1 is expanded by the inner bash
start_bg exit-writer bash -c 'exec >"$1"; exec sleep 60' _ "$TMP/exit.fifo"
writer=$BG_PID
sock=$TMP/api.sock
start_daemon -c -e 5 -a "$sock" "$C" tap0 5<"$TMP/exit.fifo"
wait_for_addr "$C" tap0 "inet 10.0.2.100/24"
wait_daemon "[[ -S $sock ]]" 10

hold='
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode())
open(sys.argv[3], "w").write("connected\n"); time.sleep(60)'
for i in 1 2 3; do
  req=""
  ((i == 3)) && req='{"execute":"list_'
  start_bg "client$i" "$PYTHON" -c "$hold" "$sock" "$req" "$TMP/client$i.ready"
  wait_for "[[ -s $TMP/client$i.ready ]]" 10
done
sleep 0.3
alive "$DAEMON_PID" || fail "daemon exited while clients were merely connected"

kill_quietly "$writer"
expect_exit "$DAEMON_PID" 5 "daemon after its exit fd was hung up with API clients connected"
assert_eq 0 "$EXIT_STATUS" "daemon exit status"
[[ ! -e $sock ]] || fail "API socket file left behind"
pass
