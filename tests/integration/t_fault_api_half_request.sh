#!/usr/bin/env bash
# Fault: API clients that send half a request and then hang (never finish, never close) must not
# block anyone else: other clients are still answered promptly, forwards can still be added and
# used, and packet forwarding goes on.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_echo tcp-echo 127.0.0.1 12121
start_container
sock=$TMP/api.sock
start_configured_api "$sock"
NS=$C start_echo tcp-echo 10.0.2.100 8080

hang='
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode())
open(sys.argv[3], "w").write("sent\n"); time.sleep(60)'
halves=('{"execute":"add_hostfwd","arguments":{"proto":"tcp",' '{"execute":"list_' '{' '   ' '{"execute":"get_stats"')
for i in "${!halves[@]}"; do
  start_bg "half$i" "$PYTHON" -c "$hang" "$sock" "${halves[$i]}" "$TMP/half$i.ready"
  wait_for "[[ -s $TMP/half$i.ready ]]" 10
done

start=$SECONDS
reply=$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":18080,"guest_port":8080}}')
assert_eq '{"return":{"id":1}}' "$reply" "add_hostfwd while ${#halves[@]} clients hang mid-request"
reply=$(api "$sock" '{"execute":"list_hostfwd"}')
assert_eq 1 "$(jq '.return.entries | length' <<<"$reply")" "list_hostfwd entries ($reply)"
((SECONDS - start <= 3 * TS)) || fail "API answers took $((SECONDS - start)) s while clients hang"

assert_eq "OK 200000 bytes" "$(nettool "$C" tcp-check 10.0.2.2 12121 --bytes 200000)" "guest -> host TCP"
assert_eq "OK 200000 bytes" "$(nettool host tcp-check 127.0.0.1 18080 --bytes 200000)" "host -> guest forward"
alive "$DAEMON_PID" || fail "daemon died"
pass
