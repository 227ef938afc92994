#!/usr/bin/env bash
# slirpnetd improvements over slirp4netns 1.2.0's API, both expected to fail against slirp4netns:
#  - add_hostfwd without arguments.proto (or without arguments) gets the bad-proto error reply
#    instead of crashing the daemon (SIGSEGV in slirp4netns);
#  - an API client that connects and sends nothing does not stop packet forwarding.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_echo tcp-echo 127.0.0.1 12121
start_container
sock=$TMP/api.sock
start_configured_api "$sock"

# A silent client holds a connection open for 20 s. The transfer starts once the daemon has
# accepted it: connected, and nothing left in the listening socket's accept queue (its Recv-Q).
start_bg silent-client "$PYTHON" -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print("connected", flush=True); time.sleep(20)' "$sock"
wait_daemon "grep -q connected $TMP/silent-client.log && [[ \$(ss -xlH src $sock | awk '{print \$3}') == 0 ]]" 10
out=$(nettool "$C" tcp-check 10.0.2.2 12121 --bytes 100000 --timeout 5)
assert_eq "OK 100000 bytes" "$out" "forwarding while an API client is connected but silent"
kill_quietly "$BG_PID"

want='{"error":{"desc":"bad request: add_hostfwd: bad arguments.proto"}}'
reply=$(api "$sock" '{"execute":"add_hostfwd","arguments":{"host_port":8080,"guest_port":80}}')
assert_eq "$want" "$reply" "add_hostfwd without proto"
reply=$(api "$sock" '{"execute":"add_hostfwd"}')
assert_eq "$want" "$reply" "add_hostfwd without arguments"
alive "$DAEMON_PID" || fail "daemon died on add_hostfwd without proto"
reply=$(api "$sock" '{"execute":"list_hostfwd"}')
assert_eq 0 "$(jq '(.entries // .return.entries) | length' <<<"$reply")" "entries ($reply)"
pass
