#!/usr/bin/env bash
# `slirpnetd run -p` forwards belong to the daemon's one forwards registry, the one its API socket
# serves: list_hostfwd shows them (with the ids they took), remove_hostfwd closes them, and
# forwards added through the API take the next ids.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is not installed (run scripts/deps.sh)"
export TMPDIR=$TMP

sock=$TMP/run-api.sock
"$SLIRPNETD" run --api-socket "$sock" -p 127.0.0.1:18090:80 -p 127.0.0.1:18091:80/udp -- \
  "$PYTHON" "$NETTOOL" tcp-echo 0.0.0.0 80 --ready "$TMP/echo-ready" --lifetime $((20 * TS)) \
  </dev/null >"$TMP/run.log" 2>&1 &
rpid=$!
BG_PIDS+=("$rpid")
wait_for "[[ -s $TMP/echo-ready && -S $sock ]]" 10 "$rpid"

reply=$(api "$sock" '{"execute":"list_hostfwd"}')
assert_eq '[{"id":1,"proto":"tcp","host_addr":"127.0.0.1","host_port":18090,"guest_addr":"10.0.2.100","guest_port":80},{"id":2,"proto":"udp","host_addr":"127.0.0.1","host_port":18091,"guest_addr":"10.0.2.100","guest_port":80}]' \
  "$(jq -c '.return.entries' <<<"$reply")" "the -p forwards, listed ($reply)"
assert_eq "OK 100000 bytes" "$(nettool host tcp-check 127.0.0.1 18090 --bytes 100000)" "-p 127.0.0.1:18090:80 forwards"

reply=$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":18092,"guest_port":80}}')
assert_eq 3 "$(jq -r '.return.id' <<<"$reply")" "an API forward takes the next id ($reply)"
assert_eq "OK 1000 bytes" "$(nettool host tcp-check 127.0.0.1 18092 --bytes 1000)" "the API forward"

reply=$(api "$sock" '{"execute":"remove_hostfwd","arguments":{"id":1}}')
assert_eq '{"return":{}}' "$reply" "remove_hostfwd of a -p forward"
assert_match "$(nettool host tcp-check 127.0.0.1 18090 --timeout 2)" "^ERROR" "the removed -p forward's port is closed"
reply=$(api "$sock" '{"execute":"list_hostfwd"}')
assert_eq "2 3" "$(jq -r '[.return.entries[].id] | join(" ")' <<<"$reply")" "what is left ($reply)"
# A second -p on a taken port fails the run with the registry's message.
out=$(timeout --kill-after=2 $((30 * TS)) "$SLIRPNETD" run -p 127.0.0.1:18092:80 -- true </dev/null 2>&1) && st=0 || st=$?
assert_eq 1 "$st" "run -p on a port in use ($out)"
assert_contains "$out" "slirpnetd run: -p 127.0.0.1:18092:80: add_hostfwd: slirp_add_hostfwd failed: Address already in use" "its message"

kill -TERM "$rpid"
expect_exit "$rpid" 10 "slirpnetd run after SIGTERM"
pass
