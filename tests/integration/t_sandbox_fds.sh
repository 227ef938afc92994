#!/usr/bin/env bash
# --enable-sandbox: after pivot_root the daemon holds no fd that leads outside its new root. A
# directory fd would (openat(fd, "..") walks the host's filesystem), and the API socket's
# directory used to be one (kept to remove the socket file at exit). The file is still removed:
# at SIGTERM, and by the helper that owns the removal if the daemon is SIGKILLed.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

# describe_fds PID: one line per fd the daemon did not inherit from this shell (CTest and bash
# pass a few down; stdin/stdout/stderr are the caller's too): "N TARGET [dir]".
describe_fds() {
  local fd n target
  for fd in /proc/"$1"/fd/*; do
    n=${fd##*/}
    target=$(readlink "$fd" 2>/dev/null) || continue
    ((n > 2)) || continue
    [[ $target != "$(readlink "/proc/$$/fd/$n" 2>/dev/null)" ]] || continue
    printf '%s %s%s\n' "$n" "$target" "$([[ -d $fd ]] && echo ' [dir]')"
  done
}

for how in TERM KILL; do
  start_container
  sock=$TMP/api-$how.sock
  start_configured_api "$sock" --enable-sandbox --enable-seccomp
  assert_contains "$(api "$sock" '{"execute":"list_hostfwd"}')" '"entries"' "API answer in the sandbox"
  fds=$(describe_fds "$DAEMON_PID")
  log "daemon fds ($how):"$'\n'"$fds"
  assert_not_contains "$fds" "[dir]" "the sandboxed daemon's fds (a directory fd leads outside the root)"
  # Whatever names a path must be something no *at() call can start from: the TAP's device node.
  # Sockets, pipes and anon inodes have no path.
  others=$(grep -vE '^[0-9]+ (socket:|pipe:|anon_inode:|/dev/net/tun$)' <<<"$fds" || true)
  assert_eq "" "$others" "fds of the sandboxed daemon naming a path"
  kill -s "$how" "$DAEMON_PID"
  wait_exit "$DAEMON_PID" 10 || fail "daemon still running after SIG$how"
  wait_for "[[ ! -e $sock ]]" 5
  kill_quietly "$C"
done
pass
