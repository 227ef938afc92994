#!/usr/bin/env bash
# Fault: clients of a published (splice) port try to exhaust the daemon's fds. The daemon runs
# with RLIMIT_NOFILE 128:128; 300 clients connect and hold their connections. The forwarder stops
# accepting at its connection cap (derived from the fd limit) and leaves the rest queued, instead
# of accepting until EMFILE and then spinning on a listener it can no longer serve: the daemon's
# CPU stays low, the API still answers (it needs an fd per request), and once the clients go, a
# new connection is forwarded. Also: at start the daemon raises its soft fd limit to the hard one.
# Then the same with a forward of libslirp's own (no splice), which has no cap: each connection
# held costs the daemon the socket libslirp accepted. With RLIMIT_NOFILE 64:64 and 100 clients
# libslirp accepts until EMFILE and then tries its listener again every 100 ms (our libslirp
# patch; before, the slirp thread spun on it), the remaining clients wait in its listen backlog,
# the API still answers (the control thread's spare descriptor; before, it could not accept), and
# once the clients go the forward works again.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
command -v prlimit >/dev/null || fail "prlimit is not installed (util-linux)"

cat >"$TMP/hold.py" <<'PY'
import socket, sys, time, os
port, n, ready, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
conns = []
for _ in range(n):
    s = socket.socket(); s.settimeout(5); s.connect(("127.0.0.1", port)); conns.append(s)
open(ready, "w").write(f"{len(conns)}\n")
deadline = time.time() + 60
while not os.path.exists(stop) and time.time() < deadline: time.sleep(0.1)
PY
# The same, connecting all at once and counting who got through within 5 s rather than failing.
cat >"$TMP/hold_parallel.py" <<'PY'
import os, select, socket, sys, time
port, n, ready, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
pending, conns, poller = {}, [], select.poll()
for _ in range(n):
    s = socket.socket(); s.setblocking(False); s.connect_ex(("127.0.0.1", port))
    pending[s.fileno()] = s; poller.register(s, select.POLLOUT)
deadline = time.time() + 5
while pending and time.time() < deadline:
    for fd, _ in poller.poll(100):
        s = pending.pop(fd); poller.unregister(fd)
        (conns.append(s) if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 else s.close())
open(ready, "w").write(f"{len(conns)}\n")
deadline = time.time() + 60
while not os.path.exists(stop) and time.time() < deadline: time.sleep(0.1)
PY
cpu_ticks() {  # PID -> utime + stime
  local stat
  stat=$(cat "/proc/$1/stat")
  stat=${stat##*) }
  read -r -a f <<<"$stat"
  echo $((f[11] + f[12]))
}

# The soft limit goes up to the hard one.
start_container
DAEMON_PREFIX=(prlimit --nofile=64:4096)
start_configured
assert_match "$(grep 'Max open files' "/proc/$DAEMON_PID/limits")" "Max open files +4096 +4096 " "the daemon's fd limits"
kill -TERM "$DAEMON_PID"
expect_exit "$DAEMON_PID" 10 "daemon after SIGTERM"
kill_quietly "$C"

start_container
NS=$C start_echo tcp-echo 0.0.0.0 80
sock=$TMP/api.sock
DAEMON_PREFIX=(prlimit --nofile=128:128)
start_configured_api "$sock" --splice
assert_eq '{"return":{"id":1}}' \
  "$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":18080,"guest_port":80,"mode":"splice"}}')" \
  "add_hostfwd (splice)"
assert_contains "$(nettool host tcp-check 127.0.0.1 18080 --bytes 100000)" "OK 100000 bytes" "echo through the forward"

start_bg hold "$PYTHON" "$TMP/hold.py" 18080 300 "$TMP/hold.ready" "$TMP/hold.stop"
wait_for "[[ -s $TMP/hold.ready ]]" 20
sleep 1
hz=$(getconf CLK_TCK)
t0=$(cpu_ticks "$DAEMON_PID")
sleep 2
used=$(($(cpu_ticks "$DAEMON_PID") - t0))
log "daemon CPU with 300 connections held: $used ticks in 2 s ($hz/s)"
((used * 100 < 2 * hz * 20)) || fail "daemon CPU over 20 % while the clients hold their connections ($used ticks in 2 s)"
stats=$(api "$sock" '{"execute":"get_stats"}')
assert_contains "$stats" '"splice"' "get_stats while the forward is saturated"
log "splice stats: $(jq -c .return.splice <<<"$stats")"
assert_eq '{"return":{"id":2}}' \
  "$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":18081,"guest_port":80}}')" \
  "add_hostfwd while the forward is saturated"
