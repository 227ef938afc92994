#!/usr/bin/env bash
# `slirpnetd run [OPTIONS] -- CMD` (issue 6): CMD runs in new user, network and mount namespaces
# with tap0 configured (10.0.2.100), reaches the host's loopback through 10.0.2.2 and the DNS
# responder through /etc/resolv.conf -> 10.0.2.3; -p forwards host ports to it (slirp and splice);
# --netns-path keeps the namespace bound; CMD's exit status is returned; nothing is left running.
# Then the same as uid 65534 (rootless), with a 0666 copy of /dev/net/tun as t_rootless.sh does.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
export TMPDIR=$TMP

run_cmd() {  # ARGS... -> RUN_STATUS, RUN_OUT (stdout+stderr); bounded
  RUN_STATUS=0
  RUN_OUT=$(timeout --kill-after=2 $((30 * TS)) "${RUN_PREFIX[@]}" "$SLIRPNETD" run "$@" </dev/null 2>&1) || RUN_STATUS=$?
}
no_daemon_left() {  # WHAT
  local left
  left=$(pgrep -f "^$SLIRPNETD" || true)
  assert_eq "" "$left" "$1: slirpnetd processes left"
}
RUN_PREFIX=()

checks() {  # WHO
  local who=$1
  run_cmd -- sh -c 'ip -4 -o addr show tap0'
  assert_eq 0 "$RUN_STATUS" "$who: status of ip addr ($RUN_OUT)"
  assert_contains "$RUN_OUT" "inet 10.0.2.100/24" "$who: tap0 address"
  assert_not_contains "$RUN_OUT" "tapfd" "$who: quiet start-up"

  run_cmd -- sh -c 'exit 7'
  assert_eq 7 "$RUN_STATUS" "$who: CMD's exit status"
  run_cmd -- sh -c 'kill -TERM $$'
  assert_eq 143 "$RUN_STATUS" "$who: CMD killed by SIGTERM"
  run_cmd -- /nonexistent/cmd
  assert_eq 127 "$RUN_STATUS" "$who: CMD not found"
  run_cmd --bogus -- true
  assert_eq 1 "$RUN_STATUS" "$who: bad option"
  assert_contains "$RUN_OUT" "unrecognized option '--bogus'" "$who: bad option message"

  # uid 0 inside, the caller's uid outside.
  run_cmd -- sh -c 'id -u; cat /proc/self/uid_map'
  assert_match "$RUN_OUT" "^0"$'\n'" +0 +$2 +1" "$who: uid map"

  # Host loopback via 10.0.2.2, DNS via /etc/resolv.conf.
  run_cmd -- sh -c "cat /etc/resolv.conf; $PYTHON $NETTOOL tcp-check 10.0.2.2 12121 --bytes 100000; $PYTHON $DNSD query 10.0.2.3 host.slirpnetd.test"
  assert_eq 0 "$RUN_STATUS" "$who: status of the network checks ($RUN_OUT)"
  assert_contains "$RUN_OUT" "nameserver 10.0.2.3" "$who: resolv.conf inside"
  assert_contains "$RUN_OUT" "OK 100000 bytes" "$who: TCP to the host's 127.0.0.1:12121 via 10.0.2.2"
  assert_contains "$RUN_OUT" "NOERROR 192.0.2.53" "$who: DNS via 10.0.2.3"
  assert_eq "nameserver 127.0.0.1" "$(cat /etc/resolv.conf)" "$who: outer /etc/resolv.conf"
  # A name lookup through the libc resolver inside uses the bind-mounted resolv.conf.
  run_cmd -- getent hosts host.slirpnetd.test
  assert_match "$RUN_OUT" "(192.0.2.53|2001:db8::53) +host.slirpnetd.test" "$who: getent inside"

  # -p: a host client reaches a server CMD starts (libslirp, then splice forwarding).
  for mode in slirp splice; do
    local port=18080
    [[ $mode == splice ]] && port=18081
    "${RUN_PREFIX[@]}" "$SLIRPNETD" run --forward-mode=$mode -p 127.0.0.1:$port:80 -- \
      "$PYTHON" "$NETTOOL" tcp-echo 0.0.0.0 80 --ready "$TMP/run-echo-$mode-$who" --lifetime $((20 * TS)) \
      </dev/null >"$TMP/run-$mode-$who.log" 2>&1 &
    local rpid=$!
    BG_PIDS+=("$rpid")
    wait_for "[[ -s $TMP/run-echo-$mode-$who ]]" 10 "$rpid"
    assert_eq "OK 1000000 bytes" "$(nettool host tcp-check 127.0.0.1 $port --bytes 1000000)" "$who: -p 127.0.0.1:$port:80 ($mode)"
    kill -TERM "$rpid"
    expect_exit "$rpid" 10 "$who: slirpnetd run after SIGTERM ($mode)"
    assert_match "$(nettool host tcp-check 127.0.0.1 $port --timeout 2)" "^ERROR" "$who: port $port closed after run"
  done
  no_daemon_left "$who"
}

start_echo tcp-echo 127.0.0.1 12121
checks root 0

# --netns-path: bound while CMD runs, and after it, until umount.
run_cmd --netns-path "$TMP/netns" -- sh -c "sleep 0.5; ip -4 -o addr show tap0"
assert_eq 0 "$RUN_STATUS" "--netns-path run ($RUN_OUT)"
out=$(nsenter --net="$TMP/netns" ip -o link show 2>&1)
assert_contains "$out" "lo:" "nsenter --net=PATH after CMD exited"
assert_not_contains "$out" "tap0" "the TAP is gone with the daemon"
umount "$TMP/netns"
assert_match "$(nsenter --net="$TMP/netns" true 2>&1 || true)" "." "PATH is no netns after umount"
run_cmd --netns-path "$TMP/netns2" -- sh -c "sleep 3"
"${RUN_PREFIX[@]}" "$SLIRPNETD" run --netns-path "$TMP/netns3" -- sleep 5 </dev/null >/dev/null 2>&1 &
rpid=$!
BG_PIDS+=("$rpid")
wait_for "nsenter --net=$TMP/netns3 ip -o addr show tap0 | grep -q 10.0.2.100" 10 "$rpid"
kill -TERM "$rpid"
expect_exit "$rpid" 10 "run --netns-path after SIGTERM"
umount "$TMP/netns2" "$TMP/netns3"

# Rootless: uid 65534 with a 0666 tun node (only in our private mount namespace).
[[ -z ${SLIRPNETD_OUTER_USERNS:-} ]] || skip "rootless part needs real root (mknod, setpriv)"
mknod -m 666 "$TMP/tun" c 10 200
mount --bind "$TMP/tun" /dev/net/tun
mkdir -m 0755 "$TMP/bin"
install -m 0755 "$SLIRPNETD" "$TMP/bin/"
SLIRPNETD=$TMP/bin/$(basename "$SLIRPNETD")
RUN_PREFIX=(setpriv --reuid=65534 --regid=65534 --clear-groups)
checks nobody 65534
run_cmd --netns-path "$TMP/netns4" -- true
assert_eq 1 "$RUN_STATUS" "--netns-path without mount rights"
assert_contains "$RUN_OUT" "bind-mounting" "--netns-path error"
pass
