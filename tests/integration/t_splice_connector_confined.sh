#!/usr/bin/env bash
# The splice connector (the child that opens connections inside the container for --splice
# forwards) keeps only what it needs: its root is an empty directory, it has no capability and
# no_new_privs, and a seccomp filter allows it a handful of system calls. Splice forwarding still
# works, in a rootful and a rootless (uid 65534) setup.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

field() {  # PID NAME -> the value of NAME: in /proc/PID/status
  awk -v n="$2:" '$1 == n {print $2}' "/proc/$1/status"
}

check_connector() {  # WHAT
  local conn
  conn=$(pgrep -P "$DAEMON_PID" || true)
  [[ -n $conn && $conn != *$'\n'* ]] || fail "$1: expected one child (the connector) of the daemon, got '$conn'"
  assert_eq "slirpnetd-conn" "$(cat "/proc/$conn/comm")" "$1: the connector's name"
  assert_eq 0000000000000000 "$(field "$conn" CapEff)" "$1: the connector's effective capabilities"
  assert_eq 0000000000000000 "$(field "$conn" CapBnd)" "$1: the connector's bounding set"
  assert_eq 1 "$(field "$conn" NoNewPrivs)" "$1: the connector's no_new_privs"
  assert_eq 2 "$(field "$conn" Seccomp)" "$1: the connector's seccomp mode"
  assert_eq "" "$(ls -A "/proc/$conn/root/" 2>&1)" "$1: the connector's root directory"
  assert_eq '{"return":{"id":1}}' \
    "$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":18080,"guest_port":80,"mode":"splice"}}')" \
    "$1: add_hostfwd (splice)"
  assert_contains "$(nettool host tcp-check 127.0.0.1 18080 --bytes 1000000)" "OK 1000000 bytes" "$1: echo through the splice forward"
}

start_container
NS=$C start_echo tcp-echo 0.0.0.0 80
sock=$TMP/api.sock
start_configured_api "$sock" --splice
check_connector rootful
kill -TERM "$DAEMON_PID"
expect_exit "$DAEMON_PID" 10 "daemon after SIGTERM"
kill_quietly "$C"

# Rootless, as in t_rootless.sh: container and daemon as uid 65534, a 0666 /dev/net/tun in this
# test's mount namespace, a copy of the binary uid 65534 can run.
[[ -z ${SLIRPNETD_OUTER_USERNS:-} ]] || skip "the rootless half needs real root (mknod, setpriv)"
as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
mknod -m 666 "$TMP/tun" c 10 200
mount --bind "$TMP/tun" /dev/net/tun
mkdir -m 0755 "$TMP/bin"
install -m 0755 "$SLIRPNETD" "$TMP/bin/"
SLIRPNETD=$TMP/bin/$(basename "$SLIRPNETD")
mkdir -m 0700 "$TMP/run"
chown 65534:65534 "$TMP/run"
CONTAINER_PREFIX=("${as_nobody[@]}")
start_container
NS=$C start_echo tcp-echo 0.0.0.0 80
sock=$TMP/run/api.sock
DAEMON_PREFIX=("${as_nobody[@]}")
start_configured_api "$sock" --splice
assert_eq 65534 "$(stat -c %u "/proc/$DAEMON_PID")" "daemon uid"
check_connector rootless
pass