[[ $(jq .return.splice.accept_paused <<<"$stats") -ge 1 ]] || fail "the listener was never paused: $stats"

touch "$TMP/hold.stop"
wait_for "! alive $BG_PID" 10
wait_for "[[ \$(api $sock '{\"execute\":\"get_stats\"}' | jq .return.splice.active) == 0 ]]" 20
assert_contains "$(nettool host tcp-check 127.0.0.1 18080 --bytes 100000)" "OK 100000 bytes" "echo through the forward after the clients left"
alive "$DAEMON_PID" || fail "daemon died"
kill -TERM "$DAEMON_PID"
expect_exit "$DAEMON_PID" 10 "daemon after SIGTERM"
kill_quietly "$C"

# A libslirp forward. Only the bundled libslirp has the fix: the system one (Debian's 4.7.0)
# still spins on its listener at EMFILE.
if [[ ${SLIRPNETD_LIBSLIRP:-bundled} != bundled ]]; then
  log "libslirp: $SLIRPNETD_LIBSLIRP: the libslirp-forward part needs the bundled libslirp, skipped"
  pass
fi
nfds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
start_container
NS=$C start_echo tcp-echo 0.0.0.0 80
sock=$TMP/api-slirp.sock
DAEMON_PREFIX=(prlimit --nofile=64:64)
start_configured_api "$sock"
assert_eq '{"return":{"id":1}}' \
  "$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":18090,"guest_port":80}}')" \
  "add_hostfwd (libslirp)"
assert_contains "$(nettool host tcp-check 127.0.0.1 18090 --bytes 100000)" "OK 100000 bytes" "echo through the libslirp forward"
log "daemon fds before the clients: $(nfds "$DAEMON_PID") of 64"

start_bg hold_slirp "$PYTHON" "$TMP/hold_parallel.py" 18090 100 "$TMP/hold_slirp.ready" "$TMP/hold_slirp.stop"
wait_for "[[ -s $TMP/hold_slirp.ready ]]" 20
log "clients connected to the libslirp forward: $(cat "$TMP/hold_slirp.ready") of 100"
assert_eq 100 "$(cat "$TMP/hold_slirp.ready")" "clients connected (the rest wait in libslirp's listen backlog)"
wait_daemon "(( \$(nfds $DAEMON_PID) >= 63 ))" 10  # libslirp took every descriptor
sleep 1
t0=$(cpu_ticks "$DAEMON_PID")
sleep 2
used=$(($(cpu_ticks "$DAEMON_PID") - t0))
log "daemon CPU with 100 clients held on a libslirp forward: $used ticks in 2 s ($hz/s)"
((used * 100 < 2 * hz * 10)) || fail "daemon CPU over 10 % while out of descriptors ($used ticks in 2 s)"
stats=$(api "$sock" '{"execute":"get_stats"}')
assert_contains "$stats" '"return"' "get_stats while out of descriptors"
list=$(api "$sock" '{"execute":"list_hostfwd"}')
assert_contains "$list" '"host_port":18090' "list_hostfwd while out of descriptors"
# (It needs a socket of its own: refused with an error while no descriptor is free, but answered.)
assert_match "$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":18091,"guest_port":80}}')" \
  '^\{"(return|error)"' "add_hostfwd while out of descriptors"
log "daemon fds with the clients: $(nfds "$DAEMON_PID")"

# The clients go. libslirp then accepts the connections that waited in its backlog (closed by
# now) as descriptors come free, and each closed connection keeps its descriptor until libslirp's
# TCP state for it ends, so this takes a while: a new connection gets through once it does.
touch "$TMP/hold_slirp.stop"
wait_for "! alive $BG_PID" 10
t0=$SECONDS
wait_daemon "nettool host tcp-check 127.0.0.1 18090 --bytes 100000 --timeout 5 | grep -q 'OK 100000 bytes'" 90
log "the libslirp forward worked again $((SECONDS - t0)) s after the clients left; daemon fds: $(nfds "$DAEMON_PID")"
alive "$DAEMON_PID" || fail "daemon died"
pass
