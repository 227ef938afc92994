#!/usr/bin/env bash
# The installed slirpnetd ($SLIRPNETD: t_deb.sh sets /usr/bin/slirpnetd) in the integration
# tests' hermetic harness: it networks a container's namespace (tap0 configured), the container
# pings the gateway, and the API socket answers add_hostfwd and list_hostfwd.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"

start_container
sock=$TMP/api.sock
start_configured_api "$sock"
wait_for_ping "$C" 10.0.2.2 10
out=$(in_ns "$C" ping -c 2 -i 0.2 -W 2 10.0.2.2 2>&1) || fail "ping 10.0.2.2: $out"
assert_contains "$out" "2 received" "ping 10.0.2.2 from the container"

reply=$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":8080,"guest_port":80}}')
assert_eq '{"return":{"id":1}}' "$reply" "add_hostfwd reply"
reply=$(api "$sock" '{"execute":"list_hostfwd"}')
assert_contains "$reply" '"host_port":8080' "list_hostfwd reply"
pass
