#!/usr/bin/env bash
# API smoke test (docs/compatibility.md, "The API socket"): add_hostfwd tcp 127.0.0.1:8080 -> guest :80, then a host client
# reaches a server inside the container; list_hostfwd shows the entry; remove_hostfwd closes the
# port. Also: a malformed request gets an error and the daemon keeps serving, and an API socket
# path of 108+ bytes is refused with exit 1.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is not installed (run scripts/deps.sh)"

start_container
NS=$C start_echo tcp-echo 0.0.0.0 80
sock=$TMP/api.sock
start_configured_api "$sock"

reply=$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":8080,"guest_port":80}}')
assert_eq 1 "$(jq -r '.return.id' <<<"$reply")" "add_hostfwd reply id ($reply)"
assert_eq null "$(jq -r '.error' <<<"$reply")" "add_hostfwd reply error ($reply)"

out=$(nettool host tcp-check 127.0.0.1 8080 --bytes 200000)
assert_eq "OK 200000 bytes" "$out" "host 127.0.0.1:8080 -> container :80 (TCP echo)"

# slirp4netns answers {"entries":[...]}; its docs say {"return":{"entries":[...]}}: accept both.
reply=$(api "$sock" '{"execute":"list_hostfwd"}')
entry=$(jq -c '(.entries // .return.entries)[0]' <<<"$reply")
assert_eq '{"id":1,"proto":"tcp","host_addr":"127.0.0.1","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}' \
  "$entry" "list_hostfwd entry ($reply)"

reply=$(api "$sock" '{"execute":"bogus"}')
assert_eq '{"error":{"desc":"bad request: unknown execute"}}' "$reply" "reply to an unknown execute"
reply=$(api "$sock" 'not json')
assert_eq '{"error":{"desc":"bad request: cannot parse JSON"}}' "$reply" "reply to malformed JSON"

reply=$(api "$sock" '{"execute":"remove_hostfwd","arguments":{"id":1}}')
assert_eq '{"return":{}}' "$reply" "remove_hostfwd reply"
out=$(nettool host tcp-check 127.0.0.1 8080 --timeout 5)
assert_eq "ERROR: Connection refused" "$out" "host 127.0.0.1:8080 after remove_hostfwd"
reply=$(api "$sock" '{"execute":"list_hostfwd"}')
assert_eq 0 "$(jq '(.entries // .return.entries) | length' <<<"$reply")" "entries after remove ($reply)"
alive "$DAEMON_PID" || fail "daemon exited during the API test"

# A socket path of 108 bytes or more cannot be bound: exit 1 (after the TAP was created).
long=$TMP/$(printf 'x%.0s' {1..120}).sock
start_container
start_daemon -c -a "$long" "$C" tap1
expect_exit "$DAEMON_PID" 10 "daemon with a too long API socket path"
assert_eq 1 "$EXIT_STATUS" "exit status with a too long API socket path"
assert_contains "$(cat "$DAEMON_ERR")" "the specified API socket path is too long (>= 108)" "stderr"
pass
