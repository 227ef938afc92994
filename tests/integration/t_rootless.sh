#!/usr/bin/env bash
# The rootless case, the reason slirp4netns exists: container and daemon both run as an
# unprivileged user (uid 65534, no capabilities). /dev/net/tun is mode 0600 on some hosts, so a
# 0666 copy of the node is bind-mounted over it inside our private mount namespace only (the host's
# node is untouched). Checks -c, TCP via 10.0.2.2 to the host's loopback, DNS via 10.0.2.3, and an
# API socket created and served by the unprivileged daemon.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
[[ -z ${SLIRPNETD_OUTER_USERNS:-} ]] || skip "needs real root (mknod, setpriv to uid 65534)"

as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
mknod -m 666 "$TMP/tun" c 10 200
mount --bind "$TMP/tun" /dev/net/tun
# The build tree may not be readable by uid 65534: run a 0755 copy.
mkdir -m 0755 "$TMP/bin"
install -m 0755 "$SLIRPNETD" "$TMP/bin/"
SLIRPNETD=$TMP/bin/$(basename "$SLIRPNETD")
mkdir -m 0700 "$TMP/run"
chown 65534:65534 "$TMP/run"

start_echo tcp-echo 127.0.0.1 12121
CONTAINER_PREFIX=("${as_nobody[@]}")
start_container
assert_eq 65534 "$(stat -c %u "/proc/$C")" "container owner uid"
DAEMON_PREFIX=("${as_nobody[@]}")
start_configured -a "$TMP/run/api.sock"
assert_eq 65534 "$(stat -c %u "/proc/$DAEMON_PID")" "daemon uid"
assert_match "$(grep CapEff "/proc/$DAEMON_PID/status")" "CapEff:[[:space:]]+0+$" "daemon capabilities"

out=$(nettool "$C" tcp-check 10.0.2.2 12121 --bytes 100000)
assert_eq "OK 100000 bytes" "$out" "TCP echo through 10.0.2.2 to host 127.0.0.1:12121"
out=$(dns_query "$C" 10.0.2.3 host.slirpnetd.test)
assert_eq "NOERROR 192.0.2.53" "$out" "A host.slirpnetd.test via 10.0.2.3"

wait_daemon "[[ -S $TMP/run/api.sock ]]" 10
NS=$C start_echo tcp-echo 0.0.0.0 80
reply=$(api "$TMP/run/api.sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":8080,"guest_port":80}}')
assert_contains "$reply" '"return":{"id":1}' "add_hostfwd as uid 65534"
out=$(nettool host tcp-check 127.0.0.1 8080)
assert_eq "OK 65536 bytes" "$out" "host 127.0.0.1:8080 -> container :80"
pass
